//! One decode step for a whole batch of sequences of different lengths.
//!
//! Every row feeds one token. Everything that is row-wise — embedding, norms, the q/k/v/o and
//! MLP projections (one matmul of `batch` rows instead of `batch` matmuls of one row), rotary
//! embedding, the LM head — runs once for the batch. Attention runs per row against that row's
//! own cache, with the very tensors and operations a batch-of-one decode uses
//! ([`crate::attention::attend`] over the row's unpadded keys), so no row ever sees padding.
//!
//! # Why not one padded attention
//!
//! A padded batch would score each row against the longest row's key count. The masked keys add
//! exactly zero, but they change the shapes handed to the matmul and softmax kernels, and those
//! pick their blocking and SIMD lane split by shape (gemm switches kernels at `m·n ≤ 256`, a sum
//! over lanes adds in another order): the logits would differ from the one-at-a-time path in the
//! last bits, and greedy decoding of an untrained model, whose logits are nearly tied, would
//! drift. Row-wise kernels, by contrast, give bit-identical rows whatever the number of rows
//! (`gemm` computes each output row with the same reduction order for 1 and for many rows; the
//! engine's parity tests check the whole step against `generate`).

use burn::tensor::{Int, Tensor, TensorData};

use crate::attention::{Attention, attend};
use crate::engine::sequence::Sequence;
use crate::error::{ModelError, Result};
use crate::lora::AttentionLora;
use crate::mlp::project;
use crate::model::CausalLm;
use crate::rope::{RopeAngles, apply_rotary};

/// Feed each sequence's last token, append its keys and values to the sequence's cache, and
/// return the logits of all rows, row-major `[rows · vocab]`.
pub(crate) fn decode_step(model: &CausalLm, rows: &mut [&mut Sequence]) -> Result<Vec<f32>> {
    let batch = rows.len();
    if batch == 0 {
        return Ok(Vec::new());
    }
    let device = model.device();
    let ids: Vec<i64> = rows.iter().map(|s| i64::from(s.last_token())).collect();
    let positions: Vec<i64> = rows.iter().map(|s| s.next_position).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, 1]), &device);
    let positions = Tensor::<2, Int>::from_data(TensorData::new(positions, [batch, 1]), &device);
    let angles = model.rope().angles(positions);
    let mut x = model.embed_tokens.forward(ids);
    for (i, layer) in model.layers.iter().enumerate() {
        let lora = model.adapter().map(|a| &a.layers[i]);
        let h = attention(
            &layer.self_attn,
            layer.input_layernorm.forward(x.clone()),
            &angles,
            rows,
            i,
            lora.map(|l| &l.self_attn),
        );
        let x_mid = x + h;
        let m = layer.mlp.forward(
            layer.post_attention_layernorm.forward(x_mid.clone()),
            lora.map(|l| &l.mlp),
        );
        x = x_mid + m;
    }
    let logits = model.logits(model.norm.forward(x));
    let vocab = logits.dims()[2];
    let values = logits
        .reshape([batch * vocab])
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::TensorRead(e.to_string()))?;
    for row in rows.iter_mut() {
        row.cached += 1;
        row.next_position += 1;
    }
    Ok(values)
}

/// [`Attention::forward`] for one new token per row, each row against its own cache of layer
/// `layer`.
fn attention(
    attn: &Attention,
    x: Tensor<3>,
    angles: &RopeAngles,
    rows: &mut [&mut Sequence],
    layer: usize,
    lora: Option<&AttentionLora>,
) -> Tensor<3> {
    let [batch, seq, _] = x.dims();
    let (heads, kv_heads, dim) = (attn.num_heads, attn.num_kv_heads, attn.head_dim);
    let rep = heads / kv_heads;
    let q = project(
        &attn.q_proj,
        lora.and_then(|l| l.q_proj.as_ref()),
        x.clone(),
    );
    let k = project(
        &attn.k_proj,
        lora.and_then(|l| l.k_proj.as_ref()),
        x.clone(),
    );
    let v = project(&attn.v_proj, lora.and_then(|l| l.v_proj.as_ref()), x);
    let q = q.reshape([batch, seq, heads, dim]).swap_dims(1, 2);
    let k = k.reshape([batch, seq, kv_heads, dim]).swap_dims(1, 2);
    let v = v.reshape([batch, seq, kv_heads, dim]).swap_dims(1, 2);
    let q = apply_rotary(q, angles);
    let k = apply_rotary(k, angles);
    let q = q.mul_scalar(1.0 / (dim as f64).sqrt());
    let outs: Vec<Tensor<4>> = rows
        .iter_mut()
        .enumerate()
        .map(|(r, row)| {
            let (k, v) =
                row.caches[layer].append(k.clone().narrow(0, r, 1), v.clone().narrow(0, r, 1));
            attend(q.clone().narrow(0, r, 1), k, v, None, rep)
        })
        .collect();
    let out = Tensor::cat(outs, 0)
        .reshape([batch, heads, seq, dim])
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * dim]);
    project(&attn.o_proj, lora.and_then(|l| l.o_proj.as_ref()), out)
}
