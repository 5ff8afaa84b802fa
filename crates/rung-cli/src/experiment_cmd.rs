//! `rung experiment`: the end-to-end ProST experiment of a config file, in this process or as
//! Slurm jobs; `stage`, `status` and `cancel` for the jobs' side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use rung_experiment::executor::slurm::{self, Action, SubmitOptions};
use rung_experiment::{ExecutorKind, ExperimentConfig, RunOptions, StageKind};

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
/// With `--executor slurm` every stage becomes a Slurm job (`sbatch`), chained with
/// `--dependency=afterok` along the stages' edges; each job runs `rung experiment stage`. The
/// output directory must be on a filesystem the compute nodes share. Submitting again resumes;
/// `rung experiment status` shows where each stage stands, `rung experiment cancel` cancels.
///
/// `cargo xtask experiment` builds this binary in release mode with the backend the config
/// asks for and runs this command.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ExperimentArgs {
    #[command(subcommand)]
    command: Option<ExperimentCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum ExperimentCommand {
    /// Run one stage of the plan (what one Slurm job does): its dependencies must be done.
    Stage(StageArgs),
    /// Show each stage: done, queued, running, failed or cancelled, with its Slurm job and log.
    Status(TargetArgs),
    /// Cancel the experiment's queued and running Slurm jobs (`scancel`).
    Cancel(TargetArgs),
    /// List the plan's stages with their dependencies.
    Stages(TargetArgs),
}

/// The config and where its output goes.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Experiment config (TOML), e.g. configs/smoke.toml.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Override the config's output directory.
    #[arg(long)]
    output_dir: Option<PathBuf>,
}

impl TargetArgs {
    fn load(&self) -> Result<ExperimentConfig> {
        let mut config = ExperimentConfig::from_file(&self.config)?;
        if let Some(dir) = &self.output_dir {
            config.output_dir = dir.clone();
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Redo this stage (data, ceiling, tokenizer, train, eval or report) and every later one,
    /// even where done; repeatable.
    #[arg(long, value_name = "STAGE")]
    force: Vec<StageKind>,
    /// Validate the config and print the runs (with `--executor slurm`: the job scripts)
    /// without running anything.
    #[arg(long)]
    dry_run: bool,
    /// Where stages run: `local` (this process) or `slurm` (one sbatch job per stage).
    #[arg(long, default_value = "local")]
    executor: ExecutorKind,
    /// With `--executor slurm`: wait until the jobs finish (polling Slurm), failing with the
    /// log of a failed job.
    #[arg(long)]
    wait: bool,
    /// With `--executor slurm`: the `rung` binary the jobs run (default:
    /// `executor.slurm.rung`, else this one).
    #[arg(long)]
    rung: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StageArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Redo the stage even if done (and count every later kind as forced, as for a run).
    #[arg(long, value_name = "STAGE")]
    force: Vec<StageKind>,
    /// The stage's id (`rung experiment stages` lists them), e.g. `train/1A-single-tiny-prost-s0`.
    id: String,
}

pub fn run(args: &ExperimentArgs) -> Result<()> {
    match &args.command {
        None => run_experiment(&args.run),
        Some(ExperimentCommand::Stage(stage)) => {
            let config = stage.target.load()?;
            let line = rung_experiment::executor::run_stage(&config, &stage.id, &stage.force)
                .with_context(|| format!("stage {}", stage.id))?;
            println!("{line}");
            Ok(())
        }
        Some(ExperimentCommand::Status(target)) => {
            let config = target.load()?;
            let statuses = slurm::status(&config)?;
            print!("{}", slurm::status_table(&statuses));
            Ok(())
        }
        Some(ExperimentCommand::Cancel(target)) => {
            let config = target.load()?;
            let cancelled = slurm::cancel(&config)?;
            for (stage, job) in &cancelled {
                println!("cancelled {stage} (Slurm job {job})");
            }
            println!("{} job(s) cancelled", cancelled.len());
            Ok(())
        }
        Some(ExperimentCommand::Stages(target)) => {
            let config = target.load()?;
            let store = rung_experiment::store::Store::reader(&config.output_dir);
            let plan = rung_experiment::graph::StagePlan::new(&config, &store)?;
            for (n, node) in plan.nodes.iter().enumerate() {
                println!("{} <- {}", node.id, plan.dep_ids(n).join(" "));
            }
            Ok(())
        }
    }
}

fn run_experiment(args: &RunArgs) -> Result<()> {
    let config = args.target.load()?;
    let path = &args.target.config;
    match args.executor {
        ExecutorKind::Local => {
            if args.wait || args.rung.is_some() {
                anyhow::bail!("--wait and --rung are for --executor slurm");
            }
            let options = RunOptions {
                force: args.force.clone(),
                dry_run: args.dry_run,
            };
            let outcome = rung_experiment::run(&config, &options)
                .with_context(|| format!("experiment {}", path.display()))?;
            match outcome {
                None => println!("config {} is valid", path.display()),
                Some(outcome) => println!(
                    "{} runs done in {:.0} s: {} and {}",
                    outcome.runs,
                    outcome.seconds,
                    outcome.report.display(),
                    outcome.results.display()
                ),
            }
        }
        ExecutorKind::Slurm => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let options = SubmitOptions {
                force: args.force.clone(),
                dry_run: args.dry_run,
                rung: args.rung.clone(),
            };
            let actions = slurm::submit(&config, &text, &options)
                .with_context(|| format!("submitting {}", path.display()))?;
            let count = |f: fn(&Action) -> bool| actions.iter().filter(|(_, a)| f(a)).count();
            for (stage, action) in &actions {
                match action {
                    Action::Skipped => {}
                    Action::Kept(id) => println!("{stage}: kept Slurm job {id}"),
                    Action::Submitted(id) if args.dry_run => {
                        println!("{stage}: would submit (#{id})")
                    }
                    Action::Submitted(id) => println!("{stage}: submitted Slurm job {id}"),
                }
            }
            println!(
                "{} stage(s) done, {} job(s) kept, {} submitted; `rung experiment status \
                 --config {}` shows them",
                count(|a| matches!(a, Action::Skipped)),
                count(|a| matches!(a, Action::Kept(_))),
                count(|a| matches!(a, Action::Submitted(_))),
                path.display()
            );
            if args.wait && !args.dry_run {
                slurm::wait(&config, Duration::from_secs(2))?;
                println!(
                    "experiment done: {}",
                    config.output_dir.join("report.md").display()
                );
            }
        }
    }
    Ok(())
}
