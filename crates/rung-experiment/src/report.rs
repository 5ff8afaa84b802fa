//! `report.md` and `results.json`: tables, plots and a verdict on each of the paper's claims
//! that says no more than the numbers do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ExperimentError;
use crate::config::{ExperimentConfig, split_name};
use crate::plan::short;
use crate::results::{ConfigSummary, RunResult, Stat, summarise};
use crate::store::write_atomic;

/// Files the report wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `report.md`.
    pub report: PathBuf,
    /// `results.json`.
    pub results: PathBuf,
}

/// How far the numbers support a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every comparison goes the claimed way, beyond the seed spread.
    Supported,
    /// The comparisons go the claimed way but not beyond the seed spread, or some go each way.
    Inconclusive,
    /// At least one comparison goes the other way beyond the seed spread.
    NotSupported,
    /// The experiment has no comparison for it.
    NotTested,
}

impl Verdict {
    fn text(self) -> &'static str {
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

/// The whole `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// The experiment's name.
    pub experiment: String,
    /// The config.
    pub config: ExperimentConfig,
    /// The headline split.
    pub test_split: String,
    /// Runs the config asks for (more than `runs` while the experiment is unfinished).
    pub planned_runs: usize,
    /// Every run done.
    pub runs: Vec<RunResult>,
    /// Per split: configurations over seeds.
    pub configurations: BTreeMap<String, Vec<ConfigSummary>>,
    /// Labels of the configurations on the Pareto front of the test split.
    pub pareto_front: Vec<String>,
    /// The paper's claims.
    pub claims: Vec<Claim>,
}

/// Writes `results.json`, `report.md` and the plots under `out`.
pub fn write(
    config: &ExperimentConfig,
    runs: &[RunResult],
    planned_runs: usize,
    out: &Path,
) -> Result<Written, ExperimentError> {
    let test = split_name(config.test_split());
    let configurations: BTreeMap<String, Vec<ConfigSummary>> = config
        .evaluation
        .splits
        .iter()
        .map(|s| {
            let name = split_name(*s);
            let summaries = summarise(runs, &name);
            (name, summaries)
        })
        .collect();
    let headline = configurations.get(&test).cloned().unwrap_or_default();
    let claims = claims(&headline);
    let results = Results {
        experiment: config.name.clone(),
        config: config.clone(),
        test_split: test.clone(),
        planned_runs,
        runs: runs.to_vec(),
        pareto_front: headline
            .iter()
            .filter(|c| c.pareto)
            .map(|c| c.label.clone())
            .collect(),
        configurations,
        claims,
    };
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| crate::store::io(&plots, e))?;
    crate::plots::pareto(&plots.join("pareto"), &headline, &test)?;
    let error_plots =
        crate::plots::subtask_errors(&plots.join("subtask-errors"), &headline, &test)?;
    crate::plots::loss_curves(&plots.join("loss"), runs)?;
    let results_path = out.join("results.json");
    write_atomic(
        &results_path,
        &serde_json::to_string_pretty(&results).expect("results serialise"),
    )?;
    let report_path = out.join("report.md");
    write_atomic(&report_path, &markdown(&results, &error_plots, out))?;
    Ok(Written {
        report: report_path,
        results: results_path,
    })
}

/// Difference of two means and whether it exceeds the seeds' spread (the sum of the standard
/// deviations; with one seed per side there is no spread to exceed, so it never does).
fn beyond_spread(a: &Stat, b: &Stat) -> bool {
    a.n > 1 && b.n > 1 && (a.mean - b.mean).abs() > a.std + b.std
}

/// A verdict from comparisons `(label, better, worse-or-equal, lower_is_better)`.
fn verdict(deltas: &[(bool, bool)]) -> Verdict {
    // (goes the claimed way, beyond spread)
    if deltas.is_empty() {
        return Verdict::NotTested;
    }
    if deltas.iter().any(|&(right, beyond)| !right && beyond) {
        return Verdict::NotSupported;
    }
    if deltas.iter().all(|&(right, beyond)| right && beyond) {
        return Verdict::Supported;
    }
    Verdict::Inconclusive
}

/// Every configuration trained with `prost` next to its `all` twin (same system and models).
fn prost_all_pairs(summaries: &[ConfigSummary]) -> Vec<(&ConfigSummary, &ConfigSummary)> {
    summaries
        .iter()
        .filter(|c| c.configuration.schedule == "prost")
        .filter_map(|c| {
            let twin = c.configuration.with_schedule("all");
            summaries
                .iter()
                .find(|s| s.configuration == twin)
                .map(|a| (c, a))
        })
        .collect()
}

/// The paper's three claims against the headline split.
pub fn claims(summaries: &[ConfigSummary]) -> Vec<Claim> {
    let pairs = prost_all_pairs(summaries);

    // 1. ProST improves every multi-agent configuration (TGC).
    let mut evidence = Vec::new();
    let mut deltas = Vec::new();
    for (prost, all) in pairs
        .iter()
        .filter(|(p, _)| p.configuration.system != rung_trajectory::SystemKind::Single)
    {
        let right = prost.tgc.mean > all.tgc.mean;
        let beyond = beyond_spread(&prost.tgc, &all.tgc);
        deltas.push((right, beyond));
        evidence.push(format!(
            "{} {}: TGC prost {} vs all {} ({:+.1} points{})",
            short(prost.configuration.system),
            prost.configuration.allocation(),
            prost.tgc.show(1),
            all.tgc.show(1),
            prost.tgc.mean - all.tgc.mean,
            spread_note(&prost.tgc, &all.tgc),
        ));
    }
    let all_zero = pairs
        .iter()
        .all(|(p, a)| p.tgc.max == 0.0 && a.tgc.max == 0.0);
    let mut first = verdict(&deltas);
    if !pairs.is_empty() && all_zero {
        first = Verdict::Inconclusive;
        evidence.push("no configuration completed any task under either schedule".into());
    }
    let mut claims = vec![Claim {
        claim: "ProST improves every multi-agent configuration.".into(),
        verdict: first,
        evidence,
    }];

    // 2. Fine-tuned multi-agent systems lie on the Pareto front.
    let front: Vec<&ConfigSummary> = summaries.iter().filter(|c| c.pareto).collect();
    let multi_on_front: Vec<&&ConfigSummary> = front
        .iter()
        .filter(|c| c.configuration.system != rung_trajectory::SystemKind::Single)
        .collect();
    let has_multi = summaries
        .iter()
        .any(|c| c.configuration.system != rung_trajectory::SystemKind::Single);
    let has_single = summaries
        .iter()
        .any(|c| c.configuration.system == rung_trajectory::SystemKind::Single);
    let mut evidence: Vec<String> = front
        .iter()
        .map(|c| {
            format!(
                "on the front: {} (TGC {}, {:.2e} FLOPs/task)",
                c.label,
                c.tgc.show(1),
                c.flops_per_task.mean
            )
        })
        .collect();
    let useful_front = front.iter().any(|c| c.tgc.mean > 0.0);
    let single_seeded = summaries.iter().any(|c| c.tgc.n < 2);
    let second = if !has_multi || !has_single {
        Verdict::NotTested
    } else if !useful_front {
        evidence.push("every configuration has 0% TGC, so the front only orders costs".into());
        Verdict::Inconclusive
    } else if single_seeded {
        // Like the other claims: one seed has no spread, so it cannot settle the front.
        evidence.push(
            "some configurations have one seed: no spread to tell whether the front would hold"
                .into(),
        );
        Verdict::Inconclusive
    } else if multi_on_front.iter().any(|c| c.tgc.mean > 0.0) {
        Verdict::Supported
    } else {
        Verdict::NotSupported
    };
    claims.push(Claim {
        claim: "Fine-tuned multi-agent systems lie on the effectiveness–efficiency Pareto front."
            .into(),
        verdict: second,
        evidence,
    });

    // 3. ProST lowers sub-task error rates.
    let mut evidence = Vec::new();
    let mut deltas = Vec::new();
    for (prost, all) in &pairs {
        let (Some(p), Some(a)) = (&prost.subtask_error, &all.subtask_error) else {
            continue;
        };
        let right = p.mean < a.mean;
        deltas.push((right, beyond_spread(p, a)));
        evidence.push(format!(
            "{} {}: sub-task error prost {}% vs all {}% ({:+.1} points{})",
            short(prost.configuration.system),
            prost.configuration.allocation(),
            p.show(1),
            a.show(1),
            p.mean - a.mean,
            spread_note(p, a),
        ));
    }
    claims.push(Claim {
        claim: "ProST lowers sub-task error rates.".into(),
        verdict: verdict(&deltas),
        evidence,
    });
    claims
}

/// `prost` against `all` at the end of training: final validation loss and training compute per
/// pair. Not one of the paper's claims, but what a run shows even when no task gets done.
/// `runs` give the loss curves for the equal-compute view: `all`'s validation loss at the FLOPs
/// `prost` spent.
pub fn schedule_training_comparison(
    summaries: &[ConfigSummary],
    runs: &[RunResult],
) -> Vec<String> {
    let mut lines = Vec::new();
    let (mut lower, mut higher, mut beyond) = (0, 0, 0);
    for (prost, all) in prost_all_pairs(summaries) {
        let (Some(p), Some(a)) = (&prost.final_val_loss, &all.final_val_loss) else {
            continue;
        };
        if p.mean < a.mean {
            lower += 1;
        } else {
            higher += 1;
        }
        if beyond_spread(p, a) {
            beyond += 1;
        }
        let equal = equal_compute_loss(&prost.configuration, &all.configuration, runs)
            .map(|e| format!("; all at prost's compute {}", e.show(3)))
            .unwrap_or_default();
        lines.push(format!(
            "{} {}: final validation loss prost {} vs all {} ({:+.3}{}), training FLOPs {:.2e} vs {:.2e} ({:.0}%){equal}",
            short(prost.configuration.system),
            prost.configuration.allocation(),
            p.show(3),
            a.show(3),
            p.mean - a.mean,
            spread_note(p, a),
            prost.training_flops.mean,
            all.training_flops.mean,
            100.0 * prost.training_flops.mean / all.training_flops.mean,
        ));
    }
    if !lines.is_empty() {
        lines.insert(
            0,
            format!(
                "prost ends lower in {lower} and higher in {higher} of {} pairs; {beyond} of them differ beyond the seed spread",
                lower + higher
            ),
        );
    }
    lines
}

/// The equal-compute view of a `prost`/`all` pair: for each seed both have and each role, `all`'s
/// validation loss read off its curve at the training FLOPs `prost` spent on that role, averaged
/// over roles; `None` where a curve does not reach that far back (or has no validation).
fn equal_compute_loss(
    prost: &crate::plan::Configuration,
    all: &crate::plan::Configuration,
    runs: &[RunResult],
) -> Option<Stat> {
    let of = |c: &crate::plan::Configuration, seed: u64| {
        runs.iter()
            .find(|r| &r.run.configuration == c && r.run.seed == seed)
    };
    let mut per_seed = Vec::new();
    for p in runs.iter().filter(|r| &r.run.configuration == prost) {
        let Some(a) = of(all, p.run.seed) else {
            continue;
        };
        let losses: Option<Vec<f64>> = p
            .training
            .iter()
            .map(|(role, pt)| loss_at_flops(&a.training.get(role)?.epochs, pt.flops))
            .collect();
        if let Some(l) = losses.filter(|l| !l.is_empty()) {
            per_seed.push(l.iter().sum::<f64>() / l.len() as f64);
        }
    }
    Some(Stat::of(&per_seed)).filter(|s| s.n > 0)
}

/// Validation loss at `flops` of training, linear between the epochs' (cumulative FLOPs,
/// validation loss) points; the last epoch's loss beyond the end; `None` before the first epoch.
fn loss_at_flops(epochs: &[crate::stages::EpochCost], flops: f64) -> Option<f64> {
    let points: Vec<(f64, f64)> = epochs
        .iter()
        .filter_map(|e| Some((e.cumulative_flops, e.val_loss?)))
        .collect();
    let &(first_x, first_y) = points.first()?;
    if flops < first_x {
        return None;
    }
    for pair in points.windows(2) {
        let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
        if flops <= x1 {
            let t = if x1 > x0 {
                (flops - x0) / (x1 - x0)
            } else {
                1.0
            };
            return Some(y0 + t * (y1 - y0));
        }
    }
    Some(points.last().map_or(first_y, |p| p.1))
}

fn spread_note(a: &Stat, b: &Stat) -> String {
    if a.n < 2 || b.n < 2 {
        ", one seed: no spread to judge by".into()
    } else if beyond_spread(a, b) {
        ", beyond the seed spread".into()
    } else {
        ", within the seed spread".into()
    }
}

fn markdown(results: &Results, error_plots: &[PathBuf], out: &Path) -> String {
    let config = &results.config;
    let test = &results.test_split;
    let mut md = String::new();
    let _ = writeln!(md, "# Experiment `{}`\n", config.name);
    if !config.description.trim().is_empty() {
        let _ = writeln!(md, "{}\n", config.description.trim());
    }
    if results.runs.len() < results.planned_runs {
        let _ = writeln!(
            md,
            "**Partial report: {} of {} runs done.** Run the experiment again to resume.\n",
            results.runs.len(),
            results.planned_runs
        );
    }
    let _ = writeln!(
        md,
        "{} runs; headline split `{test}`{}. TGC/SGC in percent; FLOPs per task are measured \
         over every model call of an episode; training FLOPs are 6·N·tokens (4·N·tokens for \
         LoRA). `±` is one standard deviation over seeds.\n",
        results.runs.len(),
        config
            .evaluation
            .tasks_per_split
            .map(|n| format!(" (first {n} tasks of each split)"))
            .unwrap_or_default(),
    );
    let _ = writeln!(md, "## Claims of the paper\n");
    for claim in &results.claims {
        let _ = writeln!(md, "- **{}** — {}.", claim.claim, claim.verdict.text());
        for line in &claim.evidence {
            let _ = writeln!(md, "  - {line}");
        }
    }
    let _ = writeln!(md);
    for (split, summaries) in &results.configurations {
        let _ = writeln!(md, "## Results on `{split}`\n");
        md.push_str(&table(summaries));
        md.push('\n');
    }
    let _ = writeln!(md, "## Pareto front (`{test}`)\n");
    let _ = writeln!(md, "![Pareto front](plots/pareto.svg)\n");
    if !error_plots.is_empty() {
        let _ = writeln!(md, "## Sub-task error rate by index (`{test}`)\n");
        if let Some(summaries) = results.configurations.get(test) {
            md.push_str(&error_table(summaries));
            md.push('\n');
        }
        for path in error_plots {
            let rel = path.strip_prefix(out).unwrap_or(path);
            let _ = writeln!(md, "![sub-task errors]({}.svg)\n", rel.display());
        }
    }
    let _ = writeln!(md, "## Training\n");
    let _ = writeln!(
        md,
        "Validation loss (every sub-task supervised) per epoch and against training compute: \
         ProST's early epochs see shorter conversations, so schedules differ in compute too.\n"
    );
    let _ = writeln!(md, "![loss by epoch](plots/loss-epochs.svg)\n");
    let _ = writeln!(md, "![loss by FLOPs](plots/loss-flops.svg)\n");
    let comparison = results
        .configurations
        .get(test)
        .map(|s| schedule_training_comparison(s, &results.runs))
        .unwrap_or_default();
    if !comparison.is_empty() {
        let _ = writeln!(md, "`prost` against `all` at the end of training:\n");
        for line in &comparison {
            let _ = writeln!(md, "- {line}");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "| run | role | params | supervised tokens | tokens | FLOPs | seconds | final val loss |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    for run in &results.runs {
        for (role, t) in &run.training {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2e} | {:.0} | {} |",
                run.name,
                role.name(),
                t.params,
                t.supervised_tokens,
                t.tokens,
                t.flops,
                t.wall_seconds,
                t.final_val_loss.map_or("–".into(), |v| format!("{v:.3}"))
            );
        }
    }
    let _ = writeln!(
        md,
        "\nFull numbers, per run and per seed: `results.json`. Stage outputs (trajectories, \
         checkpoints, metrics): `stages/`."
    );
    md
}

fn table(summaries: &[ConfigSummary]) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| configuration | params | TGC | SGC | sub-task error | FLOPs/task | tokens/task | s/task | training FLOPs | final val loss | Pareto |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|");
    for s in summaries {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2e} | {:.0} | {:.2} | {:.2e} | {} | {} |",
            s.label,
            s.params,
            s.tgc.show(1),
            s.sgc.show(1),
            s.subtask_error.map_or("–".into(), |e| e.show(1)),
            s.flops_per_task.mean,
            s.tokens_per_task.mean,
            s.seconds_per_task.mean,
            s.training_flops.mean,
            s.final_val_loss.map_or("–".into(), |l| l.show(2)),
            if s.pareto { "★" } else { "" }
        );
    }
    md
}

fn error_table(summaries: &[ConfigSummary]) -> String {
    let width = summaries
        .iter()
        .map(|s| s.subtask_error_by_index.len())
        .max()
        .unwrap_or(0);
    let mut md = String::new();
    let head: Vec<String> = (1..=width).map(|i| format!("#{i}")).collect();
    let _ = writeln!(md, "| configuration | {} |", head.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(width));
    for s in summaries {
        let cells: Vec<String> = (0..width)
            .map(|i| {
                s.subtask_error_by_index
                    .get(i)
                    .map_or("–".into(), |stat| stat.show(0))
            })
            .collect();
        let _ = writeln!(md, "| {} | {} |", s.label, cells.join(" | "));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Configuration;
    use rung_trajectory::{Role, SystemKind};

    fn summary(system: SystemKind, schedule: &str, tgc: &[f64], err: &[f64]) -> ConfigSummary {
        let models: BTreeMap<Role, String> = system
            .roles()
            .iter()
            .map(|r| (*r, "tiny".to_string()))
            .collect();
        let configuration = Configuration {
            system,
            models,
            schedule: schedule.into(),
        };
        ConfigSummary {
            label: configuration.to_string(),
            configuration,
            seeds: (0..tgc.len() as u64).collect(),
            params: 1,
            tgc: Stat::of(tgc),
            sgc: Stat::of(tgc),
            tgc_by_difficulty: BTreeMap::new(),
            flops_per_task: Stat::of(&[1e9]),
            tokens_per_task: Stat::of(&[1.0]),
            seconds_per_task: Stat::of(&[1.0]),
            interactions_per_task: Stat::of(&[1.0]),
            subtask_error: Some(Stat::of(err)),
            subtask_error_by_index: vec![],
            subtask_error_by_role: BTreeMap::new(),
            training_flops: Stat::of(&[1.0]),
            training_supervised_tokens: Stat::of(&[1.0]),
            training_seconds: Stat::of(&[1.0]),
            final_val_loss: None,
            pareto: false,
        }
    }

    #[test]
    fn claims_follow_the_numbers_and_their_spread() {
        let two = SystemKind::TwoAgent;
        // Clearly better beyond the spread.
        let s = [
            summary(two, "prost", &[40.0, 42.0], &[10.0, 11.0]),
            summary(two, "all", &[20.0, 21.0], &[30.0, 31.0]),
        ];
        let c = claims(&s);
        assert_eq!(c[0].verdict, Verdict::Supported, "{:?}", c[0]);
        assert_eq!(c[2].verdict, Verdict::Supported, "{:?}", c[2]);
        // Better within the spread: inconclusive.
        let s = [
            summary(two, "prost", &[30.0, 40.0], &[10.0, 20.0]),
            summary(two, "all", &[28.0, 38.0], &[12.0, 22.0]),
        ];
        assert_eq!(claims(&s)[0].verdict, Verdict::Inconclusive);
        // Worse beyond the spread.
        let s = [
            summary(two, "prost", &[10.0, 11.0], &[40.0, 41.0]),
            summary(two, "all", &[30.0, 31.0], &[10.0, 11.0]),
        ];
        let c = claims(&s);
        assert_eq!(c[0].verdict, Verdict::NotSupported);
        assert_eq!(c[2].verdict, Verdict::NotSupported);
        // One seed: never beyond the spread, so never "supported".
        let s = [
            summary(two, "prost", &[40.0], &[10.0]),
            summary(two, "all", &[20.0], &[30.0]),
        ];
        let c = claims(&s);
        assert_eq!(c[0].verdict, Verdict::Inconclusive);
        assert!(c[0].evidence[0].contains("one seed"), "{:?}", c[0].evidence);
        // Everything at zero.
        let s = [
            summary(two, "prost", &[0.0, 0.0], &[100.0, 100.0]),
            summary(two, "all", &[0.0, 0.0], &[100.0, 100.0]),
        ];
        assert_eq!(claims(&s)[0].verdict, Verdict::Inconclusive);
        // No single-agent configuration: the Pareto claim is not tested.
        assert_eq!(claims(&s)[1].verdict, Verdict::NotTested);
    }

    #[test]
    fn pareto_claim_needs_tasks_done_and_seeds() {
        let front = |mut s: ConfigSummary, flops: f64, pareto: bool| {
            s.flops_per_task = Stat::of(&[flops]);
            s.pareto = pareto;
            s
        };
        let one = SystemKind::Single;
        let two = SystemKind::TwoAgent;
        // A cheaper multi-agent team beats the single agent: supported with two seeds each.
        let s = [
            front(summary(one, "all", &[30.0, 32.0], &[50.0, 50.0]), 2e9, true),
            front(summary(two, "all", &[40.0, 42.0], &[40.0, 40.0]), 1e9, true),
        ];
        assert_eq!(
            claims(&s)[1].verdict,
            Verdict::Supported,
            "{:?}",
            claims(&s)[1]
        );
        // Only the single agent on the front: not supported.
        let s = [
            front(summary(one, "all", &[30.0, 32.0], &[50.0, 50.0]), 1e9, true),
            front(
                summary(two, "all", &[20.0, 22.0], &[40.0, 40.0]),
                2e9,
                false,
            ),
        ];
        assert_eq!(claims(&s)[1].verdict, Verdict::NotSupported);
        // The same with one seed: inconclusive, and the evidence says why.
        let s = [
            front(summary(one, "all", &[30.0], &[50.0]), 1e9, true),
            front(summary(two, "all", &[20.0], &[40.0]), 2e9, false),
        ];
        let c = &claims(&s)[1];
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert!(c.evidence.iter().any(|e| e.contains("one seed")), "{c:?}");
    }

    #[test]
    fn training_comparison_counts_pairs_and_spread() {
        let two = SystemKind::TwoAgent;
        let with_loss = |mut s: ConfigSummary, loss: &[f64], flops: f64| {
            s.final_val_loss = Some(Stat::of(loss));
            s.training_flops = Stat::of(&[flops]);
            s
        };
        let mut big = summary(two, "prost", &[0.0, 0.0], &[100.0, 100.0]);
        big.configuration
            .models
            .insert(Role::Orchestrator, "base".into());
        big.label = big.configuration.to_string();
        let mut big_all = big.clone();
        big_all.configuration = big.configuration.with_schedule("all");
        let s = [
            // prost higher beyond the spread, at 80% of the compute.
            with_loss(
                summary(two, "prost", &[0.0, 0.0], &[100.0, 100.0]),
                &[2.5, 2.6],
                8.0,
            ),
            with_loss(
                summary(two, "all", &[0.0, 0.0], &[100.0, 100.0]),
                &[1.9, 2.0],
                10.0,
            ),
            // prost lower, within the spread.
            with_loss(big, &[1.0, 2.0], 5.0),
            with_loss(big_all, &[1.2, 2.2], 5.0),
            // A schedule without a twin is not compared.
            with_loss(summary(two, "random", &[0.0], &[100.0]), &[9.0], 1.0),
        ];
        let lines = schedule_training_comparison(&s, &[]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0],
            "prost ends lower in 1 and higher in 1 of 2 pairs; 1 of them differ beyond the seed spread"
        );
        let tiny = lines
            .iter()
            .find(|l| l.contains("2.550 ± 0.071"))
            .expect("tiny pair");
        assert!(
            tiny.contains("vs all 1.950 ± 0.071 (+0.600, beyond the seed spread)"),
            "{tiny}"
        );
        assert!(tiny.ends_with("(80%)"), "{tiny}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("(-0.200, within the seed spread)")),
            "{lines:?}"
        );
        // Without validation losses there is nothing to say.
        let bare = [
            summary(two, "prost", &[0.0], &[100.0]),
            summary(two, "all", &[0.0], &[100.0]),
        ];
        assert!(schedule_training_comparison(&bare, &[]).is_empty());
    }

    #[test]
    fn loss_is_read_off_the_curve_at_a_compute_budget() {
        let epoch = |cumulative_flops: f64, val_loss: Option<f64>| crate::stages::EpochCost {
            epoch: 0,
            loss: None,
            val_loss,
            tokens: 0,
            supervised_tokens: 0,
            cumulative_flops,
            seconds: 0.0,
        };
        let curve = [
            epoch(10.0, Some(6.0)),
            epoch(20.0, Some(4.0)),
            epoch(30.0, None),
            epoch(40.0, Some(3.0)),
        ];
        assert_eq!(loss_at_flops(&curve, 5.0), None, "before the first epoch");
        assert_eq!(loss_at_flops(&curve, 10.0), Some(6.0));
        assert_eq!(loss_at_flops(&curve, 15.0), Some(5.0));
        // An epoch without validation is skipped: 20 → 40 is one segment.
        assert_eq!(loss_at_flops(&curve, 30.0), Some(3.5));
        assert_eq!(
            loss_at_flops(&curve, 99.0),
            Some(3.0),
            "the end of the curve"
        );
        assert_eq!(loss_at_flops(&[], 1.0), None);
    }
}
