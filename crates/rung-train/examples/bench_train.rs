//! Throughput and peak memory of the real [`rung_train::Trainer`], printed as one JSON object.
//!
//! `cargo xtask bench train` runs this (release build) once per mode, each in its own process so
//! peak memories do not mix, next to `benches/pytorch_train.py` on the very same batches, and
//! prints rung/PyTorch ratios. Run alone:
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release -p rung-train --example bench_train -- --mode lora
//! ```
//!
//! The bench config (defaults): preset `base` (9,441,408 parameters), single-agent synthetic
//! trajectories of 12 code turns, ChatML-rendered with a byte-level BPE trained on them,
//! every assistant turn supervised (`schedule = all`), conversations split to at most
//! `--seq 512` tokens (`overflow = split`), batches of `--batch 8` rows padded to the longest
//! row, no micro-batching, AdamW (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01 off
//! norms and embeddings), 1 warmup step then cosine decay, gradient clipping at 1.0. Mode
//! `full` trains every parameter; mode `lora` a rank-8 adapter (alpha 16, dropout 0.05) on q,
//! k, v, o, gate, up and down of every layer, base frozen.
//!
//! Measured: `--warmup 1` step, then `--steps 5` steps timed as one `Trainer::run_steps` call
//! (forward, masked loss, backward, gradient collection, clipping, AdamW, metrics line), so
//! tokens/s = real (non-padding) tokens of those steps / wall time, the trainer's own
//! definition. Memory: `VmRSS` after setup (model, optimizer, rendered data) and the process's
//! peak `VmHWM` at the end, both from `/proc/self/status` (Linux; 0 elsewhere).
//!
//! `--dump FILE` writes the measured batches (ids, loss masks, lengths), the model's HF config,
//! the learning rates and the optimizer and LoRA settings as JSON, for the PyTorch reference.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rung_curriculum::{Curriculum, Overflow, Schedule};
use rung_model::{LoraConfig, LoraTarget, ModelConfig};
use rung_segment::build::EpisodeBuilder;
use rung_train::{ModelSpec, TrainConfig, Trainer};
use rung_trajectory::{Role, SystemKind};
use serde_json::{Value, json};

struct Options {
    mode: String,
    preset: String,
    batch: usize,
    seq: usize,
    steps: usize,
    warmup: usize,
    lora_rank: usize,
    lora_dropout: f64,
    dump: Option<PathBuf>,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        mode: "full".into(),
        preset: "base".into(),
        batch: 8,
        seq: 512,
        steps: 5,
        warmup: 1,
        lora_rank: 8,
        lora_dropout: 0.05,
        dump: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--mode" => o.mode = value()?,
            "--preset" => o.preset = value()?,
            "--batch" => o.batch = number(value()?)?,
            "--seq" => o.seq = number(value()?)?,
            "--steps" => o.steps = number(value()?)?,
            "--warmup" => o.warmup = number(value()?)?,
            "--lora-rank" => o.lora_rank = number(value()?)?,
            "--lora-dropout" => {
                let v = value()?;
                o.lora_dropout = v.parse().map_err(|_| format!("{flag}: `{v}`"))?;
            }
            "--dump" => o.dump = Some(PathBuf::from(value()?)),
            // `cargo bench`-style harness flags are ignored.
            "--bench" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    if !["full", "lora"].contains(&o.mode.as_str()) {
        return Err(format!("--mode must be full or lora, not {}", o.mode));
    }
    if o.steps == 0 || o.batch == 0 {
        return Err("--steps and --batch must be at least 1".into());
    }
    Ok(o)
}

/// Deterministic code-like words, so the tokenizer and the batches are the same every run.
fn words(seed: u64, n: usize) -> String {
    const WORDS: [&str; 24] = [
        "apis",
        "login",
        "token",
        "page_index",
        "print",
        "for",
        "in",
        "if",
        "song",
        "playlist",
        "email",
        "amount",
        "friend",
        "note",
        "title",
        "=",
        "(",
        ")",
        ".",
        ",",
        "1",
        "20",
        "and",
        "result",
    ];
    (0..n)
        .map(|i| WORDS[(rung_curriculum::rng::mix(&[seed, i as u64]) % 24) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// `n` single-agent trajectories of 12 code turns each, long enough that `overflow = split`
/// cuts them into samples near `--seq` tokens.
fn write_data(path: &Path, n: usize) {
    let episodes: Vec<_> = (0..n)
        .map(|e| {
            let task = format!("{:07x}_1", 0x0b0_0000 + e);
            let mut b = EpisodeBuilder::new(SystemKind::Single, &task, "Do twelve things.");
            let c = b.open(
                Role::Single,
                "You solve tasks by writing Python code.",
                &format!("Task {e}: {}", words(e as u64, 30)),
            );
            for k in 0..12 {
                let seed = (e * 100 + k) as u64;
                b.code(c, Some(k), &words(seed, 40), true, &words(seed + 7, 30));
            }
            b.finish()
        })
        .collect();
    rung_trajectory::write_file(path, &episodes).expect("the bench data is written");
}

fn config(o: &Options, dir: &Path) -> TrainConfig {
    let data = dir.join("data.jsonl");
    // One sample or more per trajectory: enough for the warmup and measured steps.
    write_data(&data, o.batch * (o.warmup + o.steps));
    let mut c = TrainConfig::new(data, dir.join("run"));
    c.model = ModelSpec::Preset(o.preset.clone());
    c.gold_plans = false;
    c.validation_fraction = 0.0;
    c.curriculum = Curriculum {
        schedule: Schedule::All,
        ..Curriculum::default()
    };
    c.overflow = Overflow::Split;
    c.epochs = 1;
    c.batch_size = o.batch;
    c.max_seq_len = o.seq;
    c.lr = 1e-4;
    c.warmup_steps = 1;
    c.progress = false;
    if o.mode == "lora" {
        c.lora = Some(LoraConfig {
            rank: o.lora_rank,
            alpha: 2.0 * o.lora_rank as f64,
            dropout: o.lora_dropout,
            use_rslora: false,
            target_modules: LoraTarget::ALL.to_vec(),
        });
    }
    c
}

/// A field of `/proc/self/status` in MB (`VmRSS`, `VmHWM`); 0 where there is none.
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn last_step_loss(run: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["kind"] == "step")?["loss"]
        .as_f64()
}

fn dump(o: &Options, trainer: &Trainer, path: &Path, mc: &ModelConfig) {
    let c = trainer.config();
    let n = o.warmup + o.steps;
    let batches: Vec<Value> = trainer.epoch_batches(1)[..n]
        .iter()
        .map(|b| {
            json!({"rows": b.rows, "seq_len": b.seq_len, "input_ids": b.input_ids,
                   "loss_mask": b.loss_mask, "lengths": b.lengths})
        })
        .collect();
    let lrs: Vec<f64> = (0..n)
        .map(|s| rung_train::optim::lr_at(c, s, trainer.total_steps()))
        .collect();
    let value = json!({
        "hf_config": mc.to_hf_json(),
        "warmup": o.warmup,
        "steps": o.steps,
        "batches": batches,
        "lr": lrs,
        "optim": {"betas": c.betas, "eps": c.eps, "weight_decay": c.weight_decay,
                  "max_grad_norm": c.max_grad_norm},
        "lora": {"rank": o.lora_rank, "alpha": 2.0 * o.lora_rank as f64,
                 "dropout": o.lora_dropout},
    });
    std::fs::write(path, serde_json::to_string(&value).unwrap())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn run(o: &Options, dir: &Path) -> Result<Value, String> {
    let mut trainer = Trainer::new(config(o, dir)).map_err(|e| format!("{e:#}"))?;
    let mc = trainer.model().config().clone();
    let batches = trainer.epoch_batches(1);
    if batches.len() < o.warmup + o.steps {
        return Err(format!(
            "the bench data gives {} batches, fewer than {} warmup + measured steps",
            batches.len(),
            o.warmup + o.steps
        ));
    }
    let measured = &batches[o.warmup..o.warmup + o.steps];
    let tokens: usize = measured.iter().flat_map(|b| &b.lengths).sum();
    let padded: usize = measured.iter().map(|b| b.rows * b.seq_len).sum();
    let supervised: usize = measured.iter().map(|b| b.supervised_tokens()).sum();
    if let Some(path) = &o.dump {
        dump(o, &trainer, path, &mc);
    }
    let rss_setup = status_mb("VmRSS");
    let fail = |e: anyhow::Error| format!("{e:#}");
    trainer.run_steps(Some(o.warmup)).map_err(fail)?;
    let t0 = Instant::now();
    trainer.run_steps(Some(o.steps)).map_err(fail)?;
    let seconds = t0.elapsed().as_secs_f64();
    let trainable = match trainer.model().adapter() {
        Some(adapter) => adapter.num_params(),
        None => mc.num_params(),
    };
    Ok(json!({
        "framework": "rung",
        "backend": rung_model::device::backend_name(),
        "mode": o.mode,
        "params": mc.num_params(),
        "trainable_params": trainable,
        "shapes": {"preset": o.preset, "batch": o.batch, "seq": o.seq, "steps": o.steps,
                   "warmup": o.warmup, "lora_rank": o.lora_rank},
        "tokens_per_s": tokens as f64 / seconds,
        "step_s": seconds / o.steps as f64,
        "tokens": tokens,
        "padded_tokens": padded,
        "supervised_tokens": supervised,
        "final_loss": last_step_loss(&dir.join("run")),
        "rss_setup_mb": rss_setup,
        "peak_rss_mb": status_mb("VmHWM"),
    }))
}

fn main() {
    let o = parse_args().unwrap_or_else(|e| {
        eprintln!("bench_train: {e}");
        std::process::exit(2);
    });
    let dir = std::env::temp_dir().join(format!("rung-bench-train-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    eprintln!("bench_train: {} ...", o.mode);
    let result = run(&o, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(mut value) => {
            value["threads"] = json!(threads);
            println!("{value}");
        }
        Err(e) => {
            eprintln!("bench_train: {e}");
            std::process::exit(1);
        }
    }
}
