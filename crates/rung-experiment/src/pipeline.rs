//! The pipeline: expert data → tokenizer → training per role → evaluation per run and split
//! (or per shard, then a merge) → aggregation → Pareto analysis → report.
//!
//! The stages and their edges are planned up front ([`crate::graph`]); [`run`] executes them
//! in this process ([`crate::executor::local`]), and `rung experiment --executor slurm` submits
//! them as Slurm jobs ([`crate::executor::slurm`]). Every stage is skipped when its
//! content-addressed directory says it is done.

use std::path::PathBuf;

use crate::ExperimentError;
use crate::config::ExperimentConfig;
use crate::store::StageKind;

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

/// Runs (or resumes) an experiment in this process: runs are taken seed by seed, so an
/// interrupted experiment has whole configurations done first; a run's models are trained
/// right before it is evaluated.
pub fn run(
    config: &ExperimentConfig,
    options: &RunOptions,
) -> Result<Option<Outcome>, ExperimentError> {
    crate::executor::local::run(config, options)
}
