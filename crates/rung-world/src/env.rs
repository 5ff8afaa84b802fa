//! The embedded world as an [`Environment`]: many concurrent episodes in one process, each with
//! its own copy of the world and its own sandbox.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rung_env::protocol::ApiDocs;
use rung_env::{EnvError, Environment, EpisodeOptions, Evaluation, TaskId, TaskInfo};
use serde_json::Value;

use crate::apps::registry;
use crate::db::Db;
use crate::evaluate::{Expectation, normalise_changes};
use crate::sandbox::{FAILED, Limits, Sandbox};
use crate::tasks::{Suite, SuiteOptions, Task};
use crate::world::World;

/// The outcome of replaying code cells from a task's start state.
#[derive(Debug)]
pub struct Replay {
    /// Output of each cell.
    pub outputs: Vec<String>,
    /// Database after each cell (index 0 is the start state).
    pub states: Vec<Db>,
    /// The world at the end.
    pub world: World,
}

/// A fresh world for `task`: its start state, clock and supervisor.
pub fn start_world(suite: &Suite, task: &Task) -> World {
    let start = suite.world_of(task);
    let mut world = World::new(start.0.clone(), start.1.clone(), task.supervisor_id);
    world.task = Some((task.task_id.to_string(), task.instruction.clone()));
    world
}

/// Runs `cells` in a fresh sandbox on `task`'s start state, keeping the state after each cell.
pub fn replay(suite: &Suite, task: &Task, cells: &[&str], limits: Limits) -> Replay {
    let mut sandbox = Sandbox::new(limits);
    let mut world = start_world(suite, task);
    let mut states = vec![world.db.clone()];
    let mut outputs = Vec::with_capacity(cells.len());
    for cell in cells {
        let output = sandbox.execute(cell, &mut world);
        states.push(world.db.clone());
        outputs.push(output);
    }
    Replay {
        outputs,
        states,
        world,
    }
}

/// What a task expects, from replaying its gold plan.
pub fn expectation(suite: &Suite, task: &Task) -> Expectation {
    let cells = task.gold_cells();
    // Gold programs are trusted: no worker process needed.
    let gold = replay(suite, task, &cells, Limits::default().in_thread());
    let subtasks = task
        .plan
        .iter()
        .enumerate()
        .map(|(i, step)| {
            (
                step.instruction.clone(),
                normalise_changes(&gold.states[i + 1].diff(&gold.states[i])),
            )
        })
        .collect();
    let total = normalise_changes(&gold.world.db.diff(&gold.states[0]));
    Expectation {
        subtasks,
        total,
        answer: task.answer.clone(),
        difficulty: task.difficulty,
    }
}

struct Episode {
    task: Arc<Task>,
    world: World,
    start: Arc<(Db, String)>,
    sandbox: Sandbox,
    interactions: u32,
    max_interactions: Option<u32>,
}

/// The embedded world: the task suite plus the running episodes.
pub struct EmbeddedWorld {
    suite: Arc<Suite>,
    tasks: HashMap<TaskId, Arc<Task>>,
    episodes: Mutex<HashMap<TaskId, Arc<Mutex<Episode>>>>,
    expectations: Mutex<HashMap<TaskId, Arc<Expectation>>>,
    limits: Limits,
    /// Episodes that may be open at once: each may hold a sandbox of up to `limits.max_heap`.
    max_open_episodes: usize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic inside one episode must not take the others down: state behind a poisoned lock is
    // still consistent because every mutation is a whole-value replacement.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmbeddedWorld {
    /// The world with the default suite and limits.
    pub fn new() -> Self {
        Self::with_suite(
            Arc::new(Suite::generate(SuiteOptions::default())),
            Limits::default(),
        )
    }

    /// The world over a given suite with given sandbox limits.
    pub fn with_suite(suite: Arc<Suite>, limits: Limits) -> Self {
        let tasks = suite
            .tasks
            .iter()
            .map(|t| (t.task_id.clone(), Arc::new(t.clone())))
            .collect();
        Self {
            suite,
            tasks,
            episodes: Mutex::new(HashMap::new()),
            expectations: Mutex::new(HashMap::new()),
            limits,
            max_open_episodes: usize::MAX,
        }
    }

    /// Bounds the memory all sandboxes together may hold: at most `bytes / max_heap` episodes are
    /// open at once, and an `initialize` past that is refused as busy (HTTP 503) rather than
    /// letting the machine run out of memory.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.max_open_episodes = (bytes / self.limits.max_heap.max(1)).max(1);
        self
    }

    /// Episodes that may be open at once.
    pub fn max_open_episodes(&self) -> usize {
        self.max_open_episodes
    }

    /// The task suite.
    pub fn suite(&self) -> &Suite {
        &self.suite
    }

    fn task(&self, task_id: &TaskId) -> Result<&Arc<Task>, EnvError> {
        self.tasks.get(task_id).ok_or_else(|| EnvError::UnknownTask {
            task_id: task_id.clone(),
            hint: format!(
                "the embedded world has {} tasks; they are listed in datasets/world/*.jsonl (`rung world export`)",
                self.tasks.len()
            ),
        })
    }

    fn episode(&self, task_id: &TaskId) -> Result<Arc<Mutex<Episode>>, EnvError> {
        lock(&self.episodes)
            .get(task_id)
            .cloned()
            .ok_or_else(|| EnvError::NoEpisode(task_id.clone()))
    }

    fn expectation(&self, task: &Task) -> Arc<Expectation> {
        if let Some(found) = lock(&self.expectations).get(&task.task_id) {
            return Arc::clone(found);
        }
        let computed = Arc::new(expectation(&self.suite, task));
        lock(&self.expectations).insert(task.task_id.clone(), Arc::clone(&computed));
        computed
    }

    fn info(task: &Task) -> TaskInfo {
        TaskInfo {
            task_id: task.task_id.clone(),
            instruction: task.instruction.clone(),
            supervisor: task.supervisor.clone(),
            datetime: task.datetime.clone(),
        }
    }
}

impl Default for EmbeddedWorld {
    fn default() -> Self {
        Self::new()
    }
}

impl Environment for EmbeddedWorld {
    fn initialize(&self, task_id: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        let task = Arc::clone(self.task(task_id)?);
        let mut limits = self.limits;
        if let Some(seconds) = options.timeout_seconds {
            limits.max_time = Duration::from_secs(seconds.max(1));
        }
        let episode = Episode {
            world: start_world(&self.suite, &task),
            start: self.suite.world_of(&task),
            sandbox: Sandbox::new(limits),
            interactions: 0,
            max_interactions: options.max_interactions,
            task: Arc::clone(&task),
        };
        let mut episodes = lock(&self.episodes);
        if !episodes.contains_key(task_id) && episodes.len() >= self.max_open_episodes {
            return Err(EnvError::Busy(format!(
                "{} episodes are open, as many as the memory budget allows ({} MiB per sandbox); \
                 close one, or give the world a larger budget (`rung world serve --memory-budget-mib`)",
                episodes.len(),
                self.limits.max_heap >> 20
            )));
        }
        episodes.insert(task_id.clone(), Arc::new(Mutex::new(episode)));
        Ok(Self::info(&task))
    }

    fn execute(&self, task_id: &TaskId, code: &str) -> Result<String, EnvError> {
        let episode = self.episode(task_id)?;
        let mut episode = lock(&episode);
        if let Some(max) = episode.max_interactions
            && episode.interactions >= max
        {
            return Ok(format!(
                "{FAILED}\nInteractionLimitError: the episode's budget of {max} interactions is used up; \
                 complete the task with apis.supervisor.complete_task()"
            ));
        }
        episode.interactions += 1;
        let Episode { sandbox, world, .. } = &mut *episode;
        Ok(sandbox.execute(code, world))
    }

    fn task_completed(&self, task_id: &TaskId) -> Result<bool, EnvError> {
        let episode = self.episode(task_id)?;
        let episode = lock(&episode);
        Ok(episode.world.completion.is_some())
    }

    fn evaluate(&self, task_id: &TaskId) -> Result<Evaluation, EnvError> {
        let episode = self.episode(task_id)?;
        let (changes, answer, task) = {
            let episode = lock(&episode);
            let world = &episode.world;
            let changes = world.db.diff(&episode.start.0);
            let answer: Option<Value> = world.completion.as_ref().and_then(|c| c.answer.clone());
            (changes, answer, Arc::clone(&episode.task))
        };
        Ok(self.expectation(&task).evaluate(&changes, answer.as_ref()))
    }

    fn close(&self, task_id: &TaskId) -> Result<(), EnvError> {
        lock(&self.episodes)
            .remove(task_id)
            .map(drop)
            .ok_or_else(|| EnvError::NoEpisode(task_id.clone()))
    }

    fn task_info(&self, task_id: &TaskId) -> Result<TaskInfo, EnvError> {
        Ok(Self::info(self.task(task_id)?))
    }

    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        Ok(registry().docs())
    }
}
