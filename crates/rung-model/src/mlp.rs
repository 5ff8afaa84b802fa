//! The SwiGLU feed-forward block of Qwen2/Llama: `down(silu(gate(x)) · up(x))`.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use crate::config::ModelConfig;
use crate::lora::{LoraBranch, MlpLora};

/// SwiGLU MLP with HF's module names (`gate_proj`, `up_proj`, `down_proj`, no biases).
#[derive(Module, Debug)]
pub struct Mlp {
    /// `hidden → intermediate`, passed through SiLU.
    pub gate_proj: Linear,
    /// `hidden → intermediate`, the multiplicative branch.
    pub up_proj: Linear,
    /// `intermediate → hidden`.
    pub down_proj: Linear,
}

impl Mlp {
    /// A new MLP with weights drawn from `init` (lazily, on first use).
    pub fn new(config: &ModelConfig, init: &Initializer, device: &Device) -> Self {
        let linear = |d_in, d_out| {
            LinearConfig::new(d_in, d_out)
                .with_bias(false)
                .with_initializer(init.clone())
                .init(device)
        };
        Self {
            gate_proj: linear(config.hidden_size, config.intermediate_size),
            up_proj: linear(config.hidden_size, config.intermediate_size),
            down_proj: linear(config.intermediate_size, config.hidden_size),
        }
    }

    /// `[batch, seq, hidden] → [batch, seq, hidden]`, adding the adapter's branches when given.
    pub fn forward(&self, x: Tensor<3>, lora: Option<&MlpLora>) -> Tensor<3> {
        let gate = project(
            &self.gate_proj,
            lora.and_then(|l| l.gate_proj.as_ref()),
            x.clone(),
        );
        let up = project(&self.up_proj, lora.and_then(|l| l.up_proj.as_ref()), x);
        let h = silu(gate) * up;
        project(&self.down_proj, lora.and_then(|l| l.down_proj.as_ref()), h)
    }
}

/// A base projection plus, when present, its LoRA branch on the same input.
pub(crate) fn project<const D: usize>(
    base: &Linear,
    lora: Option<&LoraBranch>,
    x: Tensor<D>,
) -> Tensor<D> {
    match lora {
        Some(branch) => base.forward(x.clone()) + branch.forward(x),
        None => base.forward(x),
    }
}
