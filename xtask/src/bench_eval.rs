//! `cargo xtask bench eval`: evaluation episodes/s with one-at-a-time generation against
//! rung's continuous-batching engine, side by side in one run, with the ratio.
//!
//! Builds rung-agents' `bench_eval` example (release, with the workspace's features so burn is
//! not rebuilt) and runs it: untrained models of the chosen presets play the chosen systems on
//! the first `--tasks` test_normal tasks of the embedded world, once with today's path (one
//! `generate` call per model call, one episode per worker thread) and once batched (many
//! episodes in flight, their calls merged by the engine, prefix caching on). It checks that
//! both produced the same trajectories and also reports decode tokens/s at batch 1 and 8. What
//! is measured is documented in the example itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::bench_common::{self, build_target, last_json_line};

/// Options of `cargo xtask bench eval`.
#[derive(Debug, Clone, Args)]
pub struct EvalBenchArgs {
    /// Threads: rayon's pool, and the worker threads of the one-at-a-time path; default: all
    /// cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Comma-separated model presets (untrained).
    #[arg(long, default_value = "tiny,small")]
    pub presets: String,
    /// Comma-separated systems (single, two_agent, three_agent).
    #[arg(long, default_value = "single,three_agent")]
    pub systems: String,
    /// test_normal tasks per evaluation.
    #[arg(long, default_value_t = 100)]
    pub tasks: usize,
    /// Episodes in flight on the batched path.
    #[arg(long, default_value_t = 32)]
    pub concurrent: usize,
    /// Most sequences per batched decode step.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Tokens-per-turn budget (an untrained model always generates up to it).
    #[arg(long, default_value_t = 64)]
    pub tokens_per_turn: u64,
    /// Comma-separated subset of eval, decode.
    #[arg(long, default_value = "eval,decode")]
    pub only: String,
    /// Also write the raw results to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Build and run the benchmark; it prints its own table.
pub fn run(root: &Path, args: &EvalBenchArgs) -> Result<()> {
    let threads = bench_common::threads(args.threads)?;
    eprintln!("xtask: building rung-agents' bench_eval example (release)");
    let exe = build_target(root, "release", &["--workspace"], "--example", "bench_eval")?;
    eprintln!("xtask: running {} ({threads} threads)", exe.display());
    let output = Command::new(&exe)
        .args(["--presets", &args.presets, "--systems", &args.systems])
        .args(["--tasks", &args.tasks.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--concurrent", &args.concurrent.to_string()])
        .args(["--max-batch", &args.max_batch.to_string()])
        .args(["--tokens-per-turn", &args.tokens_per_turn.to_string()])
        .args(["--only", &args.only])
        .env("RAYON_NUM_THREADS", threads.to_string())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines().filter(|l| !l.starts_with('{')) {
        println!("{line}");
    }
    if !output.status.success() {
        bail!("{} failed ({})", exe.display(), output.status);
    }
    let report = last_json_line(&output.stdout).context("bench_eval printed no JSON")?;
    if let Some(eval) = report["eval"].as_object()
        && let Some((name, _)) = eval
            .iter()
            .find(|(_, r)| r["identical_trajectories"] != true)
    {
        bail!("{name}: the batched evaluation's trajectories differ from one-at-a-time's");
    }
    if let Some(path) = &args.json {
        bench_common::write_json(path, &report)?;
    }
    Ok(())
}
