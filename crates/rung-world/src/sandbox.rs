//! The agent's code sandbox: a Python-like language (Starlark) with `apis.<app>.<api>(**kwargs)`
//! bound to a world, a namespace that persists across cells, captured `print`, AppWorld's three
//! result forms and hard limits per cell.
//!
//! Starlark ties a module's values to the lifetime of its heap, which lives inside a closure; so
//! each sandbox owns one thread that holds the module for the whole episode and runs the cells it
//! is sent. The world travels with each cell request and comes back with the output, so the
//! sandbox never shares mutable state with anything else.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::LazyLock;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use allocative::Allocative;
use serde_json::Value as Json;
use starlark::any::ProvidesStaticType;
use starlark::environment::{Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::{Arguments, Evaluator};
use starlark::starlark_module;
use starlark::starlark_simple_value;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::dict::AllocDict;
use starlark::values::list::AllocList;
use starlark::values::none::{NoneOr, NoneType};
use starlark::values::tuple::UnpackTuple;
use starlark::values::{Heap, NoSerialize, StarlarkValue, Value, ValueLike, starlark_value};

use crate::apps::registry;
use crate::world::World;

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
    /// Bytes on the sandbox's heap.
    pub max_heap: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ticks: 1_000_000,
            max_time: Duration::from_secs(10),
            max_output: 20_000,
            max_api_calls: 500,
            max_heap: 256 << 20,
        }
    }
}

/// The prefix of a failed cell's output, as AppWorld writes it.
pub const FAILED: &str = "Execution failed. Traceback:";
/// The output of a cell that succeeded without printing, as AppWorld writes it.
pub const SUCCESSFUL: &str = "Execution successful.";

struct Job {
    code: String,
    world: World,
    reply: Sender<(String, World)>,
}

/// A persistent interpreter session for one episode.
pub struct Sandbox {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Sandbox {
    /// Starts the sandbox's thread.
    pub fn new(limits: Limits) -> Self {
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

    /// Runs one cell against `world` and returns the cell's output with the world.
    pub fn execute(&self, code: &str, world: World) -> (String, World) {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            code: code.to_owned(),
            world,
            reply,
        };
        let jobs = self
            .jobs
            .as_ref()
            .expect("sandbox is running until dropped");
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            return (
                format!("{FAILED}\nInternalError: the sandbox stopped"),
                job.world,
            );
        }
        answer
            .recv()
            .expect("the sandbox thread replies to every job")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sandbox")
    }
}

fn serve_cells(jobs: Receiver<Job>, limits: Limits) {
    Module::with_temp_heap(|module| {
        for job in jobs {
            let cell = CellContext::new(job.world, limits);
            // The world must come back even if the interpreter panics, or the episode is lost.
            let run = std::panic::AssertUnwindSafe(|| run_cell(&module, &cell, job.code));
            let output = std::panic::catch_unwind(run).unwrap_or_else(|_| {
                format!("{FAILED}\nInternalError: the interpreter crashed on this cell")
            });
            let _ = job.reply.send((output, cell.world.into_inner()));
        }
    });
}

/// What native functions reach through `Evaluator::extra` while a cell runs.
#[derive(ProvidesStaticType)]
struct CellContext {
    world: RefCell<World>,
    printed: RefCell<String>,
    api_calls: Cell<u32>,
    limits: Limits,
}

impl CellContext {
    fn new(world: World, limits: Limits) -> Self {
        Self {
            world: RefCell::new(world),
            printed: RefCell::new(String::new()),
            api_calls: Cell::new(0),
            limits,
        }
    }

    fn of<'a>(eval: &Evaluator<'_, 'a, '_>) -> &'a CellContext {
        eval.extra
            .and_then(|extra| extra.downcast_ref::<CellContext>())
            .expect("cells run with a CellContext")
    }
}

static DIALECT: LazyLock<Dialect> = LazyLock::new(|| {
    let mut dialect = Dialect::Extended;
    // Everything Python-compatible Starlark offers; `load` has no meaning in a sandbox.
    dialect.enable_f_strings = true;
    dialect.enable_positional_only_arguments = true;
    dialect.enable_load = false;
    dialect
});

static GLOBALS: LazyLock<Globals> = LazyLock::new(|| {
    use LibraryExtension::*;
    let mut builder =
        GlobalsBuilder::extended_by(&[StructType, Map, Filter, Partial, Json, SetType, Typing]);
    python_builtins(&mut builder);
    builder.set("apis", Apis);
    builder.build()
});

fn run_cell(module: &Module<'_>, cell: &CellContext, code: String) -> String {
    let ast = match AstModule::parse("cell", code.clone(), &DIALECT) {
        Ok(ast) => ast,
        Err(e) => return traceback(&code, &e, "SyntaxError"),
    };
    let mut eval = Evaluator::new(module);
    eval.extra = Some(cell);
    let deadline = Instant::now() + cell.limits.max_time;
    eval.set_check_cancelled(Box::new(move || Instant::now() > deadline));
    let configured = eval
        .set_max_tick_count(cell.limits.max_ticks)
        .and_then(|()| eval.set_max_heap_size(cell.limits.max_heap));
    if let Err(e) = configured {
        return format!("{FAILED}\nInternalError: {e}");
    }
    let result = eval.eval_module(ast, &GLOBALS);
    drop(eval);
    match result {
        Ok(_) => {
            let printed = cell.printed.take();
            if printed.is_empty() {
                SUCCESSFUL.to_owned()
            } else {
                printed.trim_end_matches('\n').to_owned()
            }
        }
        Err(e) => {
            let kind = if Instant::now() > deadline {
                "TimeoutError"
            } else {
                "Exception"
            };
            traceback(&code, &e, kind)
        }
    }
}

/// Formats an error like a Python traceback: the failing line, then the error.
fn traceback(code: &str, error: &starlark::Error, kind: &str) -> String {
    let mut out = String::from(FAILED);
    if let Some(span) = error.span() {
        let line = span.resolve_span().begin.line;
        out.push_str(&format!("\n  line {}, in <module>", line + 1));
        if let Some(text) = code.lines().nth(line) {
            out.push_str(&format!("\n    {}", text.trim()));
        }
    }
    let message = error.without_diagnostic().to_string();
    let message = message.trim();
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let hint = if message.contains("type `apis` has no attribute") {
        format!(" (the apps are: {})", registry().app_names().join(", "))
    } else if message.contains("type `app` has no attribute") {
        " (list an app's APIs with apis.api_docs.show_api_descriptions(app_name=...))".to_owned()
    } else {
        String::new()
    };
    let message = format!("{message}{hint}");
    if message.starts_with("Response status code") {
        out.push_str(&format!("\nException: {message}"));
    } else {
        out.push_str(&format!("\n{kind}: {message}"));
    }
    out
}

// ---- the `apis` object ---------------------------------------------------------------------

/// `apis`: its attributes are the apps.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, starlark::values::StarlarkPagable)]
struct Apis;
starlark_simple_value!(Apis);

impl fmt::Display for Apis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<apis>")
    }
}

#[starlark_value(type = "apis")]
impl<'v> StarlarkValue<'v> for Apis {
    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        let apps = registry().app_names();
        let app = apps.into_iter().find(|a| *a == attribute)?;
        Some(heap.alloc(App {
            app: app.to_owned(),
        }))
    }

    fn dir_attr(&self) -> Vec<String> {
        registry()
            .app_names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
}

/// `apis.<app>`: its attributes are the app's APIs.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, starlark::values::StarlarkPagable)]
struct App {
    app: String,
}
starlark_simple_value!(App);

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<app {}>", self.app)
    }
}

#[starlark_value(type = "app")]
impl<'v> StarlarkValue<'v> for App {
    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        let spec = registry().api(&self.app, attribute).ok()?;
        Some(heap.alloc(Api {
            app: spec.app.to_owned(),
            api: spec.name.to_owned(),
        }))
    }

    fn dir_attr(&self) -> Vec<String> {
        registry()
            .app(&self.app)
            .map(|apis| apis.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }
}

/// `apis.<app>.<api>`: calling it calls the world.
#[derive(Debug, ProvidesStaticType, NoSerialize, Allocative, starlark::values::StarlarkPagable)]
struct Api {
    app: String,
    api: String,
}
starlark_simple_value!(Api);

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<api {}.{}>", self.app, self.api)
    }
}

#[starlark_value(type = "api")]
impl<'v> StarlarkValue<'v> for Api {
    fn invoke(
        &self,
        _me: Value<'v>,
        args: &Arguments<'v, '_>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<Value<'v>> {
        let cell = CellContext::of(eval);
        let calls = cell.api_calls.get() + 1;
        if calls > cell.limits.max_api_calls {
            return Err(native_error(format!(
                "API call limit exceeded: a cell may make at most {} API calls",
                cell.limits.max_api_calls
            )));
        }
        cell.api_calls.set(calls);
        let heap = eval.heap();
        let positional = args
            .positions(heap)?
            .map(|v| to_json(v, "a positional argument"))
            .collect::<starlark::Result<Vec<_>>>()?;
        let mut named = Vec::new();
        for (name, value) in args.names_map()? {
            let name = name.as_str().to_owned();
            let json = to_json(value, &format!("argument '{name}'"))?;
            named.push((name, json));
        }
        let result = cell
            .world
            .borrow_mut()
            .call(&self.app, &self.api, positional, named);
        match result {
            Ok(value) => Ok(from_json(&value, heap)),
            Err(e) => {
                let body = serde_json::json!({"message": e.message});
                Err(native_error(format!(
                    "Response status code is {}:\n{body}",
                    e.status
                )))
            }
        }
    }
}

fn native_error(message: String) -> starlark::Error {
    starlark::Error::new_native(anyhow::Error::msg(message))
}

fn to_json(value: Value<'_>, what: &str) -> starlark::Result<Json> {
    value.to_json_value().map_err(|_| {
        native_error(format!(
            "{what} of type {} cannot be passed to an API: use strings, numbers, booleans, None, lists and dicts",
            value.get_type()
        ))
    })
}

fn from_json<'v>(value: &Json, heap: Heap<'v>) -> Value<'v> {
    match value {
        Json::Null => Value::new_none(),
        Json::Bool(b) => Value::new_bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => heap.alloc(i),
            None => heap.alloc(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => heap.alloc(s.as_str()),
        Json::Array(items) => heap.alloc(AllocList(items.iter().map(|v| from_json(v, heap)))),
        Json::Object(map) => heap.alloc(AllocDict(
            map.iter().map(|(k, v)| (k.as_str(), from_json(v, heap))),
        )),
    }
}

// ---- Python built-ins Starlark lacks -------------------------------------------------------

#[starlark_module]
fn python_builtins(builder: &mut GlobalsBuilder) {
    /// Prints its arguments separated by spaces; a single list or dict prints as JSON.
    fn print<'v>(
        #[starlark(args)] args: UnpackTuple<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> starlark::Result<NoneType> {
        let text = match args.items.as_slice() {
            [one] if matches!(one.get_type(), "list" | "dict") => one
                .to_json_value()
                .map(|j| j.to_string())
                .unwrap_or_else(|_| one.to_str()),
            items => items
                .iter()
                .map(|v| v.to_str())
                .collect::<Vec<_>>()
                .join(" "),
        };
        let cell = CellContext::of(eval);
        let mut printed = cell.printed.borrow_mut();
        if printed.len() + text.len() + 1 > cell.limits.max_output {
            return Err(native_error(format!(
                "output limit exceeded: a cell may print at most {} characters; print less (a slice, a count, or selected fields)",
                cell.limits.max_output
            )));
        }
        printed.push_str(&text);
        printed.push('\n');
        Ok(NoneType)
    }

    /// Sum of numbers, plus `start`.
    fn sum<'v>(
        #[starlark(require = pos)] items: Value<'v>,
        #[starlark(require = pos, default = 0)] start: Value<'v>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        let mut total = start;
        for item in items.iterate(heap)? {
            total = total.add(item, heap)?;
        }
        Ok(total)
    }

    /// Rounds to `ndigits` decimals (to an int when omitted).
    fn round<'v>(
        #[starlark(require = pos)] x: Value<'v>,
        #[starlark(require = pos, default = NoneOr::None)] ndigits: NoneOr<i32>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        let number = x
            .unpack_i32()
            .map(f64::from)
            .or_else(|| {
                x.downcast_ref::<starlark::values::float::StarlarkFloat>()
                    .map(|f| f.0)
            })
            .ok_or_else(|| native_error(format!("round() needs a number, got {}", x.get_type())))?;
        Ok(match ndigits {
            NoneOr::None => heap.alloc(number.round() as i64),
            NoneOr::Other(digits) => {
                let scale = 10f64.powi(digits);
                heap.alloc((number * scale).round() / scale)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population;

    fn world() -> World {
        let (db, now) = population::generate(1);
        World::new(db, now, 1)
    }

    fn run(sandbox: &Sandbox, world: &mut World, code: &str) -> String {
        let (out, back) = sandbox.execute(
            code,
            std::mem::replace(world, World::new(Default::default(), "", 0)),
        );
        *world = back;
        out
    }

    #[test]
    fn namespace_persists_and_print_is_captured() {
        let sandbox = Sandbox::new(Limits::default());
        let mut w = world();
        assert_eq!(run(&sandbox, &mut w, "x = [1, 2]"), SUCCESSFUL);
        assert_eq!(run(&sandbox, &mut w, "x.append(3)\nprint(x)"), "[1,2,3]");
        assert_eq!(
            run(&sandbox, &mut w, "print({'a': True, 'b': None})"),
            r#"{"a":true,"b":null}"#
        );
        assert_eq!(
            run(
                &sandbox,
                &mut w,
                "print('n', len(x), sum(x), round(2.345, 2))"
            ),
            "n 3 6 2.35"
        );
        assert_eq!(
            run(&sandbox, &mut w, "name = 'Ann'\nprint(f'hi {name}')"),
            "hi Ann"
        );
        assert_eq!(
            run(&sandbox, &mut w, "x = 5\nprint(x)"),
            "5",
            "globals can be rebound"
        );
    }

    #[test]
    fn apis_reach_the_world() {
        let sandbox = Sandbox::new(Limits::default());
        let mut w = world();
        let out = run(
            &sandbox,
            &mut w,
            "p = apis.supervisor.show_profile()\nprint(p['email'])",
        );
        assert_eq!(out, w.db.person(1).email);
        let password =
            w.db.accounts
                .iter()
                .find(|a| a.person_id == 1 && a.app == "mail")
                .unwrap()
                .password
                .clone();
        let code = format!(
            "t = apis.mail.login(username=p['email'], password='{password}')['access_token']\n\
             r = apis.mail.send_mail(access_token=t, recipient_emails=['{}'], subject='Hi')\nprint(r['message'])",
            w.db.person(2).email
        );
        assert_eq!(run(&sandbox, &mut w, &code), "Mail sent.");
        assert!(
            w.db.mails
                .iter()
                .any(|m| m.owner_id == 2 && m.subject == "Hi" && m.folder == "inbox")
        );
    }

    #[test]
    fn failures_are_tracebacks_and_the_episode_goes_on() {
        let sandbox = Sandbox::new(Limits::default());
        let mut w = world();
        let out = run(&sandbox, &mut w, "x = 1\ny = (");
        assert!(
            out.starts_with(FAILED) && out.contains("SyntaxError"),
            "{out}"
        );
        let out = run(&sandbox, &mut w, "print(undefined_name)");
        assert!(
            out.starts_with(FAILED) && out.contains("undefined_name"),
            "{out}"
        );
        let out = run(
            &sandbox,
            &mut w,
            "apis.mail.show_inbox(access_token='nope')",
        );
        assert!(out.contains("Response status code is 401"), "{out}");
        assert!(out.contains("line 1"), "{out}");
        let out = run(&sandbox, &mut w, "apis.mail.show_inbox()");
        assert!(
            out.contains("Response status code is 401") && out.contains("access token is missing"),
            "{out}"
        );
        let out = run(&sandbox, &mut w, "apis.nosuchapp.f()");
        assert!(
            out.starts_with(FAILED) && out.contains("nosuchapp"),
            "{out}"
        );
        let out = run(&sandbox, &mut w, "apis.mail.nosuchapi()");
        assert!(
            out.starts_with(FAILED) && out.contains("nosuchapi"),
            "{out}"
        );
        let out = run(
            &sandbox,
            &mut w,
            "apis.api_docs.show_api_doc(app_name=3, api_name='x')",
        );
        assert!(out.contains("422") && out.contains("app_name"), "{out}");
        let out = run(&sandbox, &mut w, "v = [1 // 0 for i in range(3)]");
        assert!(
            out.starts_with(FAILED) && out.to_lowercase().contains("zero"),
            "{out}"
        );
        assert_eq!(run(&sandbox, &mut w, "print('still alive')"), "still alive");
    }

    #[test]
    fn limits_stop_runaway_cells() {
        let limits = Limits {
            max_time: Duration::from_millis(300),
            ..Limits::default()
        };
        let sandbox = Sandbox::new(limits);
        let mut w = world();
        let out = run(&sandbox, &mut w, "for i in range(100000000):\n    pass");
        assert!(out.starts_with(FAILED), "{out}");
        let out = run(
            &sandbox,
            &mut w,
            "for i in range(100000):\n    print('x' * 50)",
        );
        assert!(out.contains("output limit exceeded"), "{out}");
        let out = run(
            &sandbox,
            &mut w,
            "for i in range(1000):\n    apis.supervisor.show_profile()",
        );
        assert!(out.contains("API call limit exceeded"), "{out}");
        let out = run(&sandbox, &mut w, "def f(n):\n    return f(n + 1)\nf(0)");
        assert!(out.starts_with(FAILED), "{out}");
        assert_eq!(run(&sandbox, &mut w, "print(1 + 1)"), "2");
    }
}
