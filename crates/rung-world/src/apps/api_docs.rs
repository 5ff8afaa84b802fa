//! `api_docs`: documentation of every app, generated from the API declarations themselves, so a
//! doc can never disagree with what the API accepts.

use serde_json::{Value, json};

use super::{APPS, ApiError, ApiSpec, ParamType, page_params, paginate, registry, req};

const APP: &str = "api_docs";

pub(super) fn apis() -> Vec<ApiSpec> {
    vec![
        ApiSpec::new(APP, "show_app_descriptions", "GET", "/apps")
            .doc("List the apps with a short description of each.")
            .open()
            .returns(r#"[{"name":"string","description":"string"}]"#)
            .handler(|_| {
                let apps = registry().app_names();
                let rows: Vec<Value> = APPS
                    .iter()
                    .filter(|(name, _)| apps.contains(name))
                    .map(|(name, description)| json!({"name": name, "description": description}))
                    .collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_api_descriptions", "GET", "/apps/{app_name}")
            .doc("List the APIs of one app with a short description of each.")
            .open()
            .params([req("app_name", ParamType::Str, "Name of the app.")])
            .returns(r#"[{"name":"string","description":"string"}]"#)
            .handler(|call| {
                let apis = registry().app(call.args.str("app_name"))?;
                let rows: Vec<Value> =
                    apis.values().map(|s| json!({"name": s.name, "description": s.description})).collect();
                Ok(rows.into())
            }),
        ApiSpec::new(APP, "show_api_doc", "GET", "/apps/{app_name}/{api_name}")
            .doc("Show the full documentation of one API: parameters, types, defaults, constraints and response.")
            .open()
            .params([
                req("app_name", ParamType::Str, "Name of the app."),
                req("api_name", ParamType::Str, "Name of the API."),
            ])
            .returns(r#"{"app_name":"string","api_name":"string","path":"string","method":"string","description":"string","parameters":[],"response_schemas":{}}"#)
            .handler(|call| Ok(registry().api(call.args.str("app_name"), call.args.str("api_name"))?.doc_json())),
        ApiSpec::new(APP, "search_api_docs", "GET", "/search")
            .doc("Search all APIs by words in their names and descriptions.")
            .open()
            .params([req("query", ParamType::Str, "Words to look for.")])
            .params(page_params())
            .returns(r#"[{"app_name":"string","api_name":"string","description":"string"}]"#)
            .handler(|call| {
                let words: Vec<String> =
                    call.args.str("query").split_whitespace().map(str::to_lowercase).collect();
                if words.is_empty() {
                    return Err(ApiError::invalid("query must contain at least one word"));
                }
                let mut scored: Vec<(usize, &ApiSpec)> = registry()
                    .all()
                    .map(|s| {
                        let text = format!("{} {} {}", s.app, s.name.replace('_', " "), s.description).to_lowercase();
                        (words.iter().filter(|w| text.contains(w.as_str())).count(), s)
                    })
                    .filter(|(score, _)| *score > 0)
                    .collect();
                scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
                let rows = paginate(scored, call.args.page())
                    .into_iter()
                    .map(|(_, s)| json!({"app_name": s.app, "api_name": s.name, "description": s.description}))
                    .collect::<Vec<_>>();
                Ok(rows.into())
            }),
    ]
}
