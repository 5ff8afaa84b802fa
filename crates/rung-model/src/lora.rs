//! LoRA adapters: configuration, modules and initialisation.
//!
//! # Why not burn's built-in `Module::apply_lora`
//!
//! burn 0.22's [`burn::module::Lora`] reparameterizes a weight as `W + s·A·B` and composes that
//! dense matrix on every forward. It cannot express three things this project needs:
//! - **dropout on the adapter input** (PEFT's `lora_dropout` applies to `x` before `A`, which is
//!   not a function of the weight);
//! - **several named adapters over one base**: the adapter lives inside the base's `Param`, so a
//!   second adapter means a second reparameterized model, and detaching or swapping an adapter
//!   has no API;
//! - **unmerge** (`materialize` folds and discards the adapter).
//!
//! It also costs a dense `d_in × d_out` temporary per adapted matrix per forward (≈2× the
//! adapted weights' memory in training). So rung keeps the adapter beside the base instead: a
//! [`LoraAdapter`] module mirrors the decoder's layers, the model adds
//! `s · B(A(dropout(x)))` to each targeted projection (`2·r·(d_in + d_out)` FLOPs per token, no
//! dense temporary), and attaching, detaching, merging and unmerging are plain field moves. The
//! adapter's factors are burn-nn [`Linear`]s so burn-store's PyTorch adapter transposes them to
//! and from PEFT's `[r, in]` / `[out, r]` layout, and its module paths
//! (`layers.{i}.self_attn.q_proj.lora_a.weight`) map to PEFT's names by a prefix and a case change.
//! rsLoRA and per-module targets are just the scale and which branches exist.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// A projection LoRA can adapt; the names are PEFT's `target_modules` without `_proj`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoraTarget {
    /// `self_attn.q_proj`.
    Q,
    /// `self_attn.k_proj`.
    K,
    /// `self_attn.v_proj`.
    V,
    /// `self_attn.o_proj`.
    O,
    /// `mlp.gate_proj`.
    Gate,
    /// `mlp.up_proj`.
    Up,
    /// `mlp.down_proj`.
    Down,
}

impl LoraTarget {
    /// All targets, in module order.
    pub const ALL: [LoraTarget; 7] = [
        LoraTarget::Q,
        LoraTarget::K,
        LoraTarget::V,
        LoraTarget::O,
        LoraTarget::Gate,
        LoraTarget::Up,
        LoraTarget::Down,
    ];

    /// The HF/PEFT module name (`q_proj`, ..., `down_proj`).
    pub fn module_name(self) -> &'static str {
        match self {
            LoraTarget::Q => "q_proj",
            LoraTarget::K => "k_proj",
            LoraTarget::V => "v_proj",
            LoraTarget::O => "o_proj",
            LoraTarget::Gate => "gate_proj",
            LoraTarget::Up => "up_proj",
            LoraTarget::Down => "down_proj",
        }
    }

    /// Parse a PEFT module name (`q_proj`) or its short form (`q`).
    pub fn parse(name: &str) -> Option<Self> {
        let short = name.strip_suffix("_proj").unwrap_or(name);
        Self::ALL
            .into_iter()
            .find(|t| t.module_name().strip_suffix("_proj") == Some(short))
    }

    /// `(d_in, d_out)` of the adapted projection.
    pub fn dims(self, config: &ModelConfig) -> (usize, usize) {
        let d = config.hidden_size;
        match self {
            LoraTarget::Q => (d, config.q_dim()),
            LoraTarget::K | LoraTarget::V => (d, config.kv_dim()),
            LoraTarget::O => (config.q_dim(), d),
            LoraTarget::Gate | LoraTarget::Up => (d, config.intermediate_size),
            LoraTarget::Down => (config.intermediate_size, d),
        }
    }
}

/// LoRA hyper-parameters, PEFT's `LoraConfig` subset that rung supports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r` of the update `B·A`.
    pub rank: usize,
    /// Scaling numerator: the update is scaled by `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub alpha: f64,
    /// Dropout probability on the adapter's input, active only while training on an autodiff
    /// device.
    pub dropout: f64,
    /// Rank-stabilised LoRA scale `alpha / sqrt(r)` (Kalajdzievski 2023).
    pub use_rslora: bool,
    /// Which projections of every layer get an adapter.
    pub target_modules: Vec<LoraTarget>,
}

impl Default for LoraConfig {
    /// Rank 8, alpha 16, no dropout, on q and v: PEFT's common default for causal LMs.
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            use_rslora: false,
            target_modules: vec![LoraTarget::Q, LoraTarget::V],
        }
    }
}

impl LoraConfig {
    /// The factor multiplying `B·A`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// Check ranks, dropout and targets.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(ModelError::Adapter("rank must be positive".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ModelError::Adapter(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.target_modules.is_empty() {
            return Err(ModelError::Adapter(
                "target_modules is empty; pick some of q, k, v, o, gate, up, down".into(),
            ));
        }
        Ok(())
    }

    /// Whether `target` is adapted.
    pub fn targets(&self, target: LoraTarget) -> bool {
        self.target_modules.contains(&target)
    }
}

/// One adapted projection: `scale · B(A(dropout(x)))`.
///
/// `lora_a` maps `d_in → r` and `lora_b` maps `r → d_out`; as burn `Linear`s their weights are
/// stored `[d_in, r]` and `[r, d_out]` (PEFT stores the transposes).
#[derive(Module, Debug)]
pub struct LoraBranch {
    /// The down-projection `A`.
    pub lora_a: Linear,
    /// The up-projection `B` (zero at initialisation, so a fresh adapter changes nothing).
    pub lora_b: Linear,
    /// Dropout on the branch input.
    pub dropout: Dropout,
    /// `alpha / r` or `alpha / sqrt(r)`.
    pub scale: f64,
}

impl LoraBranch {
    /// A branch with the given factors (`a: [d_in, r]`, `b: [r, d_out]`).
    pub fn from_factors(a: Tensor<2>, b: Tensor<2>, scale: f64, dropout: f64) -> Self {
        Self {
            lora_a: Linear {
                weight: Param::from_tensor(a),
                bias: None,
            },
            lora_b: Linear {
                weight: Param::from_tensor(b),
                bias: None,
            },
            dropout: DropoutConfig::new(dropout).init(),
            scale,
        }
    }

    /// The branch output for `x` (`[..., d_in]` → `[..., d_out]`).
    ///
    /// The scale multiplies the rank-`r` intermediate rather than the `d_out`-wide output (the
    /// same product, as `B` is linear): one pass over `r` values per token instead of `d_out`,
    /// forward and backward.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = self.lora_a.forward(self.dropout.forward(x));
        self.lora_b.forward(h.mul_scalar(self.scale))
    }

    /// The dense update `scale · A·B` (`[d_in, d_out]`, burn's weight layout), for merging.
    pub fn delta(&self) -> Tensor<2> {
        self.lora_a
            .weight
            .val()
            .matmul(self.lora_b.weight.val())
            .mul_scalar(self.scale)
    }

    /// `(rank, d_in, d_out)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        let [d_in, rank] = self.lora_a.weight.lazy_shape().dims();
        let [_, d_out] = self.lora_b.weight.lazy_shape().dims();
        (rank, d_in, d_out)
    }
}

/// The branches of one attention block (paths match PEFT's `self_attn.{q,k,v,o}_proj`).
#[derive(Module, Debug)]
pub struct AttentionLora {
    /// Branch on `q_proj`.
    pub q_proj: Option<LoraBranch>,
    /// Branch on `k_proj`.
    pub k_proj: Option<LoraBranch>,
    /// Branch on `v_proj`.
    pub v_proj: Option<LoraBranch>,
    /// Branch on `o_proj`.
    pub o_proj: Option<LoraBranch>,
}

/// The branches of one MLP (paths match PEFT's `mlp.{gate,up,down}_proj`).
#[derive(Module, Debug)]
pub struct MlpLora {
    /// Branch on `gate_proj`.
    pub gate_proj: Option<LoraBranch>,
    /// Branch on `up_proj`.
    pub up_proj: Option<LoraBranch>,
    /// Branch on `down_proj`.
    pub down_proj: Option<LoraBranch>,
}

/// The branches of one decoder layer.
#[derive(Module, Debug)]
pub struct LayerLora {
    /// Attention branches.
    pub self_attn: AttentionLora,
    /// MLP branches.
    pub mlp: MlpLora,
}

impl LayerLora {
    /// The branch on `target`, if any.
    pub fn branch(&self, target: LoraTarget) -> Option<&LoraBranch> {
        match target {
            LoraTarget::Q => self.self_attn.q_proj.as_ref(),
            LoraTarget::K => self.self_attn.k_proj.as_ref(),
            LoraTarget::V => self.self_attn.v_proj.as_ref(),
            LoraTarget::O => self.self_attn.o_proj.as_ref(),
            LoraTarget::Gate => self.mlp.gate_proj.as_ref(),
            LoraTarget::Up => self.mlp.up_proj.as_ref(),
            LoraTarget::Down => self.mlp.down_proj.as_ref(),
        }
    }

    fn slot(&mut self, target: LoraTarget) -> &mut Option<LoraBranch> {
        match target {
            LoraTarget::Q => &mut self.self_attn.q_proj,
            LoraTarget::K => &mut self.self_attn.k_proj,
            LoraTarget::V => &mut self.self_attn.v_proj,
            LoraTarget::O => &mut self.self_attn.o_proj,
            LoraTarget::Gate => &mut self.mlp.gate_proj,
            LoraTarget::Up => &mut self.mlp.up_proj,
            LoraTarget::Down => &mut self.mlp.down_proj,
        }
    }

    fn empty() -> Self {
        Self {
            self_attn: AttentionLora {
                q_proj: None,
                k_proj: None,
                v_proj: None,
                o_proj: None,
            },
            mlp: MlpLora {
                gate_proj: None,
                up_proj: None,
                down_proj: None,
            },
        }
    }
}

/// A LoRA adapter for a whole decoder: one [`LayerLora`] per layer, plus its configuration and a
/// name (the agent role it serves, say). Holds only the low-rank factors, never base weights.
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// Per-layer branches; paths are `layers.{i}.self_attn.q_proj.lora_a.weight` etc.
    pub layers: Vec<LayerLora>,
    /// Hyper-parameters the adapter was built with.
    #[module(skip)]
    pub config: LoraConfig,
    /// Name of the adapter (used by [`crate::AdapterBank`] and in merge bookkeeping).
    #[module(skip)]
    pub name: String,
}

/// How the factors of a new adapter are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoraInit {
    /// PEFT's default: `A ~ U(-1/sqrt(d_in), 1/sqrt(d_in))` (Kaiming-uniform with `a = sqrt(5)`),
    /// `B = 0`, so the adapted model starts equal to the base.
    Standard,
    /// Both factors random (`B ~ U(-b, b)`); for tests and fixtures where the adapter must change
    /// the output. PEFT's `init_lora_weights=False` does the same for its own tests.
    RandomB {
        /// Half-width of `B`'s uniform distribution.
        bound: f32,
    },
    /// Both factors zero: a placeholder whose values are then loaded from a file.
    Zeros,
}

impl LoraAdapter {
    /// A new adapter for a model of `model` shape, drawing its factors from `seed`
    /// (deterministic: the same seed gives the same adapter on every backend).
    pub fn new(
        name: impl Into<String>,
        config: LoraConfig,
        model: &ModelConfig,
        init: LoraInit,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scale = config.scale();
        let mut layers = Vec::with_capacity(model.num_hidden_layers);
        for _ in 0..model.num_hidden_layers {
            let mut layer = LayerLora::empty();
            for target in LoraTarget::ALL {
                if !config.targets(target) {
                    continue;
                }
                let (d_in, d_out) = target.dims(model);
                let r = config.rank;
                let (a, b) = match init {
                    LoraInit::Zeros => (vec![0.0; d_in * r], vec![0.0; r * d_out]),
                    LoraInit::Standard => {
                        let bound = 1.0 / (d_in as f32).sqrt();
                        (uniform(&mut rng, d_in * r, bound), vec![0.0; r * d_out])
                    }
                    LoraInit::RandomB { bound: b_bound } => {
                        let bound = 1.0 / (d_in as f32).sqrt();
                        (
                            uniform(&mut rng, d_in * r, bound),
                            uniform(&mut rng, r * d_out, b_bound),
                        )
                    }
                };
                let a = Tensor::from_data(TensorData::new(a, [d_in, r]), device);
                let b = Tensor::from_data(TensorData::new(b, [r, d_out]), device);
                *layer.slot(target) = Some(LoraBranch::from_factors(a, b, scale, config.dropout));
            }
            layers.push(layer);
        }
        Ok(Self {
            layers,
            config,
            name: name.into(),
        })
    }

    /// Check that this adapter fits a model of shape `model`: same layer count and, for every
    /// branch, the projection's `(d_in, d_out)` and the configured rank.
    pub fn check_fits(&self, model: &ModelConfig) -> Result<()> {
        if self.layers.len() != model.num_hidden_layers {
            return Err(ModelError::Adapter(format!(
                "adapter `{}` has {} layers but the model has {}",
                self.name,
                self.layers.len(),
                model.num_hidden_layers
            )));
        }
        for (i, layer) in self.layers.iter().enumerate() {
            for target in LoraTarget::ALL {
                if let Some(branch) = layer.branch(target) {
                    let (rank, d_in, d_out) = branch.dims();
                    let want = target.dims(model);
                    if (d_in, d_out) != want || rank != self.config.rank {
                        return Err(ModelError::Adapter(format!(
                            "adapter `{}` layer {i} {}: shape in {d_in} / rank {rank} / out {d_out}, \
                             model needs in {} / rank {} / out {}",
                            self.name,
                            target.module_name(),
                            want.0,
                            self.config.rank,
                            want.1
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Number of trainable adapter parameters.
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_follows_rslora() {
        let mut c = LoraConfig {
            rank: 16,
            alpha: 32.0,
            ..LoraConfig::default()
        };
        assert_eq!(c.scale(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scale(), 8.0);
    }

    #[test]
    fn target_names_parse_both_forms() {
        assert_eq!(LoraTarget::parse("q_proj"), Some(LoraTarget::Q));
        assert_eq!(LoraTarget::parse("gate"), Some(LoraTarget::Gate));
        assert_eq!(LoraTarget::parse("lm_head"), None);
    }

    #[test]
    fn adapter_has_expected_parameter_count() {
        let model = ModelConfig::preset("tiny").unwrap();
        let config = LoraConfig {
            rank: 4,
            target_modules: vec![LoraTarget::Q, LoraTarget::Down],
            ..LoraConfig::default()
        };
        let adapter =
            LoraAdapter::new("a", config, &model, LoraInit::Standard, 0, &Device::flex()).unwrap();
        // q: 4·(128 + 128); down: 4·(384 + 128); 3 layers.
        assert_eq!(adapter.num_params(), 3 * (4 * 256 + 4 * 512));
        adapter.check_fits(&model).unwrap();
        let other = ModelConfig::preset("small").unwrap();
        assert!(adapter.check_fits(&other).is_err());
    }
}
