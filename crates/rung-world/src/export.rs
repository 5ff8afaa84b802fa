//! Exports the task suite as JSONL, one file per split, so that other tools (and other crates of
//! rung) read tasks without generating worlds.

use std::io::Write;
use std::path::Path;

use rung_env::Split;
use serde::Serialize;

use crate::tasks::{SubTask, Suite, Task};

/// One exported line. Field order is the schema documented in `datasets/world/README.md`.
#[derive(Debug, Serialize)]
struct TaskRecord<'a> {
    task_id: &'a str,
    split: Split,
    scenario_id: &'a str,
    template: &'a str,
    difficulty: u8,
    instruction: &'a str,
    supervisor: &'a rung_env::Supervisor,
    datetime: &'a str,
    world_seed: u64,
    apps: Vec<&'a str>,
    plan: &'a [SubTask],
    completion: &'a str,
    answer: &'a Option<serde_json::Value>,
}

fn record(task: &Task) -> TaskRecord<'_> {
    TaskRecord {
        task_id: task.task_id.as_str(),
        split: task.split,
        scenario_id: task.task_id.scenario_id(),
        template: &task.template,
        difficulty: task.difficulty,
        instruction: &task.instruction,
        supervisor: &task.supervisor,
        datetime: &task.datetime,
        world_seed: task.world_seed,
        apps: task.apps(),
        plan: &task.plan,
        completion: &task.completion,
        answer: &task.answer,
    }
}

/// The JSONL text of one split.
pub fn split_jsonl(suite: &Suite, split: Split) -> String {
    let mut out = String::new();
    for task in suite.split(split) {
        out.push_str(&serde_json::to_string(&record(task)).expect("tasks serialize"));
        out.push('\n');
    }
    out
}

/// Writes `<dir>/<split>.jsonl` for every split, each atomically (temporary file, then rename).
pub fn write_splits(suite: &Suite, dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for split in Split::ALL {
        let path = dir.join(format!("{split}.jsonl"));
        let tmp = dir.join(format!(".{split}.jsonl.tmp"));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(split_jsonl(suite, split).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        written.push(path);
    }
    Ok(written)
}
