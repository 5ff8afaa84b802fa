//! The expert ceiling: the scripted experts (the policies whose trajectories the models are
//! trained on, mistakes and look-ups included) play every evaluated split, for every system,
//! under the evaluation's budgets and on the evaluated tasks. Models imitate the experts, so a
//! budget that cuts the experts off caps the models too, and a run under it measures its own
//! set-up. [`refusal`] turns a ceiling below 100% TGC into an error that names the budget.
//!
//! Each (system, split) is a content-addressed stage, so a re-run reads it instead of playing
//! it again.

use std::collections::BTreeMap;
use std::time::Instant;

use rung_agents::{EvalReport, ExpertOptions, Experts, evaluate};
use rung_env::Split;
use rung_trajectory::SystemKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ExperimentError;
use crate::config::{ExperimentConfig, split_name};
use crate::episodes::Episodes;
use crate::plan::short;
use crate::stages::{finish, parse_done};
use crate::store::{Stage, StageKind, Store, io};

/// The experts of one system on one evaluated split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CeilingOutput {
    /// Content key.
    pub key: String,
    /// The system.
    pub system: SystemKind,
    /// The split.
    pub split: Split,
    /// The experts' evaluation (per-task outcomes and end reasons included).
    pub report: EvalReport,
}

impl CeilingOutput {
    /// The experts' TGC, percent.
    pub fn tgc(&self) -> f64 {
        self.report.scores.overall.tgc
    }
}

/// The readable name of a ceiling stage: `2A-test_normal`.
pub fn ceiling_name(system: SystemKind, split: Split) -> String {
    format!("{}-{}", short(system), split_name(split))
}

/// Where the ceiling of `system` on `split` lives: known from the config alone.
pub fn ceiling_stage(
    config: &ExperimentConfig,
    store: &Store,
    system: SystemKind,
    split: Split,
) -> Stage {
    let inputs = json!({
        "environment": config.environment, "system": system, "split": split,
        "tasks": crate::subsets::eval_key(config, split), "budgets": config.evaluation.budgets,
        "mistake_rate": config.data.mistake_rate, "docs_rate": config.data.docs_rate,
        "seed": config.data.seed,
    });
    store.stage(StageKind::Ceiling, &ceiling_name(system, split), &inputs)
}

/// Plays (or reads) the experts of `system` on `split`; `None` where the environment has no
/// gold plans for the experts to play (AppWorld without a gold file).
pub fn ceiling(
    config: &ExperimentConfig,
    store: &Store,
    episodes: &Episodes,
    system: SystemKind,
    split: Split,
) -> Result<Option<CeilingOutput>, ExperimentError> {
    if let crate::config::EnvironmentConfig::Appworld { gold: None, .. } = config.environment {
        return Ok(None);
    }
    let stage = ceiling_stage(config, store, system, split);
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done).map(Some);
    }
    let name = ceiling_name(system, split);
    let mut options = episodes.options(split, None, Some(format!("experts {name}")))?;
    options.tasks = Some(crate::subsets::eval_tasks(config, episodes, split)?);
    let Some(gold) = options.gold.clone() else {
        return Ok(None);
    };
    store.log(json!({"event": "start", "stage": "ceiling", "name": name, "key": stage.key}));
    let started = Instant::now();
    let experts = Experts::new(
        gold,
        ExpertOptions {
            mistake_rate: config.data.mistake_rate,
            docs_rate: config.data.docs_rate,
        },
    )
    .system(system, episodes.apps())
    .with_budgets(config.evaluation.budgets.budgets())
    .with_seed(config.data.seed);
    std::fs::create_dir_all(&stage.dir).map_err(|e| io(&stage.dir, e))?;
    options.trajectories = Some(stage.dir.join("trajectories.jsonl"));
    let report = evaluate(&experts, split, &options)
        .map_err(|e| ExperimentError::Stage(format!("expert ceiling {name}: {e}")))?;
    let output = CeilingOutput {
        key: stage.key.clone(),
        system,
        split,
        report,
    };
    finish(store, &stage, &output, started)?;
    Ok(Some(output))
}

/// The ceilings of every system of `systems` on every evaluated split.
pub fn ceilings(
    config: &ExperimentConfig,
    store: &Store,
    episodes: &Episodes,
    systems: &[SystemKind],
) -> Result<Vec<CeilingOutput>, ExperimentError> {
    let mut out = Vec::new();
    for &split in &config.evaluation.splits {
        for &system in systems {
            out.extend(ceiling(config, store, episodes, system, split)?);
        }
    }
    Ok(out)
}

/// The config key of the budget an episode end names (`budget_exceeded:executor_steps` →
/// `max_executor_steps`); `None` for ends that are no budget.
pub fn budget_key(end: &str) -> Option<String> {
    end.strip_prefix("budget_exceeded:")
        .map(|budget| format!("max_{budget}"))
}

/// Why a config whose experts fall short cannot measure, split by split; `None` when the
/// experts reach 100% TGC everywhere.
pub fn refusal(config: &ExperimentConfig, ceilings: &[CeilingOutput]) -> Option<String> {
    let budgets = config.evaluation.budgets.budgets();
    let now = |key: &str| -> Option<String> {
        let value = match key {
            "max_interactions" => u64::from(budgets.max_interactions),
            "max_tokens_per_turn" => budgets.max_tokens_per_turn,
            "max_subtasks" => u64::from(budgets.max_subtasks),
            "max_executor_steps" => u64::from(budgets.max_executor_steps),
            "max_format_retries" => u64::from(budgets.max_format_retries),
            _ => return None,
        };
        Some(value.to_string())
    };
    let mut by_split: BTreeMap<String, Vec<&CeilingOutput>> = BTreeMap::new();
    for c in ceilings {
        by_split.entry(split_name(c.split)).or_default().push(c);
    }
    let mut reasons = Vec::new();
    for split in config.evaluation.splits.iter().map(|s| split_name(*s)) {
        let Some(of_split) = by_split.get(&split) else {
            continue;
        };
        let outcomes: Vec<_> = of_split.iter().flat_map(|c| &c.report.outcomes).collect();
        let failed: Vec<_> = outcomes.iter().filter(|o| !o.success).collect();
        if failed.is_empty() {
            continue;
        }
        let tgc = 100.0 * (outcomes.len() - failed.len()) as f64 / outcomes.len() as f64;
        let systems: Vec<String> = of_split
            .iter()
            .filter(|c| c.tgc() < 100.0)
            .map(|c| format!("{} {:.1}%", c.system.name(), c.tgc()))
            .collect();
        let mut ends: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &failed {
            *ends.entry(o.end.as_str()).or_insert(0) += 1;
        }
        // The most frequent end among failed episodes, a budget first on ties.
        let (end, count) = ends
            .iter()
            .max_by_key(|(end, n)| (**n, budget_key(end).is_some()))
            .map(|(e, n)| (*e, *n))
            .expect("some episode failed");
        let fix = match budget_key(end) {
            Some(key) => format!(
                "{count} of {} episodes end on {key}; raise `evaluation.budgets.{key}` (now {})",
                outcomes.len(),
                now(&key).unwrap_or_else(|| "?".into())
            ),
            None => format!(
                "{} of {} episodes fail, {count} of them ending `{end}`, which is no budget: the \
                 experts' gold plans do not solve these tasks",
                failed.len(),
                outcomes.len()
            ),
        };
        reasons.push(format!(
            "experts reach {tgc:.1}% TGC on {split} under these budgets ({}): {fix}",
            systems.join(", ")
        ));
    }
    (!reasons.is_empty()).then(|| {
        format!(
            "the expert ceiling is below 100% TGC, so this run could not measure its models: \
             {}",
            reasons.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(budgets: &str, out: &std::path::Path) -> ExperimentConfig {
        let text = format!(
            r#"
name = "t"
output_dir = "{}"
environment = {{ kind = "embedded" }}
data = {{ train_tasks = 4, validation_tasks = 2 }}
models = {{ tiny = {{ preset = "tiny" }} }}
evaluation = {{ splits = ["test_normal"], tasks_per_split = 12 {budgets} }}
[[group]]
systems = ["single", "two_agent"]
sizes = ["tiny"]
schedules = ["prost"]
seeds = [0]
"#,
            out.display()
        );
        ExperimentConfig::from_toml(&text).unwrap()
    }

    fn out(tag: &str) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("rung-ceiling-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    fn starts(out: &std::path::Path, stage: &str) -> usize {
        std::fs::read_to_string(out.join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"start\"") && l.contains(&format!("\"stage\":\"{stage}\"")))
            .count()
    }

    #[test]
    fn a_budget_that_cuts_the_experts_off_is_refused_before_any_training() {
        let out = out("refused");
        let config = config(", budgets = { max_executor_steps = 1 }", &out);
        let err = crate::run(&config, &crate::RunOptions::default())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("experts reach"), "{err}");
        assert!(
            err.contains("% TGC on test_normal under these budgets"),
            "{err}"
        );
        assert!(err.contains("episodes end on max_executor_steps"), "{err}");
        assert!(
            err.contains("raise `evaluation.budgets.max_executor_steps` (now 1)"),
            "{err}"
        );
        assert!(
            err.contains("two_agent"),
            "the system cut off is named: {err}"
        );
        assert!(!out.join("stages/train").exists(), "nothing trained");
        assert_eq!(starts(&out, "train"), 0);
        // The ceilings are stages: asking again plays nothing.
        let played = starts(&out, "ceiling");
        assert_eq!(played, 2, "one per system");
        let store = Store::open(&out, &[]).unwrap();
        let episodes = crate::executor::episodes(&config);
        let again = ceilings(
            &config,
            &store,
            &episodes,
            &[SystemKind::Single, SystemKind::TwoAgent],
        )
        .unwrap();
        assert_eq!(starts(&out, "ceiling"), played);
        assert!(refusal(&config, &again).is_some());
        let two = again
            .iter()
            .find(|c| c.system == SystemKind::TwoAgent)
            .unwrap();
        assert!(two.tgc() < 100.0);
        assert_eq!(two.report.episodes, 12, "the evaluated tasks");
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn the_default_budgets_let_the_experts_complete_every_task() {
        let out = out("default");
        let config = config("", &out);
        let store = Store::open(&out, &[]).unwrap();
        let episodes = crate::executor::episodes(&config);
        let systems = [
            SystemKind::Single,
            SystemKind::TwoAgent,
            SystemKind::ThreeAgent,
        ];
        let all = ceilings(&config, &store, &episodes, &systems).unwrap();
        assert_eq!(all.len(), 3);
        for c in &all {
            assert_eq!(c.tgc(), 100.0, "{:?}: {:?}", c.system, c.report.ends);
            assert_eq!(c.report.outcomes.len(), 12);
        }
        assert_eq!(refusal(&config, &all), None);
        let _ = std::fs::remove_dir_all(&out);
    }

    #[test]
    fn every_committed_embedded_config_passes_its_expert_ceiling() {
        let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut checked = 0;
        for entry in std::fs::read_dir(&configs).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let mut config = ExperimentConfig::from_file(&path).unwrap();
            if !matches!(
                config.environment,
                crate::config::EnvironmentConfig::Embedded { .. }
            ) {
                continue;
            }
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            let out = out(&format!("committed-{name}"));
            config.output_dir = out.clone();
            let store = Store::open(&out, &[]).unwrap();
            let episodes = crate::executor::episodes(&config);
            let systems = crate::plan::systems(&crate::plan::runs(&config));
            let all = ceilings(&config, &store, &episodes, &systems).unwrap();
            assert_eq!(refusal(&config, &all), None, "{}", path.display());
            checked += 1;
            let _ = std::fs::remove_dir_all(&out);
        }
        assert!(checked >= 3, "smoke, memorise and default at least");
    }
}
