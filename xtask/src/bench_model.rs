//! `cargo xtask bench model`: rung-model's training and decoding throughput next to PyTorch's.
//!
//! In one invocation it builds and runs rung-model's `bench_model` example (release build, CPU
//! backend), then `crates/rung-model/benches/pytorch_reference.py` on the same architecture (the
//! HF `config.json` rung writes for the preset), shapes and thread count, and prints a table with
//! the ratio rung/PyTorch of each metric. What is measured is documented in both programs:
//! forward + backward + AdamW tokens/s for a full fine-tune and for LoRA (rank 8 on q, k, v, o,
//! gate, up, down), and KV-cached greedy decode tokens/s (8 prompts of 64 tokens, 128 new
//! tokens), for the `base` preset (9,441,408 parameters) at batch 8 × sequence 512.
//!
//! Python: `RUNG_PYTHON`, else a `.venv-ref` in or above the workspace, else `python3` (see
//! [`bench_common::python`]; unlike `bench train` there is no `--python`). When it lacks
//! torch/transformers, rung's figures are printed with instructions to install them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use crate::bench_common::{self, build_example, fmt, last_json_line};

/// Options of `cargo xtask bench model`.
#[derive(Debug, Clone, Args)]
pub struct ModelBenchArgs {
    /// Threads for both frameworks (rayon's pool for rung, `torch.set_num_threads` for PyTorch);
    /// default: all cores.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Model preset (rung-model's `PRESET_NAMES`).
    #[arg(long, default_value = "base")]
    pub preset: String,
    /// Training batch size.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Training sequence length.
    #[arg(long, default_value_t = 512)]
    pub seq: usize,
    /// Measured training steps (after one warm-up step).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Measured decode runs (the best one is reported).
    #[arg(long, default_value_t = 2)]
    pub decode_runs: usize,
    /// LoRA rank (alpha = 2 · rank, every projection adapted).
    #[arg(long, default_value_t = 8)]
    pub lora_rank: usize,
    /// Decode: number of prompts.
    #[arg(long, default_value_t = 8)]
    pub decode_batch: usize,
    /// Decode: tokens per prompt.
    #[arg(long, default_value_t = 64)]
    pub prompt_len: usize,
    /// Decode: new tokens per prompt.
    #[arg(long, default_value_t = 128)]
    pub new_tokens: usize,
    /// Comma-separated subset of train_full, train_lora, decode.
    #[arg(long, default_value = "train_full,train_lora,decode")]
    pub only: String,
    /// Run both programs this many times, alternating, and report each metric's best run (on a
    /// shared machine the least disturbed one).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Skip the PyTorch reference.
    #[arg(long)]
    pub no_reference: bool,
    /// transformers' attention implementation for the reference (sdpa or eager).
    #[arg(long, default_value = "sdpa")]
    pub attn: String,
    /// Also write both frameworks' raw results to this JSON file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Run the benchmark and print the comparison table (see the module documentation).
pub fn run(root: &Path, args: &ModelBenchArgs) -> Result<()> {
    let threads = bench_common::threads(args.threads)?;
    let shapes = shape_args(args);

    eprintln!("xtask: building rung-model's bench_model example (release)");
    let exe = build_example(root, "rung-model", "bench_model")?;
    let rounds = args.rounds.max(1);
    let mut rung: Option<Value> = None;
    let mut reference: Option<Value> = None;
    let mut reference_missing = args.no_reference;
    for round in 1..=rounds {
        if rounds > 1 {
            eprintln!("xtask: round {round} of {rounds}");
        }
        eprintln!("xtask: running rung ({threads} threads): {}", exe.display());
        let output = Command::new(&exe)
            .args(["--preset", &args.preset])
            .args(&shapes)
            .env("RAYON_NUM_THREADS", threads.to_string())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        if !output.status.success() {
            bail!("{} failed ({})", exe.display(), output.status);
        }
        let ours = last_json_line(&output.stdout).context("rung's bench printed no JSON")?;
        let config = ours["hf_config"].clone();
        let params = ours["params"].clone();
        rung = Some(keep_best(rung, ours));
        if !reference_missing {
            match run_reference(root, args, threads, &shapes, &config, &params)? {
                Some(theirs) => reference = Some(keep_best(reference, theirs)),
                None => reference_missing = true,
            }
        }
    }
    let rung = rung.expect("at least one round ran");

    print_table(args, threads, &rung, reference.as_ref());
    if let Some(path) = &args.json {
        bench_common::write_json(path, &json!({ "rung": rung, "pytorch": reference }))?;
    }
    Ok(())
}

/// Merge two runs of one program: per metric, the result with the higher tokens/s.
fn keep_best(best: Option<Value>, new: Value) -> Value {
    let Some(mut best) = best else {
        return new;
    };
    if let (Some(kept), Some(fresh)) = (best["results"].as_object_mut(), new["results"].as_object())
    {
        for (metric, result) in fresh {
            let rate = |r: &Value| r["tokens_per_s"].as_f64().unwrap_or(0.0);
            if kept.get(metric).is_none_or(|old| rate(result) > rate(old)) {
                kept.insert(metric.clone(), result.clone());
            }
        }
    }
    best
}

/// The shape options both programs take, in their common spelling.
fn shape_args(args: &ModelBenchArgs) -> Vec<String> {
    [
        ("--batch", args.batch),
        ("--seq", args.seq),
        ("--steps", args.steps),
        ("--decode-runs", args.decode_runs),
        ("--lora-rank", args.lora_rank),
        ("--decode-batch", args.decode_batch),
        ("--prompt-len", args.prompt_len),
        ("--new-tokens", args.new_tokens),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
    .chain(["--only".to_string(), args.only.clone()])
    .collect()
}

const INSTALL_HINT: &str = "to compare with PyTorch, install the reference and point RUNG_PYTHON \
     at it:\n  python3 -m venv .venv-ref && .venv-ref/bin/pip install torch transformers peft\n  \
     RUNG_PYTHON=.venv-ref/bin/python cargo xtask bench model";

/// Run the PyTorch script; `None` (with the reason on stderr) when Python or torch is missing.
fn run_reference(
    root: &Path,
    args: &ModelBenchArgs,
    threads: usize,
    shapes: &[String],
    hf_config: &Value,
    params: &Value,
) -> Result<Option<Value>> {
    let python = bench_common::python(root, None);
    if !bench_common::probe(
        &python,
        "torch, transformers, peft",
        "has no torch/transformers/peft",
        Some(INSTALL_HINT),
    ) {
        return Ok(None);
    }
    let config_path =
        std::env::temp_dir().join(format!("rung-bench-model-{}.json", std::process::id()));
    std::fs::write(&config_path, serde_json::to_string(hf_config)?)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let script = root.join("crates/rung-model/benches/pytorch_reference.py");
    eprintln!(
        "xtask: running the PyTorch reference ({threads} threads): {} {}",
        python.display(),
        script.display()
    );
    let output = bench_common::reference_command(&python, &script, threads)
        .arg("--config")
        .arg(&config_path)
        .args(["--threads", &threads.to_string(), "--attn", &args.attn])
        .args(shapes)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {}", python.display()));
    let _ = std::fs::remove_file(&config_path);
    let output = output?;
    if !output.status.success() {
        eprintln!(
            "xtask: the PyTorch reference failed ({}); showing rung's figures only",
            output.status
        );
        return Ok(None);
    }
    let value = last_json_line(&output.stdout).context("the PyTorch reference printed no JSON")?;
    if value["params"] != *params {
        eprintln!(
            "xtask: warning: PyTorch's model has {} parameters, rung's {params}: not the same \
             architecture",
            value["params"]
        );
    }
    Ok(Some(value))
}

/// Metrics of the table: (result key, label, goal ratio rung/PyTorch from the issue).
const METRICS: [(&str, &str, f64); 3] = [
    ("train_full", "train, full fine-tune", 1.0),
    ("train_lora", "train, LoRA", 1.0),
    ("decode", "decode, KV cache", 1.5),
];

fn print_table(args: &ModelBenchArgs, threads: usize, rung: &Value, reference: Option<&Value>) {
    let params = rung["params"].as_u64().unwrap_or(0);
    println!(
        "rung-model bench: preset {} ({} parameters), train batch {} × seq {}, LoRA rank {} on \
         q,k,v,o,gate,up,down; decode {} prompts × {} tokens + {} new (greedy); {threads} threads; \
         best of {} round(s)",
        args.preset,
        params,
        args.batch,
        args.seq,
        args.lora_rank,
        args.decode_batch,
        args.prompt_len,
        args.new_tokens,
        args.rounds.max(1),
    );
    let torch_name = reference.map_or_else(
        || "PyTorch (not run)".to_string(),
        |r| {
            format!(
                "PyTorch {} / transformers {} ({})",
                r["versions"]["torch"].as_str().unwrap_or("?"),
                r["versions"]["transformers"].as_str().unwrap_or("?"),
                r["attn_implementation"].as_str().unwrap_or("?")
            )
        },
    );
    println!(
        "rung backend: {}; reference: {torch_name}\n",
        rung["backend"].as_str().unwrap_or("?")
    );
    println!(
        "{:<24} {:>12} {:>12} {:>13}   goal",
        "metric (tokens/s)", "rung", "PyTorch", "rung/PyTorch"
    );
    for (key, label, goal) in METRICS {
        let ours = rung["results"][key]["tokens_per_s"].as_f64();
        let theirs = reference.and_then(|r| r["results"][key]["tokens_per_s"].as_f64());
        if ours.is_none() && theirs.is_none() {
            continue;
        }
        let (ratio, verdict) = match (ours, theirs) {
            (Some(a), Some(b)) if b > 0.0 => (
                format!("{:.2}×", a / b),
                if a / b >= goal { "met" } else { "not met" },
            ),
            _ => ("-".to_string(), ""),
        };
        println!(
            "{label:<24} {:>12} {:>12} {ratio:>13}   ≥{goal:.1}× {verdict}",
            fmt(ours, 1),
            fmt(theirs, 1)
        );
    }
    println!("\nwhere the time goes (seconds per training step; decode: prefill and per-token):");
    for (name, value) in [("rung", Some(rung)), ("PyTorch", reference)] {
        let Some(value) = value else { continue };
        let results = &value["results"];
        for key in ["train_full", "train_lora"] {
            let r = &results[key];
            if r["step_s"].is_f64() {
                println!(
                    "  {name:<8} {key:<11} step {:.3} s = forward {:.3} + backward {:.3} + optimizer {:.3}",
                    r["step_s"].as_f64().unwrap_or(0.0),
                    r["forward_s"].as_f64().unwrap_or(0.0),
                    r["backward_s"].as_f64().unwrap_or(0.0),
                    r["optimizer_s"].as_f64().unwrap_or(0.0),
                );
            }
        }
        let d = &results["decode"];
        if d["seconds"].is_f64() {
            println!(
                "  {name:<8} decode      {:.3} s total, prefill {:.3} s, decode-only {:.0} tokens/s",
                d["seconds"].as_f64().unwrap_or(0.0),
                d["prefill_s"].as_f64().unwrap_or(0.0),
                d["decode_only_tokens_per_s"].as_f64().unwrap_or(0.0),
            );
        }
    }
    if reference.is_none() && !args.no_reference {
        println!("\n(PyTorch figures missing: {INSTALL_HINT})");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_passed_to_both_programs() {
        let args = ModelBenchArgs {
            threads: None,
            preset: "base".into(),
            batch: 8,
            seq: 512,
            steps: 5,
            decode_runs: 2,
            lora_rank: 8,
            decode_batch: 8,
            prompt_len: 64,
            new_tokens: 128,
            only: "decode".into(),
            rounds: 1,
            no_reference: true,
            attn: "sdpa".into(),
            json: None,
        };
        let shapes = shape_args(&args);
        assert!(shapes.windows(2).any(|w| w == ["--seq", "512"]));
        assert!(shapes.ends_with(&["--only".to_string(), "decode".to_string()]));
    }

    #[test]
    fn the_best_run_of_each_metric_is_kept() {
        let a = json!({"results": {"decode": {"tokens_per_s": 5.0}, "train_full": {"tokens_per_s": 1.0}}});
        let b = json!({"results": {"decode": {"tokens_per_s": 4.0}, "train_full": {"tokens_per_s": 2.0}}});
        let best = keep_best(Some(a), b);
        assert_eq!(best["results"]["decode"]["tokens_per_s"], 5.0);
        assert_eq!(best["results"]["train_full"]["tokens_per_s"], 2.0);
    }
}
