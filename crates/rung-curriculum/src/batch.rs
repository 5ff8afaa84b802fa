//! Batches: padding, optional packing, sorting by length and deterministic shuffling.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};

use crate::CurriculumError;
use crate::rng::{Rng, mix};
use crate::sample::Sample;

/// How an epoch's samples become batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchOptions {
    /// Rows (sequences) per batch (≥ 1); the last batch may have fewer.
    pub batch_size: usize,
    /// Pack several samples into each row of at most this many tokens (`None`: one sample per
    /// row). Samples never attend to each other: see [`Batch::segment_ids`].
    pub pack_length: Option<usize>,
    /// Sort samples by length, longest first, before forming rows and batches: less padding,
    /// and first-fit-decreasing packing. With `shuffle`, the samples are shuffled first (so
    /// equal lengths come in random order) and the batches are shuffled after.
    pub sort_by_length: bool,
    /// Shuffle, deterministically for (`seed`, epoch).
    pub shuffle: bool,
    /// Seed of the shuffles.
    pub seed: u64,
    /// Id of padding tokens.
    pub pad_id: u32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            batch_size: 8,
            pack_length: None,
            sort_by_length: false,
            shuffle: true,
            seed: 0,
            pad_id: 0,
        }
    }
}

/// A padded batch, row-major `[rows, seq_len]` (ready for `TensorData::new(v, [rows, seq_len])`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Number of rows.
    pub rows: usize,
    /// Length of every row: the longest row's real tokens.
    pub seq_len: usize,
    /// Token ids; padding is `pad_id`.
    pub input_ids: Vec<u32>,
    /// Loss mask; 0 on padding.
    pub loss_mask: Vec<u8>,
    /// The samples' literal masks ([`Sample::literal_mask`]); 0 on padding.
    pub literal_mask: Vec<u8>,
    /// Position ids, restarting at 0 for every sample of a row; 0 on padding.
    pub position_ids: Vec<u32>,
    /// 1, 2, … for the samples of a row in order, 0 on padding. A token may attend to a key
    /// only in the same non-zero segment, causally ([`Batch::attends`]).
    pub segment_ids: Vec<u32>,
    /// Real (non-padding) tokens of each row; padding is always at the end of a row.
    pub lengths: Vec<usize>,
    /// The samples (indices into the epoch's sample list) of each row, in order.
    pub samples: Vec<Vec<usize>>,
}

impl Batch {
    /// Whether the token at `query` may attend to the token at `key` in `row`: causal, within
    /// one sample, never to or from padding.
    pub fn attends(&self, row: usize, query: usize, key: usize) -> bool {
        let base = row * self.seq_len;
        let (q, k) = (self.segment_ids[base + query], self.segment_ids[base + key]);
        key <= query && q != 0 && q == k
    }

    /// Tokens with loss mask 1.
    pub fn supervised_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m != 0).count()
    }

    /// Padding tokens.
    pub fn padding(&self) -> usize {
        self.rows * self.seq_len - self.lengths.iter().sum::<usize>()
    }
}

/// Forms the batches of epoch `epoch` (1-based; it seeds the shuffles).
pub fn batches(
    samples: &[Sample],
    options: &BatchOptions,
    epoch: usize,
) -> Result<Vec<Batch>, CurriculumError> {
    if options.batch_size == 0 {
        return Err(CurriculumError::Config(
            "batch_size must be at least 1".into(),
        ));
    }
    let mut rng = Rng::new(mix(&[options.seed, epoch as u64, 0x0ba7_c4e5]));
    let mut order: Vec<usize> = (0..samples.len()).collect();
    if options.shuffle {
        rng.shuffle(&mut order);
    }
    if options.sort_by_length {
        order.sort_by_key(|&i| Reverse(samples[i].len()));
    }
    let rows: Vec<Vec<usize>> = match options.pack_length {
        None => order.iter().map(|&i| vec![i]).collect(),
        Some(length) => {
            if let Some(&i) = order.iter().find(|&&i| samples[i].len() > length) {
                return Err(CurriculumError::Config(format!(
                    "sample {i} has {} tokens, more than pack_length {length}; cut samples to the \
                     context first (SampleOptions::max_tokens)",
                    samples[i].len()
                )));
            }
            // First fit: each sample goes to the first row with room.
            let mut rows: Vec<(usize, Vec<usize>)> = Vec::new();
            for &i in &order {
                let len = samples[i].len();
                match rows.iter_mut().find(|(used, _)| used + len <= length) {
                    Some((used, row)) => {
                        *used += len;
                        row.push(i);
                    }
                    None => rows.push((len, vec![i])),
                }
            }
            rows.into_iter().map(|(_, row)| row).collect()
        }
    };
    let mut groups: Vec<&[Vec<usize>]> = rows.chunks(options.batch_size).collect();
    if options.shuffle && options.sort_by_length {
        rng.shuffle(&mut groups);
    }
    Ok(groups
        .into_iter()
        .map(|group| assemble(samples, group, options.pad_id))
        .collect())
}

fn assemble(samples: &[Sample], rows: &[Vec<usize>], pad_id: u32) -> Batch {
    let lengths: Vec<usize> = rows
        .iter()
        .map(|row| row.iter().map(|&i| samples[i].len()).sum())
        .collect();
    let seq_len = lengths.iter().copied().max().unwrap_or(0);
    let size = rows.len() * seq_len;
    let mut batch = Batch {
        rows: rows.len(),
        seq_len,
        input_ids: vec![pad_id; size],
        loss_mask: vec![0; size],
        literal_mask: vec![0; size],
        position_ids: vec![0; size],
        segment_ids: vec![0; size],
        lengths,
        samples: rows.to_vec(),
    };
    for (r, row) in rows.iter().enumerate() {
        let mut at = r * seq_len;
        for (s, &i) in row.iter().enumerate() {
            let sample = &samples[i];
            let range = at..at + sample.len();
            batch.input_ids[range.clone()].copy_from_slice(&sample.ids);
            batch.loss_mask[range.clone()].copy_from_slice(&sample.loss_mask);
            batch.literal_mask[range.clone()].copy_from_slice(&sample.literal_mask);
            batch.position_ids[range.clone()].copy_from_slice(&sample.position_ids);
            batch.segment_ids[range].fill(s as u32 + 1);
            at += sample.len();
        }
    }
    batch
}
