//! The learning curve of one run: its system evaluated with every epoch's checkpoints, next to
//! the validation token and literal-token accuracy of those checkpoints, against the training
//! tokens spent so far. It shows whether more training would change the answer.
//!
//! The run is named in `evaluation.learning_curve`; its role models keep every epoch's
//! checkpoint (their training stages are keyed by that), and one `curve` stage per epoch plays
//! the run's evaluation tasks on the chosen split with those checkpoints.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use rung_env::Split;
use rung_trajectory::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::config::{ExperimentConfig, split_name};
use crate::episodes::Episodes;
use crate::plan::{Run, TrainJob};
use crate::stages::{TrainOutput, eval_options, eval_system, finish, parse_done};
use crate::store::{Stage, StageKind, Store, io};

/// One point of the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Epoch (1-based) whose checkpoints played.
    pub epoch: usize,
    /// Training tokens up to this epoch, over the run's role models.
    pub tokens: u64,
    /// Training FLOPs up to this epoch, over the run's role models.
    pub flops: f64,
    /// TGC (percent) on the split.
    pub tgc: f64,
    /// SGC (percent) on the split.
    pub sgc: f64,
    /// Mean over roles of the validation token accuracy after this epoch.
    pub val_accuracy: Option<f64>,
    /// Mean over roles of the validation literal-token accuracy after this epoch.
    pub val_literal_accuracy: Option<f64>,
}

/// The learning curve as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCurve {
    /// The run.
    pub run: String,
    /// The split it played.
    pub split: String,
    /// One point per epoch.
    pub points: Vec<CurvePoint>,
}

impl LearningCurve {
    /// The report's section.
    pub fn markdown(&self) -> String {
        markdown(&self.run, &self.split, &self.points)
    }
}

/// The run whose curve is drawn, if the config asks for one.
pub fn curve_run<'a>(config: &ExperimentConfig, runs: &'a [Run]) -> Option<&'a Run> {
    let wanted = &config.evaluation.learning_curve.as_ref()?.run;
    runs.iter().find(|r| &r.name() == wanted)
}

/// The split the curve plays: the configured one, else the headline split.
pub fn curve_split(config: &ExperimentConfig) -> Split {
    config
        .evaluation
        .learning_curve
        .as_ref()
        .and_then(|c| c.split)
        .unwrap_or_else(|| config.test_split())
}

/// Whether `job` trains a model of the curve's run (it then keeps every epoch's checkpoint).
pub fn keeps_every_epoch(config: &ExperimentConfig, job: &TrainJob) -> bool {
    let runs = crate::plan::runs(config);
    curve_run(config, &runs).is_some_and(|run| run.jobs().values().any(|j| j == job))
}

/// Epochs of `model`'s training (its own `training.epochs`, else `[training]`'s).
pub fn epochs_of(config: &ExperimentConfig, model: &str) -> usize {
    let own = config
        .models
        .get(model)
        .and_then(|m| m.training.get("epochs"))
        .and_then(|v| v.as_integer());
    own.or_else(|| config.training.get("epochs").and_then(|v| v.as_integer()))
        .unwrap_or(3)
        .max(1) as usize
}

/// Where the curve's point after `epoch` lives.
pub fn curve_stage(
    config: &ExperimentConfig,
    store: &Store,
    run: &Run,
    train_keys: &BTreeMap<Role, &str>,
    epoch: usize,
) -> Stage {
    let split = curve_split(config);
    let inputs = json!({
        "environment": config.environment, "system": run.configuration.system,
        "models": train_keys, "seed": run.seed, "split": split, "epoch": epoch,
        "budgets": config.evaluation.budgets, "tasks": crate::subsets::eval_key(config, split),
    });
    store.stage(
        StageKind::Curve,
        &format!("{}-e{epoch}", run.name()),
        &inputs,
    )
}

/// The step at which `epoch` ended, from a training run's `metrics.jsonl`.
fn epoch_record(run_dir: &Path, epoch: usize) -> Result<Value, ExperimentError> {
    let metrics = run_dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&metrics).map_err(|e| io(&metrics, e))?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        // A resumed run may repeat an epoch's record; the last one counts.
        .rfind(|r| r["kind"] == "epoch" && r["epoch"].as_u64() == Some(epoch as u64))
        .ok_or_else(|| {
            ExperimentError::Stage(format!(
                "{} has no record of epoch {epoch}",
                metrics.display()
            ))
        })
}

/// Plays the run with the checkpoints of `epoch` (or finds the point done).
pub fn curve_point(
    config: &ExperimentConfig,
    store: &Store,
    episodes: &Episodes,
    run: &Run,
    trained: &BTreeMap<Role, TrainOutput>,
    epoch: usize,
) -> Result<CurvePoint, ExperimentError> {
    let keys: BTreeMap<Role, &str> = trained.iter().map(|(r, t)| (*r, t.key.as_str())).collect();
    let stage = curve_stage(config, store, run, &keys, epoch);
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    let name = format!("{}-e{epoch}", run.name());
    store.log(json!({"event": "start", "stage": "curve", "name": name, "key": stage.key}));
    let started = Instant::now();
    let mut at_epoch = BTreeMap::new();
    let (mut tokens, mut flops) = (0u64, 0.0);
    let (mut accuracy, mut literal) = (Vec::new(), Vec::new());
    for (role, t) in trained {
        let record = epoch_record(&t.dir, epoch)?;
        let step = record["step"].as_u64().unwrap_or(0);
        let dir = t.dir.join("checkpoints").join(format!("step-{step:08}"));
        if !dir.join("config.json").is_file() {
            return Err(ExperimentError::Stage(format!(
                "the checkpoint of epoch {epoch} ({}) is gone; the learning curve's run keeps \
                 every epoch's checkpoint, so delete its training stage to retrain it",
                dir.display()
            )));
        }
        let mut model = t.clone();
        model.model_dir = dir;
        at_epoch.insert(*role, model);
        for e in t.epochs.iter().filter(|e| e.epoch <= epoch) {
            tokens += e.tokens;
        }
        flops += t
            .epochs
            .iter()
            .find(|e| e.epoch == epoch)
            .map_or(0.0, |e| e.cumulative_flops);
        accuracy.extend(record["val_accuracy"].as_f64());
        literal.extend(record["val_literal_accuracy"].as_f64());
    }
    let split = curve_split(config);
    let system = eval_system(config, episodes, run, &at_epoch, &name)?;
    let options = eval_options(config, episodes, split, &name)?;
    let report = rung_agents::evaluate(&system, split, &options).map_err(|e| {
        ExperimentError::Stage(format!("evaluating {name} on {}: {e}", split_name(split)))
    })?;
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let point = CurvePoint {
        epoch,
        tokens,
        flops,
        tgc: report.scores.overall.tgc,
        sgc: report.scores.overall.sgc,
        val_accuracy: mean(&accuracy),
        val_literal_accuracy: mean(&literal),
    };
    finish(store, &stage, &point, started)?;
    Ok(point)
}

/// The report's section on the learning curve.
pub fn markdown(run: &str, split: &str, points: &[CurvePoint]) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(md, "## Learning curve (`{run}` on `{split}`)\n");
    let _ = writeln!(
        md,
        "The run's system played with every epoch's checkpoints on the evaluated tasks, next to \
         those checkpoints' validation accuracy (mean over roles): does more training change \
         the answer?\n"
    );
    let _ = writeln!(md, "![learning curve](plots/learning-curve.svg)\n");
    let _ = writeln!(
        md,
        "| epoch | training tokens | training FLOPs | TGC | SGC | val token acc. | val literal acc. |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|");
    let percent = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v));
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2e} | {:.1} | {:.1} | {} | {} |",
            p.epoch,
            p.tokens,
            p.flops,
            p.tgc,
            p.sgc,
            percent(p.val_accuracy),
            percent(p.val_literal_accuracy)
        );
    }
    md.push('\n');
    md
}
