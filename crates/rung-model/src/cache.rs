//! The key/value cache of incremental decoding.
//!
//! Besides each layer's keys and values (after rotary embedding, as HF caches them), the cache
//! keeps what the next forward needs to continue a batch of possibly padded rows: which cached
//! slots are real tokens (padding stays masked forever) and each row's next position id.

use burn::tensor::Tensor;

/// Keys and values of one layer: `[batch, kv_heads, cached, head_dim]` each.
#[derive(Debug, Clone, Default)]
pub struct LayerCache {
    kv: Option<(Tensor<4>, Tensor<4>)>,
}

impl LayerCache {
    /// Append new keys and values (`[batch, kv_heads, new, head_dim]`) and return all of them.
    pub fn append(&mut self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = match self.kv.take() {
            Some((old_k, old_v)) => (
                Tensor::cat(vec![old_k, k], 2),
                Tensor::cat(vec![old_v, v], 2),
            ),
            None => (k, v),
        };
        self.kv = Some((k.clone(), v.clone()));
        (k, v)
    }
}

impl LayerCache {
    /// The cached keys and values, if any (for the batching engine, which moves a prefilled
    /// sequence's cache into its own buffers).
    pub(crate) fn tensors(&self) -> Option<&(Tensor<4>, Tensor<4>)> {
        self.kv.as_ref()
    }

    /// A layer cache holding `k` and `v` (`[batch, kv_heads, cached, head_dim]`), for the
    /// batching engine's reuse of a cached prompt prefix.
    pub(crate) fn from_tensors(k: Tensor<4>, v: Tensor<4>) -> Self {
        Self { kv: Some((k, v)) }
    }
}

/// A cache for every layer of one model and one batch.
#[derive(Debug, Clone)]
pub struct KvCache {
    pub(crate) layers: Vec<LayerCache>,
    /// `[batch][cached]`: whether each cached slot holds a real token.
    pub(crate) key_valid: Vec<Vec<bool>>,
    /// Position id the next real token of each row gets.
    pub(crate) next_positions: Vec<i64>,
}

impl KvCache {
    /// An empty cache for a model with `num_layers` layers; the batch size is fixed by the first
    /// forward pass that uses it.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); num_layers],
            key_valid: Vec::new(),
            next_positions: Vec::new(),
        }
    }

    /// Number of cached positions (padding included).
    pub fn len(&self) -> usize {
        self.key_valid.first().map_or(0, Vec::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batch size, once known.
    pub fn batch(&self) -> Option<usize> {
        (!self.key_valid.is_empty()).then_some(self.key_valid.len())
    }

    /// Position id the next token of each row will get.
    pub fn next_positions(&self) -> &[i64] {
        &self.next_positions
    }
}
