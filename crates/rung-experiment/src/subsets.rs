//! Which tasks an experiment uses: subsets stratified by template, never a prefix of the split
//! file (which lists tasks template by template, so a prefix covers two or three templates).
//!
//! [`stratified`] shuffles the templates and the tasks within each template with a seeded
//! generator, then takes tasks round-robin across templates: `n ≥ #templates` covers every
//! template, `n = 2·#templates` takes two of each, and per-template counts never differ by more
//! than one. It depends only on the split's tasks, `n` and the seed (the data seed), so the
//! same request always gives the same tasks (a config that evaluates its training split with
//! `tasks_per_split = train_tasks` evaluates exactly the tasks it trained on).
//!
//! Evaluation on the validation split draws from the tasks validation does not use
//! ([`eval_tasks`]): the checkpoint that plays is chosen by validation loss, so evaluating it
//! on validation tasks would score it on the tasks that picked it.

use std::collections::{BTreeMap, BTreeSet};

use rung_env::{Split, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ExperimentError;
use crate::config::{ExperimentConfig, split_name};
use crate::episodes::Episodes;
use crate::rng::{SplitMix, derive};

/// The name of the selection scheme, part of every stage key that depends on it: a change of
/// scheme must not reuse stages of the old one.
pub const SCHEME: &str = "stratified-by-template-v1";

/// `n` of `tasks` (all of them when `n` is `None`, in their own order), stratified by
/// `template`, deterministic in `seed`; `None` when the split has fewer than `n` tasks.
pub fn stratified(
    tasks: &[TaskId],
    template: impl Fn(&TaskId) -> String,
    n: Option<usize>,
    seed: u64,
) -> Option<Vec<TaskId>> {
    let Some(n) = n else {
        return Some(tasks.to_vec());
    };
    if n > tasks.len() {
        return None;
    }
    let mut groups: BTreeMap<String, Vec<TaskId>> = BTreeMap::new();
    for task in tasks {
        groups.entry(template(task)).or_default().push(task.clone());
    }
    let mut rng = SplitMix::new(derive(seed, SCHEME));
    let mut groups: Vec<Vec<TaskId>> = groups
        .into_values()
        .map(|mut g| {
            // Sorted first, so the pick does not depend on the file's order.
            g.sort();
            rng.shuffle(&mut g);
            g
        })
        .collect();
    rng.shuffle(&mut groups);
    let mut out = Vec::with_capacity(n);
    let mut round = 0;
    while out.len() < n {
        for group in &groups {
            if let Some(task) = group.get(round)
                && out.len() < n
            {
                out.push(task.clone());
            }
        }
        round += 1;
    }
    Some(out)
}

/// The tasks of `split` the experiment's environment lists, in their file order (no server
/// starts for this).
pub fn split_tasks(episodes: &Episodes, split: Split) -> Result<Vec<TaskId>, ExperimentError> {
    episodes.task_ids(split)
}

/// `limit` tasks of `split`, stratified with the data seed; `key` names the config key for the
/// error when the split is too small.
pub fn pick(
    config: &ExperimentConfig,
    episodes: &Episodes,
    split: Split,
    limit: Option<usize>,
    key: &str,
) -> Result<Vec<TaskId>, ExperimentError> {
    let tasks = split_tasks(episodes, split)?;
    stratified(&tasks, |t| episodes.template(t), limit, config.data.seed).ok_or_else(|| {
        ExperimentError::Config(format!(
            "`{key}` = {} but {} has only {} tasks",
            limit.unwrap_or_default(),
            split_name(split),
            tasks.len()
        ))
    })
}

/// The training tasks (`data.train_tasks` of the training split; all of it when unset).
pub fn train_tasks(
    config: &ExperimentConfig,
    episodes: &Episodes,
) -> Result<Vec<TaskId>, ExperimentError> {
    if let Some(ids) = recorded_ids(config, true)? {
        return Ok(ids);
    }
    pick(
        config,
        episodes,
        config.data.train_split,
        config.data.train_tasks,
        "data.train_tasks",
    )
}

/// The validation tasks (`data.validation_tasks` of the validation split; all when unset).
pub fn validation_tasks(
    config: &ExperimentConfig,
    episodes: &Episodes,
) -> Result<Vec<TaskId>, ExperimentError> {
    if let Some(ids) = recorded_ids(config, false)? {
        return Ok(ids);
    }
    pick(
        config,
        episodes,
        config.data.validation_split,
        config.data.validation_tasks,
        "data.validation_tasks",
    )
}

/// The task ids of recorded trajectories (every system's file), where the config uses them.
fn recorded_ids(
    config: &ExperimentConfig,
    train: bool,
) -> Result<Option<Vec<TaskId>>, ExperimentError> {
    if config.data.trajectories.is_empty() {
        return Ok(None);
    }
    let mut ids = BTreeSet::new();
    for (system, files) in &config.data.trajectories {
        let (path, which) = if train {
            (&files.train, "train")
        } else {
            (&files.validation, "validation")
        };
        let key = format!("data.trajectories.{}.{which}", system.name());
        let path = crate::config::expand_env(&path.to_string_lossy(), &key)?;
        let episodes = rung_trajectory::read_file(std::path::Path::new(&path))
            .map_err(|e| ExperimentError::Config(format!("`{key}` {path}: {e}")))?;
        ids.extend(episodes.into_iter().map(|e| e.task_id));
    }
    Ok(Some(ids.into_iter().collect()))
}

/// The tasks evaluated on `split`: `evaluation.tasks_per_split` of them, stratified, drawn from
/// the tasks validation does not use when `split` is the validation split. An error (before
/// anything runs) when too few remain.
pub fn eval_tasks(
    config: &ExperimentConfig,
    episodes: &Episodes,
    split: Split,
) -> Result<Vec<TaskId>, ExperimentError> {
    let mut tasks = split_tasks(episodes, split)?;
    let limit = config.evaluation.tasks_for(split);
    if split == config.data.validation_split {
        let held: BTreeSet<TaskId> = validation_tasks(config, episodes)?.into_iter().collect();
        let all = tasks.len();
        tasks.retain(|t| !held.contains(t));
        let left = tasks.len();
        if left == 0 || limit.is_some_and(|n| n > left) {
            return Err(ExperimentError::Config(format!(
                "`evaluation.splits` evaluates {name}, the validation split, but {} of its {all} \
                 tasks are validation tasks (`data.validation_tasks`), which choose the \
                 checkpoint, leaving {left} for evaluation{}; lower `data.validation_tasks` or \
                 `evaluation.tasks_per_split`, or validate on another split",
                all - left,
                limit
                    .map(|n| format!(" where `evaluation.tasks_per_split` asks for {n}"))
                    .unwrap_or_default(),
                name = split_name(split),
            )));
        }
    }
    stratified(&tasks, |t| episodes.template(t), limit, config.data.seed).ok_or_else(|| {
        ExperimentError::Config(format!(
            "`evaluation.tasks_per_split` = {} but {} has only {} tasks",
            limit.unwrap_or_default(),
            split_name(split),
            tasks.len()
        ))
    })
}

/// What the evaluated tasks of `split` depend on, for stage keys (known from the config alone,
/// so stages can be planned before any episode runs).
pub fn eval_key(config: &ExperimentConfig, split: Split) -> Value {
    let validation = (split == config.data.validation_split).then(|| {
        json!({
            "limit": config.data.validation_tasks,
            "recorded": !config.data.trajectories.is_empty(),
        })
    });
    json!({
        "scheme": SCHEME, "seed": config.data.seed,
        "limit": config.evaluation.tasks_for(split), "without_validation": validation,
    })
}

/// How far training's templates cover an evaluation split's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitCoverage {
    /// The split.
    pub split: String,
    /// Tasks evaluated.
    pub tasks: usize,
    /// Distinct templates among them.
    pub templates: usize,
    /// Of those, templates training has tasks of.
    pub seen_in_training: usize,
}

/// Templates of the training tasks and, per evaluated split, how many of its templates
/// training has seen.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Coverage {
    /// Training tasks.
    pub train_tasks: usize,
    /// Distinct templates among them.
    pub train_templates: usize,
    /// Templates of the whole training split.
    pub split_templates: usize,
    /// Per evaluated split.
    pub splits: Vec<SplitCoverage>,
}

impl Coverage {
    /// Measures the coverage of `config`'s task subsets.
    pub fn measure(
        config: &ExperimentConfig,
        episodes: &Episodes,
    ) -> Result<Coverage, ExperimentError> {
        let templates = |tasks: &[TaskId]| -> BTreeSet<String> {
            tasks.iter().map(|t| episodes.template(t)).collect()
        };
        let train = train_tasks(config, episodes)?;
        let seen = templates(&train);
        let split_templates = if config.data.trajectories.is_empty() {
            templates(&split_tasks(episodes, config.data.train_split)?).len()
        } else {
            seen.len()
        };
        let mut splits = Vec::new();
        for &split in &config.evaluation.splits {
            let tasks = eval_tasks(config, episodes, split)?;
            let evaluated = templates(&tasks);
            splits.push(SplitCoverage {
                split: split_name(split),
                tasks: tasks.len(),
                templates: evaluated.len(),
                seen_in_training: evaluated.intersection(&seen).count(),
            });
        }
        Ok(Coverage {
            train_tasks: train.len(),
            train_templates: seen.len(),
            split_templates,
            splits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5 templates of 3 scenarios × 3 variants (9 tasks each), listed template by template as
    /// split files are; the template is the id's first hex digit.
    fn tasks() -> Vec<TaskId> {
        let mut out = Vec::new();
        for template in 0..5u32 {
            for scenario in 0..3u32 {
                for variant in 1..=3 {
                    let id = format!("{template:x}{scenario:06x}");
                    out.push(TaskId::new(&id, variant).unwrap());
                }
            }
        }
        out
    }

    fn template(t: &TaskId) -> String {
        t.as_str()[..1].to_string()
    }

    fn counts(pick: &[TaskId]) -> BTreeMap<String, usize> {
        let mut c = BTreeMap::new();
        for t in pick {
            *c.entry(template(t)).or_insert(0) += 1;
        }
        c
    }

    #[test]
    fn subsets_cover_every_template_evenly() {
        let all = tasks();
        for n in [5, 7, 10, 13, 44, 45] {
            let pick = stratified(&all, template, Some(n), 0).unwrap();
            assert_eq!(pick.len(), n);
            let c = counts(&pick);
            assert_eq!(c.len(), 5, "n = {n} ≥ 5 templates covers them all: {c:?}");
            let (lo, hi) = (c.values().min().unwrap(), c.values().max().unwrap());
            assert!(hi - lo <= 1, "n = {n}: {c:?}");
            let distinct: BTreeSet<&TaskId> = pick.iter().collect();
            assert_eq!(distinct.len(), n, "no task twice");
        }
        // Two per template at n = 2·templates; fewer tasks than templates: one each of n.
        let c = counts(&stratified(&all, template, Some(10), 3).unwrap());
        assert!(c.values().all(|&k| k == 2), "{c:?}");
        let c = counts(&stratified(&all, template, Some(3), 3).unwrap());
        assert_eq!((c.len(), c.values().max()), (3, Some(&1)));
        // A prefix of the file would have taken one template only.
        assert_eq!(counts(&all[..7]).len(), 1);
    }

    #[test]
    fn subsets_are_deterministic_in_the_seed_and_not_in_the_file_order() {
        let all = tasks();
        let a = stratified(&all, template, Some(10), 0).unwrap();
        assert_eq!(a, stratified(&all, template, Some(10), 0).unwrap());
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(a, stratified(&reversed, template, Some(10), 0).unwrap());
        let b = stratified(&all, template, Some(10), 1).unwrap();
        assert_ne!(
            a.iter().collect::<BTreeSet<_>>(),
            b.iter().collect::<BTreeSet<_>>(),
            "another seed picks other tasks"
        );
        // A prefix of a pick is itself stratified (shards and smaller runs stay balanced).
        let c = counts(&a[..5]);
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn no_limit_is_the_whole_split_and_too_many_is_refused() {
        let all = tasks();
        assert_eq!(stratified(&all, template, None, 0).unwrap(), all);
        let every = stratified(&all, template, Some(45), 0).unwrap();
        assert_eq!(
            every.iter().collect::<BTreeSet<_>>(),
            all.iter().collect::<BTreeSet<_>>()
        );
        assert!(stratified(&all, template, Some(46), 0).is_none());
    }
}

#[cfg(test)]
mod world_tests {
    use super::*;

    fn make(data: &str, evaluation: &str) -> ExperimentConfig {
        let text = format!(
            r#"
name = "t"
output_dir = "out"
environment = {{ kind = "embedded" }}
data = {{ {data} }}
models = {{ tiny = {{ preset = "tiny" }} }}
evaluation = {{ {evaluation} }}
[[group]]
systems = ["single"]
sizes = ["tiny"]
schedules = ["prost"]
seeds = [0]
"#
        );
        ExperimentConfig::from_toml(&text).unwrap()
    }

    #[test]
    fn evaluation_on_the_validation_split_never_uses_validation_tasks() {
        let config = make(
            "train_tasks = 100, validation_tasks = 8",
            r#"splits = ["dev", "test_normal"], tasks_per_split = 20"#,
        );
        let episodes = crate::executor::episodes(&config);
        let validation: BTreeSet<TaskId> = validation_tasks(&config, &episodes)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(validation.len(), 8);
        let dev = eval_tasks(&config, &episodes, Split::Dev).unwrap();
        assert_eq!(dev.len(), 20);
        assert!(
            dev.iter().all(|t| !validation.contains(t)),
            "no evaluated dev task is a validation task"
        );
        // Another split is not held out from: its pick is the plain stratified one.
        let test = eval_tasks(&config, &episodes, Split::TestNormal).unwrap();
        let all = split_tasks(&episodes, Split::TestNormal).unwrap();
        let plain = stratified(&all, |t| episodes.template(t), Some(20), config.data.seed).unwrap();
        assert_eq!(test, plain);
        // Stratified by the world's templates: 20 tasks cover min(20, templates) of them.
        let templates: BTreeSet<String> = test.iter().map(|t| episodes.template(t)).collect();
        let split_templates: BTreeSet<String> = all.iter().map(|t| episodes.template(t)).collect();
        assert_eq!(templates.len(), split_templates.len().min(20));
        let coverage = Coverage::measure(&config, &episodes).unwrap();
        assert_eq!(coverage.train_tasks, 100);
        assert_eq!(coverage.splits.len(), 2);
        assert_eq!(coverage.splits[1].templates, templates.len());
        assert_eq!(coverage.train_templates, coverage.split_templates.min(100));
        assert!(coverage.splits[1].seen_in_training <= coverage.splits[1].templates);
    }

    #[test]
    fn too_few_tasks_besides_validation_are_refused_with_the_keys_to_change() {
        let episodes_of = |c: &ExperimentConfig| crate::executor::episodes(c);
        // The whole dev split validates (no `validation_tasks`): nothing is left to evaluate.
        let config = make("", r#"splits = ["dev"], tasks_per_split = 4"#);
        let err = eval_tasks(&config, &episodes_of(&config), Split::Dev)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the validation split"), "{err}");
        assert!(err.contains("data.validation_tasks"), "{err}");
        assert!(err.contains("leaving 0"), "{err}");
        // More evaluated tasks than the split has besides its validation tasks.
        let dev = split_tasks(&episodes_of(&config), Split::Dev)
            .unwrap()
            .len();
        let config = make(
            &format!("validation_tasks = {}", dev - 3),
            r#"splits = ["dev"], tasks_per_split = 4"#,
        );
        let err = eval_tasks(&config, &episodes_of(&config), Split::Dev)
            .unwrap_err()
            .to_string();
        assert!(err.contains("leaving 3"), "{err}");
        assert!(
            err.contains("`evaluation.tasks_per_split` asks for 4"),
            "{err}"
        );
        // And a subset larger than its split.
        let config = make("train_tasks = 100000", r#"splits = ["test_normal"]"#);
        let err = train_tasks(&config, &episodes_of(&config))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`data.train_tasks` = 100000 but train has only"),
            "{err}"
        );
    }
}
