#![allow(deprecated)]
//! rung-train: the supervised fine-tuning trainer.
//!
//! - [`TrainConfig`] (TOML/JSON, unknown keys rejected) describes a run; [`train`] runs it and
//!   [`resume`] continues a run from its newest checkpoint, exactly.
//! - Loss ([`loss`]): masked causal-LM cross-entropy, mean over the supervised tokens of the
//!   whole optimizer step, identical with or without micro-batching.
//! - Optimizer ([`optim`]): host-side AdamW keyed by parameter path (no weight decay on norms,
//!   biases, embeddings), warmup then cosine/linear decay, global-norm clipping.
//! - Modes: full training of a preset or HF model, or LoRA (`lora = {...}`: only adapter
//!   parameters require gradients and get optimizer state). `roles = ["executor"]` trains a
//!   per-role model; several roles (or none = all) train one shared model, whose samples are
//!   role-tagged by each role's system prompt in the ChatML text.
//! - Epochs come from `rung-curriculum` (`epoch_samples` per epoch and role), so a schedule
//!   change needs no trainer change. Validation renders held-out trajectories with every
//!   sub-task supervised (`Schedule::All`).
//! - Output directory: `config.json`, `tokenizer.json`, `metrics.jsonl` (per step and per
//!   epoch), `checkpoints/step-N/` (last `keep_last`), `best/`, `summary.json`, `loss.svg`,
//!   `loss.png`.
//! - Progress ([`progress`]): a bar per epoch on a terminal, a line per epoch in logs.
//! - Charts ([`plot`]): line charts as SVG and PNG with plotters and a bundled font, reusable
//!   by other crates (`plot::line_chart`, `plot::register_font`).
//!
//! Dropout (LoRA dropout; the presets have none) draws from the backend RNG seeded with
//! `mix(seed, step, micro_batch)` before every forward pass, so the RNG state is the step counter.
//! That RNG is process-global (burn's CPU backend keeps one): a run with dropout is bitwise
//! reproducible, and resumes exactly, with one trainer per process, as `rung train` runs it;
//! trainers running concurrently in one process interleave their draws.

pub mod checkpoint;
pub mod config;
pub mod loss;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod trainer;

pub use config::{Decay, ModelSpec, TrainConfig};
pub use trainer::{ModelRenderer, Summary, Trainer, Validation, memory_estimate, resume, train};
