//! Evaluation throughput, one-at-a-time generation against continuous batching, in one run;
//! printed as a table and, last, one JSON object.
//!
//! `cargo xtask bench eval` builds (release) and runs this. Run alone:
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release --example bench_eval -- --tasks 100
//! ```
//!
//! Measured, for each preset (default `tiny,small`; untrained, weights from a fixed seed) and
//! system (default `single,three_agent`, every role played by the one model) on the first
//! `--tasks` tasks of test_normal of the embedded world:
//! - `old`: today's path, `--threads` worker threads (default: all cores), each call one
//!   `rung_model::generate` of one sequence on its episode's thread;
//! - `new`: the same model behind a continuous-batching engine, `--concurrent` episodes in
//!   flight (default 32), decode steps of at most `--max-batch` sequences (default 32);
//! - episodes/s of each and their ratio, with a check that both produced the very same
//!   trajectories (wall times aside); the engine's mean decode batch and the share of prompt
//!   tokens it took from its prefix cache; the process's peak resident memory after each path
//!   (`VmHWM`: the old path runs first, so the second figure exceeds the first only where the
//!   batched path needed more).
//!
//! `--new-only` skips the one-at-a-time runs (for profiling the batched path alone).
//!
//! Budgets are the defaults but for `--tokens-per-turn` (default 64): an untrained model never
//! ends a turn by itself, so every call runs to this cap.
//!
//! Also `decode`: greedy decode tokens/s of one model alone (`--decode-preset`, default `tiny`),
//! prompts of `--prompt-len` tokens (default 64) and `--new-tokens` new tokens (default 128), at
//! batch 1 and 8: `generate` with all prompts in one padded call (today's batched generation),
//! the engine with the prompts submitted at once, and `generate` one prompt after another
//! (today's evaluation path).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rung_agents::{
    AppCatalog, Batching, Budgets, EvalOptions, ModelPolicy, ModelPolicyOptions, Policy, System,
    prompts, run_split,
};
use rung_env::Split;
use rung_model::tokenizer::Tokenizer;
use rung_model::{
    CausalLm, Engine, EngineOptions, GenerateOptions, ModelConfig, Sampling, generate,
};
use rung_trajectory::{Episode, SystemKind};
use rung_world::EmbeddedWorld;
use serde_json::{Value, json};

struct Options {
    presets: Vec<String>,
    systems: Vec<SystemKind>,
    tasks: usize,
    threads: usize,
    concurrent: usize,
    max_batch: usize,
    tokens_per_turn: u64,
    decode_preset: String,
    prompt_len: usize,
    new_tokens: usize,
    only: Vec<String>,
    /// Run the batched path only (for profiling it alone).
    new_only: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        presets: vec!["tiny".into(), "small".into()],
        systems: vec![SystemKind::Single, SystemKind::ThreeAgent],
        tasks: 20,
        threads: std::thread::available_parallelism().map_or(1, usize::from),
        concurrent: 32,
        max_batch: 32,
        tokens_per_turn: 64,
        decode_preset: "tiny".into(),
        prompt_len: 64,
        new_tokens: 128,
        only: vec!["eval".into(), "decode".into()],
        new_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag}: `{v}` is not a positive number"))
        };
        let list = |v: String| v.split(',').map(str::to_owned).collect::<Vec<_>>();
        match flag.as_str() {
            "--presets" => o.presets = list(value()?),
            "--systems" => {
                o.systems = list(value()?)
                    .iter()
                    .map(|s| s.parse::<SystemKind>().map_err(|e| format!("{flag}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--tasks" => o.tasks = number(value()?)?,
            "--threads" => o.threads = number(value()?)?,
            "--concurrent" => o.concurrent = number(value()?)?,
            "--max-batch" => o.max_batch = number(value()?)?,
            "--tokens-per-turn" => o.tokens_per_turn = number(value()?)? as u64,
            "--decode-preset" => o.decode_preset = value()?,
            "--prompt-len" => o.prompt_len = number(value()?)?,
            "--new-tokens" => o.new_tokens = number(value()?)?,
            "--only" => o.only = list(value()?),
            "--new-only" => o.new_only = true,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if let Some(bad) = o
        .only
        .iter()
        .find(|m| !["eval", "decode"].contains(&m.as_str()))
    {
        return Err(format!("--only: unknown part `{bad}` (eval, decode)"));
    }
    Ok(o)
}

/// The world's text, to train the benchmark's tokenizer on.
fn corpus(world: &EmbeddedWorld) -> Vec<String> {
    let mut texts = vec![
        prompts::single_system(),
        prompts::executor_system(),
        prompts::orchestrator_system(&AppCatalog::embedded()),
        prompts::critic_system(),
    ];
    for task in world.suite().split(Split::Train) {
        texts.push(task.instruction.clone());
        texts.extend(task.gold_cells().into_iter().map(str::to_owned));
    }
    texts
}

/// An untrained model of `preset` with fixed weights.
fn model(preset: &str) -> Result<CausalLm, String> {
    let config = ModelConfig::preset(preset).map_err(|e| e.to_string())?;
    let device = rung_model::inference_device();
    device.seed(3);
    CausalLm::new(&config, &device).map_err(|e| e.to_string())
}

/// One evaluation's results.
struct Evaluated {
    /// Episodes, wall times cleared.
    episodes: Vec<Episode>,
    seconds: f64,
    /// The engine's mean decode batch.
    mean_batch: Option<f64>,
    /// Share of prompt tokens the engine took from its prefix cache.
    reused: Option<f64>,
    /// The process's peak resident memory so far (MiB), when the OS tells.
    peak_rss_mb: Option<f64>,
}

/// Peak resident memory of this process in MiB (`VmHWM` of `/proc/self/status`, Linux only).
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// One evaluation of `kind` played by `policy`.
fn evaluate(
    world: &Arc<EmbeddedWorld>,
    kind: SystemKind,
    policy: ModelPolicy,
    options: &Options,
    threads: usize,
) -> Result<Evaluated, String> {
    let policy = Arc::new(policy);
    let shared: Arc<dyn Policy> = Arc::clone(&policy) as Arc<dyn Policy>;
    let system = System::of_kind(kind, |_| Arc::clone(&shared), AppCatalog::embedded())
        .with_budgets(Budgets {
            max_tokens_per_turn: options.tokens_per_turn,
            ..Budgets::default()
        })
        .with_seed(1);
    let run = EvalOptions {
        limit: Some(options.tasks),
        threads,
        ..EvalOptions::embedded(Arc::clone(world))
    };
    let started = Instant::now();
    let episodes = run_split(&system, Split::TestNormal, &run).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let stats = policy.engine_stats();
    let mean_batch = stats
        .filter(|s| s.decode_steps > 0)
        .map(|s| s.decoded_rows as f64 / s.decode_steps as f64);
    let reused = stats
        .map(|s| s.reused_tokens as f64 / (s.reused_tokens + s.prefilled_tokens).max(1) as f64);
    let episodes = episodes
        .into_iter()
        .map(|mut e| {
            e.cost.wall_seconds = 0.0;
            e
        })
        .collect();
    Ok(Evaluated {
        episodes,
        seconds,
        mean_batch,
        reused,
        peak_rss_mb: peak_rss_mb(),
    })
}

fn bench_eval(options: &Options) -> Result<Value, String> {
    let world = Arc::new(EmbeddedWorld::new());
    let tokenizer = Arc::new(
        Tokenizer::train_bpe(corpus(&world), 2048, 2).map_err(|e| format!("tokenizer: {e}"))?,
    );
    let mut results = BTreeMap::new();
    for preset in &options.presets {
        let model = model(preset)?;
        for &kind in &options.systems {
            let policy = |batching| {
                ModelPolicy::new(
                    format!("untrained-{preset}"),
                    model.clone(),
                    Arc::clone(&tokenizer),
                    ModelPolicyOptions {
                        batching,
                        ..ModelPolicyOptions::default()
                    },
                )
                .map_err(|e| e.to_string())
            };
            let old = policy(None)?;
            let new = policy(Some(Batching {
                max_concurrent_episodes: options.concurrent,
                max_batch: options.max_batch,
                ..Batching::default()
            }))?;
            eprintln!("bench_eval: {preset} {kind}: one at a time");
            let old = if options.new_only {
                // Not measured: the batched run stands in (ratio 1).
                evaluate(&world, kind, new.clone(), options, options.threads)?
            } else {
                evaluate(&world, kind, old, options, options.threads)?
            };
            eprintln!("bench_eval: {preset} {kind}: batched");
            let new = evaluate(&world, kind, new, options, options.threads)?;
            let episodes = old.episodes.len();
            let calls: usize = old.episodes.iter().map(|e| e.turns.len()).sum();
            let tokens: u64 = old.episodes.iter().map(|e| e.cost.generated_tokens).sum();
            let prompt_tokens: u64 = old.episodes.iter().map(|e| e.cost.prompt_tokens).sum();
            let identical = old.episodes == new.episodes;
            let (old_s, new_s) = (old.seconds, new.seconds);
            let old_rate = episodes as f64 / old_s;
            let new_rate = episodes as f64 / new_s;
            let (old_peak, new_peak) = (old.peak_rss_mb, new.peak_rss_mb);
            results.insert(
                format!("{preset}/{kind}"),
                json!({
                    "episodes": episodes,
                    "model_calls": calls,
                    "generated_tokens": tokens,
                    "prompt_tokens": prompt_tokens,
                    "reused_prompt_share": new.reused,
                    "old_s": old_s,
                    "new_s": new_s,
                    "old_episodes_per_s": old_rate,
                    "new_episodes_per_s": new_rate,
                    "ratio": new_rate / old_rate,
                    "old_tokens_per_s": tokens as f64 / old_s,
                    "new_tokens_per_s": tokens as f64 / new_s,
                    "mean_decode_batch": new.mean_batch,
                    "peak_rss_mb_after_old": old_peak,
                    "peak_rss_mb_after_new": new_peak,
                    "identical_trajectories": identical,
                }),
            );
        }
    }
    Ok(json!(results))
}

/// Greedy decode throughput at batch 1 and 8 (see the module documentation).
fn bench_decode(options: &Options) -> Result<Value, String> {
    let model = model(&options.decode_preset)?;
    let vocab = model.config().vocab_size as u32;
    let generate_options = GenerateOptions {
        max_new_tokens: options.new_tokens,
        sampling: Sampling::Greedy,
        ..GenerateOptions::default()
    };
    let prompts: Vec<Vec<u32>> = (0..8u32)
        .map(|p| {
            (0..options.prompt_len as u32)
                .map(|i| (i * 7919 + p * 104_729 + 13) % vocab)
                .collect()
        })
        .collect();
    // Materialise the lazy weights before timing.
    generate(&model, &prompts[..1], &generate_options, None).map_err(|e| e.to_string())?;
    let engine = Engine::start(
        model.clone(),
        EngineOptions {
            max_batch: 8,
            prefix_cache: 0,
        },
    )
    .map_err(|e| e.to_string())?;
    let mut results = BTreeMap::new();
    for batch in [1usize, 8] {
        let prompts = &prompts[..batch];
        let tokens = (batch * options.new_tokens) as f64;
        let started = Instant::now();
        generate(&model, prompts, &generate_options, None).map_err(|e| e.to_string())?;
        let padded = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for prompt in prompts {
            generate(
                &model,
                std::slice::from_ref(prompt),
                &generate_options,
                None,
            )
            .map_err(|e| e.to_string())?;
        }
        let serial = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let pending = prompts
            .iter()
            .map(|p| engine.submit(p.clone(), generate_options.clone(), None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        for p in pending {
            p.wait().map_err(|e| e.to_string())?;
        }
        let batched = started.elapsed().as_secs_f64();
        results.insert(
            format!("batch_{batch}"),
            json!({
                "generate_padded_tokens_per_s": tokens / padded,
                "generate_one_at_a_time_tokens_per_s": tokens / serial,
                "engine_tokens_per_s": tokens / batched,
            }),
        );
    }
    Ok(json!(results))
}

/// One part of the benchmark.
type Part = fn(&Options) -> Result<Value, String>;

fn main() {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bench_eval: {message}");
            std::process::exit(2);
        }
    };
    let mut report = json!({
        "tasks": options.tasks,
        "threads": options.threads,
        "concurrent": options.concurrent,
        "max_batch": options.max_batch,
        "tokens_per_turn": options.tokens_per_turn,
        "rayon_threads": std::env::var("RAYON_NUM_THREADS").ok(),
    });
    let parts: [(&str, Part); 2] = [("eval", bench_eval), ("decode", bench_decode)];
    for (name, part) in parts {
        if !options.only.iter().any(|o| o == name) {
            continue;
        }
        match part(&options) {
            Ok(value) => report[name] = value,
            Err(message) => {
                eprintln!("bench_eval: {name}: {message}");
                std::process::exit(1);
            }
        }
    }
    print_table(&report);
    println!("{report}");
}

fn print_table(report: &Value) {
    if let Some(eval) = report["eval"].as_object() {
        println!(
            "{:<22} {:>8} {:>12} {:>12} {:>7} {:>10} {:>10}",
            "evaluation", "episodes", "old ep/s", "new ep/s", "ratio", "mean batch", "identical"
        );
        for (name, r) in eval {
            println!(
                "{:<22} {:>8} {:>12.3} {:>12.3} {:>6.2}x {:>10} {:>10}",
                name,
                r["episodes"],
                r["old_episodes_per_s"].as_f64().unwrap_or(0.0),
                r["new_episodes_per_s"].as_f64().unwrap_or(0.0),
                r["ratio"].as_f64().unwrap_or(0.0),
                r["mean_decode_batch"]
                    .as_f64()
                    .map_or("-".into(), |b| format!("{b:.1}")),
                r["identical_trajectories"],
            );
        }
    }
    if let Some(decode) = report["decode"].as_object() {
        println!(
            "{:<10} {:>18} {:>22} {:>14}",
            "decode", "generate tok/s", "one at a time tok/s", "engine tok/s"
        );
        for (name, r) in decode {
            println!(
                "{:<10} {:>18.1} {:>22.1} {:>14.1}",
                name,
                r["generate_padded_tokens_per_s"].as_f64().unwrap_or(0.0),
                r["generate_one_at_a_time_tokens_per_s"]
                    .as_f64()
                    .unwrap_or(0.0),
                r["engine_tokens_per_s"].as_f64().unwrap_or(0.0),
            );
        }
    }
}
