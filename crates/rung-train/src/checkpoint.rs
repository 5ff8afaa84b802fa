//! Trainer checkpoints: `checkpoints/step-NNNNNNNN/` holding the model (or base + adapter) as a
//! rung-model checkpoint (`config.json`, `model.bpk`, `adapter.json`) and `trainer.bin`
//! (optimizer moments, step, data position, RNG seed, metric accumulators).
//!
//! A checkpoint is written into a hidden temporary directory and renamed into place, so a run
//! killed while saving leaves only complete checkpoints behind (the temporary directory is
//! ignored and removed by the next save). `trainer.bin` carries a checksum of its payload.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rung_model::CausalLm;
use serde::{Deserialize, Serialize};

use crate::optim::{AdamW, Moments, MomentsIndex};

const MAGIC: &[u8; 8] = b"RUNGTRN1";
/// File of the trainer state inside a checkpoint.
pub const TRAINER_FILE: &str = "trainer.bin";

/// Where the run is and what it has accumulated: everything besides weights and moments that an
/// exact resume needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: usize,
    /// Current epoch (1-based).
    pub epoch: usize,
    /// Next batch of the epoch (0-based).
    pub batch: usize,
    /// Seed of the per-step dropout RNG: step `s`, micro-batch `k` draws from
    /// `mix(seed, s, k)`, so the RNG state is the step counter.
    pub rng_seed: u64,
    /// Sum of token losses of the current epoch so far.
    pub epoch_loss_sum: f64,
    /// Supervised tokens of the current epoch so far.
    pub epoch_supervised: usize,
    /// Correct supervised predictions of the current epoch so far.
    pub epoch_correct: usize,
    /// Tokens (non-padding) of the current epoch so far.
    pub epoch_tokens: usize,
    /// Best validation loss so far and its epoch.
    pub best: Option<(f64, usize)>,
    /// The run's config as JSON, to detect a checkpoint from another run.
    pub config_json: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    state: TrainerState,
    moments: Vec<MomentsIndex>,
    adam_step: u64,
    checksum: u64,
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn encode(state: &TrainerState, opt: &AdamW) -> anyhow::Result<Vec<u8>> {
    let mut payload = Vec::new();
    let mut index = Vec::new();
    for (path, m) in &opt.moments {
        index.push(MomentsIndex {
            path: path.clone(),
            len: m.m.len(),
        });
        for x in m.m.iter().chain(&m.v) {
            payload.extend_from_slice(&x.to_le_bytes());
        }
    }
    let header = Header {
        state: state.clone(),
        moments: index,
        adam_step: opt.step,
        checksum: fnv(&payload),
    };
    let header = serde_json::to_vec(&header)?;
    let mut out = Vec::with_capacity(16 + header.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&payload);
    Ok(out)
}

fn decode(bytes: &[u8], path: &Path) -> anyhow::Result<(TrainerState, AdamW)> {
    let bad = |why: &str| anyhow::anyhow!("corrupt trainer state {}: {why}", path.display());
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("not a rung trainer file (bad magic)"));
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().unwrap()) as usize;
    if bytes.len() < 16 + len {
        return Err(bad("truncated header"));
    }
    let header: Header =
        serde_json::from_slice(&bytes[16..16 + len]).map_err(|e| bad(&format!("header: {e}")))?;
    let payload = &bytes[16 + len..];
    let expected: usize = header.moments.iter().map(|m| m.len * 8).sum();
    if payload.len() != expected {
        return Err(bad(&format!(
            "payload has {} bytes, the header describes {expected}",
            payload.len()
        )));
    }
    if fnv(payload) != header.checksum {
        return Err(bad("checksum mismatch"));
    }
    let mut floats = payload
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()));
    let mut opt = AdamW {
        step: header.adam_step,
        ..AdamW::default()
    };
    for entry in header.moments {
        let m: Vec<f32> = floats.by_ref().take(entry.len).collect();
        let v: Vec<f32> = floats.by_ref().take(entry.len).collect();
        opt.moments.insert(entry.path, Moments { m, v });
    }
    Ok((header.state, opt))
}

/// Write a checkpoint named `name` under `root` atomically (temporary directory, rename).
pub fn save(
    root: &Path,
    name: &str,
    model: &CausalLm,
    opt: &AdamW,
    state: &TrainerState,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    // Leftovers of a process killed while saving (one writer per run directory).
    for entry in std::fs::read_dir(root)?.flatten() {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with(".tmp-") || n.starts_with(".old-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    rung_model::save_checkpoint(model, &tmp)
        .with_context(|| format!("cannot save checkpoint into {}", tmp.display()))?;
    let bytes = encode(state, opt)?;
    let mut file = std::fs::File::create(tmp.join(TRAINER_FILE))?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    let target = root.join(name);
    if target.exists() {
        let old = root.join(format!(".old-{name}-{}", std::process::id()));
        std::fs::rename(&target, &old)?;
        std::fs::rename(&tmp, &target)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&tmp, &target)?;
    }
    Ok(target)
}

/// Load a checkpoint directory: the model onto `device` and the trainer state.
pub fn load(
    dir: &Path,
    device: &burn::tensor::Device,
) -> anyhow::Result<(CausalLm, AdamW, TrainerState)> {
    let trainer = dir.join(TRAINER_FILE);
    let bytes = std::fs::read(&trainer).with_context(|| {
        format!(
            "checkpoint {} has no readable {TRAINER_FILE}",
            dir.display()
        )
    })?;
    let (state, opt) = decode(&bytes, &trainer)?;
    let model = rung_model::load_checkpoint(dir, device).map_err(|e| {
        anyhow::anyhow!("cannot load the model of checkpoint {}: {e}", dir.display())
    })?;
    Ok((model, opt, state))
}

/// Step checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Remove all but the newest `keep` step checkpoints.
pub fn prune(root: &Path, keep: usize) -> anyhow::Result<()> {
    let all = list(root);
    let n = all.len().saturating_sub(keep.max(1));
    for (_, path) in &all[..n] {
        std::fs::remove_dir_all(path)?;
    }
    Ok(())
}

/// The newest step checkpoint under `root`, or a clear error.
pub fn latest(root: &Path) -> anyhow::Result<PathBuf> {
    match list(root).pop() {
        Some((_, p)) => Ok(p),
        None => bail!("no checkpoint under {} to resume from", root.display()),
    }
}
