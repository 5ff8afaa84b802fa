//! Gold plans of real AppWorld tasks, from a gold file.
//!
//! AppWorld's ground truth has one solution program per task (train and dev only) but no split
//! into sub-tasks, and its engine runs out of process. [`AppWorldGold`] reads rung's gold file
//! instead: JSON written next to an AppWorld data folder by `xtask/appworld/make_synthetic.py`
//! (`cargo xtask appworld synth`), or by hand for other task sets, in this format:
//!
//! ```json
//! {
//!   "format": "rung-appworld-gold", "version": 1,
//!   "splits": {"train": ["2180a40_1", ...], "dev": [...], ...},
//!   "api_parameters": {"phone.search_contacts": [["access_token", true], ["query", false]]},
//!   "tasks": [{
//!     "task_id": "2180a40_1", "answer": null,
//!     "completion": "apis.supervisor.complete_task()",
//!     "plan": [{
//!       "kind": "simple_note.create_note", "app": "simple_note",
//!       "instruction": "Create the note ...", "code": "...", "output": "3\n",
//!       "probe": "...", "probe_expected": "[\"Weekend plan\"]\n"
//!     }]
//!   }]
//! }
//! ```
//!
//! `output` is what the sub-task's gold code prints after the sub-tasks before it (experts derive
//! their reports from it); `probe` is a read-only code cell whose printed value shows a sub-task's
//! state change, and `probe_expected` its output once the gold sub-task ran. Both are optional.
//!
//! Sub-task verdicts need a server: [`AppWorldGold::with_judge`] gives one (an environment no
//! episode runs on), where [`GoldSource::judge`] replays an episode's cells in a fresh episode of
//! the task. A sub-task with a probe is done in a window when the probe shows the gold state at
//! the window's end and did not at its start; one without (it only reads) is done when its gold
//! output appears in one of the window's outputs. Without a judge, verdicts are `None` and the
//! harness leaves sub-task error rates out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rung_env::{Environment, EpisodeOptions, Split, TaskId};
use serde::Deserialize;
use serde_json::Value;

use crate::error::AgentError;
use crate::gold::{CellWindow, GoldPlan, GoldSource, GoldSubtask, result_seen};

/// The `format` field of a gold file.
pub const GOLD_FORMAT: &str = "rung-appworld-gold";

/// The gold file version this code reads.
pub const GOLD_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
struct GoldFile {
    format: String,
    version: u32,
    #[serde(default)]
    splits: BTreeMap<String, Vec<TaskId>>,
    #[serde(default)]
    api_parameters: HashMap<String, Vec<(String, bool)>>,
    tasks: Vec<TaskEntry>,
}

#[derive(Debug, Deserialize)]
struct TaskEntry {
    task_id: TaskId,
    plan: Vec<SubtaskEntry>,
    completion: String,
    #[serde(default)]
    answer: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct SubtaskEntry {
    kind: String,
    app: String,
    instruction: String,
    code: String,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    probe: Option<String>,
    #[serde(default)]
    probe_expected: Option<String>,
}

/// A read-only cell whose output shows whether a sub-task's change was made.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Probe {
    code: String,
    expected: String,
}

/// The gold of an AppWorld task set (see the module docs).
pub struct AppWorldGold {
    path: PathBuf,
    plans: BTreeMap<TaskId, Arc<GoldPlan>>,
    order: Vec<TaskId>,
    splits: BTreeMap<Split, Vec<TaskId>>,
    parameters: HashMap<String, Vec<(String, bool)>>,
    probes: HashMap<TaskId, Vec<Option<Probe>>>,
    /// Replays run one at a time: a server holds one world.
    judge: Option<Mutex<Arc<dyn Environment>>>,
}

impl fmt::Debug for AppWorldGold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppWorldGold")
            .field("path", &self.path)
            .field("tasks", &self.order.len())
            .field("judge", &self.judge.is_some())
            .finish_non_exhaustive()
    }
}

impl AppWorldGold {
    /// Reads a gold file; errors name the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AgentError::Setup(format!(
                "cannot read the AppWorld gold file {}: {e} (`cargo xtask appworld synth` \
                 writes one as <root>/gold.json)",
                path.display()
            ))
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a gold file; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, AgentError> {
        let bad = |what: String| {
            AgentError::Setup(format!(
                "{} is not a valid AppWorld gold file: {what}",
                path.display()
            ))
        };
        let file: GoldFile = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if file.format != GOLD_FORMAT {
            return Err(bad(format!(
                "its format is `{}`, expected `{GOLD_FORMAT}`",
                file.format
            )));
        }
        if file.version != GOLD_VERSION {
            return Err(bad(format!(
                "it is version {}, this rung reads version {GOLD_VERSION}; rebuild it with \
                 `cargo xtask appworld synth --force`",
                file.version
            )));
        }
        let mut plans = BTreeMap::new();
        let mut probes = HashMap::new();
        let mut order = Vec::new();
        for task in file.tasks {
            if task.plan.is_empty() {
                return Err(bad(format!("task {} has no sub-tasks", task.task_id)));
            }
            if plans.contains_key(&task.task_id) {
                return Err(bad(format!("task {} appears twice", task.task_id)));
            }
            let mut task_probes = Vec::with_capacity(task.plan.len());
            let mut subtasks = Vec::with_capacity(task.plan.len());
            for (k, step) in task.plan.into_iter().enumerate() {
                task_probes.push(match (step.probe, step.probe_expected) {
                    (Some(code), Some(expected)) => Some(Probe { code, expected }),
                    (None, None) => None,
                    _ => {
                        return Err(bad(format!(
                            "sub-task {} of {} has a probe without its expected output or the \
                             other way round",
                            k + 1,
                            task.task_id
                        )));
                    }
                });
                subtasks.push(GoldSubtask {
                    kind: step.kind,
                    app: step.app,
                    instruction: step.instruction,
                    code: step.code,
                    output: step.output,
                });
            }
            order.push(task.task_id.clone());
            probes.insert(task.task_id.clone(), task_probes);
            plans.insert(
                task.task_id.clone(),
                Arc::new(GoldPlan {
                    task_id: task.task_id,
                    subtasks,
                    completion: task.completion,
                    answer: task.answer.filter(|a| !a.is_null()),
                }),
            );
        }
        let mut splits = BTreeMap::new();
        for (name, ids) in file.splits {
            let split: Split = name.parse().map_err(bad)?;
            if let Some(missing) = ids.iter().find(|id| !plans.contains_key(*id)) {
                return Err(bad(format!(
                    "split {split} lists {missing}, which has no gold plan"
                )));
            }
            splits.insert(split, ids);
        }
        Ok(Self {
            path: path.to_path_buf(),
            plans,
            order,
            splits,
            parameters: file.api_parameters,
            probes,
            judge: None,
        })
    }

    /// Judges sub-tasks by replaying episodes on `env`, a server (or any environment of the
    /// same tasks) that no episode runs on.
    pub fn with_judge(mut self, env: Arc<dyn Environment>) -> Self {
        self.judge = Some(Mutex::new(env));
        self
    }

    /// Whether sub-tasks can be judged.
    pub fn has_judge(&self) -> bool {
        self.judge.is_some()
    }

    /// The gold file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every task in the file's order.
    pub fn all_tasks(&self) -> Vec<TaskId> {
        self.order.clone()
    }

    /// Replays `cells` of `task_id` on the judge and returns the outputs of the cells and of
    /// the probes run at the given boundaries (`boundary i` = before cell `i`).
    fn replay(
        &self,
        env: &dyn Environment,
        task_id: &TaskId,
        cells: &[&str],
        probes_at: &BTreeMap<usize, BTreeSet<usize>>,
        probes: &[Option<Probe>],
    ) -> Result<Replay, rung_env::EnvError> {
        env.initialize(task_id, &EpisodeOptions::default())?;
        let run = || -> Result<Replay, rung_env::EnvError> {
            let mut replay = Replay::default();
            for i in 0..=cells.len() {
                for &k in probes_at.get(&i).into_iter().flatten() {
                    if let Some(Some(probe)) = probes.get(k) {
                        let output = env.execute(task_id, &probe.code)?;
                        replay.probes.insert((i, k), output);
                    }
                }
                if let Some(cell) = cells.get(i) {
                    replay.outputs.push(env.execute(task_id, cell)?);
                }
            }
            Ok(replay)
        };
        let replay = run();
        let closed = env.close(task_id);
        let replay = replay?;
        closed?;
        Ok(replay)
    }
}

/// What a replay saw.
#[derive(Debug, Default)]
struct Replay {
    /// The output of every cell.
    outputs: Vec<String>,
    /// Probe outputs by (boundary, sub-task).
    probes: HashMap<(usize, usize), String>,
}

impl GoldSource for AppWorldGold {
    fn tasks(&self, split: Split) -> Vec<TaskId> {
        self.splits.get(&split).cloned().unwrap_or_default()
    }

    fn plan(&self, task_id: &TaskId) -> Option<Arc<GoldPlan>> {
        self.plans.get(task_id).cloned()
    }

    /// The parameter names of an API, but only when all of them are required. AppWorld
    /// silently ignores unknown keyword arguments, so a misspelt optional parameter would make
    /// a call that succeeds and does the wrong thing; a misspelt required one is always
    /// rejected (HTTP 422), which is the only mistake experts may make.
    fn api_parameters(&self, app: &str, api: &str) -> Option<Vec<String>> {
        let parameters = self.parameters.get(&format!("{app}.{api}"))?;
        parameters
            .iter()
            .all(|(_, required)| *required)
            .then(|| parameters.iter().map(|(name, _)| name.clone()).collect())
    }

    fn judge(&self, task_id: &TaskId, cells: &[&str], windows: &[CellWindow]) -> Option<Vec<bool>> {
        let judge = self.judge.as_ref()?;
        let plan = self.plan(task_id)?;
        let probes = self.probes.get(task_id)?;
        let clamp = |i: usize| i.min(cells.len());
        let mut probes_at: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for window in windows {
            if matches!(probes.get(window.subtask), Some(Some(_))) {
                for boundary in [window.cells.start, window.cells.end] {
                    probes_at
                        .entry(clamp(boundary))
                        .or_default()
                        .insert(window.subtask);
                }
            }
        }
        // The lock is held for the whole replay: one judge server holds one world.
        let env = judge.lock().unwrap_or_else(PoisonError::into_inner);
        let replay = self.replay(env.as_ref(), task_id, cells, &probes_at, probes);
        drop(env);
        let replay = match replay {
            Ok(replay) => replay,
            Err(err) => {
                eprintln!(
                    "rung-agents: cannot judge the sub-tasks of {task_id}: replaying its cells \
                     on the judge server failed: {err}"
                );
                return None;
            }
        };
        let verdicts = windows
            .iter()
            .map(|window| {
                let (start, end) = (clamp(window.cells.start), clamp(window.cells.end));
                match probes.get(window.subtask) {
                    Some(Some(probe)) => {
                        let seen = |i| replay.probes.get(&(i, window.subtask));
                        let expected = Some(&probe.expected);
                        seen(end) == expected && seen(start) != expected
                    }
                    Some(None) => match plan.subtasks[window.subtask].output.as_deref() {
                        Some(gold) => result_seen(gold, &replay.outputs[start..end.max(start)]),
                        None => true,
                    },
                    None => false,
                }
            })
            .collect();
        Some(verdicts)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rung_world::sandbox::{FAILED, SUCCESSFUL};

    use rung_env::protocol::ApiDocs;
    use rung_env::{EnvError, Evaluation, Supervisor, TaskInfo};

    use super::*;

    const TASK: &str = "abcdef0_1";

    fn file() -> Value {
        serde_json::json!({
            "format": GOLD_FORMAT,
            "version": GOLD_VERSION,
            "splits": {"train": [TASK], "dev": []},
            "api_parameters": {
                "phone.send_text_message": [["phone_number", true], ["message", true]],
                "phone.search_contacts": [["access_token", true], ["query", false]],
            },
            "tasks": [{
                "task_id": TASK,
                "answer": null,
                "completion": "apis.supervisor.complete_task()",
                "plan": [
                    {"kind": "phone.find", "app": "phone", "instruction": "Find Ann.",
                     "code": "ann = 1\nprint(ann)", "output": "1\n"},
                    {"kind": "phone.text", "app": "phone", "instruction": "Text Ann.",
                     "code": "send(ann)", "output": "Execution successful.",
                     "probe": "print(sent)", "probe_expected": "[1]\n"},
                ],
            }],
        })
    }

    fn gold(value: &Value) -> Result<AppWorldGold, AgentError> {
        AppWorldGold::parse(&value.to_string(), Path::new("gold.json"))
    }

    fn id() -> TaskId {
        TASK.parse().unwrap()
    }

    #[test]
    fn a_gold_file_gives_plans_splits_and_safe_parameters() {
        let gold = gold(&file()).unwrap();
        assert_eq!(gold.tasks(Split::Train), [id()]);
        assert!(gold.tasks(Split::Dev).is_empty() && gold.tasks(Split::TestNormal).is_empty());
        let plan = gold.plan(&id()).unwrap();
        assert_eq!(plan.subtasks.len(), 2);
        assert_eq!(plan.subtasks[0].output.as_deref(), Some("1\n"));
        assert_eq!(plan.answer, None, "a null answer is no answer");
        assert_eq!(
            gold.api_parameters("phone", "send_text_message"),
            Some(vec!["phone_number".to_owned(), "message".to_owned()])
        );
        assert_eq!(
            gold.api_parameters("phone", "search_contacts"),
            None,
            "an optional parameter would be ignored silently when misspelt"
        );
        assert_eq!(gold.api_parameters("phone", "nope"), None);
        assert!(!gold.has_judge());
        assert_eq!(gold.judge(&id(), &[], &[]), None, "no judge, no verdicts");
    }

    #[test]
    fn bad_gold_files_are_explained() {
        let mut wrong = file();
        wrong["format"] = "other".into();
        let err = gold(&wrong).unwrap_err().to_string();
        assert!(
            err.contains("gold.json") && err.contains("`other`"),
            "{err}"
        );
        let mut old = file();
        old["version"] = 99.into();
        assert!(gold(&old).unwrap_err().to_string().contains("--force"));
        let mut split = file();
        split["splits"]["dev"] = serde_json::json!(["fffffff_1"]);
        assert!(gold(&split).unwrap_err().to_string().contains("fffffff_1"));
        let mut half = file();
        half["tasks"][0]["plan"][1]
            .as_object_mut()
            .unwrap()
            .remove("probe_expected");
        assert!(gold(&half).unwrap_err().to_string().contains("probe"));
        let mut bad_split = file();
        bad_split["splits"]["test"] = serde_json::json!([]);
        assert!(
            gold(&bad_split)
                .unwrap_err()
                .to_string()
                .contains("test_normal")
        );
        let err = AppWorldGold::load(Path::new("/nonexistent/gold.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("appworld synth"), "{err}");
    }

    /// A world where `send(ann)` appends to `sent`, `print(sent)` shows it and other cells
    /// echo; it records every call.
    #[derive(Default)]
    struct Tape {
        sent: Mutex<u32>,
        calls: Mutex<Vec<String>>,
    }

    impl Environment for Tape {
        fn initialize(&self, task: &TaskId, _: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
            *self.sent.lock().unwrap() = 0;
            self.calls.lock().unwrap().push("initialize".into());
            Ok(TaskInfo {
                task_id: task.clone(),
                instruction: String::new(),
                supervisor: Supervisor {
                    first_name: String::new(),
                    last_name: String::new(),
                    email: String::new(),
                    phone_number: String::new(),
                },
                datetime: String::new(),
            })
        }
        fn execute(&self, _: &TaskId, code: &str) -> Result<String, EnvError> {
            self.calls.lock().unwrap().push(code.into());
            let mut sent = self.sent.lock().unwrap();
            Ok(match code {
                "send(ann)" => {
                    *sent += 1;
                    SUCCESSFUL.into()
                }
                "print(sent)" => format!("{:?}\n", (0..*sent).map(|_| 1).collect::<Vec<_>>()),
                "ann = 1\nprint(ann)" | "print(ann)" => "1\n".into(),
                other => format!("{FAILED}\nNameError: {other}"),
            })
        }
        fn task_completed(&self, _: &TaskId) -> Result<bool, EnvError> {
            Ok(false)
        }
        fn evaluate(&self, _: &TaskId) -> Result<Evaluation, EnvError> {
            unreachable!()
        }
        fn close(&self, _: &TaskId) -> Result<(), EnvError> {
            self.calls.lock().unwrap().push("close".into());
            Ok(())
        }
        fn task_info(&self, _: &TaskId) -> Result<TaskInfo, EnvError> {
            unreachable!()
        }
        fn api_docs(&self) -> Result<ApiDocs, EnvError> {
            Ok(Value::Null)
        }
    }

    fn window(subtask: usize, cells: std::ops::Range<usize>) -> CellWindow {
        CellWindow { subtask, cells }
    }

    #[test]
    fn the_judge_replays_cells_and_probes_window_boundaries() {
        let tape = Arc::new(Tape::default());
        let gold = gold(&file()).unwrap().with_judge(tape.clone());
        let cells = ["ann = 1\nprint(ann)", "send(ann)"];
        let verdicts = gold.judge(&id(), &cells, &[window(0, 0..1), window(1, 1..2)]);
        assert_eq!(verdicts, Some(vec![true, true]));
        assert_eq!(
            *tape.calls.lock().unwrap(),
            [
                "initialize",
                "ann = 1\nprint(ann)",
                "print(sent)",
                "send(ann)",
                "print(sent)",
                "close"
            ]
        );

        // The text was sent in the first window: the second did not do it.
        let early = ["send(ann)", "print(ann)"];
        let verdicts = gold.judge(&id(), &early, &[window(0, 0..1), window(1, 1..2)]);
        assert_eq!(verdicts, Some(vec![false, false]));
        // A single agent's windows span the episode.
        let verdicts = gold.judge(&id(), &early, &[window(0, 0..2), window(1, 0..2)]);
        assert_eq!(verdicts, Some(vec![true, true]));
        // Nothing sent, and a failed read.
        let verdicts = gold.judge(&id(), &["oops"], &[window(0, 0..1), window(1, 1..1)]);
        assert_eq!(verdicts, Some(vec![false, false]));
    }

    #[test]
    fn read_only_results_must_appear_verbatim() {
        let outputs = vec!["x".to_owned(), "{\"a\": 1}\n".to_owned()];
        assert!(result_seen("{\"a\": 1}\n", &outputs));
        assert!(!result_seen("{\"a\": 2}", &outputs));
        assert!(result_seen(SUCCESSFUL, &["ok".to_owned()]));
        assert!(!result_seen(SUCCESSFUL, &[format!("{FAILED}\nboom")]));
        assert!(!result_seen(SUCCESSFUL, &[]));
    }
}
