//! The interface every environment implements.

use crate::protocol::{ApiDocs, Evaluation, TaskInfo};
use crate::{EnvError, TaskId};

/// Episode settings sent with `initialize`; `None` leaves the environment's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpisodeOptions {
    /// Name under which the environment may store outputs.
    pub experiment_name: Option<String>,
    /// Interaction budget enforced by the environment itself.
    pub max_interactions: Option<u32>,
    /// Wall-clock budget of one `execute`, in seconds.
    pub timeout_seconds: Option<u64>,
    /// Seed of the environment's randomness.
    pub random_seed: Option<u64>,
}

/// AppWorld's episode protocol: initialize a task, execute code cells, ask whether the task is
/// completed, evaluate, close.
///
/// Methods take `&self` so that one environment can run several episodes at once from several
/// threads (each episode is addressed by its task id); implementations that cannot (a single
/// AppWorld server) say so by replacing the running episode, exactly as AppWorld does.
pub trait Environment: Send + Sync {
    /// Starts an episode of `task_id` with a fresh world, replacing any running episode of it.
    fn initialize(&self, task_id: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError>;

    /// Runs one code cell and returns its output: what it printed, `Execution successful.` when it
    /// printed nothing, or `Execution failed. Traceback:` and the error. A failing cell is an
    /// ordinary output, not an `Err`; `Err` means the environment itself could not run it.
    fn execute(&self, task_id: &TaskId, code: &str) -> Result<String, EnvError>;

    /// Whether the agent has called `apis.supervisor.complete_task`.
    fn task_completed(&self, task_id: &TaskId) -> Result<bool, EnvError>;

    /// Runs the task's tests against the episode's current state.
    fn evaluate(&self, task_id: &TaskId) -> Result<Evaluation, EnvError>;

    /// Ends the episode and frees its world.
    fn close(&self, task_id: &TaskId) -> Result<(), EnvError>;

    /// The task's instruction, supervisor and datetime, without starting an episode.
    fn task_info(&self, task_id: &TaskId) -> Result<TaskInfo, EnvError>;

    /// Documentation of every app's APIs.
    fn api_docs(&self) -> Result<ApiDocs, EnvError>;
}

impl<E: Environment + ?Sized> Environment for std::sync::Arc<E> {
    fn initialize(&self, task_id: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        (**self).initialize(task_id, options)
    }
    fn execute(&self, task_id: &TaskId, code: &str) -> Result<String, EnvError> {
        (**self).execute(task_id, code)
    }
    fn task_completed(&self, task_id: &TaskId) -> Result<bool, EnvError> {
        (**self).task_completed(task_id)
    }
    fn evaluate(&self, task_id: &TaskId) -> Result<Evaluation, EnvError> {
        (**self).evaluate(task_id)
    }
    fn close(&self, task_id: &TaskId) -> Result<(), EnvError> {
        (**self).close(task_id)
    }
    fn task_info(&self, task_id: &TaskId) -> Result<TaskInfo, EnvError> {
        (**self).task_info(task_id)
    }
    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        (**self).api_docs()
    }
}
