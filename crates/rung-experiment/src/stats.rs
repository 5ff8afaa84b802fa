//! Statistics for paired data: every configuration of an experiment is evaluated on the same
//! tasks, so configurations are compared task by task, not by their means alone.
//!
//! - A configuration's TGC gets a 95% **bootstrap interval over tasks**: per-task success is
//!   first averaged over the configuration's seeds (the task is the unit that was sampled from
//!   the split; seeds are repeated measurements of it), then tasks are resampled with
//!   replacement ([`RESAMPLES`] times, a fixed seed) and the 2.5% and 97.5% quantiles of the
//!   resampled means are the interval.
//! - Two configurations are compared by their **per-task differences** `d_t` (each side's
//!   per-task value averaged over its seeds; with the same seeds on both sides this is the mean
//!   of the seed-by-seed differences). The mean difference gets a **paired bootstrap**
//!   interval (tasks resampled, each with both sides' values), and a two-sided **sign-flip
//!   permutation test** gives the p-value: under the null hypothesis that the two
//!   configurations are exchangeable on every task, each `d_t` is as likely to have had the
//!   opposite sign. The test is exact (all `2^m` sign patterns of the `m` non-zero
//!   differences) up to [`EXACT_MAX`] of them, and a seeded Monte Carlo estimate with
//!   [`MONTE_CARLO`] patterns beyond. With one seed per side each `d_t` is −1, 0 or +1 (in
//!   units of 100 points) and the exact test is the exact McNemar test on the discordant
//!   tasks: the p-value is the two-sided binomial tail of the split between the two kinds of
//!   discordant task.
//!
//! The bootstrap interval is the effect's plausible range; the permutation p-value guards it
//! where few tasks make the percentile interval too narrow (of six tasks, three that favour
//! one side and three ties give an interval that excludes 0, but p = 2/2³ = 0.25). A
//! difference counts as established only when both agree ([`Paired::excludes_zero`]).

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix;

/// Bootstrap resamples.
pub const RESAMPLES: usize = 2000;
/// Seed of every resampling (the report is reproducible).
pub const SEED: u64 = 0x5EED_2509_0450_8000;
/// Most non-zero differences for which the permutation test enumerates every sign pattern.
pub const EXACT_MAX: usize = 20;
/// Sign patterns drawn beyond [`EXACT_MAX`].
pub const MONTE_CARLO: usize = 50_000;
/// Confidence level of every interval.
pub const LEVEL: f64 = 0.95;

/// A two-sided interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether `x` lies inside (bounds included).
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }

    /// `[−3.1, +6.4]` (signed) or `[12.5, 40.0]`.
    pub fn show(&self, signed: bool) -> String {
        if signed {
            format!("[{:+.1}, {:+.1}]", self.low, self.high)
        } else {
            format!("[{:.1}, {:.1}]", self.low, self.high)
        }
    }
}

/// A mean over tasks with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The mean over tasks.
    pub mean: f64,
    /// Its 95% bootstrap interval.
    pub interval: Interval,
    /// Tasks.
    pub tasks: usize,
}

/// The mean of per-task `values` with a 95% percentile bootstrap interval over tasks; `None`
/// without tasks.
pub fn bootstrap_mean(values: &[f64], seed: u64) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    let means = resampled_means(values, RESAMPLES, seed);
    Some(Estimate {
        mean: mean(values),
        interval: percentile_interval(means),
        tasks: values.len(),
    })
}

/// Two configurations compared task by task: `a − b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Tasks both sides were evaluated on.
    pub tasks: usize,
    /// Mean of the per-task differences `a − b`.
    pub mean_difference: f64,
    /// Its 95% paired bootstrap interval.
    pub interval: Interval,
    /// Two-sided sign-flip permutation p-value.
    pub p_value: f64,
    /// Whether `p_value` is exact (every sign pattern) or a Monte Carlo estimate.
    pub exact: bool,
    /// Tasks where `a` did better.
    pub a_better: usize,
    /// Tasks where `b` did better.
    pub b_better: usize,
}

impl Paired {
    /// Whether the data establish a difference at 95%: the interval excludes 0 **and** the
    /// permutation test rejects equality at 5%.
    pub fn excludes_zero(&self) -> bool {
        !self.interval.contains(0.0) && self.p_value < 1.0 - LEVEL
    }

    /// `+12.5 points [+4.2, +20.8], p = 0.031 (exact; 7 vs 1 tasks)`.
    pub fn show(&self, unit: &str) -> String {
        format!(
            "{:+.1} {unit} {}, p = {:.3} ({}; {} vs {} tasks, {} in all)",
            self.mean_difference,
            self.interval.show(true),
            self.p_value,
            if self.exact { "exact" } else { "Monte Carlo" },
            self.a_better,
            self.b_better,
            self.tasks
        )
    }
}

/// Compares per-task values `a` and `b` (the same tasks in the same order, each already
/// averaged over its seeds); `None` without tasks or with lists of different lengths.
pub fn paired(a: &[f64], b: &[f64], seed: u64) -> Option<Paired> {
    if a.is_empty() || a.len() != b.len() {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let (p_value, exact) = sign_flip_p(&d, seed);
    Some(Paired {
        tasks: d.len(),
        mean_difference: mean(&d),
        interval: percentile_interval(resampled_means(&d, RESAMPLES, seed)),
        p_value,
        exact,
        a_better: d.iter().filter(|&&x| x > TOLERANCE).count(),
        b_better: d.iter().filter(|&&x| x < -TOLERANCE).count(),
    })
}

/// Differences closer to 0 than this count as ties (seed averages are exact fractions).
const TOLERANCE: f64 = 1e-9;

/// Two-sided sign-flip p-value of the mean of `d` being 0, and whether it is exact.
pub fn sign_flip_p(d: &[f64], seed: u64) -> (f64, bool) {
    let nonzero: Vec<f64> = d.iter().copied().filter(|x| x.abs() > TOLERANCE).collect();
    let m = nonzero.len();
    if m == 0 {
        return (1.0, true);
    }
    let observed = nonzero.iter().sum::<f64>().abs() - TOLERANCE * m as f64;
    if m <= EXACT_MAX {
        let total: u64 = 1 << m;
        let mut extreme: u64 = 0;
        for pattern in 0..total {
            let sum: f64 = nonzero
                .iter()
                .enumerate()
                .map(|(i, x)| if pattern >> i & 1 == 1 { -x } else { *x })
                .sum();
            if sum.abs() >= observed {
                extreme += 1;
            }
        }
        return (extreme as f64 / total as f64, true);
    }
    let mut rng = SplitMix::new(seed ^ 0xF11F);
    let mut extreme = 0usize;
    for _ in 0..MONTE_CARLO {
        let sum: f64 = nonzero
            .iter()
            .map(|x| if rng.next_u64() & 1 == 1 { -x } else { *x })
            .sum();
        if sum.abs() >= observed {
            extreme += 1;
        }
    }
    // The observed pattern counts as one of the draws, so p is never 0.
    ((extreme + 1) as f64 / (MONTE_CARLO + 1) as f64, false)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn resampled_means(values: &[f64], resamples: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix::new(seed);
    let n = values.len();
    (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.below(n)]).sum::<f64>() / n as f64)
        .collect()
}

/// The central 95% of `samples` (linear interpolation between order statistics).
fn percentile_interval(mut samples: Vec<f64>) -> Interval {
    samples.sort_by(f64::total_cmp);
    let alpha = (1.0 - LEVEL) / 2.0;
    Interval {
        low: quantile(&samples, alpha),
        high: quantile(&samples, 1.0 - alpha),
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(outcomes: &[u8]) -> Vec<f64> {
        outcomes.iter().map(|&o| 100.0 * f64::from(o)).collect()
    }

    #[test]
    fn a_hand_computed_paired_comparison() {
        // Six tasks, one seed: prost solves tasks 1–4 and 6, all solves 4 and 6. Differences
        // (points): +100 +100 +100 0 0 0 ⇒ mean +50. Three discordant tasks, all one way: of
        // the 2³ = 8 sign patterns only +++ and −−− reach |Σ| = 300, so p = 2/8 = 0.25 (the
        // exact McNemar test: 2·(1/2)³).
        let prost = points(&[1, 1, 1, 1, 0, 1]);
        let all = points(&[0, 0, 0, 1, 0, 1]);
        let p = paired(&prost, &all, SEED).unwrap();
        assert_eq!(p.tasks, 6);
        assert!((p.mean_difference - 50.0).abs() < 1e-9);
        assert!((p.p_value - 0.25).abs() < 1e-12, "{p:?}");
        assert!(p.exact);
        assert_eq!((p.a_better, p.b_better), (3, 0));
        // Every difference is ≥ 0, so no resample can go below 0; the interval holds the mean.
        assert!(p.interval.contains(50.0) && p.interval.low >= 0.0, "{p:?}");
        assert!(p.interval.high <= 100.0);
        // A resample of six zeros has probability 2⁻⁶ < 2.5%: the percentile interval excludes
        // 0 although three tasks cannot establish anything; the permutation test says so.
        assert!(!p.interval.contains(0.0), "{p:?}");
        assert!(
            !p.excludes_zero(),
            "p = 0.25 does not establish a difference"
        );
        assert_eq!(
            p.show("points"),
            format!(
                "+50.0 points {}, p = 0.250 (exact; 3 vs 0 tasks, 6 in all)",
                p.interval.show(true)
            )
        );
    }

    #[test]
    fn ten_tasks_one_way_are_significant_and_ties_are_not() {
        // Ten discordant tasks all favouring a: p = 2/2¹⁰ = 0.001953125; every resample is +100.
        let a = points(&[1; 10]);
        let b = points(&[0; 10]);
        let p = paired(&a, &b, SEED).unwrap();
        assert!((p.p_value - 2.0 / 1024.0).abs() < 1e-12);
        assert_eq!(
            p.interval,
            Interval {
                low: 100.0,
                high: 100.0
            }
        );
        assert!(p.excludes_zero());
        // The other way round: same p, interval at −100.
        let q = paired(&b, &a, SEED).unwrap();
        assert_eq!(q.p_value, p.p_value);
        assert_eq!(q.interval.high, -100.0);
        // Balanced discordance: mean 0, p = 1 (every pattern is at least as extreme as 0),
        // and the interval holds 0.
        let a = points(&[1, 0, 1, 0]);
        let b = points(&[0, 1, 0, 1]);
        let p = paired(&a, &b, SEED).unwrap();
        assert_eq!(p.mean_difference, 0.0);
        assert_eq!(p.p_value, 1.0);
        assert!(p.interval.contains(0.0));
        // All ties: nothing to flip.
        let p = paired(&a, &a, SEED).unwrap();
        assert_eq!(
            (p.p_value, p.interval),
            (
                1.0,
                Interval {
                    low: 0.0,
                    high: 0.0
                }
            )
        );
        assert!(paired(&a, &a[..2], SEED).is_none());
        assert!(paired(&[], &[], SEED).is_none());
    }

    #[test]
    fn seeds_are_averaged_per_task_before_pairing() {
        // Two seeds per side. Task 1: a 1,1 vs b 0,1; task 2: a 1,0 vs b 0,0; task 3: 0,0 vs
        // 0,0. Per-task means: a 100, 50, 0; b 50, 0, 0 ⇒ d = +50, +50, 0, mean +33.3; two
        // non-zero differences of equal size: p = 2/4.
        let a = [100.0, 50.0, 0.0];
        let b = [50.0, 0.0, 0.0];
        let p = paired(&a, &b, SEED).unwrap();
        assert!((p.mean_difference - 100.0 / 3.0).abs() < 1e-9);
        assert!((p.p_value - 0.5).abs() < 1e-12);
        // Unequal differences: d = +3, +1, −1. Patterns with |Σ| ≥ 3: (+3,+1,−1)=3,
        // (+3,+1,+1)=5, (+3,−1,−1)=1 no, (+3,−1,+1)=3, and their mirrors: 6 of 8 ⇒ p = 0.75.
        let (p, exact) = sign_flip_p(&[3.0, 1.0, -1.0], SEED);
        assert!(exact);
        assert!((p - 0.75).abs() < 1e-12, "{p}");
    }

    #[test]
    fn many_differences_use_a_seeded_monte_carlo_test() {
        // 30 discordant tasks, 20 favouring a: exact McNemar p = 2·P(X ≥ 20 | n = 30, ½)
        // = 0.0987…; the Monte Carlo estimate with 50,000 patterns is within 0.01 of it.
        let mut d = vec![100.0; 20];
        d.extend([-100.0; 10]);
        let (p, exact) = sign_flip_p(&d, SEED);
        assert!(!exact);
        assert!((p - 0.098_7).abs() < 0.01, "{p}");
        assert_eq!(sign_flip_p(&d, SEED), (p, false), "deterministic");
    }

    #[test]
    fn a_configurations_interval_covers_its_mean() {
        let e = bootstrap_mean(&[100.0, 50.0, 0.0, 100.0], SEED).unwrap();
        assert_eq!(e.mean, 62.5);
        assert_eq!(e.tasks, 4);
        assert!(e.interval.contains(62.5));
        assert!(e.interval.low >= 0.0 && e.interval.high <= 100.0);
        assert!(e.interval.low < 62.5 && e.interval.high > 62.5, "{e:?}");
        let constant = bootstrap_mean(&[100.0; 5], SEED).unwrap();
        assert_eq!(
            constant.interval,
            Interval {
                low: 100.0,
                high: 100.0
            }
        );
        assert!(bootstrap_mean(&[], SEED).is_none());
        assert_eq!(
            bootstrap_mean(&[0.0, 100.0], SEED),
            bootstrap_mean(&[0.0, 100.0], SEED)
        );
    }
}
