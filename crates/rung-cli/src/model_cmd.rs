//! `rung model`: inspect and run a causal LM from the command line.
//!
//! `--model` takes a local directory or a hub id `owner/name[@revision]` (read from the local HF
//! cache only, never the network). A directory is either an HF checkpoint (`config.json` plus
//! `model.safetensors` or a sharded `model.safetensors.index.json`) or a rung checkpoint
//! (`config.json` plus `model.bpk`, written by `rung_model::save_checkpoint`); which one is
//! detected from the files. `--adapter DIR` attaches a PEFT LoRA adapter (`adapter_config.json`
//! plus `adapter_model.safetensors`). Everything runs on the backend this build selects
//! (`rung_model::device::backend_name`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use rung_model::chat::{Message, render_prompt};
use rung_model::checkpoint::RECORD_FILE;
use rung_model::hf::{CONFIG_FILE, INDEX_FILE, WEIGHTS_FILE};
use rung_model::tokenizer::Tokenizer;
use rung_model::{
    CausalLm, FinishReason, GenerateOptions, ModelConfig, ModelSource, Sampling, load_checkpoint,
    load_hf_model, load_peft_adapter,
};
use serde_json::{Value, json};

/// The `rung model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Print the logits of one token sequence as JSON: `{"logits": [[...], ...]}`.
    ///
    /// One row per position, each `vocab_size` f32 values: the scores of the next token after
    /// that position (no softmax). Positions are `0..n`, no padding, no cache.
    Logits(LogitsArgs),
    /// Generate a continuation of a prompt with the model's tokenizer (`tokenizer.json`).
    ///
    /// Prints the generated text on stdout, then token counts, the FLOPs estimate and the speed
    /// on stderr; with `--json`, one JSON object on stdout instead. Greedy unless
    /// `--temperature` is given. Stops at `max-new-tokens`, at an end-of-sequence token of the
    /// config or the tokenizer (`<|endoftext|>`; `<|im_end|>` with `--chat`), or at a `--stop`
    /// string.
    Generate(GenerateArgs),
    /// Describe a model: family, sizes, parameter count, tied or untied head, files, backend.
    Info(InfoArgs),
}

/// Where the model (and optionally an adapter) comes from.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// Model directory (HF checkpoint or rung checkpoint) or hub id `owner/name[@revision]`
    /// from the local HF cache.
    #[arg(long, value_name = "DIR|HUB_ID[@REV]")]
    pub model: String,
    /// PEFT LoRA adapter directory to apply on top of the model.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
}

/// Arguments of `rung model logits`.
#[derive(Debug, Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Token ids, comma separated (e.g. `1,2,3`).
    #[arg(long, value_name = "ID,ID,...")]
    pub ids: String,
}

/// Arguments of `rung model generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt text (the user's message with `--chat`).
    #[arg(long)]
    pub prompt: String,
    /// Render the prompt as a ChatML user turn followed by the assistant header, and stop at
    /// `<|im_end|>`.
    #[arg(long)]
    pub chat: bool,
    /// A system message before the user turn (with `--chat` only).
    #[arg(long, requires = "chat")]
    pub system: Option<String>,
    /// Most tokens to generate (a stop token included).
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Sample with this softmax temperature (> 0); greedy when absent or 0.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus mass in (0, 1] when sampling.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler (the same seed gives the same text).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop when the generated text contains this string (repeatable); the text is cut before
    /// it.
    #[arg(long = "stop", value_name = "STR")]
    pub stop: Vec<String>,
    /// Tokenizer file to use instead of the model's `tokenizer.json`.
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Print one JSON object (text, ids, counts, FLOPs, timing) instead of plain text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `rung model info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run one `rung model` subcommand.
pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Logits(args) => logits(&args),
        ModelCommand::Generate(args) => generate(&args),
        ModelCommand::Info(args) => info(&args),
    }
}

/// The two on-disk formats a model directory can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Hf,
    Rung,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Hf => "hf-safetensors",
            Format::Rung => "rung-checkpoint",
        }
    }
}

/// A resolved `--model`: its source, format, config and files, before loading weights.
struct Located {
    spec: String,
    source: ModelSource,
    format: Format,
    config: ModelConfig,
    weights: Vec<PathBuf>,
    tokenizer: Option<PathBuf>,
}

fn locate(spec: &str) -> Result<Located> {
    let source = ModelSource::parse(spec);
    match &source {
        ModelSource::Dir(dir) => {
            if !dir.exists() {
                bail!(
                    "model `{spec}` not found: no such directory (pass a model directory, or a hub \
                     id `owner/name[@revision]` already downloaded to the HF cache)"
                );
            }
            if !dir.is_dir() {
                bail!(
                    "model `{spec}` is a file; pass the directory that holds {CONFIG_FILE} and the \
                     weights"
                );
            }
            let config_path = dir.join(CONFIG_FILE);
            let has_record = dir.join(RECORD_FILE).is_file();
            let has_hf = dir.join(WEIGHTS_FILE).is_file() || dir.join(INDEX_FILE).is_file();
            if !config_path.is_file() {
                bail!(
                    "{} has no {CONFIG_FILE}: a model directory needs {CONFIG_FILE} plus \
                     {WEIGHTS_FILE} or {INDEX_FILE} (HF format) or {RECORD_FILE} (rung checkpoint)",
                    dir.display()
                );
            }
            let config = ModelConfig::from_hf_file(&config_path)?;
            let tokenizer = Some(dir.join("tokenizer.json")).filter(|p| p.is_file());
            if has_record {
                if has_hf {
                    eprintln!(
                        "note: {} holds both {RECORD_FILE} and HF weights; using the rung \
                         checkpoint {RECORD_FILE}",
                        dir.display()
                    );
                }
                return Ok(Located {
                    spec: spec.to_string(),
                    format: Format::Rung,
                    config,
                    weights: vec![dir.join(RECORD_FILE)],
                    tokenizer,
                    source,
                });
            }
            if !has_hf {
                bail!(
                    "{} has {CONFIG_FILE} but no weights: expected {WEIGHTS_FILE} or {INDEX_FILE} \
                     (HF format) or {RECORD_FILE} (rung checkpoint)",
                    dir.display()
                );
            }
            let files = source.resolve()?;
            Ok(Located {
                spec: spec.to_string(),
                format: Format::Hf,
                config,
                weights: files.weights,
                tokenizer: files.tokenizer,
                source,
            })
        }
        ModelSource::Hub { .. } => {
            let files = source.resolve()?;
            let config = ModelConfig::from_hf_file(&files.config)?;
            Ok(Located {
                spec: spec.to_string(),
                format: Format::Hf,
                config,
                weights: files.weights,
                tokenizer: files.tokenizer,
                source,
            })
        }
    }
}

/// Load the model (and the adapter, when given) on the inference device.
fn load(located: &Located, adapter: Option<&Path>) -> Result<CausalLm> {
    let device = rung_model::inference_device();
    let model = match (located.format, &located.source) {
        (Format::Rung, ModelSource::Dir(dir)) => load_checkpoint(dir, &device)?,
        _ => load_hf_model(&located.source, &device)?,
    };
    let Some(dir) = adapter else {
        return Ok(model);
    };
    if let Some(existing) = model.adapter() {
        bail!(
            "the checkpoint {} already carries adapter `{}`; drop --adapter, or use a checkpoint \
             without an adapter",
            located.spec,
            existing.name
        );
    }
    if !dir.is_dir() {
        bail!(
            "adapter directory {} not found (expected a PEFT adapter directory with \
             adapter_config.json and adapter_model.safetensors)",
            dir.display()
        );
    }
    let name = dir.file_name().map_or_else(
        || "adapter".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let adapter = load_peft_adapter(dir, &name, model.config(), &device)
        .with_context(|| format!("loading the adapter {}", dir.display()))?;
    Ok(model.with_adapter(adapter)?)
}

fn parse_ids(text: &str, vocab: usize) -> Result<Vec<u32>> {
    let ids = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>().with_context(|| {
                format!(
                    "--ids: `{s}` is not a token id (expected comma-separated integers like 1,2,3)"
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        bail!("--ids is empty; give at least one token id, e.g. --ids 1,2,3");
    }
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
        bail!("--ids: token id {bad} is outside the model's vocabulary (vocab_size {vocab})");
    }
    Ok(ids)
}

fn logits(args: &LogitsArgs) -> Result<()> {
    let located = locate(&args.model.model)?;
    let ids = parse_ids(&args.ids, located.config.vocab_size)?;
    let model = load(&located, args.model.adapter.as_deref())?;
    let len = ids.len();
    let data: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
    let input = burn::tensor::Tensor::<2, burn::tensor::Int>::from_data(
        burn::tensor::TensorData::new(data, [1, len]),
        &model.device(),
    );
    let logits = model.forward(input);
    let [_, positions, vocab] = logits.dims();
    let flat: Vec<f32> = logits
        .try_into_vec_as::<f32>()
        .map_err(|e| anyhow::anyhow!("reading the logits from the device failed: {e}"))?;
    let rows: Vec<&[f32]> = flat.chunks(vocab).take(positions).collect();
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::new(stdout);
    serde_json::to_writer(&mut out, &json!({ "logits": rows }))?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn load_tokenizer(located: &Located, explicit: Option<&Path>) -> Result<Tokenizer> {
    let path = match (explicit, &located.tokenizer) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) => path.clone(),
        (None, None) => {
            let place = match &located.source {
                ModelSource::Dir(dir) => dir.display().to_string(),
                ModelSource::Hub { repo, revision } => {
                    format!("the HF cache entry of {repo}@{revision}")
                }
            };
            bail!(
                "no tokenizer.json in {place}: `rung model generate` needs the model's tokenizer. \
                 Copy the base model's tokenizer.json there, save one trained with \
                 rung_model::tokenizer::Tokenizer::train_bpe, or pass --tokenizer FILE"
            );
        }
    };
    Ok(Tokenizer::from_file(&path)?)
}

fn generate(args: &GenerateArgs) -> Result<()> {
    let located = locate(&args.model.model)?;
    let tokenizer = load_tokenizer(&located, args.tokenizer.as_deref())?;
    let model = load(&located, args.model.adapter.as_deref())?;
    let config = model.config();

    let mut stop_token_ids = config.eos_token_ids.clone();
    let prompt_ids = if args.chat {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(Message::system(system.clone()));
        }
        messages.push(Message::user(args.prompt.clone()));
        let rendered = render_prompt(&tokenizer, &messages)
            .context("--chat needs a ChatML tokenizer (<|im_start|>, <|im_end|>, <|endoftext|>)")?;
        stop_token_ids.extend(tokenizer.im_end_id());
        rendered.ids
    } else {
        tokenizer.encode(&args.prompt)?
    };
    stop_token_ids.extend(tokenizer.endoftext_id());
    stop_token_ids.sort_unstable();
    stop_token_ids.dedup();
    if prompt_ids.is_empty() {
        bail!("the prompt encodes to no tokens; give a non-empty --prompt");
    }
    if let Some(bad) = prompt_ids
        .iter()
        .find(|&&id| id as usize >= config.vocab_size)
    {
        bail!(
            "the tokenizer gives id {bad} but the model's vocabulary has {} entries: the \
             tokenizer does not belong to this model",
            config.vocab_size
        );
    }
    let sampling = match args.temperature {
        Some(t) if t.is_nan() || t < 0.0 => bail!("--temperature must be ≥ 0, got {t}"),
        Some(t) if t > 0.0 => {
            if !(args.top_p > 0.0 && args.top_p <= 1.0) {
                bail!("--top-p must be in (0, 1], got {}", args.top_p);
            }
            Sampling::Sample {
                temperature: t,
                top_p: args.top_p,
                seed: args.seed,
            }
        }
        _ => Sampling::Greedy,
    };
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling,
        stop_token_ids,
        stop_strings: args.stop.clone(),
        pad_token_id: tokenizer.pad_id().unwrap_or(0),
    };
    if options.max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    let detok = |ids: &[u32]| tokenizer.decode(ids).unwrap_or_default();
    let start = Instant::now();
    let generation = rung_model::generate(
        &model,
        std::slice::from_ref(&prompt_ids),
        &options,
        Some(&detok),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let output = &generation.sequences[0];
    let text = output.text.clone().unwrap_or_default();
    let finish = match &output.finish_reason {
        FinishReason::StopToken(id) => json!({
            "type": "stop_token",
            "id": id,
            "token": tokenizer.id_to_token(*id),
        }),
        FinishReason::StopString(s) => json!({ "type": "stop_string", "string": s }),
        FinishReason::Length => json!({ "type": "length" }),
    };
    let tokens_per_second = if seconds > 0.0 {
        output.generated_tokens as f64 / seconds
    } else {
        0.0
    };
    if args.json {
        let value = json!({
            "text": text,
            "ids": output.ids,
            "prompt_ids": prompt_ids,
            "prompt_tokens": output.prompt_tokens,
            "generated_tokens": output.generated_tokens,
            "finish_reason": finish,
            "flops": generation.flops,
            "seconds": seconds,
            "tokens_per_second": tokens_per_second,
            "backend": rung_model::device::backend_name(),
        });
        println!("{}", serde_json::to_string(&value)?);
    } else {
        println!("{text}");
        let finish = match &output.finish_reason {
            FinishReason::StopToken(id) => format!(
                "stop token {} ({id})",
                tokenizer.id_to_token(*id).unwrap_or_default()
            ),
            FinishReason::StopString(s) => format!("stop string {s:?}"),
            FinishReason::Length => "max new tokens".to_string(),
        };
        eprintln!(
            "prompt tokens: {}, generated tokens: {}, finished by: {finish}, FLOPs: {} ({:.3} \
             GFLOP), {seconds:.2} s, {tokens_per_second:.1} tokens/s on {}",
            output.prompt_tokens,
            output.generated_tokens,
            generation.flops,
            generation.flops as f64 / 1e9,
            rung_model::device::backend_name(),
        );
    }
    Ok(())
}

fn info(args: &InfoArgs) -> Result<()> {
    let located = locate(&args.model.model)?;
    let config = &located.config;
    // The rung checkpoint may carry an adapter; an explicit --adapter is read as well. Only the
    // adapter is loaded: base weights are not needed to describe the model.
    let device = rung_model::inference_device();
    let adapter = match &args.model.adapter {
        Some(dir) => {
            let name = dir.file_name().map_or_else(
                || "adapter".to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let adapter = load_peft_adapter(dir, &name, config, &device)
                .with_context(|| format!("loading the adapter {}", dir.display()))?;
            Some(json!({
                "name": adapter.name,
                "path": dir.display().to_string(),
                "rank": adapter.config.rank,
                "alpha": adapter.config.alpha,
                "use_rslora": adapter.config.use_rslora,
                "target_modules": adapter
                    .config
                    .target_modules
                    .iter()
                    .map(|t| t.module_name())
                    .collect::<Vec<_>>(),
                "parameters": adapter.num_params(),
            }))
        }
        None => None,
    };
    let embedded_adapter = match (&located.source, located.format) {
        (ModelSource::Dir(dir), Format::Rung) => {
            let path = dir.join(rung_model::checkpoint::ADAPTER_FILE);
            if path.is_file() {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(
                    serde_json::from_str::<Value>(&text)
                        .with_context(|| format!("{} is not valid JSON", path.display()))?,
                )
            } else {
                None
            }
        }
        _ => None,
    };
    let value = json!({
        "model": located.spec,
        "format": located.format.name(),
        "family": config.family.model_type(),
        "parameters": config.num_params(),
        "matmul_parameters_per_token": config.matmul_params(),
        "tied_embeddings": config.tie_word_embeddings,
        "backend": rung_model::device::backend_name(),
        "weights": located.weights.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "tokenizer": located.tokenizer.as_ref().map(|p| p.display().to_string()),
        "adapter": adapter,
        "checkpoint_adapter": embedded_adapter,
        "config": serde_json::to_value(config)?,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let c = config;
    println!("model:        {}", located.spec);
    println!("format:       {}", located.format.name());
    println!("family:       {}", c.family.model_type());
    println!(
        "parameters:   {} ({:.2}M)",
        group_thousands(c.num_params()),
        c.num_params() as f64 / 1e6
    );
    println!(
        "embeddings:   {} (vocab {}, hidden {})",
        if c.tie_word_embeddings {
            "tied (the LM head reuses the embedding)"
        } else {
            "untied (separate LM head)"
        },
        c.vocab_size,
        c.hidden_size
    );
    println!(
        "layers:       {} × (attention {} heads / {} kv heads × {}, MLP {}{})",
        c.num_hidden_layers,
        c.num_attention_heads,
        c.num_key_value_heads,
        c.head_dim,
        c.intermediate_size,
        if c.attention_bias { ", q/k/v bias" } else { "" }
    );
    println!(
        "rope:         theta {}{}, context {}",
        c.rope_theta,
        if c.rope_scaling.is_some() {
            " with llama3 scaling"
        } else {
            ""
        },
        c.max_position_embeddings
    );
    println!("backend:      {}", rung_model::device::backend_name());
    println!(
        "tokenizer:    {}",
        located
            .tokenizer
            .as_ref()
            .map_or("none".to_string(), |p| p.display().to_string())
    );
    if let Some(adapter) = &value["adapter"].as_object() {
        println!(
            "adapter:      {} (rank {}, {} parameters, targets {})",
            adapter["path"].as_str().unwrap_or_default(),
            adapter["rank"],
            adapter["parameters"],
            adapter["target_modules"]
                .as_array()
                .map(|targets| targets
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default()
        );
    }
    if let Some(meta) = value["checkpoint_adapter"].as_object() {
        println!(
            "attached:     adapter `{}` saved in the checkpoint",
            meta.get("name").and_then(Value::as_str).unwrap_or("?")
        );
    }
    println!("config:       {}", serde_json::to_string(&value["config"])?);
    Ok(())
}

/// `1234567` → `1,234,567`.
fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_check_the_vocabulary() {
        assert_eq!(parse_ids("1,2, 3", 10).unwrap(), vec![1, 2, 3]);
        assert!(parse_ids("", 10).is_err());
        assert!(parse_ids("1,x", 10).is_err());
        let err = parse_ids("1,10", 10).unwrap_err().to_string();
        assert!(err.contains("vocab_size 10"), "{err}");
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(9_441_408), "9,441,408");
    }
}
