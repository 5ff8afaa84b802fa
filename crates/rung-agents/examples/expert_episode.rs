//! Prints one expert episode of the embedded world as pretty JSON (the README example):
//! `cargo run -p rung-agents --example expert_episode -- [system] [task_id] [mistake_rate]`.
//! Without a task id it picks the first train task with two sub-tasks.

use std::sync::Arc;

use rung_agents::{AppCatalog, ExpertOptions, Experts, GoldSource, WorldGold};
use rung_env::{Split, TaskId};
use rung_trajectory::SystemKind;
use rung_world::EmbeddedWorld;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind: SystemKind = args.first().map_or("two_agent", String::as_str).parse()?;
    let world = Arc::new(EmbeddedWorld::new());
    let gold = Arc::new(WorldGold::new(Arc::clone(&world)));
    let task: TaskId = match args.get(1) {
        Some(id) => id.parse()?,
        None => gold
            .tasks(Split::Train)
            .into_iter()
            .find(|id| gold.plan(id).is_some_and(|p| p.subtasks.len() == 2))
            .ok_or("no train task with two sub-tasks")?,
    };
    let mistake_rate = args.get(2).map_or(Ok(0.0), |r| r.parse())?;
    let options = ExpertOptions {
        mistake_rate,
        docs_rate: 0.0,
    };
    let system = Experts::new(gold, options).system(kind, AppCatalog::embedded());
    let mut episode = system.run_episode(world.as_ref(), &task)?;
    episode.split = Some(Split::Train);
    println!("{}", serde_json::to_string_pretty(&episode)?);
    Ok(())
}
