//! Gold plans: the per-sub-task code and instructions a single-agent trajectory is aligned to.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use rung_env::TaskId;
use serde::{Deserialize, Serialize};

use crate::SegmentError;

/// One gold sub-task: what segmentation needs of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldStep {
    /// Skill kind (`phone.find_relative`), where known.
    #[serde(default)]
    pub kind: String,
    /// The app it acts in.
    pub app: String,
    /// One-line instruction.
    #[serde(default)]
    pub instruction: String,
    /// Gold code (runs after the code of the steps before it).
    pub code: String,
}

/// A task's gold plan: its sub-tasks in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoldPlan {
    /// The task.
    pub task_id: TaskId,
    /// The task's instruction, where known. A plan is only applied to a trajectory whose
    /// instruction is the same (when both are known), so a plan of another suite that happens
    /// to share a task id is never used.
    #[serde(default)]
    pub instruction: String,
    /// The sub-tasks, in order.
    #[serde(rename = "plan", alias = "subtasks")]
    pub steps: Vec<GoldStep>,
}

impl GoldPlan {
    /// Whether this plan may be applied to a trajectory of `task_id` with `instruction`.
    pub fn matches(&self, task_id: &TaskId, instruction: &str) -> bool {
        &self.task_id == task_id
            && (self.instruction.is_empty()
                || instruction.is_empty()
                || self.instruction.trim() == instruction.trim())
    }
}

#[cfg(feature = "world")]
impl From<&rung_world::Task> for GoldPlan {
    fn from(task: &rung_world::Task) -> Self {
        GoldPlan {
            task_id: task.task_id.clone(),
            instruction: task.instruction.clone(),
            steps: task
                .plan
                .iter()
                .map(|s| GoldStep {
                    kind: s.kind.clone(),
                    app: s.app.clone(),
                    instruction: s.instruction.clone(),
                    code: s.code.clone(),
                })
                .collect(),
        }
    }
}

/// Where gold plans come from.
pub trait PlanSource {
    /// The plan of a task, if known.
    fn plan(&self, task_id: &TaskId) -> Option<&GoldPlan>;
}

/// No gold plans: every single-agent trajectory is segmented by the heuristic.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPlans;

impl PlanSource for NoPlans {
    fn plan(&self, _: &TaskId) -> Option<&GoldPlan> {
        None
    }
}

/// Gold plans by task id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GoldPlans {
    plans: BTreeMap<TaskId, GoldPlan>,
}

impl GoldPlans {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a plan.
    pub fn insert(&mut self, plan: GoldPlan) {
        self.plans.insert(plan.task_id.clone(), plan);
    }

    /// Number of plans.
    pub fn len(&self) -> usize {
        self.plans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.plans.is_empty()
    }

    /// The plans, by task id.
    pub fn into_plans(self) -> impl Iterator<Item = GoldPlan> {
        self.plans.into_values()
    }

    /// Reads a task file as `rung world export` writes it (`datasets/world/<split>.jsonl`: one
    /// task per line with `task_id`, `instruction` and `plan: [{kind, app, instruction, code}]`;
    /// other fields are ignored). Any JSONL of objects with those fields works, so gold plans of
    /// other task sets can be supplied the same way.
    pub fn read_jsonl(path: &Path) -> Result<Self, SegmentError> {
        let file = std::fs::File::open(path).map_err(|source| SegmentError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let mut plans = Self::new();
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| SegmentError::Io {
                path: path.display().to_string(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let plan: GoldPlan =
                serde_json::from_str(&line).map_err(|e| SegmentError::Malformed {
                    path: path.display().to_string(),
                    line: n as u64 + 1,
                    message: e.to_string(),
                })?;
            plans.insert(plan);
        }
        Ok(plans)
    }

    /// The plans of every task of an embedded-world suite.
    #[cfg(feature = "world")]
    pub fn from_suite(suite: &rung_world::Suite) -> Self {
        let mut plans = Self::new();
        for task in &suite.tasks {
            plans.insert(GoldPlan::from(task));
        }
        plans
    }

    /// The plans of the embedded world's suite generated with `seed` (the default suite of
    /// `rung world` and of the expert data generator is seed 0).
    #[cfg(feature = "world")]
    pub fn embedded(seed: u64) -> Self {
        Self::from_suite(&rung_world::Suite::generate(rung_world::SuiteOptions {
            seed,
            ..rung_world::SuiteOptions::default()
        }))
    }
}

impl FromIterator<GoldPlan> for GoldPlans {
    fn from_iter<I: IntoIterator<Item = GoldPlan>>(iter: I) -> Self {
        let mut plans = Self::new();
        for plan in iter {
            plans.insert(plan);
        }
        plans
    }
}

impl Extend<GoldPlan> for GoldPlans {
    fn extend<I: IntoIterator<Item = GoldPlan>>(&mut self, iter: I) {
        for plan in iter {
            self.insert(plan);
        }
    }
}

impl PlanSource for GoldPlans {
    fn plan(&self, task_id: &TaskId) -> Option<&GoldPlan> {
        self.plans.get(task_id)
    }
}

impl<P: PlanSource + ?Sized> PlanSource for &P {
    fn plan(&self, task_id: &TaskId) -> Option<&GoldPlan> {
        (**self).plan(task_id)
    }
}
