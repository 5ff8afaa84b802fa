//! Prints every train task's gold transcript (instruction, cells, outputs) as JSONL, to measure
//! trajectory lengths in tokens: `cargo run -p rung-world --example transcripts > t.jsonl`.

use rung_env::Split;
use rung_world::env::replay;
use rung_world::sandbox::Limits;
use rung_world::{Suite, SuiteOptions};

fn main() {
    let suite = Suite::generate(SuiteOptions::default());
    for task in suite.split(Split::Train) {
        let cells = task.gold_cells();
        let gold = replay(&suite, task, &cells, Limits::default().in_thread());
        let steps: Vec<_> = cells
            .iter()
            .zip(&gold.outputs)
            .map(|(c, o)| serde_json::json!({"code": c, "output": o}))
            .collect();
        let line = serde_json::json!({"task_id": task.task_id, "subtasks": task.plan.len(), "instruction": task.instruction, "steps": steps});
        println!("{line}");
    }
}
