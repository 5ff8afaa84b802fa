//! Builds one task: skills append gold sub-tasks and compute ground truth from the database.

use std::collections::BTreeSet;

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::SubTask;
use crate::db::{Db, Id};

/// A Starlark string literal for `text`.
pub fn lit(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// Picks one of a template's phrasings by variant, so the three variants of a scenario read
/// differently.
pub struct Phrasing;

impl Phrasing {
    /// Chooses the phrasing for `variant` (1-based).
    pub fn pick<'a>(options: &[&'a str], variant: u32) -> &'a str {
        options[(variant as usize - 1) % options.len()]
    }
}

/// A value computed by a sub-task: the variable holding it in the gold code and its true value.
#[derive(Debug, Clone, PartialEq)]
pub struct Var<T> {
    /// Variable name in the gold namespace.
    pub name: String,
    /// Ground truth.
    pub value: T,
}

/// Song ids and titles held by a gold variable.
pub type SongsVar = Var<Vec<(Id, String)>>;

/// A product's id, name and price held by a gold variable.
pub type ProductVar = Var<(Id, String, f64)>;

/// A person found by a sub-task, with the variable that holds their contact dict.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonRef {
    /// Variable holding a dict with at least `email` and `phone_number`.
    pub var: String,
    /// The person.
    pub id: Id,
    /// How the instruction names them ("your sister", "Ava").
    pub mention: String,
}

/// State of one task under construction.
pub struct Builder<'a> {
    /// The world's start state (read-only: templates never mutate it).
    pub db: &'a Db,
    /// The world's clock.
    pub now: &'a str,
    /// The supervisor.
    pub me: Id,
    /// Variant number (1-based) for phrasing.
    pub variant: u32,
    /// Source of parameter choices.
    pub rng: &'a mut ChaCha8Rng,
    pub(super) plan: Vec<SubTask>,
    pub(super) answer: Option<Value>,
    pub(super) answer_var: Option<String>,
    logged_in: BTreeSet<&'static str>,
    names: BTreeSet<String>,
}

impl<'a> Builder<'a> {
    /// A builder for a task of `me` in `db`.
    pub fn new(db: &'a Db, now: &'a str, me: Id, variant: u32, rng: &'a mut ChaCha8Rng) -> Self {
        Self {
            db,
            now,
            me,
            variant,
            rng,
            plan: Vec::new(),
            answer: None,
            answer_var: None,
            logged_in: BTreeSet::new(),
            names: BTreeSet::new(),
        }
    }

    /// A fresh variable name starting with `stem`.
    pub fn var(&mut self, stem: &str) -> String {
        let mut name = stem.to_owned();
        let mut n = 2;
        while !self.names.insert(name.clone()) {
            name = format!("{stem}{n}");
            n += 1;
        }
        name
    }

    /// Code that logs in to `app` unless an earlier sub-task did; the token is `<app>_token`.
    ///
    /// The first login of a task reads the supervisor's profile and account passwords, and
    /// every login takes its username (email, or phone number for the phone app) from that
    /// profile rather than as a literal: the gold code then depends on reading an API result,
    /// not on copying per-person digits a model has no way to know.
    pub fn login(&mut self, app: &'static str) -> String {
        if self.logged_in.contains(app) {
            return String::new();
        }
        let first = self.logged_in.is_empty();
        if first {
            self.names.insert("profile".to_owned());
            self.names.insert("passwords".to_owned());
        }
        self.logged_in.insert(app);
        login_code(app, first)
    }

    /// Appends a sub-task; its code is prefixed with the login it needs.
    pub fn step(&mut self, kind: &str, app: &'static str, instruction: String, body: &str) {
        let mut code = self.login(app);
        code.push_str(body.trim_end());
        self.plan.push(SubTask {
            kind: kind.to_owned(),
            app: app.to_owned(),
            instruction,
            code,
        });
    }

    /// Sets the task's answer: its true value and the gold variable that holds it.
    pub fn answer(&mut self, var: &str, value: Value) {
        self.answer = Some(value);
        self.answer_var = Some(var.to_owned());
    }

    /// Chooses uniformly from a non-empty slice.
    pub fn choose<'b, T>(&mut self, items: &'b [T]) -> Option<&'b T> {
        items.choose(self.rng)
    }

    /// A random integer in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..=hi)
    }

    /// Number of sub-tasks so far.
    pub fn len(&self) -> usize {
        self.plan.len()
    }

    /// Whether no sub-task was added.
    pub fn is_empty(&self) -> bool {
        self.plan.is_empty()
    }
}

/// The gold login lines for `app`: the profile and passwords look-ups when `first` (the task's
/// first login), then `<app>_token = apis.<app>.login(...)` with the username read from the
/// profile. Shared by task plans and the pretraining walks, so both log in the same way.
pub fn login_code(app: &str, first: bool) -> String {
    let mut code = String::new();
    if first {
        code.push_str("profile = apis.supervisor.show_profile()\n");
        code.push_str(
            "passwords = {a[\"account_name\"]: a[\"password\"] for a in apis.supervisor.show_account_passwords()}\n",
        );
    }
    let field = if app == "phone" {
        "phone_number"
    } else {
        "email"
    };
    code.push_str(&format!(
        "{app}_token = apis.{app}.login(username=profile[\"{field}\"], password=passwords[\"{app}\"])[\"access_token\"]\n"
    ));
    code
}

/// Code that collects every page of a list API call into `target` (`call` ends before its
/// closing parenthesis, without paging arguments).
pub fn all_pages(target: &str, call: &str) -> String {
    format!(
        "{target} = []\nfor page in range(100):\n    batch = {call}, page_index=page, page_limit=20)\n    {target}.extend(batch)\n    if len(batch) < 20:\n        break\n"
    )
}
