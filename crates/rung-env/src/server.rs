//! AppWorld's environment-server protocol served over HTTP for any [`Environment`].
//!
//! Serving the same protocol as `appworld serve environment` lets every client (ours, AppWorld's
//! Python client, curl) drive rung's own world exactly as it drives real AppWorld, and lets
//! [`ServerPool`](crate::ServerPool) run either kind of server process interchangeably.
//!
//! Each connection gets a thread that reads its one request whole, within the body limit and a
//! deadline (`wire.rs`); complete requests go to a pool of worker threads, so several episodes
//! progress at once, a slow `execute` holds up only its own worker, and a slow, lying or hostile
//! client holds up nobody. Every answer, error or not, is JSON (`{"detail": ...}` for errors, as
//! FastAPI writes them for AppWorld).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::protocol::{ExecuteRequest, InitializeRequest, Output, TaskRequest};
use crate::{EnvError, Environment, EpisodeOptions, TaskId};

mod wire;

/// How often an idle worker looks whether the server is stopping.
const WORKER_POLL: Duration = Duration::from_millis(50);

/// How a server runs: defaults suit one machine running a handful of parallel episodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Worker threads answering requests; this many requests are handled at once, so it bounds
    /// how many episodes can be inside an `execute` at the same time.
    pub workers: usize,
    /// Largest accepted request body in bytes; larger bodies get HTTP 413 before they are read,
    /// so that one bad client cannot exhaust the server's memory.
    pub max_body_bytes: usize,
    /// Time a client has to send a whole request; a slower or lying one (a `Content-Length`
    /// larger than what it sends) gets HTTP 408 and costs no worker meanwhile.
    pub read_timeout: Duration,
    /// Connections open at once (being read, queued or answered); more get HTTP 503 at once,
    /// so that a flood of idle connections cannot exhaust the server's threads.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            workers: 8,
            max_body_bytes: 8 * 1024 * 1024,
            read_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

/// A running server. Dropping it stops the server, so a test or a command cannot leak one.
pub struct ServerHandle {
    /// `None` once stopped.
    acceptor: Option<JoinHandle<()>>,
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
        local_addr(self.addr)
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
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.stopping.store(true, Ordering::SeqCst);
        // The acceptor blocks in `accept`: one connection wakes it to see the flag. Joining it
        // drops the listener, so the port refuses connections once this returns.
        let _ = TcpStream::connect_timeout(&self.local_addr(), Duration::from_secs(1));
        let _ = acceptor.join();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The loopback address for a wildcard one, so the server can be reached on this machine.
fn local_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
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
    let listener = TcpListener::bind(addr).map_err(|e| EnvError::Transport {
        method: "LISTEN",
        url: addr.to_owned(),
        reason: e.to_string(),
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| EnvError::Internal(format!("cannot read the address of {addr}: {e}")))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let (jobs, queue) = mpsc::channel();
    let queue = Arc::new(Mutex::new(queue));
    let service = Arc::new(Service {
        env,
        episodes: Mutex::new(HashMap::new()),
    });
    let mut workers = Vec::new();
    for index in 0..options.workers.max(1) {
        let (queue, service, flag) = (
            Arc::clone(&queue),
            Arc::clone(&service),
            Arc::clone(&stopping),
        );
        let write_timeout = options.read_timeout;
        let worker = thread::Builder::new()
            .name(format!("rung-env-http-{index}"))
            .spawn(move || worker_loop(&queue, &*service, &flag, write_timeout))
            .map_err(|e| EnvError::Internal(format!("cannot start server worker thread: {e}")));
        match worker {
            Ok(worker) => workers.push(worker),
            Err(err) => {
                stopping.store(true, Ordering::SeqCst);
                return Err(err);
            }
        }
    }
    let acceptor = {
        let stopping = Arc::clone(&stopping);
        thread::Builder::new()
            .name("rung-env-accept".into())
            .spawn(move || accept_loop(&listener, &jobs, &stopping, &options))
            .map_err(|e| EnvError::Internal(format!("cannot start the accept thread: {e}")))
    };
    let acceptor = match acceptor {
        Ok(acceptor) => acceptor,
        Err(err) => {
            stopping.store(true, Ordering::SeqCst);
            return Err(err);
        }
    };
    Ok(ServerHandle {
        acceptor: Some(acceptor),
        workers,
        stopping,
        addr: bound,
    })
}

/// A complete request on its way to a worker, with the connection to answer on.
struct Job {
    stream: TcpStream,
    request: wire::Request,
    _slot: Slot,
}

/// One of the server's `max_connections`, given back when the connection is closed.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections and gives each a thread that reads its request, so that a slow client
/// holds up only that thread; complete requests go to the workers.
fn accept_loop(
    listener: &TcpListener,
    jobs: &Sender<Job>,
    stopping: &AtomicBool,
    options: &ServerOptions,
) {
    let open = Arc::new(AtomicUsize::new(0));
    let limits = wire::Limits {
        max_body_bytes: options.max_body_bytes,
        read_timeout: options.read_timeout,
    };
    let write_timeout = options.read_timeout;
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // A failed accept (out of descriptors, a reset before accept): pause briefly so that
            // a persistent failure cannot spin a core.
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        if open.fetch_add(1, Ordering::SeqCst) >= options.max_connections {
            open.fetch_sub(1, Ordering::SeqCst);
            let busy = Reply::detail(
                503,
                format!(
                    "the server has {} connections open (its max_connections); retry shortly",
                    options.max_connections
                ),
            );
            wire::answer(stream, &busy, Duration::from_millis(200));
            continue;
        }
        let slot = Slot(Arc::clone(&open));
        let jobs = jobs.clone();
        let spawned = thread::Builder::new()
            .name("rung-env-conn".into())
            .spawn(move || {
                let mut stream = stream;
                match wire::read_request(&mut stream, &limits) {
                    Ok(request) => {
                        // Fails only when the server is stopping: the connection just closes.
                        let _ = jobs.send(Job {
                            stream,
                            request,
                            _slot: slot,
                        });
                    }
                    Err(wire::Refusal::Answer(reply)) => {
                        wire::refuse(stream, &reply, write_timeout);
                    }
                    Err(wire::Refusal::Gone) => {}
                }
            });
        if spawned.is_err() {
            // Out of threads: the connection (moved into the failed closure) is closed unanswered,
            // and its slot given back; the client sees a closed connection and may retry.
            thread::sleep(Duration::from_millis(5));
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent: every update is a single insert or remove.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn worker_loop<E: Environment>(
    queue: &Mutex<Receiver<Job>>,
    service: &Service<E>,
    stopping: &AtomicBool,
    write_timeout: Duration,
) {
    loop {
        let next = lock(queue).recv_timeout(WORKER_POLL);
        match next {
            Ok(job) => {
                let reply = guarded(
                    || service.handle(&job.request.method, &job.request.path, &job.request.body),
                    &job.request.method,
                    &job.request.path,
                );
                wire::answer(job.stream, &reply, write_timeout);
            }
            Err(RecvTimeoutError::Timeout) if !stopping.load(Ordering::SeqCst) => {}
            Err(_) => return,
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

/// Runs the handler so that a panicking environment costs one 500, not a worker thread.
fn guarded(run: impl FnOnce() -> Reply, method: &str, path: &str) -> Reply {
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

    fn method(&self) -> &'static str {
        match self {
            Route::Root | Route::Task(_) | Route::ApiDocs => "GET",
            _ => "POST",
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

/// Where an episode of a task stands, as far as this server has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EpisodeState {
    /// An `initialize` of it is being handled.
    Starting,
    /// Initialized and not yet closed.
    Running,
}

/// The environment with the bookkeeping that keeps clients of one task apart.
///
/// AppWorld's `/initialize` silently replaces a running episode (REFERENCE §2), so two clients
/// that start the same task share one world and corrupt each other's results without a sign.
/// This server refuses the second `initialize` with HTTP 409 instead, naming the fix (close the
/// episode first, or give parallel episodes of one task servers of their own).
struct Service<E> {
    env: Arc<E>,
    episodes: Mutex<HashMap<TaskId, EpisodeState>>,
}

impl<E: Environment> Service<E> {
    fn handle(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        let Some(route) = Route::parse(path) else {
            return Reply::detail(404, "Not Found");
        };
        if method != route.method() {
            return Reply {
                allow: Some(route.method()),
                ..Reply::detail(405, "Method Not Allowed")
            };
        }
        self.dispatch(&route, body).unwrap_or_else(|reply| reply)
    }

    /// Parses the request, calls the environment and wraps its answer; `Err` carries error
    /// replies.
    fn dispatch(&self, route: &Route, body: &[u8]) -> Result<Reply, Reply> {
        let env = &*self.env;
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
                self.claim(&request.task_id)?;
                let result = env.initialize(&request.task_id, &options);
                self.settle(&request.task_id, result.is_ok());
                output(result)
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
                let result = env.close(&request.task_id);
                if matches!(result, Ok(()) | Err(EnvError::NoEpisode(_))) {
                    let mut episodes = lock(&self.episodes);
                    if episodes.get(&request.task_id) == Some(&EpisodeState::Running) {
                        episodes.remove(&request.task_id);
                    }
                }
                output(result)
            }
            Route::Task(id) => {
                let task_id: TaskId = id.parse().map_err(|e| Reply::detail(422, format!("{e}")))?;
                output(env.task_info(&task_id))
            }
            Route::ApiDocs => output(env.api_docs()),
        }
    }

    /// Marks `task_id` as starting, or refuses with 409 if another client's episode of it is
    /// starting or running. A running episode the environment no longer has (it ended without a
    /// `/close` reaching this server) does not count.
    fn claim(&self, task_id: &TaskId) -> Result<(), Reply> {
        let starting = || {
            Reply::detail(
                409,
                format!(
                    "another client is initializing task `{task_id}` on this server right now; \
                     run parallel episodes of one task on separate servers"
                ),
            )
        };
        // The probe of the environment runs without the lock: it may wait for a running cell.
        let seen = lock(&self.episodes).get(task_id).copied();
        match seen {
            Some(EpisodeState::Starting) => return Err(starting()),
            Some(EpisodeState::Running)
                if !matches!(
                    self.env.task_completed(task_id),
                    Err(EnvError::NoEpisode(_))
                ) =>
            {
                return Err(Reply::detail(
                    409,
                    format!(
                        "task `{task_id}` already has a running episode on this server (another \
                         client started it, or it was never closed); close it first with POST \
                         /close {{\"task_id\": \"{task_id}\"}}, or run parallel episodes of one \
                         task on separate servers"
                    ),
                ));
            }
            _ => {}
        }
        let mut episodes = lock(&self.episodes);
        if episodes.get(task_id).copied() != seen {
            // Another initialize got in between the look and now.
            return Err(starting());
        }
        episodes.insert(task_id.clone(), EpisodeState::Starting);
        Ok(())
    }

    /// Records how an `initialize` that [`Service::claim`] let through ended.
    fn settle(&self, task_id: &TaskId, started: bool) {
        let mut episodes = lock(&self.episodes);
        if started {
            episodes.insert(task_id.clone(), EpisodeState::Running);
        } else {
            episodes.remove(task_id);
        }
    }
}

fn parse_body<T: DeserializeOwned>(route: &Route, body: &[u8]) -> Result<T, Reply> {
    let shape = route.expected_body();
    if body.is_empty() {
        return Err(Reply::detail(
            422,
            format!("the request has no body; send JSON of the shape {shape}"),
        ));
    }
    if let Err(e) = std::str::from_utf8(body) {
        return Err(Reply::detail(
            422,
            format!(
                "the request body is not UTF-8 (invalid byte at offset {}); send JSON of the \
                 shape {shape}, encoded as UTF-8",
                e.valid_up_to()
            ),
        ));
    }
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
        assert_eq!(Route::Task("x".into()).method(), "GET");
        assert_eq!(Route::Close.method(), "POST");
    }

    #[test]
    fn guarded_turns_a_panic_into_500() {
        let reply = guarded(|| panic!("kaboom"), "POST", "/execute");
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
