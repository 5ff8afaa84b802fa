//! Project automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! Each command is a thin wrapper around cargo so that the usual workflows (serve the embedded
//! world, regenerate the committed datasets, benchmark the world) are one short command with the
//! right profile and paths, whatever the current directory.

mod appworld;
mod bench_common;
mod bench_eval;
mod bench_model;
mod bench_train;
mod bench_world;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;

/// Project automation for rung.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// The embedded (AppWorld-compatible) world.
    #[command(subcommand)]
    World(WorldTask),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchTask),
    /// The end-to-end ProST experiment: build `rung` in release mode with the burn backend of
    /// --backend, then run `rung experiment --config FILE` (data, training, evaluation, Pareto
    /// analysis, report; finished stages are skipped, so re-running resumes).
    Experiment(ExperimentTask),
    /// The real AppWorld engine (from PyPI) in its own virtualenv: setup, synthetic data, serve.
    #[command(subcommand)]
    Appworld(appworld::AppworldTask),
    /// Fuzzers.
    #[command(subcommand)]
    Fuzz(FuzzTask),
}

#[derive(Debug, Subcommand)]
enum FuzzTask {
    /// Fuzz the embedded world's sandbox with generated and mutated programs (release build).
    ///
    /// Runs `cargo run --release -p rung-cli --bin rung -- world fuzz --seconds N [ARGS…]`; exits
    /// non-zero on any finding (a crash, a cell past its limits, a mute episode, a process past
    /// its memory bound) and names the program. CI runs a bounded count in
    /// `crates/rung-world/tests/fuzz.rs`.
    World {
        /// How long to fuzz.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Further arguments for `rung world fuzz` (e.g. `--fuzz-seed 7 --json fuzz.json`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Debug, clap::Args)]
struct ExperimentTask {
    /// Experiment config.
    #[arg(long, default_value = "configs/default.toml")]
    config: PathBuf,
    /// Burn backend to build `rung` with: cpu (flex), wgpu or cuda. Must match the config's
    /// `backend`.
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "wgpu", "cuda"])]
    backend: String,
    /// Where stages run: local (this process) or slurm (one sbatch job per stage).
    #[arg(long, default_value = "local", value_parser = ["local", "slurm"])]
    executor: String,
    /// Further arguments for `rung experiment` (e.g. `--force eval`, `--dry-run`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
enum WorldTask {
    /// Serve the embedded world with AppWorld's environment-server protocol (release build).
    ///
    /// Runs `cargo run --release -p rung-cli --bin rung -- world serve --port P [ARGS…]`; the
    /// server answers the same endpoints as `appworld serve environment`.
    Serve {
        /// Port to listen on (AppWorld's default is 8000).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Further arguments for `rung world serve` (e.g. `--seed 1 --workers 4`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Regenerate the committed task files `datasets/world/*.jsonl` (release build).
    ///
    /// The files must equal what the suite generates; `tests/datasets.rs` checks it.
    Export,
}

#[derive(Debug, Subcommand)]
enum BenchTask {
    /// Run the embedded world's criterion benchmarks and summarise them; with --load, drive a
    /// `rung world serve` process with concurrent clients instead.
    ///
    /// Runs `cargo bench -p rung-world --bench world`, then reads criterion's estimates
    /// (`target/criterion/**/new/estimates.json`) and prints the mean time per iteration and the
    /// derived throughput (execute steps/s, whole-split replay time). With --load: episodes/s,
    /// p50/p99 latency of `/execute`, errors and the server's peak RSS at 1, 4, 16 and 64
    /// clients (release builds of `rung` and of rung-world's `world_load` example).
    World(bench_world::WorldBenchArgs),
    /// rung-model training and decode throughput next to PyTorch's, in one run, with ratios.
    Model(bench_model::ModelBenchArgs),
    /// rung-train's Trainer: tokens/s and peak memory next to PyTorch's, full and LoRA, with ratios.
    Train(bench_train::TrainBenchArgs),
    /// Evaluation episodes/s, one-at-a-time generation against continuous batching, with the
    /// ratio and a check that both give the same trajectories; decode tokens/s at batch 1 and 8.
    Eval(bench_eval::EvalBenchArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let root = workspace_root()?;
    match cli.command {
        Task::World(WorldTask::Serve { port, args }) => {
            let mut command = rung_command(&root);
            command
                .args(["world", "serve", "--port", &port.to_string()])
                .args(args);
            cargo(command, "serving the embedded world")
        }
        Task::World(WorldTask::Export) => {
            let out = root.join("datasets").join("world");
            let mut command = rung_command(&root);
            command.args(["world", "export", "--out"]).arg(&out);
            cargo(command, "exporting the task suite")
        }
        Task::Appworld(task) => appworld::run(&root, task),
        Task::Fuzz(FuzzTask::World { seconds, args }) => {
            let mut command = rung_command(&root);
            command
                .args(["world", "fuzz", "--seconds", &seconds.to_string()])
                .args(args);
            cargo(command, "fuzzing the world's sandbox")
        }
        Task::Experiment(task) => {
            let mut command = Command::new(cargo_program());
            command.current_dir(&root).args([
                "run",
                "--release",
                "-p",
                "rung-cli",
                "--bin",
                "rung",
            ]);
            if task.backend != "cpu" {
                command.args(["--features", &task.backend]);
                // A GPU feature changes burn's features, so sharing the CPU build's target dir
                // would rebuild burn on every switch of backend: each backend gets its own.
                let dir = backend_target_dir(target_dir(&root), &task.backend);
                eprintln!("building into {}", dir.display());
                command.env("CARGO_TARGET_DIR", dir);
            }
            // Relative to where the user stands, not to the workspace root cargo runs in.
            let config = std::env::current_dir()
                .context("reading the current directory")?
                .join(&task.config);
            command
                .args(["--", "experiment", "--config"])
                .arg(&config)
                .args(["--executor", &task.executor])
                .args(task.args);
            cargo(command, "running the experiment")
        }
        Task::Bench(BenchTask::Model(args)) => {
            bench_model::run(&root, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Bench(BenchTask::Train(args)) => {
            bench_train::run(&root, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Bench(BenchTask::Eval(args)) => {
            bench_eval::run(&root, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Bench(BenchTask::World(args)) if args.load => {
            bench_world::run(&root, &args)?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Bench(BenchTask::World(_)) => {
            let mut command = Command::new(cargo_program());
            command
                .current_dir(&root)
                .args(["bench", "-p", "rung-world", "--bench", "world"]);
            let code = cargo(command, "benchmarking the world")?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            summarise_criterion(&target_dir(&root).join("criterion"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The workspace root: xtask lives in `<root>/xtask`, so its manifest folder's parent.
fn workspace_root() -> Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest
        .parent()
        .with_context(|| format!("{} has no parent folder", manifest.display()))?;
    if !root.join("Cargo.toml").is_file() {
        bail!(
            "no Cargo.toml in {}, the expected workspace root",
            root.display()
        );
    }
    Ok(root.to_path_buf())
}

/// The cargo that runs us (cargo sets `CARGO`), so the same toolchain builds the rest.
fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Honours `CARGO_TARGET_DIR` as cargo does, so criterion's output is found where it went.
fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `<target dir>-<backend>` (e.g. `target-wgpu`), the convention `.ci/run` and the README use.
fn backend_target_dir(target: PathBuf, backend: &str) -> PathBuf {
    let mut name = target.into_os_string();
    name.push(format!("-{backend}"));
    PathBuf::from(name)
}

/// `cargo run --release -p rung-cli --bin rung --` in the workspace root; callers add the args.
fn rung_command(root: &Path) -> Command {
    let mut command = Command::new(cargo_program());
    command
        .current_dir(root)
        .args(["run", "--release", "-p", "rung-cli", "--bin", "rung", "--"]);
    command
}

/// Runs a cargo command, passing its exit code on; a failure to start or a non-zero exit is
/// explained on stderr with the command line.
fn cargo(mut command: Command, what: &str) -> Result<ExitCode> {
    let line = describe(&command);
    let status = command
        .status()
        .with_context(|| format!("{what}: cannot start `{line}`"))?;
    if status.success() {
        return Ok(ExitCode::SUCCESS);
    }
    match status.code() {
        Some(code) => {
            eprintln!("xtask: {what} failed: `{line}` exited with status {code}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1)))
        }
        None => {
            eprintln!("xtask: {what} failed: `{line}` was ended by a signal ({status})");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One benchmark's figures, from criterion's `new/estimates.json` and `new/benchmark.json`.
#[derive(Debug)]
struct Estimate {
    /// Mean time per iteration, in nanoseconds.
    mean_ns: f64,
    /// Half-width of the mean's confidence interval, in nanoseconds.
    spread_ns: f64,
    /// Elements per iteration, when the benchmark declared a throughput.
    elements: Option<f64>,
}

/// Prints one line per benchmark found under `criterion_dir`.
fn summarise_criterion(criterion_dir: &Path) -> Result<()> {
    let mut found = BTreeMap::new();
    collect_estimates(criterion_dir, criterion_dir, &mut found)?;
    if found.is_empty() {
        bail!(
            "cargo bench succeeded but no estimates were found under {}",
            criterion_dir.display()
        );
    }
    println!("\nsummary (mean per iteration ± confidence half-width; machine noise applies):");
    for (name, estimate) in &found {
        let time = format_duration(estimate.mean_ns);
        let spread = format_duration(estimate.spread_ns);
        let throughput = match estimate.elements {
            Some(elements) if estimate.mean_ns > 0.0 => {
                let per_second = elements * 1e9 / estimate.mean_ns;
                format!(", {per_second:.0} {}/s", unit_of(name))
            }
            _ => String::new(),
        };
        println!("  {name:<48} {time:>10} ± {spread}{throughput}");
    }
    Ok(())
}

/// The throughput unit a benchmark counts, named after its group.
fn unit_of(name: &str) -> &'static str {
    if name.starts_with("execute") {
        "steps"
    } else if name.starts_with("replay") {
        "tasks"
    } else {
        "elements"
    }
}

/// Walks `dir` for `new/estimates.json`; the benchmark's name is its folder path under `root`.
fn collect_estimates(
    root: &Path,
    dir: &Path,
    found: &mut BTreeMap<String, Estimate>,
) -> Result<()> {
    let entries =
        fs::read_dir(dir).with_context(|| format!("cannot read the folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let estimates = path.join("new").join("estimates.json");
        if estimates.is_file() {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            found.insert(name, read_estimate(&path.join("new"))?);
        } else if path.file_name().is_some_and(|n| n != "report") {
            collect_estimates(root, &path, found)?;
        }
    }
    Ok(())
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

fn read_estimate(new_dir: &Path) -> Result<Estimate> {
    let estimates = read_json(&new_dir.join("estimates.json"))?;
    let mean = &estimates["mean"];
    let mean_ns = mean["point_estimate"].as_f64().with_context(|| {
        format!(
            "{} has no mean.point_estimate",
            new_dir.join("estimates.json").display()
        )
    })?;
    let interval = &mean["confidence_interval"];
    let spread_ns = match (
        interval["lower_bound"].as_f64(),
        interval["upper_bound"].as_f64(),
    ) {
        (Some(low), Some(high)) => (high - low) / 2.0,
        _ => 0.0,
    };
    // benchmark.json carries the declared throughput, e.g. {"Elements": 3}.
    let elements = read_json(&new_dir.join("benchmark.json"))
        .ok()
        .and_then(|b| b["throughput"]["Elements"].as_f64());
    Ok(Estimate {
        mean_ns,
        spread_ns,
        elements,
    })
}

fn format_duration(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_forwards_extra_arguments() {
        let cli = Cli::try_parse_from([
            "xtask",
            "world",
            "serve",
            "--port",
            "9000",
            "--seed",
            "1",
            "--workers",
            "2",
        ])
        .expect("parses");
        match cli.command {
            Task::World(WorldTask::Serve { port, args }) => {
                assert_eq!(port, 9000);
                assert_eq!(args, ["--seed", "1", "--workers", "2"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bench_eval_defaults_to_a_hundred_tasks_of_tiny_and_small() {
        let cli = Cli::try_parse_from(["xtask", "bench", "eval"]).expect("parses");
        match cli.command {
            Task::Bench(BenchTask::Eval(args)) => {
                assert_eq!(args.tasks, 100);
                assert_eq!(args.presets, "tiny,small");
                assert_eq!(args.systems, "single,three_agent");
                assert_eq!(args.concurrent, 32);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["xtask", "bench", "eval", "--tasks", "8", "--only", "eval"])
            .expect("parses");
        match cli.command {
            Task::Bench(BenchTask::Eval(args)) => {
                assert_eq!(args.tasks, 8);
                assert_eq!(args.only, "eval");
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn bench_world_runs_criterion_unless_asked_for_load() {
        match Cli::try_parse_from(["xtask", "bench", "world"])
            .expect("parses")
            .command
        {
            Task::Bench(BenchTask::World(args)) => {
                assert!(!args.load);
                assert_eq!(args.clients, [1, 4, 16, 64]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "xtask",
            "bench",
            "world",
            "--load",
            "--clients",
            "2,8",
            "--seconds",
            "3",
        ])
        .expect("parses");
        match cli.command {
            Task::Bench(BenchTask::World(args)) => {
                assert!(args.load);
                assert_eq!(args.clients, [2, 8]);
                assert!((args.seconds - 3.0).abs() < f64::EPSILON);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn gpu_backends_build_beside_the_cpu_target_dir() {
        assert_eq!(
            backend_target_dir(PathBuf::from("/w/target"), "wgpu"),
            PathBuf::from("/w/target-wgpu")
        );
        assert_eq!(
            backend_target_dir(PathBuf::from("/cache/t"), "cuda"),
            PathBuf::from("/cache/t-cuda")
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(1.5e9), "1.500 s");
        assert_eq!(format_duration(2.5e6), "2.50 ms");
        assert_eq!(format_duration(180_000.0), "180.00 µs");
        assert_eq!(format_duration(12.0), "12 ns");
    }
}
