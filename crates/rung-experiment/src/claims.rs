//! The paper's three claims, checked against an experiment's headline split with paired
//! statistics ([`crate::stats`]): every configuration is evaluated on the same tasks, so
//! `prost` and `all` are compared task by task.
//!
//! A comparison **supports** its claim when the 95% paired bootstrap interval of the
//! difference lies on the claimed side of 0 and the sign-flip permutation test rejects
//! equality at 5%. It does **not support** it when the interval lies on the other side (with
//! the test agreeing), or when it rules out a meaningful effect ([`MEANINGFUL`] points, on the
//! claimed side). Anything else is **inconclusive**, and the evidence says which number would
//! have decided it. A claim over several comparisons ("every multi-agent configuration") is
//! supported when all are, not supported when any is not, inconclusive otherwise. Below a 100%
//! expert ceiling every tested claim is inconclusive: the budgets, not the models, decided.

use std::collections::BTreeMap;

use rung_trajectory::SystemKind;
use serde::{Deserialize, Serialize};

use crate::plan::short;
use crate::results::ConfigSummary;
use crate::stats::{self, Paired};

/// The smallest effect, in points (TGC or sub-task error rate), that counts as meaningful: an
/// interval that stays below it on the claimed side refutes the claim.
pub const MEANINGFUL: f64 = 5.0;

/// How far the numbers support a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every comparison establishes the claimed direction at 95%.
    Supported,
    /// Some comparison neither establishes nor refutes it.
    Inconclusive,
    /// Some comparison establishes the other direction, or rules out a meaningful effect.
    NotSupported,
    /// The experiment has no comparison for it.
    NotTested,
}

impl Verdict {
    /// The verdict in words.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotSupported => "not supported",
            Verdict::NotTested => "not tested",
        }
    }
}

/// One of the paper's claims, checked against this experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// The claim, in the paper's words (REFERENCE §1).
    pub claim: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The numbers behind it.
    pub evidence: Vec<String>,
}

/// Which metric a comparison is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Task goal completion, points (higher is better).
    Tgc,
    /// Sub-task error rate, points (lower is better).
    SubtaskError,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Tgc => "TGC",
            Metric::SubtaskError => "sub-task error",
        }
    }

    fn values(self, c: &ConfigSummary) -> &BTreeMap<String, f64> {
        match self {
            Metric::Tgc => &c.task_success,
            Metric::SubtaskError => &c.task_subtask_error,
        }
    }
}

/// Two configurations compared task by task on one metric: `a − b`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Label of `a`.
    pub a: String,
    /// Label of `b`.
    pub b: String,
    /// The metric.
    pub metric: Metric,
    /// The paired statistics over the tasks both have; `None` without common tasks.
    pub paired: Option<Paired>,
}

/// Compares `a` and `b` on `metric` over the tasks both have values for.
pub fn compare(a: &ConfigSummary, b: &ConfigSummary, metric: Metric) -> Comparison {
    let (va, vb) = (metric.values(a), metric.values(b));
    let (xs, ys): (Vec<f64>, Vec<f64>) = va
        .iter()
        .filter_map(|(task, x)| Some((*x, *vb.get(task)?)))
        .unzip();
    Comparison {
        a: a.label.clone(),
        b: b.label.clone(),
        metric,
        paired: stats::paired(&xs, &ys, stats::SEED),
    }
}

/// Every configuration trained with schedule `a` next to its twin trained with `b` (same
/// system and models).
pub fn twins<'a>(
    summaries: &'a [ConfigSummary],
    a: &str,
    b: &str,
) -> Vec<(&'a ConfigSummary, &'a ConfigSummary)> {
    summaries
        .iter()
        .filter(|c| c.configuration.schedule == a)
        .filter_map(|c| {
            let twin = c.configuration.with_schedule(b);
            summaries
                .iter()
                .find(|s| s.configuration == twin)
                .map(|t| (c, t))
        })
        .collect()
}

/// The paired comparisons the report shows: `prost − all` and `random − prost` for every twin
/// pair, on TGC and (where judged) sub-task error.
pub fn comparisons(summaries: &[ConfigSummary]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (a, b) in twins(summaries, "prost", "all")
        .into_iter()
        .chain(twins(summaries, "random", "prost"))
    {
        for metric in [Metric::Tgc, Metric::SubtaskError] {
            let c = compare(a, b, metric);
            if c.paired.is_some() {
                out.push(c);
            }
        }
    }
    out
}

/// A comparison's verdict on a claim that `a` is better than `b` (`higher`: on a metric where
/// higher is better), and the sentence that says why.
fn judge(p: &Paired, higher: bool, what: &str) -> (Verdict, String) {
    // Oriented so that the claimed direction is positive.
    let sign = if higher { 1.0 } else { -1.0 };
    let (low, high) = if higher {
        (p.interval.low, p.interval.high)
    } else {
        (-p.interval.high, -p.interval.low)
    };
    let significant = p.p_value < 1.0 - stats::LEVEL;
    let shown = p.interval.show(true);
    let side = if higher { "above" } else { "below" };
    if low > 0.0 && significant {
        (
            Verdict::Supported,
            format!(
                "supported: the 95% interval of {what} is {shown} points, {side} 0, p = {:.3}",
                p.p_value
            ),
        )
    } else if high < 0.0 && significant {
        (
            Verdict::NotSupported,
            format!(
                "not supported: the 95% interval of {what} is {shown} points, on the other side of 0, p = {:.3}",
                p.p_value
            ),
        )
    } else if high < MEANINGFUL {
        (
            Verdict::NotSupported,
            format!(
                "not supported: the 95% interval of {what} is {shown} points, which rules out an effect of {:+.0} points",
                sign * MEANINGFUL
            ),
        )
    } else {
        let why = if low > 0.0 {
            format!("p = {:.3} would need to be below 0.05", p.p_value)
        } else {
            format!(
                "it would need to lie {side} 0 (with p < 0.05, now {:.3}) to support the claim, or within {:+.0} points to refute it",
                p.p_value,
                sign * MEANINGFUL
            )
        };
        (
            Verdict::Inconclusive,
            format!("inconclusive: the 95% interval of {what} is {shown} points; {why}"),
        )
    }
}

/// A verdict over several comparisons: supported when all are, not supported when any is not.
fn combine(verdicts: &[Verdict]) -> Verdict {
    if verdicts.is_empty() {
        Verdict::NotTested
    } else if verdicts.contains(&Verdict::NotSupported) {
        Verdict::NotSupported
    } else if verdicts.iter().all(|v| *v == Verdict::Supported) {
        Verdict::Supported
    } else {
        Verdict::Inconclusive
    }
}

fn interval_text(c: &ConfigSummary) -> String {
    match &c.tgc_interval {
        Some(e) => format!("{:.1} {}", e.mean, e.interval.show(false)),
        None => c.tgc.show(1),
    }
}

/// Whether both sides sit at the metric's floor on every task (no task completed; every
/// sub-task failed): the comparison then measures nothing.
fn floored(a: &ConfigSummary, b: &ConfigSummary, metric: Metric) -> bool {
    match metric {
        Metric::Tgc => a.tgc.max == 0.0 && b.tgc.max == 0.0,
        Metric::SubtaskError => [a, b]
            .iter()
            .all(|c| c.task_subtask_error.values().all(|&e| e >= 100.0)),
    }
}

/// The paper's three claims against the headline split's summaries. `ceiling` is the lowest
/// expert TGC on that split (with the system it belongs to), where measured.
pub fn claims(summaries: &[ConfigSummary], ceiling: Option<(f64, String)>) -> Vec<Claim> {
    let pairs = twins(summaries, "prost", "all");
    let mut claims = vec![
        schedule_claim(
            "ProST improves every multi-agent configuration.",
            pairs
                .iter()
                .filter(|(p, _)| p.configuration.system != SystemKind::Single)
                .copied(),
            Metric::Tgc,
        ),
        pareto_claim(summaries),
        schedule_claim(
            "ProST lowers sub-task error rates.",
            pairs.iter().copied(),
            Metric::SubtaskError,
        ),
    ];
    if let Some((tgc, system)) = ceiling.filter(|(tgc, _)| *tgc < 100.0) {
        for claim in &mut claims {
            if claim.verdict != Verdict::NotTested {
                claim.verdict = Verdict::Inconclusive;
                claim.evidence.insert(
                    0,
                    format!(
                        "the expert ceiling is {tgc:.1}% TGC ({system}): the budgets stop the \
                         experts themselves, so these numbers measure the budgets; it would \
                         need to be 100%"
                    ),
                );
            }
        }
    }
    claims
}

fn schedule_claim<'a>(
    text: &str,
    pairs: impl Iterator<Item = (&'a ConfigSummary, &'a ConfigSummary)>,
    metric: Metric,
) -> Claim {
    let mut verdicts = Vec::new();
    let mut evidence = Vec::new();
    for (prost, all) in pairs {
        let name = format!(
            "{} {}",
            short(prost.configuration.system),
            prost.configuration.allocation()
        );
        let comparison = compare(prost, all, metric);
        let Some(p) = comparison.paired else {
            continue;
        };
        let what = format!("prost−all {}", metric.name());
        let (mut verdict, mut why) = judge(&p, metric == Metric::Tgc, &what);
        if floored(prost, all, metric) {
            verdict = Verdict::Inconclusive;
            why = match metric {
                Metric::Tgc => {
                    "inconclusive: neither schedule completed any task (a floor, not \
                                a difference)"
                }
                Metric::SubtaskError => {
                    "inconclusive: every sub-task failed under both \
                                         schedules (a floor, not a difference)"
                }
            }
            .into();
        }
        let levels = match metric {
            Metric::Tgc => format!(
                "TGC prost {} vs all {}",
                interval_text(prost),
                interval_text(all)
            ),
            Metric::SubtaskError => format!(
                "sub-task error prost {}% vs all {}%",
                prost.subtask_error.map_or("–".into(), |s| s.show(1)),
                all.subtask_error.map_or("–".into(), |s| s.show(1))
            ),
        };
        evidence.push(format!(
            "{name}: {levels}; prost−all {}; {why}",
            p.show("points")
        ));
        verdicts.push(verdict);
    }
    Claim {
        claim: text.into(),
        verdict: combine(&verdicts),
        evidence,
    }
}

/// Fine-tuned multi-agent systems on the effectiveness–efficiency front: supported when a
/// multi-agent configuration on the front completes tasks (its TGC interval above 0) and beats
/// every single-agent configuration that costs no more per task, task by task at 95%; not
/// supported when every multi-agent configuration is beaten that way by a single agent that
/// costs no more.
fn pareto_claim(summaries: &[ConfigSummary]) -> Claim {
    let text = "Fine-tuned multi-agent systems lie on the effectiveness–efficiency Pareto front.";
    let multi: Vec<&ConfigSummary> = summaries
        .iter()
        .filter(|c| c.configuration.system != SystemKind::Single)
        .collect();
    let single: Vec<&ConfigSummary> = summaries
        .iter()
        .filter(|c| c.configuration.system == SystemKind::Single)
        .collect();
    let mut evidence: Vec<String> = summaries
        .iter()
        .filter(|c| c.pareto)
        .map(|c| {
            format!(
                "on the front: {} (TGC {}, {:.2e} FLOPs/task)",
                c.label,
                interval_text(c),
                c.flops_per_task.mean
            )
        })
        .collect();
    if multi.is_empty() || single.is_empty() {
        return Claim {
            claim: text.into(),
            verdict: Verdict::NotTested,
            evidence,
        };
    }
    if summaries.iter().all(|c| c.tgc.max == 0.0) {
        evidence.push("every configuration has 0% TGC, so the front only orders costs".into());
        return Claim {
            claim: text.into(),
            verdict: Verdict::Inconclusive,
            evidence,
        };
    }
    let cheaper = |m: &ConfigSummary| -> Vec<&ConfigSummary> {
        single
            .iter()
            .copied()
            .filter(|s| s.flops_per_task.mean <= m.flops_per_task.mean)
            .collect()
    };
    let beats = |a: &ConfigSummary, b: &ConfigSummary| -> Option<Paired> {
        compare(a, b, Metric::Tgc)
            .paired
            .filter(|p| p.excludes_zero() && p.mean_difference > 0.0)
    };
    let mut held = false;
    for m in multi.iter().filter(|m| m.pareto) {
        let above_zero = m
            .tgc_interval
            .is_some_and(|e| e.interval.low > 0.0 && e.mean > 0.0);
        let rivals = cheaper(m);
        let beaten_rivals: Vec<&&ConfigSummary> =
            rivals.iter().filter(|s| beats(m, s).is_some()).collect();
        if above_zero && beaten_rivals.len() == rivals.len() {
            held = true;
            evidence.push(format!(
                "{} completes tasks (TGC interval above 0) and beats all {} single-agent \
                 configurations that cost no more, task by task at 95%",
                m.label,
                rivals.len()
            ));
        } else {
            let missing: Vec<String> = rivals
                .iter()
                .filter(|s| beats(m, s).is_none())
                .map(|s| {
                    let p = compare(m, s, Metric::Tgc).paired;
                    format!(
                        "{} − {} is {}",
                        m.label,
                        s.label,
                        p.map_or("not comparable".into(), |p| format!(
                            "{} points (p = {:.3})",
                            p.interval.show(true),
                            p.p_value
                        ))
                    )
                })
                .collect();
            evidence.push(format!(
                "{} is on the front, but {}; it would need {}",
                m.label,
                if above_zero {
                    "does not clearly beat every cheaper single agent".to_string()
                } else {
                    format!(
                        "its TGC interval {} does not lie above 0",
                        m.tgc_interval
                            .map_or("–".into(), |e| e.interval.show(false))
                    )
                },
                if missing.is_empty() {
                    "a TGC interval above 0".to_string()
                } else {
                    format!("intervals above 0 for: {}", missing.join("; "))
                }
            ));
        }
    }
    let all_dominated = multi
        .iter()
        .all(|m| cheaper(m).iter().any(|s| beats(s, m).is_some()));
    let verdict = if held {
        Verdict::Supported
    } else if all_dominated {
        evidence.push(
            "every multi-agent configuration is beaten, task by task at 95%, by a single agent \
             that costs no more"
                .into(),
        );
        Verdict::NotSupported
    } else {
        Verdict::Inconclusive
    };
    Claim {
        claim: text.into(),
        verdict,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Configuration;
    use crate::results::Stat;
    use rung_trajectory::Role;

    /// A configuration that solved the tasks `solved` of `n` (one seed), whose sub-task error
    /// is 0 on solved tasks and 100 elsewhere, at `flops` per task.
    fn config(
        system: SystemKind,
        schedule: &str,
        size: &str,
        n: usize,
        solved: &[usize],
        flops: f64,
    ) -> ConfigSummary {
        let models: BTreeMap<Role, String> = system
            .roles()
            .iter()
            .map(|r| (*r, size.to_string()))
            .collect();
        let configuration = Configuration {
            system,
            models,
            schedule: schedule.into(),
        };
        let task_success: BTreeMap<String, f64> = (0..n)
            .map(|t| {
                (
                    format!("t{t:03}"),
                    if solved.contains(&t) { 100.0 } else { 0.0 },
                )
            })
            .collect();
        let task_subtask_error: BTreeMap<String, f64> = task_success
            .iter()
            .map(|(t, s)| (t.clone(), 100.0 - s))
            .collect();
        let values: Vec<f64> = task_success.values().copied().collect();
        let tgc = values.iter().sum::<f64>() / n as f64;
        ConfigSummary {
            label: configuration.to_string(),
            configuration,
            seeds: vec![0],
            params: 1,
            tgc: Stat::of(&[tgc]),
            sgc: Stat::of(&[tgc]),
            tgc_by_difficulty: BTreeMap::new(),
            flops_per_task: Stat::of(&[flops]),
            tokens_per_task: Stat::of(&[1.0]),
            seconds_per_task: Stat::of(&[1.0]),
            interactions_per_task: Stat::of(&[1.0]),
            subtask_error: Some(Stat::of(&[100.0 - tgc])),
            subtask_error_by_index: vec![],
            subtask_error_by_role: BTreeMap::new(),
            training_flops: Stat::of(&[1.0]),
            training_supervised_tokens: Stat::of(&[1.0]),
            training_seconds: Stat::of(&[1.0]),
            final_val_loss: None,
            pareto: false,
            tgc_interval: stats::bootstrap_mean(&values, stats::SEED),
            task_success,
            task_subtask_error,
            ends: BTreeMap::new(),
            code_cells_per_episode: Stat::default(),
            malformed_per_turn: Stat::default(),
        }
    }

    const TWO: SystemKind = SystemKind::TwoAgent;

    #[test]
    fn paired_evidence_decides_the_schedule_claims() {
        // 20 tasks: prost solves 0–14, all solves 0–2: 12 discordant tasks, all for prost.
        let prost_wins = [
            config(TWO, "prost", "tiny", 20, &(0..15).collect::<Vec<_>>(), 1e9),
            config(TWO, "all", "tiny", 20, &[0, 1, 2], 1e9),
        ];
        let c = claims(&prost_wins, Some((100.0, "experts".into())));
        assert_eq!(c[0].verdict, Verdict::Supported, "{:?}", c[0]);
        assert_eq!(c[2].verdict, Verdict::Supported, "{:?}", c[2]);
        assert!(
            c[0].evidence[0].contains("+60.0 points"),
            "{:?}",
            c[0].evidence
        );
        assert!(
            c[0].evidence[0].contains("12 vs 0 tasks"),
            "{:?}",
            c[0].evidence
        );
        // The other way round: refuted on both.
        let all_wins = [
            config(TWO, "prost", "tiny", 20, &[0, 1, 2], 1e9),
            config(TWO, "all", "tiny", 20, &(0..15).collect::<Vec<_>>(), 1e9),
        ];
        let c = claims(&all_wins, None);
        assert_eq!(c[0].verdict, Verdict::NotSupported, "{:?}", c[0]);
        assert_eq!(c[2].verdict, Verdict::NotSupported, "{:?}", c[2]);
        // 3 against 1 of 20: the interval straddles 0 and reaches past +5 points.
        let close = [
            config(TWO, "prost", "tiny", 20, &[0, 1, 2, 3, 10], 1e9),
            config(TWO, "all", "tiny", 20, &[0, 4, 10], 1e9),
        ];
        let c = claims(&close, None);
        assert_eq!(c[0].verdict, Verdict::Inconclusive, "{:?}", c[0]);
        let line = &c[0].evidence[0];
        assert!(
            line.contains("it would need to lie above 0")
                && line.contains("95% interval of prost−all TGC is ["),
            "{line}"
        );
        // 100 tasks, one discordant task each way: the interval stays within ±5 points, which
        // rules out a meaningful improvement.
        let mut p: Vec<usize> = (0..40).collect();
        p.push(50);
        let mut a: Vec<usize> = (0..40).collect();
        a.push(60);
        let equal = [
            config(TWO, "prost", "tiny", 100, &p, 1e9),
            config(TWO, "all", "tiny", 100, &a, 1e9),
        ];
        let c = claims(&equal, None);
        assert_eq!(c[0].verdict, Verdict::NotSupported, "{:?}", c[0]);
        assert!(
            c[0].evidence[0].contains("rules out an effect of +5 points"),
            "{:?}",
            c[0]
        );
        // Nothing solved anywhere: a floor, inconclusive.
        let zero = [
            config(TWO, "prost", "tiny", 20, &[], 1e9),
            config(TWO, "all", "tiny", 20, &[], 1e9),
        ];
        let c = claims(&zero, None);
        assert_eq!(c[0].verdict, Verdict::Inconclusive);
        assert!(c[0].evidence[0].contains("floor"), "{:?}", c[0]);
        // No single-agent configuration: the Pareto claim is not tested.
        assert_eq!(c[1].verdict, Verdict::NotTested);
        // One pair inconclusive, one supported: inconclusive overall.
        let mut mixed = prost_wins.to_vec();
        for mut s in close.clone() {
            s.configuration
                .models
                .insert(Role::Orchestrator, "base".into());
            s.label = s.configuration.to_string();
            mixed.push(s);
        }
        assert_eq!(claims(&mixed, None)[0].verdict, Verdict::Inconclusive);
    }

    #[test]
    fn an_expert_ceiling_below_100_makes_every_tested_claim_inconclusive() {
        let s = [
            config(TWO, "prost", "tiny", 20, &(0..15).collect::<Vec<_>>(), 1e9),
            config(TWO, "all", "tiny", 20, &[0, 1, 2], 1e9),
        ];
        let c = claims(&s, Some((66.0, "two_agent on test_normal".into())));
        assert_eq!(c[0].verdict, Verdict::Inconclusive);
        assert!(
            c[0].evidence[0].contains("expert ceiling is 66.0% TGC (two_agent on test_normal)")
        );
        assert_eq!(c[1].verdict, Verdict::NotTested, "untested stays untested");
    }

    #[test]
    fn the_pareto_claim_needs_a_multi_agent_front_point_that_beats_cheaper_single_agents() {
        let one = SystemKind::Single;
        let on_front = |mut s: ConfigSummary, front: bool| {
            s.pareto = front;
            s
        };
        let many: Vec<usize> = (0..15).collect();
        // A cheaper team that solves 15 of 20 tasks against a dearer single agent with 3.
        let s = [
            on_front(config(one, "all", "tiny", 20, &[0, 1, 2], 2e9), false),
            on_front(config(TWO, "all", "tiny", 20, &many, 1e9), true),
        ];
        assert_eq!(
            pareto_claim(&s).verdict,
            Verdict::Supported,
            "{:?}",
            pareto_claim(&s)
        );
        // A cheaper single agent with 15 against a team with 3: refuted.
        let s = [
            on_front(config(one, "all", "tiny", 20, &many, 1e8), true),
            on_front(config(TWO, "all", "tiny", 20, &[0, 1, 2], 1e9), false),
        ];
        assert_eq!(pareto_claim(&s).verdict, Verdict::NotSupported);
        // A dearer team that solves two tasks more than a cheap single agent: on the front, but
        // not beyond doubt.
        let s = [
            on_front(config(one, "all", "tiny", 20, &[0, 1, 2, 3, 4], 1e8), true),
            on_front(
                config(TWO, "all", "tiny", 20, &[0, 1, 2, 3, 4, 5, 6], 1e9),
                true,
            ),
        ];
        let c = pareto_claim(&s);
        assert_eq!(c.verdict, Verdict::Inconclusive, "{c:?}");
        assert!(
            c.evidence
                .iter()
                .any(|e| e.contains("intervals above 0 for")),
            "{c:?}"
        );
    }

    #[test]
    fn comparisons_pair_twins_on_common_tasks() {
        let s = [
            config(TWO, "prost", "tiny", 10, &[0, 1, 2, 3], 1e9),
            config(TWO, "all", "tiny", 10, &[0, 1], 1e9),
            config(TWO, "random", "tiny", 10, &[0], 1e9),
        ];
        let c = comparisons(&s);
        // prost−all and random−prost, each on TGC and sub-task error.
        assert_eq!(c.len(), 4);
        let tgc = c
            .iter()
            .find(|c| c.metric == Metric::Tgc && c.b.contains("all"))
            .unwrap();
        let p = tgc.paired.unwrap();
        assert!((p.mean_difference - 20.0).abs() < 1e-9);
        assert_eq!((p.a_better, p.b_better, p.tasks), (2, 0, 10));
        let random = c
            .iter()
            .find(|c| c.a.contains("random") && c.metric == Metric::Tgc)
            .unwrap();
        assert!((random.paired.unwrap().mean_difference + 30.0).abs() < 1e-9);
    }
}
