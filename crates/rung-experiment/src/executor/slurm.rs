//! The Slurm executor: one `sbatch` job per stage of the plan, chained with
//! `--dependency=afterok:` along its edges, each job running `rung experiment stage <id>` on
//! the shared output directory.
//!
//! Every submitted job is recorded in `<output_dir>/slurm/jobs/<stage>.json` (job id, log,
//! stage directory). Submitting again skips stages whose `done.json` exists, keeps jobs that
//! are still queued or running (asking `squeue`), and submits the rest; [`status`] combines
//! `done.json`, the records and Slurm's view (`squeue`, then `sacct` where accounting runs,
//! then `scontrol`) into done / queued / running / failed per stage; [`cancel`] `scancel`s the
//! experiment's live jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::sbatch::{JobSpec, ResourceKind, file_stem, job_name, resources, stage_command};
use crate::config::ExperimentConfig;
use crate::graph::StagePlan;
use crate::store::{StageKind, Store, io, write_atomic};
use crate::{ExperimentError, StageKind as Kind};

/// A submitted job, as recorded next to the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The stage id.
    pub stage: String,
    /// Slurm's job id.
    pub job_id: u64,
    /// `--job-name`.
    pub name: String,
    /// The job's log.
    pub log: PathBuf,
    /// The stage's directory when submitted (a changed config moves it; the record is then
    /// stale).
    pub dir: PathBuf,
    /// The job script.
    pub script: PathBuf,
    /// Job ids it waited for (`afterok`).
    pub after: Vec<u64>,
    /// Stage ids of those jobs.
    pub after_stages: Vec<String>,
    /// Submission time (seconds since the epoch).
    pub submitted: f64,
}

/// Where a stage stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// `done.json` exists.
    Done,
    /// Its job waits in the queue (`reason`: Slurm's, e.g. `Dependency`, `Resources`).
    Queued(String),
    /// Its job runs.
    Running,
    /// Its job ended without finishing the stage (`how`: Slurm's state, e.g. `FAILED`).
    Failed(String),
    /// Its job was cancelled (by a person, or by Slurm because a dependency failed).
    Cancelled(String),
    /// No job was submitted for it (or its record is stale).
    NotSubmitted,
}

impl State {
    fn live(&self) -> bool {
        matches!(self, State::Queued(_) | State::Running)
    }

    /// The state as `status` prints it.
    pub fn label(&self) -> String {
        match self {
            State::Done => "done".into(),
            State::Queued(reason) => format!("queued ({reason})"),
            State::Running => "running".into(),
            State::Failed(how) => format!("failed ({how})"),
            State::Cancelled(how) => format!("cancelled ({how})"),
            State::NotSubmitted => "not submitted".into(),
        }
    }
}

/// One stage's status.
#[derive(Debug, Clone)]
pub struct StageStatus {
    /// The stage id.
    pub stage: String,
    /// Where it stands.
    pub state: State,
    /// Its latest job, if one was submitted.
    pub job: Option<JobRecord>,
}

/// What a submission did with one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Done already: no job.
    Skipped,
    /// A job of an earlier submission is still queued or running: kept.
    Kept(u64),
    /// Submitted now.
    Submitted(u64),
}

/// How to submit.
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Stages to redo even where done (and every later kind), as with the local executor.
    pub force: Vec<StageKind>,
    /// Print the job scripts instead of submitting.
    pub dry_run: bool,
    /// The `rung` binary the jobs run (default: `executor.slurm.rung`, else this process's).
    pub rung: Option<PathBuf>,
}

/// Slurm's state of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct JobState {
    state: String,
    reason: String,
}

fn command_error(program: &str, e: &std::io::Error) -> ExperimentError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ExperimentError::Stage(format!(
            "{program} not found: install Slurm (its client commands must be on PATH) or use \
             --executor local"
        ))
    } else {
        ExperimentError::Stage(format!("running {program}: {e}"))
    }
}

/// Runs a Slurm command; its stdout on success.
fn slurm(program: &str, args: &[&str]) -> Result<String, ExperimentError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| command_error(program, &e))?;
    if !out.status.success() {
        return Err(ExperimentError::Stage(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The live jobs (queued or running) among `ids`, from `squeue`.
fn squeue(ids: &[u64]) -> Result<BTreeMap<u64, JobState>, ExperimentError> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    // All of this user's jobs: `-j` with an id Slurm has forgotten fails the whole query.
    let text = slurm("squeue", &["--noheader", "--me", "--format=%i|%T|%r"])?;
    let wanted: BTreeSet<u64> = ids.iter().copied().collect();
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut parts = line.trim().split('|');
            let id: u64 = parts.next()?.parse().ok()?;
            let state = parts.next()?.to_string();
            let reason = parts.next().unwrap_or("").to_string();
            wanted
                .contains(&id)
                .then_some((id, JobState { state, reason }))
        })
        .collect())
}

/// The final state of a job no longer queued: `sacct` where accounting runs, else the
/// controller's memory of recent jobs (`scontrol`).
fn finished_state(id: u64) -> Option<JobState> {
    let id_text = id.to_string();
    if let Ok(text) = slurm(
        "sacct",
        &[
            "--noheader",
            "-X",
            "-P",
            "-j",
            &id_text,
            "--format=State,Reason",
        ],
    ) && let Some(line) = text.lines().find(|l| !l.trim().is_empty())
    {
        let mut parts = line.split('|');
        let state = parts.next().unwrap_or("").trim();
        // `CANCELLED by 0` → `CANCELLED`.
        let state = state.split_whitespace().next().unwrap_or("").to_string();
        if !state.is_empty() {
            let reason = parts.next().unwrap_or("").trim().to_string();
            return Some(JobState { state, reason });
        }
    }
    let text = slurm("scontrol", &["--oneliner", "show", "job", &id_text]).ok()?;
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .map(String::from)
    };
    Some(JobState {
        state: field("JobState=")?,
        reason: field("Reason=").unwrap_or_default(),
    })
}

/// A job's state as a stage state (`done.json` missing).
fn classify(job: Option<&JobState>) -> State {
    let Some(job) = job else {
        return State::Failed("ended; Slurm no longer knows how".into());
    };
    match job.state.as_str() {
        // A job left pending forever by a failed dependency is as good as cancelled.
        "PENDING" if job.reason.contains("DependencyNeverSatisfied") => {
            State::Cancelled("a dependency failed".into())
        }
        "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "SUSPENDED"
        | "RESV_DEL_HOLD" | "STAGE_OUT" | "SIGNALING" => State::Queued(job.reason.clone()),
        "RUNNING" | "COMPLETING" => State::Running,
        "CANCELLED" if job.reason.contains("Dependency") => {
            State::Cancelled("a dependency failed".into())
        }
        "CANCELLED" => State::Cancelled("scancel".into()),
        "COMPLETED" => State::Failed("COMPLETED without done.json".into()),
        other => State::Failed(other.to_string()),
    }
}

/// The experiment's Slurm folder: job records, scripts, logs, the config the jobs read.
pub fn slurm_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("slurm")
}

fn record_path(output_dir: &Path, stage: &str) -> PathBuf {
    slurm_dir(output_dir)
        .join("jobs")
        .join(format!("{}.json", file_stem(stage)))
}

fn read_record(output_dir: &Path, stage: &str) -> Result<Option<JobRecord>, ExperimentError> {
    let path = record_path(output_dir, stage);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
    serde_json::from_str(&text).map(Some).map_err(|e| {
        ExperimentError::Corrupt(format!("{}: {e}; delete it to resubmit", path.display()))
    })
}

/// The status of every stage of the plan.
fn statuses(
    config: &ExperimentConfig,
    plan: &StagePlan,
    store: &Store,
) -> Result<Vec<StageStatus>, ExperimentError> {
    let mut records = Vec::new();
    for node in &plan.nodes {
        let record = read_record(&config.output_dir, &node.id)?.filter(|r| r.dir == node.stage.dir);
        records.push(record);
    }
    let ids: Vec<u64> = records.iter().flatten().map(|r| r.job_id).collect();
    let queued = squeue(&ids)?;
    let mut out = Vec::new();
    for (node, record) in plan.nodes.iter().zip(records) {
        let done = store.done(&node.stage)?.is_some();
        let state = match (&record, done) {
            (_, true) => match &record {
                // Done, but a job (a forced redo) is still at it.
                Some(r) if queued.contains_key(&r.job_id) => classify(queued.get(&r.job_id)),
                _ => State::Done,
            },
            (None, false) => State::NotSubmitted,
            (Some(r), false) => match queued.get(&r.job_id) {
                Some(job) => classify(Some(job)),
                None => classify(finished_state(r.job_id).as_ref()),
            },
        };
        out.push(StageStatus {
            stage: node.id.clone(),
            state,
            job: record,
        });
    }
    Ok(out)
}

/// The config with its output directory absolute (and symlinks resolved where it exists), as
/// jobs and job records name it.
fn absolute(config: &ExperimentConfig) -> Result<ExperimentConfig, ExperimentError> {
    let mut config = config.clone();
    let dir = &config.output_dir;
    config.output_dir = if dir.exists() {
        std::fs::canonicalize(dir).map_err(|e| io(dir, e))?
    } else {
        std::path::absolute(dir).map_err(|e| io(dir, e))?
    };
    Ok(config)
}

/// Every stage's status: done / queued / running / failed / cancelled, with its job.
pub fn status(config: &ExperimentConfig) -> Result<Vec<StageStatus>, ExperimentError> {
    let config = absolute(config)?;
    let store = Store::reader(&config.output_dir);
    let plan = StagePlan::new(&config, &store)?;
    statuses(&config, &plan, &store)
}

/// The status as a table for people, failures last with their logs.
pub fn status_table(statuses: &[StageStatus]) -> String {
    let width = statuses
        .iter()
        .map(|s| s.stage.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("{:<width$}  {:<28} {:>8}  log\n", "stage", "state", "job");
    for s in statuses {
        let (job, log) = match &s.job {
            Some(r) => (r.job_id.to_string(), r.log.display().to_string()),
            None => ("–".into(), String::new()),
        };
        out.push_str(&format!(
            "{:<width$}  {:<28} {job:>8}  {log}\n",
            s.stage,
            s.state.label()
        ));
    }
    for s in statuses {
        if let (State::Failed(how), Some(r)) = (&s.state, &s.job) {
            out.push_str(&format!(
                "stage `{}` failed ({how}, Slurm job {}): see its log {}\n",
                s.stage,
                r.job_id,
                r.log.display()
            ));
        }
    }
    out
}

/// The first failure among `statuses`, as an error naming the job's log.
pub fn failure(statuses: &[StageStatus]) -> Option<ExperimentError> {
    statuses.iter().find_map(|s| match (&s.state, &s.job) {
        (State::Failed(how), Some(r)) => Some(ExperimentError::Stage(format!(
            "stage `{}` failed ({how}, Slurm job {}): see its log {}",
            s.stage,
            r.job_id,
            r.log.display()
        ))),
        _ => None,
    })
}

/// Submits the experiment: one job per stage not done, chained along the plan's edges; jobs
/// of an earlier submission that are still queued or running are kept. `config_text` is the
/// config file's TOML, which the jobs read (a copy in the output directory, so editing the
/// file later does not change queued jobs).
pub fn submit(
    config: &ExperimentConfig,
    config_text: &str,
    options: &SubmitOptions,
) -> Result<Vec<(String, Action)>, ExperimentError> {
    super::check_backend(config)?;
    std::fs::create_dir_all(&config.output_dir).map_err(|e| io(&config.output_dir, e))?;
    let config = absolute(config)?;
    let out = config.output_dir.clone();
    let workdir = std::env::current_dir().map_err(|e| io(Path::new("."), e))?;
    let rung = match options
        .rung
        .clone()
        .or_else(|| config.executor.slurm.rung.clone())
    {
        Some(rung) => rung,
        None => std::env::current_exe().map_err(|e| io(Path::new("rung"), e))?,
    };
    let store = Store::reader(&out);
    let plan = StagePlan::new(&config, &store)?;
    let first_forced = options.force.iter().min().copied();
    let forced = |kind: Kind| first_forced.is_some_and(|f| kind >= f);
    let current = if options.dry_run {
        plan.nodes
            .iter()
            .map(|n| StageStatus {
                stage: n.id.clone(),
                state: if store.done(&n.stage).ok().flatten().is_some() {
                    State::Done
                } else {
                    State::NotSubmitted
                },
                job: None,
            })
            .collect()
    } else {
        statuses(&config, &plan, &store)?
    };
    let dir = slurm_dir(&out);
    let snapshot = dir.join("config.toml");
    if !options.dry_run {
        write_atomic(&snapshot, config_text)?;
        write_atomic(
            &out.join("experiment.json"),
            &serde_json::to_string_pretty(&config).expect("configs serialise"),
        )?;
    }
    let events = (!options.dry_run)
        .then(|| Store::open(&out, &[]))
        .transpose()?;
    if let Some(store) = &events {
        // Before any job: the expert ceiling and the task subsets (cheap, in this process).
        let episodes = super::episodes(&config);
        super::Context {
            config: &config,
            plan: &plan,
            store,
            deps: store,
            deps_done: false,
            episodes: &episodes,
        }
        .guard()?;
    }
    let mut active: BTreeMap<usize, u64> = BTreeMap::new();
    let mut fresh: BTreeSet<usize> = BTreeSet::new();
    let mut actions = Vec::new();
    let mut fake_id = 0;
    for (n, node) in plan.nodes.iter().enumerate() {
        let status = &current[n];
        let dep_live = node.deps.iter().any(|d| active.contains_key(d));
        let dep_fresh = node.deps.iter().any(|d| fresh.contains(d));
        let is_forced = forced(node.stage.kind);
        if status.state == State::Done && !dep_live && !is_forced {
            actions.push((node.id.clone(), Action::Skipped));
            continue;
        }
        if status.state.live()
            && let Some(record) = &status.job
        {
            if !dep_fresh {
                active.insert(n, record.job_id);
                actions.push((node.id.clone(), Action::Kept(record.job_id)));
                continue;
            }
            // It waits for a job that is gone: replace it.
            if !options.dry_run {
                let _ = slurm("scancel", &[&record.job_id.to_string()]);
            }
        }
        let after: Vec<u64> = node
            .deps
            .iter()
            .filter_map(|d| active.get(d))
            .copied()
            .collect();
        let after_stages: Vec<String> = node
            .deps
            .iter()
            .filter(|d| active.contains_key(d))
            .map(|&d| plan.nodes[d].id.clone())
            .collect();
        let stem = file_stem(&node.id);
        let spec = JobSpec {
            name: job_name(&config.name, &node.id),
            stage_id: node.id.clone(),
            log: dir.join("logs").join(format!("{stem}-%j.log")),
            workdir: workdir.clone(),
            resources: resources(&config, ResourceKind::of(&node.step)),
            after: after.clone(),
            command: stage_command(&rung, &snapshot, &out, &options.force, &node.id),
        };
        let script = spec.script(&config);
        let script_path = dir.join("scripts").join(format!("{stem}.sh"));
        let id = if options.dry_run {
            fake_id += 1;
            println!(
                "# {} (would be job #{fake_id})\n{script}",
                script_path.display()
            );
            fake_id
        } else {
            write_atomic(&script_path, &script)?;
            std::fs::create_dir_all(dir.join("logs")).map_err(|e| io(&dir, e))?;
            let text = slurm("sbatch", &["--parsable", &script_path.to_string_lossy()])?;
            // `--parsable` prints `id` or `id;cluster`.
            let id: u64 = text
                .trim()
                .split(';')
                .next()
                .unwrap_or("")
                .parse()
                .map_err(|_| {
                    ExperimentError::Stage(format!(
                        "sbatch printed `{}`, not a job id",
                        text.trim()
                    ))
                })?;
            let record = JobRecord {
                stage: node.id.clone(),
                job_id: id,
                name: spec.name.clone(),
                log: dir.join("logs").join(format!("{stem}-{id}.log")),
                dir: node.stage.dir.clone(),
                script: script_path.clone(),
                after,
                after_stages,
                submitted: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default(),
            };
            write_atomic(
                &record_path(&out, &node.id),
                &serde_json::to_string_pretty(&record).expect("records serialise"),
            )?;
            if let Some(events) = &events {
                events.log(json!({"event": "submit", "stage": node.id, "job": id}));
            }
            id
        };
        active.insert(n, id);
        fresh.insert(n);
        actions.push((node.id.clone(), Action::Submitted(id)));
    }
    Ok(actions)
}

/// Waits until the report stage is done (polling every `every`), or fails with the first
/// failed stage's log, or when nothing is left queued or running.
pub fn wait(config: &ExperimentConfig, every: Duration) -> Result<(), ExperimentError> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let statuses = status(config)?;
        if let Some(error) = failure(&statuses) {
            return Err(error);
        }
        let report = statuses.last().expect("a plan has a report");
        if report.state == State::Done {
            return Ok(());
        }
        let live = statuses.iter().filter(|s| s.state.live()).count();
        if live == 0 {
            let stuck: Vec<String> = statuses
                .iter()
                .filter(|s| s.state != State::Done)
                .map(|s| format!("{} {}", s.stage, s.state.label()))
                .collect();
            return Err(ExperimentError::Stage(format!(
                "no job is queued or running, but stages are not done: {}; submit again to \
                 resume",
                stuck.join(", ")
            )));
        }
        let done = statuses.iter().filter(|s| s.state == State::Done).count();
        let line = format!(
            "{done}/{} stages done, {live} queued or running",
            statuses.len()
        );
        if line != last {
            eprintln!("[{:.0} s] {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        std::thread::sleep(every);
    }
}

/// Cancels the experiment's queued and running jobs; the stages and jobs cancelled.
pub fn cancel(config: &ExperimentConfig) -> Result<Vec<(String, u64)>, ExperimentError> {
    let live: Vec<(String, u64)> = status(config)?
        .into_iter()
        .filter(|s| s.state.live())
        .filter_map(|s| s.job.map(|j| (s.stage, j.job_id)))
        .collect();
    if !live.is_empty() {
        let ids: Vec<String> = live.iter().map(|(_, id)| id.to_string()).collect();
        let args: Vec<&str> = ids.iter().map(String::as_str).collect();
        slurm("scancel", &args)?;
    }
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, reason: &str) -> JobState {
        JobState {
            state: state.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn slurm_states_map_to_stage_states() {
        assert_eq!(
            classify(Some(&job("PENDING", "Dependency"))),
            State::Queued("Dependency".into())
        );
        assert!(!classify(Some(&job("PENDING", "DependencyNeverSatisfied"))).live());
        assert_eq!(classify(Some(&job("RUNNING", "None"))), State::Running);
        assert_eq!(
            classify(Some(&job("CANCELLED", "DependencyNeverSatisfied"))),
            State::Cancelled("a dependency failed".into())
        );
        assert_eq!(
            classify(Some(&job("FAILED", "NonZeroExitCode"))),
            State::Failed("FAILED".into())
        );
        assert_eq!(
            classify(Some(&job("TIMEOUT", ""))),
            State::Failed("TIMEOUT".into())
        );
        assert!(matches!(classify(None), State::Failed(_)));
    }

    #[test]
    fn status_names_a_failed_jobs_log() {
        let record = JobRecord {
            stage: "tokenizer".into(),
            job_id: 7,
            name: "rung.t.tokenizer".into(),
            log: "/out/slurm/logs/tokenizer-7.log".into(),
            dir: "/out/stages/tokenizer/bpe-1".into(),
            script: "/out/slurm/scripts/tokenizer.sh".into(),
            after: vec![],
            after_stages: vec![],
            submitted: 0.0,
        };
        let statuses = [
            StageStatus {
                stage: "data/1A-train".into(),
                state: State::Done,
                job: None,
            },
            StageStatus {
                stage: "tokenizer".into(),
                state: State::Failed("FAILED".into()),
                job: Some(record),
            },
        ];
        let table = status_table(&statuses);
        assert!(table.contains("data/1A-train"), "{table}");
        assert!(table.contains("failed (FAILED)"), "{table}");
        let error = failure(&statuses).unwrap().to_string();
        assert!(error.contains("tokenizer") && error.contains("/out/slurm/logs/tokenizer-7.log"));
        assert!(error.contains("job 7"));
    }

    #[test]
    fn a_missing_sbatch_says_how_to_fix_it() {
        let error = command_error(
            "sbatch",
            &std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        )
        .to_string();
        assert!(error.contains("sbatch not found"), "{error}");
        assert!(error.contains("--executor local"), "{error}");
    }
}
