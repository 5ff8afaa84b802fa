//! Chaos test of `rung experiment`: the process is SIGKILLed at seeded random moments in each
//! phase (expert data, tokenizer, training, evaluation, report), resumed after every kill, and
//! the final `results.json` must equal an uninterrupted run's, wall times aside.
//!
//! The kill plan (which phase, how long after it starts) comes from a seed, printed so that a
//! failure can be replayed with `RUNG_CHAOS_SEED=<seed>`; when exactly a phase starts is up to
//! the machine, so the plan only fixes moments relative to each phase's start. Phases are seen
//! in `events.jsonl` (a stage's `start`/`resume` event, and the last evaluation's `done`
//! before the report) and, for training, in the newest checkpoint under `stages/train/`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A deliberately small experiment: one system, one schedule, one seed, a few tasks, two short
/// epochs with a checkpoint after every step (so that a kill can land between checkpoints).
const CONFIG: &str = r#"
name = "chaos"
description = "Chaos test: the smallest experiment that runs every stage."
output_dir = "runs/experiment/chaos"
backend = "cpu"

[environment]
kind = "embedded"
suite_seed = 0

[data]
train_split = "train"
train_tasks = 8
validation_split = "dev"
validation_tasks = 2

[tokenizer]
kind = "train"

[models]
tiny = { preset = "tiny" }

[training]
epochs = 2
batch_size = 2
lr = 3e-3
warmup_steps = 1
decay = "cosine"
min_lr_ratio = 0.1
max_seq_len = 1024
checkpoint_every = 1
keep_last = 1

[evaluation]
splits = ["test_normal"]
tasks_per_split = 3
checkpoint = "last"
# As small as the experts allow: the run refuses budgets under which they fail a task.
budgets = { max_interactions = 10, max_tokens_per_turn = 128, max_subtasks = 2, max_executor_steps = 2, max_format_retries = 1 }

[[group]]
systems = ["single"]
sizes = ["tiny"]
schedules = ["prost"]
seeds = [0]
"#;

/// The seed of the kill plan unless `RUNG_CHAOS_SEED` says otherwise.
const DEFAULT_SEED: u64 = 16;

/// SplitMix64: a tiny seeded generator, so the plan needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The phases a kill aims at, in pipeline order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Data,
    Tokenizer,
    Train,
    Eval,
    Report,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Data,
        Phase::Tokenizer,
        Phase::Train,
        Phase::Eval,
        Phase::Report,
    ];

    /// The stage whose `start` (or `resume`) event opens the phase; the report has none and
    /// opens with the last evaluation's `done`.
    fn stage(self) -> Option<&'static str> {
        match self {
            Phase::Data => Some("data"),
            Phase::Tokenizer => Some("tokenizer"),
            Phase::Train => Some("train"),
            Phase::Eval => Some("eval"),
            Phase::Report => None,
        }
    }
}

/// How long each phase took in the uninterrupted run, from its events: a kill aims at a seeded
/// fraction of that, so that it lands inside the phase whatever the machine's speed.
fn durations(events: &[Value]) -> Vec<(Phase, f64)> {
    let time = |e: &Value| e["time"].as_f64().unwrap_or_default();
    Phase::ALL
        .into_iter()
        .map(|phase| {
            let (from, to) = match phase.stage() {
                Some(stage) => {
                    let of_stage: Vec<&Value> =
                        events.iter().filter(|e| e["stage"] == stage).collect();
                    (
                        of_stage.first().map(|e| time(e)),
                        of_stage.last().map(|e| time(e)),
                    )
                }
                None => (
                    events
                        .iter()
                        .rev()
                        .find(|e| e["event"] == "done" && e["stage"] == "eval")
                        .map(time),
                    events.iter().find(|e| e["event"] == "report").map(time),
                ),
            };
            let seconds = match (from, to) {
                (Some(from), Some(to)) => (to - from).max(0.0),
                _ => panic!("the uninterrupted run has no {phase:?} phase in its events"),
            };
            (phase, seconds)
        })
        .collect()
}

/// One experiment folder and the command that runs it.
struct Experiment {
    config: PathBuf,
    out: PathBuf,
    logs: PathBuf,
    attempts: usize,
}

impl Experiment {
    fn new(root: &Path) -> Self {
        std::fs::create_dir_all(root).expect("scratch folder");
        let config = root.join("chaos.toml");
        std::fs::write(&config, CONFIG).expect("write the config");
        Self {
            config,
            out: root.join("out"),
            logs: root.join("logs"),
            attempts: 0,
        }
    }

    /// Starts `rung experiment` on the folder, its output in a log of its own.
    fn spawn(&mut self) -> (Child, PathBuf) {
        std::fs::create_dir_all(&self.logs).expect("log folder");
        self.attempts += 1;
        let log = self.logs.join(format!("attempt-{}.log", self.attempts));
        let file = File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_rung"))
            .arg("experiment")
            .arg("--config")
            .arg(&self.config)
            .arg("--output-dir")
            .arg(&self.out)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start rung experiment");
        (child, log)
    }

    fn events(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(self.out.join("events.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a torn line in events.jsonl ({e}): {line:?}"))
            })
            .collect()
    }

    fn results(&self) -> Value {
        let path = self.out.join("results.json");
        let text = std::fs::read_to_string(&path).expect("results.json");
        serde_json::from_str(&text).expect("results.json is JSON")
    }
}

fn wait(child: &mut Child, log: &Path) -> ExitStatus {
    let status = child.wait().expect("wait");
    assert!(
        status.success(),
        "rung experiment failed ({status}); its log {}:\n{}",
        log.display(),
        tail(log)
    );
    status
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Whether events logged after `seen` show the run in `phase` or a later one.
fn reached(experiment: &Experiment, seen: usize, phase: Phase, evals: usize) -> bool {
    let events = experiment.events();
    let new = events.get(seen..).unwrap_or_default();
    let evals_done = events
        .iter()
        .filter(|e| e["event"] == "done" && e["stage"] == "eval")
        .count();
    Phase::ALL
        .into_iter()
        .filter(|later| *later >= phase)
        .any(|later| match later.stage() {
            Some(stage) => new.iter().any(|e| {
                matches!(e["event"].as_str(), Some("start" | "resume")) && e["stage"] == stage
            }),
            None => evals_done >= evals || new.iter().any(|e| e["event"] == "report"),
        })
}

/// The results without what depends on the clock: wall times, rates, timestamps.
fn without_wall_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| {
                !(key.contains("seconds")
                    || key.ends_with("_s")
                    || key.contains("per_s")
                    || key == "time")
            });
            map.values_mut().for_each(without_wall_times);
        }
        Value::Array(items) => items.iter_mut().for_each(without_wall_times),
        _ => {}
    }
}

#[test]
fn a_repeatedly_killed_experiment_resumes_to_the_uninterrupted_results() {
    let seed = std::env::var("RUNG_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!("chaos seed {seed} (replay with RUNG_CHAOS_SEED={seed})");
    let root = std::env::temp_dir().join(format!("rung-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    // The reference, uninterrupted, in the very folder the chaos run uses afterwards, so that
    // the paths recorded in the results are the same.
    let started = Instant::now();
    let mut experiment = Experiment::new(&root);
    let (mut child, log) = experiment.spawn();
    wait(&mut child, &log);
    let reference_seconds = started.elapsed().as_secs_f64();
    let mut reference = experiment.results();
    let events = experiment.events();
    let evals = events
        .iter()
        .filter(|e| e["event"] == "done" && e["stage"] == "eval")
        .count();
    assert!(evals > 0, "the reference run evaluated something");
    let phase_seconds = durations(&events);
    std::fs::remove_dir_all(&experiment.out).expect("clear the reference output");
    eprintln!("uninterrupted run: {reference_seconds:.1} s; phases {phase_seconds:?}");

    // Kills: one per phase in pipeline order, plus three aimed at seeded phases, each a seeded
    // fraction of the phase's reference duration after the phase is seen; the run is resumed
    // after each.
    let mut rng = Rng(seed);
    let mut plan = Phase::ALL.to_vec();
    for _ in 0..3 {
        plan.push(Phase::ALL[rng.below(Phase::ALL.len() as u64) as usize]);
    }
    plan.sort();
    let chaos_started = Instant::now();
    let mut kills = Vec::new();
    for phase in plan {
        let length = phase_seconds
            .iter()
            .find(|(p, _)| *p == phase)
            .map_or(0.0, |(_, s)| *s);
        let delay = Duration::from_secs_f64(length * rng.below(1000) as f64 / 1000.0);
        let seen = experiment.events().len();
        let (mut child, log) = experiment.spawn();
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut exited = None;
        while exited.is_none() && !reached(&experiment, seen, phase, evals) {
            assert!(Instant::now() < deadline, "{phase:?} never came");
            exited = child.try_wait().expect("poll");
            thread::sleep(Duration::from_millis(1));
        }
        if exited.is_none() {
            thread::sleep(delay);
            exited = child.try_wait().expect("poll");
        }
        match exited {
            Some(status) => {
                assert!(
                    status.success(),
                    "attempt failed ({status}):\n{}",
                    tail(&log)
                );
                eprintln!("{phase:?}: the run finished before its kill");
                kills.push(format!("{phase:?} (finished first)"));
            }
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                eprintln!("killed {} ms into {phase:?}", delay.as_millis());
                kills.push(format!("{phase:?} +{} ms", delay.as_millis()));
            }
        }
        // Whatever the kill interrupted, what the run left is readable.
        experiment.events();
    }
    let (mut child, log) = experiment.spawn();
    wait(&mut child, &log);
    let chaos_seconds = chaos_started.elapsed().as_secs_f64();
    eprintln!(
        "chaos run: {chaos_seconds:.1} s over {} processes; kills: {}",
        experiment.attempts - 1,
        kills.join(", ")
    );

    let mut resumed = experiment.results();
    without_wall_times(&mut reference);
    without_wall_times(&mut resumed);
    assert_eq!(
        resumed, reference,
        "seed {seed}: the resumed results differ from the uninterrupted run's"
    );
    // The resumed training really resumed: some training process found checkpoints.
    let events = experiment.events();
    let resumes = events
        .iter()
        .filter(|e| e["event"] == "resume" && e["stage"] == "train")
        .count();
    eprintln!("training resumed from a checkpoint {resumes} time(s)");
    let _ = std::fs::remove_dir_all(&root);
}
