//! The agent's code sandbox: a Python-like language (Starlark) with `apis.<app>.<api>(**kwargs)`
//! bound to a world, a namespace that persists across cells, captured `print`, AppWorld's three
//! result forms and hard limits per cell.
//!
//! Agent code is untrusted, and Starlark checks its heap limit only between statements, so one
//! expression (`[0] * 2000000000`) can allocate far past it. An in-process interpreter cannot
//! refuse such an allocation without aborting the whole process, so by default each episode's
//! interpreter runs in a worker process of its own ([`Isolation::Process`]) under an OS memory
//! limit, while the world stays in this process and answers the worker's API calls over a pipe.
//! A worker that exceeds a limit dies alone: the cell fails with a `MemoryError` naming the limit,
//! the memory goes back to the OS, and a fresh worker gets the episode's namespace back by
//! replaying the earlier cells against their recorded API answers. [`Isolation::Thread`] keeps the
//! interpreter in a thread of this process, for trusted code (gold programs) where the spawn and
//! pipe cost buys nothing.

mod interp;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
pub mod procfs;
mod thread;
#[cfg(target_os = "linux")]
mod wire;
#[cfg(target_os = "linux")]
mod worker;

use std::fmt;
use std::time::Duration;

use crate::world::World;

/// Where a sandbox's interpreter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// A worker process per sandbox, memory-limited by the OS (`setrlimit`): the default, for
    /// untrusted code. Linux only; elsewhere it falls back to [`Isolation::Thread`].
    #[default]
    Process,
    /// A thread of this process: faster to start, for trusted code only (a cell can allocate
    /// past `max_heap` within one expression).
    Thread,
}

/// Per-cell resource limits. A cell that exceeds one fails with a message; the episode goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Function calls plus loop iterations.
    pub max_ticks: u64,
    /// Wall-clock time of one cell.
    pub max_time: Duration,
    /// Characters printed by one cell.
    pub max_output: usize,
    /// API calls made by one cell.
    pub max_api_calls: u32,
    /// Memory of the interpreter: the namespace plus what a cell allocates. With process
    /// isolation it is enforced by the OS on every allocation; in a thread, only between
    /// statements.
    pub max_heap: usize,
    /// Bytes of JSON arguments one API call may take.
    pub max_api_argument_bytes: usize,
    /// Bytes of JSON arguments all API calls of an episode may take together: what the world
    /// grows by at most.
    pub max_episode_argument_bytes: usize,
    /// Where the interpreter runs.
    pub isolation: Isolation,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ticks: 1_000_000,
            max_time: Duration::from_secs(10),
            max_output: 20_000,
            max_api_calls: 500,
            max_heap: 256 << 20,
            max_api_argument_bytes: 1 << 20,
            max_episode_argument_bytes: 16 << 20,
            isolation: Isolation::Process,
        }
    }
}

impl Limits {
    /// The same limits with the interpreter in a thread: for trusted code.
    pub fn in_thread(self) -> Self {
        Self {
            isolation: Isolation::Thread,
            ..self
        }
    }
}

/// The prefix of a failed cell's output, as AppWorld writes it.
pub const FAILED: &str = "Execution failed. Traceback:";
/// The output of a cell that succeeded without printing, as AppWorld writes it.
pub const SUCCESSFUL: &str = "Execution successful.";

/// The error line of a cell that ran out of memory, however the limit was noticed.
fn memory_error(max_heap: usize) -> String {
    format!(
        "MemoryError: the cell needed more memory than the sandbox's limit of {} MiB; work on less \
         data at a time (a page of results, a slice, selected fields)",
        max_heap >> 20
    )
}

/// The error line of a cell stopped at its time limit, by the interpreter or by a kill.
fn timeout_error(max_time: Duration) -> String {
    format!(
        "TimeoutError: the cell ran past its time limit of {} s and was stopped",
        max_time.as_secs_f64()
    )
}

/// A persistent interpreter session for one episode.
pub struct Sandbox {
    inner: Inner,
}

enum Inner {
    Thread(thread::ThreadSandbox),
    #[cfg(target_os = "linux")]
    Process(process::ProcessSandbox),
}

impl Sandbox {
    /// A sandbox with these limits; a worker process starts with the first cell.
    pub fn new(limits: Limits) -> Self {
        let inner = match limits.isolation {
            #[cfg(target_os = "linux")]
            Isolation::Process => Inner::Process(process::ProcessSandbox::new(limits)),
            _ => Inner::Thread(thread::ThreadSandbox::new(limits)),
        };
        Self { inner }
    }

    /// Runs one cell against `world` and returns its output. Every failure of the cell, resource
    /// exhaustion included, is an output starting with [`FAILED`]; the episode goes on.
    pub fn execute(&mut self, code: &str, world: &mut World) -> String {
        match &mut self.inner {
            Inner::Thread(sandbox) => sandbox.execute(code, world),
            #[cfg(target_os = "linux")]
            Inner::Process(sandbox) => sandbox.execute(code, world),
        }
    }

    /// Where this sandbox's interpreter runs.
    pub fn isolation(&self) -> Isolation {
        match self.inner {
            Inner::Thread(_) => Isolation::Thread,
            #[cfg(target_os = "linux")]
            Inner::Process(_) => Isolation::Process,
        }
    }

    /// The worker process's id while one runs (process isolation).
    pub fn worker_pid(&self) -> Option<u32> {
        match &self.inner {
            Inner::Thread(_) => None,
            #[cfg(target_os = "linux")]
            Inner::Process(sandbox) => sandbox.worker_pid(),
        }
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("isolation", &self.isolation())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
