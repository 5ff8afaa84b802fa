//! `rung data`: training data for ProST — the scripted experts' trajectories.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rung_agents::{Backend, DataGenOptions, generate_expert_data};
use rung_env::Split;
use rung_trajectory::SystemKind;

use crate::eval_cmd::{BudgetArgs, ExpertArgs, GoldArgs, WorldArgs, progress_bar, start_pool_run};

/// Training data.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write expert trajectories of a split (the supervised training data).
    ///
    /// Scripted experts follow each task's gold plan in the chosen system (the orchestrator
    /// issues the gold sub-tasks, the executor writes the gold code in several cells with
    /// documentation look-ups and logins, the critic accepts correct results). A seeded
    /// fraction of episodes (--mistake-rate) contains one realistic mistake followed by its
    /// recovery; the mistaken outputs are marked `train: false`. Every episode runs in the
    /// in-process world and is evaluated; only successful ones are written (all of them, unless
    /// a gold plan is broken). With --gold FILE and --server-command the tasks are an AppWorld
    /// task set run on a pool of AppWorld servers instead (e.g. the synthetic one of `cargo
    /// xtask appworld synth`: `cargo xtask appworld env` prints its paths).
    ///
    /// The output is JSON Lines, one episode per line, in the format of
    /// datasets/trajectories/README.md, written atomically. The same options give the same
    /// file, byte for byte apart from timings.
    Gen(GenArgs),
    /// Write the world-pretraining corpus: walks through other suites' worlds as executor
    /// conversations.
    ///
    /// Each walk is one person's session with the apps of one world: the gold login, list,
    /// search, show, create and update calls with parameters filled from earlier outputs
    /// (copied as literals or referenced as `inbox[2]["mail_id"]`), documentation look-ups and
    /// the real outputs, errors included (failed cells are kept but not supervised). Every
    /// call becomes one executor conversation built with the prompts inference uses. No walk
    /// touches the worlds of --exclude-suite (the evaluated suite), and walks that mention any
    /// of its people are dropped. `[pretraining]` in an experiment config does the same as a
    /// stage; this command is for looking at the corpus or training a base by hand with
    /// `rung train` (`gold_plans = false`).
    Corpus(CorpusArgs),
    /// Summarise a trajectory file: success, ends, difficulty, sub-tasks, per system and per role.
    Stats(crate::curriculum_cmd::StatsArgs),
}

#[derive(Debug, Args)]
pub struct CorpusArgs {
    /// Suite seeds whose worlds are walked (comma-separated), never --exclude-suite.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    suite_seeds: Vec<u64>,
    /// Worlds per suite seed.
    #[arg(long, default_value_t = 6)]
    worlds_per_seed: u64,
    /// Walks per world, over its people in turn.
    #[arg(long, default_value_t = 40)]
    walks_per_world: usize,
    /// API calls per walk.
    #[arg(long, default_value_t = 6)]
    steps: usize,
    /// Seed of the walks' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The evaluated suite's seed: its worlds and people never appear.
    #[arg(long, default_value_t = 0)]
    exclude_suite: u64,
    /// Output file.
    #[arg(long, default_value = "runs/data/corpus.jsonl")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Split whose tasks to play: train, dev, test_normal or test_challenge.
    #[arg(long, default_value = "train")]
    split: Split,
    /// Agent system: single, two-agent or three-agent (`two_agent` works too).
    #[arg(long, default_value = "two-agent")]
    system: SystemKind,
    /// Output file; default runs/data/<system>-<split>.jsonl.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the expert system: every episode's seeded choices (mistakes, look-ups, cell
    /// splits) derive from it and the task id.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    experts: ExpertArgs,
    #[command(flatten)]
    budgets: BudgetArgs,
    /// Play only the first N tasks of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Worker threads (episodes run in parallel); default: all cores.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Also write episodes that failed their evaluation (a broken gold plan; never training
    /// data).
    #[arg(long)]
    keep_failures: bool,
    #[command(flatten)]
    world: WorldArgs,
    #[command(flatten)]
    gold: GoldArgs,
    /// Start --pool-size environment servers with this command and play one episode per
    /// server at a time (needs --gold). Split on whitespace; `{port}` becomes each server's
    /// port (`{experiment}`, `{index}` its experiment name and index).
    #[arg(long, requires = "gold")]
    server_command: Option<String>,
    /// Number of servers --server-command starts for episodes (one more judges sub-tasks).
    #[arg(long, default_value_t = 2, requires = "server_command", value_parser = clap::value_parser!(u16).range(1..))]
    pool_size: u16,
    /// Seconds a pool server may take to start answering.
    #[arg(long, default_value_t = 60, requires = "server_command")]
    startup_timeout: u64,
}

pub fn run(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Gen(args) => generate(&args),
        DataCommand::Corpus(args) => corpus(&args),
        DataCommand::Stats(args) => crate::curriculum_cmd::run_stats(&args),
    }
}

fn corpus(args: &CorpusArgs) -> Result<()> {
    let options = rung_agents::corpus::CorpusOptions {
        suite_seeds: args.suite_seeds.clone(),
        worlds_per_seed: args.worlds_per_seed,
        walks_per_world: args.walks_per_world,
        walk: rung_world::walks::WalkOptions {
            steps: args.steps,
            ..Default::default()
        },
        seed: args.seed,
    };
    let started = std::time::Instant::now();
    let report = rung_agents::corpus::write_corpus(&options, args.exclude_suite, &args.out)
        .with_context(|| format!("writing the corpus {}", args.out.display()))?;
    println!(
        "wrote {} walks ({} conversations, {} cells of which {} failed; {} walks dropped for \
         mentioning an evaluated person) to {} in {:.1}s",
        report.walks,
        report.conversations,
        report.cells,
        report.failed_cells,
        report.dropped,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn generate(args: &GenArgs) -> Result<()> {
    let world = args.world.embedded();
    let mut options = DataGenOptions::embedded(world);
    options.expert = args.experts.options()?;
    options.budgets = args.budgets.budgets();
    options.seed = args.seed;
    options.keep_failures = args.keep_failures;
    options.run.limit = args.limit;
    if let Some(threads) = args.threads {
        options.run.threads = usize::from(threads);
    }
    if let Some(gold) = args.gold.load()? {
        let command = args.server_command.as_deref().context(
            "--gold needs AppWorld servers: add --server-command \"PYTHON SERVE.PY --port {port} \
             --root DIR\" (see `cargo xtask appworld env`)",
        )?;
        let run = start_pool_run(
            command,
            usize::from(args.pool_size),
            Duration::from_secs(args.startup_timeout),
            "rung-data",
            Some(gold),
        )?;
        options.run.threads = run.envs.len();
        options.run.backend = Backend::PerWorker(run.envs);
        options.run.gold = run.gold;
        options.apps = run.apps;
    }
    options.run.progress = progress_bar(format!("{} {}", args.system, args.split));
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs/data").join(format!("{}-{}.jsonl", args.system, args.split))
    });
    let report = generate_expert_data(args.split, args.system, &options, &out)
        .with_context(|| format!("generating expert data into {}", out.display()))?;
    print!("{}", report.eval.table());
    println!(
        "wrote {} episodes ({} with a deliberate mistake and its recovery) to {}",
        report.written,
        report.with_mistake,
        out.display()
    );
    if !report.failed.is_empty() {
        let ids: Vec<&str> = report.failed.iter().map(|id| id.as_str()).collect();
        let kept = if args.keep_failures {
            "written anyway (--keep-failures)"
        } else {
            "not written"
        };
        bail!(
            "{} expert episode(s) failed their evaluation ({kept}); their gold plans are \
             broken: {}",
            ids.len(),
            ids.join(", ")
        );
    }
    Ok(())
}
