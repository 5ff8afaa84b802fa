//! Small causal language models in burn for rung.
//!
//! - [`config`]: model hyper-parameters from HF `config.json` or named presets.
//! - [`model`]: the Qwen2/Llama decoder ([`CausalLm`]) with its [`attention`], [`mlp`] and
//!   [`rope`] parts, a [`cache`] for incremental decoding and [`input`] masks and positions.
//! - [`device`]: the backend chosen by cargo feature.
//! - [`hf`] and [`checkpoint`]: HF safetensors weights (local or from the HF cache) and rung's own
//!   checkpoints.
//! - [`lora`], [`peft`] and [`adapters`]: LoRA adapters, PEFT interop, named adapters over one
//!   base.
//! - [`generate`](mod@generate): batched, KV-cached sampling with a FLOPs estimate.
//! - [`engine`]: a continuous-batching thread per model that merges many callers' requests.
//! - [`tokenizer`] and [`chat`]: tokenizers and ChatML rendering.

pub mod adapters;
pub mod attention;
pub mod cache;
pub mod chat;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod engine;
pub mod error;
pub mod generate;
pub mod hf;
pub mod input;
pub mod lora;
pub mod mlp;
pub mod model;
pub mod peft;
pub mod rope;
pub mod tokenizer;

pub use adapters::AdapterBank;
pub use cache::KvCache;
pub use checkpoint::{load_checkpoint, save_checkpoint};
pub use config::{Family, ModelConfig, PRESET_NAMES, RopeScaling};
pub use device::{autodiff_device, default_device, inference_device};
pub use engine::{Engine, EngineOptions, EngineStats, Pending, SharedDetokenize};
pub use error::{ModelError, Result};
pub use generate::{FinishReason, GenerateOptions, Generation, Sampling, SequenceOutput, generate};
pub use hf::{ModelFiles, ModelSource, load_hf_model, save_hf_model};
pub use input::{AttentionMask, ForwardOptions};
pub use lora::{LoraAdapter, LoraConfig, LoraInit, LoraTarget};
pub use model::CausalLm;
pub use peft::{load_peft_adapter, save_peft_adapter};
