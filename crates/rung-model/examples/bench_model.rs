//! Throughput of rung-model on the CPU backend, printed as one JSON object.
//!
//! `cargo xtask bench model` runs this (release build) and `benches/pytorch_reference.py` on the
//! same shapes and threads, then prints rung/PyTorch ratios. Run alone:
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo run --release -p rung-model --example bench_model
//! ```
//!
//! Measured, with the defaults (preset `base`: 9,441,408 parameters, Llama family, tied
//! embeddings, vocabulary 4096):
//! - `train_full`: forward, mean token cross-entropy over every position (`logsumexp` minus the
//!   target's logit), backward and an AdamW step on every parameter, batch 8 × sequence 512
//!   random tokens; tokens/s = 4096 / step time.
//! - `train_lora`: the same with the base frozen and a rank-8 LoRA adapter (alpha 16, no
//!   dropout) on q, k, v, o, gate, up and down of every layer; only the adapter is updated.
//! - `decode`: `rung_model::generate` with a KV cache, 8 prompts of 64 random tokens, 128 new
//!   tokens each, greedy, no stop token; tokens/s = 8 · 128 / wall time (prefill included).
//!   `prefill_s` is the time of the same call with one new token.
//!
//! Options (all optional): `--preset NAME`, `--batch N`, `--seq N`, `--steps N`, `--warmup N`,
//! `--lora-rank N`, `--decode-batch N`, `--prompt-len N`, `--new-tokens N`, `--decode-runs N`,
//! `--only train_full,train_lora,decode`. Threads: rayon's global pool, i.e. `RAYON_NUM_THREADS`
//! or all cores.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rung_model::lora::{LoraAdapter, LoraConfig, LoraInit, LoraTarget};
use rung_model::{CausalLm, GenerateOptions, ModelConfig, Sampling};
use serde_json::{Value, json};

struct Options {
    preset: String,
    batch: usize,
    seq: usize,
    steps: usize,
    warmup: usize,
    lora_rank: usize,
    decode_batch: usize,
    prompt_len: usize,
    new_tokens: usize,
    decode_runs: usize,
    only: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            preset: "base".into(),
            batch: 8,
            seq: 512,
            steps: 5,
            warmup: 1,
            lora_rank: 8,
            decode_batch: 8,
            prompt_len: 64,
            new_tokens: 128,
            decode_runs: 2,
            only: vec!["train_full".into(), "train_lora".into(), "decode".into()],
        }
    }
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--preset" => o.preset = value()?,
            "--batch" => o.batch = number(value()?)?,
            "--seq" => o.seq = number(value()?)?,
            "--steps" => o.steps = number(value()?)?,
            "--warmup" => o.warmup = number(value()?)?,
            "--lora-rank" => o.lora_rank = number(value()?)?,
            "--decode-batch" => o.decode_batch = number(value()?)?,
            "--prompt-len" => o.prompt_len = number(value()?)?,
            "--new-tokens" => o.new_tokens = number(value()?)?,
            "--decode-runs" => o.decode_runs = number(value()?)?,
            "--only" => o.only = value()?.split(',').map(str::to_string).collect(),
            // `cargo bench`-style harness flags are ignored.
            "--bench" => {}
            other => return Err(format!("unknown option {other}")),
        }
    }
    if o.steps == 0 || o.decode_runs == 0 {
        return Err("--steps and --decode-runs must be at least 1".into());
    }
    Ok(o)
}

fn random_ids(rng: &mut ChaCha8Rng, n: usize, vocab: usize) -> Vec<i64> {
    (0..n).map(|_| rng.random_range(0..vocab as i64)).collect()
}

fn ids_tensor(ids: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(ids, shape), device)
}

/// Mean seconds of the measured steps of one training configuration, with a breakdown.
fn bench_train(model: CausalLm, o: &Options, lora: bool) -> Value {
    let device = model.device();
    let vocab = model.config().vocab_size;
    let trainable = match model.adapter() {
        Some(adapter) if lora => adapter.num_params(),
        _ => model.num_params(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let ids = ids_tensor(
        random_ids(&mut rng, o.batch * o.seq, vocab),
        [o.batch, o.seq],
        &device,
    );
    let targets: Tensor<2, Int> = ids_tensor(
        random_ids(&mut rng, o.batch * o.seq, vocab),
        [o.batch * o.seq, 1],
        &device,
    );
    let mut optim = AdamWConfig::new().init();
    let mut model = model;
    let (mut fwd, mut bwd, mut opt) = (0.0, 0.0, 0.0);
    let mut loss_value = 0.0f32;
    for step in 0..o.warmup + o.steps {
        let t0 = Instant::now();
        let logits = model.forward(ids.clone());
        let [b, s, v] = logits.dims();
        // Mean token cross-entropy as `logsumexp(logits) - logits[target]` (the max shift
        // detached), which is cheaper on burn than `log_softmax` followed by a gather.
        let logits = logits.reshape([b * s, v]);
        let max = logits.clone().detach().max_dim(1);
        let lse = (logits.clone() - max.clone()).exp().sum_dim(1).log() + max;
        let loss = (lse - logits.gather(1, targets.clone())).mean();
        loss_value = loss.clone().into_scalar();
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let t2 = Instant::now();
        model = optim.step(1e-4, model, grads);
        // Wait for the update (a no-op on eager backends).
        let _ = model.layers[0]
            .mlp
            .down_proj
            .weight
            .val()
            .slice([0..1, 0..1])
            .into_data();
        let t3 = Instant::now();
        if step >= o.warmup {
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            opt += (t3 - t2).as_secs_f64();
        }
    }
    let n = o.steps as f64;
    let step_s = (fwd + bwd + opt) / n;
    json!({
        "tokens_per_s": (o.batch * o.seq) as f64 / step_s,
        "step_s": step_s,
        "forward_s": fwd / n,
        "backward_s": bwd / n,
        "optimizer_s": opt / n,
        "steps": o.steps,
        "trainable_params": trainable,
        "final_loss": loss_value,
    })
}

fn bench_decode(model: &CausalLm, o: &Options) -> Value {
    let vocab = model.config().vocab_size;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let prompts: Vec<Vec<u32>> = (0..o.decode_batch)
        .map(|_| {
            (0..o.prompt_len)
                .map(|_| rng.random_range(0..vocab as u32))
                .collect()
        })
        .collect();
    let options = |max_new_tokens| GenerateOptions {
        max_new_tokens,
        sampling: Sampling::Greedy,
        ..GenerateOptions::default()
    };
    let run = |max_new_tokens| {
        let t = Instant::now();
        let g = rung_model::generate(model, &prompts, &options(max_new_tokens), None)
            .expect("generation runs");
        (t.elapsed().as_secs_f64(), g)
    };
    // Warm-up, then the best of the measured runs of each kind.
    let _ = run(o.new_tokens.min(8));
    let mut prefill = f64::INFINITY;
    let mut total = f64::INFINITY;
    let mut generated = 0;
    let mut flops = 0;
    for _ in 0..o.decode_runs {
        prefill = prefill.min(run(1).0);
        let (seconds, g) = run(o.new_tokens);
        if seconds < total {
            total = seconds;
            generated = g.generated_tokens;
            flops = g.flops;
        }
    }
    json!({
        "tokens_per_s": generated as f64 / total,
        "seconds": total,
        "prefill_s": prefill,
        "decode_only_tokens_per_s": (generated - o.decode_batch) as f64 / (total - prefill),
        "generated_tokens": generated,
        "flops": flops,
        "runs": o.decode_runs,
    })
}

fn main() {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench_model: {e}");
            std::process::exit(2);
        }
    };
    let config = ModelConfig::preset(&o.preset).unwrap_or_else(|e| {
        eprintln!("bench_model: {e}");
        std::process::exit(2);
    });
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut results = serde_json::Map::new();
    let wants = |name: &str| o.only.iter().any(|w| w == name);

    if wants("train_full") {
        eprintln!("bench_model: train_full ...");
        let model = CausalLm::new(&config, &rung_model::autodiff_device()).unwrap();
        results.insert("train_full".into(), bench_train(model, &o, false));
    }
    if wants("train_lora") {
        eprintln!("bench_model: train_lora ...");
        let device = rung_model::autodiff_device();
        let lora = LoraConfig {
            rank: o.lora_rank,
            alpha: 2.0 * o.lora_rank as f64,
            dropout: 0.0,
            use_rslora: false,
            target_modules: LoraTarget::ALL.to_vec(),
        };
        let adapter =
            LoraAdapter::new("bench", lora, &config, LoraInit::Standard, 3, &device).unwrap();
        let model = CausalLm::new(&config, &device)
            .unwrap()
            .with_adapter(adapter)
            .unwrap()
            .freeze_base();
        results.insert("train_lora".into(), bench_train(model, &o, true));
    }
    if wants("decode") {
        eprintln!("bench_model: decode ...");
        let model = CausalLm::new(&config, &rung_model::inference_device()).unwrap();
        results.insert("decode".into(), bench_decode(&model, &o));
    }

    let out = json!({
        "framework": "rung",
        "backend": rung_model::device::backend_name(),
        "threads": threads,
        "params": config.num_params(),
        "shapes": {
            "preset": o.preset,
            "batch": o.batch,
            "seq": o.seq,
            "lora_rank": o.lora_rank,
            "decode_batch": o.decode_batch,
            "prompt_len": o.prompt_len,
            "new_tokens": o.new_tokens,
        },
        "hf_config": config.to_hf_json(),
        "results": results,
    });
    println!("{}", serde_json::to_string(&out).unwrap());
}
