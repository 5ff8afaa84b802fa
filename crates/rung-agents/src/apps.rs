//! The apps an orchestrator may delegate to, as its prompt lists them.

use serde_json::Value;

/// Apps that are tools of every agent rather than places to delegate work to.
const INFRASTRUCTURE: [&str; 2] = ["api_docs", "supervisor"];

/// Names (and, where known, one-line descriptions) of the environment's apps.
///
/// The orchestrator's `SUBTASK <app>: …` must name one of them; the list differs between the
/// embedded world and real AppWorld, so it comes from the environment rather than a constant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppCatalog {
    apps: Vec<(String, Option<String>)>,
}

impl AppCatalog {
    /// A catalog from explicit names and descriptions.
    pub fn new(apps: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        Self {
            apps: apps
                .into_iter()
                .filter(|(name, _)| !INFRASTRUCTURE.contains(&name.as_str()))
                .collect(),
        }
    }

    /// The embedded world's apps with their descriptions.
    pub fn embedded() -> Self {
        Self::new(
            rung_world::apps::APPS
                .iter()
                .map(|(name, description)| ((*name).to_owned(), Some((*description).to_owned()))),
        )
    }

    /// The apps of any environment, from its `api_docs()` document (an object keyed by app, as
    /// both the embedded world and AppWorld serve it). Unknown shapes give an empty catalog,
    /// which accepts any app name.
    pub fn from_api_docs(docs: &Value) -> Self {
        match docs {
            Value::Object(apps) => Self::new(apps.keys().map(|name| (name.clone(), None))),
            _ => Self::default(),
        }
    }

    /// App names in catalog order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.apps.iter().map(|(name, _)| name.as_str())
    }

    /// Whether the orchestrator may name `app` (always true for an empty catalog).
    pub fn accepts(&self, app: &str) -> bool {
        self.apps.is_empty() || self.apps.iter().any(|(name, _)| name == app)
    }

    /// Whether the catalog lists nothing.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// One line per app for a prompt: `- mail: Send, read … emails.`
    pub fn describe(&self) -> String {
        self.apps
            .iter()
            .map(|(name, description)| match description {
                Some(d) => format!("- {name}: {d}"),
                None => format!("- {name}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_lists_the_delegable_apps() {
        let catalog = AppCatalog::embedded();
        let names: Vec<&str> = catalog.names().collect();
        assert_eq!(
            names,
            [
                "mail", "music", "pay", "notes", "todo", "phone", "files", "shop"
            ]
        );
        assert!(catalog.accepts("phone") && !catalog.accepts("supervisor"));
        assert!(catalog.describe().starts_with("- mail: "));
    }

    #[test]
    fn catalog_from_api_docs_uses_the_top_level_keys() {
        let docs = serde_json::json!({"spotify": {}, "api_docs": {}, "venmo": {}});
        let catalog = AppCatalog::from_api_docs(&docs);
        assert_eq!(catalog.names().collect::<Vec<_>>(), ["spotify", "venmo"]);
        assert!(AppCatalog::from_api_docs(&Value::Null).accepts("anything"));
    }
}
