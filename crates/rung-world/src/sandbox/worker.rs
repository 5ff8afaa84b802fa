//! The worker side of process isolation: a process that runs one episode's cells.
//!
//! A worker is the running executable itself, started again with [`WORKER_ENV`] set, so every
//! program that links rung (the `rung` binary, tests, benchmarks, a researcher's own tool) can
//! isolate its sandboxes without a helper binary to install and find. The switch happens before
//! `main`, from an ELF constructor (`.init_array`), as Python's `multiprocessing` re-executes the
//! interpreter: the worker never reaches the host program's `main`.
//!
//! Limits are applied by the OS: the address space is capped at the worker's size at start plus
//! `max_heap` (`RLIMIT_AS`), so every allocation path fails at the cap, however large one
//! allocation is. A failed allocation ends the worker with [`MEMORY_EXIT`] (Starlark's arena
//! panics) or an abort after Rust's `memory allocation of N bytes failed`, which the sandbox tells
//! apart from a crash.

use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::io::{self, BufReader, StdinLock, StdoutLock, Write};

use serde_json::Value as Json;
use starlark::environment::Module;

use super::Limits;
use super::interp::{ApiGateway, run_cell};
use super::wire::{self, FromWorker, ToWorker, WORKER_ENV, WireApiError, WireLimits};
use crate::apps::{ApiError, ApiResult};

/// Exit status of a worker that ran out of memory.
pub(super) const MEMORY_EXIT: i32 = 86;
/// Exit status of a worker whose interpreter panicked for another reason (a bug).
pub(super) const CRASH_EXIT: i32 = 87;
/// Exit status of a worker that could not start (bad configuration).
pub(super) const START_EXIT: i32 = 88;
/// Address space allowed above `max_heap` and the size at start: the interpreter's own tables
/// and buffers, so that `max_heap` is what agent code can use.
const SLACK_BYTES: u64 = 128 << 20;

/// Runs before `main` in every process; turns the process into a worker when asked to.
extern "C" fn worker_entry() {
    if let Some(config) = std::env::var_os(WORKER_ENV) {
        std::process::exit(serve(config));
    }
}

/// The constructor that makes the running executable a worker when [`WORKER_ENV`] is set. The
/// sandbox refers to it when spawning, so the linker keeps it in every program that can spawn.
#[used]
#[unsafe(link_section = ".init_array")]
pub(super) static WORKER_ENTRY: extern "C" fn() = worker_entry;

fn serve(config: OsString) -> i32 {
    let limits: Limits = match config
        .to_str()
        .and_then(|c| serde_json::from_str::<WireLimits>(c).ok())
    {
        Some(limits) => limits.into(),
        None => {
            eprintln!("rung sandbox worker: {WORKER_ENV} does not hold limits");
            return START_EXIT;
        }
    };
    // Nothing a failing cell does may look like a crash report: no core files, and a panic (the
    // Starlark arena failing to grow, or a bug) ends the worker with a status that says which.
    set_limit(libc::RLIMIT_CORE, 0);
    if let Err(e) = limit_address_space(limits.max_heap) {
        eprintln!("rung sandbox worker: cannot limit memory: {e}");
        return START_EXIT;
    }
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        eprintln!("rung sandbox worker: {message}");
        let out_of_memory = ["out of memory", "capacity overflow", "memory allocation"]
            .iter()
            .any(|m| message.contains(m));
        // SAFETY: `_exit` ends the process at once; no state of this process is used after it.
        unsafe {
            libc::_exit(if out_of_memory {
                MEMORY_EXIT
            } else {
                CRASH_EXIT
            })
        }
    }));
    let pipe = Pipe {
        input: RefCell::new(BufReader::new(io::stdin().lock())),
        output: RefCell::new(io::stdout().lock()),
    };
    // One episode per turn: a reset drops the namespace and starts the next one.
    loop {
        if pipe.send(&FromWorker::Ready).is_err() {
            return 0;
        }
        let argument_bytes = Cell::new(0);
        let reset = Module::with_temp_heap(|module| {
            loop {
                let code = match pipe.receive() {
                    Some(ToWorker::Cell { code }) => code,
                    Some(ToWorker::Reset) => return true,
                    // The sandbox closed the pipe (it is gone) or broke the protocol.
                    _ => return false,
                };
                let text = run_cell(&module, &pipe, &argument_bytes, limits, code);
                if pipe.send(&FromWorker::Output { text }).is_err() {
                    return false;
                }
            }
        });
        if !reset {
            return 0;
        }
    }
}

/// The pipe to the sandbox, which holds the world.
struct Pipe {
    input: RefCell<BufReader<StdinLock<'static>>>,
    output: RefCell<StdoutLock<'static>>,
}

impl Pipe {
    fn send(&self, message: &FromWorker) -> io::Result<()> {
        wire::send(&mut *self.output.borrow_mut(), message)
    }

    fn receive(&self) -> Option<ToWorker> {
        // The sandbox is trusted; a cell is at most an HTTP body.
        let mut input = self.input.borrow_mut();
        let line = wire::read_line(&mut *input, usize::MAX / 2).ok()??;
        serde_json::from_str(&line).ok()
    }
}

impl ApiGateway for Pipe {
    fn call(
        &self,
        app: &str,
        api: &str,
        positional: Vec<Json>,
        named: Vec<(String, Json)>,
    ) -> ApiResult {
        let call = FromWorker::Call {
            app: app.to_owned(),
            api: api.to_owned(),
            positional,
            named,
        };
        if self.send(&call).is_err() {
            std::process::exit(0);
        }
        match self.receive() {
            Some(ToWorker::Answer { result }) => {
                result.map_err(|WireApiError { status, message }| ApiError { status, message })
            }
            // The sandbox is gone or confused: nothing this worker does matters any more.
            _ => std::process::exit(0),
        }
    }
}

#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn set_limit(resource: Resource, bytes: u64) -> bool {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    unsafe { libc::setrlimit(resource, &limit) == 0 }
}

/// Caps the address space at its size now plus `max_heap` and some slack.
fn limit_address_space(max_heap: usize) -> io::Result<()> {
    let size = super::procfs::status_bytes("self", "VmSize")
        .ok_or_else(|| io::Error::other("no VmSize in /proc/self/status"))?;
    let cap = size + max_heap as u64 + SLACK_BYTES;
    if set_limit(libc::RLIMIT_AS, cap) {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Keeps the output flushed on exit paths that skip destructors.
impl Drop for Pipe {
    fn drop(&mut self) {
        let _ = self.output.borrow_mut().flush();
    }
}
