//! `rung experiment`: the end-to-end ProST experiment of a config file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rung_experiment::{ExperimentConfig, RunOptions, StageKind};

/// Run the whole ProST experiment of a config: expert data, training of every role of every
/// system with every schedule and seed, evaluation, Pareto analysis and report.
///
/// Stages live in content-addressed directories under the config's `output_dir`
/// (`stages/<stage>/<name>-<hash>/`): running the same config again skips what is done, an
/// interrupted run resumes (training continues from its last checkpoint), and a changed
/// setting only redoes the stages it affects. The output directory then holds `report.md`
/// (tables, plots, a verdict on each of the paper's claims), `results.json` (every run and
/// seed), `plots/` (SVG and PNG) and `events.jsonl` (stage log).
///
/// `cargo xtask experiment` builds this binary in release mode with the backend the config
/// asks for and runs this command.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Experiment config (TOML), e.g. configs/smoke.toml.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Redo this stage (data, tokenizer, train or eval) and every later one, even where done;
    /// repeatable.
    #[arg(long, value_name = "STAGE")]
    force: Vec<StageKind>,
    /// Override the config's output directory.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Validate the config and print the runs without running anything.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: &ExperimentArgs) -> Result<()> {
    let mut config = ExperimentConfig::from_file(&args.config)?;
    if let Some(dir) = &args.output_dir {
        config.output_dir = dir.clone();
    }
    let options = RunOptions {
        force: args.force.clone(),
        dry_run: args.dry_run,
    };
    let outcome = rung_experiment::run(&config, &options)
        .with_context(|| format!("experiment {}", args.config.display()))?;
    match outcome {
        None => println!("config {} is valid", args.config.display()),
        Some(outcome) => println!(
            "{} runs done in {:.0} s: {} and {}",
            outcome.runs,
            outcome.seconds,
            outcome.report.display(),
            outcome.results.display()
        ),
    }
    Ok(())
}
