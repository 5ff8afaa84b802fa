//! Schedules: which sub-tasks of a trajectory are supervised in an epoch.
//!
//! Epochs are **1-based** (epoch 1 is the first pass over the data); epoch 0 means "before
//! training" and supervises nothing under every schedule. Sub-task indices are **0-based**, as
//! in the trajectory format: the "sub-tasks {1, 2}" are indices `[0, 1]` here.

use serde::{Deserialize, Serialize};

use crate::rng::{Rng, mix};

fn one() -> usize {
    1
}

fn two() -> usize {
    2
}

/// How many sub-tasks `k(e)` a progressive schedule supervises in epoch `e` of a trajectory
/// with `n` sub-tasks. Every variant is non-decreasing in `e`, reaches `n` and stays there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Growth {
    /// `k(e) = min(n, start + step·(e − 1))`: `start` sub-tasks in epoch 1, `step` more per
    /// epoch. The default (`start = step = 1`) introduces one new sub-task per epoch.
    Linear {
        /// Sub-tasks in epoch 1 (≥ 1).
        #[serde(default = "one")]
        start: usize,
        /// New sub-tasks per epoch (≥ 1).
        #[serde(default = "one")]
        step: usize,
    },
    /// `k(e) = min(n, start·factor^(e − 1))`: 1, 2, 4, 8, … by default.
    Exponential {
        /// Sub-tasks in epoch 1 (≥ 1).
        #[serde(default = "one")]
        start: usize,
        /// Growth factor per epoch (≥ 2).
        #[serde(default = "two")]
        factor: usize,
    },
    /// `k(e) = min(n, ⌈n·e / epochs⌉)`: every trajectory, however long, has all of its sub-tasks
    /// in by epoch `epochs`.
    Proportional {
        /// The epoch by which every sub-task is in (≥ 1).
        epochs: usize,
    },
}

impl Default for Growth {
    fn default() -> Self {
        Growth::Linear { start: 1, step: 1 }
    }
}

impl Growth {
    /// `k(e)` for a trajectory of `n` sub-tasks (0 for epoch 0).
    pub fn count(&self, epoch: usize, n: usize) -> usize {
        if epoch == 0 || n == 0 {
            return 0;
        }
        let e = epoch - 1;
        let k = match *self {
            Growth::Linear { start, step } => start.saturating_add(step.saturating_mul(e)),
            Growth::Exponential { start, factor } => {
                let mut k = start;
                for _ in 0..e {
                    if k >= n {
                        break;
                    }
                    k = k.saturating_mul(factor);
                }
                k
            }
            Growth::Proportional { epochs } => (n.saturating_mul(epoch)).div_ceil(epochs.max(1)),
        };
        k.min(n)
    }

    /// The first epoch at which all `n` sub-tasks are in.
    pub fn full_epoch(&self, n: usize) -> usize {
        (1..).find(|&e| self.count(e, n) >= n).unwrap_or(1)
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        match *self {
            Growth::Linear { start, step } if start == 0 || step == 0 => {
                Err("linear growth needs start ≥ 1 and step ≥ 1".into())
            }
            Growth::Exponential { start, factor } if start == 0 || factor < 2 => {
                Err("exponential growth needs start ≥ 1 and factor ≥ 2".into())
            }
            Growth::Proportional { epochs: 0 } => {
                Err("proportional growth needs epochs ≥ 1".into())
            }
            _ => Ok(()),
        }
    }

    /// A short description (`linear start 1 step 1`).
    pub fn describe(&self) -> String {
        match *self {
            Growth::Linear { start, step } => format!("linear start {start} step {step}"),
            Growth::Exponential { start, factor } => {
                format!("exponential start {start} factor {factor}")
            }
            Growth::Proportional { epochs } => format!("proportional over {epochs} epochs"),
        }
    }
}

/// A curriculum schedule: maps (epoch, trajectory) to the sub-tasks supervised in that epoch.
/// Serialised as a tagged object, e.g. `{"kind": "prost", "growth": {"kind": "linear",
/// "step": 1}}` in JSON or `schedule = { kind = "random", seed = 3 }` in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// ProST: epoch `e` supervises sub-tasks `0..k(e)` (the first `k(e)`) of every
    /// trajectory; once all are in, later epochs keep all.
    Prost {
        /// `k(e)`.
        #[serde(default)]
        growth: Growth,
    },
    /// Every sub-task in every epoch: standard SFT.
    All,
    /// As many sub-tasks as `prost` with the same growth, chosen at random (isolates *which*
    /// sub-tasks from *how many*). By default each trajectory draws one random order of its
    /// sub-tasks (seeded by `seed` and the trajectory) and epoch `e` supervises the first
    /// `k(e)` of that order, so supervised sets grow like ProST's; with `resample` every epoch
    /// draws a fresh set of `k(e)`.
    Random {
        /// `k(e)`.
        #[serde(default)]
        growth: Growth,
        /// Seed of the draws.
        #[serde(default)]
        seed: u64,
        /// Draw a new set every epoch instead of growing one order.
        #[serde(default)]
        resample: bool,
    },
    /// The last `k(e)` sub-tasks: `n − k(e) .. n`.
    Reverse {
        /// `k(e)`.
        #[serde(default)]
        growth: Growth,
    },
    /// Instance-level curriculum over tasks: easy tasks first. With the distinct difficulty
    /// levels of the data set sorted, `L₁ < L₂ < … < L_q`, epoch `e` admits the trajectories
    /// of difficulty ≤ `L_min(q, ⌈e / epochs_per_level⌉)`, with all of their sub-tasks;
    /// trajectories not yet admitted are not trained on at all.
    Difficulty {
        /// Epochs spent on each level before the next is added (≥ 1).
        #[serde(default = "one")]
        epochs_per_level: usize,
    },
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule::Prost {
            growth: Growth::default(),
        }
    }
}

/// What a schedule knows about one trajectory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrajectoryInfo {
    /// A stable identity of the trajectory (seeds its random draws); see
    /// [`Dataset`](crate::Dataset) for how it is derived.
    pub key: u64,
    /// Number of sub-tasks.
    pub subtasks: usize,
    /// Difficulty level (AppWorld's 1–3, from the episode's evaluation).
    pub difficulty: u8,
}

/// What a schedule knows about the whole data set: its difficulty levels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduleContext {
    /// Distinct difficulty levels, ascending.
    pub levels: Vec<u8>,
}

impl ScheduleContext {
    /// The context of a data set.
    pub fn new<'a>(infos: impl IntoIterator<Item = &'a TrajectoryInfo>) -> Self {
        let mut levels: Vec<u8> = infos.into_iter().map(|i| i.difficulty).collect();
        levels.sort_unstable();
        levels.dedup();
        ScheduleContext { levels }
    }
}

impl Schedule {
    /// The name used on the command line (`prost`, `all`, `random`, `reverse`, `difficulty`).
    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Prost { .. } => "prost",
            Schedule::All => "all",
            Schedule::Random { .. } => "random",
            Schedule::Reverse { .. } => "reverse",
            Schedule::Difficulty { .. } => "difficulty",
        }
    }

    /// A one-line description with the parameters.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Prost { growth } => format!("prost ({})", growth.describe()),
            Schedule::All => "all".into(),
            Schedule::Random {
                growth,
                seed,
                resample,
            } => format!(
                "random ({}, seed {seed}{})",
                growth.describe(),
                if *resample {
                    ", resampled per epoch"
                } else {
                    ""
                }
            ),
            Schedule::Reverse { growth } => format!("reverse ({})", growth.describe()),
            Schedule::Difficulty { epochs_per_level } => {
                format!("difficulty ({epochs_per_level} epoch(s) per level)")
            }
        }
    }

    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Schedule::Prost { growth }
            | Schedule::Random { growth, .. }
            | Schedule::Reverse { growth } => growth.validate(),
            Schedule::All => Ok(()),
            Schedule::Difficulty { epochs_per_level } => {
                if *epochs_per_level == 0 {
                    Err("difficulty needs epochs_per_level ≥ 1".into())
                } else {
                    Ok(())
                }
            }
        }
    }

    /// The number of sub-tasks supervised in `epoch` of `trajectory`.
    pub fn count(
        &self,
        epoch: usize,
        trajectory: &TrajectoryInfo,
        context: &ScheduleContext,
    ) -> usize {
        let n = trajectory.subtasks;
        match self {
            Schedule::Prost { growth }
            | Schedule::Random { growth, .. }
            | Schedule::Reverse { growth } => growth.count(epoch, n),
            Schedule::All => {
                if epoch == 0 {
                    0
                } else {
                    n
                }
            }
            Schedule::Difficulty { .. } => self.supervised(epoch, trajectory, context).len(),
        }
    }

    /// The sub-tasks (0-based, ascending) supervised in `epoch` (1-based) of `trajectory`.
    pub fn supervised(
        &self,
        epoch: usize,
        trajectory: &TrajectoryInfo,
        context: &ScheduleContext,
    ) -> Vec<usize> {
        let n = trajectory.subtasks;
        if epoch == 0 || n == 0 {
            return Vec::new();
        }
        match self {
            Schedule::Prost { growth } => (0..growth.count(epoch, n)).collect(),
            Schedule::All => (0..n).collect(),
            Schedule::Reverse { growth } => (n - growth.count(epoch, n)..n).collect(),
            Schedule::Random {
                growth,
                seed,
                resample,
            } => {
                let k = growth.count(epoch, n);
                let stream = if *resample {
                    mix(&[*seed, trajectory.key, epoch as u64])
                } else {
                    mix(&[*seed, trajectory.key])
                };
                let mut order: Vec<usize> = (0..n).collect();
                Rng::new(stream).shuffle(&mut order);
                let mut chosen = order[..k].to_vec();
                chosen.sort_unstable();
                chosen
            }
            Schedule::Difficulty { epochs_per_level } => {
                let levels = &context.levels;
                if levels.is_empty() {
                    return (0..n).collect();
                }
                let admitted =
                    (epoch.div_ceil((*epochs_per_level).max(1)) - 1).min(levels.len() - 1);
                if trajectory.difficulty <= levels[admitted] {
                    (0..n).collect()
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// What happens to the sub-tasks an epoch does not supervise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsupervised {
    /// Cut every conversation after its last supervised turn (default: what follows it
    /// cannot change the loss of a causal model, so it only costs compute). Unsupervised
    /// sub-tasks *before* a supervised one (under `random` and `reverse`) stay as context.
    #[default]
    Truncate,
    /// Keep the whole conversation, unsupervised turns with zero loss weight (every epoch then
    /// processes the same tokens, for compute-matched comparisons). Under a context limit, the
    /// turns after the last supervised one are the first to go.
    Keep,
}

/// A curriculum: a schedule plus the handling of unsupervised sub-tasks. This is the
/// `curriculum` section of an experiment config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Curriculum {
    /// Which sub-tasks each epoch supervises.
    pub schedule: Schedule,
    /// What happens to the others.
    pub unsupervised: Unsupervised,
}
