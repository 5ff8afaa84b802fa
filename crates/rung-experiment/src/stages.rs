//! The stages: expert data, the shared tokenizer, one role's training, one run's evaluation.
//!
//! Each function takes its inputs, finds or creates its content-addressed [`Stage`], skips
//! the work when the stage is done, and otherwise does it and records its result in
//! `done.json`. Training resumes from the newest checkpoint when a previous run was killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rung_agents::{
    DataGenOptions, Decoding, EvalReport, ExpertOptions, ModelPolicyOptions, ModelSpec, System,
    evaluate, generate_expert_data, load_role_policies,
};
use rung_curriculum::Curriculum;
use rung_env::Split;
use rung_model::ModelSource;
use rung_model::tokenizer::Tokenizer;
use rung_train::TrainConfig;
use rung_trajectory::Role;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::config::{
    CheckpointChoice, EnvironmentConfig, ExperimentConfig, TokenizerConfig, split_name,
};
use crate::episodes::Episodes;
use crate::plan::{Run, TrainJob, short};
use crate::store::{Stage, StageKind, Store, io, write_atomic};

/// A finished data stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataOutput {
    /// Content key (read by later stages' keys).
    pub key: String,
    /// The trajectories (JSONL).
    pub trajectories: PathBuf,
    /// Episodes written.
    pub episodes: usize,
    /// The experts' evaluation (must be 100% TGC on the embedded world).
    pub tgc: f64,
}

/// The readable name of a data stage: `1A-train`.
pub fn data_name(system: rung_trajectory::SystemKind, split: Split) -> String {
    format!("{}-{}", short(system), split_name(split))
}

/// Where the experts' data of `system` on `split` lives (for data that is played here, not
/// recorded elsewhere): known from the config alone, so an executor can plan every stage
/// before any runs.
pub fn data_stage(
    config: &ExperimentConfig,
    store: &Store,
    system: rung_trajectory::SystemKind,
    split: Split,
    limit: Option<usize>,
) -> Stage {
    let inputs = json!({
        "environment": config.environment, "system": system, "split": split, "limit": limit,
        "mistake_rate": config.data.mistake_rate, "docs_rate": config.data.docs_rate,
        "seed": config.data.seed, "tasks": crate::subsets::SCHEME,
        "budgets": config.evaluation.budgets, "world": rung_world::WORLD_VERSION,
        "experts": rung_agents::expert::EXPERT_VERSION,
    });
    store.stage(StageKind::Data, &data_name(system, split), &inputs)
}

/// The content key of `system`'s recorded trajectories (training or validation), the key
/// later stages see in place of a data stage's.
pub fn recorded_key(
    config: &ExperimentConfig,
    system: rung_trajectory::SystemKind,
    train: bool,
) -> Option<Result<String, ExperimentError>> {
    let files = config.data.trajectories.get(&system)?;
    Some(recorded(files, system, train).map(|d| d.key))
}

/// Plays the experts of `system` over `split` and writes their trajectories.
pub fn data(
    config: &ExperimentConfig,
    store: &Store,
    episodes: &Episodes,
    system: rung_trajectory::SystemKind,
    split: Split,
    limit: Option<usize>,
) -> Result<DataOutput, ExperimentError> {
    let name = data_name(system, split);
    if let Some(files) = config.data.trajectories.get(&system) {
        return recorded(files, system, split == config.data.train_split);
    }
    let stage = data_stage(config, store, system, split, limit);
    let trajectories = stage.dir.join("trajectories.jsonl");
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    store.log(json!({"event": "start", "stage": "data", "name": name, "key": stage.key}));
    let started = Instant::now();
    let mut run = episodes.options(split, None, Some(format!("experts {name}")))?;
    let key = if split == config.data.train_split {
        "data.train_tasks"
    } else {
        "data.validation_tasks"
    };
    run.tasks = Some(crate::subsets::pick(config, episodes, split, limit, key)?);
    let options = DataGenOptions {
        run,
        expert: ExpertOptions {
            mistake_rate: config.data.mistake_rate,
            docs_rate: config.data.docs_rate,
        },
        // The evaluation's budgets, so the experts' detours fit them and every budget-driven
        // message (format reminders, critic feedback) the models will see occurs in training.
        budgets: config.evaluation.budgets.budgets(),
        seed: config.data.seed,
        apps: episodes.apps(),
        keep_failures: false,
    };
    let report = generate_expert_data(split, system, &options, &trajectories)
        .map_err(|e| ExperimentError::Stage(format!("expert data {name}: {e}")))?;
    if !report.failed.is_empty() {
        let ids: Vec<&str> = report.failed.iter().map(|t| t.as_str()).collect();
        return Err(ExperimentError::Stage(format!(
            "expert data {name}: {} expert episode(s) failed their evaluation, so their gold \
             plans are broken: {}",
            ids.len(),
            ids.join(", ")
        )));
    }
    let output = DataOutput {
        key: stage.key.clone(),
        trajectories,
        episodes: report.written,
        tgc: report.eval.scores.overall.tgc,
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}

/// Trajectories recorded elsewhere: keyed by their content, so a changed file retrains.
fn recorded(
    files: &crate::config::TrajectoryFiles,
    system: rung_trajectory::SystemKind,
    train: bool,
) -> Result<DataOutput, ExperimentError> {
    let (path, key) = if train {
        (
            &files.train,
            format!("data.trajectories.{}.train", system.name()),
        )
    } else {
        (
            &files.validation,
            format!("data.trajectories.{}.validation", system.name()),
        )
    };
    let path = PathBuf::from(crate::config::expand_env(&path.to_string_lossy(), &key)?);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ExperimentError::Config(format!("`{key}`: cannot read {}: {e}", path.display()))
    })?;
    let episodes = rung_trajectory::read_file(&path)
        .map_err(|e| ExperimentError::Config(format!("`{key}` {}: {e}", path.display())))?;
    let tgc = if episodes.is_empty() {
        0.0
    } else {
        100.0 * episodes.iter().filter(|e| e.evaluation.success).count() as f64
            / episodes.len() as f64
    };
    Ok(DataOutput {
        key: crate::store::content_key(StageKind::Data, &json!({ "recorded": text })),
        trajectories: path,
        episodes: episodes.len(),
        tgc,
    })
}

/// Where the trained tokenizer lives, from the keys of the training data it learns from.
pub fn tokenizer_stage(vocab_size: usize, store: &Store, data_keys: &[&str]) -> Stage {
    let inputs = json!({"vocab_size": vocab_size, "data": data_keys});
    store.stage(StageKind::Tokenizer, "bpe", &inputs)
}

/// The key of a tokenizer file (`tokenizer.kind = "file"`), as later stages see it.
pub fn tokenizer_file_key(path: &Path) -> Result<String, ExperimentError> {
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    Ok(crate::store::content_key(
        StageKind::Tokenizer,
        &json!({"file_bytes": String::from_utf8_lossy(&bytes)}),
    ))
}

/// The shared tokenizer: a file, or `None` when each HF model brings its own.
pub fn tokenizer(
    config: &ExperimentConfig,
    store: &Store,
    train_data: &[DataOutput],
) -> Result<Option<(PathBuf, String)>, ExperimentError> {
    match &config.tokenizer {
        TokenizerConfig::Model => Ok(None),
        TokenizerConfig::File { path } => {
            let key = tokenizer_file_key(path)?;
            Tokenizer::from_file(path).map_err(|e| {
                ExperimentError::Config(format!("`tokenizer.path` {}: {e}", path.display()))
            })?;
            Ok(Some((path.clone(), key)))
        }
        TokenizerConfig::Train { vocab_size } => {
            let keys: Vec<&str> = train_data.iter().map(|d| d.key.as_str()).collect();
            let stage = tokenizer_stage(*vocab_size, store, &keys);
            let file = stage.dir.join("tokenizer.json");
            if store.done(&stage)?.is_some() {
                return Ok(Some((file, stage.key)));
            }
            store.log(json!({"event": "start", "stage": "tokenizer", "key": stage.key}));
            let started = Instant::now();
            let mut corpus = Vec::new();
            for data in train_data {
                let episodes = rung_trajectory::read_file(&data.trajectories).map_err(|e| {
                    ExperimentError::Stage(format!("{}: {e}", data.trajectories.display()))
                })?;
                corpus.extend(
                    episodes
                        .iter()
                        .flat_map(|e| e.turns.iter())
                        .flat_map(|t| t.messages.iter())
                        .map(|m| m.content.clone()),
                );
            }
            let tokenizer = Tokenizer::train_bpe(corpus, *vocab_size, 2)
                .map_err(|e| ExperimentError::Stage(format!("training the tokenizer: {e}")))?;
            std::fs::create_dir_all(&stage.dir).map_err(|e| io(&stage.dir, e))?;
            let tmp = stage.dir.join("tokenizer.json.tmp");
            tokenizer
                .save(&tmp)
                .map_err(|e| ExperimentError::Stage(format!("saving the tokenizer: {e}")))?;
            std::fs::rename(&tmp, &file).map_err(|e| io(&file, e))?;
            finish(store, &stage, &json!({"vocab_size": vocab_size}), started)?;
            Ok(Some((file, stage.key)))
        }
    }
}

/// The local directory of an HF model: a directory as given, or a hub id's snapshot in the
/// local HF cache.
pub fn hf_dir(spec: &str) -> Result<PathBuf, ExperimentError> {
    match ModelSource::parse(spec) {
        ModelSource::Dir(dir) => Ok(dir),
        hub => {
            let files = hub.resolve().map_err(|e| {
                ExperimentError::Config(format!(
                    "model `{spec}` is not in the local HF cache ({e}); download it first, \
                     e.g. `huggingface-cli download {spec}`"
                ))
            })?;
            Ok(files
                .config
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default())
        }
    }
}

/// The files a training job reads and writes.
#[derive(Debug, Clone, Copy)]
pub struct JobFiles<'a> {
    /// Training trajectories.
    pub data: &'a Path,
    /// Validation trajectories.
    pub validation: &'a Path,
    /// The run directory.
    pub output_dir: &'a Path,
    /// The shared tokenizer, if any.
    pub tokenizer: Option<&'a Path>,
    /// The world-pretrained base the model fine-tunes (an HF-format directory), if any.
    pub base: Option<&'a Path>,
}

/// The `rung train` config of one role's model: `[training]`, then the model's own training
/// keys, then what the experiment owns.
pub fn train_config_for(
    config: &ExperimentConfig,
    model: &str,
    role: Role,
    curriculum: &Curriculum,
    seed: u64,
    files: JobFiles<'_>,
) -> anyhow::Result<TrainConfig> {
    let entry = config
        .models
        .get(model)
        .ok_or_else(|| anyhow::anyhow!("no model `{model}`"))?;
    let mut merged = serde_json::to_value(&config.training)?;
    let overrides = serde_json::to_value(&entry.training)?;
    if let (Some(base), Some(over)) = (merged.as_object_mut(), overrides.as_object()) {
        for (k, v) in over {
            base.insert(k.clone(), v.clone());
        }
    }
    let object = merged
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("`training` must be a table"))?;
    let model_spec = match (&entry.preset, &entry.hf) {
        (Some(_), _) if files.base.is_some() => json!({"hf_dir": files.base}),
        (Some(preset), _) => json!({"preset": preset}),
        (None, Some(hf)) => {
            // Validation must not need the weights; a missing model fails at training time.
            let dir = hf_dir(hf).unwrap_or_else(|_| PathBuf::from(hf));
            json!({"hf_dir": dir})
        }
        (None, None) => anyhow::bail!("model `{model}` has neither preset nor hf"),
    };
    let (gold_plans, world_seed) = match &config.environment {
        EnvironmentConfig::Embedded { suite_seed } => (true, *suite_seed),
        EnvironmentConfig::Appworld { .. } => (false, 0),
    };
    object.insert("data".into(), json!(files.data));
    object.insert("validation_data".into(), json!(files.validation));
    object.insert("output_dir".into(), json!(files.output_dir));
    object.insert("model".into(), model_spec);
    object.insert("tokenizer".into(), json!(files.tokenizer));
    object.insert("lora".into(), serde_json::to_value(&entry.lora)?);
    object.insert("roles".into(), json!([role]));
    object.insert("curriculum".into(), serde_json::to_value(curriculum)?);
    object.insert("seed".into(), json!(seed));
    object.insert("gold_plans".into(), json!(gold_plans));
    object.insert("world_seed".into(), json!(world_seed));
    object.insert("progress".into(), json!(true));
    TrainConfig::from_json(&merged.to_string())
}

/// What one epoch of a training run cost and reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochCost {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss over the epoch's supervised tokens.
    pub loss: Option<f64>,
    /// Validation loss after the epoch (every sub-task supervised).
    pub val_loss: Option<f64>,
    /// Tokens processed (prompts included, padding excluded).
    pub tokens: u64,
    /// Supervised tokens.
    pub supervised_tokens: u64,
    /// Training FLOPs up to and including this epoch.
    pub cumulative_flops: f64,
    /// Seconds of the epoch.
    pub seconds: f64,
}

/// A finished training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutput {
    /// Content key.
    pub key: String,
    /// The run directory (`rung train`'s output).
    pub dir: PathBuf,
    /// The model directory that plays (`best/` or the last checkpoint).
    pub model_dir: PathBuf,
    /// Its tokenizer.
    pub tokenizer: PathBuf,
    /// Parameters of the model (base and adapter).
    pub params: u64,
    /// Parameters trained.
    pub trainable_params: u64,
    /// Per epoch.
    pub epochs: Vec<EpochCost>,
    /// Tokens over all epochs.
    pub tokens: u64,
    /// Supervised tokens over all epochs.
    pub supervised_tokens: u64,
    /// Training FLOPs: 6·N·tokens for full training, 4·N·tokens for LoRA (no weight gradients
    /// of the frozen base), N the model's parameters.
    pub flops: f64,
    /// Seconds over all epochs (across resumptions).
    pub wall_seconds: f64,
    /// Final validation loss.
    pub final_val_loss: Option<f64>,
    /// Final validation accuracy of the greedy next token over supervised targets.
    #[serde(default)]
    pub final_val_accuracy: Option<f64>,
    /// The same over the targets inside copied task-specific literals (ids, emails, dates,
    /// amounts): the copying skill token accuracy hides.
    #[serde(default)]
    pub final_val_literal_accuracy: Option<f64>,
}

/// Where one role's training lives, from the keys of its data and tokenizer.
pub fn train_stage(
    config: &ExperimentConfig,
    store: &Store,
    job: &TrainJob,
    data_key: &str,
    validation_key: &str,
    tokenizer_key: Option<&str>,
    base_key: Option<&str>,
) -> Stage {
    let mut inputs = json!({
        "role": job.role, "model": config.models[&job.model],
        "curriculum": config.schedules[&job.schedule], "seed": job.seed,
        "training": config.training, "data": data_key, "validation": validation_key,
        "tokenizer": tokenizer_key, "checkpoint": config.evaluation.checkpoint,
    });
    // Only pretrained models name a base, so from-scratch stages keep their keys.
    if let Some(base) = base_key {
        inputs["base"] = json!(base);
    }
    if crate::curve::keeps_every_epoch(config, job) {
        inputs["keep_every_epoch"] = json!(true);
    }
    store.stage(StageKind::Train, &job.name(), &inputs)
}

/// Trains one role's model (or resumes it).
pub fn train(
    config: &ExperimentConfig,
    store: &Store,
    job: &TrainJob,
    data: &DataOutput,
    validation: &DataOutput,
    tokenizer: Option<&(PathBuf, String)>,
    base: Option<&crate::pretrain::PretrainOutput>,
) -> Result<TrainOutput, ExperimentError> {
    let entry = &config.models[&job.model];
    let curriculum = &config.schedules[&job.schedule];
    let stage = train_stage(
        config,
        store,
        job,
        &data.key,
        &validation.key,
        tokenizer.map(|t| t.1.as_str()),
        base.map(|b| b.key.as_str()),
    );
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    let run_dir = stage.dir.join("run");
    let files = JobFiles {
        data: &data.trajectories,
        validation: &validation.trajectories,
        output_dir: &run_dir,
        tokenizer: tokenizer.map(|t| t.0.as_path()),
        base: base.map(|b| b.model_dir.as_path()),
    };
    let mut train_config =
        train_config_for(config, &job.model, job.role, curriculum, job.seed, files)
            .map_err(|e| ExperimentError::Config(format!("training {}: {e:#}", job.name())))?;
    if crate::curve::keeps_every_epoch(config, job) {
        // The learning curve plays every epoch's checkpoint.
        train_config.keep_last = train_config.keep_last.max(train_config.epochs);
    }
    let started = Instant::now();
    let summary = train_or_resume(store, &stage, &job.name(), &run_dir, train_config)?;
    let model_dir = match (config.evaluation.checkpoint, &summary.best_checkpoint) {
        (CheckpointChoice::Best, Some(best)) => best.clone(),
        _ => summary.last_checkpoint.clone().ok_or_else(|| {
            ExperimentError::Stage(format!("training {} saved no checkpoint", job.name()))
        })?,
    };
    let model_config = rung_model::ModelConfig::from_hf_file(&model_dir.join("config.json"))
        .map_err(|e| ExperimentError::Stage(format!("{}: {e}", model_dir.display())))?;
    let params = model_config.num_params() as u64;
    let per_token = if entry.lora.is_some() { 4.0 } else { 6.0 } * params as f64;
    let epochs = epoch_costs(&run_dir.join("metrics.jsonl"), per_token)?;
    let output = TrainOutput {
        key: stage.key.clone(),
        tokenizer: run_dir.join("tokenizer.json"),
        dir: run_dir,
        model_dir,
        params,
        trainable_params: summary.trainable_params as u64,
        tokens: epochs.iter().map(|e| e.tokens).sum(),
        supervised_tokens: epochs.iter().map(|e| e.supervised_tokens).sum(),
        flops: epochs.last().map_or(0.0, |e| e.cumulative_flops),
        wall_seconds: epochs.iter().map(|e| e.seconds).sum(),
        final_val_loss: summary.final_val_loss,
        final_val_accuracy: summary.final_val_accuracy,
        final_val_literal_accuracy: summary.final_val_literal_accuracy,
        epochs,
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}

/// Runs `rung train` for `stage` in `run_dir`, or resumes it from its newest checkpoint when a
/// killed run left one; a run killed before its first checkpoint left a partial directory, which
/// is started afresh. Shared by role training and world pretraining.
pub(crate) fn train_or_resume(
    store: &Store,
    stage: &Stage,
    name: &str,
    run_dir: &Path,
    config: TrainConfig,
) -> Result<rung_train::Summary, ExperimentError> {
    let resuming = !rung_train::checkpoint::list(&run_dir.join("checkpoints")).is_empty();
    store.log(json!({
        "event": if resuming { "resume" } else { "start" }, "stage": stage.kind,
        "name": name, "key": stage.key,
    }));
    if resuming {
        rung_train::resume(run_dir)
    } else {
        if run_dir.exists() {
            std::fs::remove_dir_all(run_dir).map_err(|e| io(run_dir, e))?;
        }
        rung_train::train(config)
    }
    // "training 1A-single-tiny-all-s0: …", "pretraining tiny: …".
    .map_err(|e| ExperimentError::Stage(format!("{}ing {name}: {e:#}", stage.kind.name())))
}

/// Per-epoch costs from a run's `metrics.jsonl`.
pub(crate) fn epoch_costs(
    metrics: &Path,
    flops_per_token: f64,
) -> Result<Vec<EpochCost>, ExperimentError> {
    let text = std::fs::read_to_string(metrics).map_err(|e| io(metrics, e))?;
    let mut epochs: BTreeMap<usize, EpochCost> = BTreeMap::new();
    for line in text.lines() {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if record["kind"] != "epoch" {
            continue;
        }
        let epoch = record["epoch"].as_u64().unwrap_or(0) as usize;
        // A resumed run may repeat an epoch's record; the last one counts.
        epochs.insert(
            epoch,
            EpochCost {
                epoch,
                loss: record["loss"].as_f64(),
                val_loss: record["val_loss"].as_f64(),
                tokens: record["tokens"].as_u64().unwrap_or(0),
                supervised_tokens: record["supervised_tokens"].as_u64().unwrap_or(0),
                cumulative_flops: 0.0,
                seconds: record["seconds"].as_f64().unwrap_or(0.0),
            },
        );
    }
    let mut total = 0.0;
    let mut out: Vec<EpochCost> = epochs.into_values().collect();
    for epoch in &mut out {
        total += flops_per_token * epoch.tokens as f64;
        epoch.cumulative_flops = total;
    }
    Ok(out)
}

/// A finished evaluation stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOutput {
    /// Content key.
    pub key: String,
    /// The split.
    pub split: Split,
    /// The harness's report.
    pub report: EvalReport,
    /// Trajectories of the episodes.
    pub trajectories: PathBuf,
}

/// Evaluates one run on one split with its trained models.
pub fn eval(
    config: &ExperimentConfig,
    store: &Store,
    episodes: &Episodes,
    run: &Run,
    trained: &BTreeMap<Role, TrainOutput>,
    split: Split,
) -> Result<EvalOutput, ExperimentError> {
    let keys: BTreeMap<Role, &str> = trained.iter().map(|(r, t)| (*r, t.key.as_str())).collect();
    let stage = eval_stage(config, store, run, &keys, split);
    let name = eval_name(run, split);
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    store.log(json!({"event": "start", "stage": "eval", "name": name, "key": stage.key}));
    let started = Instant::now();
    let system = eval_system(config, episodes, run, trained, &name)?;
    let mut options = eval_options(config, episodes, split, &name)?;
    std::fs::create_dir_all(&stage.dir).map_err(|e| io(&stage.dir, e))?;
    let trajectories = stage.dir.join("trajectories.jsonl");
    options.trajectories = Some(trajectories.clone());
    let report = evaluate(&system, split, &options)
        .map_err(|e| ExperimentError::Stage(format!("evaluating {name}: {e}")))?;
    write_atomic(&stage.dir.join("results.txt"), &report.table())?;
    let output = EvalOutput {
        key: stage.key.clone(),
        split,
        report,
        trajectories,
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}

/// The readable name of a run's evaluation on a split: `1A-tiny-prost-s0-test_normal`.
pub fn eval_name(run: &Run, split: Split) -> String {
    format!("{}-{}", run.name(), split_name(split))
}

/// Where one run's evaluation on one split lives, from the keys of its trained models. A
/// sharded evaluation's merge writes this same directory: shards change how the work is
/// spread, not the result.
pub fn eval_stage(
    config: &ExperimentConfig,
    store: &Store,
    run: &Run,
    train_keys: &BTreeMap<Role, &str>,
    split: Split,
) -> Stage {
    let inputs = json!({
        "environment": config.environment, "system": run.configuration.system,
        "models": train_keys, "seed": run.seed, "split": split,
        "limit": config.evaluation.tasks_for(split), "budgets": config.evaluation.budgets,
        "tasks": crate::subsets::eval_key(config, split),
    });
    store.stage(StageKind::Eval, &eval_name(run, split), &inputs)
}

/// Options of an evaluation's episodes: the split's evaluated tasks (stratified, without the
/// validation tasks; [`crate::subsets::eval_tasks`]), the configured threads, a progress line.
pub(crate) fn eval_options(
    config: &ExperimentConfig,
    episodes: &Episodes,
    split: Split,
    name: &str,
) -> Result<rung_agents::EvalOptions, ExperimentError> {
    let mut options = episodes.options(split, None, Some(format!("eval {name}")))?;
    options.tasks = Some(crate::subsets::eval_tasks(config, episodes, split)?);
    if let Some(threads) = config.evaluation.threads {
        options.threads = threads;
    }
    Ok(options)
}

/// The system a run evaluates: its trained models, greedy decoding, the run's budgets and
/// seed.
pub(crate) fn eval_system(
    config: &ExperimentConfig,
    episodes: &Episodes,
    run: &Run,
    trained: &BTreeMap<Role, TrainOutput>,
    name: &str,
) -> Result<System, ExperimentError> {
    let specs: BTreeMap<Role, ModelSpec> = trained
        .iter()
        .map(|(&role, t)| {
            (
                role,
                ModelSpec {
                    model: t.model_dir.display().to_string(),
                    adapter: None,
                    tokenizer: Some(t.tokenizer.clone()),
                },
            )
        })
        .collect();
    let options = ModelPolicyOptions {
        decoding: Decoding::Greedy,
        ..ModelPolicyOptions::default()
    };
    let policies = load_role_policies(&specs, options)
        .map_err(|e| ExperimentError::Stage(format!("loading the models of {name}: {e}")))?;
    let system = System::of_kind(
        run.configuration.system,
        |role| Arc::clone(&policies[&role]),
        episodes.apps(),
    )
    .with_budgets(config.evaluation.budgets.budgets())
    .with_seed(run.seed);
    Ok(system)
}

pub(crate) fn finish<T: Serialize>(
    store: &Store,
    stage: &Stage,
    output: &T,
    started: Instant,
) -> Result<(), ExperimentError> {
    let value = serde_json::to_value(output).expect("stage outputs serialise");
    store.finish(stage, &value)?;
    store.log(json!({
        "event": "done", "stage": stage.kind, "dir": stage.dir, "key": stage.key,
        "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(())
}

pub(crate) fn parse_done<T: for<'de> Deserialize<'de>>(
    stage: &Stage,
    done: Value,
) -> Result<T, ExperimentError> {
    serde_json::from_value(done).map_err(|e| {
        ExperimentError::Corrupt(format!(
            "{} does not hold this stage's result ({e}); delete {} to redo it",
            stage.done_file().display(),
            stage.dir.display()
        ))
    })
}
