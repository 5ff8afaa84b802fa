//! The sandbox side of process isolation ([`Isolation::Process`](super::Isolation)): one worker
//! process per episode, the world kept here.
//!
//! Each cell goes to the worker as a message; its API calls come back one by one and are answered
//! from the world, so the world never leaves this process and never holds more than the limits
//! let a cell send. Every exchange is recorded: when a worker dies (memory, time, a crash) a
//! fresh one replays the earlier cells against their recorded answers, which restores the
//! namespace exactly without touching the world again.

use std::io::{self, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::wire::{self, FromWorker, ToWorker, WORKER_ENV, WireApiError, WireLimits};
use super::{FAILED, Limits, worker};
use crate::world::World;

/// Time a worker gets to start and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Time past a cell's own limit (which the worker enforces between statements) before the worker
/// is killed: the bound for one long native operation.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Bytes of recorded exchanges kept for restoring a namespace; past it an episode whose worker
/// dies starts over with an empty namespace.
const MAX_HISTORY_BYTES: usize = 64 << 20;
/// Idle workers kept for the next episodes: starting a process costs about 10 ms, far more than
/// a typical cell, so a closed episode hands its worker, reset, to the next one.
const MAX_IDLE_WORKERS: usize = 32;
/// A worker holding more than this after its episode is not kept (its memory goes back to the OS).
const MAX_IDLE_RSS_BYTES: u64 = 64 << 20;

/// Reset workers waiting for an episode, with the limits they were started under.
static IDLE: Mutex<Vec<(Limits, Worker)>> = Mutex::new(Vec::new());

/// A line from the worker: its raw text (what replays compare) and its meaning.
type Event = io::Result<(String, FromWorker)>;

pub(super) struct ProcessSandbox {
    limits: Limits,
    worker: Option<Worker>,
    history: History,
}

/// Cells that completed in the current namespace, with their API exchanges.
#[derive(Default)]
struct History {
    cells: Vec<CellRecord>,
    bytes: usize,
    /// False once a record was dropped for size: the namespace can no longer be rebuilt.
    complete: bool,
}

struct CellRecord {
    code: String,
    /// Each call the cell made (the worker's raw line) and the answer it got (our raw line).
    calls: Vec<(String, String)>,
}

/// Why a worker is gone.
#[derive(Debug)]
enum Death {
    Memory,
    Timeout,
    /// A crash or a broken protocol, with what the worker said last.
    Crash(String),
}

impl ProcessSandbox {
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            worker: None,
            history: History::fresh(),
        }
    }

    pub(super) fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(|w| w.child.id())
    }

    pub(super) fn execute(&mut self, code: &str, world: &mut World) -> String {
        if self.worker.is_none() {
            match self.restart() {
                Ok(_) => {}
                Err(e) => {
                    return format!("{FAILED}\nInternalError: the sandbox could not start: {e}");
                }
            }
        }
        let worker = self.worker.as_mut().expect("started above");
        let mut calls = Vec::new();
        let deadline = Instant::now() + self.limits.max_time + KILL_GRACE;
        let outcome = worker.exchange(code, deadline, |raw, call| {
            let answer = answer_from(world, call);
            calls.push((raw.to_owned(), answer.clone()));
            answer
        });
        // Starlark noticed its heap over the limit between statements: the memory goes back to
        // the OS with the worker, as when the OS refuses an allocation.
        let heap_limit = format!("{FAILED}\n{}", super::memory_error(self.limits.max_heap));
        let outcome = match outcome {
            Ok(output) if output == heap_limit => Err(Death::Memory),
            other => other,
        };
        match outcome {
            Ok(output) => {
                self.history.record(CellRecord {
                    code: code.to_owned(),
                    calls,
                });
                output
            }
            Err(death) => {
                if let Some(worker) = self.worker.take() {
                    worker.stop();
                }
                let restored = self.restart();
                let what = match death {
                    Death::Memory => super::memory_error(self.limits.max_heap),
                    Death::Timeout => super::timeout_error(self.limits.max_time),
                    Death::Crash(last_words) => {
                        format!(
                            "InternalError: the interpreter crashed on this cell ({last_words})"
                        )
                    }
                };
                let namespace = match restored {
                    Ok(true) => " Variables from earlier cells are kept.",
                    Ok(false) => {
                        " The sandbox restarted with an empty namespace: define earlier variables again."
                    }
                    Err(_) => " The sandbox could not restart.",
                };
                format!("{FAILED}\n{what}.{namespace}")
            }
        }
    }

    /// Starts a fresh worker and replays the history into it. `Ok(false)` when the namespace
    /// could not be rebuilt (the worker then starts empty, and so does the history).
    fn restart(&mut self) -> io::Result<bool> {
        let mut worker = Worker::get(self.limits)?;
        if !self.history.complete {
            self.history = History::fresh();
            self.worker = Some(worker);
            return Ok(false);
        }
        for cell in &self.history.cells {
            let deadline = Instant::now() + self.limits.max_time + KILL_GRACE;
            let mut recorded = cell.calls.iter();
            let mut diverged = false;
            let replayed = worker.exchange(&cell.code, deadline, |raw, _| match recorded.next() {
                Some((call, answer)) if call == raw => answer.clone(),
                _ => {
                    diverged = true;
                    answer_line(Err(WireApiError {
                        status: 500,
                        message: "the namespace is being restored".into(),
                    }))
                }
            });
            if replayed.is_err() || diverged || recorded.next().is_some() {
                worker.stop();
                self.history = History::fresh();
                self.worker = Some(Worker::get(self.limits)?);
                return Ok(false);
            }
        }
        self.worker = Some(worker);
        Ok(true)
    }
}

impl Drop for ProcessSandbox {
    fn drop(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            if worker.reset() {
                let mut idle = IDLE
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if idle.len() < MAX_IDLE_WORKERS {
                    idle.push((self.limits, worker));
                    return;
                }
            }
            worker.stop();
        }
    }
}

impl History {
    fn fresh() -> Self {
        Self {
            complete: true,
            ..Self::default()
        }
    }

    fn record(&mut self, cell: CellRecord) {
        if !self.complete {
            return;
        }
        let size = cell.code.len()
            + cell
                .calls
                .iter()
                .map(|(c, a)| c.len() + a.len())
                .sum::<usize>();
        if self.bytes + size > MAX_HISTORY_BYTES {
            self.complete = false;
            self.cells.clear();
            return;
        }
        self.bytes += size;
        self.cells.push(cell);
    }
}

fn answer_from(world: &mut World, call: FromWorker) -> String {
    let FromWorker::Call {
        app,
        api,
        positional,
        named,
    } = call
    else {
        unreachable!("exchange passes calls only")
    };
    let result = world
        .call(&app, &api, positional, named)
        .map_err(|e| WireApiError {
            status: e.status,
            message: e.message,
        });
    answer_line(result)
}

fn answer_line(result: Result<serde_json::Value, WireApiError>) -> String {
    serde_json::to_string(&ToWorker::Answer { result }).expect("JSON values serialize")
}

/// A running worker process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    events: Receiver<Event>,
    reader: Option<JoinHandle<()>>,
}

impl Worker {
    /// An idle worker started under the same limits, or a new one.
    fn get(limits: Limits) -> io::Result<Self> {
        loop {
            let found = {
                let mut idle = IDLE
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let at = idle.iter().position(|(l, _)| *l == limits);
                at.map(|at| idle.swap_remove(at).1)
            };
            match found {
                Some(mut worker) => {
                    if matches!(worker.child.try_wait(), Ok(None)) {
                        return Ok(worker);
                    }
                    worker.stop();
                }
                None => return Self::spawn(limits),
            }
        }
    }

    /// Empties the worker's namespace for another episode; false if it is not fit for one.
    fn reset(&mut self) -> bool {
        if wire::send(&mut self.stdin, &ToWorker::Reset).is_err() {
            return false;
        }
        let ready = matches!(
            self.events.recv_timeout(Duration::from_secs(2)),
            Ok(Ok((_, FromWorker::Ready)))
        );
        ready
            && super::procfs::status_bytes(&self.child.id().to_string(), "VmRSS")
                .is_some_and(|rss| rss <= MAX_IDLE_RSS_BYTES)
    }

    fn spawn(limits: Limits) -> io::Result<Self> {
        // The constructor that turns the child into a worker must be linked in.
        std::hint::black_box(&worker::WORKER_ENTRY);
        let config = serde_json::to_string(&WireLimits::from(limits)).map_err(io::Error::other)?;
        // The running executable, even if its file was replaced or deleted since it started.
        let mut child = Command::new("/proc/self/exe")
            .env(WORKER_ENV, config)
            // Short last words: a failed allocation's message without a backtrace after it.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let max_line = 6 * limits.max_output.max(limits.max_api_argument_bytes) + (1 << 20);
        let (sender, events) = mpsc::channel();
        let reader = std::thread::Builder::new()
            .name("rung-sandbox-pipe".into())
            .spawn(move || {
                let mut input = BufReader::new(stdout);
                loop {
                    let event = match wire::read_line(&mut input, max_line) {
                        Ok(Some(line)) => match serde_json::from_str::<FromWorker>(&line) {
                            Ok(message) => Ok((line, message)),
                            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                        },
                        Ok(None) => return,
                        Err(e) => Err(e),
                    };
                    let failed = event.is_err();
                    if sender.send(event).is_err() || failed {
                        return;
                    }
                }
            })?;
        let mut worker = Self {
            child,
            stdin,
            events,
            reader: Some(reader),
        };
        match worker.events.recv_timeout(START_TIMEOUT) {
            Ok(Ok((_, FromWorker::Ready))) => Ok(worker),
            other => {
                let said = match other {
                    Ok(Ok((line, _))) => format!("it said {line:?} instead of being ready"),
                    Ok(Err(e)) => e.to_string(),
                    Err(RecvTimeoutError::Timeout) => {
                        format!("no answer in {} s", START_TIMEOUT.as_secs())
                    }
                    Err(RecvTimeoutError::Disconnected) => "it exited".into(),
                };
                let last_words = worker.kill_and_read();
                Err(io::Error::other(format!(
                    "the sandbox worker did not start: {said}; {last_words}"
                )))
            }
        }
    }

    /// Runs a cell to its output, answering each API call with `answer` (which gets the call's
    /// raw line and returns the answer's line).
    fn exchange(
        &mut self,
        code: &str,
        deadline: Instant,
        mut answer: impl FnMut(&str, FromWorker) -> String,
    ) -> Result<String, Death> {
        let cell = ToWorker::Cell {
            code: code.to_owned(),
        };
        if wire::send(&mut self.stdin, &cell).is_err() {
            return Err(self.death(None));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Ok((raw, call @ FromWorker::Call { .. }))) => {
                    let mut line = answer(&raw, call);
                    line.push('\n');
                    if io::Write::write_all(&mut self.stdin, line.as_bytes()).is_err() {
                        return Err(self.death(None));
                    }
                }
                Ok(Ok((_, FromWorker::Output { text }))) => return Ok(text),
                Ok(Ok((raw, FromWorker::Ready))) => {
                    return Err(self.death(Some(format!("unexpected message {raw:?}"))));
                }
                Ok(Err(e)) => return Err(self.death(Some(e.to_string()))),
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    return Err(Death::Timeout);
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.death(None)),
            }
        }
    }

    /// Why the worker stopped answering (`protocol` when it broke the protocol while alive).
    fn death(&mut self, protocol: Option<String>) -> Death {
        if let Some(problem) = protocol {
            let _ = self.child.kill();
            return Death::Crash(format!("the worker broke the protocol: {problem}"));
        }
        let status = self.child.wait();
        let said = self.read_stderr();
        match status {
            Ok(status) => classify(status, &said),
            Err(e) => Death::Crash(format!("cannot wait for the worker: {e}")),
        }
    }

    fn kill_and_read(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let said = self.read_stderr();
        if said.is_empty() {
            "it wrote nothing on stderr".into()
        } else {
            format!("its stderr: {said}")
        }
    }

    /// The end of what the (dead) worker wrote on stderr.
    fn read_stderr(&mut self) -> String {
        let mut said = Vec::new();
        if let Some(stderr) = self.child.stderr.as_mut() {
            let _ = stderr.take(64 << 10).read_to_end(&mut said);
        }
        String::from_utf8_lossy(&said).trim().to_owned()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn classify(status: ExitStatus, said: &str) -> Death {
    let out_of_memory = status.code() == Some(worker::MEMORY_EXIT)
        || (status.signal() == Some(libc::SIGABRT) && said.contains("memory allocation of"))
        // The kernel's OOM killer: memory by the only account that matters.
        || status.signal() == Some(libc::SIGKILL);
    if out_of_memory {
        return Death::Memory;
    }
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(signal)) => format!("signal {signal}"),
        _ => "unknown status".into(),
    };
    let said = said
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    Death::Crash(if said.is_empty() {
        how
    } else {
        format!("{how}: {said}")
    })
}
