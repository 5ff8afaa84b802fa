//! The interpreter: Starlark with `apis.<app>.<api>(**kwargs)`, captured `print`, Python
//! built-ins Starlark lacks, AppWorld's result forms and the per-cell limits. It knows nothing of
//! where API calls go ([`ApiGateway`]), so the same code runs in a thread next to the world and in
//! a worker process that reaches the world over a pipe.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::LazyLock;
use std::time::Instant;

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

use super::{FAILED, Limits, SUCCESSFUL};
use crate::apps::{ApiError, ApiResult, registry};

/// Where a cell's API calls go: the world itself, or the process that holds it.
pub(crate) trait ApiGateway {
    /// Calls `app.api`; an `Err` becomes the cell's `Response status code is …` exception.
    fn call(
        &self,
        app: &str,
        api: &str,
        positional: Vec<Json>,
        named: Vec<(String, Json)>,
    ) -> ApiResult;
}

/// What native functions reach through `Evaluator::extra` while a cell runs.
#[derive(ProvidesStaticType)]
struct CellContext<'a> {
    gateway: &'a dyn ApiGateway,
    printed: RefCell<String>,
    api_calls: Cell<u32>,
    /// Bytes of API arguments the episode has sent so far (all cells), which is what the world
    /// keeps growing by: bounded so that no episode can grow its world without end.
    argument_bytes: &'a Cell<usize>,
    limits: Limits,
}

impl<'a> CellContext<'a> {
    fn of<'e>(eval: &Evaluator<'_, 'e, '_>) -> &'e CellContext<'e> {
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

/// Runs one cell in `module` (the episode's namespace) and returns its output as AppWorld
/// writes it: what it printed, `Execution successful.`, or a traceback.
pub(crate) fn run_cell(
    module: &Module<'_>,
    gateway: &dyn ApiGateway,
    argument_bytes: &Cell<usize>,
    limits: Limits,
    code: String,
) -> String {
    let ast = match AstModule::parse("cell", code.clone(), &DIALECT) {
        Ok(ast) => ast,
        Err(e) => return traceback(&code, &e, "SyntaxError"),
    };
    let cell = CellContext {
        gateway,
        printed: RefCell::new(String::new()),
        api_calls: Cell::new(0),
        argument_bytes,
        limits,
    };
    let mut eval = Evaluator::new(module);
    eval.extra = Some(&cell);
    let deadline = Instant::now() + limits.max_time;
    eval.set_check_cancelled(Box::new(move || Instant::now() > deadline));
    let configured = eval
        .set_max_tick_count(limits.max_ticks)
        .and_then(|()| eval.set_max_heap_size(limits.max_heap));
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
        // Starlark notices a heap past its limit between statements; the same failure as the
        // OS refusing an allocation in a worker, so it reads the same.
        Err(e) if e.to_string().contains("Heap memory limit") => {
            format!("{FAILED}\n{}", super::memory_error(limits.max_heap))
        }
        Err(e) if Instant::now() > deadline && e.to_string().contains("cancelled") => {
            format!("{FAILED}\n{}", super::timeout_error(limits.max_time))
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
        let size = argument_size(&positional, &named);
        if size > cell.limits.max_api_argument_bytes {
            return Err(api_failure(ApiError {
                status: 413,
                message: format!(
                    "the arguments of this call take {size} bytes; an API call takes at most {} bytes",
                    cell.limits.max_api_argument_bytes
                ),
            }));
        }
        let sent = cell.argument_bytes.get() + size;
        if sent > cell.limits.max_episode_argument_bytes {
            return Err(api_failure(ApiError {
                status: 413,
                message: format!(
                    "this episode has sent {sent} bytes of API arguments; an episode may send at most {}",
                    cell.limits.max_episode_argument_bytes
                ),
            }));
        }
        cell.argument_bytes.set(sent);
        let result = cell.gateway.call(&self.app, &self.api, positional, named);
        match result {
            Ok(value) => Ok(from_json(&value, heap)),
            Err(e) => Err(api_failure(e)),
        }
    }
}

/// An API's error response as the exception AppWorld's requests raise.
fn api_failure(e: ApiError) -> starlark::Error {
    let body = serde_json::json!({"message": e.message});
    native_error(format!("Response status code is {}:\n{body}", e.status))
}

/// The bytes the arguments take as JSON, which is what they cost the world that keeps them.
fn argument_size(positional: &[Json], named: &[(String, Json)]) -> usize {
    let json = |v: &Json| serde_json::to_vec(v).map_or(usize::MAX / 4, |b| b.len());
    positional.iter().map(json).sum::<usize>()
        + named.iter().map(|(k, v)| k.len() + json(v)).sum::<usize>()
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
