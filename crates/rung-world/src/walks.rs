//! World walks: the raw material of the pretraining corpus.
//!
//! A walk is one person's session with the apps of one world: it logs in the way gold code
//! does, calls list, search, show, create and update APIs with parameters filled from what
//! earlier calls returned (sometimes copied as literals, sometimes referenced as
//! `inbox[2]["mail_id"]`), looks up documentation now and then, and keeps each call's real
//! output — errors included. Walks are generated from the API declarations themselves, so they
//! cover every app and API the world has, and they contain no task: nothing in a walk is a
//! trajectory of a multi-sub-task task, which is what lets a model pretrained on walks be
//! fine-tuned and compared on tasks without the corpus having shown it the answer.
//!
//! Callers pick worlds that no evaluated task uses (another suite seed, see
//! [`crate::tasks::world_seed`]).

use std::collections::BTreeSet;

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apps::{Access, ApiSpec, Constraint, Param, ParamType, registry};
use crate::db::{Db, Id};
use crate::sandbox::{FAILED, Limits, Sandbox};
use crate::tasks::login_code;
use crate::world::World;

/// How walks are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WalkOptions {
    /// API calls per walk (documentation look-ups come on top).
    pub steps: usize,
    /// Chance that a value taken from an earlier output is written as a literal rather than
    /// as an expression over the variable holding it.
    pub literal_rate: f64,
    /// Chance that each optional parameter is passed.
    pub optional_rate: f64,
    /// Chance that a call is preceded by a look-up of its documentation.
    pub docs_rate: f64,
    /// Chance of moving to another app after each call.
    pub switch_rate: f64,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            steps: 6,
            literal_rate: 0.5,
            optional_rate: 0.15,
            docs_rate: 0.15,
            switch_rate: 0.3,
        }
    }
}

/// One code cell of a walk and what the world answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkStep {
    /// The app the cell works in.
    pub app: String,
    /// The API it calls (`show_api_doc` for a look-up).
    pub api: String,
    /// What the cell does, in words (the sub-task a corpus renders it as).
    pub instruction: String,
    /// The cell.
    pub code: String,
    /// Its real output.
    pub output: String,
}

impl WalkStep {
    /// Whether the cell failed (its output is a traceback).
    pub fn failed(&self) -> bool {
        self.output.starts_with(FAILED)
    }
}

/// One person's session with one world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Walk {
    /// Population seed of the world.
    pub world_seed: u64,
    /// The person acting (the walk's supervisor).
    pub supervisor: Id,
    /// The world's clock.
    pub now: String,
    /// The cells, in order.
    pub steps: Vec<WalkStep>,
}

/// A value an earlier output showed, and how code can refer to it.
#[derive(Debug, Clone)]
struct Known {
    /// Field name (`mail_id`).
    key: String,
    /// The variable holding it.
    var: String,
    /// Code that reads it (`inbox[2]["mail_id"]`).
    expr: String,
    /// Where it is, in words (`item 3 of inbox`).
    place: String,
    /// The value.
    value: Value,
}

/// Titles, bodies and queries for text parameters no earlier output supplies.
const TITLES: &[&str] = &[
    "Weekend plans",
    "Groceries",
    "Project update",
    "Trip ideas",
    "Reading list",
    "Meeting notes",
];
const SENTENCES: &[&str] = &[
    "See you on Friday.",
    "Thanks for your help!",
    "Can we talk tomorrow?",
    "Dinner at seven.",
    "Here is the list you asked for.",
];
/// Names a walk never assigns: the login's variables and built-ins.
const RESERVED: &[&str] = &[
    "profile",
    "passwords",
    "apis",
    "list",
    "dict",
    "str",
    "int",
    "len",
    "sum",
    "max",
    "min",
    "range",
    "print",
    "round",
    "sorted",
    "type",
    "id",
    "set",
    "all",
    "any",
    "map",
    "filter",
];

/// The apps `person` can log in to, in registry order.
fn apps_of(db: &Db, person: Id) -> Vec<&'static str> {
    registry()
        .app_names()
        .into_iter()
        .filter(|app| !matches!(*app, "supervisor" | "api_docs"))
        .filter(|app| {
            db.accounts
                .iter()
                .any(|a| a.person_id == person && a.app == *app)
        })
        .collect()
}

/// People of `db` who can log in to at least two apps (walk supervisors).
pub fn walkers(db: &Db) -> Vec<Id> {
    db.people
        .iter()
        .map(|p| p.id)
        .filter(|&id| apps_of(db, id).len() >= 2)
        .collect()
}

/// A walk of `person` through the world `start` (its database and clock), drawn from `seed`.
pub fn walk(
    world_seed: u64,
    start: &(Db, String),
    person: Id,
    seed: u64,
    options: &WalkOptions,
) -> Walk {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut world = World::new(start.0.clone(), start.1.clone(), person);
    // Walk code is generated by rung itself: trusted, no worker process needed.
    let mut sandbox = Sandbox::new(Limits::default().in_thread());
    let apps = apps_of(&start.0, person);
    let mut walker = Walker {
        rng: &mut rng,
        options,
        known: Vec::new(),
        logged_in: BTreeSet::new(),
        now: start.1.clone(),
    };
    let mut steps = Vec::new();
    let Some(&first) = apps.choose(walker.rng) else {
        return Walk {
            world_seed,
            supervisor: person,
            now: start.1.clone(),
            steps,
        };
    };
    let mut app = first;
    for _ in 0..options.steps {
        let Some(call) = walker.next_call(app) else {
            break;
        };
        if walker.rng.random_bool(options.docs_rate) {
            let code = format!(
                "print(apis.api_docs.show_api_doc(app_name=\"{app}\", api_name=\"{}\"))",
                call.api
            );
            let output = sandbox.execute(&code, &mut world);
            steps.push(WalkStep {
                app: app.to_owned(),
                api: "show_api_doc".to_owned(),
                instruction: format!("Look up the documentation of {app}'s {} API.", call.api),
                code,
                output,
            });
        }
        let mut code = walker.login(app);
        code.push_str(&call.code);
        let output = sandbox.execute(&code, &mut world);
        if !output.starts_with(FAILED) {
            walker.harvest(&call.var, &output);
        }
        steps.push(WalkStep {
            app: app.to_owned(),
            api: call.api.to_owned(),
            instruction: call.instruction,
            code,
            output,
        });
        if apps.len() > 1 && walker.rng.random_bool(options.switch_rate) {
            let others: Vec<&&str> = apps.iter().filter(|a| **a != app).collect();
            if let Some(next) = others.choose(walker.rng) {
                app = next;
            }
        }
    }
    Walk {
        world_seed,
        supervisor: person,
        now: start.1.clone(),
        steps,
    }
}

/// One API call of a walk, before it runs.
struct Call {
    api: &'static str,
    var: String,
    code: String,
    instruction: String,
}

struct Walker<'a> {
    rng: &'a mut ChaCha8Rng,
    options: &'a WalkOptions,
    known: Vec<Known>,
    logged_in: BTreeSet<&'static str>,
    /// The world's clock (made-up dates are near it).
    now: String,
}

impl Walker<'_> {
    fn login(&mut self, app: &'static str) -> String {
        if !self.logged_in.insert(app) {
            return String::new();
        }
        login_code(app, self.logged_in.len() == 1)
    }

    /// The values an earlier output showed that can fill `param`.
    fn sources(&self, param: &Param) -> Vec<&Known> {
        let name = param.name;
        self.known
            .iter()
            .filter(|k| {
                k.key == name
                    || name.ends_with(&format!("_{}", k.key))
                    || k.key.ends_with(&format!("_{name}"))
            })
            .filter(|k| param_accepts(param, &k.value))
            .collect()
    }

    /// Draws the next call in `app`. APIs whose required parameters earlier outputs can fill
    /// are the likeliest, then those that need none (lists, which show ids for later calls),
    /// then those whose parameters can be made up (titles, amounts); an API that needs an id
    /// no output has shown is rare, and gives the real 401 or 404 a guessed id gets.
    fn next_call(&mut self, app: &'static str) -> Option<Call> {
        let weighted: Vec<(&'static ApiSpec, u32)> = registry()
            .app(app)
            .ok()?
            .values()
            .filter(|spec| !matches!(spec.name, "login" | "logout"))
            .map(|spec| {
                let required: Vec<&Param> = spec.params.iter().filter(|p| p.required).collect();
                let weight = if required.is_empty() {
                    20
                } else if required.iter().all(|p| !self.sources(p).is_empty()) {
                    30
                } else if required
                    .iter()
                    .all(|p| !self.sources(p).is_empty() || inventable(p))
                {
                    10
                } else {
                    1
                };
                (spec, weight)
            })
            .collect();
        let spec = weighted.choose_weighted(self.rng, |(_, w)| *w).ok()?.0;
        Some(self.call(spec))
    }

    fn call(&mut self, spec: &'static ApiSpec) -> Call {
        let mut args = Vec::new();
        let mut said = Vec::new();
        if spec.access == Access::Token {
            args.push(format!("access_token={}_token", spec.app));
        }
        for param in &spec.params {
            let paging = matches!(param.name, "page_index" | "page_limit");
            if !param.required && (paging || !self.rng.random_bool(self.options.optional_rate)) {
                continue;
            }
            let (code, words) = self.fill(param);
            args.push(format!("{}={code}", param.name));
            said.push(format!("{} {words}", param.name.replace('_', " ")));
        }
        let var = variable_of(spec.name);
        let code = format!(
            "{var} = apis.{}.{}({})\nprint({var})",
            spec.app,
            spec.name,
            args.join(", ")
        );
        let mut instruction = spec.description.trim_end_matches('.').to_owned();
        if !said.is_empty() {
            instruction.push_str(", with ");
            instruction.push_str(&said.join(", "));
        }
        instruction.push('.');
        Call {
            api: spec.name,
            var,
            code,
            instruction,
        }
    }

    /// Code for `param`'s value and how the instruction names it.
    fn fill(&mut self, param: &Param) -> (String, String) {
        let sources: Vec<Known> = self.sources(param).into_iter().cloned().collect();
        if let Some(known) = sources.choose(self.rng).cloned() {
            let literal = python_literal(&known.value);
            return if self.rng.random_bool(self.options.literal_rate) {
                (literal.clone(), literal)
            } else {
                (known.expr, format!("the {} of {}", known.key, known.place))
            };
        }
        let value = self.invent(param);
        let literal = python_literal(&value);
        (literal.clone(), literal)
    }

    /// A plausible value for a parameter no earlier output supplies.
    fn invent(&mut self, param: &Param) -> Value {
        if let Some(options) = param.constraints.iter().find_map(|c| match c {
            Constraint::OneOf(options) => Some(*options),
            _ => None,
        }) && let Some(choice) = options.choose(self.rng)
        {
            return Value::from(*choice);
        }
        let (lo, hi) = bounds(param);
        let name = param.name;
        match param.ty {
            ParamType::Str if param.description.contains("YYYY-MM-DD") => {
                let delta = self.rng.random_range(-30..=30);
                Value::from(crate::time::shift_date(&self.now, delta))
            }
            ParamType::Str if name.contains("path") => {
                let title = TITLES.choose(self.rng).expect("titles");
                Value::from(format!(
                    "/documents/{}.txt",
                    title.to_lowercase().replace(' ', "_")
                ))
            }
            ParamType::Str | ParamType::Scalar => {
                let pool = if name.contains("title") || name.contains("subject") || name == "name" {
                    TITLES
                } else if name.contains("query") {
                    return Value::from(self.query_word());
                } else {
                    SENTENCES
                };
                Value::from(*pool.choose(self.rng).expect("non-empty pool"))
            }
            ParamType::Int => Value::from(
                self.rng
                    .random_range(lo.max(1.0) as i64..=hi.min(20.0) as i64),
            ),
            ParamType::Float => {
                let cents = self
                    .rng
                    .random_range((lo.max(1.0) * 100.0) as i64..=(hi.min(50.0) * 100.0) as i64);
                serde_json::json!(cents as f64 / 100.0)
            }
            ParamType::Bool => Value::from(self.rng.random_bool(0.5)),
            ParamType::StrList => serde_json::json!([*TITLES.choose(self.rng).expect("titles")]),
            ParamType::IntList => serde_json::json!([self.rng.random_range(1..=20)]),
        }
    }

    /// A search word: a word of some text an earlier output showed, else a title word.
    fn query_word(&mut self) -> String {
        let words: Vec<String> = self
            .known
            .iter()
            .filter_map(|k| k.value.as_str())
            .filter(|s| !s.contains('@') && !s.chars().any(|c| c.is_ascii_digit()))
            .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|w| w.len() >= 3 && w.chars().all(char::is_alphabetic))
            .collect();
        let picked = words.choose(self.rng).cloned();
        match picked {
            Some(word) => word,
            None => TITLES
                .choose(self.rng)
                .and_then(|t| t.split_whitespace().next())
                .unwrap_or("plans")
                .to_owned(),
        }
    }

    /// Remembers the scalar fields of a printed result held in `var` (replacing what `var`
    /// held before).
    fn harvest(&mut self, var: &str, output: &str) {
        self.known.retain(|k| k.var != var);
        let Ok(value) = serde_json::from_str::<Value>(output.trim()) else {
            return;
        };
        let mut remember = |key: &str, expr: String, place: String, value: &Value| {
            if matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                self.known.push(Known {
                    key: key.to_owned(),
                    var: var.to_owned(),
                    expr,
                    place,
                    value: value.clone(),
                });
            }
        };
        match &value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().take(20) {
                    if let Value::Object(fields) = item {
                        for (key, v) in fields {
                            remember(
                                key,
                                format!("{var}[{i}][\"{key}\"]"),
                                format!("item {} of {var}", i + 1),
                                v,
                            );
                        }
                    }
                }
            }
            Value::Object(fields) => {
                for (key, v) in fields {
                    remember(key, format!("{var}[\"{key}\"]"), var.to_owned(), v);
                }
            }
            _ => {}
        }
    }
}

/// Whether a made-up value of `param` is as good as any: text, amounts, flags and choices, but
/// not ids, emails or phone numbers, which must come from an output to mean something.
fn inventable(param: &Param) -> bool {
    let name = param.name;
    let names_something = name.ends_with("_id")
        || name.contains("path")
        || name.ends_with("_ids")
        || name.contains("email")
        || name.contains("phone");
    !names_something
        && !matches!(param.ty, ParamType::IntList)
        && (param.ty != ParamType::Int || name.contains("quantity") || name.contains("rating"))
}

/// Whether `value` has a type `param` takes.
fn param_accepts(param: &Param, value: &Value) -> bool {
    match param.ty {
        ParamType::Str => value.is_string(),
        ParamType::Int => value.is_i64() || value.is_u64(),
        ParamType::Float => value.is_number(),
        ParamType::Bool => value.is_boolean(),
        ParamType::Scalar => !value.is_null(),
        ParamType::StrList | ParamType::IntList => false,
    }
}

/// The numeric bounds of `param` (wide when it has none).
fn bounds(param: &Param) -> (f64, f64) {
    let mut lo = f64::MIN;
    let mut hi = f64::MAX;
    for constraint in &param.constraints {
        match constraint {
            Constraint::Min(m) => lo = *m,
            Constraint::Max(m) => hi = *m,
            _ => {}
        }
    }
    (lo, hi)
}

/// The variable a call's result goes in: the API name without its verb (`show_inbox` →
/// `inbox`), never a login variable or a built-in.
fn variable_of(api: &str) -> String {
    let rest = api.split_once('_').map_or(api, |(_, rest)| rest);
    if rest.is_empty() || RESERVED.contains(&rest) || rest.ends_with("_token") {
        format!("{rest}_result").trim_start_matches('_').to_owned()
    } else {
        rest.to_owned()
    }
}

/// `value` as a Python literal.
fn python_literal(value: &Value) -> String {
    match value {
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Null => "None".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::population;

    fn some_walks(n: u64) -> Vec<Walk> {
        let world_seed = crate::tasks::world_seed(7, 0);
        let start = population::generate(world_seed);
        let people = walkers(&start.0);
        (0..n)
            .map(|i| {
                let person = people[i as usize % people.len()];
                walk(world_seed, &start, person, i, &WalkOptions::default())
            })
            .collect()
    }

    #[test]
    fn walks_log_in_as_gold_code_does_and_mostly_succeed() {
        let walks = some_walks(40);
        let steps: Vec<&WalkStep> = walks.iter().flat_map(|w| &w.steps).collect();
        assert!(steps.len() >= 40 * 6, "{} steps", steps.len());
        for walk in &walks {
            let first = &walk.steps[0];
            assert!(
                first
                    .code
                    .starts_with("profile = apis.supervisor.show_profile()\n")
                    || first.api == "show_api_doc",
                "{}",
                first.code
            );
        }
        let failed = steps.iter().filter(|s| s.failed()).count();
        // Errors are part of the corpus (real 404s and 422s), but most calls must work.
        assert!(
            failed * 3 < steps.len(),
            "{failed} of {} cells failed",
            steps.len()
        );
        let bad_logins = steps
            .iter()
            .filter(|s| s.output.contains("Invalid credentials"))
            .count();
        assert_eq!(bad_logins, 0, "every walk logs in with its own profile");
    }

    #[test]
    fn walks_cover_every_app_and_copy_values_between_calls() {
        let walks = some_walks(80);
        let apps: BTreeSet<&str> = walks
            .iter()
            .flat_map(|w| &w.steps)
            .map(|s| s.app.as_str())
            .collect();
        for app in [
            "mail", "music", "pay", "notes", "todo", "phone", "files", "shop",
        ] {
            assert!(apps.contains(app), "no walk uses {app}: {apps:?}");
        }
        let referenced = walks
            .iter()
            .flat_map(|w| &w.steps)
            .filter(|s| s.code.contains("][\"") && !s.failed())
            .count();
        assert!(
            referenced >= 20,
            "{referenced} cells read an earlier output"
        );
    }

    #[test]
    fn walks_are_deterministic_by_seed() {
        let a = some_walks(5);
        let b = some_walks(5);
        assert_eq!(a, b);
        let start = population::generate(crate::tasks::world_seed(7, 0));
        let person = walkers(&start.0)[0];
        let c = walk(1, &start, person, 99, &WalkOptions::default());
        assert_ne!(a[0].steps, c.steps);
    }

    #[test]
    fn variables_avoid_login_names_and_builtins() {
        assert_eq!(variable_of("show_inbox"), "inbox");
        assert_eq!(variable_of("show_profile"), "profile_result");
        assert_eq!(variable_of("show_list"), "list_result");
        assert_eq!(python_literal(&Value::Bool(true)), "True");
        assert_eq!(python_literal(&serde_json::json!("a\"b")), "\"a\\\"b\"");
    }
}
