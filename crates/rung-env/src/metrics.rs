//! Task and scenario goal completion (TGC, SGC), overall and by difficulty.
//!
//! TGC is the percentage of tasks whose tests all pass; SGC the percentage of scenarios whose tasks
//! all pass (AppWorld's definitions). A scenario's difficulty is the difficulty of its tasks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::TaskId;

/// One evaluated task, the input of the aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluatedTask {
    /// The task.
    pub task_id: TaskId,
    /// Its scenario's difficulty (1–3).
    pub difficulty: u8,
    /// Whether all of its tests passed.
    pub success: bool,
}

/// TGC and SGC over a set of tasks, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Task goal completion, percent.
    pub tgc: f64,
    /// Scenario goal completion, percent.
    pub sgc: f64,
    /// Tasks counted.
    pub num_tasks: usize,
    /// Scenarios counted.
    pub num_scenarios: usize,
}

/// TGC and SGC overall and by difficulty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Over all tasks.
    pub overall: Completion,
    /// Keyed by difficulty level.
    pub by_difficulty: BTreeMap<u8, Completion>,
}

impl Scores {
    /// Aggregates evaluated tasks. A task listed twice counts twice (one row per episode).
    pub fn from_tasks(tasks: &[EvaluatedTask]) -> Self {
        let mut levels: BTreeMap<u8, Vec<&EvaluatedTask>> = BTreeMap::new();
        for task in tasks {
            levels.entry(task.difficulty).or_default().push(task);
        }
        Scores {
            overall: completion(tasks.iter()),
            by_difficulty: levels
                .into_iter()
                .map(|(level, tasks)| (level, completion(tasks.into_iter())))
                .collect(),
        }
    }
}

fn completion<'a>(tasks: impl Iterator<Item = &'a EvaluatedTask>) -> Completion {
    let mut scenarios: BTreeMap<&str, bool> = BTreeMap::new();
    let (mut passed, mut total) = (0usize, 0usize);
    for task in tasks {
        total += 1;
        passed += usize::from(task.success);
        let all = scenarios.entry(task.task_id.scenario_id()).or_insert(true);
        *all &= task.success;
    }
    let scenarios_passed = scenarios.values().filter(|ok| **ok).count();
    Completion {
        tgc: percent(passed, total),
        sgc: percent(scenarios_passed, scenarios.len()),
        num_tasks: total,
        num_scenarios: scenarios.len(),
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, difficulty: u8, success: bool) -> EvaluatedTask {
        EvaluatedTask {
            task_id: id.parse().unwrap(),
            difficulty,
            success,
        }
    }

    #[test]
    fn tgc_and_sgc_follow_appworld_definitions() {
        let tasks = [
            task("aaaaaaa_1", 1, true),
            task("aaaaaaa_2", 1, true),
            task("aaaaaaa_3", 1, true),
            task("bbbbbbb_1", 2, true),
            task("bbbbbbb_2", 2, false),
            task("bbbbbbb_3", 2, true),
            task("ccccccc_1", 3, false),
        ];
        let scores = Scores::from_tasks(&tasks);
        assert!((scores.overall.tgc - 500.0 / 7.0).abs() < 1e-9);
        assert!((scores.overall.sgc - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(scores.overall.num_tasks, 7);
        assert_eq!(scores.overall.num_scenarios, 3);
        assert_eq!(scores.by_difficulty[&1].tgc, 100.0);
        assert_eq!(scores.by_difficulty[&1].sgc, 100.0);
        assert!((scores.by_difficulty[&2].tgc - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(scores.by_difficulty[&2].sgc, 0.0);
        assert_eq!(scores.by_difficulty[&3].tgc, 0.0);
        assert_eq!(scores.by_difficulty.len(), 3);
    }

    #[test]
    fn empty_input_scores_zero() {
        let scores = Scores::from_tasks(&[]);
        assert_eq!(scores.overall.tgc, 0.0);
        assert_eq!(scores.overall.num_scenarios, 0);
        assert!(scores.by_difficulty.is_empty());
    }
}
