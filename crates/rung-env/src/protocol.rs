//! Wire types of AppWorld's environment-server protocol (`appworld serve environment`).
//!
//! Field names and shapes follow the released server (0.1.3.post1) so that the same types serve as
//! the client's parser and our own server's encoder. Every response body is `{"output": ...}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::TaskId;

/// The person the agent works for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervisor {
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Email address, also the username for most apps.
    pub email: String,
    /// Phone number, the username for the phone app.
    pub phone_number: String,
}

/// What an agent is told when an episode starts (`/initialize`, `GET /tasks/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task's id.
    pub task_id: TaskId,
    /// The natural-language instruction.
    pub instruction: String,
    /// Who gives the instruction.
    pub supervisor: Supervisor,
    /// The world's current date and time, ISO 8601 without zone (`2023-05-18T10:00:00`).
    pub datetime: String,
}

/// AppWorld's label of a passed test whose requirement already held before the agent acted.
pub const LABEL_NO_OP_PASS: &str = "no_op_pass";
/// AppWorld's label of a test that fails when the agent does nothing.
pub const LABEL_NO_OP_FAIL: &str = "no_op_fail";

/// A test that passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestPass {
    /// What the test checks, in words.
    pub requirement: String,
    /// [`LABEL_NO_OP_PASS`] or [`LABEL_NO_OP_FAIL`].
    pub label: String,
}

/// A test that failed, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestFailure {
    /// What the test checks, in words.
    pub requirement: String,
    /// What was found instead.
    pub trace: String,
    /// [`LABEL_NO_OP_PASS`] or [`LABEL_NO_OP_FAIL`].
    pub label: String,
}

/// The result of `/evaluate`: a task succeeds when all of its tests pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Whether every test passed.
    pub success: bool,
    /// The scenario's difficulty, 1 to 3.
    pub difficulty: u8,
    /// Number of tests.
    pub num_tests: usize,
    /// Tests that passed.
    pub passes: Vec<TestPass>,
    /// Tests that failed.
    pub failures: Vec<TestFailure>,
}

/// Body of `POST /initialize`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InitializeRequest {
    /// Task to start.
    pub task_id: TaskId,
    /// Name under which the server stores outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_name: Option<String>,
    /// Interaction budget enforced by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interactions: Option<u32>,
    /// Wall-clock budget of one `execute`, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Seed of the world's randomness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
}

/// Body of `POST /execute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// Episode to act in.
    pub task_id: TaskId,
    /// Code cell to run.
    pub code: String,
}

/// Body of `POST /task_completed` and `POST /close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRequest {
    /// Episode addressed.
    pub task_id: TaskId,
}

/// Body of `POST /evaluate`. The released server answers HTTP 500 for a failing task unless
/// `suppress_errors` is true, so clients always send true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluateRequest {
    /// Episode to evaluate.
    pub task_id: TaskId,
    /// Must be true (see above).
    pub suppress_errors: bool,
    /// Whether the server prints a report.
    pub report: bool,
}

/// The `{"output": ...}` envelope around every response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Output<T> {
    /// The payload.
    pub output: T,
}

/// `GET /api_docs` returns documents whose shape differs between servers; keep them untyped.
pub type ApiDocs = Value;
