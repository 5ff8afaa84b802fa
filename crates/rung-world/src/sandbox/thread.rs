//! The interpreter in a thread of this process ([`Isolation::Thread`](super::Isolation)).
//!
//! Starlark ties a module's values to the lifetime of its heap, which lives inside a closure; so
//! each sandbox owns one thread that holds the module for the whole episode and runs the cells it
//! is sent. The world travels with each cell request and comes back with the output, so the
//! sandbox never shares mutable state with anything else.

use std::cell::{Cell, RefCell};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use serde_json::Value as Json;
use starlark::environment::Module;

use super::interp::{ApiGateway, run_cell};
use super::{FAILED, Limits};
use crate::apps::ApiResult;
use crate::world::World;

struct Job {
    code: String,
    world: World,
    reply: Sender<(String, World)>,
}

pub(super) struct ThreadSandbox {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl ThreadSandbox {
    pub(super) fn new(limits: Limits) -> Self {
        let (jobs, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("rung-sandbox".into())
            .stack_size(8 << 20)
            .spawn(move || serve_cells(rx, limits))
            .expect("spawning a sandbox thread");
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }

    pub(super) fn execute(&mut self, code: &str, world: &mut World) -> String {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            code: code.to_owned(),
            world: std::mem::take(world),
            reply,
        };
        let jobs = self
            .jobs
            .as_ref()
            .expect("sandbox is running until dropped");
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            *world = job.world;
            return format!("{FAILED}\nInternalError: the sandbox stopped");
        }
        let (output, back) = answer
            .recv()
            .expect("the sandbox thread replies to every job");
        *world = back;
        output
    }
}

impl Drop for ThreadSandbox {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The world itself, lent to the interpreter for one cell.
struct Direct(RefCell<World>);

impl ApiGateway for Direct {
    fn call(
        &self,
        app: &str,
        api: &str,
        positional: Vec<Json>,
        named: Vec<(String, Json)>,
    ) -> ApiResult {
        self.0.borrow_mut().call(app, api, positional, named)
    }
}

fn serve_cells(jobs: Receiver<Job>, limits: Limits) {
    let argument_bytes = Cell::new(0);
    Module::with_temp_heap(|module| {
        for job in jobs {
            let gateway = Direct(RefCell::new(job.world));
            // The world must come back even if the interpreter panics, or the episode is lost.
            let run = std::panic::AssertUnwindSafe(|| {
                run_cell(&module, &gateway, &argument_bytes, limits, job.code)
            });
            let output = std::panic::catch_unwind(run).unwrap_or_else(|_| {
                format!("{FAILED}\nInternalError: the interpreter crashed on this cell")
            });
            let _ = job.reply.send((output, gateway.0.into_inner()));
        }
    });
}
