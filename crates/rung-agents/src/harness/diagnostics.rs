//! What an evaluation knows per task and per turn beyond its scores: each task's outcome (for
//! paired comparisons between systems evaluated on the same tasks) and how the models behaved
//! (code cells run, outputs that parsed as no action), so a run that cannot measure anything
//! shows why.

use rung_env::TaskId;
use rung_trajectory::{Action, Episode};
use serde::{Deserialize, Serialize};

use super::JudgedEpisode;

/// One task's result in one evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// The task.
    pub task_id: TaskId,
    /// Whether the task's goal was reached (the TGC numerator).
    pub success: bool,
    /// Sub-tasks judged against the gold plan (0 where there is none).
    #[serde(default)]
    pub subtasks: usize,
    /// Of those, sub-tasks that went wrong or were never reached.
    #[serde(default)]
    pub failed_subtasks: usize,
    /// How the episode ended (`completed`, `budget_exceeded:executor_steps`, …).
    #[serde(default)]
    pub end: String,
}

impl TaskOutcome {
    /// The outcome of one judged episode.
    pub fn of(run: &JudgedEpisode) -> Self {
        let (episode, verdicts) = run;
        let verdicts = verdicts.as_deref().unwrap_or_default();
        TaskOutcome {
            task_id: episode.task_id.clone(),
            success: episode.evaluation.success,
            subtasks: verdicts.len(),
            failed_subtasks: verdicts.iter().filter(|v| v.failed()).count(),
            end: episode.end.label(),
        }
    }
}

/// How the models of a run behaved, summed over its episodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Diagnostics {
    /// Model calls (turns) over all episodes.
    pub turns: usize,
    /// Turns whose output matched none of the role's formats (parse/format failures).
    pub malformed_turns: usize,
    /// Code cells the environment ran, over all episodes (the orchestrator's final
    /// `complete_task` call included).
    pub code_cells: usize,
    /// Episodes.
    pub episodes: usize,
}

impl Diagnostics {
    /// Adds one episode.
    pub fn add(&mut self, episode: &Episode) {
        self.episodes += 1;
        self.turns += episode.turns.len();
        self.malformed_turns += episode
            .turns
            .iter()
            .filter(|t| matches!(t.action, Action::Malformed { .. }))
            .count();
        self.code_cells += episode.code_cells().count();
    }

    /// Code cells per episode (0 without episodes).
    pub fn code_cells_per_episode(&self) -> f64 {
        ratio(self.code_cells, self.episodes)
    }

    /// Fraction of turns that did not parse (0 without turns).
    pub fn malformed_per_turn(&self) -> f64 {
        ratio(self.malformed_turns, self.turns)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}
