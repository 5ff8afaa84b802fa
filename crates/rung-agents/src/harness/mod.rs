//! Running a system over a split: parallel episodes, scores, trajectories, expert data.
//!
//! Episodes run on worker threads. With the in-process world every worker shares one
//! environment (its episodes are independent); with AppWorld servers, which hold one world
//! each, every worker gets its own client ([`Backend::PerWorker`], e.g. one per
//! [`rung_env::ServerPool`] server). Results come back in task order whatever the scheduling,
//! so runs are reproducible. With a shared environment, a system whose policies batch their
//! model calls ([`crate::Policy::max_concurrent_episodes`]) gets that many episodes in flight,
//! more than there are threads: those episodes mostly wait for their engines.

pub mod diagnostics;
mod report;
pub mod subtasks;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rung_env::{AppWorldClient, Environment, EpisodeOptions, Evaluation, Split, TaskId};
use rung_trajectory::{ChatRole, Episode, SystemKind, write_file};
use rung_world::EmbeddedWorld;
use serde::{Deserialize, Serialize};

use crate::apps::AppCatalog;
use crate::budget::Budgets;
use crate::error::AgentError;
use crate::expert::{ExpertOptions, Experts};
use crate::gold::{GoldSource, WorldGold};
use crate::system::System;
pub use report::{CostReport, EvalReport, MeanCost};
use subtasks::SubtaskVerdict;
pub use subtasks::{Rate, SubtaskErrors};

/// An episode with its sub-task verdicts (`None` where it was not judged).
pub type JudgedEpisode = (Episode, Option<Vec<SubtaskVerdict>>);

/// Where episodes run.
#[derive(Clone)]
pub enum Backend {
    /// One environment that runs many episodes at once (the in-process world, or one world
    /// server that keeps episodes apart by task id).
    Shared(Arc<dyn Environment>),
    /// One environment per worker thread (one client per AppWorld server).
    PerWorker(Vec<Arc<dyn Environment>>),
}

/// Called after every finished episode with the number of episodes done and the total (from
/// worker threads, so it must be cheap and thread-safe); for progress bars.
pub type Progress = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// What to run and where.
#[derive(Clone)]
pub struct EvalOptions {
    /// Where episodes run.
    pub backend: Backend,
    /// Gold plans: the task list when `tasks` is `None`, and sub-task error rates.
    pub gold: Option<Arc<dyn GoldSource>>,
    /// Tasks to run; `None` runs the gold source's tasks of the split.
    pub tasks: Option<Vec<TaskId>>,
    /// Run only the first this many tasks.
    pub limit: Option<usize>,
    /// Worker threads for a shared backend (a per-worker backend has one per environment).
    pub threads: usize,
    /// Where to write one trajectory per episode (JSONL, written atomically at the end).
    pub trajectories: Option<PathBuf>,
    /// Told about every finished episode.
    pub progress: Option<Progress>,
}

impl EvalOptions {
    /// The in-process embedded world with its gold plans, on all cores.
    pub fn embedded(world: Arc<EmbeddedWorld>) -> Self {
        let gold: Arc<dyn GoldSource> = Arc::new(WorldGold::new(Arc::clone(&world)));
        Self {
            backend: Backend::Shared(world),
            gold: Some(gold),
            tasks: None,
            limit: None,
            threads: default_threads(),
            trajectories: None,
            progress: None,
        }
    }

    /// A pool of environment servers, one worker per client; tasks and gold must be added.
    pub fn pool(clients: &[AppWorldClient]) -> Self {
        let envs: Vec<Arc<dyn Environment>> = clients
            .iter()
            .map(|c| Arc::new(c.clone()) as Arc<dyn Environment>)
            .collect();
        Self {
            threads: envs.len(),
            backend: Backend::PerWorker(envs),
            gold: None,
            tasks: None,
            limit: None,
            trajectories: None,
            progress: None,
        }
    }
}

/// The number of cores, or 1 if unknown.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The tasks a run covers: `options.tasks`, or the gold source's tasks of the split, cut to
/// `options.limit`. Public so that a caller can split one evaluation into shards (each runs a
/// slice of this list as its `tasks`) and get exactly the episodes of the whole run.
pub fn task_list(split: Split, options: &EvalOptions) -> Result<Vec<TaskId>, AgentError> {
    let mut tasks = match (&options.tasks, &options.gold) {
        (Some(tasks), _) => tasks.clone(),
        (None, Some(gold)) => gold.tasks(split),
        (None, None) => {
            return Err(AgentError::Setup(format!(
                "no tasks to run on {split}: give a task list or a gold source"
            )));
        }
    };
    if let Some(limit) = options.limit {
        tasks.truncate(limit);
    }
    if tasks.is_empty() {
        return Err(AgentError::Setup(format!("no tasks to run on {split}")));
    }
    Ok(tasks)
}

/// Attempts of one episode whose environment failed in a way a fresh server may cure.
pub const ENV_ATTEMPTS: usize = 3;

/// Runs one episode, and runs it again from the start (up to [`ENV_ATTEMPTS`] in all) when the
/// environment failed as a dead or stuck server does: a [`rung_env::PoolMember`] restarts its
/// server at the next `initialize`, and an episode depends only on its task and seed, so the
/// retried episode is the one a quiet run would have had. An episode is never scored on a
/// broken environment: once the attempts are spent, the error stops the run. Returns the
/// episode and the number of retries it took.
pub fn run_episode_retrying(
    system: &System,
    env: &dyn Environment,
    task: &TaskId,
) -> Result<(Episode, usize), AgentError> {
    let mut retries = 0;
    loop {
        match system.run_episode(env, task) {
            Err(AgentError::Env { task_id, source })
                if source.may_be_transient() && retries + 1 < ENV_ATTEMPTS =>
            {
                retries += 1;
                eprintln!(
                    "task {task_id}: the environment failed ({source}); running the episode \
                     again from the start (attempt {} of {ENV_ATTEMPTS})",
                    retries + 1
                );
            }
            other => return other.map(|episode| (episode, retries)),
        }
    }
}

/// Episodes of a run in task order, and how many episodes were retried after an environment
/// failure.
struct Runs {
    runs: Vec<JudgedEpisode>,
    env_retries: usize,
}

/// Runs `system` on every task of the run, in parallel; episodes come back in task order.
/// With `judge`, each episode's sub-tasks are also judged against the gold source.
fn run_tasks(
    system: &System,
    split: Split,
    options: &EvalOptions,
    judge: bool,
) -> Result<Runs, AgentError> {
    let tasks = task_list(split, options)?;
    let workers: Vec<Arc<dyn Environment>> = match &options.backend {
        // Batching policies want more episodes in flight than there are threads: those
        // episodes mostly wait for their model calls, which the engines batch.
        Backend::Shared(env) => {
            let wanted = options
                .threads
                .max(system.max_concurrent_episodes().unwrap_or(0));
            vec![Arc::clone(env); wanted.clamp(1, tasks.len())]
        }
        Backend::PerWorker(envs) if envs.is_empty() => {
            return Err(AgentError::Setup(
                "a per-worker backend needs at least one environment".into(),
            ));
        }
        Backend::PerWorker(envs) => envs.clone(),
    };
    let gold = options.gold.as_deref().filter(|_| judge);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let retries = AtomicUsize::new(0);
    type Slot = Option<Result<JudgedEpisode, AgentError>>;
    let slots: Mutex<Vec<Slot>> = Mutex::new((0..tasks.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for env in &workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= tasks.len() || failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let result = run_episode_retrying(system, env.as_ref(), &tasks[i]).map(
                        |(mut episode, retried)| {
                            retries.fetch_add(retried, Ordering::Relaxed);
                            episode.split = Some(split);
                            let verdicts = gold.and_then(|g| subtasks::analyse(&episode, g));
                            (episode, verdicts)
                        },
                    );
                    if result.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    slots.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(result);
                    if let Some(progress) = &options.progress {
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1, tasks.len());
                    }
                }
            });
        }
    });
    let slots = slots.into_inner().unwrap_or_else(PoisonError::into_inner);
    // After a failure the remaining tasks were skipped; report the first failure in task order.
    let mut runs = Vec::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Some(Ok(run)) => runs.push(run),
            Some(Err(error)) => return Err(error),
            None => {}
        }
    }
    Ok(Runs {
        runs,
        env_retries: retries.into_inner(),
    })
}

/// Runs `system` over a split and returns the episodes in task order.
pub fn run_split(
    system: &System,
    split: Split,
    options: &EvalOptions,
) -> Result<Vec<Episode>, AgentError> {
    Ok(run_tasks(system, split, options, false)?
        .runs
        .into_iter()
        .map(|(episode, _)| episode)
        .collect())
}

/// Runs `system` over a split and judges every episode's sub-tasks against the gold source
/// (where the options carry one), in task order, without aggregating: the episodes of shards
/// of one evaluation concatenate into exactly the whole run's, which
/// [`EvalReport::new`] then aggregates. (Episodes rerun after an environment failure are not
/// counted here: a merged report's `env_retries` stays 0.)
pub fn evaluate_episodes(
    system: &System,
    split: Split,
    options: &EvalOptions,
) -> Result<Vec<JudgedEpisode>, AgentError> {
    Ok(run_tasks(system, split, options, true)?.runs)
}

/// Evaluates `system` on a split: TGC/SGC overall and by difficulty, sub-task error rates
/// (where the options carry a gold source), cost, and one trajectory per episode when
/// `options.trajectories` names a file.
pub fn evaluate(
    system: &System,
    split: Split,
    options: &EvalOptions,
) -> Result<EvalReport, AgentError> {
    let started = Instant::now();
    let Runs { runs, env_retries } = run_tasks(system, split, options, true)?;
    if let Some(path) = &options.trajectories {
        write_file(path, runs.iter().map(|(episode, _)| episode))?;
    }
    let mut report = EvalReport::new(
        system.config(),
        split,
        &runs,
        options.gold.is_some(),
        started.elapsed().as_secs_f64(),
    );
    report.env_retries = env_retries;
    Ok(report)
}

/// Options of expert data generation.
#[derive(Clone)]
pub struct DataGenOptions {
    /// Where and on which tasks; must carry a gold source.
    pub run: EvalOptions,
    /// Mistake and look-up rates.
    pub expert: ExpertOptions,
    /// Budgets of the expert system.
    pub budgets: Budgets,
    /// Seed of the expert system (the episodes' seeds derive from it).
    pub seed: u64,
    /// The apps the orchestrator's prompt lists.
    pub apps: AppCatalog,
    /// Also write episodes that failed their evaluation (normally a bug worth seeing, never
    /// training data).
    pub keep_failures: bool,
}

impl DataGenOptions {
    /// Expert data from the embedded world with default rates.
    pub fn embedded(world: Arc<EmbeddedWorld>) -> Self {
        Self {
            run: EvalOptions::embedded(world),
            expert: ExpertOptions::default(),
            budgets: Budgets::default(),
            seed: 0,
            apps: AppCatalog::embedded(),
            keep_failures: false,
        }
    }
}

/// What expert data generation produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataGenReport {
    /// Episodes written.
    pub written: usize,
    /// Tasks whose expert episode failed its evaluation.
    pub failed: Vec<TaskId>,
    /// Written episodes that contain a deliberate mistake (an assistant message not to train).
    pub with_mistake: usize,
    /// The expert system's evaluation.
    pub eval: EvalReport,
}

/// Runs the experts of `kind` over a split and writes their trajectories to `out` (JSONL,
/// atomically), successful episodes only unless `keep_failures`.
pub fn generate_expert_data(
    split: Split,
    kind: SystemKind,
    options: &DataGenOptions,
    out: &Path,
) -> Result<DataGenReport, AgentError> {
    let gold = options.run.gold.clone().ok_or_else(|| {
        AgentError::Setup("expert data needs a gold source with plans for the tasks".into())
    })?;
    let system = Experts::new(gold, options.expert)
        .system(kind, options.apps.clone())
        .with_budgets(options.budgets)
        .with_seed(options.seed);
    let started = Instant::now();
    let Runs { runs, env_retries } = run_tasks(&system, split, &options.run, true)?;
    let mut eval = EvalReport::new(
        system.config(),
        split,
        &runs,
        true,
        started.elapsed().as_secs_f64(),
    );
    eval.env_retries = env_retries;
    let failed: Vec<TaskId> = runs
        .iter()
        .filter(|(e, _)| !e.evaluation.success)
        .map(|(e, _)| e.task_id.clone())
        .collect();
    let kept: Vec<&Episode> = runs
        .iter()
        .map(|(e, _)| e)
        .filter(|e| options.keep_failures || e.evaluation.success)
        .collect();
    write_file(out, kept.iter().copied())?;
    let with_mistake = kept.iter().filter(|e| has_mistake(e)).count();
    Ok(DataGenReport {
        written: kept.len(),
        failed,
        with_mistake,
        eval,
    })
}

/// Whether an episode contains a well-formed output marked not to train on (a deliberate
/// expert mistake).
pub fn has_mistake(episode: &Episode) -> bool {
    episode.turns.iter().any(|turn| {
        !matches!(turn.action, rung_trajectory::Action::Malformed { .. })
            && turn
                .completion()
                .is_some_and(|m| m.role == ChatRole::Assistant && !m.train)
    })
}

/// Re-runs an episode's code cells in a fresh episode of its task and evaluates the result:
/// a recorded trajectory must reproduce its own evaluation.
pub fn replay_episode(env: &dyn Environment, episode: &Episode) -> Result<Evaluation, AgentError> {
    let task = &episode.task_id;
    let env_error = |source| AgentError::Env {
        task_id: task.clone(),
        source,
    };
    let options = EpisodeOptions {
        random_seed: Some(episode.seed),
        ..EpisodeOptions::default()
    };
    env.initialize(task, &options).map_err(env_error)?;
    let run = || -> Result<Evaluation, rung_env::EnvError> {
        for code in episode.code_cells() {
            env.execute(task, code)?;
        }
        env.evaluate(task)
    };
    let evaluation = run();
    let closed = env.close(task);
    let evaluation = evaluation.map_err(env_error)?;
    closed.map_err(env_error)?;
    Ok(evaluation)
}
