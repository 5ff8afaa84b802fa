//! `cargo xtask bench train`: the real rung-train `Trainer`'s tokens/s and peak memory next to
//! PyTorch's, on the same batches, in one invocation.
//!
//! It builds rung-train's `bench_train` example (release build, CPU backend) and, for each mode
//! (`full`, `lora`) and round, runs it and then `crates/rung-train/benches/pytorch_train.py` on
//! the batches it dumped, every run in a child process of its own so that each peak RSS
//! (`VmHWM`) belongs to one configuration. Both programs document what they measure: forward,
//! masked loss, backward, clipping and AdamW over the same padded batches of the bench config
//! (preset `base`, 8 rows of at most 512 tokens; LoRA rank 8, alpha 16, dropout 0.05 on every
//! projection). The table shows tokens/s, RSS after setup, peak RSS, the peak's growth over
//! setup, and the ratios rung/PyTorch, with the machine's load average before and after.
//!
//! Run it on an otherwise idle machine: on oversubscribed cores PyTorch's OpenMP threads
//! spin-wait and its throughput collapses far more than rayon's (`--threads 1` is the least
//! sensitive comparison on a shared machine); the load average is printed for that reason.
//!
//! Python: `--python`, else `RUNG_PYTHON`, else a `.venv-ref` in or above the workspace, else
//! `python3` (as `cargo xtask bench model`, which has no `--python`; see
//! [`bench_common::python`]). Without torch/transformers/peft only rung's figures are printed,
//! with how to install them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::bench_common::{self, build_example, fmt, last_json_line};

/// Options of `cargo xtask bench train`.
#[derive(Debug, Clone, Args)]
pub struct TrainBenchArgs {
    /// Threads for both frameworks (rayon's pool for rung, `torch.set_num_threads` for PyTorch);
    /// default: all cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Model preset (rung-model's `PRESET_NAMES`).
    #[arg(long, default_value = "base")]
    pub preset: String,
    /// Rows per optimizer step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Longest sample in tokens (the trainer's `max_seq_len`).
    #[arg(long, default_value_t = 512)]
    pub seq: usize,
    /// Measured optimizer steps.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Unmeasured steps before them.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// LoRA rank (alpha = 2 · rank, every projection adapted).
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.05)]
    pub lora_dropout: f64,
    /// Comma-separated subset of full, lora.
    #[arg(long, default_value = "full,lora")]
    pub only: String,
    /// Run everything this many times, alternating, and report each figure's best run (on a
    /// shared machine the least disturbed one: highest tokens/s, lowest memory).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Skip the PyTorch reference.
    #[arg(long)]
    pub no_reference: bool,
    /// Python with torch, transformers and peft (default: `RUNG_PYTHON`, a `.venv-ref` in or
    /// above the workspace, `python3`).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// transformers' attention implementation for the reference (sdpa or eager).
    #[arg(long, default_value = "sdpa")]
    pub attn: String,
    /// Also write both frameworks' raw results to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The modes of `--only`, checked.
fn modes(only: &str) -> Result<Vec<&str>> {
    let modes: Vec<&str> = only.split(',').map(str::trim).collect();
    if let Some(bad) = modes.iter().find(|m| !["full", "lora"].contains(m)) {
        bail!("--only: unknown mode `{bad}` (full, lora)");
    }
    Ok(modes)
}

/// Run the benchmark and print the comparison table (see the module documentation).
pub fn run(root: &Path, args: &TrainBenchArgs) -> Result<()> {
    let threads = bench_common::threads(args.threads)?;
    let modes = modes(&args.only)?;
    eprintln!("xtask: building rung-train's bench_train example (release)");
    let exe = build_example(root, "rung-train", "bench_train")?;
    let python = bench_common::python(root, args.python.as_deref());
    let mut reference_ok = !args.no_reference
        && bench_common::probe(
            &python,
            "torch, transformers, peft",
            "lacks torch, transformers or peft",
            None,
        );
    let dump = std::env::temp_dir().join(format!("rung-bench-train-{}.json", std::process::id()));
    let load_before = load_average();
    let mut results: Vec<(String, Value, Option<Value>)> = Vec::new();
    for round in 1..=args.rounds.max(1) {
        for &mode in &modes {
            eprintln!("xtask: round {round}, {mode}: rung ({threads} threads)");
            let mut command = Command::new(&exe);
            command
                .args(["--mode", mode, "--dump"])
                .arg(&dump)
                .args(shape_args(args))
                .env("RAYON_NUM_THREADS", threads.to_string());
            let ours = child_json(command, "rung's bench_train")?;
            let theirs = if reference_ok {
                eprintln!("xtask: round {round}, {mode}: PyTorch ({threads} threads)");
                let script = root.join("crates/rung-train/benches/pytorch_train.py");
                let mut command = bench_common::reference_command(&python, &script, threads);
                command
                    .arg("--batches")
                    .arg(&dump)
                    .args(["--mode", mode, "--attn", &args.attn])
                    .args(["--threads", &threads.to_string()]);
                match child_json(command, "the PyTorch reference") {
                    Ok(value) => Some(value),
                    Err(e) => {
                        eprintln!("xtask: {e:#}; showing rung's figures only");
                        reference_ok = false;
                        None
                    }
                }
            } else {
                None
            };
            merge(&mut results, mode, ours, theirs);
        }
    }
    let _ = std::fs::remove_file(&dump);
    let load_after = load_average();
    print_table(args, threads, &results, (&load_before, &load_after));
    if !reference_ok && !args.no_reference {
        println!("\n(PyTorch figures missing: {INSTALL_HINT})");
    }
    if let Some(path) = &args.json {
        let all: Vec<Value> = results
            .iter()
            .map(|(mode, r, p)| json!({"mode": mode, "rung": r, "pytorch": p}))
            .collect();
        bench_common::write_json(path, &Value::Array(all))?;
    }
    Ok(())
}

/// The shape options of `bench_train`.
fn shape_args(args: &TrainBenchArgs) -> Vec<String> {
    [
        ("--preset", args.preset.clone()),
        ("--batch", args.batch.to_string()),
        ("--seq", args.seq.to_string()),
        ("--steps", args.steps.to_string()),
        ("--warmup", args.warmup.to_string()),
        ("--lora-rank", args.lora_rank.to_string()),
        ("--lora-dropout", args.lora_dropout.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// Keeps, per mode and framework, the best figures over rounds: the highest tokens/s and,
/// independently, the lowest memory.
fn merge(
    results: &mut Vec<(String, Value, Option<Value>)>,
    mode: &str,
    ours: Value,
    theirs: Option<Value>,
) {
    let Some(slot) = results.iter_mut().find(|(m, ..)| m == mode) else {
        results.push((mode.to_string(), ours, theirs));
        return;
    };
    best_of(&mut slot.1, &ours);
    match (&mut slot.2, theirs) {
        (Some(kept), Some(new)) => best_of(kept, &new),
        (kept @ None, new) => *kept = new,
        _ => {}
    }
}

fn best_of(kept: &mut Value, new: &Value) {
    let get = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    if get(new, "tokens_per_s") > get(kept, "tokens_per_s") {
        for key in ["tokens_per_s", "step_s", "final_loss"] {
            kept[key] = new[key].clone();
        }
    }
    for key in ["rss_setup_mb", "peak_rss_mb"] {
        if get(new, key) < get(kept, key) {
            kept[key] = new[key].clone();
        }
    }
}

/// Runs a child to completion (stderr shown) and returns the last JSON object it printed.
fn child_json(mut command: Command, what: &str) -> Result<Value> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {what} ({program})"))?;
    if !output.status.success() {
        bail!("{what} failed ({})", output.status);
    }
    last_json_line(&output.stdout).with_context(|| format!("{what} printed no JSON"))
}

const INSTALL_HINT: &str = "to compare with PyTorch, install the reference and point RUNG_PYTHON \
     (or --python) at it:\n  python3 -m venv .venv-ref && .venv-ref/bin/pip install torch \
     transformers peft\n  RUNG_PYTHON=.venv-ref/bin/python cargo xtask bench train";

/// `/proc/loadavg`'s 1-, 5- and 15-minute averages, or `?` where there is none.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn print_table(
    args: &TrainBenchArgs,
    threads: usize,
    results: &[(String, Value, Option<Value>)],
    (load_before, load_after): (&str, &str),
) {
    let Some((_, first, reference)) = results.first() else {
        return;
    };
    println!(
        "rung-train bench: preset {} ({} parameters), batch {} × ≤{} tokens ({} real of {} \
         padded tokens per measured step), {} measured steps after {} warmup; LoRA rank {} \
         (alpha {}, dropout {}) on q,k,v,o,gate,up,down; threads: {threads}; best of {} round(s)",
        args.preset,
        first["params"],
        args.batch,
        args.seq,
        first["tokens"].as_u64().unwrap_or(0) / args.steps.max(1) as u64,
        first["padded_tokens"].as_u64().unwrap_or(0) / args.steps.max(1) as u64,
        args.steps,
        args.warmup,
        args.lora_rank,
        2 * args.lora_rank,
        args.lora_dropout,
        args.rounds.max(1),
    );
    let torch = reference.as_ref().map_or_else(
        || "PyTorch (not run)".to_string(),
        |r| {
            format!(
                "PyTorch {} / transformers {} / peft {} ({})",
                r["versions"]["torch"].as_str().unwrap_or("?"),
                r["versions"]["transformers"].as_str().unwrap_or("?"),
                r["versions"]["peft"].as_str().unwrap_or("?"),
                r["attn_implementation"].as_str().unwrap_or("?"),
            )
        },
    );
    println!(
        "rung backend: {}; reference: {torch}; load average (1/5/15 min) before {load_before}, \
         after {load_after}\n",
        first["backend"].as_str().unwrap_or("?")
    );
    println!(
        "{:<6} {:<8} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "mode", "", "tokens/s", "setup MB", "peak MB", "peak-setup", "loss"
    );
    for (mode, ours, theirs) in results {
        for (name, value) in [("rung", Some(ours)), ("PyTorch", theirs.as_ref())] {
            let Some(v) = value else { continue };
            let f = |k: &str| v[k].as_f64();
            println!(
                "{mode:<6} {name:<8} {:>10} {:>10} {:>10} {:>12} {:>10}",
                fmt(f("tokens_per_s"), 1),
                fmt(f("rss_setup_mb"), 0),
                fmt(f("peak_rss_mb"), 0),
                fmt(
                    f("peak_rss_mb").zip(f("rss_setup_mb")).map(|(p, s)| p - s),
                    0
                ),
                fmt(f("final_loss"), 3),
            );
        }
        if let Some(theirs) = theirs {
            let ratio = |k: &str| match (ours[k].as_f64(), theirs[k].as_f64()) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                _ => "-".into(),
            };
            println!(
                "{mode:<6} {:<8} {:>10} {:>10} {:>10}",
                "ratio",
                ratio("tokens_per_s"),
                ratio("rss_setup_mb"),
                ratio("peak_rss_mb"),
            );
        }
    }
    println!(
        "\nratio = rung/PyTorch: above 1× is faster for tokens/s, heavier for memory. Memory is \
         the whole process (PyTorch's includes the Python interpreter and torch's libraries)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_checked() {
        assert_eq!(modes("full, lora").unwrap(), ["full", "lora"]);
        assert!(modes("full,decode").is_err());
    }

    #[test]
    fn the_best_figures_of_each_mode_are_kept() {
        let mut results = Vec::new();
        let run = |rate: f64, peak: f64| {
            json!({"tokens_per_s": rate, "step_s": 1.0 / rate, "peak_rss_mb": peak,
                   "rss_setup_mb": peak / 2.0, "final_loss": rate})
        };
        merge(&mut results, "full", run(10.0, 500.0), None);
        merge(
            &mut results,
            "full",
            run(12.0, 600.0),
            Some(run(30.0, 900.0)),
        );
        merge(&mut results, "lora", run(8.0, 400.0), None);
        assert_eq!(results.len(), 2);
        let (_, ours, theirs) = &results[0];
        assert_eq!(ours["tokens_per_s"], 12.0);
        assert_eq!(ours["final_loss"], 12.0);
        assert_eq!(ours["peak_rss_mb"], 500.0);
        assert_eq!(theirs.as_ref().unwrap()["tokens_per_s"], 30.0);
    }

    #[test]
    fn shapes_are_passed_to_bench_train() {
        let args = TrainBenchArgs {
            threads: None,
            preset: "small".into(),
            batch: 4,
            seq: 256,
            steps: 3,
            warmup: 1,
            lora_rank: 8,
            lora_dropout: 0.05,
            only: "full".into(),
            rounds: 1,
            no_reference: true,
            python: None,
            attn: "sdpa".into(),
            json: None,
        };
        let shapes = shape_args(&args);
        assert!(shapes.windows(2).any(|w| w == ["--preset", "small"]));
        assert!(shapes.windows(2).any(|w| w == ["--seq", "256"]));
    }
}
