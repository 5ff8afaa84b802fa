//! `rung`: the command-line tool of rung.
//!
//! The `world` commands run rung's embedded world, an offline AppWorld-like world of apps, people
//! and tasks. `rung world serve` speaks AppWorld's environment-server protocol
//! (`appworld serve environment`), so anything that drives AppWorld over HTTP (rung's
//! `AppWorldClient`, a `ServerPool`, AppWorld's own Python client, curl) drives the embedded world
//! unchanged; the other commands export, list and replay its tasks without a server.

mod curriculum_cmd;
mod data_cmd;
mod eval_cmd;
mod experiment_cmd;
mod model_cmd;
mod train_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rung_env::{Environment, EpisodeOptions, ServerOptions, Split, TaskId};
use rung_world::sandbox::{FAILED, Limits};
use rung_world::{EmbeddedWorld, Suite, SuiteOptions, Task, export};

/// rung: ProST training for multi-agent systems of small language models.
#[derive(Debug, Parser)]
#[command(name = "rung", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The embedded world: an offline, deterministic AppWorld-compatible environment.
    ///
    /// Its tasks, apps and evaluation follow AppWorld (Trivedi et al., ACL 2024): agents write
    /// code that calls `apis.<app>.<api>(...)`, and tasks are judged by comparing the database
    /// before and after the episode.
    #[command(subcommand)]
    World(WorldCommand),
    /// Causal LMs: print logits, generate text, describe a checkpoint.
    #[command(subcommand)]
    Model(model_cmd::ModelCommand),
    /// Training data: scripted-expert trajectories (`rung data gen`) and summaries (`rung data stats`).
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    Eval(eval_cmd::EvalArgs),
    /// Curricula of progressive sub-task training: what each epoch supervises.
    #[command(subcommand)]
    Curriculum(curriculum_cmd::CurriculumCommand),
    /// Train a model or LoRA adapter on expert trajectories (or resume a run).
    Train(train_cmd::TrainArgs),
    Experiment(experiment_cmd::ExperimentArgs),
}

#[derive(Debug, Subcommand)]
enum WorldCommand {
    /// Serve the embedded world over HTTP with AppWorld's environment-server protocol.
    ///
    /// Same endpoints and bodies as `appworld serve environment` (POST /initialize, /execute,
    /// /task_completed, /evaluate, /close; GET /tasks/{task_id}, /api_docs, /), so AppWorld
    /// clients and rung's `ServerPool` use it in place of real AppWorld: a pool command such as
    /// `rung world serve --port {port}` works as-is. Unlike AppWorld, one server runs many
    /// episodes at once (one per task id). Runs until interrupted.
    Serve(ServeArgs),
    /// Write the task suite as JSONL, one file per split (train, dev, test_normal,
    /// test_challenge).
    ///
    /// Each line is one task with its instruction, supervisor, gold plan and answer; the schema
    /// is in datasets/world/README.md. Split names are AppWorld's. Files are replaced atomically.
    Export(ExportArgs),
    /// List tasks readably: id, difficulty, number of sub-tasks, apps and instruction.
    ///
    /// Task ids have AppWorld's shape (`<7-hex scenario>_<variant>`); pass one to
    /// `rung world replay` or to a server's POST /initialize.
    Tasks(TasksArgs),
    /// Run a task's gold plan in process and print each cell with its output, then the
    /// evaluation.
    ///
    /// Shows exactly what an agent sees: the outputs are those AppWorld's /execute would return,
    /// and the evaluation JSON is /evaluate's output.
    Replay(ReplayArgs),
    /// Fuzz the sandbox: generated and mutated gold programs, each in its own episode.
    ///
    /// Checks what must never happen whatever the code: an interpreter crash, a cell past its
    /// time limit, an episode that stops answering, a worker past its memory bound. Exits with
    /// status 1 on any finding and prints each with its program; the same --seed replays them.
    Fuzz(FuzzArgs),
}

/// Options every command that builds the suite shares.
#[derive(Debug, Args)]
struct SuiteArgs {
    /// Master seed of the suite; the same seed gives the same tasks, byte for byte.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl SuiteArgs {
    fn generate(&self) -> Suite {
        Suite::generate(SuiteOptions {
            seed: self.seed,
            ..SuiteOptions::default()
        })
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (0.0.0.0 to accept other machines).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; AppWorld's default is 8000.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Worker threads: how many requests (e.g. `execute` cells of parallel episodes) are
    /// handled at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    workers: u16,
    /// Memory limit of one episode's sandbox (its worker process), in MiB: a cell that needs
    /// more fails with a MemoryError and the episode goes on.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..))]
    sandbox_memory_mib: u64,
    /// Memory all sandboxes together may hold, in MiB: it bounds how many episodes are open at
    /// once (budget / sandbox memory); `initialize` past that answers 503. Default: three
    /// quarters of the machine's memory.
    #[arg(long)]
    memory_budget_mib: Option<u64>,
    #[command(flatten)]
    suite: SuiteArgs,
}

#[derive(Debug, Args)]
struct FuzzArgs {
    /// Stop after this many seconds…
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// …or after this many programs, whichever comes first.
    #[arg(long)]
    programs: Option<usize>,
    /// Seed of every random choice of the fuzzer: the same seed replays the same programs.
    #[arg(long, default_value_t = 0)]
    fuzz_seed: u64,
    /// Time limit of one cell, in seconds (short, so that runaway programs cost little).
    #[arg(long, default_value_t = 1)]
    cell_seconds: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    suite: SuiteArgs,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Folder to write `<split>.jsonl` into.
    #[arg(long, default_value = "datasets/world")]
    out: PathBuf,
    #[command(flatten)]
    suite: SuiteArgs,
}

#[derive(Debug, Args)]
struct TasksArgs {
    /// Split to list: train, dev, test_normal, test_challenge, or all.
    #[arg(long, default_value = "dev")]
    split: SplitChoice,
    /// List at most this many tasks.
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    suite: SuiteArgs,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// The task to replay, e.g. `50e1ac9_1` (see `rung world tasks`).
    task_id: String,
    #[command(flatten)]
    suite: SuiteArgs,
}

/// One split or all of them.
#[derive(Debug, Clone, Copy)]
enum SplitChoice {
    All,
    One(Split),
}

impl std::str::FromStr for SplitChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(SplitChoice::All);
        }
        s.parse()
            .map(SplitChoice::One)
            .map_err(|e: String| format!("{e}, or all"))
    }
}

impl SplitChoice {
    fn contains(self, split: Split) -> bool {
        match self {
            SplitChoice::All => true,
            SplitChoice::One(one) => one == split,
        }
    }
}

/// Prints an error as one `error: ...` line chain, without anyhow's backtrace (which
/// `RUST_BACKTRACE` would add to `main`'s `Err`), so that a mistyped task id reads as a message.
fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Model(command) => model_cmd::run(command),
        Command::Data(command) => data_cmd::run(command),
        Command::Eval(args) => eval_cmd::run(&args),
        Command::Curriculum(command) => curriculum_cmd::run(command),
        Command::Train(args) => train_cmd::run(&args),
        Command::Experiment(args) => experiment_cmd::run(&args),
        Command::World(command) => match command {
            WorldCommand::Serve(args) => serve(&args),
            WorldCommand::Export(args) => export_splits(&args),
            WorldCommand::Tasks(args) => list_tasks(&args),
            WorldCommand::Replay(args) => replay(&args),
            WorldCommand::Fuzz(args) => fuzz_sandbox(&args),
        },
    }
}

/// Builds the suite, serves it and blocks; the listening line goes to stderr so that stdout stays
/// free for whatever a wrapper wants to capture.
fn serve(args: &ServeArgs) -> Result<()> {
    let suite = Arc::new(args.suite.generate());
    let tasks = suite.tasks.len();
    let limits = Limits {
        max_heap: (args.sandbox_memory_mib << 20) as usize,
        ..Limits::default()
    };
    #[cfg(target_os = "linux")]
    let machine = rung_world::sandbox::procfs::machine_memory_bytes();
    #[cfg(not(target_os = "linux"))]
    let machine = None;
    let budget = match args.memory_budget_mib {
        Some(mib) => mib << 20,
        None => machine.map_or(u64::MAX / 4, |total: u64| total / 4 * 3),
    };
    let world = EmbeddedWorld::with_suite(suite, limits).with_memory_budget(budget as usize);
    let open = world.max_open_episodes();
    let world = Arc::new(world);
    let addr = if args.host.contains(':') && !args.host.starts_with('[') {
        format!("[{}]:{}", args.host, args.port)
    } else {
        format!("{}:{}", args.host, args.port)
    };
    let options = ServerOptions {
        workers: usize::from(args.workers),
        ..ServerOptions::default()
    };
    let handle = rung_env::serve_with(world, &addr, options)
        .with_context(|| format!("cannot serve the embedded world on {addr}"))?;
    let shown_host = if addr.starts_with('[') {
        format!("[{}]", args.host)
    } else {
        args.host.clone()
    };
    eprintln!(
        "rung world server listening on http://{shown_host}:{} ({tasks} tasks; up to {open} open \
         episodes of {} MiB each)",
        handle.port(),
        args.sandbox_memory_mib
    );
    handle.wait();
    Ok(())
}

fn fuzz_sandbox(args: &FuzzArgs) -> Result<()> {
    let suite = Arc::new(args.suite.generate());
    let options = rung_world::fuzz::FuzzOptions {
        seed: args.fuzz_seed,
        max_programs: args.programs.unwrap_or(usize::MAX),
        max_time: std::time::Duration::from_secs(args.seconds),
        limits: Limits {
            max_time: std::time::Duration::from_secs(args.cell_seconds.max(1)),
            ..Limits::default()
        },
    };
    eprintln!(
        "fuzzing the sandbox for {} s (fuzz seed {}, {} s per cell)",
        args.seconds, args.fuzz_seed, args.cell_seconds
    );
    let report = rung_world::fuzz::fuzz(&suite, &options);
    let json = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &args.json {
        std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mib = |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{} MiB", b >> 20));
    eprintln!(
        "{} programs, {} cells in {:.0} s: {} succeeded, {} failed as code, {} at the memory \
         limit, {} at the time limit; slowest cell {:.2} s; peak RSS {} here, {} in a worker",
        report.programs,
        report.cells,
        report.seconds,
        report.succeeded,
        report.failed,
        report.memory,
        report.timeouts,
        report.slowest_cell_seconds,
        mib(report.host_peak_bytes),
        mib(report.worker_peak_bytes),
    );
    if report.findings.is_empty() {
        return Ok(());
    }
    for finding in &report.findings {
        eprintln!(
            "\nFINDING in program {}: {}\n--- code ---\n{}\n--- output ---\n{}",
            finding.program, finding.problem, finding.code, finding.output
        );
    }
    anyhow::bail!(
        "{} findings (replay with --fuzz-seed {})",
        report.findings.len(),
        args.fuzz_seed
    )
}

fn export_splits(args: &ExportArgs) -> Result<()> {
    let suite = args.suite.generate();
    let written = export::write_splits(&suite, &args.out)
        .with_context(|| format!("cannot write the task files into {}", args.out.display()))?;
    for (split, path) in Split::ALL.into_iter().zip(&written) {
        println!(
            "wrote {} ({} tasks)",
            path.display(),
            suite.split(split).count()
        );
    }
    println!(
        "{} tasks in all (seed {})",
        suite.tasks.len(),
        args.suite.seed
    );
    Ok(())
}

fn list_tasks(args: &TasksArgs) -> Result<()> {
    let suite = args.suite.generate();
    let tasks: Vec<&Task> = suite
        .tasks
        .iter()
        .filter(|t| args.split.contains(t.split))
        .collect();
    let shown = args.limit.unwrap_or(usize::MAX).min(tasks.len());
    let show_split = matches!(args.split, SplitChoice::All);
    if show_split {
        println!(
            "{:<11} {:<14} {:>4} {:>5}  {:<24} INSTRUCTION",
            "TASK", "SPLIT", "DIFF", "STEPS", "APPS"
        );
    } else {
        println!(
            "{:<11} {:>4} {:>5}  {:<24} INSTRUCTION",
            "TASK", "DIFF", "STEPS", "APPS"
        );
    }
    for task in &tasks[..shown] {
        let apps = task.apps().join(",");
        if show_split {
            println!(
                "{:<11} {:<14} {:>4} {:>5}  {:<24} {}",
                task.task_id,
                task.split.name(),
                task.difficulty,
                task.plan.len(),
                apps,
                task.instruction
            );
        } else {
            println!(
                "{:<11} {:>4} {:>5}  {:<24} {}",
                task.task_id,
                task.difficulty,
                task.plan.len(),
                apps,
                task.instruction
            );
        }
    }
    if shown < tasks.len() {
        println!("… {shown} of {} tasks shown", tasks.len());
    } else {
        println!("{} tasks", tasks.len());
    }
    Ok(())
}

/// Replays through the [`Environment`] API, so the outputs and the evaluation are exactly what a
/// server would answer.
fn replay(args: &ReplayArgs) -> Result<()> {
    let task_id: TaskId = args
        .task_id
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}; list task ids with `rung world tasks --split all`"))?;
    let suite = Arc::new(args.suite.generate());
    let Some(task) = suite.task(&task_id).cloned() else {
        bail!(
            "{}",
            unknown_task_message(&suite, &task_id, args.suite.seed)
        );
    };
    let world = EmbeddedWorld::with_suite(Arc::clone(&suite), Limits::default());
    let info = world.initialize(&task_id, &EpisodeOptions::default())?;
    println!(
        "task {} ({}, {}, difficulty {})",
        task.task_id, task.split, task.template, task.difficulty
    );
    println!(
        "supervisor: {} {} <{}>, {}",
        info.supervisor.first_name,
        info.supervisor.last_name,
        info.supervisor.email,
        info.supervisor.phone_number
    );
    println!("datetime: {}", info.datetime);
    println!("instruction: {}", info.instruction);
    let cells = task.gold_cells();
    let count = cells.len();
    let mut failed = 0;
    for (index, cell) in cells.iter().enumerate() {
        let heading = match task.plan.get(index) {
            Some(step) => format!("[{}] {}: {}", step.kind, step.app, step.instruction),
            None => "completion".to_owned(),
        };
        println!("\n── cell {}/{count} {heading}", index + 1);
        for line in cell.lines() {
            println!(">>> {line}");
        }
        let output = world.execute(&task_id, cell)?;
        if output.starts_with(FAILED) {
            failed += 1;
        }
        println!("{output}");
    }
    let evaluation = world.evaluate(&task_id)?;
    world.close(&task_id)?;
    println!("\n── evaluation");
    println!("{}", serde_json::to_string_pretty(&evaluation)?);
    if failed > 0 {
        eprintln!("warning: {failed} gold cell(s) failed; the task's gold plan is broken");
    }
    Ok(())
}

/// The error for an id the suite lacks: says where ids come from and suggests the scenario's
/// variants or ids that share a prefix.
fn unknown_task_message(suite: &Suite, task_id: &TaskId, seed: u64) -> String {
    let scenario = task_id.scenario_id();
    let mut near: Vec<&str> = suite
        .tasks
        .iter()
        .map(|t| t.task_id.as_str())
        .filter(|id| id.starts_with(scenario))
        .collect();
    if near.is_empty() {
        near = suite
            .tasks
            .iter()
            .map(|t| t.task_id.as_str())
            .filter(|id| id.starts_with(&scenario[..3]))
            .take(5)
            .collect();
    }
    let suggestion = if near.is_empty() {
        String::new()
    } else {
        format!("; similar ids: {}", near.join(", "))
    };
    format!(
        "unknown task `{task_id}`: the suite of seed {seed} has {} tasks; list them with \
         `rung world tasks --split all --seed {seed}`{suggestion}",
        suite.tasks.len()
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_command_line_is_well_formed() {
        // clap checks names, defaults and conflicts of every subcommand only when asked.
        super::Cli::command().debug_assert();
    }
}
