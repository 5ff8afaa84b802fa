//! The training configuration ([`TrainConfig`]), read from TOML or JSON with unknown keys
//! rejected.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rung_curriculum::{Curriculum, Overflow};
use rung_model::LoraConfig;
use rung_trajectory::Role;
use serde::{Deserialize, Serialize};

/// Where the model comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum ModelSpec {
    /// A from-scratch preset (`tiny`, `small`, `base`, `medium`, `large`), randomly initialised
    /// from the run's seed.
    Preset(String),
    /// A local HF model directory (config.json, safetensors, tokenizer.json), or a checkpoint
    /// directory of an earlier rung run (config.json, `model.bpk`), such as a world-pretrained
    /// base.
    HfDir(PathBuf),
}

/// Learning-rate decay after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Half-cosine from the peak to `min_lr_ratio · lr` at the last step.
    #[default]
    Cosine,
    /// Straight line from the peak to `min_lr_ratio · lr` at the last step.
    Linear,
    /// The peak learning rate after warmup.
    Constant,
}

/// A training run. Every field but `data` and `output_dir` has a default.
///
/// Batching: one optimizer step consumes one curriculum batch of `batch_size` rows; the batch
/// is run as `ceil(batch_size / micro_batch)` forward/backward passes whose gradients are
/// accumulated (gradient accumulation), then clipped and applied once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Training trajectories (JSONL, as written by `rung data gen`).
    pub data: PathBuf,
    /// Held-out trajectories for validation; when absent, the last `validation_fraction` of
    /// `data`'s episodes (in file order) are held out.
    #[serde(default)]
    pub validation_data: Option<PathBuf>,
    /// Fraction of `data` held out when `validation_data` is absent (0 for none).
    #[serde(default = "default_validation_fraction")]
    pub validation_fraction: f64,
    /// Segment trajectories with the embedded world's gold plans (suite `world_seed`); when
    /// false, only the sub-task labels recorded on the turns are used.
    #[serde(default = "default_true")]
    pub gold_plans: bool,
    /// Seed of the embedded world's suite whose gold plans segment the trajectories.
    #[serde(default)]
    pub world_seed: u64,
    /// The model.
    #[serde(default = "default_model")]
    pub model: ModelSpec,
    /// A `tokenizer.json`; for presets without one, a byte-level BPE of the preset's vocabulary
    /// is trained on the training data and saved in the output directory.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    /// Train a LoRA adapter (only adapter parameters train; the base stays frozen).
    #[serde(default)]
    pub lora: Option<LoraConfig>,
    /// Roles whose conversations are trained. One role: a per-role model (or adapter). Several
    /// roles (empty: every role in the data): one shared model; samples stay role-tagged by
    /// each role's system prompt.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The curriculum (schedule of supervised sub-tasks per epoch).
    #[serde(default)]
    pub curriculum: Curriculum,
    /// What to do with conversations longer than `max_seq_len`.
    #[serde(default)]
    pub overflow: Overflow,
    /// Epochs (1-based, as the curriculum counts them).
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Rows per optimizer step.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Rows per forward/backward pass (≤ `batch_size`); `batch_size / micro_batch` passes are
    /// accumulated per step.
    #[serde(default)]
    pub micro_batch: Option<usize>,
    /// Pack several samples per row up to this many tokens.
    #[serde(default)]
    pub pack_length: Option<usize>,
    /// Peak learning rate.
    #[serde(default = "default_lr")]
    pub lr: f64,
    /// Linear warmup steps from 0 to `lr`.
    #[serde(default)]
    pub warmup_steps: usize,
    /// Decay after warmup.
    #[serde(default)]
    pub decay: Decay,
    /// Final learning rate as a fraction of `lr`.
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// AdamW weight decay (not applied to norms, biases and embeddings).
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// AdamW betas.
    #[serde(default = "default_betas")]
    pub betas: (f64, f64),
    /// AdamW epsilon.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[serde(default = "default_clip")]
    pub max_grad_norm: f64,
    /// Seed of initialisation, shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Output directory (checkpoints, metrics, plots, summary).
    pub output_dir: PathBuf,
    /// Longest sample in tokens (at most the model's context).
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Memory limit in bytes for the estimate of [`crate::memory_estimate`]; a run whose
    /// estimate exceeds it is rejected before training.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
    /// Save a checkpoint every this many steps (0: only at the end of every epoch).
    #[serde(default)]
    pub checkpoint_every: usize,
    /// Step checkpoints kept (the best by validation loss is kept apart, in `best/`).
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Show progress on stderr: a bar per epoch (loss, tokens/s, ETA) on a terminal, a summary
    /// line per epoch otherwise ([`crate::progress`]).
    #[serde(default = "default_true")]
    pub progress: bool,
}

fn default_validation_fraction() -> f64 {
    0.1
}
fn default_model() -> ModelSpec {
    ModelSpec::Preset("tiny".into())
}
fn default_epochs() -> usize {
    3
}
fn default_batch() -> usize {
    8
}
fn default_lr() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_eps() -> f64 {
    1e-8
}
fn default_clip() -> f64 {
    1.0
}
fn default_max_seq_len() -> usize {
    2048
}
fn default_keep_last() -> usize {
    2
}
fn default_true() -> bool {
    true
}

impl TrainConfig {
    /// A config with defaults for everything but the data and the output directory.
    pub fn new(data: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        let text = serde_json::json!({"data": data.into(), "output_dir": output_dir.into()});
        serde_json::from_value(text).expect("defaults deserialize")
    }

    /// Read a config: TOML unless the file name ends in `.json`.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read train config {}", path.display()))?;
        let config = if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
        .with_context(|| format!("invalid train config {}", path.display()))?;
        Ok(config)
    }

    /// Parse TOML.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        config.validate()?;
        Ok(config)
    }

    /// Parse JSON.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let config: Self = serde_json::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The micro-batch size (defaults to the batch size).
    pub fn micro_batch(&self) -> usize {
        self.micro_batch.unwrap_or(self.batch_size)
    }

    /// Check values that serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.epochs == 0 {
            bail!("`epochs` must be at least 1");
        }
        if self.batch_size == 0 {
            bail!("`batch_size` must be at least 1");
        }
        let micro = self.micro_batch();
        if micro == 0 || micro > self.batch_size {
            bail!(
                "`micro_batch` ({micro}) must be between 1 and `batch_size` ({})",
                self.batch_size
            );
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("`lr` must be positive, got {}", self.lr);
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            bail!(
                "`min_lr_ratio` must be in [0, 1], got {}",
                self.min_lr_ratio
            );
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            bail!(
                "`validation_fraction` must be in [0, 1), got {}",
                self.validation_fraction
            );
        }
        let (b1, b2) = self.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            bail!("`betas` must be in [0, 1), got ({b1}, {b2})");
        }
        if self.max_grad_norm < 0.0 || self.weight_decay < 0.0 || self.eps <= 0.0 {
            bail!("`max_grad_norm` and `weight_decay` must be ≥ 0 and `eps` > 0");
        }
        if self.max_seq_len < 2 {
            bail!("`max_seq_len` must be at least 2");
        }
        if let Some(pack) = self.pack_length
            && pack > self.max_seq_len
        {
            bail!(
                "`pack_length` ({pack}) exceeds `max_seq_len` ({})",
                self.max_seq_len
            );
        }
        if let Some(lora) = &self.lora {
            lora.validate()
                .map_err(|e| anyhow::anyhow!("`lora`: {e}"))?;
        }
        Ok(())
    }
}
