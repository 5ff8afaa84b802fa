//! The environment side of rung.
//!
//! Everything an agent does happens through [`Environment`], which mirrors the episode protocol of
//! AppWorld's environment server (`appworld serve environment`). Two kinds of implementation exist:
//! [`AppWorldClient`] speaks that protocol over HTTP (to real AppWorld or to rung's own world server),
//! and `rung-world` implements it in process. [`serve`] exposes any implementation over HTTP, and
//! [`ServerPool`] runs one server process per parallel episode.

mod client;
mod environment;
mod error;
pub mod metrics;
mod pool;
pub mod protocol;
mod server;
mod task;

pub use client::{AppWorldClient, ClientOptions};
pub use environment::{Environment, EpisodeOptions};
pub use error::EnvError;
pub use metrics::{EvaluatedTask, Scores};
pub use pool::{PoolMember, PoolOptions, ServerPool};
pub use protocol::{Evaluation, Supervisor, TaskInfo, TestFailure, TestPass};
pub use server::{ServerHandle, ServerOptions, serve, serve_with};
pub use task::{Split, TaskId, TaskIdError, TaskListError, read_task_ids};
