//! `rung world serve` works as the server process of a `ServerPool`, in place of
//! `appworld serve environment`: the pool's `{port}` placeholder, readiness probe, parallel
//! episodes, restart and clean shutdown all work with the real binary.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rung_agents::AgentError;
use rung_agents::harness::ENV_ATTEMPTS;
use rung_agents::{
    AppCatalog, Backend, EvalOptions, EvalReport, ExpertOptions, Experts, GoldSource, WorldGold,
    evaluate,
};
use rung_env::protocol::ApiDocs;
use rung_env::{
    ClientOptions, EnvError, Environment, EpisodeOptions, Evaluation, PoolMember, PoolOptions,
    ServerPool, Split, TaskId, TaskInfo,
};
use rung_trajectory::{Episode, SystemKind, read_file};
use rung_world::sandbox::FAILED;
use rung_world::{EmbeddedWorld, Suite, SuiteOptions, Task};

fn pool_options(size: usize) -> PoolOptions {
    PoolOptions {
        command: [
            env!("CARGO_BIN_EXE_rung"),
            "world",
            "serve",
            "--port",
            "{port}",
        ]
        .map(String::from)
        .to_vec(),
        size,
        startup_timeout: Duration::from_secs(60),
        experiment_prefix: "rung-cli-pool-test".into(),
        ..PoolOptions::default()
    }
}

/// Runs `task`'s gold plan through `env` and returns whether it succeeds.
fn run_gold(env: &impl Environment, task: &Task) -> bool {
    let info = env
        .initialize(&task.task_id, &EpisodeOptions::default())
        .expect("initialize");
    assert_eq!(info.instruction, task.instruction);
    for cell in task.gold_cells() {
        let output = env.execute(&task.task_id, cell).expect("execute");
        assert!(!output.starts_with(FAILED), "{}: {output}", task.task_id);
    }
    let evaluation = env.evaluate(&task.task_id).expect("evaluate");
    env.close(&task.task_id).expect("close");
    evaluation.success
}

#[test]
fn a_pool_of_rung_world_servers() {
    let suite = Suite::generate(SuiteOptions::default());
    let tasks: Vec<&Task> = suite.split(Split::Dev).take(2).collect();
    let mut pool = ServerPool::start(pool_options(2)).expect("two servers start");
    assert_eq!(pool.len(), 2);
    let urls = pool.urls();
    assert_ne!(urls[0], urls[1], "servers have distinct ports");

    for client in pool.clients() {
        let info = client.task_info(&tasks[0].task_id).expect("task_info");
        assert_eq!(info.instruction, tasks[0].instruction);
    }

    // One gold task per server, in parallel.
    let results: Vec<bool> = thread::scope(|scope| {
        let runs: Vec<_> = pool
            .clients()
            .iter()
            .zip(&tasks)
            .map(|(client, task)| scope.spawn(move || run_gold(client, task)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("episode thread"))
            .collect()
    });
    assert_eq!(results, [true, true]);

    // A restarted server answers on its new port and runs episodes again.
    let old_pid = pool.pid(1).expect("server 1");
    pool.restart(1).expect("restart");
    assert_ne!(pool.pid(1), Some(old_pid));
    assert!(!process_exists(old_pid), "the old server {old_pid} is gone");
    assert!(pool.is_alive(1));
    assert!(run_gold(&pool.clients()[1], tasks[1]));

    // Dropping the pool leaves no server running.
    let pids: Vec<u32> = (0..pool.len()).filter_map(|i| pool.pid(i)).collect();
    drop(pool);
    for pid in pids {
        assert!(!process_exists(pid), "server {pid} outlived the pool");
    }
}

/// Whether `pid` is a live process (a zombie does not count); without `/proc`, assume not.
fn process_exists(pid: u32) -> bool {
    let stat = Path::new("/proc").join(pid.to_string()).join("stat");
    std::fs::read_to_string(stat).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}

/// A pool member that SIGKILLs its own server just before the second `execute` of its first
/// `episodes` episodes, so the kill lands mid-episode at a reproducible point (after the
/// episode's world was built and a cell had changed it).
struct KillMidEpisode {
    member: PoolMember,
    /// Episodes still to be killed.
    episodes: AtomicUsize,
    executes: AtomicUsize,
    killed: Mutex<Vec<u32>>,
}

impl KillMidEpisode {
    fn new(member: PoolMember, episodes: usize) -> Self {
        Self {
            member,
            episodes: AtomicUsize::new(episodes),
            executes: AtomicUsize::new(0),
            killed: Mutex::new(Vec::new()),
        }
    }

    fn killed(&self) -> Vec<u32> {
        self.killed.lock().expect("lock").clone()
    }
}

impl Environment for KillMidEpisode {
    fn initialize(&self, task: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        self.executes.store(0, Ordering::SeqCst);
        self.member.initialize(task, options)
    }

    fn execute(&self, task: &TaskId, code: &str) -> Result<String, EnvError> {
        if self.executes.fetch_add(1, Ordering::SeqCst) == 1
            && self
                .episodes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            let pid = self
                .member
                .pool()
                .lock()
                .expect("lock")
                .pid(self.member.index())
                .expect("pid");
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("kill");
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(5);
            while process_exists(pid) {
                assert!(Instant::now() < deadline, "server {pid} survived SIGKILL");
                thread::sleep(Duration::from_millis(10));
            }
            self.killed.lock().expect("lock").push(pid);
        }
        self.member.execute(task, code)
    }

    fn task_completed(&self, task: &TaskId) -> Result<bool, EnvError> {
        self.member.task_completed(task)
    }

    fn evaluate(&self, task: &TaskId) -> Result<Evaluation, EnvError> {
        self.member.evaluate(task)
    }

    fn close(&self, task: &TaskId) -> Result<(), EnvError> {
        self.member.close(task)
    }

    fn task_info(&self, task: &TaskId) -> Result<TaskInfo, EnvError> {
        self.member.task_info(task)
    }

    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        self.member.api_docs()
    }
}

/// A pool whose clients give up quickly on a dead server, so the test spends its time on
/// episodes rather than on retry backoff.
fn quick_pool(size: usize) -> Vec<PoolMember> {
    let options = PoolOptions {
        client: ClientOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(2),
            retries: 1,
            retry_backoff: Duration::from_millis(20),
        },
        ..pool_options(size)
    };
    ServerPool::start(options)
        .expect("servers start")
        .into_members()
}

/// Evaluates scripted experts (with seeded mistakes) on `tasks` in `backend` and returns the
/// report and the trajectories with their wall times zeroed.
fn expert_run(
    backend: Backend,
    gold: &Arc<dyn GoldSource>,
    tasks: &[TaskId],
    out: &Path,
) -> Result<(EvalReport, Vec<Episode>), AgentError> {
    let rates = ExpertOptions {
        mistake_rate: 0.5,
        docs_rate: 0.3,
    };
    let system = Experts::new(Arc::clone(gold), rates)
        .system(SystemKind::TwoAgent, AppCatalog::embedded())
        .with_seed(7);
    let options = EvalOptions {
        threads: 2,
        backend,
        gold: Some(Arc::clone(gold)),
        tasks: Some(tasks.to_vec()),
        limit: None,
        trajectories: Some(out.to_path_buf()),
        progress: None,
    };
    let report = evaluate(&system, Split::Dev, &options)?;
    let mut episodes = read_file(out).expect("trajectories");
    for episode in &mut episodes {
        episode.cost.wall_seconds = 0.0;
    }
    Ok((report, episodes))
}

#[test]
fn a_server_killed_mid_episode_is_revived_and_the_episode_retried_with_the_quiet_result() {
    let started = Instant::now();
    let world = Arc::new(EmbeddedWorld::new());
    let gold: Arc<dyn GoldSource> = Arc::new(WorldGold::new(Arc::clone(&world)));
    let tasks: Vec<TaskId> = gold.tasks(Split::Dev).into_iter().take(4).collect();
    let dir = std::env::temp_dir().join(format!("rung-cli-pool-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");

    // The reference: the same experts on the in-process world, nothing killed.
    let (quiet, quiet_episodes) = expert_run(
        Backend::Shared(Arc::clone(&world) as Arc<dyn Environment>),
        &gold,
        &tasks,
        &dir.join("quiet.jsonl"),
    )
    .expect("a quiet run");
    assert_eq!(quiet.env_retries, 0);

    // Two servers; the first is SIGKILLed in the middle of its first two episodes.
    let mut members = quick_pool(2).into_iter();
    let victim = Arc::new(KillMidEpisode::new(members.next().expect("member 0"), 2));
    let other = members.next().expect("member 1");
    let backend = Backend::PerWorker(vec![
        Arc::clone(&victim) as Arc<dyn Environment>,
        Arc::new(other),
    ]);
    let (killed, killed_episodes) = expert_run(backend, &gold, &tasks, &dir.join("killed.jsonl"))
        .expect("the run survives its killed server");
    let pids = victim.killed();
    assert_eq!(pids.len(), 2, "two kills landed mid-episode");
    assert_ne!(pids[0], pids[1], "the second kill hit the revived server");
    assert_eq!(
        killed.env_retries, 2,
        "each killed episode was retried once"
    );
    // Retried episodes are the quiet run's, trajectory for trajectory.
    assert_eq!(killed_episodes, quiet_episodes);
    assert_eq!(killed.scores, quiet.scores);
    assert_eq!(killed.ends, quiet.ends);
    assert_eq!(killed.subtask_errors, quiet.subtask_errors);
    assert_eq!(killed.episodes, tasks.len());
    {
        let pool = victim.member.pool().lock().expect("lock");
        assert!(pool.is_alive(0), "the victim's server runs again");
        assert!(!pids.contains(&pool.pid(0).expect("pid")));
    }

    // A server that dies in every attempt stops the run with the environment's error: the
    // episode is never scored as the model's failure.
    let victim = Arc::new(KillMidEpisode::new(
        quick_pool(1).into_iter().next().expect("member"),
        usize::MAX,
    ));
    let backend = Backend::PerWorker(vec![Arc::clone(&victim) as Arc<dyn Environment>]);
    match expert_run(backend, &gold, &tasks[..1], &dir.join("doomed.jsonl")) {
        Err(AgentError::Env { task_id, source }) => {
            assert_eq!(task_id, tasks[0]);
            assert!(source.may_be_transient(), "{source}");
        }
        other => panic!("expected the environment's error, got {other:?}"),
    }
    assert_eq!(victim.killed().len(), ENV_ATTEMPTS, "one kill per attempt");
    assert!(
        !dir.join("doomed.jsonl").exists(),
        "no trajectory of a broken run"
    );
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}
