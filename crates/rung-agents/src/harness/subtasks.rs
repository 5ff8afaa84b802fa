//! Sub-task error analysis: which gold sub-tasks an episode got wrong, and whose fault it was.
//!
//! For each gold sub-task `k` of a task (0-based):
//! - **multi-agent**: the orchestrator errs at `k` when its `k`-th issued sub-task names another
//!   app than gold sub-task `k`, when it completed the task without issuing a `k`-th sub-task,
//!   or (for `k` beyond the gold plan) when it issued a sub-task the plan does not have.
//!   Otherwise the executor errs when the code cells it ran for sub-task `k` did not do gold
//!   sub-task `k`'s work (judged by the [`GoldSource`]: its gold state changes, or for a
//!   sub-task that changes nothing, its gold result printed verbatim). The critic errs when it
//!   accepted a sub-task whose executor erred (false rejections are not counted).
//! - **single**: the agent errs at `k` when the whole episode did not do sub-task `k`'s work.
//! - A sub-task the episode never reached because it ended early (a budget, a loop, a policy
//!   error) errs without being charged to a role; it is counted as `unreached`.
//!
//! Instructions are free text, so whether an issued sub-task is "the same" as the gold one is
//! judged by its app alone.

use std::collections::BTreeMap;

use rung_trajectory::{Action, Episode, EpisodeEnd, Role, SystemKind};
use serde::{Deserialize, Serialize};

use crate::gold::{CellWindow, GoldSource};

/// The verdict on one sub-task of one episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskVerdict {
    /// Sub-task index (0-based).
    pub index: usize,
    /// Roles that had a say in it (the denominators of per-role rates).
    pub involved: Vec<Role>,
    /// Roles that erred on it.
    pub erred: Vec<Role>,
    /// Whether the episode ended before reaching it.
    pub unreached: bool,
}

impl SubtaskVerdict {
    /// Whether the sub-task went wrong, whoever is to blame.
    pub fn failed(&self) -> bool {
        self.unreached || !self.erred.is_empty()
    }
}

/// Judges every sub-task of an episode; `None` when the source has no gold plan or cannot
/// judge state changes.
pub fn analyse(episode: &Episode, gold: &dyn GoldSource) -> Option<Vec<SubtaskVerdict>> {
    let plan = gold.plan(&episode.task_id)?;
    let cells: Vec<&str> = episode.code_cells().collect();
    let n = plan.subtasks.len();
    if episode.system.kind == SystemKind::Single {
        let windows: Vec<CellWindow> = (0..n)
            .map(|k| CellWindow {
                subtask: k,
                cells: 0..cells.len(),
            })
            .collect();
        let done = gold.judge(&episode.task_id, &cells, &windows)?;
        return Some(
            done.iter()
                .enumerate()
                .map(|(index, ok)| SubtaskVerdict {
                    index,
                    involved: vec![Role::Single],
                    erred: if *ok { vec![] } else { vec![Role::Single] },
                    unreached: false,
                })
                .collect(),
        );
    }
    let issued: Vec<&str> = episode
        .turns
        .iter()
        .filter_map(|t| match &t.action {
            Action::Subtask { app, .. } if t.role == Role::Orchestrator => Some(app.as_str()),
            _ => None,
        })
        .collect();
    // The cells each issued sub-task ran (an executor's cells are contiguous).
    let mut windows: BTreeMap<usize, std::ops::Range<usize>> = BTreeMap::new();
    let mut cell = 0;
    for turn in &episode.turns {
        if turn.code.is_none() {
            continue;
        }
        if turn.role == Role::Executor
            && let Some(k) = turn.subtask
        {
            let window = windows.entry(k).or_insert(cell..cell);
            window.end = cell + 1;
        }
        cell += 1;
    }
    let judged: Vec<CellWindow> = (0..n.min(issued.len()))
        .filter(|&k| issued[k] == plan.subtasks[k].app)
        .map(|k| CellWindow {
            subtask: k,
            cells: windows.get(&k).cloned().unwrap_or(0..0),
        })
        .collect();
    let done = gold.judge(&episode.task_id, &cells, &judged)?;
    let done: BTreeMap<usize, bool> = judged.iter().map(|w| w.subtask).zip(done).collect();
    let critic = episode.system.kind == SystemKind::ThreeAgent;
    let completed = episode.end == EpisodeEnd::Completed;
    let verdicts = (0..n.max(issued.len()))
        .map(|k| {
            let mut verdict = SubtaskVerdict {
                index: k,
                involved: vec![Role::Orchestrator],
                erred: vec![],
                unreached: false,
            };
            if k >= n {
                verdict.erred.push(Role::Orchestrator);
            } else if k >= issued.len() {
                if completed {
                    verdict.erred.push(Role::Orchestrator);
                } else {
                    verdict.unreached = true;
                }
            } else if issued[k] != plan.subtasks[k].app {
                verdict.erred.push(Role::Orchestrator);
            } else {
                verdict.involved.push(Role::Executor);
                if !done.get(&k).copied().unwrap_or(false) {
                    verdict.erred.push(Role::Executor);
                }
                let accepted = last_verdict_accepts(episode, k);
                if critic && let Some(accepted) = accepted {
                    verdict.involved.push(Role::Critic);
                    if accepted && verdict.erred.contains(&Role::Executor) {
                        verdict.erred.push(Role::Critic);
                    }
                }
            }
            verdict
        })
        .collect();
    Some(verdicts)
}

/// Whether the critic's last verdict on sub-task `k` was an acceptance (`None`: no verdict).
fn last_verdict_accepts(episode: &Episode, k: usize) -> Option<bool> {
    episode
        .turns
        .iter()
        .rev()
        .filter(|t| t.role == Role::Critic && t.subtask == Some(k))
        .find_map(|t| match t.action {
            Action::Accept => Some(true),
            Action::Retry { .. } => Some(false),
            _ => None,
        })
}

/// Errors among sub-tasks, as counts and a percentage.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rate {
    /// Sub-tasks counted.
    pub subtasks: usize,
    /// Of which erred.
    pub errors: usize,
    /// `errors / subtasks` in percent (0 when nothing was counted).
    pub percent: f64,
}

impl Rate {
    fn count(&mut self, erred: bool) {
        self.subtasks += 1;
        self.errors += usize::from(erred);
        self.percent = 100.0 * self.errors as f64 / self.subtasks as f64;
    }
}

/// Sub-task error rates over a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubtaskErrors {
    /// Over all sub-tasks of all episodes.
    pub overall: Rate,
    /// By sub-task index (0-based); indices beyond a task's gold plan count issued extras.
    pub by_index: Vec<Rate>,
    /// By role: of the sub-tasks a role had a say in, how many it got wrong.
    pub by_role: BTreeMap<Role, Rate>,
    /// Sub-tasks never reached because the episode ended early.
    pub unreached: usize,
    /// Episodes that could not be judged (no gold plan).
    pub unjudged_episodes: usize,
}

impl SubtaskErrors {
    /// Adds one episode's verdicts (`None`: it could not be judged).
    pub fn add(&mut self, verdicts: Option<&[SubtaskVerdict]>) {
        let Some(verdicts) = verdicts else {
            self.unjudged_episodes += 1;
            return;
        };
        for verdict in verdicts {
            self.overall.count(verdict.failed());
            if self.by_index.len() <= verdict.index {
                self.by_index.resize(verdict.index + 1, Rate::default());
            }
            self.by_index[verdict.index].count(verdict.failed());
            self.unreached += usize::from(verdict.unreached);
            for role in &verdict.involved {
                self.by_role
                    .entry(*role)
                    .or_default()
                    .count(verdict.erred.contains(role));
            }
        }
    }
}
