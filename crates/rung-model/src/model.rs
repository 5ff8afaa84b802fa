//! The decoder-only causal language model (Qwen2 / Llama architecture).

use burn::module::{Module, Param, ParamGroup};
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig,
};
use burn::tensor::module::linear;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::attention::Attention;
use crate::cache::KvCache;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::input::ForwardOptions;
use crate::lora::{LayerLora, LoraAdapter, LoraTarget};
use crate::mlp::Mlp;
use crate::rope::RotaryEmbedding;

/// Standard deviation of the normal initialisation of from-scratch models (HF's
/// `initializer_range` default for Qwen2 and Llama).
pub const INIT_STD: f64 = 0.02;

/// One pre-norm decoder layer: `h = x + attn(norm(x))`, `out = h + mlp(norm(h))`.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// Self-attention.
    pub self_attn: Attention,
    /// SwiGLU MLP.
    pub mlp: Mlp,
    /// Norm before attention.
    pub input_layernorm: RmsNorm,
    /// Norm before the MLP.
    pub post_attention_layernorm: RmsNorm,
}

/// A causal LM: token embedding, decoder layers, final norm, LM head (tied to the embedding or
/// separate), and optionally one attached LoRA adapter.
///
/// Field names follow HF's module names so that HF weights map onto module paths by dropping
/// the `model.` prefix.
#[derive(Module, Debug)]
pub struct CausalLm {
    /// `[vocab, hidden]` token embedding.
    pub embed_tokens: Embedding,
    /// The decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
    /// Untied LM head (`None` when the embedding is reused).
    pub lm_head: Option<Linear>,
    rope: RotaryEmbedding,
    adapter: Option<LoraAdapter>,
    #[module(skip)]
    config: ModelConfig,
    /// Names of the adapters merged into the base weights, innermost first.
    #[module(skip)]
    merged: Vec<String>,
}

impl CausalLm {
    /// A model of shape `config` on `device` with fresh weights (`N(0, 0.02)` matrices, unit
    /// norms). Parameters are initialised lazily, so building a model only to load a checkpoint
    /// into it never draws the random weights.
    pub fn new(config: &ModelConfig, device: &Device) -> Result<Self> {
        config.validate()?;
        let init = Initializer::Normal {
            mean: 0.0,
            std: INIT_STD,
        };
        let norm = || {
            RmsNormConfig::new(config.hidden_size)
                .with_epsilon(config.rms_norm_eps)
                .init(device)
        };
        let layers = (0..config.num_hidden_layers)
            .map(|_| DecoderLayer {
                self_attn: Attention::new(config, &init, device),
                mlp: Mlp::new(config, &init, device),
                input_layernorm: norm(),
                post_attention_layernorm: norm(),
            })
            .collect();
        let lm_head = (!config.tie_word_embeddings).then(|| {
            LinearConfig::new(config.hidden_size, config.vocab_size)
                .with_bias(false)
                .with_initializer(init.clone())
                .init(device)
        });
        Ok(Self {
            embed_tokens: EmbeddingConfig::new(config.vocab_size, config.hidden_size)
                .with_initializer(init.clone())
                .init(device),
            layers,
            norm: norm(),
            lm_head,
            rope: RotaryEmbedding::new(config, device),
            adapter: None,
            config: config.clone(),
            merged: Vec::new(),
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device of the token embedding (where inputs must be created).
    pub fn device(&self) -> Device {
        self.embed_tokens.weight.lazy_device()
    }

    /// Logits `[batch, seq, vocab]` for token ids `[batch, seq]`: every token real, positions
    /// `0..seq`, no cache. Ids must be below `vocab_size` (they index the embedding; callers
    /// taking ids from users check them, as [`crate::generate()`] does).
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = ids.dims();
        let positions: Vec<i64> = (0..batch).flat_map(|_| 0..seq as i64).collect();
        let positions = self.int_tensor(positions, [batch, seq]);
        let mask = (seq > 1).then(|| self.mask_tensor(&causal_mask(seq, 0, None), 1, seq, seq));
        let hidden = self.run(ids, positions, mask, None);
        self.logits(hidden)
    }

    /// Logits `[batch, seq, vocab]` with padding, explicit positions and/or a KV cache.
    ///
    /// With a cache, `ids` are the new tokens only; their keys and values are appended to the
    /// cache, and attention covers everything cached (padding excluded).
    pub fn forward_with(
        &self,
        ids: Tensor<2, Int>,
        options: &ForwardOptions,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>> {
        Ok(self.logits(self.hidden_states(ids, options, cache)?))
    }

    /// Final hidden states `[batch, seq, hidden]` (after the last norm, before the LM head), for
    /// callers that only need some positions' logits or compute the loss in chunks.
    pub fn hidden_states(
        &self,
        ids: Tensor<2, Int>,
        options: &ForwardOptions,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor<3>> {
        let [batch, seq] = ids.dims();
        if seq == 0 {
            return Err(ModelError::InvalidInput("empty sequence".into()));
        }
        if let Some(mask) = &options.attention_mask
            && (mask.batch(), mask.seq()) != (batch, seq)
        {
            return Err(ModelError::InvalidInput(format!(
                "attention mask is [{}, {}] but ids are [{batch}, {seq}]",
                mask.batch(),
                mask.seq()
            )));
        }
        if let Some(positions) = &options.position_ids
            && positions.len() != batch * seq
        {
            return Err(ModelError::InvalidInput(format!(
                "{} position ids for ids of shape [{batch}, {seq}]",
                positions.len()
            )));
        }
        if let Some(segments) = &options.segment_ids {
            if segments.len() != batch * seq {
                return Err(ModelError::InvalidInput(format!(
                    "{} segment ids for ids of shape [{batch}, {seq}]",
                    segments.len()
                )));
            }
            if cache.as_ref().is_some_and(|c| !c.is_empty()) {
                return Err(ModelError::InvalidInput(
                    "segment ids (packed samples) cannot continue a KV cache".into(),
                ));
            }
        }
        let mut scratch;
        let cache = match cache {
            Some(cache) => {
                if cache.layers.len() != self.layers.len() {
                    return Err(ModelError::InvalidInput(format!(
                        "KV cache has {} layers, model has {}",
                        cache.layers.len(),
                        self.layers.len()
                    )));
                }
                if let Some(b) = cache.batch()
                    && b != batch
                {
                    return Err(ModelError::InvalidInput(format!(
                        "KV cache holds batch {b}, ids have batch {batch}"
                    )));
                }
                if cache.batch().is_none() {
                    cache.key_valid = vec![Vec::new(); batch];
                    cache.next_positions = vec![0; batch];
                }
                cache
            }
            None => {
                scratch = KvCache::new(0);
                scratch.key_valid = vec![Vec::new(); batch];
                scratch.next_positions = vec![0; batch];
                &mut scratch
            }
        };
        let past = cache.len();

        // Validity of the new tokens, and position ids.
        let row_valid = |b: usize| -> Vec<bool> {
            match &options.attention_mask {
                Some(mask) => mask.row(b).to_vec(),
                None => vec![true; seq],
            }
        };
        let mut positions = Vec::with_capacity(batch * seq);
        for b in 0..batch {
            let valid = row_valid(b);
            let start = cache.next_positions[b];
            match &options.position_ids {
                Some(ids) => {
                    let row = &ids[b * seq..(b + 1) * seq];
                    positions.extend_from_slice(row);
                    let last = row
                        .iter()
                        .zip(&valid)
                        .filter(|(_, v)| **v)
                        .map(|(p, _)| *p)
                        .next_back();
                    if let Some(last) = last {
                        cache.next_positions[b] = last + 1;
                    }
                }
                None => {
                    let mut next = start;
                    for &v in &valid {
                        positions.push(next);
                        if v {
                            next += 1;
                        }
                    }
                    // Padding before the first real token takes position `start`, like a real
                    // token would; its output is never used.
                    cache.next_positions[b] = next;
                }
            }
            cache.key_valid[b].extend(valid);
        }
        let keys = past + seq;
        let all_valid = cache.key_valid.iter().all(|row| row.iter().all(|v| *v));
        let mask = if all_valid && options.segment_ids.is_none() {
            (seq > 1).then(|| self.mask_tensor(&causal_mask(seq, past, None), 1, seq, keys))
        } else {
            let mut flat = Vec::with_capacity(batch * seq * keys);
            for (b, row) in cache.key_valid.iter().enumerate() {
                let mut allowed = causal_mask(seq, past, Some(row));
                if let Some(segments) = &options.segment_ids {
                    // No cache here, so queries and keys are the same `seq` slots.
                    let segments = &segments[b * seq..(b + 1) * seq];
                    for (i, chunk) in allowed.chunks_mut(keys).enumerate() {
                        for (j, a) in chunk.iter_mut().enumerate() {
                            *a &= i == j || segments[i] == segments[j];
                        }
                    }
                }
                flat.extend(allowed);
            }
            Some(self.mask_tensor(&flat, batch, seq, keys))
        };
        let positions = self.int_tensor(positions, [batch, seq]);
        let layer_caches = if cache.layers.is_empty() {
            None
        } else {
            Some(&mut cache.layers)
        };
        Ok(self.run(ids, positions, mask, layer_caches))
    }

    /// Logits `[batch, seq, vocab]` from final hidden states.
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => head.forward(hidden),
            None => linear(hidden, self.embed_tokens.weight.val().transpose(), None),
        }
    }

    fn run(
        &self,
        ids: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Option<Tensor<5>>,
        mut caches: Option<&mut Vec<crate::cache::LayerCache>>,
    ) -> Tensor<3> {
        let angles = self.rope.angles(positions);
        let mut x = self.embed_tokens.forward(ids);
        for (i, layer) in self.layers.iter().enumerate() {
            let lora: Option<&LayerLora> = self.adapter.as_ref().map(|a| &a.layers[i]);
            let cache = caches.as_mut().map(|c| &mut c[i]);
            let h = layer.self_attn.forward(
                layer.input_layernorm.forward(x.clone()),
                &angles,
                mask.as_ref(),
                cache,
                lora.map(|l| &l.self_attn),
            );
            let x_mid = x + h;
            let m = layer.mlp.forward(
                layer.post_attention_layernorm.forward(x_mid.clone()),
                lora.map(|l| &l.mlp),
            );
            x = x_mid + m;
        }
        self.norm.forward(x)
    }

    fn int_tensor(&self, values: Vec<i64>, shape: [usize; 2]) -> Tensor<2, Int> {
        Tensor::from_data(TensorData::new(values, shape), &self.device())
    }

    /// An additive mask `[batch, 1, 1, seq, keys]` from allowed flags.
    fn mask_tensor(&self, allowed: &[bool], batch: usize, seq: usize, keys: usize) -> Tensor<5> {
        let values: Vec<f32> = allowed
            .iter()
            .map(|&a| if a { 0.0 } else { f32::NEG_INFINITY })
            .collect();
        Tensor::from_data(
            TensorData::new(values, [batch, 1, 1, seq, keys]),
            &self.device(),
        )
    }

    /// The rotary embedding, for forward passes assembled outside this module (the batching
    /// engine's decode step).
    pub(crate) fn rope(&self) -> &RotaryEmbedding {
        &self.rope
    }

    /// The attached adapter, if any.
    pub fn adapter(&self) -> Option<&LoraAdapter> {
        self.adapter.as_ref()
    }

    /// Attach `adapter` (the model must have none attached). The base weights are shared, not
    /// copied: attaching to a clone of a base model costs only the adapter's memory.
    pub fn with_adapter(mut self, adapter: LoraAdapter) -> Result<Self> {
        if let Some(existing) = &self.adapter {
            return Err(ModelError::Adapter(format!(
                "adapter `{}` is already attached; detach it first",
                existing.name
            )));
        }
        adapter.check_fits(&self.config)?;
        self.adapter = Some(adapter);
        Ok(self)
    }

    /// Detach and return the adapter, leaving the base model.
    pub fn take_adapter(mut self) -> (Self, Option<LoraAdapter>) {
        let adapter = self.adapter.take();
        (self, adapter)
    }

    /// Names of the adapters merged into the weights (see [`CausalLm::merge_adapter`]).
    pub fn merged_adapters(&self) -> &[String] {
        &self.merged
    }

    /// Fold the attached adapter into the base weights (`W ← W + s·A·B`) and detach it; the
    /// result computes the same function without the adapter's per-forward cost. Returns the
    /// adapter so that [`CausalLm::unmerge_adapter`] can undo the merge.
    pub fn merge_adapter(self) -> Result<(Self, LoraAdapter)> {
        let (mut model, adapter) = self.take_adapter();
        let adapter =
            adapter.ok_or_else(|| ModelError::Adapter("no adapter attached to merge".into()))?;
        model.add_deltas(&adapter, 1.0);
        model.merged.push(adapter.name.clone());
        Ok((model, adapter))
    }

    /// Undo [`CausalLm::merge_adapter`]: subtract the adapter's update from the base weights
    /// and attach it again. The adapter must be the one merged last.
    pub fn unmerge_adapter(mut self, adapter: LoraAdapter) -> Result<Self> {
        match self.merged.last() {
            Some(name) if *name == adapter.name => {}
            last => {
                return Err(ModelError::Adapter(format!(
                    "cannot unmerge `{}`: the last merged adapter is {}",
                    adapter.name,
                    last.map_or("none".to_string(), |n| format!("`{n}`"))
                )));
            }
        }
        adapter.check_fits(&self.config)?;
        self.add_deltas(&adapter, -1.0);
        self.merged.pop();
        self.with_adapter(adapter)
    }

    fn add_deltas(&mut self, adapter: &LoraAdapter, sign: f64) {
        for (layer, lora) in self.layers.iter_mut().zip(&adapter.layers) {
            for target in LoraTarget::ALL {
                let Some(branch) = lora.branch(target) else {
                    continue;
                };
                let delta = branch.delta().detach().mul_scalar(sign);
                let linear = match target {
                    LoraTarget::Q => &mut layer.self_attn.q_proj,
                    LoraTarget::K => &mut layer.self_attn.k_proj,
                    LoraTarget::V => &mut layer.self_attn.v_proj,
                    LoraTarget::O => &mut layer.self_attn.o_proj,
                    LoraTarget::Gate => &mut layer.mlp.gate_proj,
                    LoraTarget::Up => &mut layer.mlp.up_proj,
                    LoraTarget::Down => &mut layer.mlp.down_proj,
                };
                let weight: Param<Tensor<2>> = linear.weight.clone();
                linear.weight = weight.map(|w| w + delta);
            }
        }
    }

    /// Prepare for adapter training: no base parameter requires gradients (so the optimizer
    /// keeps no state for them), every adapter parameter does.
    pub fn freeze_base(self) -> Self {
        let adapter_params = ParamGroup::from_regex(r"^adapter\.")
            .expect("the adapter path pattern is a valid regex");
        self.set_require_grad(false)
            .set_require_grad_group(adapter_params, true)
    }
}

/// Allowed (query, key) pairs of `seq` new queries over `past + seq` keys, row-major: key `j` is
/// visible to query `i` when `j <= past + i` and the key is a real token; a query always sees
/// itself, so a padding query never has an empty softmax row.
fn causal_mask(seq: usize, past: usize, key_valid: Option<&[bool]>) -> Vec<bool> {
    let keys = past + seq;
    let mut out = Vec::with_capacity(seq * keys);
    for i in 0..seq {
        let me = past + i;
        for j in 0..keys {
            let valid = key_valid.is_none_or(|v| v[j]);
            out.push(j == me || (j < me && valid));
        }
    }
    out
}
