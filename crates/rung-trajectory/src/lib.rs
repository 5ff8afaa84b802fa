//! rung's trajectory format.
//!
//! A trajectory file is JSON Lines: one [`Episode`] per line, each a complete record of one agent
//! system working on one task — the configuration, every model call with the exact messages the
//! model saw and the text it produced, the environment's answer to every code action, the
//! evaluation and the cost. Expert trajectories are the training data of ProST; evaluation
//! trajectories are what a run leaves behind for inspection. `datasets/trajectories/README.md`
//! documents the format with a complete example.
//!
//! This crate knows nothing of models or environments beyond rung-env's identifiers, so that
//! training code, evaluation code and tools can all read the same records.

#![warn(missing_docs)]

mod error;
mod read;
mod schema;
mod write;

pub use error::TrajectoryError;
pub use read::{TrajectoryReader, read_file};
pub use schema::{
    Action, Budget, ChatRole, Cost, Episode, EpisodeEnd, Message, Role, SCHEMA_VERSION,
    SystemConfig, SystemKind, Turn,
};
pub use write::{TrajectoryWriter, write_file};
