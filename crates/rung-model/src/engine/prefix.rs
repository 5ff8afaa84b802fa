//! Prefix caching: the keys and values of recent prompts, reused by later prompts that start
//! with the same tokens (a role's system prompt, and an episode's conversation so far, which
//! every later turn of that episode repeats), so that only the new tail is prefilled.
//!
//! # Bit-identical to prefilling the whole prompt
//!
//! A reused prefix is always a multiple of [`ATTENTION_CHUNK`] tokens long. Prefill attends in
//! blocks of that many queries, each against the keys up to its own end, so with the prefix on
//! a block boundary every block of the tail sees exactly the keys, masks and shapes it sees in
//! a whole-prompt prefill, and every block of the prefix is the same computation whatever
//! follows it (a causal model's keys and values at a position depend only on the tokens up to
//! it). Projections are row-wise. Hence the tail's logits, and its keys and values, are bit for
//! bit those of prefilling the whole prompt; the engine's tests check it.
//!
//! Only prefill results are stored: keys and values written by decode steps come from other
//! kernels, so a prompt repeating generated text reuses the cache only up to where its own
//! last prefill ended.

use std::collections::VecDeque;

use burn::tensor::Tensor;

use crate::attention::ATTENTION_CHUNK;
use crate::cache::{KvCache, LayerCache};

/// A cached prompt: its ids and every layer's keys and values `[1, kv_heads, len, head_dim]`.
struct Entry {
    ids: Vec<u32>,
    layers: Vec<(Tensor<4>, Tensor<4>)>,
}

/// The most recently used prompts (see the module documentation).
pub(crate) struct PrefixCache {
    entries: VecDeque<Entry>,
    capacity: usize,
}

impl PrefixCache {
    /// A cache of at most `capacity` prompts (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// The longest reusable prefix of `prompt`: a cache holding its first `len` positions
    /// (`len` a positive multiple of [`ATTENTION_CHUNK`], shorter than the prompt, so at least
    /// one token is left to prefill), or `None`.
    pub(crate) fn lookup(&mut self, prompt: &[u32]) -> Option<(usize, KvCache)> {
        let usable = |entry: &Entry| {
            let common = entry
                .ids
                .iter()
                .zip(prompt)
                .take_while(|(a, b)| a == b)
                .count();
            let len = common.min(prompt.len() - 1);
            len - len % ATTENTION_CHUNK
        };
        let (at, len) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, usable(e)))
            .max_by_key(|&(i, len)| (len, i))?;
        if len == 0 {
            return None;
        }
        // Most recently used last.
        let entry = self.entries.remove(at).expect("found above");
        let layers = entry
            .layers
            .iter()
            .map(|(k, v)| {
                LayerCache::from_tensors(k.clone().narrow(2, 0, len), v.clone().narrow(2, 0, len))
            })
            .collect();
        self.entries.push_back(entry);
        let cache = KvCache {
            layers,
            key_valid: vec![vec![true; len]],
            next_positions: vec![len as i64],
        };
        Some((len, cache))
    }

    /// Remember the prefilled `prompt` with its `cache` (one sequence, no padding). A cached
    /// prompt that this one extends is dropped: the new entry serves everything it served.
    pub(crate) fn store(&mut self, prompt: &[u32], cache: &KvCache) {
        if self.capacity == 0 || prompt.len() < ATTENTION_CHUNK {
            return;
        }
        let Some(layers) = cache
            .layers
            .iter()
            .map(|l| l.tensors().cloned())
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        self.entries
            .retain(|e| !(e.ids.len() <= prompt.len() && prompt.starts_with(&e.ids)));
        if self.entries.iter().any(|e| e.ids.starts_with(prompt)) {
            // A longer cached prompt already covers this one.
            return;
        }
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            ids: prompt.to_vec(),
            layers,
        });
    }
}
