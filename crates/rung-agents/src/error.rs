//! Errors of running systems and harnesses. A misbehaving policy is not an error (the episode
//! records it); these are failures of the machinery around the agents.

use rung_env::{EnvError, TaskId};
use rung_trajectory::TrajectoryError;

/// Why an episode or a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The environment failed (a server that died, an unknown task): the episode's results
    /// would be meaningless, so the run stops instead of scoring it as a failure.
    #[error("task {task_id}: {source}")]
    Env {
        /// The task being run.
        task_id: TaskId,
        /// The environment's error.
        source: EnvError,
    },
    /// Writing or reading trajectories failed.
    #[error(transparent)]
    Trajectory(#[from] TrajectoryError),
    /// A run was asked for with nothing to run or an impossible setup.
    #[error("{0}")]
    Setup(String),
}
