//! Gold plans: where scripted experts get their script and the harness its sub-task verdicts.
//!
//! [`GoldSource`] is the seam for other task sets: the embedded world implements it with
//! [`WorldGold`]; a source for real AppWorld's train and dev solutions can be plugged in later
//! (it may answer `None` where it knows less, and the harness then leaves sub-task error rates
//! out).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, PoisonError};

use rung_env::{Split, TaskId};
use rung_world::EmbeddedWorld;
use rung_world::env::{expectation, replay};
use rung_world::evaluate::{Expectation, NormalChange, normalise_changes};
use rung_world::sandbox::{FAILED, Limits, SUCCESSFUL};
use serde_json::Value;

/// One gold sub-task.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldSubtask {
    /// Skill kind (`phone.find_relative`).
    pub kind: String,
    /// The app it acts in.
    pub app: String,
    /// One-line instruction, as an orchestrator issues it.
    pub instruction: String,
    /// Gold code; it runs in the namespace left by the sub-tasks before it.
    pub code: String,
    /// What the gold code prints when run after the gold code of the sub-tasks before it,
    /// where known. Experts derive their expected report from it.
    pub output: Option<String>,
}

/// A task's gold plan.
#[derive(Debug, Clone, PartialEq)]
pub struct GoldPlan {
    /// The task.
    pub task_id: TaskId,
    /// Sub-tasks in order.
    pub subtasks: Vec<GoldSubtask>,
    /// The cell that completes the task (`apis.supervisor.complete_task(...)`).
    pub completion: String,
    /// The expected answer; `None` when the task asks no question.
    pub answer: Option<Value>,
}

/// A stretch of an episode's code cells attributed to one gold sub-task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellWindow {
    /// Gold sub-task index (0-based).
    pub subtask: usize,
    /// Indices into the episode's code cells.
    pub cells: Range<usize>,
}

/// One cell run by [`GoldSource::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbedCell {
    /// What it printed (or its error).
    pub output: String,
    /// Whether it changed the world's state.
    pub changed_state: bool,
}

/// Gold knowledge about a task set.
pub trait GoldSource: Send + Sync {
    /// The tasks of a split, in a stable order (empty where the source does not know).
    fn tasks(&self, split: Split) -> Vec<TaskId>;

    /// The gold plan of a task.
    fn plan(&self, task_id: &TaskId) -> Option<Arc<GoldPlan>>;

    /// The parameter names of an API, where known; experts only make a wrong-parameter mistake
    /// when they can be sure the wrong name is rejected.
    fn api_parameters(&self, app: &str, api: &str) -> Option<Vec<String>> {
        let _ = (app, api);
        None
    }

    /// Runs `cells` in a fresh copy of the task's start state and returns each cell's output and
    /// whether it changed the state; `None` where the source cannot run code. Experts probe a
    /// deliberate mistake with it before writing it, so that they only make mistakes that fail
    /// (or find nothing) without touching the world.
    fn probe(&self, task_id: &TaskId, cells: &[&str]) -> Option<Vec<ProbedCell>> {
        let _ = (task_id, cells);
        None
    }

    /// For each window, whether the episode's cells in it did the gold sub-task's work: made
    /// its gold state changes, or, for a sub-task that changes nothing, printed its gold
    /// result. `cells` are all of the episode's code cells in order. `None` when the source
    /// cannot tell.
    fn judge(&self, task_id: &TaskId, cells: &[&str], windows: &[CellWindow]) -> Option<Vec<bool>> {
        let _ = (task_id, cells, windows);
        None
    }
}

/// The embedded world's gold: its suite's plans, replayed in process.
pub struct WorldGold {
    world: Arc<EmbeddedWorld>,
    plans: Mutex<HashMap<TaskId, Arc<GoldPlan>>>,
    expectations: Mutex<HashMap<TaskId, Arc<Expectation>>>,
}

impl WorldGold {
    /// The gold of `world`'s suite.
    pub fn new(world: Arc<EmbeddedWorld>) -> Self {
        Self {
            world,
            plans: Mutex::new(HashMap::new()),
            expectations: Mutex::new(HashMap::new()),
        }
    }

    /// The world whose gold this is.
    pub fn world(&self) -> &Arc<EmbeddedWorld> {
        &self.world
    }

    fn expectation(&self, task_id: &TaskId) -> Option<Arc<Expectation>> {
        let suite = self.world.suite();
        cached(&self.expectations, task_id, || {
            Some(Arc::new(expectation(suite, suite.task(task_id)?)))
        })
    }
}

/// Looks `key` up in `cache`, computing and storing it (outside the lock) when missing.
fn cached<T>(
    cache: &Mutex<HashMap<TaskId, Arc<T>>>,
    key: &TaskId,
    compute: impl FnOnce() -> Option<Arc<T>>,
) -> Option<Arc<T>> {
    // Entries are only ever inserted whole, so a poisoned map is still consistent.
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(key)
    {
        return Some(Arc::clone(found));
    }
    let value = compute()?;
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key.clone(), Arc::clone(&value));
    Some(value)
}

impl GoldSource for WorldGold {
    fn tasks(&self, split: Split) -> Vec<TaskId> {
        self.world
            .suite()
            .split(split)
            .map(|t| t.task_id.clone())
            .collect()
    }

    fn plan(&self, task_id: &TaskId) -> Option<Arc<GoldPlan>> {
        let suite = self.world.suite();
        cached(&self.plans, task_id, || {
            let task = suite.task(task_id)?;
            // The gold program is trusted: its interpreter needs no worker process.
            let gold = replay(
                suite,
                task,
                &task.gold_cells(),
                Limits::default().in_thread(),
            );
            let subtasks = task
                .plan
                .iter()
                .zip(&gold.outputs)
                .map(|(step, output)| GoldSubtask {
                    kind: step.kind.clone(),
                    app: step.app.clone(),
                    instruction: step.instruction.clone(),
                    code: step.code.clone(),
                    output: Some(output.clone()),
                })
                .collect();
            Some(Arc::new(GoldPlan {
                task_id: task_id.clone(),
                subtasks,
                completion: task.completion.clone(),
                answer: task.answer.clone(),
            }))
        })
    }

    fn api_parameters(&self, app: &str, api: &str) -> Option<Vec<String>> {
        let spec = rung_world::apps::registry().api(app, api).ok()?;
        Some(
            spec.all_params()
                .iter()
                .map(|p| p.name.to_owned())
                .collect(),
        )
    }

    fn probe(&self, task_id: &TaskId, cells: &[&str]) -> Option<Vec<ProbedCell>> {
        let suite = self.world.suite();
        let task = suite.task(task_id)?;
        // Probes are the experts' own code, trusted like the gold program.
        let run = replay(suite, task, cells, Limits::default().in_thread());
        let probed = run
            .outputs
            .into_iter()
            .enumerate()
            .map(|(i, output)| ProbedCell {
                output,
                changed_state: !run.states[i + 1].diff(&run.states[i]).is_empty(),
            })
            .collect();
        Some(probed)
    }

    fn judge(&self, task_id: &TaskId, cells: &[&str], windows: &[CellWindow]) -> Option<Vec<bool>> {
        let suite = self.world.suite();
        let task = suite.task(task_id)?;
        let expected = self.expectation(task_id)?;
        let plan = self.plan(task_id)?;
        let run = replay(suite, task, cells, Limits::default());
        let verdicts = windows
            .iter()
            .map(|window| {
                let Some((_, changes)) = expected.subtasks.get(window.subtask) else {
                    return false;
                };
                let range = window.cells.start.min(cells.len())..window.cells.end.min(cells.len());
                if !changes.is_empty() {
                    let made =
                        normalise_changes(&run.states[range.end].diff(&run.states[range.start]));
                    return contains_all(&made, changes);
                }
                let outputs = &run.outputs[range];
                match plan.subtasks[window.subtask].output.as_deref() {
                    None => true,
                    Some(gold) => result_seen(gold, outputs),
                }
            })
            .collect();
        Some(verdicts)
    }
}

/// Whether `made` contains every change of `wanted`, matched one to one.
fn contains_all(made: &[NormalChange], wanted: &[NormalChange]) -> bool {
    let mut pool: Vec<&NormalChange> = made.iter().collect();
    pool.sort();
    let mut used = vec![false; pool.len()];
    wanted.iter().all(|want| {
        let start = pool.partition_point(|c| *c < want);
        let slot = (start..pool.len())
            .take_while(|&i| pool[i] == want)
            .find(|&i| !used[i]);
        slot.map(|i| used[i] = true).is_some()
    })
}

/// Whether a read-only sub-task's outputs show its gold result: the gold output appears
/// verbatim in one of them, or, when the gold code prints nothing, the last cell succeeded.
/// Shared by every gold source that judges read-only sub-tasks by their printed results.
pub(crate) fn result_seen(gold: &str, outputs: &[String]) -> bool {
    let gold = gold.trim();
    if gold == SUCCESSFUL {
        return outputs.last().is_some_and(|o| !o.starts_with(FAILED));
    }
    outputs.iter().any(|o| o.contains(gold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_results_must_appear_verbatim() {
        let outputs = vec!["x".to_owned(), "{\"a\": 1}\n".to_owned()];
        assert!(result_seen("{\"a\": 1}", &outputs));
        assert!(!result_seen("{\"a\": 2}", &outputs));
        assert!(result_seen(SUCCESSFUL, &["ok".to_owned()]));
        assert!(!result_seen(SUCCESSFUL, &[format!("{FAILED}\nboom")]));
        assert!(!result_seen(SUCCESSFUL, &[]));
    }
}
