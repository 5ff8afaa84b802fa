//! Helpers shared by the apps' unit tests: call an API with a JSON object of keyword arguments,
//! and log a person in with the password the world seeded for them.

use serde_json::Value;

use super::ApiResult;
use crate::db::Id;
use crate::world::World;

/// Calls `app.api` with the keys of `args` as keyword arguments.
pub(super) fn call(w: &mut World, app: &str, api: &str, args: Value) -> ApiResult {
    let named = args
        .as_object()
        .expect("keyword arguments are a JSON object")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    w.call(app, api, vec![], named)
}

/// Logs `person` in to `app` (by phone number for the phone app, by email otherwise) and returns
/// the access token.
pub(super) fn login(w: &mut World, app: &str, person: Id) -> String {
    let password =
        w.db.accounts
            .iter()
            .find(|a| a.person_id == person && a.app == app)
            .expect("every person has an account on every app")
            .password
            .clone();
    let username = if app == "phone" {
        w.db.person(person).phone_number.clone()
    } else {
        w.db.person(person).email.clone()
    };
    let out = call(
        w,
        app,
        "login",
        serde_json::json!({"username": username, "password": password}),
    )
    .expect("login with the seeded password succeeds");
    out["access_token"]
        .as_str()
        .expect("login returns a token")
        .to_owned()
}
