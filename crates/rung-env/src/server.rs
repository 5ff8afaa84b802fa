//! AppWorld's environment-server protocol served over HTTP for any [`Environment`].
//!
//! Serving the same protocol as `appworld serve environment` lets every client (ours, AppWorld's
//! Python client, curl) drive rung's own world exactly as it drives real AppWorld, and lets
//! [`ServerPool`](crate::ServerPool) run either kind of server process interchangeably.
//!
//! Requests are taken from one listening socket by a pool of worker threads, so several episodes
//! progress at once and a slow `execute` holds up only its own worker.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response};

use crate::protocol::{ExecuteRequest, InitializeRequest, Output, TaskRequest};
use crate::{EnvError, Environment, EpisodeOptions, TaskId};

/// How a server runs: defaults suit one machine running a handful of parallel episodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Worker threads answering requests; this many requests are handled at once, so it bounds
    /// how many episodes can be inside an `execute` at the same time.
    pub workers: usize,
    /// Largest accepted request body in bytes; larger bodies get HTTP 413 so that one bad client
    /// cannot exhaust the server's memory.
    pub max_body_bytes: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            workers: 8,
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A running server. Dropping it stops the server, so a test or a command cannot leak one.
pub struct ServerHandle {
    /// `None` once stopped.
    server: Option<Arc<tiny_http::Server>>,
    workers: Vec<JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The port the server listens on (useful when it was started on port 0).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The base URL a client on this machine uses, e.g. `http://127.0.0.1:8000`.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    /// The address a client on this machine connects to.
    fn local_addr(&self) -> SocketAddr {
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(ip, self.addr.port())
    }

    /// Stops accepting requests, lets requests in progress finish, and joins the workers.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Blocks while the server runs. A command-line `serve` calls this and ends by signal; the
    /// server has no remote shutdown, so this returns only if every worker thread has ended.
    pub fn wait(mut self) {
        for worker in self.workers.drain(..) {
            // A worker catches environment panics itself, so a join error would be a bug in the
            // request loop; there is nothing left to clean up for it either way.
            let _ = worker.join();
        }
    }

    fn shutdown(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // Each unblock releases one thread waiting in `recv`, so send one per worker.
        for _ in 0..self.workers.len() {
            server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        // The workers held the other references, so this drops the server, which tells its
        // accept thread to end; that thread closes the socket shortly after.
        drop(server);
        self.wait_until_closed();
    }

    /// Waits (briefly) until the port refuses connections, so that a client told the server is
    /// stopped is refused rather than accepted by a server that will never answer.
    fn wait_until_closed(&self) {
        let addr = self.local_addr();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        {
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `env` on `addr` (`"127.0.0.1:0"` picks a free port) with [`ServerOptions::default`].
pub fn serve<E: Environment + 'static>(env: Arc<E>, addr: &str) -> Result<ServerHandle, EnvError> {
    serve_with(env, addr, ServerOptions::default())
}

/// Serves `env` on `addr` with explicit options.
pub fn serve_with<E: Environment + 'static>(
    env: Arc<E>,
    addr: &str,
    options: ServerOptions,
) -> Result<ServerHandle, EnvError> {
    let server = tiny_http::Server::http(addr).map_err(|e| EnvError::Transport {
        method: "LISTEN",
        url: addr.to_owned(),
        reason: e.to_string(),
    })?;
    let bound = server.server_addr().to_ip().ok_or_else(|| {
        EnvError::Internal(format!(
            "the server for {addr} is not listening on an IP address"
        ))
    })?;
    let server = Arc::new(server);
    let stopping = Arc::new(AtomicBool::new(false));
    let mut handle = ServerHandle {
        server: Some(server),
        workers: Vec::new(),
        stopping,
        addr: bound,
    };
    for index in 0..options.workers.max(1) {
        let worker = spawn_worker(index, &handle, Arc::clone(&env), options.max_body_bytes)?;
        handle.workers.push(worker);
    }
    Ok(handle)
}

fn spawn_worker<E: Environment + 'static>(
    index: usize,
    handle: &ServerHandle,
    env: Arc<E>,
    max_body_bytes: usize,
) -> Result<JoinHandle<()>, EnvError> {
    let server = handle.server.clone().ok_or_else(|| {
        EnvError::Internal("the server stopped while its workers were starting".into())
    })?;
    let stopping = Arc::clone(&handle.stopping);
    thread::Builder::new()
        .name(format!("rung-env-http-{index}"))
        .spawn(move || worker_loop(&server, &*env, &stopping, max_body_bytes))
        .map_err(|e| EnvError::Internal(format!("cannot start server worker thread: {e}")))
}

fn worker_loop<E: Environment>(
    server: &tiny_http::Server,
    env: &E,
    stopping: &AtomicBool,
    max_body_bytes: usize,
) {
    while !stopping.load(Ordering::SeqCst) {
        match server.recv() {
            Ok(request) => answer(env, request, max_body_bytes),
            // Unblocked for shutdown (the loop condition ends it) or a failed accept; pause
            // briefly so a persistent accept failure cannot spin a core.
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// A response before encoding: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    body: Value,
    allow: Option<&'static str>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body,
            allow: None,
        }
    }

    /// FastAPI's error shape, which AppWorld's Python client and ours both read.
    fn detail(status: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "detail": detail.into() }),
            allow: None,
        }
    }

    fn from_env_error(err: &EnvError) -> Self {
        Self::detail(err.http_status(), err.to_string())
    }
}

fn answer<E: Environment>(env: &E, mut request: Request, max_body_bytes: usize) {
    let method = request.method().clone();
    let path = request
        .url()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let reply = match read_body(&mut request, max_body_bytes) {
        Ok(body) => guarded(|| handle(env, &method, &path, &body), &method, &path),
        Err(reply) => reply,
    };
    // An error from `respond` means the client has gone; nothing is left to tell it.
    let _ = request.respond(encode(reply));
}

/// Runs the handler so that a panicking environment costs one 500, not a worker thread.
fn guarded(run: impl FnOnce() -> Reply, method: &Method, path: &str) -> Reply {
    panic::catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Reply::detail(
            500,
            format!("the environment panicked while handling {method} {path}: {message}"),
        )
    })
}

fn read_body(request: &mut Request, limit: usize) -> Result<Vec<u8>, Reply> {
    let too_large = || Reply::detail(413, format!("request body larger than {limit} bytes"));
    if request.body_length().is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    request
        .as_reader()
        .take(cap)
        .read_to_end(&mut body)
        .map_err(|e| Reply::detail(400, format!("cannot read the request body: {e}")))?;
    if body.len() > limit {
        return Err(too_large());
    }
    Ok(body)
}

fn encode(reply: Reply) -> Response<std::io::Cursor<Vec<u8>>> {
    let bytes = serde_json::to_vec(&reply.body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::from_data(bytes).with_status_code(reply.status);
    if let Ok(header) = Header::from_bytes("Content-Type", "application/json") {
        response.add_header(header);
    }
    if let Some(allow) = reply.allow
        && let Ok(header) = Header::from_bytes("Allow", allow)
    {
        response.add_header(header);
    }
    response
}

/// The protocol's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Root,
    Initialize,
    Execute,
    TaskCompleted,
    Evaluate,
    Close,
    Task(String),
    ApiDocs,
}

impl Route {
    fn parse(path: &str) -> Option<Self> {
        Some(match path {
            "/" => Route::Root,
            "/initialize" => Route::Initialize,
            "/execute" => Route::Execute,
            "/task_completed" => Route::TaskCompleted,
            "/evaluate" => Route::Evaluate,
            "/close" => Route::Close,
            "/api_docs" => Route::ApiDocs,
            _ => {
                let id = path.strip_prefix("/tasks/")?;
                if id.is_empty() || id.contains('/') {
                    return None;
                }
                Route::Task(id.to_owned())
            }
        })
    }

    fn method(&self) -> Method {
        match self {
            Route::Root | Route::Task(_) | Route::ApiDocs => Method::Get,
            _ => Method::Post,
        }
    }

    /// What the body must look like, for 422 messages.
    fn expected_body(&self) -> &'static str {
        match self {
            Route::Initialize => {
                r#"{"task_id": "<scenario>_<n>", "experiment_name"?, "max_interactions"?, "timeout_seconds"?, "random_seed"?}"#
            }
            Route::Execute => r#"{"task_id": "<scenario>_<n>", "code": "<python>"}"#,
            Route::Evaluate => {
                r#"{"task_id": "<scenario>_<n>", "suppress_errors"?: bool, "report"?: bool}"#
            }
            _ => r#"{"task_id": "<scenario>_<n>"}"#,
        }
    }
}

/// `/evaluate`'s body as received: AppWorld's flags are optional and have no effect here, since
/// this server reports a failing task as an ordinary evaluation, never as an error.
#[derive(Debug, Deserialize)]
struct EvaluateBody {
    task_id: TaskId,
    #[serde(default, rename = "suppress_errors")]
    _suppress_errors: Option<bool>,
    #[serde(default, rename = "report")]
    _report: Option<bool>,
}

fn handle<E: Environment>(env: &E, method: &Method, path: &str, body: &[u8]) -> Reply {
    let Some(route) = Route::parse(path) else {
        return Reply::detail(404, "Not Found");
    };
    if *method != route.method() {
        let allow = if route.method() == Method::Get {
            "GET"
        } else {
            "POST"
        };
        return Reply {
            allow: Some(allow),
            ..Reply::detail(405, "Method Not Allowed")
        };
    }
    dispatch(env, &route, body).unwrap_or_else(|reply| reply)
}

/// Parses the request, calls the environment and wraps its answer; `Err` carries error replies.
fn dispatch<E: Environment>(env: &E, route: &Route, body: &[u8]) -> Result<Reply, Reply> {
    match route {
        Route::Root => Ok(Reply::ok(json!({ "status": "ok", "server": "rung" }))),
        Route::Initialize => {
            let request: InitializeRequest = parse_body(route, body)?;
            let options = EpisodeOptions {
                experiment_name: request.experiment_name,
                max_interactions: request.max_interactions,
                timeout_seconds: request.timeout_seconds,
                random_seed: request.random_seed,
            };
            output(env.initialize(&request.task_id, &options))
        }
        Route::Execute => {
            let request: ExecuteRequest = parse_body(route, body)?;
            output(env.execute(&request.task_id, &request.code))
        }
        Route::TaskCompleted => {
            let request: TaskRequest = parse_body(route, body)?;
            output(env.task_completed(&request.task_id))
        }
        Route::Evaluate => {
            let request: EvaluateBody = parse_body(route, body)?;
            output(env.evaluate(&request.task_id))
        }
        Route::Close => {
            let request: TaskRequest = parse_body(route, body)?;
            output(env.close(&request.task_id))
        }
        Route::Task(id) => {
            let task_id: TaskId = id.parse().map_err(|e| Reply::detail(422, format!("{e}")))?;
            output(env.task_info(&task_id))
        }
        Route::ApiDocs => output(env.api_docs()),
    }
}

fn parse_body<T: DeserializeOwned>(route: &Route, body: &[u8]) -> Result<T, Reply> {
    serde_json::from_slice(body).map_err(|e| {
        Reply::detail(
            422,
            format!(
                "invalid request body ({e}); expected JSON of the shape {}",
                route.expected_body()
            ),
        )
    })
}

fn output<T: serde::Serialize>(result: Result<T, EnvError>) -> Result<Reply, Reply> {
    let output = result.map_err(|e| Reply::from_env_error(&e))?;
    serde_json::to_value(Output { output })
        .map(Reply::ok)
        .map_err(|e| Reply::detail(500, format!("cannot encode the response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        assert_eq!(Route::parse("/"), Some(Route::Root));
        assert_eq!(Route::parse("/execute"), Some(Route::Execute));
        assert_eq!(
            Route::parse("/tasks/50e1ac9_1"),
            Some(Route::Task("50e1ac9_1".into()))
        );
        assert_eq!(Route::parse("/tasks/"), None);
        assert_eq!(Route::parse("/tasks/a/b"), None);
        assert_eq!(Route::parse("/execute/"), None);
        assert_eq!(Route::Task("x".into()).method(), Method::Get);
        assert_eq!(Route::Close.method(), Method::Post);
    }

    #[test]
    fn guarded_turns_a_panic_into_500() {
        let reply = guarded(|| panic!("kaboom"), &Method::Post, "/execute");
        assert_eq!(reply.status, 500);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("kaboom") && detail.contains("POST /execute"),
            "{detail}"
        );
    }

    #[test]
    fn env_errors_keep_their_status() {
        let id: TaskId = "abcdef0_1".parse().expect("valid id");
        let reply = Reply::from_env_error(&EnvError::NoEpisode(id));
        assert_eq!(reply.status, 404);
        assert_eq!(
            reply.body,
            json!({"detail": "no running episode for task `abcdef0_1`: call initialize first"})
        );
    }

    #[test]
    fn url_of_unspecified_address_is_loopback() {
        let env = Arc::new(NoEnv);
        let handle = serve_with(
            env,
            "0.0.0.0:0",
            ServerOptions {
                workers: 1,
                ..Default::default()
            },
        )
        .expect("bind");
        assert_eq!(handle.url(), format!("http://127.0.0.1:{}", handle.port()));
        handle.stop();
    }

    /// An environment that knows no task, for tests of the server's own behaviour.
    struct NoEnv;

    impl Environment for NoEnv {
        fn initialize(&self, id: &TaskId, _: &EpisodeOptions) -> Result<crate::TaskInfo, EnvError> {
            Err(EnvError::NoEpisode(id.clone()))
        }
        fn execute(&self, id: &TaskId, _: &str) -> Result<String, EnvError> {
            Err(EnvError::NoEpisode(id.clone()))
        }
        fn task_completed(&self, id: &TaskId) -> Result<bool, EnvError> {
            Err(EnvError::NoEpisode(id.clone()))
        }
        fn evaluate(&self, id: &TaskId) -> Result<crate::Evaluation, EnvError> {
            Err(EnvError::NoEpisode(id.clone()))
        }
        fn close(&self, id: &TaskId) -> Result<(), EnvError> {
            Err(EnvError::NoEpisode(id.clone()))
        }
        fn task_info(&self, id: &TaskId) -> Result<crate::TaskInfo, EnvError> {
            Err(EnvError::NoEpisode(id.clone()))
        }
        fn api_docs(&self) -> Result<crate::protocol::ApiDocs, EnvError> {
            Ok(Value::Null)
        }
    }
}
