//! The pipeline: expert data → tokenizer → training per role → evaluation per run and split
//! → aggregation → Pareto analysis → report.
//!
//! Runs are taken seed by seed, so an interrupted experiment has whole configurations done
//! first; a run's models are trained right before it is evaluated. Every stage is skipped when
//! its content-addressed directory says it is done.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use rung_trajectory::{Role, SystemKind};
use serde_json::json;

use crate::ExperimentError;
use crate::config::{ExperimentConfig, split_name};
use crate::episodes::Episodes;
use crate::plan::{self, Run, TrainJob};
use crate::progress::{Overall, duration};
use crate::results::RunResult;
use crate::stages::{self, DataOutput, TrainOutput};
use crate::store::{StageKind, Store, write_atomic};

/// How to run an experiment.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stages to redo even where done (and every later stage).
    pub force: Vec<StageKind>,
    /// Only print the plan.
    pub dry_run: bool,
}

/// What an experiment wrote.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `report.md`.
    pub report: PathBuf,
    /// `results.json`.
    pub results: PathBuf,
    /// Runs evaluated.
    pub runs: usize,
    /// Wall time of this invocation.
    pub seconds: f64,
}

/// Runs (or resumes) an experiment.
pub fn run(
    config: &ExperimentConfig,
    options: &RunOptions,
) -> Result<Option<Outcome>, ExperimentError> {
    let built = rung_model::device::backend_name();
    let wanted = config.backend.name();
    let backend_error = ExperimentError::Config(format!(
        "`backend = \"{wanted}\"` but this rung binary computes on {built}; build it with \
         `cargo xtask experiment --backend {wanted}` (or change `backend`)"
    ));
    let backend_matches = built.contains(wanted);
    let started = Instant::now();
    let mut runs = plan::runs(config);
    runs.sort_by(|a, b| (a.seed, &a.configuration).cmp(&(b.seed, &b.configuration)));
    let jobs = plan::jobs(&runs);
    let systems = plan::systems(&runs);
    let splits = &config.evaluation.splits;
    eprintln!(
        "experiment `{}`: {} runs ({} configurations × seeds), {} training jobs, {} evaluations \
         on {}; backend {built}; output {}",
        config.name,
        runs.len(),
        runs.iter()
            .map(|r| &r.configuration)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        jobs.len(),
        runs.len() * splits.len(),
        splits
            .iter()
            .map(|s| split_name(*s))
            .collect::<Vec<_>>()
            .join(", "),
        config.output_dir.display(),
    );
    if options.dry_run {
        for run in &runs {
            eprintln!("  run {}", run.name());
        }
        if !backend_matches {
            eprintln!("note: a real run would stop here: {backend_error}");
        }
        return Ok(None);
    }
    if !backend_matches {
        return Err(backend_error);
    }
    let store = Store::open(&config.output_dir, &options.force)?;
    write_atomic(
        &config.output_dir.join("experiment.json"),
        &serde_json::to_string_pretty(config).expect("configs serialise"),
    )?;
    store.log(json!({"event": "experiment", "name": config.name, "runs": runs.len()}));
    let episodes = Episodes::new(
        &config.environment,
        &config.output_dir.join("servers"),
        config.evaluation.threads,
    );

    let mut overall = Overall::new(total_weight(config, &runs, &jobs, &systems));
    let mut train_data: BTreeMap<SystemKind, DataOutput> = BTreeMap::new();
    let mut validation_data: BTreeMap<SystemKind, DataOutput> = BTreeMap::new();
    for &system in &systems {
        for (split, limit, into) in [
            (
                config.data.train_split,
                config.data.train_tasks,
                &mut train_data,
            ),
            (
                config.data.validation_split,
                config.data.validation_tasks,
                &mut validation_data,
            ),
        ] {
            let before = store.finished();
            let out = stages::data(config, &store, &episodes, system, split, limit)?;
            let line = format!(
                "data {} {}: {} episodes",
                plan::short(system),
                split_name(split),
                out.episodes
            );
            eprintln!(
                "{}",
                overall.advance(1.0, store.finished() == before, &line)
            );
            into.insert(system, out);
        }
    }
    let train_list: Vec<DataOutput> = train_data.values().cloned().collect();
    let before = store.finished();
    let tokenizer = stages::tokenizer(config, &store, &train_list)?;
    eprintln!(
        "{}",
        overall.advance(1.0, store.finished() == before, "tokenizer")
    );

    let mut trained: BTreeMap<TrainJob, TrainOutput> = BTreeMap::new();
    let mut results: Vec<RunResult> = Vec::new();
    for run in &runs {
        let finished_before = store.finished();
        let mut roles: BTreeMap<Role, TrainOutput> = BTreeMap::new();
        for (role, job) in run.jobs() {
            if let Some(done) = trained.get(&job) {
                roles.insert(role, done.clone());
                continue;
            }
            let t0 = Instant::now();
            let before = store.finished();
            let system = job.system;
            let out = stages::train(
                config,
                &store,
                &job,
                &train_data[&system],
                &validation_data[&system],
                tokenizer.as_ref(),
            )?;
            let took = t0.elapsed().as_secs_f64();
            let line = format!(
                "train {} ({} tokens, {:.2e} FLOPs, val loss {}) in {}",
                job.name(),
                out.tokens,
                out.flops,
                out.final_val_loss.map_or("–".into(), |v| format!("{v:.3}")),
                duration(took)
            );
            eprintln!(
                "{}",
                overall.advance(job_weight(config, &job), store.finished() == before, &line)
            );
            trained.insert(job, out.clone());
            roles.insert(role, out);
        }
        let mut evals = Vec::new();
        for &split in splits {
            let before = store.finished();
            let out = stages::eval(config, &store, &episodes, run, &roles, split)?;
            let line = format!(
                "eval {} on {}: TGC {:.1}, SGC {:.1}, {:.2e} FLOPs/task",
                run.name(),
                split_name(split),
                out.report.scores.overall.tgc,
                out.report.scores.overall.sgc,
                out.report.cost.per_task.flops
            );
            eprintln!(
                "{}",
                overall.advance(eval_weight(config, run), store.finished() == before, &line)
            );
            evals.push(out);
        }
        results.push(RunResult::new(run, &roles, &evals));
        if store.finished() != finished_before && results.len() < runs.len() {
            // A partial report after every run that did work: an experiment stopped early
            // still shows what it has.
            crate::report::write(config, &results, runs.len(), &config.output_dir)?;
        }
    }

    let report = crate::report::write(config, &results, runs.len(), &config.output_dir)?;
    store.log(json!({
        "event": "report", "report": report.report, "seconds": started.elapsed().as_secs_f64(),
    }));
    Ok(Some(Outcome {
        report: report.report,
        results: report.results,
        runs: results.len(),
        seconds: started.elapsed().as_secs_f64(),
    }))
}

/// Parameters of a model (1M when unknown), the unit of the progress weights.
fn params(config: &ExperimentConfig, model: &str) -> f64 {
    config
        .models
        .get(model)
        .and_then(|m| m.model_config())
        .map_or(1e6, |c| c.num_params() as f64)
}

fn epochs(config: &ExperimentConfig) -> f64 {
    config
        .training
        .get("epochs")
        .and_then(|v| v.as_integer())
        .unwrap_or(3) as f64
}

/// Relative cost of a training job: parameters × epochs (× the tokens per epoch, which are
/// similar across jobs of one experiment), scaled so a data stage weighs about 1.
fn job_weight(config: &ExperimentConfig, job: &TrainJob) -> f64 {
    params(config, &job.model) * epochs(config) / 1e5
}

/// Relative cost of one evaluation: every role's parameters × tasks (decoding a task costs
/// about a third of an epoch's training step per token, and far fewer tokens).
fn eval_weight(config: &ExperimentConfig, run: &Run) -> f64 {
    let tasks = config.evaluation.tasks_per_split.unwrap_or(150) as f64;
    let p: f64 = run
        .configuration
        .models
        .values()
        .map(|m| params(config, m))
        .sum();
    p * tasks / 3e6
}

fn total_weight(
    config: &ExperimentConfig,
    runs: &[Run],
    jobs: &[TrainJob],
    systems: &[SystemKind],
) -> f64 {
    let data = 2.0 * systems.len() as f64 + 1.0;
    let train: f64 = jobs.iter().map(|j| job_weight(config, j)).sum();
    let eval: f64 = runs.iter().map(|r| eval_weight(config, r)).sum::<f64>()
        * config.evaluation.splits.len() as f64;
    data + train + eval
}
