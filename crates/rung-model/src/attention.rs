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
    /// counts cached positions plus `seq`, and causal (new token `i` sees no key after cached
    /// position `past + i`; longer blocks are attended in chunks that rely on it); `None` means
    /// every key is visible (a single new token without padding). With a `cache`, keys and values of `x` are appended to it and attention
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
        let q = q.mul_scalar(1.0 / (dim as f64).sqrt());
        let out = match mask {
            Some(mask) if seq > ATTENTION_CHUNK => {
                attend_chunked(q, k, v, mask, rep, ATTENTION_CHUNK)
            }
            _ => attend(q, k, v, mask, rep),
        }
        .reshape([batch, heads, seq, dim])
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * dim]);
        project(&self.o_proj, lora.and_then(|l| l.o_proj.as_ref()), out)
    }
}

/// Queries per block of [`attend_chunked`]: long sequences (training, long prefills) are
/// attended in blocks of this many queries.
pub const ATTENTION_CHUNK: usize = 64;

/// `softmax(q·kᵀ + mask)·v` for pre-scaled `q` `[batch, heads, seq, dim]` and `k`, `v`
/// `[batch, kv_heads, keys, dim]`; returns `[batch, kv_heads, rep · seq, dim]`, rows ordered
/// (query head within its group, position).
///
/// The query heads of each kv head are grouped along the sequence axis so that one batched
/// matmul serves the whole group without materialising repeated keys and values.
pub(crate) fn attend(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<&Tensor<5>>,
    rep: usize,
) -> Tensor<4> {
    let [batch, _, seq, dim] = q.dims();
    let [_, kv_heads, keys, _] = k.dims();
    let q = q.reshape([batch, kv_heads, rep * seq, dim]);
    let scores = q
        .matmul(k.swap_dims(2, 3))
        .reshape([batch, kv_heads, rep, seq, keys]);
    let scores = match mask {
        Some(mask) => scores + mask.clone(),
        None => scores,
    };
    softmax(scores, 4)
        .reshape([batch, kv_heads, rep * seq, keys])
        .matmul(v)
}

/// [`attend`] for a *causal* `mask` (query `i` never sees a key after position `past + i`, as
/// every mask the model builds), in blocks of `chunk` queries: the block of queries
/// `q0..q1` is scored only against the keys `0..past + q1`, since the later ones are masked out
/// anyway. The result is the same (masked keys contribute exactly zero), while the score,
/// softmax and mask tensors (the bulk of attention's time and memory in training) shrink to
/// about `(1 + 1/blocks) / 2` of the full square.
fn attend_chunked(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: &Tensor<5>,
    rep: usize,
    chunk: usize,
) -> Tensor<4> {
    let [batch, _, seq, dim] = q.dims();
    let [_, kv_heads, keys, _] = k.dims();
    let past = keys - seq;
    let q = q.reshape([batch, kv_heads, rep, seq, dim]);
    let blocks: Vec<Tensor<5>> = (0..seq)
        .step_by(chunk)
        .map(|q0| {
            let len = chunk.min(seq - q0);
            let visible = past + q0 + len;
            let q = q
                .clone()
                .narrow(3, q0, len)
                .reshape([batch, kv_heads, rep * len, dim]);
            let scores = q
                .matmul(k.clone().narrow(2, 0, visible).swap_dims(2, 3))
                .reshape([batch, kv_heads, rep, len, visible]);
            let mask = mask.clone().narrow(3, q0, len).narrow(4, 0, visible);
            softmax(scores + mask, 4)
                .reshape([batch, kv_heads, rep * len, visible])
                .matmul(v.clone().narrow(2, 0, visible))
                .reshape([batch, kv_heads, rep, len, dim])
        })
        .collect();
    Tensor::cat(blocks, 3).reshape([batch, kv_heads, rep * seq, dim])
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Distribution, TensorData};

    use super::*;

    /// Chunked attention equals the full square for a causal mask with padding, with and
    /// without cached keys, and for block sizes that do and do not divide the sequence.
    #[test]
    fn chunked_attention_equals_full_attention() {
        let device = Device::flex();
        let (batch, kv_heads, rep, dim) = (2, 2, 3, 8);
        for (past, seq, chunk) in [(0, 40, 16), (0, 40, 8), (5, 33, 7)] {
            let keys = past + seq;
            let q = Tensor::<4>::random(
                [batch, kv_heads * rep, seq, dim],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let kv = |_| {
                Tensor::<4>::random(
                    [batch, kv_heads, keys, dim],
                    Distribution::Normal(0.0, 1.0),
                    &device,
                )
            };
            let (k, v) = (kv(0), kv(1));
            // Causal, with the first three keys of row 1 padding (a query still sees itself).
            let mut values = Vec::new();
            for b in 0..batch {
                for i in 0..seq {
                    for j in 0..keys {
                        let me = past + i;
                        let ok = j == me || (j < me && !(b == 1 && j < 3));
                        values.push(if ok { 0.0f32 } else { f32::NEG_INFINITY });
                    }
                }
            }
            let mask =
                Tensor::<5>::from_data(TensorData::new(values, [batch, 1, 1, seq, keys]), &device);
            let full: Vec<f32> = attend(q.clone(), k.clone(), v.clone(), Some(&mask), rep)
                .try_into_vec_as::<f32>()
                .unwrap();
            let chunked: Vec<f32> = attend_chunked(q, k, v, &mask, rep, chunk)
                .try_into_vec_as::<f32>()
                .unwrap();
            let err = full
                .iter()
                .zip(&chunked)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(err < 1e-5, "past {past} seq {seq} chunk {chunk}: {err}");
        }
    }
}
