//! Grouped-query self-attention with rotary embeddings, optional q/k/v biases, an optional KV
//! cache and an additive mask.

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use crate::cache::LayerCache;
use crate::config::ModelConfig;
use crate::lora::AttentionLora;
use crate::mlp::project;
use crate::rope::{RopeAngles, apply_rotary};

/// Multi-head attention whose `num_key_value_heads` key/value heads are each shared by
/// `num_attention_heads / num_key_value_heads` query heads (HF `repeat_kv` semantics: kv head
/// `g` serves query heads `g·rep .. (g+1)·rep`).
#[derive(Module, Debug)]
pub struct Attention {
    /// `hidden → heads·head_dim` (bias for Qwen2).
    pub q_proj: Linear,
    /// `hidden → kv_heads·head_dim` (bias for Qwen2).
    pub k_proj: Linear,
    /// `hidden → kv_heads·head_dim` (bias for Qwen2).
    pub v_proj: Linear,
    /// `heads·head_dim → hidden`, never biased.
    pub o_proj: Linear,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl Attention {
    /// A new attention block with weights drawn from `init` (lazily, on first use).
    pub fn new(config: &ModelConfig, init: &Initializer, device: &Device) -> Self {
        let linear = |d_in, d_out, bias| {
            LinearConfig::new(d_in, d_out)
                .with_bias(bias)
                .with_initializer(init.clone())
                .init(device)
        };
        let bias = config.attention_bias;
        Self {
            q_proj: linear(config.hidden_size, config.q_dim(), bias),
            k_proj: linear(config.hidden_size, config.kv_dim(), bias),
            v_proj: linear(config.hidden_size, config.kv_dim(), bias),
            o_proj: linear(config.q_dim(), config.hidden_size, false),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
        }
    }

    /// Attend over `x` (`[batch, seq, hidden]`).
    ///
    /// `mask` is additive (`0` or `-inf`), shaped `[batch or 1, 1, 1, seq, keys]`, where `keys`
    /// counts cached positions plus `seq`; `None` means every key is visible (a single new token
    /// without padding). With a `cache`, keys and values of `x` are appended to it and attention
    /// runs over all cached positions.
    pub fn forward(
        &self,
        x: Tensor<3>,
        angles: &RopeAngles,
        mask: Option<&Tensor<5>>,
        cache: Option<&mut LayerCache>,
        lora: Option<&AttentionLora>,
    ) -> Tensor<3> {
        let [batch, seq, _] = x.dims();
        let (heads, kv_heads, dim) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let rep = heads / kv_heads;

        let q = project(
            &self.q_proj,
            lora.and_then(|l| l.q_proj.as_ref()),
            x.clone(),
        );
        let k = project(
            &self.k_proj,
            lora.and_then(|l| l.k_proj.as_ref()),
            x.clone(),
        );
        let v = project(&self.v_proj, lora.and_then(|l| l.v_proj.as_ref()), x);

        let q = q.reshape([batch, seq, heads, dim]).swap_dims(1, 2);
        let k = k.reshape([batch, seq, kv_heads, dim]).swap_dims(1, 2);
        let v = v.reshape([batch, seq, kv_heads, dim]).swap_dims(1, 2);
        let q = apply_rotary(q, angles);
        let k = apply_rotary(k, angles);
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v),
            None => (k, v),
        };
        let keys = k.dims()[2];

        // Group the query heads of each kv head along the sequence axis so one batched matmul
        // serves the whole group without materialising repeated keys and values.
        let q = q
            .mul_scalar(1.0 / (dim as f64).sqrt())
            .reshape([batch, kv_heads, rep * seq, dim]);
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .reshape([batch, kv_heads, rep, seq, keys]);
        let scores = match mask {
            Some(mask) => scores + mask.clone(),
            None => scores,
        };
        let probs = softmax(scores, 4).reshape([batch, kv_heads, rep * seq, keys]);
        let out = probs
            .matmul(v)
            .reshape([batch, heads, seq, dim])
            .swap_dims(1, 2)
            .reshape([batch, seq, heads * dim]);
        project(&self.o_proj, lora.and_then(|l| l.o_proj.as_ref()), out)
    }
}
