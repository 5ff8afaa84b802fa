//! `rung experiment --executor slurm` against a real Slurm cluster.
//!
//! Ignored by default: they need a running cluster, which `.ci/slurm` starts on this machine
//! (Debian's slurm-wlm and munge, one node) before running them with `--ignored`, with
//! `SLURM_CONF` and `RUNG_SLURM_JOBCOMP` (Slurm's job completion log) exported.
//!
//! What they show: `configs/smoke.toml` through Slurm, with sharded evaluations, gives the same
//! `results.json` as the local executor (wall times aside); Slurm ran one job per stage, each
//! after the jobs of the stages it reads; a training job cancelled mid-run is resubmitted
//! alone and resumes from its checkpoint; cancelling the experiment cancels its jobs; a failed
//! stage's dependents never start, and `status` and the error name the failed job's log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

fn rung() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rung"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `rung` with `args`; its output, which must (or must not) be a success.
fn run(args: &[&str], succeed: bool) -> String {
    let out = rung().args(args).output().unwrap();
    let all = text(&out);
    assert_eq!(
        out.status.success(),
        succeed,
        "rung {}:\n{all}",
        args.join(" ")
    );
    all
}

fn cluster_up() {
    let ok = Command::new("sinfo")
        .arg("--noheader")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "no Slurm cluster answers (sinfo): run these tests through .ci/slurm"
    );
}

/// `configs/smoke.toml` with its output in a fresh folder, jobs sized for a small machine and
/// `edit` applied; the config file and the output folder.
fn smoke(tag: &str, edit: impl Fn(String) -> String) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("rung-slurm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("out");
    let text = std::fs::read_to_string(repo().join("configs/smoke.toml")).unwrap();
    let from = "output_dir = \"runs/experiment/smoke\"";
    assert!(text.contains(from));
    let mut text = text.replace(
        from,
        &format!("output_dir = {:?}", out.display().to_string()),
    );
    text.push_str(
        "\n[executor.slurm]\ndefault = { cpus = 1, mem = \"1G\", time = \"20:00\" }\n\
         train = { cpus = 1, mem = \"2G\", time = \"20:00\" }\n\
         eval = { cpus = 1, mem = \"2G\", time = \"20:00\" }\n",
    );
    let file = dir.join("smoke.toml");
    std::fs::write(&file, edit(text)).unwrap();
    (file, out)
}

/// `rung experiment stages`: each stage's id and its dependencies' ids, in plan order.
fn stages(config: &Path) -> Vec<(String, BTreeSet<String>)> {
    run(
        &["experiment", "stages", "--config", config.to_str().unwrap()],
        true,
    )
    .lines()
    .filter_map(|l| l.split_once(" <- "))
    .map(|(id, deps)| {
        (
            id.to_string(),
            deps.split_whitespace().map(String::from).collect(),
        )
    })
    .collect()
}

/// The job records of an experiment, by stage.
fn records(out: &Path) -> BTreeMap<String, Value> {
    let dir = out.join("slurm/jobs");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| {
                    let v: Value =
                        serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap())
                            .unwrap();
                    (v["stage"].as_str().unwrap().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `rung experiment status` as stage → (state, the rest of the line).
fn status(config: &Path) -> BTreeMap<String, String> {
    run(
        &["experiment", "status", "--config", config.to_str().unwrap()],
        true,
    )
    .lines()
    .skip(1)
    .filter(|l| !l.starts_with("stage `"))
    .filter_map(|l| {
        let (stage, rest) = l.split_once("  ")?;
        Some((stage.trim().to_string(), rest.trim().to_string()))
    })
    .collect()
}

fn live(statuses: &BTreeMap<String, String>) -> usize {
    statuses
        .values()
        .filter(|s| s.starts_with("queued") || s.starts_with("running"))
        .count()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Slurm's own completion records (jobcomp/filetxt): job id → fields.
fn jobcomp() -> BTreeMap<u64, BTreeMap<String, String>> {
    let path = std::env::var("RUNG_SLURM_JOBCOMP")
        .expect("RUNG_SLURM_JOBCOMP names Slurm's job completion log (.ci/slurm sets it)");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let fields: BTreeMap<String, String> = line
                .split_whitespace()
                .filter_map(|f| f.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (fields["JobId"].parse().unwrap(), fields)
        })
        .collect()
}

/// `results.json` without what differs between two runs of the same config: wall times, the
/// output folder (in model paths), the config itself.
fn comparable(out: &Path) -> Value {
    fn clean(value: &mut Value, out: &str) {
        match value {
            Value::Object(map) => {
                map.retain(|k, _| !k.contains("seconds"));
                map.values_mut().for_each(|v| clean(v, out));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| clean(v, out)),
            Value::String(s) => *s = s.replace(out, "<out>"),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(out.join("results.json")).unwrap();
    let mut value: Value = serde_json::from_str(&text).unwrap();
    let object = value.as_object_mut().unwrap();
    object.remove("config");
    let out = std::fs::canonicalize(out).unwrap();
    clean(&mut value, &out.display().to_string());
    value
}

fn checkpoints(stage_dir: &Path) -> usize {
    std::fs::read_dir(stage_dir.join("run/checkpoints"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm"]
fn smoke_through_slurm_equals_the_local_run_and_resumes_a_cancelled_training_job() {
    cluster_up();
    let started = Instant::now();
    let (local, local_out) = smoke("local", |t| t);
    run(&["experiment", "--config", local.to_str().unwrap()], true);
    eprintln!("local run: {:.0} s", started.elapsed().as_secs_f64());

    // Sharded evaluations under Slurm: two shards of each evaluation, then a merge.
    let (config, out) = smoke("cluster", |t| {
        t.replace("tasks_per_split = 6", "tasks_per_split = 6\nshards = 2")
    });
    let cfg = config.to_str().unwrap();
    let plan = stages(&config);
    // 4 data, tokenizer, corpus, the tiny base, 6 training jobs, 4 runs × (2 shards + merge),
    // 2 learning-curve points, report.
    assert_eq!(plan.len(), 4 + 1 + 2 + 6 + 4 * 3 + 2 + 1);
    let submitted = run(
        &["experiment", "--config", cfg, "--executor", "slurm"],
        true,
    );
    assert!(
        submitted.contains(&format!("{} submitted", plan.len())),
        "{submitted}"
    );

    // One job per stage, waiting (afterok) for exactly the jobs of the stages it reads.
    let first = records(&out);
    assert_eq!(first.len(), plan.len());
    let job_of: BTreeMap<String, u64> = first
        .iter()
        .map(|(s, r)| (s.clone(), r["job_id"].as_u64().unwrap()))
        .collect();
    for (id, deps) in &plan {
        let record = &first[id];
        let after: BTreeSet<u64> = record["after"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let expected: BTreeSet<u64> = deps.iter().map(|d| job_of[d]).collect();
        assert_eq!(after, expected, "{id}");
        assert_eq!(
            record["name"].as_str().unwrap(),
            format!("rung.smoke.{}", id.replace('/', ".")),
        );
    }
    // Slurm's view of the report job's dependencies, while it waits for the evaluations.
    let report_job = job_of["report"].to_string();
    let shown = Command::new("scontrol")
        .args(["--oneliner", "show", "job", &report_job])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let dependency = shown
        .split_whitespace()
        .find_map(|f| f.strip_prefix("Dependency="))
        .unwrap_or_default()
        .to_string();
    let waits_for: BTreeSet<u64> = dependency
        .split(',')
        .filter_map(|d| d.strip_prefix("afterok:"))
        .filter_map(|d| d.split(['(', '_']).next()?.parse().ok())
        .collect();
    // The report reads the merged evaluations and the learning curve's points.
    let merges: BTreeSet<u64> = plan
        .iter()
        .filter(|(id, _)| id.starts_with("merge/") || id.starts_with("curve/"))
        .map(|(id, _)| job_of[id])
        .collect();
    assert_eq!(waits_for, merges, "scontrol: {shown}");

    // Cancel a training job once it has saved its first epoch's checkpoint, before it ends.
    let trains: Vec<&String> = first.keys().filter(|s| s.starts_with("train/")).collect();
    let mut killed = None;
    wait_until("a training job mid-run", Duration::from_secs(900), || {
        for stage in &trains {
            let record = &first[*stage];
            let dir = PathBuf::from(record["dir"].as_str().unwrap());
            if !dir.join("done.json").exists() && checkpoints(&dir) > 0 {
                let job = record["job_id"].as_u64().unwrap().to_string();
                let ok = Command::new("scancel").arg(&job).status().unwrap();
                assert!(ok.success());
                std::thread::sleep(Duration::from_secs(1));
                if !dir.join("done.json").exists() {
                    killed = Some(((*stage).clone(), dir));
                    return true;
                }
            }
        }
        false
    });
    let (killed, killed_dir) = killed.unwrap();
    eprintln!("cancelled {killed} mid-run");
    wait_until("the cluster to go quiet", Duration::from_secs(900), || {
        live(&status(&config)) == 0
    });
    let after_cancel = status(&config);
    assert!(
        after_cancel[&killed].starts_with("cancelled (scancel)"),
        "{after_cancel:?}"
    );
    assert!(after_cancel["report"].starts_with("cancelled (a dependency failed)"));
    assert!(!killed_dir.join("done.json").exists());

    // Submitting again resubmits the cancelled job and what waited for it, nothing done.
    let resumed = run(
        &[
            "experiment",
            "--config",
            cfg,
            "--executor",
            "slurm",
            "--wait",
        ],
        true,
    );
    assert!(
        resumed.contains(&format!("{killed}: submitted Slurm job")),
        "{resumed}"
    );
    for (stage, state) in &after_cancel {
        if state.starts_with("done") {
            assert!(
                !resumed.contains(&format!("{stage}: submitted")),
                "{stage} was done"
            );
        }
    }
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let name = killed.trim_start_matches("train/");
    assert!(
        events
            .lines()
            .any(|l| l.contains("\"resume\"") && l.contains(name)),
        "the cancelled training resumed from its checkpoint"
    );
    let done = status(&config);
    assert!(done.values().all(|s| s.starts_with("done")), "{done:?}");

    assert_eq!(
        comparable(&out),
        comparable(&local_out),
        "Slurm's sharded run and the local run give the same results"
    );

    // Slurm's own records: every stage's job completed, each after the jobs it waited for
    // ended; the cancelled stage has a cancelled job and a completed one.
    let last = records(&out);
    let comp = jobcomp();
    let ours: BTreeSet<u64> = first
        .values()
        .chain(last.values())
        .map(|r| r["job_id"].as_u64().unwrap())
        .collect();
    let completed: BTreeMap<String, &BTreeMap<String, String>> = comp
        .iter()
        .filter(|(id, f)| ours.contains(id) && f["JobState"] == "COMPLETED")
        .map(|(_, f)| (f["Name"].clone(), f))
        .collect();
    assert_eq!(completed.len(), plan.len(), "one completed job per stage");
    for (id, _) in &plan {
        let record = &last[id];
        let job = &comp[&record["job_id"].as_u64().unwrap()];
        assert_eq!(job["JobState"], "COMPLETED", "{id}");
        for dep in record["after"].as_array().unwrap() {
            let dep = &comp[&dep.as_u64().unwrap()];
            assert!(
                job["StartTime"] >= dep["EndTime"],
                "{id} started {} before its dependency {} ended {}",
                job["StartTime"],
                dep["Name"],
                dep["EndTime"]
            );
        }
    }
    let killed_job = first[&killed]["job_id"].as_u64().unwrap();
    assert_eq!(comp[&killed_job]["JobState"], "CANCELLED");
    eprintln!("whole test: {:.0} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(local_out.parent().unwrap());
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}

#[test]
#[ignore = "needs a Slurm cluster: run .ci/slurm"]
fn cancel_stops_every_job_and_a_failed_stage_keeps_its_dependents_from_starting() {
    cluster_up();
    let (config, out) = smoke("failure", |t| t);
    let cfg = config.to_str().unwrap();
    let plan = stages(&config);

    // `rung experiment cancel` right after submitting: every job is cancelled.
    run(
        &["experiment", "--config", cfg, "--executor", "slurm"],
        true,
    );
    let cancelled = run(&["experiment", "cancel", "--config", cfg], true);
    assert!(
        cancelled.contains(&format!("{} job(s) cancelled", plan.len())),
        "{cancelled}"
    );
    wait_until("the cancellations", Duration::from_secs(120), || {
        live(&status(&config)) == 0
    });
    assert!(!out.join("report.md").exists());

    // The expert data done here, one `rung experiment stage` at a time; then one training file
    // goes bad, as on a broken shared filesystem.
    for (id, _) in plan.iter().filter(|(id, _)| id.starts_with("data/")) {
        let line = run(&["experiment", "stage", "--config", cfg, id], true);
        assert!(line.contains("episodes"), "{line}");
    }
    let refused = run(&["experiment", "stage", "--config", cfg, "report"], false);
    assert!(refused.contains("is not done"), "{refused}");
    let data = std::fs::read_dir(out.join("stages/data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("1A-train"))
        .unwrap();
    std::fs::write(data.join("trajectories.jsonl"), "not an episode\n").unwrap();

    let failed = run(
        &[
            "experiment",
            "--config",
            cfg,
            "--executor",
            "slurm",
            "--wait",
        ],
        false,
    );
    let tokenizer = &records(&out)["tokenizer"];
    let log = tokenizer["log"].as_str().unwrap();
    assert!(
        failed.contains("stage `tokenizer` failed") && failed.contains(log),
        "the error names the failed job's log: {failed}"
    );
    assert!(
        std::fs::read_to_string(log)
            .unwrap()
            .contains("trajectories.jsonl"),
        "the log says what went wrong"
    );
    wait_until(
        "the dependents' cancellation",
        Duration::from_secs(120),
        || live(&status(&config)) == 0,
    );
    let table = run(&["experiment", "status", "--config", cfg], true);
    assert!(table.contains(log), "{table}");
    let statuses = status(&config);
    assert!(statuses["tokenizer"].starts_with("failed"), "{statuses:?}");
    let comp = jobcomp();
    for (id, _) in &plan {
        let state = &statuses[id];
        // The expert data was done by hand; the pretraining corpus reads nothing, so it runs.
        if id.starts_with("data/") || id == "corpus" {
            assert!(state.starts_with("done"), "{id}: {state}");
            continue;
        }
        if id == "tokenizer" {
            continue;
        }
        // Never started: cancelled by Slurm, no log, no stage directory.
        assert!(
            state.starts_with("cancelled (a dependency failed)"),
            "{id}: {state}"
        );
        let record = &records(&out)[id];
        assert!(
            !Path::new(record["log"].as_str().unwrap()).exists(),
            "{id} wrote a log"
        );
        assert!(
            !Path::new(record["dir"].as_str().unwrap()).exists(),
            "{id} ran"
        );
        let job = &comp[&record["job_id"].as_u64().unwrap()];
        assert_eq!(job["JobState"], "CANCELLED", "{id}");
        assert_eq!(job["NodeCnt"], "0", "{id} never ran on a node");
    }
    let _ = std::fs::remove_dir_all(out.parent().unwrap());
}
