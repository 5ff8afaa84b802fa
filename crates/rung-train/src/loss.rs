//! Masked causal-LM cross-entropy.
//!
//! Position `t` predicts token `t+1`; the prediction counts when the *target* token `t+1` has
//! loss mask 1 (it is part of a supervised assistant turn) and is in the same packed sample as
//! `t`. The loss of an optimizer step is
//!
//! ```text
//! loss = Σ_{micro-batches} Σ_{supervised targets} −log p(target) / N_step
//! ```
//!
//! where `N_step` is the number of supervised targets in the whole step (all micro-batches).
//! Every supervised token of the step weighs the same, so splitting a batch into micro-batches
//! changes neither the loss nor the gradient (each micro-batch's backward pass uses the same
//! divisor `N_step`, and the gradients are summed).

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData};
use rung_curriculum::Batch;
use rung_model::{AttentionMask, CausalLm, ForwardOptions};

/// Rows `rows` of a curriculum batch, as one forward pass's inputs.
#[derive(Debug, Clone)]
pub struct MicroBatch {
    /// Rows.
    pub rows: usize,
    /// Padded length.
    pub seq: usize,
    /// Token ids, row-major.
    pub ids: Vec<u32>,
    /// Loss mask, row-major.
    pub mask: Vec<u8>,
    /// Literal mask (copied task-specific values, see `rung_curriculum::literal`), row-major.
    pub literal: Vec<u8>,
    /// Position ids.
    pub positions: Vec<u32>,
    /// Segment ids (0 = padding).
    pub segments: Vec<u32>,
    /// Real tokens per row.
    pub lengths: Vec<usize>,
    /// Whether rows hold packed samples (pass segment ids to attention).
    pub packed: bool,
}

impl MicroBatch {
    /// Split `batch` into micro-batches of at most `micro` rows.
    pub fn split(batch: &Batch, micro: usize, packed: bool) -> Vec<MicroBatch> {
        let s = batch.seq_len;
        (0..batch.rows)
            .step_by(micro)
            .map(|start| {
                let end = (start + micro).min(batch.rows);
                let r = start * s..end * s;
                MicroBatch {
                    rows: end - start,
                    seq: s,
                    ids: batch.input_ids[r.clone()].to_vec(),
                    mask: batch.loss_mask[r.clone()].to_vec(),
                    literal: batch.literal_mask[r.clone()].to_vec(),
                    positions: batch.position_ids[r.clone()].to_vec(),
                    segments: batch.segment_ids[r].to_vec(),
                    lengths: batch.lengths[start..end].to_vec(),
                    packed,
                }
            })
            .collect()
    }

    /// Target weights `[rows, seq-1]`: 1 where target `t+1` is supervised and in `t`'s sample.
    pub fn target_weights(&self) -> Vec<f32> {
        let s = self.seq;
        let mut w = Vec::with_capacity(self.rows * (s - 1));
        for r in 0..self.rows {
            for t in 0..s - 1 {
                let (a, b) = (r * s + t, r * s + t + 1);
                let ok = self.mask[b] == 1
                    && self.segments[a] == self.segments[b]
                    && self.segments[b] != 0;
                w.push(if ok { 1.0 } else { 0.0 });
            }
        }
        w
    }

    /// Supervised targets in this micro-batch.
    pub fn supervised(&self) -> usize {
        self.target_weights().iter().filter(|&&w| w > 0.0).count()
    }

    /// Non-padding tokens.
    pub fn tokens(&self) -> usize {
        self.lengths.iter().sum()
    }
}

/// The result of one micro-batch's forward pass.
pub struct MicroLoss {
    /// `Σ −log p / divisor` as a (differentiable) scalar.
    pub loss: Tensor<1>,
    /// `Σ −log p` over supervised targets, on the host.
    pub loss_sum: f64,
    /// Supervised targets predicted correctly by argmax.
    pub correct: usize,
    /// Supervised targets.
    pub supervised: usize,
    /// Literal targets (supervised targets inside copied literals) predicted correctly.
    pub literal_correct: usize,
    /// Literal targets.
    pub literal: usize,
}

/// The forward inputs of `micro` as tensors: ids `[rows, seq]` and the forward options
/// (right padding, positions, and segment ids when packed).
fn forward_inputs(
    model: &CausalLm,
    micro: &MicroBatch,
) -> anyhow::Result<(Tensor<2, Int>, ForwardOptions)> {
    let (b, s) = (micro.rows, micro.seq);
    let ids: Vec<i64> = micro.ids.iter().map(|&x| i64::from(x)).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, s]), &model.device());
    let options = ForwardOptions {
        attention_mask: Some(AttentionMask::right_padded(&micro.lengths, s)?),
        position_ids: Some(micro.positions.iter().map(|&p| i64::from(p)).collect()),
        segment_ids: micro.packed.then(|| micro.segments.clone()),
    };
    Ok((ids, options))
}

/// The host value of a one-element tensor.
fn scalar(t: Tensor<1>) -> f64 {
    f64::from(
        t.detach()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("scalar")[0],
    )
}

/// Forward `micro` through `model` and compute the masked loss divided by `divisor` (the
/// supervised targets of the whole step).
///
/// Only the supervised rows reach the LM head: the final hidden states `[rows, seq, hidden]`
/// are flattened and the rows whose target is supervised are gathered (`select`, which is
/// differentiable) before the head and the log-softmax. Most positions of a rendered sample
/// (system prompt, instruction, observations, padding) carry no loss, so this skips 65–88% of
/// the head's matmul and of the full-vocabulary softmax, forward and backward. The result equals
/// [`micro_loss_dense`] (the all-positions path) up to float rounding.
pub fn micro_loss(model: &CausalLm, micro: &MicroBatch, divisor: f64) -> anyhow::Result<MicroLoss> {
    let (b, s) = (micro.rows, micro.seq);
    if micro.literal.len() != micro.ids.len() {
        anyhow::bail!(
            "micro-batch has {} ids but {} literal flags",
            micro.ids.len(),
            micro.literal.len()
        );
    }
    let (ids, options) = forward_inputs(model, micro)?;
    let hidden = model.hidden_states(ids, &options, None)?;
    let dim = hidden.dims()[2];
    let weights = micro.target_weights();
    // Row `r*s + t` of the flattened hidden states predicts token `r*s + t + 1`.
    let literal: Vec<bool> = weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0.0)
        .map(|(i, _)| micro.literal[(i / (s - 1)) * s + i % (s - 1) + 1] == 1)
        .collect();
    let (rows, targets): (Vec<i64>, Vec<i64>) = weights
        .iter()
        .enumerate()
        .filter(|(_, w)| **w > 0.0)
        .map(|(i, _)| {
            let (r, t) = (i / (s - 1), i % (s - 1));
            let at = r * s + t;
            (at as i64, i64::from(micro.ids[at + 1]))
        })
        .unzip();
    let supervised = rows.len();
    if supervised == 0 {
        // Nothing to learn here; a zero that still belongs to the graph keeps `backward` valid.
        let loss = hidden.sum().mul_scalar(0.0);
        return Ok(MicroLoss {
            loss,
            loss_sum: 0.0,
            correct: 0,
            supervised: 0,
            literal_correct: 0,
            literal: 0,
        });
    }
    let device = model.device();
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [supervised]), &device);
    let picked = hidden.reshape([b * s, dim]).select(0, index);
    let logits = model.logits(picked.unsqueeze_dim::<3>(0));
    let vocab = logits.dims()[2];
    let logits = logits.reshape([supervised, vocab]);

    let predicted = logits
        .clone()
        .detach()
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("argmax ids");
    let hits: Vec<bool> = predicted
        .iter()
        .zip(&targets)
        .map(|(p, t)| p == t)
        .collect();
    let correct = hits.iter().filter(|&&h| h).count();
    let literal_correct = hits
        .iter()
        .zip(&literal)
        .filter(|(h, l)| **h && **l)
        .count();
    let literal = literal.iter().filter(|&&l| l).count();

    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [supervised, 1]), &device);
    let sum = log_softmax(logits, 1).gather(1, targets).neg().sum();
    let loss_sum = scalar(sum.clone());
    let loss = sum.div_scalar(divisor.max(1.0));
    Ok(MicroLoss {
        loss,
        loss_sum,
        correct,
        supervised,
        literal_correct,
        literal,
    })
}

/// The same loss as [`micro_loss`], computed the straightforward way: logits and log-softmax
/// at every position, then weighted by the target mask. Kept as the reference the
/// supervised-only path is tested against and as the benchmark's "before".
pub fn micro_loss_dense(
    model: &CausalLm,
    micro: &MicroBatch,
    divisor: f64,
) -> anyhow::Result<MicroLoss> {
    let device = model.device();
    let (b, s) = (micro.rows, micro.seq);
    let (ids, options) = forward_inputs(model, micro)?;
    let logits = model.forward_with(ids, &options, None)?;
    let vocab = logits.dims()[2];
    let logits = logits.slice([0..b, 0..s - 1, 0..vocab]);
    let targets: Vec<i64> = (0..b)
        .flat_map(|r| (1..s).map(move |t| (r, t)))
        .map(|(r, t)| i64::from(micro.ids[r * s + t]))
        .collect();
    let targets_host = targets.clone();
    let targets = Tensor::<3, Int>::from_data(TensorData::new(targets, [b, s - 1, 1]), &device);
    let weights_host = micro.target_weights();
    let supervised = weights_host.iter().filter(|&&w| w > 0.0).count();
    let weights = Tensor::<3>::from_data(
        TensorData::new(weights_host.clone(), [b, s - 1, 1]),
        &device,
    );

    let predicted = logits
        .clone()
        .detach()
        .argmax(2)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("argmax ids");
    let hit = |i: usize| weights_host[i] > 0.0 && predicted[i] == targets_host[i];
    let is_literal = |i: usize| micro.literal[(i / (s - 1)) * s + i % (s - 1) + 1] == 1;
    let n = weights_host.len();
    let correct = (0..n).filter(|&i| hit(i)).count();
    let literal_correct = (0..n).filter(|&i| hit(i) && is_literal(i)).count();
    let literal = (0..n)
        .filter(|&i| weights_host[i] > 0.0 && is_literal(i))
        .count();

    let nll = log_softmax(logits, 2).gather(2, targets).neg() * weights;
    let sum = nll.sum();
    let loss_sum = scalar(sum.clone());
    let loss = sum.div_scalar(divisor.max(1.0));
    Ok(MicroLoss {
        loss,
        loss_sum,
        correct,
        supervised,
        literal_correct,
        literal,
    })
}
