//! rung-experiment: the end-to-end ProST experiment.
//!
//! One config ([`ExperimentConfig`], TOML) names the environment, the data, the models, the
//! systems and role allocations, the schedules and seeds. [`run`] expands it into runs
//! ([`plan`]), executes the stages ([`stages`]) in content-addressed directories ([`store`]) so
//! that a re-run skips finished work and an interrupted one resumes, aggregates the results
//! over seeds ([`results`]), finds the effectiveness–cost Pareto front ([`pareto`]) and writes
//! `report.md`, `results.json` and plots ([`report`], [`plots`]).
//!
//! Before anything trains, guards check that the run can measure: the scripted experts must
//! reach 100% TGC on the evaluated tasks under the evaluation's budgets ([`ceiling`]), and the
//! task subsets are stratified by template, with evaluation held apart from validation
//! ([`subsets`]). Configurations are compared task by task with paired statistics ([`stats`],
//! [`claims`]).
//!
//! The stages form a plan with explicit edges ([`graph`]) that an executor runs: in this
//! process ([`executor::local`]) or as one Slurm job per stage ([`executor::slurm`]).
//!
//! The `rung experiment` command drives it; `cargo xtask experiment` builds `rung` with the
//! chosen backend and runs that.

#![warn(missing_docs)]

pub mod ceiling;
pub mod claims;
pub mod config;
pub mod curve;
pub mod episodes;
pub mod executor;
pub mod graph;
pub mod pareto;
pub mod pipeline;
pub mod plan;
pub mod plots;
pub mod pretrain;
pub mod progress;
pub mod report;
pub mod results;
pub mod rng;
pub mod shards;
pub mod stages;
pub mod stats;
pub mod store;
pub mod subsets;
pub mod tables;

use std::path::PathBuf;

pub use config::ExperimentConfig;
pub use executor::ExecutorKind;
pub use pipeline::{Outcome, RunOptions, run};
pub use store::StageKind;

/// What can go wrong in an experiment.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    /// The config is invalid; the message names the key.
    #[error("invalid experiment config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A stage's recorded output is unreadable.
    #[error("corrupt stage output: {0}")]
    Corrupt(String),
    /// A stage failed.
    #[error("{0}")]
    Stage(String),
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The plot.
        path: String,
        /// The cause.
        message: String,
    },
}
