//! Batched autoregressive generation with a KV cache.
//!
//! Prompts are left-padded to a common length and prefilled in one forward pass; each step then
//! feeds one token per row. Rows that finished keep feeding a padding token marked invalid, so
//! they never influence the others. Sampling runs on the host over the last position's logits:
//! greedy, or temperature with nucleus (top-p) filtering from a seeded ChaCha stream per row, so
//! a row's output depends on its seed and row index only, never on thread timing.
//!
//! # FLOPs estimate
//!
//! [`Generation::flops`] counts multiply-adds as 2 FLOPs and covers the work actually issued,
//! padding included:
//! - per token processed by the decoder (every prompt slot, padding included, and every fed-back
//!   token): `2 · P_layers` for the projection matrices, where `P_layers` is the layers' matrix
//!   parameters (`ModelConfig::matmul_params` minus the head), plus `2 · r · (d_in + d_out)`
//!   for each LoRA branch;
//! - per attention query: `4 · L · H · d_head · K` (scores `QKᵀ` and the weighted sum `PV`, `L`
//!   layers, `H` query heads), where `K` is the number of key slots it is scored against: the
//!   whole padded prompt in prefill, the cache length in decode;
//! - per logits row (one per row per step): `2 · V · d` for the LM head.
//!
//! Not counted: embeddings (a gather), norms, rotary embeddings, softmax and sampling, all
//! `O(d)` or `O(K)` per token.

use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::cache::KvCache;
use crate::error::{ModelError, Result};
use crate::input::{AttentionMask, ForwardOptions};
use crate::lora::LoraTarget;
use crate::model::CausalLm;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    /// The most likely token (the lowest id among ties).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the smallest set of most likely
    /// tokens whose probability reaches `top_p`.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Nucleus mass in (0, 1]; 1 keeps every token.
        top_p: f32,
        /// Seed of the per-row random streams.
        seed: u64,
    },
}

/// Options of [`generate`].
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Most tokens to generate per prompt (stop tokens included).
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// Generation of a row ends when it produces one of these (it is not part of the output).
    pub stop_token_ids: Vec<u32>,
    /// Generation of a row ends when its decoded text contains one of these (needs a
    /// detokenizer; the text is cut before it).
    pub stop_strings: Vec<String>,
    /// Token fed in padding slots (any valid id: padding is masked out).
    pub pad_token_id: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            sampling: Sampling::Greedy,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            pad_token_id: 0,
        }
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    /// It produced this stop token.
    StopToken(u32),
    /// Its text came to contain this stop string.
    StopString(String),
    /// It reached `max_new_tokens`.
    Length,
}

/// The output for one prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceOutput {
    /// Generated ids, without the stop token; with a stop string, up to the token that
    /// completed it.
    pub ids: Vec<u32>,
    /// Decoded text (cut before a stop string), when a detokenizer was given.
    pub text: Option<String>,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated, a stop token included.
    pub generated_tokens: usize,
    /// Why generation ended.
    pub finish_reason: FinishReason,
}

/// The result of [`generate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// One output per prompt, in order.
    pub sequences: Vec<SequenceOutput>,
    /// Prompt tokens over all rows (padding excluded).
    pub prompt_tokens: usize,
    /// Generated tokens over all rows.
    pub generated_tokens: usize,
    /// Estimated FLOPs of the whole call (see the module documentation).
    pub flops: u64,
}

/// Turns generated token ids into text (for stop strings and [`SequenceOutput::text`]).
pub type Detokenize<'a> = &'a dyn Fn(&[u32]) -> String;

/// Generate continuations of `prompts` (token ids) with `model`.
///
/// `detokenize` turns a row's generated ids into text; it is needed for stop strings and fills
/// [`SequenceOutput::text`]. Keeping it a closure keeps this module independent of any one
/// tokenizer.
pub fn generate(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    detokenize: Option<Detokenize<'_>>,
) -> Result<Generation> {
    check_request(model, prompts, options, detokenize.is_some())?;
    let vocab = model.config().vocab_size;

    let batch = prompts.len();
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let flops = FlopCounter::new(model);
    let mut total_flops = 0u64;
    let mut rngs: Vec<ChaCha8Rng> = (0..batch)
        .map(|row| {
            let seed = match options.sampling {
                Sampling::Sample { seed, .. } => seed,
                Sampling::Greedy => 0,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(row as u64);
            rng
        })
        .collect();

    // Prefill: left-padded prompts, logits of the last slot only.
    let mut ids = Vec::with_capacity(batch * width);
    for prompt in prompts {
        ids.extend(std::iter::repeat_n(
            options.pad_token_id as i64,
            width - prompt.len(),
        ));
        ids.extend(prompt.iter().map(|&t| i64::from(t)));
    }
    let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let mut cache = KvCache::new(model.config().num_hidden_layers);
    let mut logits = last_logits(
        model,
        ids,
        [batch, width],
        AttentionMask::left_padded(&lengths, width)?,
        &mut cache,
    )?;
    total_flops += flops.forward(batch * width, width) + flops.head(batch);

    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); batch];
    let mut finished: Vec<Option<FinishReason>> = vec![None; batch];
    let mut texts: Vec<Option<String>> = vec![None; batch];
    for step in 0..options.max_new_tokens {
        for row in 0..batch {
            if finished[row].is_some() {
                continue;
            }
            let row_logits = &logits[row * vocab..(row + 1) * vocab];
            let token = choose(row_logits, options.sampling, &mut rngs[row]);
            outputs[row].push(token);
            if options.stop_token_ids.contains(&token) {
                finished[row] = Some(FinishReason::StopToken(token));
                continue;
            }
            if let Some(detok) = detokenize
                && !options.stop_strings.is_empty()
            {
                let text = detok(&outputs[row]);
                let hit = options
                    .stop_strings
                    .iter()
                    .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
                    .min_by_key(|(at, _)| *at);
                if let Some((at, stop)) = hit {
                    texts[row] = Some(text[..at].to_string());
                    finished[row] = Some(FinishReason::StopString(stop.clone()));
                }
            }
        }
        if step + 1 == options.max_new_tokens || finished.iter().all(Option::is_some) {
            break;
        }
        // Decode: one token per row; finished rows feed masked padding.
        let mut next = Vec::with_capacity(batch);
        let mut valid = Vec::with_capacity(batch);
        for row in 0..batch {
            match (&finished[row], outputs[row].last()) {
                (None, Some(&token)) => {
                    next.push(i64::from(token));
                    valid.push(true);
                }
                _ => {
                    next.push(i64::from(options.pad_token_id));
                    valid.push(false);
                }
            }
        }
        let keys = cache.len() + 1;
        logits = last_logits(
            model,
            next,
            [batch, 1],
            AttentionMask::new(batch, 1, valid)?,
            &mut cache,
        )?;
        total_flops += flops.forward(batch, keys) + flops.head(batch);
    }

    let sequences: Vec<SequenceOutput> = (0..batch)
        .map(|row| {
            let finish = finished[row].clone().unwrap_or(FinishReason::Length);
            let mut ids = outputs[row].clone();
            let generated_tokens = ids.len();
            if let FinishReason::StopToken(_) = finish {
                ids.pop();
            }
            let text = match (&texts[row], detokenize) {
                (Some(text), _) => Some(text.clone()),
                (None, Some(detok)) => Some(detok(&ids)),
                (None, None) => None,
            };
            SequenceOutput {
                ids,
                text,
                prompt_tokens: prompts[row].len(),
                generated_tokens,
                finish_reason: finish,
            }
        })
        .collect();
    Ok(Generation {
        prompt_tokens: sequences.iter().map(|s| s.prompt_tokens).sum(),
        generated_tokens: sequences.iter().map(|s| s.generated_tokens).sum(),
        sequences,
        flops: total_flops,
    })
}

/// Run `ids` through the model with the cache and return the last slot's logits, `[batch · V]`.
pub(crate) fn last_logits(
    model: &CausalLm,
    ids: Vec<i64>,
    shape: [usize; 2],
    mask: AttentionMask,
    cache: &mut KvCache,
) -> Result<Vec<f32>> {
    let [batch, seq] = shape;
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &model.device());
    let options = ForwardOptions {
        attention_mask: Some(mask),
        ..ForwardOptions::default()
    };
    let hidden = model.hidden_states(ids, &options, Some(cache))?;
    let last = hidden.narrow(1, seq - 1, 1);
    let logits = model.logits(last);
    let vocab = logits.dims()[2];
    let values = logits
        .reshape([batch * vocab])
        .try_into_vec_as::<f32>()
        .map_err(|e| ModelError::TensorRead(e.to_string()))?;
    Ok(values)
}

/// The checks of [`generate`] on its inputs, shared with the batching engine so that both refuse
/// the same requests with the same errors.
pub(crate) fn check_request(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    options: &GenerateOptions,
    has_detokenizer: bool,
) -> Result<()> {
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ModelError::InvalidInput(
            "generation needs at least one prompt and no empty prompt".into(),
        ));
    }
    if !options.stop_strings.is_empty() && !has_detokenizer {
        return Err(ModelError::InvalidInput(
            "stop strings need a detokenizer".into(),
        ));
    }
    if let Sampling::Sample {
        temperature, top_p, ..
    } = options.sampling
        && (temperature.is_nan()
            || temperature <= 0.0
            || top_p.is_nan()
            || top_p <= 0.0
            || top_p > 1.0)
    {
        return Err(ModelError::InvalidInput(format!(
            "temperature must be > 0 and top_p in (0, 1], got {temperature} and {top_p}"
        )));
    }
    let vocab = model.config().vocab_size;
    if let Some(bad) = prompts.iter().flatten().find(|&&t| t as usize >= vocab) {
        return Err(ModelError::InvalidInput(format!(
            "token id {bad} is outside the vocabulary of {vocab}"
        )));
    }

    Ok(())
}

/// Pick a token from one row of logits.
pub(crate) fn choose(logits: &[f32], sampling: Sampling, rng: &mut ChaCha8Rng) -> u32 {
    match sampling {
        Sampling::Greedy => argmax(logits),
        Sampling::Sample {
            temperature, top_p, ..
        } => sample_top_p(logits, temperature, top_p, rng.random::<f64>()),
    }
}

/// Index of the largest logit, the lowest one among ties; NaN never wins.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] || logits[best].is_nan() {
            best = i;
        }
    }
    best as u32
}

/// Sample with temperature and nucleus filtering, given a uniform draw `u` in `[0, 1)`.
pub fn sample_top_p(logits: &[f32], temperature: f32, top_p: f32, u: f64) -> u32 {
    let t = f64::from(temperature);
    let max = logits
        .iter()
        .copied()
        .filter(|x| !x.is_nan())
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let p = if x.is_nan() {
                0.0
            } else {
                ((f64::from(x) - f64::from(max)) / t).exp()
            };
            (i, p)
        })
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    // Most likely first; ties by lower id, so the order (and the draw) is deterministic.
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for &(_, p) in &probs {
        kept += 1;
        mass += p / total;
        if mass >= f64::from(top_p) {
            break;
        }
    }
    let nucleus = &probs[..kept];
    let nucleus_total: f64 = nucleus.iter().map(|(_, p)| p).sum();
    let target = u * nucleus_total;
    let mut acc = 0.0;
    for &(i, p) in nucleus {
        acc += p;
        if target < acc {
            return i as u32;
        }
    }
    nucleus[kept - 1].0 as u32
}

/// The FLOPs formula of the module documentation, for one model.
pub(crate) struct FlopCounter {
    per_token: u64,
    per_query_key: u64,
    per_logits_row: u64,
}

impl FlopCounter {
    pub(crate) fn new(model: &CausalLm) -> Self {
        let c = model.config();
        let head = (c.vocab_size * c.hidden_size) as u64;
        let mut per_token = 2 * (c.matmul_params() as u64 - head);
        if let Some(adapter) = model.adapter() {
            for layer in &adapter.layers {
                for target in LoraTarget::ALL {
                    if let Some(branch) = layer.branch(target) {
                        let (r, d_in, d_out) = branch.dims();
                        per_token += 2 * (r * (d_in + d_out)) as u64;
                    }
                }
            }
        }
        Self {
            per_token,
            per_query_key: 4 * (c.num_hidden_layers * c.q_dim()) as u64,
            per_logits_row: 2 * head,
        }
    }

    /// `tokens` decoder tokens each scored against `keys` key slots.
    pub(crate) fn forward(&self, tokens: usize, keys: usize) -> u64 {
        tokens as u64 * (self.per_token + self.per_query_key * keys as u64)
    }

    /// `rows` logits rows.
    pub(crate) fn head(&self, rows: usize) -> u64 {
        rows as u64 * self.per_logits_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_prefers_lowest_tie() {
        assert_eq!(argmax(&[0.0, 2.0, 2.0, 1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
    }

    #[test]
    fn top_p_keeps_the_nucleus() {
        // probs ≈ [0.665, 0.245, 0.090]: top_p 0.5 keeps only the first token.
        let logits = [2.0, 1.0, 0.0];
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(sample_top_p(&logits, 1.0, 0.5, u), 0);
        }
        // top_p 0.8 keeps two tokens: u past 0.665/0.91 picks the second.
        assert_eq!(sample_top_p(&logits, 1.0, 0.8, 0.9), 1);
        // top_p 1 keeps all; u close to 1 picks the last.
        assert_eq!(sample_top_p(&logits, 1.0, 1.0, 0.999), 2);
        // A tiny temperature is greedy.
        assert_eq!(sample_top_p(&logits, 1e-3, 1.0, 0.999), 0);
    }
}
