//! What an evaluation run reports: scores, sub-task error rates, cost, how episodes ended.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rung_env::{EvaluatedTask, Scores, Split};
use rung_trajectory::{Cost, SystemConfig};
use serde::{Deserialize, Serialize};

use super::JudgedEpisode;
use super::diagnostics::{Diagnostics, TaskOutcome};
use super::subtasks::{Rate, SubtaskErrors};

/// Mean cost of one task.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MeanCost {
    /// Prompt tokens (estimates for scripted policies).
    pub prompt_tokens: f64,
    /// Generated tokens (estimates for scripted policies).
    pub generated_tokens: f64,
    /// Floating-point operations.
    pub flops: f64,
    /// Wall-clock seconds.
    pub wall_seconds: f64,
    /// Code executions.
    pub interactions: f64,
}

/// Cost of a run, in total and per task.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct CostReport {
    /// Summed over episodes (episode wall times add up; see `EvalReport::wall_seconds` for the
    /// run's elapsed time).
    pub total: Cost,
    /// Mean per episode.
    pub per_task: MeanCost,
}

/// The result of evaluating a system on a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The system and its models.
    pub system: SystemConfig,
    /// The split.
    pub split: Split,
    /// Episodes run.
    pub episodes: usize,
    /// TGC and SGC, overall and by difficulty.
    pub scores: Scores,
    /// Sub-task error rates, where gold plans exist.
    pub subtask_errors: Option<SubtaskErrors>,
    /// Cost.
    pub cost: CostReport,
    /// How many episodes ended each way (`completed`, `budget_exceeded:interactions`, …).
    pub ends: BTreeMap<String, usize>,
    /// Elapsed time of the whole run, seconds.
    pub wall_seconds: f64,
    /// Episodes run again from the start because their environment failed (a server that
    /// died mid-episode); each is counted once in the scores, with its retried result.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub env_retries: usize,
    /// Each task's result, in task order: systems evaluated on the same tasks compare task by
    /// task.
    #[serde(default)]
    pub outcomes: Vec<TaskOutcome>,
    /// How the models behaved: turns, parse failures, code cells.
    #[serde(default)]
    pub diagnostics: Diagnostics,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl EvalReport {
    /// Aggregates episodes and, where judged, their sub-task verdicts.
    pub fn new(
        system: SystemConfig,
        split: Split,
        runs: &[JudgedEpisode],
        judged: bool,
        wall_seconds: f64,
    ) -> Self {
        let tasks: Vec<EvaluatedTask> = runs
            .iter()
            .map(|(e, _)| EvaluatedTask {
                task_id: e.task_id.clone(),
                difficulty: e.evaluation.difficulty,
                success: e.evaluation.success,
            })
            .collect();
        let subtask_errors = judged.then(|| {
            let mut errors = SubtaskErrors::default();
            for (_, verdicts) in runs {
                errors.add(verdicts.as_deref());
            }
            errors
        });
        let mut total = Cost::default();
        let mut ends = BTreeMap::new();
        let mut diagnostics = Diagnostics::default();
        for (episode, _) in runs {
            diagnostics.add(episode);
            total.add(&episode.cost);
            *ends.entry(episode.end.label()).or_insert(0) += 1;
        }
        let n = runs.len().max(1) as f64;
        let per_task = MeanCost {
            prompt_tokens: total.prompt_tokens as f64 / n,
            generated_tokens: total.generated_tokens as f64 / n,
            flops: total.flops / n,
            wall_seconds: total.wall_seconds / n,
            interactions: f64::from(total.interactions) / n,
        };
        Self {
            system,
            split,
            episodes: runs.len(),
            scores: Scores::from_tasks(&tasks),
            subtask_errors,
            cost: CostReport { total, per_task },
            ends,
            wall_seconds,
            env_retries: 0,
            outcomes: runs.iter().map(TaskOutcome::of).collect(),
            diagnostics,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // A report holds only strings, numbers and maps with string keys: it always serialises.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The report as a table for people.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let models: Vec<String> = self
            .system
            .models
            .iter()
            .map(|(role, model)| format!("{role}={model}"))
            .collect();
        let _ = writeln!(
            out,
            "{} ({}) on {}: {} episodes in {:.1} s",
            self.system.kind,
            models.join(", "),
            self.split,
            self.episodes,
            self.wall_seconds
        );
        let _ = writeln!(
            out,
            "{:<14}{:>8}{:>8}{:>8}{:>11}",
            "", "TGC", "SGC", "tasks", "scenarios"
        );
        let mut row = |label: String, c: &rung_env::metrics::Completion| {
            let _ = writeln!(
                out,
                "{label:<14}{:>8.1}{:>8.1}{:>8}{:>11}",
                c.tgc, c.sgc, c.num_tasks, c.num_scenarios
            );
        };
        row("overall".into(), &self.scores.overall);
        for (level, completion) in &self.scores.by_difficulty {
            row(format!("difficulty {level}"), completion);
        }
        if let Some(errors) = &self.subtask_errors {
            let rate = |r: &Rate| format!("{:.1}% of {}", r.percent, r.subtasks);
            let roles: Vec<String> = errors
                .by_role
                .iter()
                .map(|(role, r)| format!("{role} {}", rate(r)))
                .collect();
            let _ = writeln!(
                out,
                "sub-task errors: {} ({}); unreached {}",
                rate(&errors.overall),
                roles.join(", "),
                errors.unreached
            );
            let by_index: Vec<String> = errors
                .by_index
                .iter()
                .enumerate()
                .map(|(i, r)| format!("#{} {}", i + 1, rate(r)))
                .collect();
            let _ = writeln!(out, "  by sub-task: {}", by_index.join(", "));
        }
        let c = &self.cost.per_task;
        let _ = writeln!(
            out,
            "per task: {:.0} prompt + {:.0} generated tokens, {:.3e} FLOPs, {:.3} s, {:.1} interactions",
            c.prompt_tokens, c.generated_tokens, c.flops, c.wall_seconds, c.interactions
        );
        let ends: Vec<String> = self
            .ends
            .iter()
            .map(|(end, n)| format!("{end} {n}"))
            .collect();
        let _ = writeln!(out, "ends: {}", ends.join(", "));
        let d = &self.diagnostics;
        let _ = writeln!(
            out,
            "turns: {} ({} did not parse, {:.1}%); code cells per episode {:.1}",
            d.turns,
            d.malformed_turns,
            100.0 * d.malformed_per_turn(),
            d.code_cells_per_episode()
        );
        out
    }
}
