//! The engine's KV cache: one preallocated buffer per layer holding every running sequence, a
//! row ("slot") each, written in place.
//!
//! Each layer keeps keys and values `[slots, kv_heads, capacity, head_dim]`; slot `i` holds the
//! `i`-th running sequence, its `len` cached positions first (right padding: what lies beyond
//! is masked out, whatever it holds). A decode step writes one position per slot with
//! `slice_assign`, which flex performs in place when nothing else holds the buffer — so a step
//! costs `O(1)` cache traffic per row instead of the `O(len)` copy of appending by
//! concatenation — and attends over the narrowed view of the first `rows` slots, no copy.
//!
//! Slots stay dense: a leaving sequence's slot receives the last slot's contents (one row
//! copy), so slot `i` is always `running[i]`. Capacity grows by half (in blocks of 256 positions)
//! when a sequence needs more (one copy of the buffers); it never shrinks while the engine runs.

use burn::tensor::{Device, Tensor};

use crate::cache::LayerCache;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};

/// Keys and values of all running sequences (see the module documentation).
pub(crate) struct SlotCache {
    /// Per layer; `None` only while a buffer is being rewritten.
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Cached positions of each used slot.
    lens: Vec<usize>,
    slots: usize,
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
    device: Device,
}

impl SlotCache {
    /// An empty cache of `slots` rows for a model of shape `config`; buffers are allocated when
    /// the first sequence arrives.
    pub(crate) fn new(config: &ModelConfig, slots: usize, device: &Device) -> Self {
        Self {
            layers: Vec::with_capacity(config.num_hidden_layers),
            lens: Vec::with_capacity(slots),
            slots,
            capacity: 0,
            kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            device: device.clone(),
        }
    }

    /// Used slots.
    pub(crate) fn rows(&self) -> usize {
        self.lens.len()
    }

    /// Cached positions of slot `slot`.
    pub(crate) fn len(&self, slot: usize) -> usize {
        self.lens[slot]
    }

    /// Make room for `positions` positions per slot.
    pub(crate) fn reserve(&mut self, positions: usize, num_layers: usize) {
        if positions <= self.capacity && !self.layers.is_empty() {
            return;
        }
        // Growth by half at least (so copies stay rare), in whole blocks of 256 positions
        // (so memory stays close to what the longest sequence needs).
        let capacity = positions
            .max(self.capacity + self.capacity / 2)
            .div_ceil(256)
            * 256;
        let shape = [self.slots, self.kv_heads, capacity, self.head_dim];
        let old = std::mem::take(&mut self.layers);
        let old_capacity = self.capacity;
        for layer in 0..num_layers {
            let mut k = Tensor::<4>::zeros(shape, &self.device);
            let mut v = Tensor::<4>::zeros(shape, &self.device);
            if let Some(Some((old_k, old_v))) = old.get(layer)
                && old_capacity > 0
            {
                let ranges = [
                    0..self.slots,
                    0..self.kv_heads,
                    0..old_capacity,
                    0..self.head_dim,
                ];
                k = k.slice_assign(ranges.clone(), old_k.clone());
                v = v.slice_assign(ranges, old_v.clone());
            }
            self.layers.push(Some((k, v)));
        }
        self.capacity = capacity;
    }

    /// Put a prefilled sequence (its per-layer caches, `[1, kv_heads, len, head_dim]`) into the
    /// next free slot, and return the slot. Room for one more position is reserved.
    pub(crate) fn insert(&mut self, caches: &[LayerCache]) -> Result<usize> {
        if self.rows() == self.slots {
            return Err(ModelError::Engine("no free slot in the KV cache".into()));
        }
        let len = caches
            .first()
            .and_then(LayerCache::tensors)
            .map_or(0, |(k, _)| k.dims()[2]);
        self.reserve(len + 1, caches.len());
        let slot = self.rows();
        for (layer, cache) in self.layers.iter_mut().zip(caches) {
            let Some((k, v)) = cache.tensors() else {
                return Err(ModelError::Engine("a prefilled layer has no cache".into()));
            };
            let ranges = [slot..slot + 1, 0..self.kv_heads, 0..len, 0..self.head_dim];
            let (bk, bv) = layer.take().expect("buffers are allocated by reserve");
            *layer = Some((
                bk.slice_assign(ranges.clone(), k.clone()),
                bv.slice_assign(ranges, v.clone()),
            ));
        }
        self.lens.push(len);
        Ok(slot)
    }

    /// Write the new position of every used slot in layer `layer`: `k` and `v` are
    /// `[rows, kv_heads, 1, head_dim]`, row `i` going to slot `i` at position `len(i)`.
    /// [`SlotCache::advance`] then counts the positions once all layers are written.
    pub(crate) fn write(&mut self, layer: usize, k: &Tensor<4>, v: &Tensor<4>) {
        let (mut bk, mut bv) = self.layers[layer]
            .take()
            .expect("buffers are allocated by reserve");
        for (slot, &len) in self.lens.iter().enumerate() {
            let ranges = [
                slot..slot + 1,
                0..self.kv_heads,
                len..len + 1,
                0..self.head_dim,
            ];
            bk = bk.slice_assign(ranges.clone(), k.clone().narrow(0, slot, 1));
            bv = bv.slice_assign(ranges, v.clone().narrow(0, slot, 1));
        }
        self.layers[layer] = Some((bk, bv));
    }

    /// Count the position written by the last [`SlotCache::write`] of every layer.
    pub(crate) fn advance(&mut self) {
        for len in &mut self.lens {
            *len += 1;
        }
    }

    /// Keys and values of layer `layer` for the first `rows` slots and `keys` positions: views
    /// `[rows, kv_heads, keys, head_dim]` of the buffers (drop them before the next write, so
    /// that it stays in place).
    pub(crate) fn view(&self, layer: usize, rows: usize, keys: usize) -> (Tensor<4>, Tensor<4>) {
        let (k, v) = self.layers[layer]
            .as_ref()
            .expect("buffers are allocated by reserve");
        (
            k.clone().narrow(0, 0, rows).narrow(2, 0, keys),
            v.clone().narrow(0, 0, rows).narrow(2, 0, keys),
        )
    }

    /// Free slot `slot`: the last slot moves into it (callers mirror this with
    /// `Vec::swap_remove`).
    pub(crate) fn remove(&mut self, slot: usize) {
        let last = self.rows() - 1;
        if slot != last {
            let len = self.lens[last];
            for layer in &mut self.layers {
                let (bk, bv) = layer.take().expect("buffers are allocated by reserve");
                // Copy the row out first (an exact copy), so that the buffer is held once again
                // when it is written.
                let row_k = bk
                    .clone()
                    .narrow(0, last, 1)
                    .narrow(2, 0, len)
                    .mul_scalar(1.0);
                let row_v = bv
                    .clone()
                    .narrow(0, last, 1)
                    .narrow(2, 0, len)
                    .mul_scalar(1.0);
                let ranges = [slot..slot + 1, 0..self.kv_heads, 0..len, 0..self.head_dim];
                *layer = Some((
                    bk.slice_assign(ranges.clone(), row_k),
                    bv.slice_assign(ranges, row_v),
                ));
            }
        }
        self.lens.swap_remove(slot);
    }
}
