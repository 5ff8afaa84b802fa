//! Sub-tasks of rung trajectories.
//!
//! ProST supervises a growing prefix of every trajectory's sub-tasks, so a trajectory must first
//! be cut into ordered sub-tasks, each with its turns per role. [`segment`] does that for every
//! kind of episode rung records:
//!
//! - **two- and three-agent systems**: a sub-task is opened by the orchestrator decision that
//!   delegates it and holds the executor's turns and the critic's verdicts on it
//!   ([`Method::Delegations`]);
//! - **single agent with a gold plan** (the embedded world's tasks, or any task file with
//!   per-sub-task gold code): the agent's code cells are aligned to the gold sub-tasks
//!   ([`Method::GoldPlan`], [`align_to_plan`]);
//! - **single agent without a gold plan** (real AppWorld, a teacher model's episodes): a
//!   documented heuristic cuts code trajectories at app switches and login boundaries
//!   ([`Method::AppSwitch`], [`segment_by_apps`]).
//!
//! Sub-task indices are **0-based**, like `Turn::subtask` in the trajectory format. Every turn of
//! an episode belongs to exactly one sub-task, and sub-tasks are contiguous in turn order for the
//! single agent (for teams, a sub-task's turns are contiguous per role).
//!
//! [`data_stats`] summarises a trajectory file (`rung data stats FILE`).
//!
//! This crate knows nothing of models or tokenizers.

#![warn(missing_docs)]

pub mod build;
pub mod code;
mod plan;
mod segment;
mod stats;

pub use plan::{GoldPlan, GoldPlans, GoldStep, NoPlans, PlanSource};
pub use segment::{
    Method, Segmentation, Subtask, align_to_plan, segment, segment_by_apps, segment_with_plan,
    step_score,
};
pub use stats::{DataStats, RoleStats, SystemStats, data_stats, format_table};

/// Errors of reading gold plans.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not a valid gold plan.
    #[error("{path}:{line}: malformed gold plan: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// serde's message.
        message: String,
    },
}
