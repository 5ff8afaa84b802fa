//! The local executor: the plan's stages one after another in this process, with a progress
//! line per stage and a partial report after every run that did work (an experiment stopped
//! early still shows what it has).

use std::time::Instant;

use serde_json::json;

use super::{Context, Output, Outputs, check_backend, describe, episodes};
use crate::ExperimentError;
use crate::config::{ExperimentConfig, split_name};
use crate::graph::{StagePlan, Step};
use crate::pipeline::{Outcome, RunOptions};
use crate::progress::{Overall, duration};
use crate::store::{Store, write_atomic};

/// Runs (or resumes) an experiment in this process.
pub fn run(
    config: &ExperimentConfig,
    options: &RunOptions,
) -> Result<Option<Outcome>, ExperimentError> {
    let started = Instant::now();
    let backend = check_backend(config);
    if options.dry_run {
        // Planning reads nothing but recorded files, and creates nothing.
        let plan = StagePlan::new(config, &Store::reader(&config.output_dir))?;
        summary(config, &plan);
        for run in &plan.runs {
            eprintln!("  run {}", run.name());
        }
        // The task subsets cost nothing to pick: show their coverage, or why they are
        // impossible (the expert ceiling needs episodes, so only a real run plays it).
        match crate::subsets::Coverage::measure(config, &episodes(config)) {
            Ok(c) => {
                let splits: Vec<String> = c
                    .splits
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {} tasks of {} templates ({} seen in training)",
                            s.split, s.tasks, s.templates, s.seen_in_training
                        )
                    })
                    .collect();
                eprintln!(
                    "tasks: training {} tasks of {} templates (of {} in its split); evaluated: {}",
                    c.train_tasks,
                    c.train_templates,
                    c.split_templates,
                    splits.join("; ")
                );
            }
            Err(e) => eprintln!("note: a real run would stop here: {e}"),
        }
        if let Err(e) = backend {
            eprintln!("note: a real run would stop here: {e}");
        }
        return Ok(None);
    }
    backend?;
    let store = Store::open(&config.output_dir, &options.force)?;
    let plan = StagePlan::new(config, &store)?;
    summary(config, &plan);
    write_atomic(
        &config.output_dir.join("experiment.json"),
        &serde_json::to_string_pretty(config).expect("configs serialise"),
    )?;
    store.log(json!({"event": "experiment", "name": config.name, "runs": plan.runs.len()}));
    let episodes = episodes(config);
    let context = Context {
        config,
        plan: &plan,
        store: &store,
        deps: &store,
        deps_done: false,
        episodes: &episodes,
    };
    // Before any training: a config whose experts cannot reach 100% TGC under its budgets, or
    // whose task subsets are impossible, is refused here.
    let guards = context.guard()?;
    let weights: Vec<f64> = (0..plan.nodes.len())
        .map(|n| weight(config, &plan, n))
        .collect();
    let mut overall = Overall::new(weights.iter().sum());
    let mut outputs = Outputs::new();
    let last_split = *config
        .evaluation
        .splits
        .last()
        .expect("validated non-empty");
    let mut reported_at = store.finished();
    for (n, node) in plan.nodes.iter().enumerate() {
        let before = store.finished();
        let t0 = Instant::now();
        context.execute(n, &mut outputs)?;
        let mut line = describe(&plan, n, &outputs[&n]);
        if matches!(node.step, Step::Train(_)) {
            line.push_str(&format!(" in {}", duration(t0.elapsed().as_secs_f64())));
        }
        eprintln!(
            "{}",
            overall.advance(weights[n], store.finished() == before, &line)
        );
        // A partial report after every run that did work, but the last (the report stage
        // writes that one).
        let run_done = match node.step {
            Step::Eval { run, split } | Step::Merge { run, split } => {
                (split == last_split).then_some(run)
            }
            _ => None,
        };
        if let Some(run) = run_done
            && run + 1 < plan.runs.len()
            && store.finished() != reported_at
        {
            let results = context.results(run + 1, &mut outputs)?;
            crate::report::write(
                config,
                &results,
                plan.runs.len(),
                &guards,
                &config.output_dir,
            )?;
            reported_at = store.finished();
        }
    }
    let Some(Output::Report(report)) = outputs.remove(&plan.report) else {
        unreachable!("the report node gives the report");
    };
    Ok(Some(Outcome {
        report: report.report,
        results: report.results,
        runs: report.runs,
        seconds: started.elapsed().as_secs_f64(),
    }))
}

fn summary(config: &ExperimentConfig, plan: &StagePlan) {
    let splits = &config.evaluation.splits;
    eprintln!(
        "experiment `{}`: {} runs ({} configurations × seeds), {} training jobs, {} evaluations \
         on {}; {} stages; backend {}; output {}",
        config.name,
        plan.runs.len(),
        plan.runs
            .iter()
            .map(|r| &r.configuration)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        plan.jobs.len(),
        plan.runs.len() * splits.len(),
        splits
            .iter()
            .map(|s| split_name(*s))
            .collect::<Vec<_>>()
            .join(", "),
        plan.nodes.len(),
        rung_model::device::backend_name(),
        config.output_dir.display(),
    );
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

/// Relative cost of a stage. Training: parameters × epochs (× the tokens per epoch, which are
/// similar across jobs of one experiment), scaled so a data stage weighs about 1. Evaluation:
/// every role's parameters × tasks (decoding a task costs about a third of an epoch's training
/// step per token, and far fewer tokens), split evenly over shards.
fn weight(config: &ExperimentConfig, plan: &StagePlan, node: usize) -> f64 {
    let eval = |run: usize| {
        let tasks = config.evaluation.tasks_per_split.unwrap_or(150) as f64;
        let p: f64 = plan.runs[run]
            .configuration
            .models
            .values()
            .map(|m| params(config, m))
            .sum();
        p * tasks / 3e6
    };
    match &plan.nodes[node].step {
        Step::Data { .. } | Step::Tokenizer | Step::Corpus => 1.0,
        Step::Pretrain { preset } => {
            rung_model::ModelConfig::preset(preset).map_or(1.0, |m| m.num_params() as f64) / 1e5
        }
        Step::Train(job) => params(config, &job.model) * epochs(config) / 1e5,
        Step::Eval { run, .. } | Step::Curve { run, .. } => eval(*run),
        Step::Shard { run, of, .. } => eval(*run) / *of as f64,
        Step::Merge { .. } | Step::Report => 0.1,
    }
}
