//! An environment that fails under an episode: a failure a fresh server may cure (a dropped
//! connection, nothing answering, a timeout) reruns the episode from the start, with the result
//! a quiet run has; any other failure, or one that persists, stops the run. No episode is ever
//! scored on a broken environment.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rung_agents::harness::ENV_ATTEMPTS;
use rung_agents::{AgentError, Backend, EvalOptions, ExpertOptions, evaluate};
use rung_env::protocol::ApiDocs;
use rung_env::{EnvError, Environment, EpisodeOptions, Evaluation, Split, TaskId, TaskInfo};
use rung_trajectory::{Episode, SystemKind, read_file};

/// The world in process, with `execute` number `fail_at`, `fail_at + every`, … (counted over
/// the run, 0-based) failing with `error()` instead of running, up to `times` failures.
struct Flaky {
    inner: Arc<dyn Environment>,
    fail_at: usize,
    every: usize,
    times: usize,
    error: fn() -> EnvError,
    executes: AtomicUsize,
    failures: AtomicUsize,
}

impl Flaky {
    fn new(
        inner: Arc<dyn Environment>,
        fail_at: usize,
        times: usize,
        error: fn() -> EnvError,
    ) -> Self {
        Self {
            inner,
            fail_at,
            every: 3,
            times,
            error,
            executes: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        }
    }
}

fn dropped() -> EnvError {
    EnvError::Transport {
        method: "POST",
        url: "http://127.0.0.1:1/execute".into(),
        reason: "connection reset by peer".into(),
    }
}

fn broken() -> EnvError {
    EnvError::Internal("the database is corrupt".into())
}

impl Environment for Flaky {
    fn initialize(&self, task: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        self.inner.initialize(task, options)
    }

    fn execute(&self, task: &TaskId, code: &str) -> Result<String, EnvError> {
        let n = self.executes.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_at
            && (n - self.fail_at).is_multiple_of(self.every)
            && self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                    (f < self.times).then_some(f + 1)
                })
                .is_ok()
        {
            return Err((self.error)());
        }
        self.inner.execute(task, code)
    }

    fn task_completed(&self, task: &TaskId) -> Result<bool, EnvError> {
        self.inner.task_completed(task)
    }

    fn evaluate(&self, task: &TaskId) -> Result<Evaluation, EnvError> {
        self.inner.evaluate(task)
    }

    fn close(&self, task: &TaskId) -> Result<(), EnvError> {
        self.inner.close(task)
    }

    fn task_info(&self, task: &TaskId) -> Result<TaskInfo, EnvError> {
        self.inner.task_info(task)
    }

    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        self.inner.api_docs()
    }
}

/// Two-agent experts (with seeded mistakes) on the first `n` dev tasks over `env`, one worker:
/// the report and the trajectories without their wall times.
fn run(
    fixture: &common::Fixture,
    env: Arc<dyn Environment>,
    n: usize,
    tag: &str,
) -> Result<(rung_agents::EvalReport, Vec<Episode>), AgentError> {
    let system = fixture.expert_system(
        SystemKind::TwoAgent,
        ExpertOptions {
            mistake_rate: 0.5,
            docs_rate: 0.3,
        },
    );
    let path = std::env::temp_dir().join(format!(
        "rung-agents-env-failures-{}-{tag}.jsonl",
        std::process::id()
    ));
    let options = EvalOptions {
        backend: Backend::PerWorker(vec![env]),
        threads: 1,
        limit: Some(n),
        trajectories: Some(path.clone()),
        ..fixture.options()
    };
    let report = evaluate(&system, Split::Dev, &options)?;
    let mut episodes = read_file(&path).expect("trajectories");
    let _ = std::fs::remove_file(&path);
    for episode in &mut episodes {
        episode.cost.wall_seconds = 0.0;
    }
    Ok((report, episodes))
}

#[test]
fn a_dropped_connection_mid_episode_reruns_it_with_the_quiet_result() {
    let fixture = common::Fixture::new();
    let world: Arc<dyn Environment> = fixture.world.clone();
    let (quiet, quiet_episodes) = run(&fixture, Arc::clone(&world), 3, "quiet").expect("quiet");
    assert_eq!(quiet.env_retries, 0);
    // Two failures, in different episodes (execute 2, then 3 executes later).
    let flaky = Arc::new(Flaky::new(Arc::clone(&world), 2, 2, dropped));
    let (report, episodes) =
        run(&fixture, flaky.clone(), 3, "flaky").expect("the run survives the drops");
    assert_eq!(flaky.failures.load(Ordering::SeqCst), 2);
    assert_eq!(report.env_retries, 2);
    assert_eq!(episodes, quiet_episodes);
    assert_eq!(report.scores, quiet.scores);
    assert_eq!(report.ends, quiet.ends);
    assert_eq!(report.subtask_errors, quiet.subtask_errors);
    assert!(report.to_json().contains("\"env_retries\": 2"));
    assert!(
        !quiet.to_json().contains("env_retries"),
        "quiet reports are unchanged"
    );
}

#[test]
fn a_persistent_or_unknown_failure_stops_the_run_instead_of_scoring_it() {
    let fixture = common::Fixture::new();
    let world: Arc<dyn Environment> = fixture.world.clone();
    // Every execute fails, so every attempt fails at its first cell.
    let always = Arc::new(Flaky {
        every: 1,
        ..Flaky::new(Arc::clone(&world), 0, usize::MAX, dropped)
    });
    match run(&fixture, always.clone(), 1, "always") {
        Err(AgentError::Env { source, .. }) => assert!(source.may_be_transient(), "{source}"),
        other => panic!("expected the environment's error, got {other:?}"),
    }
    assert_eq!(always.failures.load(Ordering::SeqCst), ENV_ATTEMPTS);
    // An error no restart cures is not retried at all.
    let broken_env = Arc::new(Flaky::new(world, 1, 1, broken));
    match run(&fixture, broken_env.clone(), 1, "broken") {
        Err(AgentError::Env { source, .. }) => {
            assert!(source.to_string().contains("corrupt"), "{source}");
        }
        other => panic!("expected the environment's error, got {other:?}"),
    }
    assert_eq!(broken_env.failures.load(Ordering::SeqCst), 1);
}
