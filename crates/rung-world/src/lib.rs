//! rung's embedded world: an offline, deterministic AppWorld-like world.
//!
//! Eight everyday apps plus AppWorld's `api_docs` and `supervisor`, a seeded population of people
//! with relationships and histories, a Starlark sandbox in which agents call
//! `apis.<app>.<api>(**kwargs)`, a task suite with gold plans and state-based tests, and an
//! [`EmbeddedWorld`] that implements rung's `Environment` (and is served over HTTP by
//! `rung world serve`).

pub mod apps;
pub mod db;
pub mod env;
pub mod evaluate;
pub mod export;
pub mod fuzz;
pub mod population;
pub mod sandbox;
pub mod tasks;
pub mod time;
pub mod walks;
pub mod world;

/// The version of the world's behaviour that trained models depend on: its APIs, their outputs
/// and the tasks' gold code. Stages whose content depends on it (expert data, the pretraining
/// corpus) put it in their keys, so a changed world redoes them instead of reusing stale files.
/// Bump it with any such change (2: logins read `show_profile`, dates come from `show_date`).
pub const WORLD_VERSION: u32 = 2;

pub use env::EmbeddedWorld;
pub use tasks::{SubTask, Suite, SuiteOptions, Task};
