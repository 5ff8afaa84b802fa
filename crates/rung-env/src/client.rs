//! [`Environment`] over HTTP: a client of AppWorld's environment server (`appworld serve
//! environment`) that also speaks to rung's own server ([`serve`](crate::serve)).
//!
//! The released AppWorld server has quirks a client must absorb (REFERENCE §2): `/evaluate` needs
//! `suppress_errors: true` or a failing task becomes HTTP 500, `ground_truth_mode` is rejected, and
//! an unknown task id is an unexplained HTTP 500. This client hides them behind [`EnvError`]
//! variants that say what went wrong and what to check.

use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::truncate_body;
use crate::protocol::{
    ApiDocs, EvaluateRequest, Evaluation, ExecuteRequest, InitializeRequest, Output, TaskInfo,
    TaskRequest,
};
use crate::{EnvError, Environment, EpisodeOptions, TaskId};

/// Largest response body read; `GET /api_docs` of all 457 APIs is a few MiB, far below this.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// Longest pause between two retries, whatever the backoff doubling reaches.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How long the client waits and how often it retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Budget of one whole call, response body included. Long because one `execute` may run a
    /// slow code cell (AppWorld's own cell timeout is 100 s by default).
    pub timeout: Duration,
    /// Budget of opening the connection; short because a server that is up accepts at once.
    pub connect_timeout: Duration,
    /// Retries after a failure that is safe to retry (see [`AppWorldClient`]).
    pub retries: u32,
    /// Pause before the first retry; it doubles for each further retry.
    pub retry_backoff: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(5),
            retries: 3,
            retry_backoff: Duration::from_millis(250),
        }
    }
}

/// A client of one environment server.
///
/// Retries happen only where a repeat cannot do an action twice: a refused or failed connection
/// (the request never reached the server) is retried for every call, a timeout or broken
/// connection only for `GET` calls. A `POST /execute` that may have reached the server is never
/// sent again, since running a code cell twice could change the world twice.
///
/// Each call opens a fresh connection. Keep-alive would save little on loopback, and a pooled
/// connection the server has meanwhile closed would turn into a transport error on a `POST`,
/// which could then not be retried.
#[derive(Clone)]
pub struct AppWorldClient {
    base_url: String,
    agent: ureq::Agent,
    options: ClientOptions,
}

impl std::fmt::Debug for AppWorldClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppWorldClient")
            .field("base_url", &self.base_url)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// HTTP methods the protocol uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Get,
    Post,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
        }
    }
}

/// A response as received: any status, body as text.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

impl AppWorldClient {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:8000`) with default options.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_options(base_url, ClientOptions::default())
    }

    /// A client of the server at `base_url` with explicit options.
    pub fn with_options(base_url: impl Into<String>, options: ClientOptions) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(options.connect_timeout))
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build();
        Self {
            base_url,
            agent: config.new_agent(),
            options,
        }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The options the client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Checks that the server answers `GET /` with a success status.
    pub fn ping(&self) -> Result<(), EnvError> {
        let url = self.url("/");
        let answer = self.send(Verb::Get, &url, None)?;
        if is_success(answer.status) {
            Ok(())
        } else {
            Err(http_error(Verb::Get, &url, &answer))
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Sends a request, retrying where that is safe, and returns the answer whatever its status.
    fn send(&self, verb: Verb, url: &str, body: Option<&str>) -> Result<Answer, EnvError> {
        let mut attempt = 0;
        loop {
            match self.send_once(verb, url, body) {
                Ok(answer) => return Ok(answer),
                Err(err) if attempt < self.options.retries && is_retryable(&err, verb) => {
                    thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                Err(err) => return Err(self.transport_error(verb, url, err)),
            }
        }
    }

    fn send_once(&self, verb: Verb, url: &str, body: Option<&str>) -> Result<Answer, ureq::Error> {
        let mut response = match (verb, body) {
            (Verb::Get, _) => self.agent.get(url).call()?,
            (Verb::Post, Some(body)) => self
                .agent
                .post(url)
                .content_type("application/json")
                .send(body)?,
            (Verb::Post, None) => self.agent.post(url).send_empty()?,
        };
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .lossy_utf8(true)
            .read_to_string()?;
        Ok(Answer { status, body })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.options
            .retry_backoff
            .saturating_mul(factor)
            .min(MAX_BACKOFF)
    }

    fn transport_error(&self, verb: Verb, url: &str, err: ureq::Error) -> EnvError {
        if let ureq::Error::Timeout(kind) = err {
            let budget = match kind {
                ureq::Timeout::Connect | ureq::Timeout::Resolve => self.options.connect_timeout,
                _ => self.options.timeout,
            };
            return EnvError::Timeout {
                method: verb.name(),
                url: url.to_owned(),
                seconds: budget.as_secs_f64(),
            };
        }
        if never_received(&err) {
            return EnvError::ServerNotRunning {
                url: self.base_url.clone(),
                reason: err.to_string(),
            };
        }
        EnvError::Transport {
            method: verb.name(),
            url: url.to_owned(),
            reason: err.to_string(),
        }
    }

    /// One protocol call: sends, checks the status, unwraps `{"output": ...}`. `task` lets a 404
    /// from rung's server become [`EnvError::UnknownTask`] or [`EnvError::NoEpisode`].
    fn call<T: DeserializeOwned>(
        &self,
        verb: Verb,
        path: &str,
        body: Option<String>,
        task: Option<&TaskId>,
        what: &str,
    ) -> Result<T, EnvError> {
        let url = self.url(path);
        let answer = self.send(verb, &url, body.as_deref())?;
        if !is_success(answer.status) {
            let task_error = task
                .filter(|_| answer.status == 404)
                .and_then(|task| task_error_from_detail(task, &answer.body));
            return Err(task_error.unwrap_or_else(|| http_error(verb, &url, &answer)));
        }
        decode_output(&url, &answer.body, what)
    }

    /// A `GET` whose 2xx body is any JSON value, enveloped or not.
    fn call_raw(&self, verb: Verb, path: &str, what: &str) -> Result<Value, EnvError> {
        let url = self.url(path);
        let answer = self.send(verb, &url, None)?;
        if !is_success(answer.status) {
            return Err(http_error(verb, &url, &answer));
        }
        serde_json::from_str(&answer.body).map_err(|e| EnvError::BadResponse {
            url: url.clone(),
            detail: format!("expected {what} as JSON: {e}"),
            body: truncate_body(&answer.body),
        })
    }

    fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        task: &TaskId,
        what: &str,
    ) -> Result<T, EnvError> {
        // Compact JSON: code cells can be long, and the server needs no indentation.
        let body = serde_json::to_string(body).map_err(|e| {
            EnvError::Internal(format!("cannot encode the body of POST {path}: {e}"))
        })?;
        self.call(Verb::Post, path, Some(body), Some(task), what)
    }

    fn fetch_task_info(&self, task_id: &TaskId) -> Result<TaskInfo, EnvError> {
        let path = format!("/tasks/{task_id}");
        self.call(Verb::Get, &path, None, Some(task_id), "a task object")
    }

    /// Real AppWorld's answer to a task it cannot load (an unknown id, or a task folder that is
    /// incomplete): HTTP 500. The released server says nothing more ("Internal Server Error");
    /// rung's loopback server script (`xtask/appworld/serve.py`) adds the exception, e.g. `The
    /// task directory (…) doesn't exist.`, which the hint then quotes.
    fn unknown_task(&self, task_id: &TaskId, answer_body: &str) -> EnvError {
        let detail = server_detail(answer_body)
            .map(|d| format!(" (it says: {d})"))
            .unwrap_or_default();
        EnvError::UnknownTask {
            task_id: task_id.clone(),
            hint: format!(
                "the server at {} does not know this task{detail}; check the task id and the \
                 server's data folder (APPWORLD_ROOT)",
                self.base_url
            ),
        }
    }

    /// If `GET /tasks/{id}` is refused with an HTTP error, meaning the server cannot load the
    /// task, the body it answered. A transport failure says nothing about the task, so it does
    /// not count.
    fn task_refusal(&self, task_id: &TaskId) -> Option<String> {
        match self.fetch_task_info(task_id) {
            Err(EnvError::Http { body, .. }) => Some(body),
            Err(EnvError::UnknownTask { hint, .. }) => Some(hint),
            _ => None,
        }
    }
}

fn is_success(status: u16) -> bool {
    (200..300).contains(&status)
}

fn http_error(verb: Verb, url: &str, answer: &Answer) -> EnvError {
    EnvError::Http {
        method: verb.name(),
        url: url.to_owned(),
        status: answer.status,
        body: truncate_body(&answer.body),
    }
}

/// Whether the failure happened before the request could reach the server.
fn never_received(err: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match err {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::AddrNotAvailable
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::NetworkDown
        ),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(kind) => {
            matches!(kind, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        _ => false,
    }
}

/// Whether sending again is safe: always when the server never got the request, and for `GET`
/// (which changes nothing) after a timeout or a broken connection too.
fn is_retryable(err: &ureq::Error, verb: Verb) -> bool {
    if never_received(err) {
        return true;
    }
    verb == Verb::Get
        && matches!(
            err,
            ureq::Error::Timeout(_) | ureq::Error::Io(_) | ureq::Error::Protocol(_)
        )
}

/// Reads rung's 404 detail (the text of [`EnvError::UnknownTask`] or [`EnvError::NoEpisode`]).
fn task_error_from_detail(task: &TaskId, body: &str) -> Option<EnvError> {
    let value: Value = serde_json::from_str(body).ok()?;
    let detail = value.get("detail")?.as_str()?;
    if detail.starts_with("no running episode") {
        return Some(EnvError::NoEpisode(task.clone()));
    }
    if detail.starts_with("unknown task") {
        let hint = detail.split_once("`: ").map_or(detail, |(_, hint)| hint);
        return Some(EnvError::UnknownTask {
            task_id: task.clone(),
            hint: hint.to_owned(),
        });
    }
    None
}

/// The message in an error body: `{"detail": "..."}` (FastAPI, rung's server script) as text,
/// or nothing for the released server's bare "Internal Server Error".
fn server_detail(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() || body == "Internal Server Error" {
        return None;
    }
    let detail = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned());
    Some(truncate_body(&detail))
}

fn decode_output<T: DeserializeOwned>(url: &str, body: &str, what: &str) -> Result<T, EnvError> {
    serde_json::from_str::<Output<T>>(body)
        .map(|envelope| envelope.output)
        .map_err(|e| EnvError::BadResponse {
            url: url.to_owned(),
            detail: format!("expected {{\"output\": {what}}}: {e}"),
            body: truncate_body(body),
        })
}

/// `{"output": docs}` becomes `docs`; anything else is the documents already.
fn unwrap_api_docs(value: Value) -> ApiDocs {
    match value {
        Value::Object(mut map) if map.len() == 1 && map.contains_key("output") => {
            map.remove("output").unwrap_or(Value::Null)
        }
        other => other,
    }
}

impl Environment for AppWorldClient {
    fn initialize(&self, task_id: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        let request = InitializeRequest {
            task_id: task_id.clone(),
            experiment_name: options.experiment_name.clone(),
            max_interactions: options.max_interactions,
            timeout_seconds: options.timeout_seconds,
            random_seed: options.random_seed,
        };
        match self.post("/initialize", &request, task_id, "a task object") {
            Err(EnvError::Http { status: 500, .. })
                if let Some(body) = self.task_refusal(task_id) =>
            {
                Err(self.unknown_task(task_id, &body))
            }
            other => other,
        }
    }

    fn execute(&self, task_id: &TaskId, code: &str) -> Result<String, EnvError> {
        let request = ExecuteRequest {
            task_id: task_id.clone(),
            code: code.to_owned(),
        };
        self.post("/execute", &request, task_id, "a string")
    }

    fn task_completed(&self, task_id: &TaskId) -> Result<bool, EnvError> {
        let request = TaskRequest {
            task_id: task_id.clone(),
        };
        self.post("/task_completed", &request, task_id, "a bool")
    }

    fn evaluate(&self, task_id: &TaskId) -> Result<Evaluation, EnvError> {
        let request = EvaluateRequest {
            task_id: task_id.clone(),
            suppress_errors: true,
            report: false,
        };
        self.post("/evaluate", &request, task_id, "an evaluation object")
    }

    fn close(&self, task_id: &TaskId) -> Result<(), EnvError> {
        let request = TaskRequest {
            task_id: task_id.clone(),
        };
        // AppWorld answers null; any payload means the same, so it is not checked.
        self.post::<Value>("/close", &request, task_id, "null")
            .map(drop)
    }

    fn task_info(&self, task_id: &TaskId) -> Result<TaskInfo, EnvError> {
        match self.fetch_task_info(task_id) {
            Err(EnvError::Http {
                status: 500, body, ..
            }) => Err(self.unknown_task(task_id, &body)),
            other => other,
        }
    }

    /// The released AppWorld server answers `GET /api_docs` with the documents themselves, not
    /// wrapped in `{"output": ...}` like every other endpoint (and like rung's server); both
    /// are accepted.
    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        let docs: Value = self.call_raw(Verb::Get, "/api_docs", "API documentation")?;
        Ok(unwrap_api_docs(docs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskId {
        "abcdef0_1".parse().expect("valid id")
    }

    #[test]
    fn rung_404_details_become_task_errors() {
        let unknown = EnvError::UnknownTask {
            task_id: task(),
            hint: "tasks: a, b".into(),
        };
        let body = serde_json::json!({ "detail": unknown.to_string() }).to_string();
        match task_error_from_detail(&task(), &body) {
            Some(EnvError::UnknownTask { task_id, hint }) => {
                assert_eq!(task_id, task());
                assert_eq!(hint, "tasks: a, b");
            }
            other => panic!("expected UnknownTask, got {other:?}"),
        }
        let body = serde_json::json!({ "detail": EnvError::NoEpisode(task()).to_string() });
        assert!(matches!(
            task_error_from_detail(&task(), &body.to_string()),
            Some(EnvError::NoEpisode(id)) if id == task()
        ));
        assert!(task_error_from_detail(&task(), r#"{"detail":"Not Found"}"#).is_none());
        assert!(task_error_from_detail(&task(), "Not Found").is_none());
    }

    #[test]
    fn retries_only_where_safe() {
        let refused = || ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into());
        let reset = || ureq::Error::Io(std::io::ErrorKind::ConnectionReset.into());
        assert!(is_retryable(&refused(), Verb::Post));
        assert!(is_retryable(&ureq::Error::ConnectionFailed, Verb::Post));
        assert!(is_retryable(
            &ureq::Error::Timeout(ureq::Timeout::Connect),
            Verb::Post
        ));
        assert!(!is_retryable(
            &ureq::Error::Timeout(ureq::Timeout::Global),
            Verb::Post
        ));
        assert!(!is_retryable(&reset(), Verb::Post));
        assert!(is_retryable(
            &ureq::Error::Timeout(ureq::Timeout::Global),
            Verb::Get
        ));
        assert!(is_retryable(&reset(), Verb::Get));
        assert!(!is_retryable(&ureq::Error::BadUri("x".into()), Verb::Get));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let options = ClientOptions {
            retry_backoff: Duration::from_millis(100),
            ..Default::default()
        };
        let client = AppWorldClient::with_options("http://127.0.0.1:1/", options);
        assert_eq!(client.base_url(), "http://127.0.0.1:1");
        assert_eq!(client.backoff(0), Duration::from_millis(100));
        assert_eq!(client.backoff(2), Duration::from_millis(400));
        assert_eq!(client.backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn api_docs_are_accepted_with_and_without_envelope() {
        let docs = serde_json::json!({"phone": {"login": {}}});
        assert_eq!(
            unwrap_api_docs(serde_json::json!({ "output": docs.clone() })),
            docs
        );
        assert_eq!(unwrap_api_docs(docs.clone()), docs);
    }

    #[test]
    fn server_details_are_quoted_when_there_are_any() {
        assert_eq!(server_detail("Internal Server Error"), None);
        assert_eq!(server_detail("  "), None);
        assert_eq!(
            server_detail(r#"{"detail":"Exception: The task directory (/d/x_1) doesn't exist."}"#)
                .as_deref(),
            Some("Exception: The task directory (/d/x_1) doesn't exist.")
        );
        assert_eq!(server_detail("boom").as_deref(), Some("boom"));
    }

    #[test]
    fn envelope_errors_name_what_was_expected() {
        let err = decode_output::<bool>("http://x/task_completed", r#"{"nope":1}"#, "a bool")
            .expect_err("wrong shape");
        match err {
            EnvError::BadResponse { url, detail, body } => {
                assert_eq!(url, "http://x/task_completed");
                assert!(
                    detail.contains("a bool") && detail.contains("output"),
                    "{detail}"
                );
                assert_eq!(body, r#"{"nope":1}"#);
            }
            other => panic!("expected BadResponse, got {other:?}"),
        }
        assert!(decode_output::<bool>("u", r#"{"output":true}"#, "a bool").expect("decodes"));
    }
}
