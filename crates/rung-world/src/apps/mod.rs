//! The apps of the embedded world and the registry through which agent code reaches them.
//!
//! Each app module declares its APIs with [`ApiSpec`] and seeds its share of the population.
//! Every app has `login`/`logout` like AppWorld's; `api_docs` and `supervisor` mirror AppWorld's
//! APIs of the same names.

mod api_docs;
mod files;
mod mail;
mod music;
mod notes;
mod pay;
mod phone;
mod shop;
mod spec;
mod supervisor;
#[cfg(test)]
mod test_support;
mod todo;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::json;

pub use spec::*;

use rand_chacha::ChaCha8Rng;

use crate::db::{Db, Id};

/// Seeds every app's history for the people already in `db`.
pub(crate) fn populate(db: &mut Db, rng: &mut ChaCha8Rng, now: &str) {
    mail::populate(db, rng, now);
    music::populate(db, rng, now);
    pay::populate(db, rng, now);
    notes::populate(db, rng, now);
    todo::populate(db, rng, now);
    phone::populate(db, rng, now);
    files::populate(db, rng, now);
    shop::populate(db, rng, now);
}

/// Name and one-line description of each app, in the order `show_app_descriptions` lists them.
pub const APPS: &[(&str, &str)] = &[
    (
        "mail",
        "Send, read, reply to, forward, star and delete emails.",
    ),
    (
        "music",
        "Search songs and artists, like songs, follow artists and manage playlists.",
    ),
    (
        "pay",
        "Send and request money, see your balance and transactions with other people.",
    ),
    ("notes", "Write, search, tag, pin and delete notes."),
    (
        "todo",
        "Manage to-do projects and tasks with due dates and priorities.",
    ),
    (
        "phone",
        "Your contacts (with relationships) and text messages.",
    ),
    (
        "files",
        "Your files and directories: read, create, update, move, copy and delete.",
    ),
    (
        "shop",
        "Search products, manage your cart, place and cancel orders, write reviews.",
    ),
    ("api_docs", "Look up the documentation of every app's APIs."),
    (
        "supervisor",
        "Your supervisor's profile, addresses, cards and account passwords; complete tasks.",
    ),
];

/// All APIs by app, then by name.
pub struct Registry {
    apps: BTreeMap<&'static str, BTreeMap<&'static str, ApiSpec>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::build);

/// The registry of all APIs (built once).
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    fn build() -> Self {
        let specs = [
            api_docs::apis(),
            supervisor::apis(),
            mail::apis(),
            music::apis(),
            pay::apis(),
            notes::apis(),
            todo::apis(),
            phone::apis(),
            files::apis(),
            shop::apis(),
        ]
        .into_iter()
        .flatten();
        let mut apps: BTreeMap<&'static str, BTreeMap<&'static str, ApiSpec>> = BTreeMap::new();
        for spec in specs {
            let previous = apps.entry(spec.app).or_default().insert(spec.name, spec);
            assert!(previous.is_none(), "API declared twice");
        }
        Self { apps }
    }

    /// The API `app.api`, or a 404 naming what exists.
    pub fn api(&self, app: &str, api: &str) -> Result<&ApiSpec, ApiError> {
        let apis = self.app(app)?;
        apis.get(api).ok_or_else(|| {
            let names: Vec<&str> = apis.keys().copied().collect();
            ApiError::not_found(format!(
                "No API named '{api}' in app '{app}'. Its APIs are: {}.",
                names.join(", ")
            ))
        })
    }

    /// The APIs of one app, or a 404 naming the apps.
    pub fn app(&self, app: &str) -> Result<&BTreeMap<&'static str, ApiSpec>, ApiError> {
        self.apps.get(app).ok_or_else(|| {
            ApiError::not_found(format!(
                "No app named '{app}'. The apps are: {}.",
                self.app_names().join(", ")
            ))
        })
    }

    /// Whether `app` exists.
    pub fn has_app(&self, app: &str) -> bool {
        self.apps.contains_key(app)
    }

    /// App names in `APPS` order.
    pub fn app_names(&self) -> Vec<&'static str> {
        APPS.iter()
            .map(|(name, _)| *name)
            .filter(|name| self.apps.contains_key(name))
            .collect()
    }

    /// Every API, app by app.
    pub fn all(&self) -> impl Iterator<Item = &ApiSpec> {
        self.apps.values().flat_map(|apis| apis.values())
    }

    /// All docs keyed by app then API (what `GET /api_docs` returns).
    pub fn docs(&self) -> serde_json::Value {
        let docs: serde_json::Map<String, serde_json::Value> = self
            .apps
            .iter()
            .map(|(app, apis)| {
                let apis: serde_json::Map<String, serde_json::Value> = apis
                    .iter()
                    .map(|(name, spec)| (name.to_string(), spec.doc_json()))
                    .collect();
                (app.to_string(), apis.into())
            })
            .collect();
        docs.into()
    }
}

/// The `login` and `logout` APIs every app shares; usernames are emails, or phone numbers for
/// the phone app.
pub fn account_apis(app: &'static str) -> [ApiSpec; 2] {
    let login = ApiSpec::new(app, "login", "POST", "/auth/token")
        .doc("Log in with your username (email, or phone number for the phone app) and password to get an access token.")
        .open()
        .params([
            req("username", ParamType::Str, "Your email address or phone number."),
            req("password", ParamType::Str, "Your password for this app."),
        ])
        .returns(r#"{"access_token":"string","token_type":"Bearer"}"#)
        .handler(login);
    let logout = ApiSpec::new(app, "logout", "DELETE", "/auth/token")
        .doc("Log out, invalidating the access token.")
        .returns(r#"{"message":"string"}"#)
        .handler(|call| {
            let token = call.args.str("access_token").to_owned();
            call.world.revoke_token(&token);
            Ok(json!({"message": "Successfully logged out."}))
        });
    [login, logout]
}

fn login(call: &mut Call<'_>) -> ApiResult {
    let app = call.app;
    let username = call.args.str("username");
    let password = call.args.str("password");
    let db = &call.world.db;
    let person: Option<Id> = db.person_by_username(username).map(|p| p.id);
    let valid = person.is_some_and(|id| {
        db.accounts
            .iter()
            .any(|a| a.person_id == id && a.app == app && a.password == password)
    });
    match person {
        Some(id) if valid => {
            let token = call.world.issue_token(app, id);
            Ok(json!({"access_token": token, "token_type": "Bearer"}))
        }
        _ => Err(ApiError::unauthorized(
            "Invalid credentials: wrong username or password.",
        )),
    }
}

/// 401 unless `owner` is the caller (AppWorld answers unauthorised for other users' records); the
/// message says which kind of record was asked for.
pub fn check_owner(owner: Id, user: Id, what: &str, id: Id) -> Result<(), ApiError> {
    if owner == user {
        Ok(())
    } else {
        Err(ApiError::unauthorized(format!(
            "You are not authorized to access {what} {id}: it belongs to another user."
        )))
    }
}
