//! Limits that keep any policy, however broken, from running an episode forever.

use serde::{Deserialize, Serialize};

/// Per-episode budgets. Exceeding one ends the episode cleanly: the environment evaluates what
/// was done, and the trajectory records which budget ran out ([`rung_trajectory::Budget`]).
///
/// Besides these, a role that repeats its previous action verbatim (the same code cell after
/// whitespace trimming, or the same sub-task line) ends the episode with `repeated_action`
/// without running the repeat: the world is deterministic, so a repeat can only loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// Code executions per task, the final `complete_task` call included. A code action that
    /// would exceed it is recorded but not run.
    pub max_interactions: u32,
    /// Generated tokens in one model call, as the policy counts them. An output over it is
    /// recorded (not acted on) and ends the episode; model policies should cap generation at
    /// this value.
    pub max_tokens_per_turn: u64,
    /// Sub-tasks an orchestrator may issue per task.
    pub max_subtasks: u32,
    /// Executor calls per sub-task, over all its attempts.
    pub max_executor_steps: u32,
    /// How many times a critic may send one sub-task back. Later rejections are recorded but
    /// the result goes to the orchestrator anyway.
    pub max_critic_retries: u32,
    /// Consecutive outputs of one role in no valid format that are answered with a reminder of
    /// the format; the next one ends the episode.
    pub max_format_retries: u32,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            max_interactions: 50,
            max_tokens_per_turn: 1024,
            max_subtasks: 10,
            max_executor_steps: 12,
            max_critic_retries: 1,
            max_format_retries: 2,
        }
    }
}
