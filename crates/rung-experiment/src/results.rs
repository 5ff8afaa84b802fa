//! Aggregation: per run, then per configuration over seeds (mean and spread).

use std::collections::BTreeMap;

use rung_agents::EvalReport;
use rung_agents::harness::MeanCost;
use rung_agents::harness::diagnostics::{Diagnostics, TaskOutcome};
use rung_trajectory::Role;
use serde::{Deserialize, Serialize};

use crate::plan::{Configuration, Run};
use crate::stages::{EpochCost, EvalOutput, TrainOutput};

/// Mean and spread of a quantity over seeds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 with one seed).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Seeds.
    pub n: usize,
}

impl Stat {
    /// Of a list of values (NaN for none).
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                std: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                n: 0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = if n > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Stat {
            mean,
            std: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            n,
        }
    }

    /// `12.3 ± 1.2` (or `12.3` with one seed).
    pub fn show(&self, digits: usize) -> String {
        if self.n == 0 || self.mean.is_nan() {
            return "–".into();
        }
        if self.n > 1 {
            format!("{:.digits$} ± {:.digits$}", self.mean, self.std)
        } else {
            format!("{:.digits$}", self.mean)
        }
    }
}

/// One run on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitResult {
    /// TGC, percent.
    pub tgc: f64,
    /// SGC, percent.
    pub sgc: f64,
    /// TGC by difficulty.
    pub tgc_by_difficulty: BTreeMap<u8, f64>,
    /// Tasks evaluated.
    pub tasks: usize,
    /// Sub-task error rate, percent, where gold plans exist.
    pub subtask_error: Option<f64>,
    /// Sub-task error rate by sub-task index (0-based), percent.
    pub subtask_error_by_index: Vec<f64>,
    /// Sub-task error rate by role, percent.
    pub subtask_error_by_role: BTreeMap<Role, f64>,
    /// Mean cost of a task.
    pub cost_per_task: MeanCost,
    /// How episodes ended.
    pub ends: BTreeMap<String, usize>,
    /// Each task's outcome, in task order (for comparisons task by task).
    #[serde(default)]
    pub outcomes: Vec<TaskOutcome>,
    /// Turns, parse failures, code cells.
    #[serde(default)]
    pub diagnostics: Diagnostics,
}

impl SplitResult {
    /// From the harness's report.
    pub fn from_report(report: &EvalReport) -> Self {
        let errors = report.subtask_errors.as_ref();
        SplitResult {
            tgc: report.scores.overall.tgc,
            sgc: report.scores.overall.sgc,
            tgc_by_difficulty: report
                .scores
                .by_difficulty
                .iter()
                .map(|(d, c)| (*d, c.tgc))
                .collect(),
            tasks: report.episodes,
            subtask_error: errors
                .filter(|e| e.overall.subtasks > 0)
                .map(|e| e.overall.percent),
            subtask_error_by_index: errors
                .map(|e| e.by_index.iter().map(|r| r.percent).collect())
                .unwrap_or_default(),
            subtask_error_by_role: errors
                .map(|e| {
                    e.by_role
                        .iter()
                        .filter(|(_, r)| r.subtasks > 0)
                        .map(|(role, r)| (*role, r.percent))
                        .collect()
                })
                .unwrap_or_default(),
            cost_per_task: report.cost.per_task,
            ends: report.ends.clone(),
            outcomes: report.outcomes.clone(),
            diagnostics: report.diagnostics,
        }
    }
}

/// Training of one role's model, as a run reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleTraining {
    /// The model that plays.
    pub model_dir: std::path::PathBuf,
    /// Parameters.
    pub params: u64,
    /// Tokens processed over all epochs.
    pub tokens: u64,
    /// Supervised tokens over all epochs.
    pub supervised_tokens: u64,
    /// Training FLOPs.
    pub flops: f64,
    /// Seconds.
    pub wall_seconds: f64,
    /// Final validation loss.
    pub final_val_loss: Option<f64>,
    /// Final validation token accuracy (supervised targets).
    #[serde(default)]
    pub final_val_accuracy: Option<f64>,
    /// Final validation accuracy on copied task-specific literals.
    #[serde(default)]
    pub final_val_literal_accuracy: Option<f64>,
    /// Per epoch.
    pub epochs: Vec<EpochCost>,
}

impl From<&TrainOutput> for RoleTraining {
    fn from(t: &TrainOutput) -> Self {
        RoleTraining {
            model_dir: t.model_dir.clone(),
            params: t.params,
            tokens: t.tokens,
            supervised_tokens: t.supervised_tokens,
            flops: t.flops,
            wall_seconds: t.wall_seconds,
            final_val_loss: t.final_val_loss,
            final_val_accuracy: t.final_val_accuracy,
            final_val_literal_accuracy: t.final_val_literal_accuracy,
            epochs: t.epochs.clone(),
        }
    }
}

/// One run: training per role, evaluation per split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// The run.
    pub run: Run,
    /// Its name.
    pub name: String,
    /// Parameters of all the run's models together.
    pub params: u64,
    /// Training per role.
    pub training: BTreeMap<Role, RoleTraining>,
    /// Training FLOPs of all roles.
    pub training_flops: f64,
    /// Supervised tokens of all roles.
    pub training_supervised_tokens: u64,
    /// Tokens of all roles.
    pub training_tokens: u64,
    /// Training seconds of all roles.
    pub training_seconds: f64,
    /// Per split (`dev`, `test_normal`, …).
    pub splits: BTreeMap<String, SplitResult>,
}

impl RunResult {
    /// Assembles a run's stages.
    pub fn new(
        run: &Run,
        trained: &BTreeMap<Role, TrainOutput>,
        evals: &[EvalOutput],
    ) -> RunResult {
        let training: BTreeMap<Role, RoleTraining> = trained
            .iter()
            .map(|(role, t)| (*role, RoleTraining::from(t)))
            .collect();
        RunResult {
            run: run.clone(),
            name: run.name(),
            params: training.values().map(|t| t.params).sum(),
            training_flops: training.values().map(|t| t.flops).sum(),
            training_supervised_tokens: training.values().map(|t| t.supervised_tokens).sum(),
            training_tokens: training.values().map(|t| t.tokens).sum(),
            training_seconds: training.values().map(|t| t.wall_seconds).sum(),
            training,
            splits: evals
                .iter()
                .map(|e| {
                    (
                        crate::config::split_name(e.split),
                        SplitResult::from_report(&e.report),
                    )
                })
                .collect(),
        }
    }
}

/// A configuration over its seeds, on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// The configuration.
    pub configuration: Configuration,
    /// `2A small prost`.
    pub label: String,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Parameters of all its models.
    pub params: u64,
    /// TGC, percent.
    pub tgc: Stat,
    /// SGC, percent.
    pub sgc: Stat,
    /// TGC by difficulty.
    pub tgc_by_difficulty: BTreeMap<u8, Stat>,
    /// FLOPs per task.
    pub flops_per_task: Stat,
    /// Prompt plus generated tokens per task.
    pub tokens_per_task: Stat,
    /// Seconds per task.
    pub seconds_per_task: Stat,
    /// Interactions per task.
    pub interactions_per_task: Stat,
    /// Sub-task error rate, percent.
    pub subtask_error: Option<Stat>,
    /// Sub-task error rate by index, percent.
    pub subtask_error_by_index: Vec<Stat>,
    /// Sub-task error rate by role, percent.
    pub subtask_error_by_role: BTreeMap<Role, Stat>,
    /// Training FLOPs of all roles.
    pub training_flops: Stat,
    /// Supervised training tokens of all roles.
    pub training_supervised_tokens: Stat,
    /// Training seconds of all roles.
    pub training_seconds: Stat,
    /// Validation loss after the last epoch (nats per token, every sub-task supervised), mean
    /// over the roles' models: the one signal left when no configuration completes a task.
    /// `None` when some role was trained without validation.
    pub final_val_loss: Option<Stat>,
    /// Whether it is on the Pareto front (TGC against FLOPs per task).
    pub pareto: bool,
    /// TGC with its 95% bootstrap interval over tasks (per-task success averaged over seeds
    /// first; [`crate::stats`]).
    #[serde(default)]
    pub tgc_interval: Option<crate::stats::Estimate>,
    /// Per task: success in points (0–100), averaged over seeds; the unit of paired
    /// comparisons.
    #[serde(default)]
    pub task_success: BTreeMap<String, f64>,
    /// Per task with judged sub-tasks: the percentage of its sub-tasks that failed, averaged
    /// over seeds.
    #[serde(default)]
    pub task_subtask_error: BTreeMap<String, f64>,
    /// How episodes ended, summed over seeds.
    #[serde(default)]
    pub ends: BTreeMap<String, usize>,
    /// Code cells run per episode.
    #[serde(default)]
    pub code_cells_per_episode: Stat,
    /// Model outputs that parsed as no action, percent of turns.
    #[serde(default)]
    pub malformed_per_turn: Stat,
}

/// Summaries of every configuration on `split`, in configuration order.
pub fn summarise(runs: &[RunResult], split: &str) -> Vec<ConfigSummary> {
    let mut by_config: BTreeMap<&Configuration, Vec<&RunResult>> = BTreeMap::new();
    for run in runs {
        by_config
            .entry(&run.run.configuration)
            .or_default()
            .push(run);
    }
    let mut out = Vec::new();
    for (configuration, runs) in by_config {
        let results: Vec<&SplitResult> = runs.iter().filter_map(|r| r.splits.get(split)).collect();
        if results.is_empty() {
            continue;
        }
        let stat = |f: &dyn Fn(&SplitResult) -> f64| {
            Stat::of(&results.iter().map(|r| f(r)).collect::<Vec<_>>())
        };
        // Over the seeds that have the value (a difficulty level, sub-task index or role may be
        // missing from some seeds' evaluations).
        let present = |f: &dyn Fn(&SplitResult) -> Option<f64>| {
            Stat::of(&results.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
        };
        let run_stat = |f: &dyn Fn(&RunResult) -> f64| {
            Stat::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
        };
        let levels: std::collections::BTreeSet<u8> = results
            .iter()
            .flat_map(|r| r.tgc_by_difficulty.keys().copied())
            .collect();
        let max_index = results
            .iter()
            .map(|r| r.subtask_error_by_index.len())
            .max()
            .unwrap_or(0);
        let roles: std::collections::BTreeSet<Role> = results
            .iter()
            .flat_map(|r| r.subtask_error_by_role.keys().copied())
            .collect();
        out.push(ConfigSummary {
            label: configuration.to_string(),
            configuration: configuration.clone(),
            seeds: runs.iter().map(|r| r.run.seed).collect(),
            params: runs[0].params,
            tgc: stat(&|r| r.tgc),
            sgc: stat(&|r| r.sgc),
            tgc_by_difficulty: levels
                .into_iter()
                .map(|level| {
                    (
                        level,
                        present(&|r| r.tgc_by_difficulty.get(&level).copied()),
                    )
                })
                .collect(),
            flops_per_task: stat(&|r| r.cost_per_task.flops),
            tokens_per_task: stat(&|r| {
                r.cost_per_task.prompt_tokens + r.cost_per_task.generated_tokens
            }),
            seconds_per_task: stat(&|r| r.cost_per_task.wall_seconds),
            interactions_per_task: stat(&|r| r.cost_per_task.interactions),
            subtask_error: Some(present(&|r| r.subtask_error)).filter(|s| s.n > 0),
            subtask_error_by_index: (0..max_index)
                .map(|i| present(&|r| r.subtask_error_by_index.get(i).copied()))
                .collect(),
            subtask_error_by_role: roles
                .into_iter()
                .map(|role| {
                    (
                        role,
                        present(&|r| r.subtask_error_by_role.get(&role).copied()),
                    )
                })
                .collect(),
            training_flops: run_stat(&|r| r.training_flops),
            training_supervised_tokens: run_stat(&|r| r.training_supervised_tokens as f64),
            training_seconds: run_stat(&|r| r.training_seconds),
            final_val_loss: Some(Stat::of(
                &runs
                    .iter()
                    .filter_map(|r| mean_final_val_loss(r))
                    .collect::<Vec<_>>(),
            ))
            .filter(|s| s.n > 0),
            pareto: false,
            tgc_interval: None,
            task_success: per_task(&results, &|o| Some(if o.success { 100.0 } else { 0.0 })),
            task_subtask_error: per_task(&results, &|o| {
                (o.subtasks > 0).then(|| 100.0 * o.failed_subtasks as f64 / o.subtasks as f64)
            }),
            ends: results.iter().flat_map(|r| &r.ends).fold(
                BTreeMap::new(),
                |mut acc, (end, n)| {
                    *acc.entry(end.clone()).or_insert(0) += n;
                    acc
                },
            ),
            code_cells_per_episode: stat(&|r| r.diagnostics.code_cells_per_episode()),
            malformed_per_turn: stat(&|r| 100.0 * r.diagnostics.malformed_per_turn()),
        });
        if let Some(last) = out.last_mut() {
            let values: Vec<f64> = last.task_success.values().copied().collect();
            last.tgc_interval = crate::stats::bootstrap_mean(&values, crate::stats::SEED);
        }
    }
    let points: Vec<(f64, f64)> = out
        .iter()
        .map(|c| (c.flops_per_task.mean, c.tgc.mean))
        .collect();
    for (summary, on_front) in out.iter_mut().zip(crate::pareto::front(&points)) {
        summary.pareto = on_front;
    }
    out
}

/// A per-task value averaged over the seeds that have it (`value` gives `None` where a task
/// has none), keyed by task id.
fn per_task(
    results: &[&SplitResult],
    value: &dyn Fn(&TaskOutcome) -> Option<f64>,
) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for outcome in results.iter().flat_map(|r| &r.outcomes) {
        if let Some(v) = value(outcome) {
            let entry = sums
                .entry(outcome.task_id.as_str().to_string())
                .or_insert((0.0, 0));
            entry.0 += v;
            entry.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(task, (sum, n))| (task, sum / n as f64))
        .collect()
}

/// Mean of the run's role models' final validation losses; `None` if any role lacks one.
fn mean_final_val_loss(run: &RunResult) -> Option<f64> {
    let losses: Option<Vec<f64>> = run.training.values().map(|t| t.final_val_loss).collect();
    let losses = losses.filter(|l| !l.is_empty())?;
    Some(losses.iter().sum::<f64>() / losses.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(outcomes: &[(&str, bool, usize, usize)]) -> SplitResult {
        SplitResult {
            tgc: 0.0,
            sgc: 0.0,
            tgc_by_difficulty: BTreeMap::new(),
            tasks: outcomes.len(),
            subtask_error: None,
            subtask_error_by_index: vec![],
            subtask_error_by_role: BTreeMap::new(),
            cost_per_task: MeanCost::default(),
            ends: BTreeMap::new(),
            outcomes: outcomes
                .iter()
                .map(|&(id, success, subtasks, failed_subtasks)| TaskOutcome {
                    task_id: id.parse().unwrap(),
                    success,
                    subtasks,
                    failed_subtasks,
                    end: "completed".into(),
                })
                .collect(),
            diagnostics: Diagnostics::default(),
        }
    }

    #[test]
    fn per_task_values_are_averaged_over_seeds() {
        let s0 = split(&[("aaaaaaa_1", true, 2, 0), ("bbbbbbb_1", false, 2, 2)]);
        let s1 = split(&[("aaaaaaa_1", false, 2, 1), ("bbbbbbb_1", false, 0, 0)]);
        let both = [&s0, &s1];
        let success = per_task(&both, &|o| Some(if o.success { 100.0 } else { 0.0 }));
        assert_eq!(success["aaaaaaa_1"], 50.0);
        assert_eq!(success["bbbbbbb_1"], 0.0);
        // A seed without judged sub-tasks for a task does not count towards its error rate.
        let errors = per_task(&both, &|o| {
            (o.subtasks > 0).then(|| 100.0 * o.failed_subtasks as f64 / o.subtasks as f64)
        });
        assert_eq!(errors["aaaaaaa_1"], 25.0);
        assert_eq!(errors["bbbbbbb_1"], 100.0);
    }

    #[test]
    fn stats_have_sample_spread() {
        let s = Stat::of(&[10.0, 20.0, 30.0]);
        assert_eq!(s.mean, 20.0);
        assert_eq!(s.std, 10.0);
        assert_eq!((s.min, s.max, s.n), (10.0, 30.0, 3));
        assert_eq!(s.show(1), "20.0 ± 10.0");
        let one = Stat::of(&[5.0]);
        assert_eq!((one.std, one.show(0).as_str()), (0.0, "5"));
        assert_eq!(Stat::of(&[]).show(1), "–");
    }
}
