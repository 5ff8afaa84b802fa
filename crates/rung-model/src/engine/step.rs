//! One decode step for a whole batch of sequences of different lengths.
//!
//! Every row feeds one token. Everything row-wise — embedding, norms, the q/k/v/o and MLP
//! projections (one matmul of `rows` rows instead of `rows` matmuls of one row), rotary
//! embedding, the LM head — runs once for the batch; `gemm` computes each output row with the
//! same reduction whatever the number of rows, so these are bit-identical to a batch of one.
//!
//! # Attention, bit-identical to a batch of one
//!
//! Rows have different lengths. They attend together over the first `keys = max len + 1`
//! positions of the [`SlotCache`], with an additive mask that hides each row's positions
//! beyond its own (right padding). The masked keys contribute exactly nothing, and the result
//! for each row is bit-identical to attending over its own keys alone — provided the kernels
//! reduce in the same order for both shapes. For flex 0.22 with `gemm` 0.19 that holds when:
//!
//! - scores `q·kᵀ` (per kv head: `m = rep` query rows, `n = keys`, `k = head_dim`): every score
//!   is one dot product over `head_dim`, computed the same way for any `n` as long as `gemm`
//!   takes the same branch — its "horizontal" kernel for `m·n ≤ 256`, its general kernel above,
//!   and never its matrix-vector path (`m = 1`, i.e. no grouped-query sharing). A row whose own
//!   key count is in the other regime than the batch's would differ: such rows (only the first
//!   positions of very short prompts) attend alone instead, with the same kernels as a batch of
//!   one.
//! - softmax (flex's fused kernel): the maximum is order-free, the sum of exponentials runs
//!   sequentially from the first key, so padding at the end adds exact zeros; the
//!   normalisation is element-wise.
//! - weighted values `p·v` (`m = rep`, `n = head_dim`, `k = keys`): with `m ≥ 2` and
//!   `n ≤ 64`, `gemm` blocks the reduction in fixed runs of 512 keys from the start, so the
//!   padded tail only appends `0·v` terms.
//!
//! Models outside these conditions (`num_attention_heads == num_key_value_heads`, or
//! `head_dim > 64`) attend row by row. The engine's parity tests compare the logits of whole
//! steps with batch-of-one decodes bit for bit, for lengths on both sides of each threshold.

use burn::tensor::{Int, Tensor, TensorData};

use crate::attention::{Attention, attend};
use crate::engine::sequence::Sequence;
use crate::engine::slots::SlotCache;
use crate::error::{ModelError, Result};
use crate::lora::AttentionLora;
use crate::mlp::project;
use crate::model::CausalLm;
use crate::rope::{RopeAngles, apply_rotary};

/// Feed each sequence's last token (row `i` is slot `i` of `slots`), write its keys and values
/// into the cache, and return the logits of all rows, row-major `[rows · vocab]`.
pub(crate) fn decode_step(
    model: &CausalLm,
    rows: &mut [Sequence],
    slots: &mut SlotCache,
) -> Result<Vec<f32>> {
    let batch = rows.len();
    if batch == 0 {
        return Ok(Vec::new());
    }
    if slots.rows() != batch {
        return Err(ModelError::Engine(format!(
            "{batch} running sequences but {} cache slots",
            slots.rows()
        )));
    }
    let config = model.config();
    let keys = (0..batch).map(|r| slots.len(r)).max().unwrap_or(0) + 1;
    slots.reserve(keys, config.num_hidden_layers);
    let plan = Plan::new(model, slots, keys);
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
            slots,
            &plan,
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
    slots.advance();
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

/// How the rows of one step attend: together under a padding mask, and/or alone.
struct Plan {
    /// Keys of the batch (the longest row's, its new position included).
    keys: usize,
    /// Additive mask `[rows, 1, 1, 1, keys]` for attending together, when any row does.
    mask: Option<Tensor<5>>,
    /// Per row: attend alone over its own `len + 1` keys (else with the batch).
    alone: Vec<Option<usize>>,
}

impl Plan {
    fn new(model: &CausalLm, slots: &SlotCache, keys: usize) -> Self {
        let c = model.config();
        let rep = c.num_attention_heads / c.num_key_value_heads;
        let batch = slots.rows();
        // The score kernel's regime: `gemm`'s horizontal kernel for m·n ≤ 256.
        let horizontal = |n: usize| rep * n <= 256;
        let together_ok = (2..=64).contains(&rep) && c.head_dim <= 64;
        let alone: Vec<Option<usize>> = (0..batch)
            .map(|r| {
                let own = slots.len(r) + 1;
                (!together_ok || horizontal(own) != horizontal(keys)).then_some(own)
            })
            .collect();
        let mask = alone.iter().any(Option::is_none).then(|| {
            let mut values = Vec::with_capacity(batch * keys);
            for r in 0..batch {
                let own = slots.len(r) + 1;
                values.extend((0..keys).map(|j| if j < own { 0.0f32 } else { f32::NEG_INFINITY }));
            }
            Tensor::from_data(
                TensorData::new(values, [batch, 1, 1, 1, keys]),
                &model.device(),
            )
        });
        Self { keys, mask, alone }
    }
}

/// [`Attention::forward`] for one new token per row, over the slot cache's layer `layer`.
fn attention(
    attn: &Attention,
    x: Tensor<3>,
    angles: &RopeAngles,
    slots: &mut SlotCache,
    plan: &Plan,
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
    slots.write(layer, &k, &v);
    drop((k, v));

    // `[batch, kv_heads, rep, dim]` either way.
    let together = plan.mask.as_ref().map(|mask| {
        let (keys, values) = slots.view(layer, batch, plan.keys);
        attend(q.clone(), keys, values, Some(mask), rep)
    });
    let out = if plan.alone.iter().all(Option::is_none) {
        together.expect("some row attends with the batch")
    } else {
        let pieces: Vec<Tensor<4>> = plan
            .alone
            .iter()
            .enumerate()
            .map(|(r, alone)| match (alone, &together) {
                (Some(own), _) => {
                    let (keys, values) = slots.view(layer, batch, *own);
                    attend(
                        q.clone().narrow(0, r, 1),
                        keys.narrow(0, r, 1),
                        values.narrow(0, r, 1),
                        None,
                        rep,
                    )
                }
                (None, Some(together)) => together.clone().narrow(0, r, 1),
                (None, None) => unreachable!("a row attending with the batch implies a mask"),
            })
            .collect();
        Tensor::cat(pieces, 0)
    };
    let out = out
        .reshape([batch, heads, seq, dim])
        .swap_dims(1, 2)
        .reshape([batch, seq, heads * dim]);
    project(&attn.o_proj, lora.and_then(|l| l.o_proj.as_ref()), out)
}
