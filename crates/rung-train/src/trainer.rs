//! The training loop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use rung_curriculum::{
    Batch, BatchOptions, ChatRenderer, ContentSpan, Curriculum, Dataset, Sample, SampleOptions,
    Schedule, Spans, Tokens, batches, epoch_samples, role_name,
};
use rung_model::chat::{self, ChatError};
use rung_model::tokenizer::Tokenizer;
use rung_model::{CausalLm, LoraAdapter, LoraInit, ModelConfig, ModelSource};
use rung_segment::NoPlans;
use rung_trajectory::{Episode, Message, Role};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, TrainerState};
use crate::config::{ModelSpec, TrainConfig};
use crate::loss::{MicroBatch, micro_loss};
use crate::optim::{AdamW, AdamWParams, HostGrads, clip, collect_grads, lr_at};
use crate::progress::{Display, EpochProgress};

/// The production `ChatRenderer`: rung-model's tokenizer and ChatML `chat::render`, so training
/// text equals inference text token for token.
pub struct ModelRenderer<'a>(pub &'a Tokenizer);

impl ChatRenderer for ModelRenderer<'_> {
    type Error = ChatError;

    fn render(&self, messages: &[Message]) -> Result<Tokens, ChatError> {
        Ok(self.render_with_spans(messages)?.0)
    }

    fn render_with_spans(
        &self,
        messages: &[Message],
    ) -> Result<(Tokens, Option<Spans>), ChatError> {
        let messages: Vec<chat::Message> = messages
            .iter()
            .map(|m| chat::Message {
                role: role_name(m.role).to_owned(),
                content: m.content.clone(),
                train: m.train,
            })
            .collect();
        let rendered = chat::render(self.0, &messages, false)?;
        let spans = rendered
            .spans
            .iter()
            .map(|s| {
                s.map(|s| ContentSpan {
                    message: s.message,
                    start: s.start,
                    end: s.end,
                })
            })
            .collect();
        let tokens = Tokens {
            ids: rendered.ids,
            mask: rendered.mask,
        };
        Ok((tokens, Some(spans)))
    }
}

/// One validation pass: what [`Trainer::validate`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Mean loss over the supervised tokens.
    pub loss: f64,
    /// Argmax accuracy over the supervised tokens.
    pub accuracy: f64,
    /// Supervised tokens.
    pub supervised_tokens: usize,
    /// Argmax accuracy over the literal tokens (`None` without any): the copying skill that
    /// token accuracy hides.
    pub literal_accuracy: Option<f64>,
    /// Literal tokens among the supervised ones.
    pub literal_tokens: usize,
}

/// What a finished run reports (also written to `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Optimizer steps.
    pub steps: usize,
    /// Epochs.
    pub epochs: usize,
    /// Training loss of the last epoch (mean over its supervised tokens).
    pub final_train_loss: Option<f64>,
    /// Validation loss after the last epoch.
    pub final_val_loss: Option<f64>,
    /// Validation token accuracy after the last epoch.
    pub final_val_accuracy: Option<f64>,
    /// Validation accuracy on the literal tokens (copied task-specific values, see
    /// `rung_curriculum::literal`) after the last epoch: the copying skill token accuracy
    /// hides. `None` when validation had no literal token.
    #[serde(default)]
    pub final_val_literal_accuracy: Option<f64>,
    /// Literal tokens that accuracy was measured on.
    #[serde(default)]
    pub final_val_literal_tokens: Option<usize>,
    /// Best validation loss and its epoch.
    pub best_val_loss: Option<f64>,
    /// Epoch of the best validation loss.
    pub best_epoch: Option<usize>,
    /// Mean training throughput of this process (tokens incl. prompts, excl. padding, per s).
    pub tokens_per_s: f64,
    /// Wall time of this process's training, seconds.
    pub wall_s: f64,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Output directory.
    pub output_dir: PathBuf,
    /// The last checkpoint.
    pub last_checkpoint: Option<PathBuf>,
    /// The best checkpoint (by validation loss).
    pub best_checkpoint: Option<PathBuf>,
}

/// Estimated peak memory of a training step in bytes:
///
/// ```text
/// 4·P                                   weights (f32)
/// + 4·3·T                               gradients and two AdamW moments of the T trainable
/// + 4·m·s·(L·(10·h + 3·i + 2·a·s) + 3·V) activations kept for backward: per layer ~10 hidden-
///                                       wide tensors, 3 MLP-wide, attention scores and
///                                       probabilities (a heads × s keys); logits, log-softmax
///                                       and their gradient over the vocabulary
/// ```
///
/// with P parameters, m micro-batch rows, s padded length, L layers, h hidden, i MLP width, a
/// attention heads, V vocabulary. A coarse upper-bound estimate for rejecting configs that
/// cannot fit, not a measurement.
pub fn memory_estimate(
    model: &ModelConfig,
    params: usize,
    trainable: usize,
    micro: usize,
    seq: usize,
) -> u64 {
    let (l, h, i, a, v) = (
        model.num_hidden_layers as u64,
        model.hidden_size as u64,
        model.intermediate_size as u64,
        model.num_attention_heads as u64,
        model.vocab_size as u64,
    );
    let (m, s) = (micro as u64, seq as u64);
    4 * params as u64
        + 12 * trainable as u64
        + 4 * m * s * (l * (10 * h + 3 * i + 2 * a * s) + 3 * v)
}

fn mix(parts: &[u64]) -> u64 {
    rung_curriculum::rng::mix(parts)
}

/// A training run in progress.
pub struct Trainer {
    config: TrainConfig,
    out: PathBuf,
    model: CausalLm,
    opt: AdamW,
    state: TrainerState,
    epochs: Vec<Vec<Batch>>,
    val: Vec<Batch>,
    total_steps: usize,
    trainable: usize,
    // This process's throughput.
    started: Instant,
    tokens_this_process: usize,
    last_checkpoint: Option<PathBuf>,
    last_epoch: Option<EpochRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EpochRecord {
    kind: String,
    epoch: usize,
    step: usize,
    loss: Option<f64>,
    accuracy: Option<f64>,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    #[serde(default)]
    val_literal_accuracy: Option<f64>,
    #[serde(default)]
    val_literal_tokens: Option<usize>,
    supervised_tokens: usize,
    tokens: usize,
    tokens_per_s: f64,
    seconds: f64,
}

fn read_split(config: &TrainConfig) -> anyhow::Result<(Vec<Episode>, Vec<Episode>)> {
    let read = |p: &Path| {
        rung_trajectory::read_file(p)
            .with_context(|| format!("cannot read trajectories {}", p.display()))
    };
    let mut train = read(&config.data)?;
    let val = match &config.validation_data {
        Some(path) => read(path)?,
        None => {
            let n = (train.len() as f64 * config.validation_fraction).floor() as usize;
            let n = if config.validation_fraction > 0.0 && train.len() > 1 {
                n.max(1)
            } else {
                n
            };
            train.split_off(train.len() - n)
        }
    };
    if train.is_empty() {
        bail!("no training trajectories in {}", config.data.display());
    }
    Ok((train, val))
}

fn dataset(episodes: Vec<Episode>, config: &TrainConfig) -> Dataset {
    if config.gold_plans {
        let plans = rung_segment::GoldPlans::embedded(config.world_seed);
        Dataset::new(episodes, &plans)
    } else {
        Dataset::new(episodes, &NoPlans)
    }
}

fn model_config_and_tokenizer(
    config: &TrainConfig,
    out: &Path,
    train: &[Episode],
) -> anyhow::Result<(ModelConfig, Tokenizer)> {
    let saved = out.join("tokenizer.json");
    let load_tok = |p: &Path| {
        Tokenizer::from_file(p)
            .map_err(|e| anyhow::anyhow!("cannot load tokenizer {}: {e}", p.display()))
    };
    match &config.model {
        ModelSpec::Preset(name) => {
            let mc = ModelConfig::preset(name).map_err(|e| anyhow::anyhow!("{e}"))?;
            let tok = if saved.is_file() {
                load_tok(&saved)?
            } else if let Some(p) = &config.tokenizer {
                load_tok(p)?
            } else {
                let corpus: Vec<String> = train
                    .iter()
                    .flat_map(|e| e.turns.iter())
                    .flat_map(|t| t.messages.iter())
                    .map(|m| m.content.clone())
                    .collect();
                Tokenizer::train_bpe(corpus, mc.vocab_size, 2)
                    .map_err(|e| anyhow::anyhow!("cannot train the tokenizer: {e}"))?
            };
            Ok((mc, tok))
        }
        ModelSpec::HfDir(dir) => {
            let mc = ModelConfig::from_hf_file(&dir.join("config.json"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let tok = match &config.tokenizer {
                Some(p) => load_tok(p)?,
                None => load_tok(&dir.join("tokenizer.json"))?,
            };
            Ok((mc, tok))
        }
    }
}

fn render_epoch(
    data: &Dataset,
    curriculum: &Curriculum,
    epoch: usize,
    roles: &[Role],
    renderer: &ModelRenderer<'_>,
    options: &SampleOptions,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for &role in roles {
        let e = epoch_samples(data, curriculum, epoch, role, renderer, options)
            .map_err(|e| anyhow::anyhow!("epoch {epoch}, role {role:?}: {e}"))?;
        samples.extend(e.samples);
    }
    Ok(samples)
}

fn count_params(model: &CausalLm) -> usize {
    crate::optim::param_values(model)
        .values()
        .map(Vec::len)
        .sum()
}

fn trainable_params(model: &CausalLm, config: &TrainConfig) -> usize {
    match model.adapter() {
        Some(a) if config.lora.is_some() => a.num_params(),
        _ => count_params(model),
    }
}

impl Trainer {
    /// Prepare a new run: read and split the data, build the tokenizer and model, render every
    /// epoch's batches, and check that the run fits. Fails if `output_dir` already holds
    /// checkpoints (use [`Trainer::resume`]).
    pub fn new(config: TrainConfig) -> anyhow::Result<Self> {
        config.validate()?;
        let out = config.output_dir.clone();
        if !checkpoint::list(&out.join("checkpoints")).is_empty() {
            bail!(
                "{} already holds a run's checkpoints; resume it or choose another output_dir",
                out.display()
            );
        }
        std::fs::create_dir_all(&out)
            .with_context(|| format!("cannot create output dir {}", out.display()))?;
        let device = rung_model::autodiff_device();
        device.seed(config.seed);
        let (train, _) = read_split(&config)?;
        let (mc, tok) = model_config_and_tokenizer(&config, &out, &train)?;
        let model = match &config.model {
            ModelSpec::Preset(_) => {
                CausalLm::new(&mc, &device).map_err(|e| anyhow::anyhow!("{e}"))?
            }
            // A checkpoint of an earlier rung run (a world-pretrained base) is a burn record;
            // anything else is an HF model directory.
            ModelSpec::HfDir(dir) if dir.join(rung_model::checkpoint::RECORD_FILE).is_file() => {
                rung_model::load_checkpoint(dir, &device).map_err(|e| anyhow::anyhow!("{e}"))?
            }
            ModelSpec::HfDir(dir) => {
                rung_model::load_hf_model(&ModelSource::Dir(dir.clone()), &device)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
            }
        };
        // Presets: weights drawn from the run's seed (N(0, 0.02) matrices, unit norms), keyed by
        // parameter path: independent of the backend's global RNG and of other threads.
        let model = match &config.model {
            ModelSpec::Preset(_) => crate::optim::seeded_init(model, config.seed, 0.02),
            ModelSpec::HfDir(_) => model,
        };
        let model = match &config.lora {
            Some(lora) => {
                let adapter = LoraAdapter::new(
                    "train",
                    lora.clone(),
                    &mc,
                    LoraInit::Standard,
                    config.seed,
                    &device,
                )
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                model
                    .with_adapter(adapter)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .freeze_base()
            }
            None => model,
        };
        tok.save(out.join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("cannot save tokenizer: {e}"))?;
        let config_json = serde_json::to_string_pretty(&config)?;
        std::fs::write(out.join("config.json"), &config_json)?;
        let _ = std::fs::remove_file(out.join("metrics.jsonl"));
        let state = TrainerState {
            epoch: 1,
            rng_seed: config.seed,
            config_json,
            ..TrainerState::default()
        };
        Self::assemble(config, out, model, AdamW::default(), state, &tok)
    }

    /// Resume the run in `dir` from its newest checkpoint.
    pub fn resume(dir: &Path) -> anyhow::Result<Self> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("{} is not a training run (no config.json)", dir.display()))?;
        let mut config = TrainConfig::from_json(&text)
            .with_context(|| format!("invalid config {}", config_path.display()))?;
        config.output_dir = dir.to_path_buf();
        let ckpt = checkpoint::latest(&dir.join("checkpoints"))?;
        let device = rung_model::autodiff_device();
        let (model, opt, state) = checkpoint::load(&ckpt, &device)?;
        let mut saved: TrainConfig = serde_json::from_str(&state.config_json)
            .with_context(|| format!("checkpoint {} holds an unreadable config", ckpt.display()))?;
        saved.output_dir = config.output_dir.clone();
        if saved != config {
            bail!(
                "checkpoint {} belongs to a different config than {}",
                ckpt.display(),
                config_path.display()
            );
        }
        let tok = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow::anyhow!("cannot load the run's tokenizer: {e}"))?;
        let (expected, _) = model_config_and_tokenizer(&config, dir, &[])?;
        if model.config() != &expected {
            bail!(
                "checkpoint {} holds a model of another shape than the config's",
                ckpt.display()
            );
        }
        let model = if config.lora.is_some() {
            if model.adapter().is_none() {
                bail!(
                    "checkpoint {} has no adapter but the run trains LoRA",
                    ckpt.display()
                );
            }
            model.freeze_base()
        } else {
            model
        };
        // Drop metrics written after the checkpoint (they will be written again).
        let metrics = dir.join("metrics.jsonl");
        if let Ok(text) = std::fs::read_to_string(&metrics) {
            let kept: Vec<&str> = text
                .lines()
                .filter(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                    match v["kind"].as_str() {
                        Some("step") => v["step"].as_u64().unwrap_or(u64::MAX) <= state.step as u64,
                        Some("epoch") => {
                            v["epoch"].as_u64().unwrap_or(u64::MAX) < state.epoch as u64
                        }
                        _ => false,
                    }
                })
                .collect();
            let mut body = kept.join("\n");
            if !body.is_empty() {
                body.push('\n');
            }
            std::fs::write(&metrics, body)?;
        }
        let mut t = Self::assemble(config, dir.to_path_buf(), model, opt, state, &tok)?;
        t.last_checkpoint = Some(ckpt);
        Ok(t)
    }

    fn assemble(
        config: TrainConfig,
        out: PathBuf,
        model: CausalLm,
        opt: AdamW,
        state: TrainerState,
        tok: &Tokenizer,
    ) -> anyhow::Result<Self> {
        let mc = model.config().clone();
        if config.max_seq_len > mc.max_position_embeddings {
            bail!(
                "max_seq_len {} exceeds the model's context of {} tokens",
                config.max_seq_len,
                mc.max_position_embeddings
            );
        }
        if tok.vocab_size() > mc.vocab_size {
            bail!(
                "the tokenizer has {} tokens but the model's vocabulary only {}",
                tok.vocab_size(),
                mc.vocab_size
            );
        }
        let (train, val) = read_split(&config)?;
        let train = dataset(train, &config);
        let val = dataset(val, &config);
        let roles = if config.roles.is_empty() {
            train.roles()
        } else {
            config.roles.clone()
        };
        let renderer = ModelRenderer(tok);
        let sample_options = SampleOptions {
            max_tokens: Some(config.max_seq_len),
            overflow: config.overflow,
        };
        let batch_options = BatchOptions {
            batch_size: config.batch_size,
            pack_length: config.pack_length,
            sort_by_length: false,
            shuffle: true,
            seed: config.seed,
            pad_id: tok.pad_id().unwrap_or(0),
        };
        let mut epochs = Vec::with_capacity(config.epochs);
        for epoch in 1..=config.epochs {
            let samples = render_epoch(
                &train,
                &config.curriculum,
                epoch,
                &roles,
                &renderer,
                &sample_options,
            )?;
            let b = batches(&samples, &batch_options, epoch)
                .map_err(|e| anyhow::anyhow!("epoch {epoch}: {e}"))?;
            epochs.push(b);
        }
        let val_curriculum = Curriculum {
            schedule: Schedule::All,
            unsupervised: config.curriculum.unsupervised,
        };
        let val_samples = if val.is_empty() {
            Vec::new()
        } else {
            render_epoch(&val, &val_curriculum, 1, &roles, &renderer, &sample_options)?
        };
        let val_batches = batches(
            &val_samples,
            &BatchOptions {
                shuffle: false,
                ..batch_options
            },
            0,
        )
        .map_err(|e| anyhow::anyhow!("validation: {e}"))?;
        let total_steps: usize = epochs.iter().map(Vec::len).sum();
        if total_steps == 0 {
            bail!("the curriculum gives no training batches for roles {roles:?}");
        }
        let longest = epochs
            .iter()
            .flatten()
            .chain(&val_batches)
            .map(|b| b.seq_len)
            .max()
            .unwrap_or(0);
        if longest > mc.max_position_embeddings {
            bail!(
                "a batch of {longest} tokens exceeds the model's context of {} tokens",
                mc.max_position_embeddings
            );
        }
        let trainable = trainable_params(&model, &config);
        let params = mc.num_params() + model.adapter().map_or(0, LoraAdapter::num_params);
        if let Some(limit) = config.memory_limit_bytes {
            let need = memory_estimate(&mc, params, trainable, config.micro_batch(), longest);
            if need > limit {
                bail!(
                    "estimated training memory {need} bytes (micro-batch {} × {longest} tokens) \
                     exceeds memory_limit_bytes {limit}; lower micro_batch or max_seq_len",
                    config.micro_batch()
                );
            }
        }
        Ok(Self {
            config,
            out,
            model,
            opt,
            state,
            epochs,
            val: val_batches,
            total_steps,
            trainable,
            started: Instant::now(),
            tokens_this_process: 0,
            last_checkpoint: None,
            last_epoch: None,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &CausalLm {
        &self.model
    }

    /// Replace the model (for tests and fault injection).
    pub fn set_model(&mut self, model: CausalLm) {
        self.model = model;
    }

    /// Optimizer steps done.
    pub fn step(&self) -> usize {
        self.state.step
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// The batches of epoch `epoch` (1-based).
    pub fn epoch_batches(&self, epoch: usize) -> &[Batch] {
        &self.epochs[epoch - 1]
    }

    /// The run's config.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    fn append_metrics(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.out.join("metrics.jsonl"))?;
        writeln!(f, "{}", serde_json::to_string(value)?)?;
        Ok(())
    }

    /// Save a step checkpoint and prune old ones.
    pub fn save_checkpoint(&mut self) -> anyhow::Result<PathBuf> {
        let root = self.out.join("checkpoints");
        let name = format!("step-{:08}", self.state.step);
        let path = checkpoint::save(&root, &name, &self.model, &self.opt, &self.state)?;
        checkpoint::prune(&root, self.config.keep_last)?;
        self.last_checkpoint = Some(path.clone());
        Ok(path)
    }

    /// Run one optimizer step on `batch`: forward/backward per micro-batch, accumulate, clip,
    /// update. Returns (mean loss, accuracy, grad norm, supervised tokens, tokens).
    fn train_step(
        &mut self,
        batch: &Batch,
        lr: f64,
    ) -> anyhow::Result<(f64, f64, f64, usize, usize)> {
        let micro = MicroBatch::split(
            batch,
            self.config.micro_batch(),
            self.config.pack_length.is_some(),
        );
        let supervised: usize = micro.iter().map(MicroBatch::supervised).sum();
        let tokens: usize = micro.iter().map(MicroBatch::tokens).sum();
        let mut grads = HostGrads::new();
        let (mut loss_sum, mut correct) = (0.0, 0);
        let device = self.model.device();
        for (k, mb) in micro.iter().enumerate() {
            if mb.supervised() == 0 {
                continue;
            }
            device.seed(mix(&[
                self.state.rng_seed,
                self.state.step as u64,
                k as u64,
            ]));
            let ml = micro_loss(&self.model, mb, supervised as f64)?;
            if !ml.loss_sum.is_finite() {
                bail!("{}", self.nan_message(ml.loss_sum));
            }
            loss_sum += ml.loss_sum;
            correct += ml.correct;
            let g = ml.loss.backward();
            let gp = GradientsParams::from_grads(g, &self.model);
            collect_grads(&self.model, &gp, &mut grads);
        }
        let norm = clip(&mut grads, self.config.max_grad_norm);
        if !norm.is_finite() {
            bail!(
                "{}",
                self.nan_message(norm).replace("loss", "gradient norm")
            );
        }
        if supervised > 0 {
            let hp = AdamWParams {
                lr,
                betas: self.config.betas,
                eps: self.config.eps,
                weight_decay: self.config.weight_decay,
            };
            self.model = self.opt.step(self.model.clone(), &grads, hp);
        }
        let n = supervised.max(1) as f64;
        Ok((loss_sum / n, correct as f64 / n, norm, supervised, tokens))
    }

    fn nan_message(&self, value: f64) -> String {
        format!(
            "non-finite loss ({value}) at step {} (epoch {}, batch {}); training stopped, the last \
             good checkpoint is {}",
            self.state.step + 1,
            self.state.epoch,
            self.state.batch,
            self.last_checkpoint
                .as_ref()
                .map_or("none (no checkpoint was saved yet)".into(), |p| p
                    .display()
                    .to_string())
        )
    }

    /// Validation loss, token accuracy and literal-token accuracy over the held-out batches
    /// (`None` without any).
    pub fn validate(&self) -> anyhow::Result<Option<Validation>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let model = self.model.valid();
        let (mut sum, mut correct, mut n, mut lit_correct, mut lit) = (0.0, 0, 0, 0, 0);
        for batch in &self.val {
            for mb in MicroBatch::split(
                batch,
                self.config.micro_batch(),
                self.config.pack_length.is_some(),
            ) {
                if mb.supervised() == 0 {
                    continue;
                }
                let ml = micro_loss(&model, &mb, 1.0)?;
                sum += ml.loss_sum;
                correct += ml.correct;
                n += ml.supervised;
                lit_correct += ml.literal_correct;
                lit += ml.literal;
            }
        }
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(Validation {
            loss: sum / n as f64,
            accuracy: correct as f64 / n as f64,
            supervised_tokens: n,
            literal_accuracy: (lit > 0).then(|| lit_correct as f64 / lit as f64),
            literal_tokens: lit,
        }))
    }

    /// Train until the run is complete or `max_steps` more steps ran. Returns the summary when
    /// the run is complete.
    pub fn run_steps(&mut self, max_steps: Option<usize>) -> anyhow::Result<Option<Summary>> {
        let mut ran = 0;
        while self.state.epoch <= self.config.epochs {
            let epoch = self.state.epoch;
            let epoch_started = Instant::now();
            let n_batches = self.epochs[epoch - 1].len();
            let mut progress = EpochProgress::start(
                Display::for_stderr(self.config.progress),
                epoch,
                self.config.epochs,
                n_batches,
                self.state.batch,
            );
            while self.state.batch < n_batches {
                if max_steps.is_some_and(|m| ran >= m) {
                    return Ok(None);
                }
                let batch = self.epochs[epoch - 1][self.state.batch].clone();
                let lr = lr_at(&self.config, self.state.step, self.total_steps);
                let t0 = Instant::now();
                let (loss, acc, norm, sup, tokens) = self.train_step(&batch, lr)?;
                let dt = t0.elapsed().as_secs_f64();
                self.state.step += 1;
                self.state.batch += 1;
                self.state.epoch_loss_sum += loss * sup as f64;
                self.state.epoch_supervised += sup;
                self.state.epoch_correct += (acc * sup as f64).round() as usize;
                self.state.epoch_tokens += tokens;
                self.tokens_this_process += tokens;
                ran += 1;
                progress.step(loss, tokens);
                self.append_metrics(&serde_json::json!({
                    "kind": "step", "step": self.state.step, "epoch": epoch,
                    "batch": self.state.batch - 1, "loss": loss, "accuracy": acc, "lr": lr,
                    "grad_norm": norm, "supervised_tokens": sup, "tokens": tokens,
                    "tokens_per_s": tokens as f64 / dt.max(1e-9),
                }))?;
                if self.config.checkpoint_every > 0
                    && self.state.step.is_multiple_of(self.config.checkpoint_every)
                {
                    self.save_checkpoint()?;
                }
            }
            // End of epoch: validation, metrics, best and step checkpoints.
            let val = self.validate()?;
            let sup = self.state.epoch_supervised;
            let secs = epoch_started.elapsed().as_secs_f64();
            let record = EpochRecord {
                kind: "epoch".into(),
                epoch,
                step: self.state.step,
                loss: (sup > 0).then(|| self.state.epoch_loss_sum / sup as f64),
                accuracy: (sup > 0).then(|| self.state.epoch_correct as f64 / sup as f64),
                val_loss: val.map(|v| v.loss),
                val_accuracy: val.map(|v| v.accuracy),
                val_literal_accuracy: val.and_then(|v| v.literal_accuracy),
                val_literal_tokens: val.map(|v| v.literal_tokens),
                supervised_tokens: sup,
                tokens: self.state.epoch_tokens,
                tokens_per_s: self.state.epoch_tokens as f64 / secs.max(1e-9),
                seconds: secs,
            };
            self.append_metrics(&record)?;
            progress.finish(&self.epoch_line(&record));
            let improved = match (val, self.state.best) {
                (Some(v), Some((b, _))) => v.loss < b,
                (Some(_), None) => true,
                _ => false,
            };
            self.state.epoch += 1;
            self.state.batch = 0;
            self.state.epoch_loss_sum = 0.0;
            self.state.epoch_supervised = 0;
            self.state.epoch_correct = 0;
            self.state.epoch_tokens = 0;
            if improved {
                let v = val.expect("improved implies a validation loss").loss;
                self.state.best = Some((v, epoch));
                checkpoint::save(&self.out, "best", &self.model, &self.opt, &self.state)?;
            }
            self.save_checkpoint()?;
            self.last_epoch = Some(record);
        }
        Ok(Some(self.finish()?))
    }

    /// The summary line of a finished epoch: losses, accuracy, this process's mean tokens/s and
    /// the run's ETA at that rate.
    fn epoch_line(&self, record: &EpochRecord) -> String {
        let rate = self.tokens_this_process as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let left: usize = self.epochs[record.epoch..]
            .iter()
            .flatten()
            .map(|b| b.lengths.iter().sum::<usize>())
            .sum();
        let eta = left as f64 / rate.max(1e-9);
        format!(
            "epoch {}/{}  step {}/{}  loss {}  val {}  acc {}  {:.0} tok/s  ETA {:.0}s",
            record.epoch,
            self.config.epochs,
            self.state.step,
            self.total_steps,
            fmt_opt(record.loss),
            fmt_opt(record.val_loss),
            fmt_opt(record.val_accuracy.or(record.accuracy)),
            rate,
            eta
        )
    }

    /// Train to the end.
    pub fn run(&mut self) -> anyhow::Result<Summary> {
        Ok(self.run_steps(None)?.expect("an unbounded run completes"))
    }

    fn finish(&mut self) -> anyhow::Result<Summary> {
        let wall = self.started.elapsed().as_secs_f64();
        let last = self
            .last_epoch
            .clone()
            .or_else(|| last_epoch_record(&self.out));
        let summary = Summary {
            steps: self.state.step,
            epochs: self.config.epochs,
            final_train_loss: last.as_ref().and_then(|r| r.loss),
            final_val_loss: last.as_ref().and_then(|r| r.val_loss),
            final_val_accuracy: last.as_ref().and_then(|r| r.val_accuracy),
            final_val_literal_accuracy: last.as_ref().and_then(|r| r.val_literal_accuracy),
            final_val_literal_tokens: last.as_ref().and_then(|r| r.val_literal_tokens),
            best_val_loss: self.state.best.map(|b| b.0),
            best_epoch: self.state.best.map(|b| b.1),
            tokens_per_s: self.tokens_this_process as f64 / wall.max(1e-9),
            wall_s: wall,
            trainable_params: self.trainable,
            output_dir: self.out.clone(),
            last_checkpoint: self.last_checkpoint.clone(),
            best_checkpoint: self.state.best.map(|_| self.out.join("best")),
        };
        if let Some(adapter) = self.model.adapter() {
            // The final adapter in PEFT format (adapter_config.json, adapter_model.safetensors).
            let base = match &self.config.model {
                ModelSpec::HfDir(dir) => Some(dir.display().to_string()),
                ModelSpec::Preset(p) => Some(format!("rung-preset-{p}")),
            };
            let dir = self.out.join("adapter");
            let _ = std::fs::remove_dir_all(&dir);
            rung_model::save_peft_adapter(&adapter.clone().valid(), &dir, base.as_deref())
                .map_err(|e| anyhow::anyhow!("cannot export the PEFT adapter: {e}"))?;
        }
        std::fs::write(
            self.out.join("summary.json"),
            serde_json::to_string_pretty(&summary)?,
        )?;
        crate::plot::loss_plots(&self.out)?;
        Ok(summary)
    }
}

fn last_epoch_record(out: &Path) -> Option<EpochRecord> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<EpochRecord>(l).ok())
        .find(|r| r.kind == "epoch")
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// Train a new run to the end.
pub fn train(config: TrainConfig) -> anyhow::Result<Summary> {
    Trainer::new(config)?.run()
}

/// Resume the run in `dir` from its newest checkpoint and train to the end.
pub fn resume(dir: &Path) -> anyhow::Result<Summary> {
    Trainer::resume(dir)?.run()
}
