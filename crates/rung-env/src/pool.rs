//! One environment-server process per parallel episode.
//!
//! An AppWorld server holds one world, and `/initialize` replaces it (REFERENCE §2), so episodes
//! that run at the same time need a process each, on distinct ports and with distinct experiment
//! names. [`ServerPool`] starts those processes, waits until they answer, restarts one that died,
//! and makes sure none outlives the pool.
//!
//! Dropping the pool stops its servers, but a process that is killed (SIGKILL, an OOM kill, a
//! panic with `panic = "abort"`) runs no destructor. So every server gets a watchdog: a tiny
//! `sh` in the server's process group that blocks reading a pipe whose other end only the pool
//! holds. When the pool's process dies, for whatever reason, the kernel closes that end, the
//! read returns, and the watchdog kills its whole process group: the server, anything the
//! server started, and itself.
//!
//! [`ServerPool::environments`] hands out one [`Environment`] per server that restarts its
//! server when it is found dead at the start of an episode.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::protocol::{ApiDocs, Evaluation, TaskInfo};
use crate::{AppWorldClient, ClientOptions, EnvError, Environment, EpisodeOptions, TaskId};

/// How long a server may take to exit after SIGTERM before it is killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the rest of a killed process group to exit.
const GROUP_EXIT_WAIT: Duration = Duration::from_secs(2);

/// Pause between two readiness probes of a starting server.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// Lines of a server's log quoted in an error.
const LOG_TAIL_LINES: usize = 20;

/// Bytes of a server's log quoted in an error, at most.
const LOG_TAIL_BYTES: usize = 4000;

/// What to start and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Program and arguments. In each, `{port}` becomes the server's port, `{experiment}` its
    /// experiment name and `{index}` its position in the pool, so one template serves every
    /// process (the default starts real AppWorld).
    pub command: Vec<String>,
    /// Number of servers, i.e. of episodes that can run at once.
    pub size: usize,
    /// How long a server may take to answer `GET /` (AppWorld imports for several seconds).
    pub startup_timeout: Duration,
    /// Experiment names are `{experiment_prefix}-{index}`, keeping the outputs of parallel
    /// episodes apart.
    pub experiment_prefix: String,
    /// Extra environment variables of every server (e.g. `APPWORLD_ROOT`).
    pub env: Vec<(String, String)>,
    /// Options of the pool's clients.
    pub client: ClientOptions,
    /// Where each server's stdout and stderr go (`server-{index}-port-{port}.log`); `None` makes a
    /// temporary folder that is removed with the pool.
    pub log_dir: Option<PathBuf>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            command: ["appworld", "serve", "environment", "--port", "{port}"]
                .map(String::from)
                .to_vec(),
            size: 1,
            startup_timeout: Duration::from_secs(60),
            experiment_prefix: "rung".to_owned(),
            env: Vec::new(),
            client: ClientOptions::default(),
            log_dir: None,
        }
    }
}

/// Running environment-server processes and a client of each.
///
/// Dropping the pool stops every process (SIGTERM to its process group, SIGKILL after a grace
/// period) and waits for it, so no server is left behind, nor any process a wrapper script
/// started.
#[derive(Debug)]
pub struct ServerPool {
    // Declared before `log_dir` so processes stop before their log folder is removed.
    servers: Vec<ServerProcess>,
    clients: Vec<AppWorldClient>,
    experiments: Vec<String>,
    options: PoolOptions,
    log_dir: LogDir,
}

impl ServerPool {
    /// Starts `options.size` servers and waits until each answers `GET /`. If any fails, the
    /// ones already started are stopped and the error names the command, port and cause.
    pub fn start(options: PoolOptions) -> Result<Self, EnvError> {
        if options.size == 0 {
            return Err(EnvError::Pool(
                "a pool needs at least one server (size is 0)".into(),
            ));
        }
        if options.command.is_empty() {
            return Err(EnvError::Pool("the server command is empty".into()));
        }
        let mut log_dir = LogDir::create(options.log_dir.as_deref())?;
        let (servers, experiments) = match launch_all(&options, log_dir.path()) {
            Ok(launched) => launched,
            Err(err) => {
                log_dir.keep();
                return Err(err);
            }
        };
        let clients = servers.iter().map(|s| s.client(&options.client)).collect();
        Ok(Self {
            servers,
            clients,
            experiments,
            options,
            log_dir,
        })
    }

    /// One client per server, in pool order.
    pub fn clients(&self) -> &[AppWorldClient] {
        &self.clients
    }

    /// The experiment name of each server, in pool order; pass it with the episodes it runs.
    pub fn experiments(&self) -> &[String] {
        &self.experiments
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether the pool has no server (never true for a started pool).
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Base URLs of the servers, in pool order.
    pub fn urls(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|c| c.base_url().to_owned())
            .collect()
    }

    /// The process id of server `index` (the leader of its process group).
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.servers.get(index).map(|s| s.pid)
    }

    /// The log file of server `index`.
    pub fn log_path(&self, index: usize) -> Option<&Path> {
        self.servers.get(index).map(|s| s.log_path.as_path())
    }

    /// Whether server `index` is still running (it may still be unresponsive).
    pub fn is_alive(&self, index: usize) -> bool {
        self.servers
            .get(index)
            .is_some_and(ServerProcess::is_running)
    }

    /// Stops server `index` and starts it again on a fresh port, for a server that died or hangs.
    /// Its client is replaced, so fetch clients again afterwards.
    pub fn restart(&mut self, index: usize) -> Result<(), EnvError> {
        let len = self.servers.len();
        let old = self.servers.get(index).ok_or_else(|| {
            EnvError::Pool(format!("no server {index} to restart: the pool has {len}"))
        })?;
        old.kill();
        let port = free_ports(1)?
            .into_iter()
            .next()
            .ok_or_else(|| EnvError::Pool("the operating system gave no free port".into()))?;
        let experiment = &self.experiments[index];
        let server =
            ServerProcess::spawn(&self.options, index, port, experiment, self.log_dir.path())?;
        server.wait_ready(Instant::now() + self.options.startup_timeout)?;
        self.clients[index] = server.client(&self.options.client);
        self.servers[index] = server;
        Ok(())
    }
}

impl ServerPool {
    /// Hands the pool over to one [`PoolMember`] per server, in pool order: an [`Environment`]
    /// that restarts its server when it finds it dead (or hung) at the start of an episode. The
    /// servers stop when the last member is dropped.
    pub fn into_members(self) -> Vec<PoolMember> {
        let clients = self.clients.clone();
        let pool = Arc::new(Mutex::new(self));
        clients
            .into_iter()
            .enumerate()
            .map(|(index, client)| PoolMember {
                pool: Arc::clone(&pool),
                index,
                client: Mutex::new(client),
            })
            .collect()
    }
}

/// One server of a pool as an [`Environment`], for one worker thread.
///
/// An episode that finds its server gone — `initialize` fails because nothing answers, the
/// connection breaks or the call times out, and the process has exited or no longer answers
/// `GET /` — gets the server restarted (on a fresh port) and `initialize` sent once more. A
/// server that dies in the middle of an episode takes the episode's world with it, so the
/// other calls only report the error; the next episode restarts the server.
#[derive(Debug)]
pub struct PoolMember {
    pool: Arc<Mutex<ServerPool>>,
    index: usize,
    client: Mutex<AppWorldClient>,
}

impl PoolMember {
    /// The member's position in the pool.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The shared pool, e.g. to read a server's pid or log path.
    pub fn pool(&self) -> &Arc<Mutex<ServerPool>> {
        &self.pool
    }

    /// The client of the member's server as it is now (a restart replaces it).
    pub fn client(&self) -> AppWorldClient {
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Restarts the member's server if it has exited or no longer answers `GET /`; returns
    /// whether it did.
    pub fn revive(&self) -> Result<bool, EnvError> {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let reason = if !pool.is_alive(self.index) {
            "it had exited"
        } else {
            let probe = AppWorldClient::with_options(
                pool.clients[self.index].base_url(),
                ClientOptions {
                    timeout: Duration::from_secs(5),
                    connect_timeout: Duration::from_secs(2),
                    retries: 0,
                    retry_backoff: Duration::ZERO,
                },
            );
            match probe.ping() {
                Ok(()) | Err(EnvError::Http { .. }) => return Ok(false),
                Err(_) => "it no longer answered GET /",
            }
        };
        pool.restart(self.index)?;
        let client = pool.clients[self.index].clone();
        eprintln!(
            "rung-env: server {} was restarted ({reason}); it now listens at {}",
            self.index,
            client.base_url()
        );
        *self.client.lock().unwrap_or_else(PoisonError::into_inner) = client;
        Ok(true)
    }
}

impl Environment for PoolMember {
    fn initialize(&self, task_id: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        match self.client().initialize(task_id, options) {
            Err(err) if err.may_be_transient() => {
                if self.revive()? {
                    self.client().initialize(task_id, options)
                } else {
                    Err(err)
                }
            }
            other => other,
        }
    }

    fn execute(&self, task_id: &TaskId, code: &str) -> Result<String, EnvError> {
        self.client().execute(task_id, code)
    }

    fn task_completed(&self, task_id: &TaskId) -> Result<bool, EnvError> {
        self.client().task_completed(task_id)
    }

    fn evaluate(&self, task_id: &TaskId) -> Result<Evaluation, EnvError> {
        self.client().evaluate(task_id)
    }

    fn close(&self, task_id: &TaskId) -> Result<(), EnvError> {
        self.client().close(task_id)
    }

    fn task_info(&self, task_id: &TaskId) -> Result<TaskInfo, EnvError> {
        self.client().task_info(task_id)
    }

    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        self.client().api_docs()
    }
}

impl Drop for ServerPool {
    fn drop(&mut self) {
        // Signal all first, then wait, so that the grace periods overlap.
        for server in &self.servers {
            server.terminate();
        }
        let deadline = Instant::now() + TERMINATE_GRACE;
        for server in &self.servers {
            server.finish(deadline);
        }
    }
}

/// Spawns every server, then waits for all of them against one deadline, so that their slow
/// startups overlap. Servers already spawned are stopped (dropped) when one fails.
fn launch_all(
    options: &PoolOptions,
    log_dir: &Path,
) -> Result<(Vec<ServerProcess>, Vec<String>), EnvError> {
    let ports = free_ports(options.size)?;
    let experiments: Vec<String> = (0..options.size)
        .map(|i| experiment_name(&options.experiment_prefix, i))
        .collect();
    let deadline = Instant::now() + options.startup_timeout;
    let mut servers = Vec::with_capacity(options.size);
    for (index, (&port, experiment)) in ports.iter().zip(&experiments).enumerate() {
        servers.push(ServerProcess::spawn(
            options, index, port, experiment, log_dir,
        )?);
    }
    for server in &servers {
        server.wait_ready(deadline)?;
    }
    Ok((servers, experiments))
}

fn experiment_name(prefix: &str, index: usize) -> String {
    if prefix.is_empty() {
        format!("server-{index}")
    } else {
        format!("{prefix}-{index}")
    }
}

/// Replaces the placeholders of one command argument.
fn substitute(arg: &str, port: u16, experiment: &str, index: usize) -> String {
    arg.replace("{port}", &port.to_string())
        .replace("{experiment}", experiment)
        .replace("{index}", &index.to_string())
}

/// Ports free right now. All listeners are held until every port is chosen, so the ports are
/// distinct; a process could still take one before the server binds it, in which case that
/// server fails to start and says so in its log.
fn free_ports(count: usize) -> Result<Vec<u16>, EnvError> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EnvError::Pool(format!("cannot find a free port on 127.0.0.1: {e}")))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| EnvError::Pool(format!("cannot read the port of a listener: {e}")))
}

/// The folder of the servers' logs; a temporary one is removed on drop unless kept.
#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    owned: bool,
}

impl LogDir {
    fn create(given: Option<&Path>) -> Result<Self, EnvError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let owned = given.is_none();
        let path = given.map(Path::to_path_buf).unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            std::env::temp_dir().join(format!("rung-pool-{}-{n}-{nanos}", std::process::id()))
        });
        fs::create_dir_all(&path).map_err(|e| {
            EnvError::Pool(format!(
                "cannot create the log folder {}: {e}",
                path.display()
            ))
        })?;
        Ok(Self { path, owned })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps a temporary folder, so that an error message's log path stays valid.
    fn keep(&mut self) {
        self.owned = false;
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if self.owned {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// One server process, stopped (with its process group) when dropped.
#[derive(Debug)]
struct ServerProcess {
    state: Mutex<ProcState>,
    pid: u32,
    port: u16,
    log_path: PathBuf,
    /// `server N (`command`, port P)`, for error messages.
    description: String,
}

#[derive(Debug)]
struct ProcState {
    child: Child,
    /// The watchdog (see the module docs); `None` without process groups. Holding it holds the
    /// write end of its pipe.
    watchdog: Option<Child>,
    exit: Option<ExitStatus>,
    /// Set once the process is reaped and its group killed; nothing is signalled afterwards, since
    /// the pid may be reused.
    finished: bool,
}

impl ServerProcess {
    fn spawn(
        options: &PoolOptions,
        index: usize,
        port: u16,
        experiment: &str,
        log_dir: &Path,
    ) -> Result<Self, EnvError> {
        let args: Vec<String> = options
            .command
            .iter()
            .map(|a| substitute(a, port, experiment, index))
            .collect();
        let description = format!("server {index} (`{}`, port {port})", args.join(" "));
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| EnvError::Pool("the server command is empty".into()))?;
        let log_path = log_dir.join(format!("server-{index}-port-{port}.log"));
        let (stdout, stderr) = open_log(&log_path)
            .map_err(|e| EnvError::Pool(format!("{description}: cannot create its log: {e}")))?;
        let mut command = Command::new(program);
        command.args(rest).envs(options.env.iter().cloned());
        command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .spawn()
            .map_err(|e| EnvError::Pool(format!("{description} could not be started: {e}")))?;
        let pid = child.id();
        let watchdog = match spawn_watchdog(pid) {
            Ok(watchdog) => watchdog,
            Err(e) => {
                kill_group(pid);
                let _ = child.kill();
                let _ = child.wait();
                return Err(EnvError::Pool(format!(
                    "{description}: its watchdog (`sh`, which stops the server if this process \
                     dies) could not be started: {e}"
                )));
            }
        };
        let state = Mutex::new(ProcState {
            child,
            watchdog,
            exit: None,
            finished: false,
        });
        Ok(Self {
            state,
            pid,
            port,
            log_path,
            description,
        })
    }

    fn client(&self, options: &ClientOptions) -> AppWorldClient {
        AppWorldClient::with_options(format!("http://127.0.0.1:{}", self.port), options.clone())
    }

    fn lock(&self) -> MutexGuard<'_, ProcState> {
        // A panic while holding the lock leaves the state usable: it is only a child handle.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Polls until the server answers `GET /` (any HTTP status counts: it is listening), exits,
    /// or `deadline` passes; in the last two cases it is stopped and the error quotes its log.
    fn wait_ready(&self, deadline: Instant) -> Result<(), EnvError> {
        let probe_options = ClientOptions {
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            retries: 0,
            retry_backoff: Duration::ZERO,
        };
        let probe = self.client(&probe_options);
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.failure(&format!("exited with {status} before answering GET /")));
            }
            if matches!(probe.ping(), Ok(()) | Err(EnvError::Http { .. })) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(
                    self.failure("did not answer GET / in time (startup_timeout) and was stopped")
                );
            }
            thread::sleep(PROBE_INTERVAL);
        }
    }

    fn failure(&self, what: &str) -> EnvError {
        EnvError::Pool(format!(
            "{} {what}{}",
            self.description,
            log_tail(&self.log_path)
        ))
    }

    fn is_running(&self) -> bool {
        self.exit_status().is_none() && !self.lock().finished
    }

    /// The exit status if the process has exited; reaping it also kills what is left of its group.
    fn exit_status(&self) -> Option<ExitStatus> {
        let mut state = self.lock();
        self.poll(&mut state)
    }

    fn poll(&self, state: &mut ProcState) -> Option<ExitStatus> {
        if state.exit.is_none()
            && !state.finished
            && let Ok(Some(status)) = state.child.try_wait()
        {
            state.exit = Some(status);
            // The pid stays reserved while group members live, so this reaches only them.
            kill_group(self.pid);
            reap_watchdog(state);
            state.finished = true;
        }
        state.exit
    }

    /// Asks the process group to stop (SIGTERM); [`ServerProcess::finish`] completes the stop.
    fn terminate(&self) {
        let mut state = self.lock();
        if self.poll(&mut state).is_none() && !state.finished {
            let _ = signal_group(self.pid, "TERM");
        }
    }

    /// Waits until `deadline` for the process to exit, then kills its group and reaps it.
    fn finish(&self, deadline: Instant) {
        let mut state = self.lock();
        while self.poll(&mut state).is_none() && !state.finished && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if state.finished {
            return;
        }
        kill_group(self.pid);
        let _ = state.child.kill();
        if let Ok(status) = state.child.wait() {
            state.exit = Some(status);
        }
        reap_watchdog(&mut state);
        state.finished = true;
    }

    /// Stops the process now: SIGTERM, a grace period, then SIGKILL.
    fn kill(&self) {
        self.terminate();
        self.finish(Instant::now() + TERMINATE_GRACE);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the watchdog of the server whose process group is `pgid`: `sh` blocked reading a pipe
/// that only this process writes to, which kills its group (the server and itself) once the read
/// ends, i.e. once this process is gone and the kernel closed the pipe.
#[cfg(unix)]
fn spawn_watchdog(pgid: u32) -> std::io::Result<Option<Child>> {
    let group = i32::try_from(pgid).map_err(std::io::Error::other)?;
    let mut command = Command::new("sh");
    command
        .args(["-c", "read -r _ignored; kill -s KILL 0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, group);
    command.spawn().map(Some)
}

/// Without process groups there is no watchdog; a killed pool may leave its servers behind.
#[cfg(not(unix))]
fn spawn_watchdog(_pgid: u32) -> std::io::Result<Option<Child>> {
    Ok(None)
}

/// Reaps a server's watchdog once its group was killed (it is a member, so it is dead or dying).
fn reap_watchdog(state: &mut ProcState) {
    if let Some(mut watchdog) = state.watchdog.take() {
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
}

fn open_log(path: &Path) -> std::io::Result<(File, File)> {
    let file = File::create(path)?;
    let copy = file.try_clone()?;
    Ok((file, copy))
}

/// Kills what is left of the process group `pgid` and waits (briefly) until none of it runs, so
/// that a stopped server has released its port when the caller goes on.
fn kill_group(pgid: u32) {
    signal_group(pgid, "KILL");
    let deadline = Instant::now() + GROUP_EXIT_WAIT;
    while group_is_running(pgid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` to the process group `pgid` with the `kill` utility, which needs no unsafe
/// code; returns whether it was delivered (signal `0` only checks that the group exists).
#[cfg(unix)]
fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Without process groups only the child itself is killed (by `Child::kill` in `finish`).
#[cfg(not(unix))]
fn signal_group(_pgid: u32, _signal: &str) -> bool {
    false
}

/// Whether a member of the group still runs. Zombies do not count: they hold no port, and they
/// may wait long for a slow init to reap them. Without `/proc`, any member counts.
fn group_is_running(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return signal_group(pgid, "0");
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        is_pid
            && fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|stat| parse_stat(&stat))
                .is_some_and(|(state, group)| group == pgid && !matches!(state, 'Z' | 'X'))
    })
}

/// State and process group from `/proc/<pid>/stat` (`pid (comm) state ppid pgrp ...`); the
/// command name may contain spaces and parentheses, so fields are read after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, group))
}

/// The last lines of a log, formatted to follow an error message.
fn log_tail(path: &Path) -> String {
    let text = match fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!(" (its log {} cannot be read: {e})", path.display()),
    };
    let text = text.trim_end();
    if text.is_empty() {
        return format!(" (its log {} is empty)", path.display());
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    if tail.len() > LOG_TAIL_BYTES {
        let mut start = tail.len() - LOG_TAIL_BYTES;
        while !tail.is_char_boundary(start) {
            start += 1;
        }
        tail = format!("…{}", &tail[start..]);
    }
    format!("; last lines of its log {}:\n{tail}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_substituted() {
        assert_eq!(
            substitute("--port={port}", 8123, "rung-2", 2),
            "--port=8123"
        );
        assert_eq!(
            substitute("{experiment}/{index}:{port}", 9, "e", 4),
            "e/4:9"
        );
        assert_eq!(experiment_name("run", 3), "run-3");
        assert_eq!(experiment_name("", 0), "server-0");
    }

    #[test]
    fn stat_lines_parse_despite_odd_names() {
        assert_eq!(parse_stat("42 (a) b (c)) S 1 42 42 0 -1"), Some(('S', 42)));
        assert_eq!(parse_stat("7 (sh) Z 1 9 9"), Some(('Z', 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(4).expect("ports");
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 4);
        assert!(ports.iter().all(|&p| p != 0));
    }

    #[test]
    fn log_tail_quotes_the_last_lines() {
        let dir = LogDir::create(None).expect("temp dir");
        let path = dir.path().join("x.log");
        let lines: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
        fs::write(&path, lines.join("\n")).expect("write");
        let tail = log_tail(&path);
        assert!(
            tail.contains("line 29") && tail.contains("line 10"),
            "{tail}"
        );
        assert!(!tail.contains("line 9\n"), "{tail}");
        fs::write(&path, "").expect("write");
        assert!(log_tail(&path).contains("is empty"));
        let kept = dir.path().to_path_buf();
        drop(dir);
        assert!(!kept.exists(), "a temporary log folder is removed");
    }

    #[test]
    fn invalid_options_are_refused() {
        let empty = PoolOptions {
            command: Vec::new(),
            ..Default::default()
        };
        let err = ServerPool::start(empty).expect_err("empty command");
        assert!(err.to_string().contains("command is empty"), "{err}");
        let none = PoolOptions {
            size: 0,
            ..Default::default()
        };
        assert!(
            ServerPool::start(none)
                .expect_err("size 0")
                .to_string()
                .contains("size is 0")
        );
    }
}
