//! World pretraining: the corpus stage (world walks rendered as executor conversations) and
//! one pretraining stage per preset, whose base model every role, schedule and seed of that
//! preset fine-tunes.
//!
//! Both are content-addressed like the other stages: the corpus by its options and the
//! evaluated suite it keeps away from, a base by its preset, the corpus, the tokenizer and its
//! training keys. A changed corpus retrains the bases, and through their keys every role model
//! fine-tuned from them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rung_agents::corpus::{CorpusReport, write_corpus};
use rung_curriculum::{Curriculum, Schedule};
use rung_train::TrainConfig;
use rung_trajectory::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ExperimentError;
use crate::config::{EnvironmentConfig, ExperimentConfig, PretrainingConfig};
use crate::stages::{finish, parse_done};
use crate::store::{Stage, StageKind, Store, io};

/// Fraction of the corpus's walks held out for the base's validation loss.
const VALIDATION_FRACTION: f64 = 0.02;

/// A finished corpus stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusOutput {
    /// Content key.
    pub key: String,
    /// The corpus (trajectory JSONL).
    pub path: PathBuf,
    /// What was written.
    pub report: CorpusReport,
}

/// A finished pretraining stage: the base model of one preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainOutput {
    /// Content key (part of every fine-tuning key).
    pub key: String,
    /// The preset.
    pub preset: String,
    /// The base model (the run's last checkpoint, an HF-format directory).
    pub model_dir: PathBuf,
    /// Its tokenizer.
    pub tokenizer: PathBuf,
    /// Parameters.
    pub params: u64,
    /// Tokens processed over all epochs.
    pub tokens: u64,
    /// Supervised tokens over all epochs.
    pub supervised_tokens: u64,
    /// Training FLOPs (6·N·tokens).
    pub flops: f64,
    /// Seconds of training.
    pub wall_seconds: f64,
    /// Validation loss on held-out walks.
    pub final_val_loss: Option<f64>,
}

/// What the report shows of pretraining: the corpus and each base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pretraining {
    /// The corpus.
    pub corpus: CorpusReport,
    /// One base per preset.
    pub bases: Vec<PretrainOutput>,
}

impl Pretraining {
    /// The report's section on pretraining.
    pub fn markdown(&self) -> String {
        use std::fmt::Write as _;
        let c = &self.corpus;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "World pretraining: {} walks through other suites' worlds ({} executor \
             conversations, {} cells of which {} failed and are not supervised; {} walks \
             dropped for mentioning a person of an evaluated world). Each preset's base below is \
             what its role models fine-tune (models marked `pretrained = false` start from \
             scratch).\n",
            c.walks, c.conversations, c.cells, c.failed_cells, c.dropped
        );
        let _ = writeln!(
            md,
            "| base | params | tokens | supervised tokens | FLOPs | seconds | final val loss |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        for b in &self.bases {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2e} | {:.0} | {} |",
                b.preset,
                b.params,
                b.tokens,
                b.supervised_tokens,
                b.flops,
                b.wall_seconds,
                b.final_val_loss.map_or("–".into(), |v| format!("{v:.3}"))
            );
        }
        md.push('\n');
        md
    }
}

fn pretraining(config: &ExperimentConfig) -> Result<&PretrainingConfig, ExperimentError> {
    config
        .pretraining
        .as_ref()
        .ok_or_else(|| ExperimentError::Config("this experiment has no `[pretraining]`".into()))
}

fn evaluated_suite(config: &ExperimentConfig) -> u64 {
    match config.environment {
        EnvironmentConfig::Embedded { suite_seed } => suite_seed,
        EnvironmentConfig::Appworld { .. } => 0,
    }
}

/// Where the corpus lives.
pub fn corpus_stage(config: &ExperimentConfig, store: &Store) -> Result<Stage, ExperimentError> {
    let p = pretraining(config)?;
    let inputs = json!({
        "corpus": p.corpus, "evaluated_suite": evaluated_suite(config),
        // The walk generator's own version (bump it when walks change) and the world's.
        "walks": 2, "world": rung_world::WORLD_VERSION,
    });
    Ok(store.stage(StageKind::Corpus, "walks", &inputs))
}

/// Generates the corpus (or finds it done).
pub fn corpus(config: &ExperimentConfig, store: &Store) -> Result<CorpusOutput, ExperimentError> {
    let stage = corpus_stage(config, store)?;
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    store.log(json!({"event": "start", "stage": "corpus", "key": stage.key}));
    let started = Instant::now();
    std::fs::create_dir_all(&stage.dir).map_err(|e| io(&stage.dir, e))?;
    let path = stage.dir.join("corpus.jsonl");
    let report = write_corpus(&pretraining(config)?.corpus, evaluated_suite(config), &path)
        .map_err(|e| ExperimentError::Stage(format!("the pretraining corpus: {e}")))?;
    if report.walks == 0 {
        return Err(ExperimentError::Stage(
            "the pretraining corpus has no walks: every walk mentioned an evaluated person; \
             choose other `pretraining.corpus.suite_seeds`"
                .into(),
        ));
    }
    let output = CorpusOutput {
        key: stage.key.clone(),
        path,
        report,
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}

/// Where the base model of `preset` lives.
pub fn pretrain_stage(
    config: &ExperimentConfig,
    store: &Store,
    preset: &str,
    corpus_key: &str,
    tokenizer_key: Option<&str>,
) -> Result<Stage, ExperimentError> {
    let p = pretraining(config)?;
    let inputs = json!({
        "preset": preset, "corpus": corpus_key, "tokenizer": tokenizer_key,
        "training": config.training, "pretraining": p.training, "seed": p.seed,
    });
    Ok(store.stage(StageKind::Pretrain, preset, &inputs))
}

/// The `rung train` config of `preset`'s base: `[training]`, then `[pretraining.training]`
/// (epochs default to 1), then what the stage owns: every executor conversation of the corpus
/// supervised (`all`), sub-tasks from the corpus's own labels, 2% of the walks held out.
pub fn pretrain_config(
    config: &ExperimentConfig,
    preset: &str,
    corpus: &Path,
    tokenizer: Option<&Path>,
    output_dir: &Path,
) -> anyhow::Result<TrainConfig> {
    let p = config
        .pretraining
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no `[pretraining]`"))?;
    let mut merged = serde_json::to_value(&config.training)?;
    let object = merged
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("`training` must be a table"))?;
    object.insert("epochs".into(), json!(1));
    for (k, v) in serde_json::to_value(&p.training)?
        .as_object()
        .into_iter()
        .flatten()
    {
        object.insert(k.clone(), v.clone());
    }
    let all = Curriculum {
        schedule: Schedule::All,
        ..Curriculum::default()
    };
    object.insert("data".into(), json!(corpus));
    object.insert("validation_fraction".into(), json!(VALIDATION_FRACTION));
    object.insert("output_dir".into(), json!(output_dir));
    object.insert("model".into(), json!({"preset": preset}));
    object.insert("tokenizer".into(), json!(tokenizer));
    object.insert("roles".into(), json!([Role::Executor]));
    object.insert("curriculum".into(), serde_json::to_value(all)?);
    object.insert("seed".into(), json!(p.seed));
    object.insert("gold_plans".into(), json!(false));
    object.insert("progress".into(), json!(true));
    TrainConfig::from_json(&merged.to_string())
}

/// Pretrains (or resumes, or finds done) the base model of `preset`.
pub fn pretrain(
    config: &ExperimentConfig,
    store: &Store,
    preset: &str,
    corpus: &CorpusOutput,
    tokenizer: Option<&(PathBuf, String)>,
) -> Result<PretrainOutput, ExperimentError> {
    let stage = pretrain_stage(
        config,
        store,
        preset,
        &corpus.key,
        tokenizer.map(|t| t.1.as_str()),
    )?;
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    let run_dir = stage.dir.join("run");
    let train_config = pretrain_config(
        config,
        preset,
        &corpus.path,
        tokenizer.map(|t| t.0.as_path()),
        &run_dir,
    )
    .map_err(|e| ExperimentError::Config(format!("pretraining {preset}: {e:#}")))?;
    let started = Instant::now();
    let summary = crate::stages::train_or_resume(store, &stage, preset, &run_dir, train_config)?;
    let model_dir = summary.last_checkpoint.clone().ok_or_else(|| {
        ExperimentError::Stage(format!("pretraining {preset} saved no checkpoint"))
    })?;
    let model_config = rung_model::ModelConfig::from_hf_file(&model_dir.join("config.json"))
        .map_err(|e| ExperimentError::Stage(format!("{}: {e}", model_dir.display())))?;
    let params = model_config.num_params() as u64;
    let epochs = crate::stages::epoch_costs(&run_dir.join("metrics.jsonl"), 6.0 * params as f64)?;
    let output = PretrainOutput {
        key: stage.key.clone(),
        preset: preset.to_owned(),
        tokenizer: run_dir.join("tokenizer.json"),
        model_dir,
        params,
        tokens: epochs.iter().map(|e| e.tokens).sum(),
        supervised_tokens: epochs.iter().map(|e| e.supervised_tokens).sum(),
        flops: epochs.last().map_or(0.0, |e| e.cumulative_flops),
        wall_seconds: epochs.iter().map(|e| e.seconds).sum(),
        final_val_loss: summary.final_val_loss,
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}
