//! rung: ProST (progressive sub-task training) for multi-agent systems of small language models.
//!
//! This root crate re-exports the workspace crates so that end-to-end tests and downstream users can
//! depend on one package.

pub use rung_env as env;
pub use rung_world as world;
