//! Evaluation shards: one evaluation's tasks split into contiguous slices, each evaluated by a
//! stage of its own (on a cluster, a job of its own), and merged back into exactly the result
//! of the unsharded evaluation.
//!
//! Exactness holds because an episode depends only on its task (the system's seed derives a
//! per-task seed, decoding is greedy), the shards' episodes concatenate in task order, and the
//! merge aggregates them with the same [`EvalReport::new`] the unsharded run uses. Only wall
//! times differ.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use rung_agents::{EvalReport, JudgedEpisode, evaluate_episodes, task_list};
use rung_env::{Split, TaskId};
use rung_trajectory::{Role, SystemConfig};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ExperimentError;
use crate::config::ExperimentConfig;
use crate::episodes::Episodes;
use crate::plan::Run;
use crate::stages::{
    EvalOutput, TrainOutput, eval_name, eval_options, eval_stage, eval_system, finish, parse_done,
};
use crate::store::{Stage, StageKind, Store, io, write_atomic};

/// Splits `tasks` into `shards` contiguous slices whose sizes differ by at most one (the
/// first ones are the larger); with more shards than tasks the last slices are empty.
pub fn split_tasks(tasks: &[TaskId], shards: usize) -> Vec<Vec<TaskId>> {
    let shards = shards.max(1);
    let base = tasks.len() / shards;
    let extra = tasks.len() % shards;
    let mut out = Vec::with_capacity(shards);
    let mut start = 0;
    for i in 0..shards {
        let len = base + usize::from(i < extra);
        out.push(tasks[start..start + len].to_vec());
        start += len;
    }
    out
}

/// The report of an evaluation from its shards' episodes, in shard order: the same report the
/// unsharded evaluation gives (its wall time is the longest shard's, as shards run side by
/// side).
pub fn merge_reports(
    system: SystemConfig,
    split: Split,
    shards: &[Vec<JudgedEpisode>],
    judged: bool,
    wall_seconds: f64,
) -> EvalReport {
    let all: Vec<JudgedEpisode> = shards.iter().flatten().cloned().collect();
    EvalReport::new(system, split, &all, judged, wall_seconds)
}

/// A finished evaluation shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardOutput {
    /// Content key.
    pub key: String,
    /// Shard (0-based) of `of`.
    pub index: usize,
    /// Shards of the evaluation.
    pub of: usize,
    /// The system evaluated (as its report names it).
    pub system: SystemConfig,
    /// Whether sub-tasks were judged against gold plans.
    pub judged: bool,
    /// The shard's episodes with their verdicts (JSONL of `{"episode", "verdicts"}`).
    pub episodes: PathBuf,
    /// Episodes in the file.
    pub count: usize,
    /// Seconds the shard took.
    pub wall_seconds: f64,
}

/// One line of a shard's episode file.
#[derive(Serialize, Deserialize)]
struct Line {
    episode: rung_trajectory::Episode,
    verdicts: Option<Vec<rung_agents::harness::subtasks::SubtaskVerdict>>,
}

/// Where shard `index` of `of` of an evaluation lives: under the evaluation's key, so a
/// changed evaluation input moves its shards too.
pub fn shard_stage(store: &Store, eval: &Stage, name: &str, index: usize, of: usize) -> Stage {
    let inputs = json!({"eval": eval.key, "index": index, "of": of});
    store.stage(
        StageKind::Eval,
        &format!("{name}-shard-{}-of-{of}", index + 1),
        &inputs,
    )
}

/// Evaluates shard `index` of `of` of one run on one split (or finds it done).
#[allow(clippy::too_many_arguments)]
pub fn shard(
    config: &ExperimentConfig,
    store: &Store,
    episodes: &Episodes,
    run: &Run,
    trained: &BTreeMap<Role, TrainOutput>,
    split: Split,
    index: usize,
    of: usize,
) -> Result<ShardOutput, ExperimentError> {
    let keys: BTreeMap<Role, &str> = trained.iter().map(|(r, t)| (*r, t.key.as_str())).collect();
    let eval = eval_stage(config, store, run, &keys, split);
    let name = eval_name(run, split);
    let stage = shard_stage(store, &eval, &name, index, of);
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    let label = format!("{name} shard {}/{of}", index + 1);
    store.log(json!({"event": "start", "stage": "eval", "name": label, "key": stage.key}));
    let started = Instant::now();
    let system = eval_system(config, episodes, run, trained, &label)?;
    let mut options = eval_options(config, episodes, split, &label)?;
    let tasks = task_list(split, &options)
        .map_err(|e| ExperimentError::Stage(format!("the tasks of {name}: {e}")))?;
    let slice = split_tasks(&tasks, of).swap_remove(index);
    let judged = options.gold.is_some();
    let runs = if slice.is_empty() {
        Vec::new()
    } else {
        options.tasks = Some(slice);
        options.limit = None;
        evaluate_episodes(&system, split, &options)
            .map_err(|e| ExperimentError::Stage(format!("evaluating {label}: {e}")))?
    };
    let file = stage.dir.join("episodes.jsonl");
    let mut text = String::new();
    for (episode, verdicts) in &runs {
        let line = serde_json::to_string(&json!({"episode": episode, "verdicts": verdicts}))
            .expect("episodes serialise");
        text.push_str(&line);
        text.push('\n');
    }
    write_atomic(&file, &text)?;
    let output = ShardOutput {
        key: stage.key.clone(),
        index,
        of,
        system: system.config(),
        judged,
        episodes: file,
        count: runs.len(),
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}

/// Reads a shard's episodes back.
pub fn read_shard(shard: &ShardOutput) -> Result<Vec<JudgedEpisode>, ExperimentError> {
    let text = std::fs::read_to_string(&shard.episodes).map_err(|e| io(&shard.episodes, e))?;
    let runs = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Line>(l).map(|l| (l.episode, l.verdicts)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ExperimentError::Corrupt(format!(
                "{}: {e}; delete its stage directory to redo the shard",
                shard.episodes.display()
            ))
        })?;
    if runs.len() != shard.count {
        return Err(ExperimentError::Corrupt(format!(
            "{} holds {} episodes, its done.json says {}",
            shard.episodes.display(),
            runs.len(),
            shard.count
        )));
    }
    Ok(runs)
}

/// Merges an evaluation's finished shards into its evaluation stage (or finds it done): the
/// same `done.json`, `results.txt` and `trajectories.jsonl` as the unsharded evaluation.
pub fn merge(
    config: &ExperimentConfig,
    store: &Store,
    run: &Run,
    trained: &BTreeMap<Role, TrainOutput>,
    split: Split,
    shards: &[ShardOutput],
) -> Result<EvalOutput, ExperimentError> {
    let keys: BTreeMap<Role, &str> = trained.iter().map(|(r, t)| (*r, t.key.as_str())).collect();
    let stage = eval_stage(config, store, run, &keys, split);
    if let Some(done) = store.done(&stage)? {
        return parse_done(&stage, done);
    }
    let name = eval_name(run, split);
    store.log(json!({"event": "start", "stage": "merge", "name": name, "key": stage.key}));
    let started = Instant::now();
    let first = shards
        .first()
        .ok_or_else(|| ExperimentError::Stage(format!("merging {name}: no shards")))?;
    let runs = shards
        .iter()
        .map(read_shard)
        .collect::<Result<Vec<_>, _>>()?;
    let wall = shards.iter().map(|s| s.wall_seconds).fold(0.0, f64::max);
    let report = merge_reports(first.system.clone(), split, &runs, first.judged, wall);
    let trajectories = stage.dir.join("trajectories.jsonl");
    rung_trajectory::write_file(&trajectories, runs.iter().flatten().map(|(e, _)| e))
        .map_err(|e| ExperimentError::Stage(format!("merging {name}: {e}")))?;
    write_atomic(&stage.dir.join("results.txt"), &report.table())?;
    let output = EvalOutput {
        key: stage.key.clone(),
        split,
        report,
        trajectories,
    };
    finish(store, &stage, &output, started)?;
    Ok(output)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rung_agents::{AppCatalog, EvalOptions, Experts, evaluate};
    use rung_trajectory::SystemKind;
    use rung_world::sandbox::Limits;
    use rung_world::{EmbeddedWorld, Suite, SuiteOptions};

    use super::*;

    fn ids(n: usize) -> Vec<TaskId> {
        (0..n)
            .map(|i| TaskId::new("abcdef0", i as u32 + 1).unwrap())
            .collect()
    }

    #[test]
    fn tasks_split_into_contiguous_near_equal_slices() {
        let tasks = ids(7);
        let shards = split_tasks(&tasks, 3);
        let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 2, 2]);
        assert_eq!(shards.concat(), tasks, "in order, nothing lost or repeated");
        assert_eq!(split_tasks(&tasks, 1), std::slice::from_ref(&tasks));
        let many = split_tasks(&ids(2), 4);
        assert_eq!(many.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1, 0, 0]);
    }

    /// Zeroes what a re-run cannot reproduce: wall times.
    fn without_wall_times(mut report: EvalReport) -> EvalReport {
        report.wall_seconds = 0.0;
        report.cost.total.wall_seconds = 0.0;
        report.cost.per_task.wall_seconds = 0.0;
        report
    }

    #[test]
    fn merged_shards_equal_the_unsharded_evaluation() {
        let suite = Suite::generate(SuiteOptions::default());
        let world = Arc::new(EmbeddedWorld::with_suite(
            Arc::new(suite),
            Limits::default(),
        ));
        let mut options = EvalOptions::embedded(Arc::clone(&world));
        options.limit = Some(5);
        let gold = options
            .gold
            .clone()
            .expect("the embedded world has gold plans");
        // Experts with mistakes: episodes differ from task to task (and some sub-tasks err), so
        // a shard that ran the wrong tasks or lost one would show.
        let expert = rung_agents::ExpertOptions {
            mistake_rate: 0.5,
            docs_rate: 0.5,
        };
        let system = Experts::new(gold, expert)
            .system(SystemKind::TwoAgent, AppCatalog::embedded())
            .with_seed(3);
        let whole = evaluate(&system, Split::Dev, &options).unwrap();
        assert_eq!(whole.episodes, 5);

        let tasks = task_list(Split::Dev, &options).unwrap();
        let shards: Vec<Vec<JudgedEpisode>> = split_tasks(&tasks, 2)
            .into_iter()
            .map(|slice| {
                let mut o = options.clone();
                o.tasks = Some(slice);
                o.limit = None;
                evaluate_episodes(&system, Split::Dev, &o).unwrap()
            })
            .collect();
        assert_eq!(shards[0].len(), 3);
        let merged = merge_reports(system.config(), Split::Dev, &shards, true, 1.0);
        assert_eq!(without_wall_times(merged), without_wall_times(whole));
    }
}
