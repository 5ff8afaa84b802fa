//! rung's agent systems.
//!
//! A [`System`] runs one episode of a task in any [`rung_env::Environment`] with one
//! [`Policy`] per role: the **single** agent writes all the code itself; the **two-agent** team
//! has an orchestrator that delegates sub-tasks to an executor; the **three-agent** team adds a
//! critic that reviews every sub-task and may send it back once. Every episode becomes a
//! [`rung_trajectory::Episode`].
//!
//! The [`expert`] policies follow the gold plans of a [`GoldSource`] and produce training data,
//! including deliberate mistakes followed by recoveries; [`model_policy`] plays roles with
//! language models of `rung-model` (one base with per-role LoRA adapters, or a model per role);
//! the [`harness`] runs a system over a split in parallel and scores it. All texts and formats
//! live in [`prompts`].

#![warn(missing_docs)]

pub mod apps;
pub mod appworld_gold;
mod budget;
pub mod corpus;
mod error;
pub mod expert;
pub mod gold;
pub mod harness;
pub mod model_policy;
mod policy;
pub mod prompts;
mod seed;
pub mod system;
pub mod tokens;

pub use apps::AppCatalog;
pub use appworld_gold::AppWorldGold;
pub use budget::Budgets;
pub use error::AgentError;
pub use expert::{ExpertHabits, ExpertOptions, Experts, InvalidHabits, MistakeMix};
pub use gold::{GoldPlan, GoldSource, GoldSubtask, ProbedCell, WorldGold};
pub use harness::{
    Backend, DataGenOptions, DataGenReport, EvalOptions, EvalReport, JudgedEpisode, evaluate,
    evaluate_episodes, generate_expert_data, replay_episode, run_split, task_list,
};
pub use model_policy::{
    Batching, Decoding, ModelPolicy, ModelPolicyOptions, ModelSpec, load_role_policies,
};
pub use policy::{Completion, EpisodeContext, Policy, PolicyError};
pub use system::System;
