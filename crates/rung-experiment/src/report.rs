//! `report.md` and `results.json`: tables, plots and a verdict on each of the paper's claims
//! that says no more than the numbers do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ExperimentError;
use crate::ceiling::CeilingOutput;
pub use crate::claims::{Claim, Comparison, Verdict, claims};
use crate::config::{ExperimentConfig, split_name};
use crate::plan::short;
use crate::results::{ConfigSummary, RunResult, Stat, summarise};
use crate::store::write_atomic;
use crate::subsets::Coverage;

/// What the guards measured before anything trained: the experts' ceiling and how the task
/// subsets cover the templates.
#[derive(Debug, Clone, Default)]
pub struct Guards {
    /// The experts per system and evaluated split.
    pub ceilings: Vec<CeilingOutput>,
    /// Template coverage of the task subsets, where measured.
    pub coverage: Option<Coverage>,
    /// The world-pretraining stages, where the experiment has them (filled at report time,
    /// once they ran).
    pub pretraining: Option<crate::pretrain::Pretraining>,
    /// The learning curve, where the config asks for one (filled at report time).
    pub learning_curve: Option<crate::curve::LearningCurve>,
}

/// The experts of one system on one split, as the report shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CeilingRow {
    /// The system.
    pub system: rung_trajectory::SystemKind,
    /// The split.
    pub split: String,
    /// The experts' TGC, percent.
    pub tgc: f64,
    /// Their SGC, percent.
    pub sgc: f64,
    /// Episodes.
    pub episodes: usize,
    /// How their episodes ended.
    pub ends: BTreeMap<String, usize>,
}

impl CeilingRow {
    fn of(c: &CeilingOutput) -> Self {
        CeilingRow {
            system: c.system,
            split: split_name(c.split),
            tgc: c.report.scores.overall.tgc,
            sgc: c.report.scores.overall.sgc,
            episodes: c.report.episodes,
            ends: c.report.ends.clone(),
        }
    }
}

/// Files the report wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `report.md`.
    pub report: PathBuf,
    /// `results.json`.
    pub results: PathBuf,
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
    /// The experts' TGC per system and evaluated split under the evaluation's budgets.
    #[serde(default)]
    pub expert_ceiling: Vec<CeilingRow>,
    /// Template coverage of the training and evaluated task subsets.
    #[serde(default)]
    pub coverage: Option<Coverage>,
    /// Paired comparisons on the headline split (`prost − all`, `random − prost`).
    #[serde(default)]
    pub comparisons: Vec<Comparison>,
    /// The world-pretraining corpus and base models, where the experiment has them.
    #[serde(default)]
    pub pretraining: Option<crate::pretrain::Pretraining>,
    /// The learning curve of one run, where the config asks for one.
    #[serde(default)]
    pub learning_curve: Option<crate::curve::LearningCurve>,
}

/// Writes `results.json`, `report.md` and the plots under `out`.
pub fn write(
    config: &ExperimentConfig,
    runs: &[RunResult],
    planned_runs: usize,
    guards: &Guards,
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
    let expert_ceiling: Vec<CeilingRow> = guards.ceilings.iter().map(CeilingRow::of).collect();
    let lowest = expert_ceiling
        .iter()
        .filter(|c| c.split == test)
        .min_by(|a, b| a.tgc.total_cmp(&b.tgc))
        .map(|c| (c.tgc, format!("{} on {}", c.system.name(), c.split)));
    let claims = claims(&headline, lowest);
    let comparisons = crate::claims::comparisons(&headline);
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
        expert_ceiling,
        coverage: guards.coverage.clone(),
        comparisons,
        pretraining: guards.pretraining.clone(),
        learning_curve: guards.learning_curve.clone(),
    };
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| crate::store::io(&plots, e))?;
    crate::plots::pareto(&plots.join("pareto"), &headline, &test)?;
    let error_plots =
        crate::plots::subtask_errors(&plots.join("subtask-errors"), &headline, &test)?;
    crate::plots::loss_curves(&plots.join("loss"), runs)?;
    if let Some(curve) = &results.learning_curve {
        crate::plots::learning_curve(&plots.join("learning-curve"), curve)?;
    }
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
    for (prost, all) in crate::claims::twins(summaries, "prost", "all") {
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
        {
            let counts: Vec<String> = config
                .evaluation
                .splits
                .iter()
                .filter_map(|s| {
                    config
                        .evaluation
                        .tasks_for(*s)
                        .map(|n| format!("{n} of `{}`", split_name(*s)))
                })
                .collect();
            if counts.is_empty() {
                String::new()
            } else {
                format!(" (tasks: {}, stratified by template)", counts.join(", "))
            }
        },
    );
    md.push_str(&crate::tables::guards(results));
    let _ = writeln!(md, "## Claims of the paper\n");
    for claim in &results.claims {
        let _ = writeln!(md, "- **{}** — {}.", claim.claim, claim.verdict.text());
        for line in &claim.evidence {
            let _ = writeln!(md, "  - {line}");
        }
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "Verdicts use paired statistics over the tasks every configuration shares: a 95% \
         paired bootstrap interval of the difference ({} resamples over tasks, per-task values \
         averaged over seeds) and a two-sided sign-flip permutation test (exact up to {} \
         non-zero differences; with one seed it is the exact McNemar test). Supported: the \
         interval lies on the claimed side of 0 and p < 0.05; not supported: it lies on the \
         other side (p < 0.05) or stays within {} points of 0 on the claimed side. Sub-task \
         error is compared as each task's percentage of failed sub-tasks.\n",
        crate::stats::RESAMPLES,
        crate::stats::EXACT_MAX,
        crate::claims::MEANINGFUL,
    );
    if !results.comparisons.is_empty() {
        let _ = writeln!(md, "## Paired comparisons (`{test}`)\n");
        md.push_str(&crate::tables::comparisons(&results.comparisons));
        md.push('\n');
    }
    for (split, summaries) in &results.configurations {
        let _ = writeln!(md, "## Results on `{split}`\n");
        md.push_str(&table(summaries, &results.expert_ceiling, split));
        md.push('\n');
        let _ = writeln!(
            md,
            "How episodes ended on `{split}` (episodes over all seeds):\n"
        );
        md.push_str(&crate::tables::diagnostics(summaries));
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
    if let Some(curve) = &results.learning_curve {
        md.push_str(&curve.markdown());
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
    if let Some(pretraining) = &results.pretraining {
        md.push_str(&pretraining.markdown());
    }
    let _ = writeln!(
        md,
        "Token accuracy is the greedy next token over supervised validation targets; literal \
         accuracy the same over the targets inside copied task-specific values (ids, emails, \
         dates, amounts), which token accuracy hides.\n"
    );
    let _ = writeln!(
        md,
        "| run | role | params | supervised tokens | tokens | FLOPs | seconds | final val loss | token acc. | literal acc. |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let percent = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v));
    for run in &results.runs {
        for (role, t) in &run.training {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2e} | {:.0} | {} | {} | {} |",
                run.name,
                role.name(),
                t.params,
                t.supervised_tokens,
                t.tokens,
                t.flops,
                t.wall_seconds,
                t.final_val_loss.map_or("–".into(), |v| format!("{v:.3}")),
                percent(t.final_val_accuracy),
                percent(t.final_val_literal_accuracy),
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

fn table(summaries: &[ConfigSummary], ceiling: &[CeilingRow], split: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| configuration | params | TGC | TGC 95% interval | expert ceiling | SGC | sub-task error | FLOPs/task | tokens/task | s/task | training FLOPs | final val loss | Pareto |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|"
    );
    for s in summaries {
        let expert = ceiling
            .iter()
            .find(|c| c.split == split && c.system == s.configuration.system)
            .map_or("–".into(), |c| format!("{:.1}", c.tgc));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {expert} | {} | {} | {:.2e} | {:.0} | {:.2} | {:.2e} | {} | {} |",
            s.label,
            s.params,
            s.tgc.show(1),
            s.tgc_interval
                .map_or("–".into(), |e| e.interval.show(false)),
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
            tgc_interval: None,
            task_success: BTreeMap::new(),
            task_subtask_error: BTreeMap::new(),
            ends: BTreeMap::new(),
            code_cells_per_episode: Stat::default(),
            malformed_per_turn: Stat::default(),
        }
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
