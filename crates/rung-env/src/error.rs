//! Errors of environments, clients and server pools.

use crate::TaskId;

/// Why an environment call could not be carried out. A failing code cell is not an error: its
/// traceback is the cell's output.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The task id is not in the environment's task set.
    #[error("unknown task `{task_id}`: {hint}")]
    UnknownTask {
        /// The id asked for.
        task_id: TaskId,
        /// Where the environment looked, or how to list its tasks.
        hint: String,
    },
    /// A call addressed an episode that was never initialized or is already closed.
    #[error("no running episode for task `{0}`: call initialize first")]
    NoEpisode(TaskId),
    /// Nothing answers at the server's address.
    #[error(
        "no environment server answers at {url} ({reason}); start one with `cargo xtask world serve \
         --port PORT` (embedded world) or `appworld serve environment --port PORT` (AppWorld)"
    )]
    ServerNotRunning {
        /// The server's base URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The server answered with an HTTP error status.
    #[error("{method} {url} failed with HTTP {status}: {body}")]
    Http {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Response body (truncated).
        body: String,
    },
    /// The server did not answer in time.
    #[error("{method} {url} timed out after {seconds:.1} s")]
    Timeout {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// The timeout that elapsed.
        seconds: f64,
    },
    /// The server answered 2xx with a body that is not the protocol's shape.
    #[error("{url} answered with an unexpected body ({detail}): {body}")]
    BadResponse {
        /// Full URL.
        url: String,
        /// What did not parse.
        detail: String,
        /// Response body (truncated).
        body: String,
    },
    /// A transport failure other than the ones above.
    #[error("{method} {url}: {reason}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// Starting or supervising server processes failed.
    #[error("environment server pool: {0}")]
    Pool(String),
    /// The environment is at its capacity (open episodes, memory); retry after closing one.
    #[error("environment busy: {0}")]
    Busy(String),
    /// The environment failed internally (a bug or a broken installation).
    #[error("environment internal error: {0}")]
    Internal(String),
}

impl EnvError {
    /// Whether the error may mean that the server itself is gone or stuck (nothing answers, the
    /// connection broke, the call timed out), so that a restarted server may cure it.
    pub fn may_be_transient(&self) -> bool {
        matches!(
            self,
            EnvError::ServerNotRunning { .. }
                | EnvError::Transport { .. }
                | EnvError::Timeout { .. }
        )
    }

    /// The HTTP status our server answers for this error. Unknown tasks and episodes are 404 so a
    /// client can tell them from server faults (real AppWorld answers 500 for both).
    pub fn http_status(&self) -> u16 {
        match self {
            EnvError::UnknownTask { .. } | EnvError::NoEpisode(_) => 404,
            EnvError::Busy(_) => 503,
            _ => 500,
        }
    }
}

/// Truncates a response body for an error message without splitting a character.
pub(crate) fn truncate_body(body: &str) -> String {
    const LIMIT: usize = 600;
    if body.len() <= LIMIT {
        return body.to_owned();
    }
    let mut end = LIMIT;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &body[..end], body.len())
}
