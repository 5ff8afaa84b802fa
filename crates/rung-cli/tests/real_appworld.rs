//! rung against the real AppWorld engine (0.1.3.post1 from PyPI) on the synthetic task set.
//!
//! Ignored by default: they need the AppWorld virtualenv and the synthetic data folder, which
//! `.ci/appworld` sets up (`cargo xtask appworld setup && cargo xtask appworld synth`) before
//! running them with `--ignored`. They read the paths from the environment, as `eval "$(cargo
//! xtask appworld env)"` sets them: RUNG_APPWORLD_PYTHON, RUNG_APPWORLD_SERVE, RUNG_APPWORLD_ROOT
//! and RUNG_APPWORLD_GOLD.
//!
//! What they show: the scripted experts of all three systems reach 100% TGC through a pool of
//! real servers, with every sub-task judged done; an untrained model plays every system without
//! errors; rung's scores equal AppWorld's own evaluator's on a run with failures; every kind of
//! bad input is a clear error and a killed pool owner leaves no server behind; and how much
//! slower a step and an episode are than in the embedded world.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rung_agents::harness::has_mistake;
use rung_agents::{
    AppCatalog, AppWorldGold, Backend, Budgets, EvalOptions, EvalReport, ExpertOptions, Experts,
    GoldSource, ModelPolicy, ModelPolicyOptions, Policy, System, evaluate, prompts,
};
use rung_env::protocol::ApiDocs;
use rung_env::{
    EnvError, Environment, EpisodeOptions, EvaluatedTask, Evaluation, PoolOptions, Scores,
    ServerPool, Split, TaskId, TaskInfo,
};
use rung_model::tokenizer::Tokenizer;
use rung_model::{CausalLm, ModelConfig};
use rung_segment::{GoldPlans, Method, segment};
use rung_trajectory::{EpisodeEnd, SystemKind, read_file};
use rung_world::EmbeddedWorld;
use serde_json::Value;

/// The paths the tests need.
struct Setup {
    python: PathBuf,
    serve: PathBuf,
    root: PathBuf,
    gold: PathBuf,
}

impl Setup {
    fn from_env() -> Self {
        let var = |name: &str| {
            let value = std::env::var_os(name).unwrap_or_else(|| {
                panic!(
                    "{name} is not set: these tests need the AppWorld virtualenv and the \
                     synthetic data; run .ci/appworld, or `cargo xtask appworld setup && cargo \
                     xtask appworld synth && eval \"$(cargo xtask appworld env)\"` first"
                )
            });
            let path = PathBuf::from(value);
            assert!(
                path.exists(),
                "{name}={} does not exist; run `cargo xtask appworld setup` and `cargo xtask \
                 appworld synth`",
                path.display()
            );
            path
        };
        Self {
            python: var("RUNG_APPWORLD_PYTHON"),
            serve: var("RUNG_APPWORLD_SERVE"),
            root: var("RUNG_APPWORLD_ROOT"),
            gold: var("RUNG_APPWORLD_GOLD"),
        }
    }

    /// The pool's server command for `root`.
    fn command_for(&self, python: &Path, root: &Path) -> Vec<String> {
        [
            python.to_str().unwrap(),
            "-W",
            "ignore",
            self.serve.to_str().unwrap(),
            "--port",
            "{port}",
            "--root",
            root.to_str().unwrap(),
            "--experiment",
            "{experiment}",
        ]
        .map(String::from)
        .to_vec()
    }

    fn command(&self) -> Vec<String> {
        self.command_for(&self.python, &self.root)
    }

    fn options(&self, size: usize, prefix: &str) -> PoolOptions {
        PoolOptions {
            command: self.command(),
            size,
            startup_timeout: Duration::from_secs(120),
            experiment_prefix: prefix.into(),
            ..PoolOptions::default()
        }
    }

    fn gold(&self) -> AppWorldGold {
        AppWorldGold::load(&self.gold).expect("the gold file")
    }

    fn plans_file(&self) -> PathBuf {
        self.root.join("plans.jsonl")
    }
}

/// Environments of the episode servers, the gold judged on one more server, and every task.
type PoolRun = (Vec<Arc<dyn Environment>>, Arc<dyn GoldSource>, Vec<TaskId>);

/// `workers` servers for episodes, and the gold with one more server as its judge.
fn pool_run(setup: &Setup, workers: usize, prefix: &str) -> PoolRun {
    let pool = ServerPool::start(setup.options(workers + 1, prefix)).expect("servers start");
    let mut members = pool.into_members();
    let judge = members.pop().expect("judge");
    let gold = setup.gold();
    let tasks = gold.all_tasks();
    let gold: Arc<dyn GoldSource> = Arc::new(gold.with_judge(Arc::new(judge)));
    let envs = members
        .into_iter()
        .map(|m| Arc::new(m) as Arc<dyn Environment>)
        .collect();
    (envs, gold, tasks)
}

fn run_options(
    envs: &[Arc<dyn Environment>],
    gold: &Arc<dyn GoldSource>,
    tasks: &[TaskId],
    trajectories: Option<PathBuf>,
) -> EvalOptions {
    EvalOptions {
        backend: Backend::PerWorker(envs.to_vec()),
        gold: Some(Arc::clone(gold)),
        tasks: Some(tasks.to_vec()),
        limit: None,
        threads: envs.len(),
        trajectories,
        progress: None,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("rung-real-appworld-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn total_subtasks(gold: &dyn GoldSource, tasks: &[TaskId]) -> usize {
    tasks
        .iter()
        .map(|t| gold.plan(t).expect("plan").subtasks.len())
        .sum()
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn experts_of_every_system_reach_full_tgc_on_real_appworld() {
    let setup = Setup::from_env();
    let (envs, gold, tasks) = pool_run(&setup, 2, "rung-test-experts");
    assert!(tasks.len() >= 20, "{} tasks", tasks.len());
    let apps = AppCatalog::from_api_docs(&envs[0].api_docs().expect("api docs"));
    for app in ["simple_note", "todoist", "phone", "venmo", "gmail"] {
        assert!(apps.accepts(app), "{app} is not among {apps:?}");
    }
    let subtasks = total_subtasks(gold.as_ref(), &tasks);
    let plans = GoldPlans::read_jsonl(&setup.plans_file()).expect("plans.jsonl");
    let dir = temp_dir("experts");
    // Mistakes and documentation look-ups on, so that recoveries run on the real engine.
    let rates = ExpertOptions {
        mistake_rate: 0.5,
        docs_rate: 0.3,
    };
    for kind in SystemKind::ALL {
        let started = Instant::now();
        let system = Experts::new(Arc::clone(&gold), rates).system(kind, apps.clone());
        let path = dir.join(format!("{kind}.jsonl"));
        let options = run_options(&envs, &gold, &tasks, Some(path.clone()));
        let report = evaluate(&system, Split::Train, &options).expect("a run without errors");
        eprintln!(
            "{kind} experts: {:.1} s\n{}",
            started.elapsed().as_secs_f64(),
            report.table()
        );
        assert_eq!(report.episodes, tasks.len());
        assert_eq!(
            report.scores.overall.tgc,
            100.0,
            "{kind}:\n{}",
            report.table()
        );
        assert_eq!(report.scores.overall.sgc, 100.0, "{kind}");
        let errors = report
            .subtask_errors
            .as_ref()
            .expect("sub-task error rates");
        assert_eq!(
            errors.unjudged_episodes, 0,
            "{kind}: every episode is judged"
        );
        assert_eq!(errors.overall.subtasks, subtasks, "{kind}");
        assert_eq!(errors.overall.errors, 0, "{kind}: {errors:?}");

        let episodes = read_file(&path).expect("trajectories");
        assert_eq!(episodes.len(), tasks.len());
        let mistakes = episodes.iter().filter(|e| has_mistake(e)).count();
        assert!(
            mistakes > 0,
            "{kind}: some episodes make a mistake and recover"
        );
        for episode in &episodes {
            assert_eq!(episode.end, EpisodeEnd::Completed, "{}", episode.task_id);
            // The gold split into sub-tasks also drives the segmenter.
            let segmentation = segment(episode, &plans);
            let planned = gold.plan(&episode.task_id).unwrap().subtasks.len();
            assert_eq!(segmentation.len(), planned, "{kind} {}", episode.task_id);
            if kind == SystemKind::Single {
                assert_ne!(
                    segmentation.method,
                    Method::AppSwitch,
                    "{}",
                    episode.task_id
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The world's text for a tokenizer: the system prompts, and the tasks' instructions and code.
fn corpus(gold: &AppWorldGold, apps: &AppCatalog) -> Vec<String> {
    let mut texts = vec![
        prompts::single_system(),
        prompts::executor_system(),
        prompts::orchestrator_system(apps),
        prompts::critic_system(),
    ];
    for task in gold.all_tasks() {
        let plan = gold.plan(&task).unwrap();
        texts.extend(plan.subtasks.iter().map(|s| s.instruction.clone()));
        texts.extend(plan.subtasks.iter().map(|s| s.code.clone()));
    }
    texts
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn an_untrained_model_plays_every_system_on_real_appworld() {
    let setup = Setup::from_env();
    let (envs, gold, tasks) = pool_run(&setup, 2, "rung-test-untrained");
    let apps = AppCatalog::from_api_docs(&envs[0].api_docs().expect("api docs"));
    let tokenizer = Arc::new(Tokenizer::train_bpe(corpus(&setup.gold(), &apps), 2048, 2).unwrap());
    let config = ModelConfig::preset("tiny").unwrap();
    let device = rung_model::inference_device();
    device.seed(7);
    let model = CausalLm::new(&config, &device).unwrap();
    let policy = ModelPolicy::new(
        "untrained-tiny",
        model,
        Arc::clone(&tokenizer),
        ModelPolicyOptions::default(),
    )
    .unwrap();
    let policy: Arc<dyn Policy> = Arc::new(policy);
    let budgets = Budgets {
        max_interactions: 6,
        max_tokens_per_turn: 32,
        max_subtasks: 3,
        max_executor_steps: 3,
        max_critic_retries: 1,
        max_format_retries: 1,
    };
    for kind in SystemKind::ALL {
        let started = Instant::now();
        let system =
            System::of_kind(kind, |_| Arc::clone(&policy), apps.clone()).with_budgets(budgets);
        let options = run_options(&envs, &gold, &tasks, None);
        let report = evaluate(&system, Split::Train, &options).expect("a run without errors");
        eprintln!(
            "{kind} untrained: {:.1} s\n{}",
            started.elapsed().as_secs_f64(),
            report.table()
        );
        assert_eq!(report.episodes, tasks.len());
        assert_eq!(report.ends.values().sum::<usize>(), tasks.len());
        assert!(
            !report.ends.keys().any(|end| end.contains("policy")),
            "{kind}: {:?}",
            report.ends
        );
        assert!(report.scores.overall.tgc <= 10.0, "{kind}");
        assert!(report.cost.total.flops > 0.0);
        let errors = report.subtask_errors.expect("sub-task error rates");
        assert_eq!(
            errors.unjudged_episodes, 0,
            "{kind}: every episode is judged"
        );
    }
}

/// What the Python evaluator says about an experiment's saved outputs.
fn appworld_evaluation(setup: &Setup, tasks: &[TaskId], experiment: &str) -> Value {
    let ids: Vec<&str> = tasks.iter().map(TaskId::as_str).collect();
    let script = "import json, sys\n\
                  from appworld.evaluator import evaluate_tasks\n\
                  ids, experiment = json.loads(sys.argv[1]), sys.argv[2]\n\
                  metrics = evaluate_tasks(ids, experiment_name=experiment, save_reports=False)\n\
                  print('RUNG-JSON ' + json.dumps(metrics))\n";
    let output = Command::new(&setup.python)
        .args(["-W", "ignore", "-c", script])
        .arg(serde_json::to_string(&ids).unwrap())
        .arg(experiment)
        .env("APPWORLD_ROOT", &setup.root)
        .env("TQDM_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the AppWorld evaluator");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the AppWorld evaluator failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RUNG-JSON "))
        .expect("the evaluator's JSON");
    serde_json::from_str(line).unwrap()
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn rung_scores_match_appworlds_own_evaluator() {
    let setup = Setup::from_env();
    let gold = setup.gold();
    let tasks = gold.all_tasks();
    let pool = ServerPool::start(setup.options(1, "rung-test-match")).expect("a server starts");
    let experiment = pool.experiments()[0].clone();
    let client = pool.clients()[0].clone();
    // Every other task gets its whole gold program, the rest only the first sub-task and the
    // completion: a run with successes and failures.
    let mut evaluations: BTreeMap<TaskId, Evaluation> = BTreeMap::new();
    for (i, task) in tasks.iter().enumerate() {
        let plan = gold.plan(task).unwrap();
        client
            .initialize(task, &EpisodeOptions::default())
            .expect("initialize");
        let subtasks = if i % 2 == 0 { plan.subtasks.len() } else { 1 };
        for subtask in &plan.subtasks[..subtasks] {
            client.execute(task, &subtask.code).expect("execute");
        }
        client.execute(task, &plan.completion).expect("execute");
        evaluations.insert(task.clone(), client.evaluate(task).expect("evaluate"));
        client.close(task).expect("close");
    }
    drop(pool);

    let evaluated: Vec<EvaluatedTask> = evaluations
        .iter()
        .map(|(task_id, e)| EvaluatedTask {
            task_id: task_id.clone(),
            difficulty: e.difficulty,
            success: e.success,
        })
        .collect();
    let scores = Scores::from_tasks(&evaluated);
    assert!(
        scores.overall.tgc > 0.0 && scores.overall.tgc < 100.0,
        "a mixed run: {:?}",
        scores.overall
    );

    let appworld = appworld_evaluation(&setup, &tasks, &experiment);
    for (task_id, evaluation) in &evaluations {
        let theirs = &appworld["individual"][task_id.as_str()];
        assert_eq!(
            theirs["success"].as_bool(),
            Some(evaluation.success),
            "{task_id}"
        );
        let passed = |list: &Value| -> Vec<String> {
            let mut out: Vec<String> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["requirement"].as_str().unwrap().to_owned())
                .collect();
            out.sort();
            out
        };
        let mut ours: Vec<String> = evaluation
            .passes
            .iter()
            .map(|p| p.requirement.clone())
            .collect();
        ours.sort();
        assert_eq!(passed(&theirs["passes"]), ours, "{task_id}");
        assert_eq!(
            theirs["num_tests"].as_u64(),
            Some(evaluation.num_tests as u64)
        );
    }
    let aggregate = &appworld["aggregate"];
    let round = |x: f64| (x * 10.0).round() / 10.0;
    assert_eq!(
        aggregate["task_goal_completion"].as_f64(),
        Some(round(scores.overall.tgc)),
        "TGC"
    );
    assert_eq!(
        aggregate["scenario_goal_completion"].as_f64(),
        Some(round(scores.overall.sgc)),
        "SGC"
    );
    eprintln!(
        "rung: TGC {:.1} SGC {:.1}; AppWorld's evaluator: {aggregate}",
        scores.overall.tgc, scores.overall.sgc
    );
}

fn pool_error(options: PoolOptions) -> String {
    match ServerPool::start(options) {
        Err(EnvError::Pool(message)) => message,
        Err(other) => panic!("expected a pool error, got {other}"),
        Ok(pool) => panic!("expected a failure, got servers at {:?}", pool.urls()),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn bad_input_is_a_clear_error() {
    let setup = Setup::from_env();
    let task: TaskId = setup.gold().all_tasks()[0].clone();

    // A port that is taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut options = setup.options(1, "rung-test-bad");
    options.command = options
        .command
        .iter()
        .map(|a| a.replace("{port}", &port))
        .collect();
    let message = pool_error(options);
    assert!(
        message.contains("exited") && message.contains("address already in use"),
        "{message}"
    );

    // A broken virtualenv: no interpreter, or one without AppWorld (-S: no site-packages).
    let mut options = setup.options(1, "rung-test-bad");
    options.command[0] = "/nonexistent/venv/bin/python".into();
    assert!(pool_error(options).contains("could not be started"));
    let mut options = setup.options(1, "rung-test-bad");
    options.command = [&setup.python.to_string_lossy(), "-S"]
        .map(|s| s.to_string())
        .into_iter()
        .chain(options.command.into_iter().skip(1))
        .collect();
    let message = pool_error(options);
    assert!(
        message.contains("cannot import AppWorld's server"),
        "{message}"
    );

    // A folder that is not a data root.
    let empty = temp_dir("empty-root");
    let mut options = setup.options(1, "rung-test-bad");
    options.command = setup.command_for(&setup.python, &empty);
    let message = pool_error(options);
    assert!(
        message.contains("is not an AppWorld data root"),
        "{message}"
    );

    // A server that takes longer than the startup timeout is stopped.
    let mut options = setup.options(1, "rung-test-bad");
    options.startup_timeout = Duration::from_millis(200);
    let message = pool_error(options);
    assert!(
        message.contains("did not answer GET / in time"),
        "{message}"
    );

    // A task that is not in the data folder, and a data folder with a broken task and a
    // missing database.
    let broken = temp_dir("broken-root");
    copy_dir(&setup.root.join("data"), &broken.join("data"));
    std::fs::remove_file(
        broken
            .join("data/tasks")
            .join(task.as_str())
            .join("specs.json"),
    )
    .unwrap();
    std::fs::remove_file(broken.join("data/base_dbs/phone.db")).unwrap();
    let mut options = setup.options(1, "rung-test-bad");
    options.command = setup.command_for(&setup.python, &broken);
    let pool = ServerPool::start(options).expect("the server starts");
    let client = pool.clients()[0].clone();
    let unknown: TaskId = "fffffff_1".parse().unwrap();
    match client.initialize(&unknown, &EpisodeOptions::default()) {
        Err(EnvError::UnknownTask { task_id, hint }) => {
            assert_eq!(task_id, unknown);
            assert!(hint.contains("doesn't exist"), "{hint}");
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    assert!(matches!(
        client.task_info(&unknown),
        Err(EnvError::UnknownTask { .. })
    ));
    match client.initialize(&task, &EpisodeOptions::default()) {
        Err(EnvError::UnknownTask { hint, .. }) => assert!(hint.contains("specs"), "{hint}"),
        other => panic!("expected UnknownTask for a task without specs, got {other:?}"),
    }
    let other = setup.gold().all_tasks()[3].clone();
    match client.initialize(&other, &EpisodeOptions::default()) {
        Err(EnvError::Http {
            status: 500, body, ..
        }) => {
            assert!(body.contains("phone"), "{body}")
        }
        other => panic!("expected HTTP 500 naming the missing database, got {other:?}"),
    }
    drop(pool);
    let _ = std::fs::remove_dir_all(&broken);
    let _ = std::fs::remove_dir_all(&empty);
}

/// Set for the child process of `a_killed_owner_leaves_no_appworld_server_behind`.
const HOLDER_ENV: &str = "RUNG_APPWORLD_POOL_HOLDER_FILE";

/// Not a test of its own: the child process of `a_killed_owner_leaves_no_appworld_server_behind`.
#[test]
#[ignore = "a helper process of a_killed_owner_leaves_no_appworld_server_behind"]
fn appworld_pool_holder() {
    let Some(path) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let setup = Setup::from_env();
    let pool = ServerPool::start(setup.options(2, "rung-test-holder")).expect("start");
    let line = format!(
        "{} {} {}\n",
        pool.pid(0).unwrap(),
        pool.pid(1).unwrap(),
        pool.urls().join(" ")
    );
    let tmp = PathBuf::from(&path).with_extension("tmp");
    std::fs::write(&tmp, line).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    // An episode is under way when the owner is killed.
    let task = setup.gold().all_tasks()[0].clone();
    pool.clients()[0]
        .initialize(&task, &EpisodeOptions::default())
        .unwrap();
    loop {
        thread::sleep(Duration::from_secs(60));
    }
}

/// Whether `pid` runs: it exists and is not a zombie.
fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn a_killed_owner_leaves_no_appworld_server_behind() {
    let _setup = Setup::from_env();
    let dir = temp_dir("holder");
    let file = dir.join("servers");
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "appworld_pool_holder",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env(HOLDER_ENV, &file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !file.exists() {
        if let Ok(Some(status)) = holder.try_wait() {
            panic!("the pool holder exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the holder did not start its servers"
        );
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    let text = std::fs::read_to_string(&file).unwrap();
    let fields: Vec<&str> = text.split_whitespace().collect();
    let pids: Vec<u32> = fields[..2].iter().map(|p| p.parse().unwrap()).collect();
    assert!(pids.iter().all(|&pid| process_running(pid)));
    holder.kill().unwrap();
    holder.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|&pid| process_running(pid)) {
        assert!(
            Instant::now() < deadline,
            "AppWorld servers {pids:?} outlived their killed owner"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An environment that times its calls.
struct Timed {
    inner: Arc<dyn Environment>,
    /// (calls, seconds) of `execute`.
    steps: Mutex<(u64, f64)>,
}

impl Timed {
    fn new(inner: Arc<dyn Environment>) -> Self {
        Self {
            inner,
            steps: Mutex::new((0, 0.0)),
        }
    }
}

impl Environment for Timed {
    fn initialize(&self, task: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        self.inner.initialize(task, options)
    }
    fn execute(&self, task: &TaskId, code: &str) -> Result<String, EnvError> {
        let started = Instant::now();
        let output = self.inner.execute(task, code);
        let mut steps = self.steps.lock().unwrap();
        steps.0 += 1;
        steps.1 += started.elapsed().as_secs_f64();
        output
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

/// One line of the timing table: seconds per step and per episode, one worker.
fn time_run(
    label: &str,
    env: Arc<dyn Environment>,
    gold: Arc<dyn GoldSource>,
    tasks: &[TaskId],
    apps: AppCatalog,
) -> (String, f64, f64) {
    let timed = Arc::new(Timed::new(env));
    let rates = ExpertOptions {
        mistake_rate: 0.0,
        docs_rate: 0.0,
    };
    let system = Experts::new(Arc::clone(&gold), rates).system(SystemKind::Single, apps);
    let options = EvalOptions {
        backend: Backend::PerWorker(vec![timed.clone() as Arc<dyn Environment>]),
        gold: None,
        tasks: Some(tasks.to_vec()),
        limit: None,
        threads: 1,
        trajectories: None,
        progress: None,
    };
    let report: EvalReport = evaluate(&system, Split::Dev, &options).expect("run");
    assert_eq!(report.scores.overall.tgc, 100.0, "{label}");
    let (steps, seconds) = *timed.steps.lock().unwrap();
    let per_step = seconds / steps as f64;
    let per_episode = report.wall_seconds / tasks.len() as f64;
    let line = format!(
        "{label:<38} {:>3} episodes {:>4} steps  {:>8.2} ms/step  {:>8.1} ms/episode",
        tasks.len(),
        steps,
        per_step * 1e3,
        per_episode * 1e3
    );
    (line, per_step, per_episode)
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn timings_of_real_appworld_and_the_embedded_world() {
    let setup = Setup::from_env();
    // Real AppWorld: the synthetic tasks on one server over loopback HTTP.
    let pool = ServerPool::start(setup.options(1, "rung-test-timing")).expect("a server");
    let members = pool.into_members();
    let server: Arc<dyn Environment> = Arc::new(members.into_iter().next().unwrap());
    let gold = setup.gold();
    let tasks = gold.all_tasks();
    let apps = AppCatalog::from_api_docs(&server.api_docs().unwrap());
    let gold: Arc<dyn GoldSource> = Arc::new(gold);
    // Warm the server up (its first episode imports the apps).
    server
        .initialize(&tasks[0], &EpisodeOptions::default())
        .unwrap();
    server.close(&tasks[0]).unwrap();
    let (real, real_step, real_episode) =
        time_run("real AppWorld (HTTP, 1 server)", server, gold, &tasks, apps);

    // The embedded world: comparable tasks (1 to 4 sub-tasks, dev split), in process and
    // over rung's own HTTP server.
    let world = Arc::new(EmbeddedWorld::new());
    let world_gold: Arc<dyn GoldSource> = Arc::new(rung_agents::WorldGold::new(Arc::clone(&world)));
    let comparable: Vec<TaskId> = world
        .suite()
        .split(Split::Dev)
        .filter(|t| t.plan.len() <= 4)
        .map(|t| t.task_id.clone())
        .take(tasks.len())
        .collect();
    // Warm the embedded world up too (its first episodes build caches).
    let _ = time_run(
        "warm-up",
        world.clone(),
        Arc::clone(&world_gold),
        &comparable,
        AppCatalog::embedded(),
    );
    let (embedded, embedded_step, embedded_episode) = time_run(
        "embedded world (in process)",
        world.clone(),
        Arc::clone(&world_gold),
        &comparable,
        AppCatalog::embedded(),
    );
    let handle = rung_env::serve(Arc::clone(&world), "127.0.0.1:0").expect("serve");
    let client: Arc<dyn Environment> = Arc::new(rung_env::AppWorldClient::new(handle.url()));
    let (http, http_step, http_episode) = time_run(
        "embedded world (HTTP, rung's server)",
        client,
        world_gold,
        &comparable,
        AppCatalog::embedded(),
    );
    handle.stop();
    eprintln!(
        "\nseconds per /execute step and per episode (single-agent experts, same machine, same \
         run):\n{real}\n{http}\n{embedded}\nreal AppWorld / embedded in process: {:.0}x per step, \
         {:.0}x per episode; / embedded over HTTP: {:.1}x per step, {:.1}x per episode\n",
        real_step / embedded_step,
        real_episode / embedded_episode,
        real_step / http_step,
        real_episode / http_episode,
    );
}

/// Runs the `rung` binary; returns (success, stdout, stderr).
fn rung(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rung"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rung");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_gold_file_without_servers_or_in_a_bad_state_is_refused() {
    let dir = temp_dir("cli-gold");
    let missing = dir.join("missing.json");
    let (ok, _, stderr) = rung(&[
        "eval",
        "--experts",
        "--system",
        "single",
        "--gold",
        missing.to_str().unwrap(),
        "--server-command",
        "true {port}",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("missing.json") && stderr.contains("appworld synth"),
        "{stderr}"
    );

    let gold = dir.join("gold.json");
    std::fs::write(
        &gold,
        r#"{"format": "rung-appworld-gold", "version": 1, "splits": {}, "tasks": []}"#,
    )
    .unwrap();
    let (ok, _, stderr) = rung(&[
        "eval",
        "--experts",
        "--system",
        "single",
        "--gold",
        gold.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("--gold needs AppWorld servers"), "{stderr}");
    let (ok, _, stderr) = rung(&["data", "gen", "--gold", gold.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("--gold needs AppWorld servers"), "{stderr}");
    let (ok, _, stderr) = rung(&[
        "eval",
        "--system",
        "single",
        "--no-gold",
        "--tasks",
        "x",
        "--gold",
        gold.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data (.ci/appworld)"]
fn the_cli_runs_experts_and_generates_data_on_appworld() {
    let setup = Setup::from_env();
    let dir = temp_dir("cli");
    let command = setup.command().join(" ");
    let gold = setup.gold.to_str().unwrap().to_owned();
    let out = dir.join("eval");
    let (ok, stdout, stderr) = rung(&[
        "eval",
        "--experts",
        "--system",
        "two-agent",
        "--split",
        "test_normal",
        "--gold",
        &gold,
        "--server-command",
        &command,
        "--pool-size",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("starting 3 environment server(s)"),
        "{stderr}"
    );
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["episodes"], 6, "{results}");
    assert_eq!(results["scores"]["overall"]["tgc"], 100.0, "{results}");
    assert_eq!(
        results["subtask_errors"]["overall"]["errors"], 0,
        "{results}"
    );

    let data = dir.join("single-dev.jsonl");
    let (ok, stdout, stderr) = rung(&[
        "data",
        "gen",
        "--system",
        "single",
        "--split",
        "dev",
        "--gold",
        &gold,
        "--server-command",
        &command,
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("wrote 6 episodes"), "{stdout}");
    assert_eq!(read_file(&data).unwrap().len(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}
