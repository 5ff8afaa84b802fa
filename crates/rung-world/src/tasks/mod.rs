//! The task suite: scenario templates instantiated into tasks with gold plans, split like
//! AppWorld's (train, dev, test_normal, test_challenge).
//!
//! A template is a short Rust function over a [`Builder`]: each builder skill picks parameters
//! from the world, appends one gold sub-task (app, one-line instruction, gold code) and computes
//! the ground truth from the database directly. The gold code must reach the same result through
//! the APIs; the suite tests check that for every task.

mod builder;
mod skills;
mod suite;
mod templates;

pub use builder::{Builder, Phrasing, login_code};
pub use suite::{Suite, SuiteOptions, world_seed};
pub use templates::{Template, challenge_templates, normal_templates};

use rung_env::{Split, Supervisor, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One step of a gold plan: what an orchestrator delegates and what an executor writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubTask {
    /// Skill kind, such as `phone.find_relative` (used for curriculum and split analysis).
    pub kind: String,
    /// The app the sub-task acts in.
    pub app: String,
    /// One-line natural-language instruction.
    pub instruction: String,
    /// Gold code (runs in the episode's namespace after the previous sub-tasks' code).
    pub code: String,
}

/// A task of the embedded world.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// `<scenario>_<variant>`.
    pub task_id: TaskId,
    /// Dataset split.
    pub split: Split,
    /// Template name (the scenario kind).
    pub template: String,
    /// Difficulty 1–3.
    pub difficulty: u8,
    /// Seed of the world the task runs in.
    pub world_seed: u64,
    /// The world's clock.
    pub datetime: String,
    /// Who gives the instruction.
    pub supervisor: Supervisor,
    /// Id of the supervisor in the world's people table.
    pub supervisor_id: u32,
    /// The instruction.
    pub instruction: String,
    /// Gold plan.
    pub plan: Vec<SubTask>,
    /// Gold code that ends the task (`apis.supervisor.complete_task(...)`).
    pub completion: String,
    /// Expected answer, if the task asks a question.
    pub answer: Option<Value>,
}

impl Task {
    /// The full gold program: every sub-task's code, then the completion.
    pub fn gold_cells(&self) -> Vec<&str> {
        self.plan
            .iter()
            .map(|s| s.code.as_str())
            .chain([self.completion.as_str()])
            .collect()
    }

    /// The distinct apps the task needs, in plan order.
    pub fn apps(&self) -> Vec<&str> {
        let mut apps: Vec<&str> = Vec::new();
        for step in &self.plan {
            if !apps.contains(&step.app.as_str()) {
                apps.push(&step.app);
            }
        }
        apps
    }
}
