//! Per-batch inputs of a forward pass besides the token ids: which tokens are padding, and
//! explicit position ids.
//!
//! Both are host-side: batches are assembled on the host anyway, and the additive attention mask
//! built from them is computed there once per forward and shared by all layers.

use crate::error::{ModelError, Result};

/// Which tokens of a `[batch, seq]` block are real (`true`) and which are padding (`false`).
///
/// Left padding (prompts aligned at their end) is what batched generation uses; right padding
/// (sequences aligned at their start) is what training batches use. Any pattern is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttentionMask {
    batch: usize,
    seq: usize,
    valid: Vec<bool>,
}

impl AttentionMask {
    /// A mask from row-major flags (`valid.len() == batch · seq`).
    pub fn new(batch: usize, seq: usize, valid: Vec<bool>) -> Result<Self> {
        if valid.len() != batch * seq {
            return Err(ModelError::InvalidInput(format!(
                "attention mask has {} flags, expected batch {batch} × seq {seq}",
                valid.len()
            )));
        }
        Ok(Self { batch, seq, valid })
    }

    /// A mask from one row of flags per sequence (all rows the same length).
    pub fn from_rows(rows: &[Vec<bool>]) -> Result<Self> {
        let seq = rows.first().map_or(0, Vec::len);
        if rows.iter().any(|r| r.len() != seq) {
            return Err(ModelError::InvalidInput(
                "attention mask rows have different lengths".into(),
            ));
        }
        Self::new(rows.len(), seq, rows.concat())
    }

    /// Rows of `seq` slots whose last `lengths[b]` slots are real.
    pub fn left_padded(lengths: &[usize], seq: usize) -> Result<Self> {
        Self::padded(lengths, seq, true)
    }

    /// Rows of `seq` slots whose first `lengths[b]` slots are real.
    pub fn right_padded(lengths: &[usize], seq: usize) -> Result<Self> {
        Self::padded(lengths, seq, false)
    }

    fn padded(lengths: &[usize], seq: usize, left: bool) -> Result<Self> {
        let mut valid = Vec::with_capacity(lengths.len() * seq);
        for &len in lengths {
            if len > seq {
                return Err(ModelError::InvalidInput(format!(
                    "sequence length {len} exceeds the padded length {seq}"
                )));
            }
            let pad = seq - len;
            valid.extend((0..seq).map(|i| if left { i >= pad } else { i < len }));
        }
        Self::new(lengths.len(), seq, valid)
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Sequence length.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// The flags of row `b`.
    pub fn row(&self, b: usize) -> &[bool] {
        &self.valid[b * self.seq..(b + 1) * self.seq]
    }
}

/// Optional inputs of [`crate::CausalLm::forward_with`].
#[derive(Debug, Clone, Default)]
pub struct ForwardOptions {
    /// Padding of the new tokens; `None` means all are real.
    pub attention_mask: Option<AttentionMask>,
    /// Position ids of the new tokens, row-major `[batch · seq]`; `None` numbers the real tokens
    /// of each row consecutively, continuing from the cache. Explicit ids let packed samples
    /// restart at 0.
    pub position_ids: Option<Vec<i64>>,
    /// Sample ids of packed rows, row-major `[batch · seq]`: a token attends only to earlier
    /// tokens with the same id, so samples packed into one row do not see each other. Only
    /// without a KV cache (packing is for training and scoring).
    pub segment_ids: Option<Vec<u32>>,
}
