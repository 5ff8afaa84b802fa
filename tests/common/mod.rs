//! Helpers shared by the experiment tests: committed configs run into scratch folders.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rung_experiment::ExperimentConfig;
use rung_experiment::report::Results;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `configs/<file>` with its output redirected to a fresh scratch folder named after `tag`.
pub fn committed_config(file: &str, tag: &str) -> (ExperimentConfig, PathBuf) {
    let mut config = ExperimentConfig::from_file(&root().join("configs").join(file)).unwrap();
    let out = std::env::temp_dir().join(format!("rung-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    config.output_dir = out.clone();
    (config, out)
}

/// A finished run's `results.json`.
pub fn read_results(path: &Path) -> Results {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}
