//! The task suite's guarantees, checked on every task of every split: gold plans pass, doing
//! nothing fails, gold plans out of order fail, and the splits have the promised sizes and
//! composition.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use rung_env::{Environment, EpisodeOptions, Split};
use rung_world::env::{expectation, replay};
use rung_world::evaluate::normalise_changes;
use rung_world::sandbox::{FAILED, Limits};
use rung_world::{EmbeddedWorld, Suite, SuiteOptions, Task};

static SUITE: LazyLock<Arc<Suite>> =
    LazyLock::new(|| Arc::new(Suite::generate(SuiteOptions::default())));

fn check_task(suite: &Suite, task: &Task) -> Result<(), String> {
    let cells = task.gold_cells();
    let gold = replay(suite, task, &cells, Limits::default());
    for (cell, output) in cells.iter().zip(&gold.outputs) {
        if output.starts_with(FAILED) {
            return Err(format!("gold cell failed:\n{cell}\n=> {output}"));
        }
    }
    let completion = gold
        .world
        .completion
        .as_ref()
        .ok_or("gold plan did not complete the task")?;
    let expect = expectation(suite, task);
    let got = rung_world::evaluate::normalise_answer(completion.answer.as_ref());
    let want = rung_world::evaluate::normalise_answer(task.answer.as_ref());
    if got != want {
        return Err(format!(
            "gold code answers {got} but the template computed {want}"
        ));
    }
    let verdict = expect.evaluate(
        &gold.world.db.diff(&gold.states[0]),
        completion.answer.as_ref(),
    );
    if !verdict.success {
        return Err(format!(
            "gold replay fails its own tests: {:?}",
            verdict.failures
        ));
    }
    // Sub-task changes partition the total change, so per-sub-task tests are meaningful.
    let mut union: Vec<_> = expect
        .subtasks
        .iter()
        .flat_map(|(_, c)| c.clone())
        .collect();
    let mut total = expect.total.clone();
    union.sort();
    total.sort();
    if union != total {
        return Err("sub-task changes do not add up to the task's changes".into());
    }
    let noop = expect.evaluate(&[], None);
    if noop.success {
        return Err("doing nothing passes".into());
    }
    if task.plan.len() > 1 {
        let mut reversed: Vec<&str> = task.plan.iter().rev().map(|s| s.code.as_str()).collect();
        reversed.push(&task.completion);
        let out_of_order = replay(suite, task, &reversed, Limits::default());
        let answer = out_of_order
            .world
            .completion
            .as_ref()
            .and_then(|c| c.answer.clone());
        let changes = out_of_order.world.db.diff(&out_of_order.states[0]);
        if expect.evaluate(&changes, answer.as_ref()).success {
            return Err("the gold plan passes in reverse order".into());
        }
    }
    let _ = normalise_changes(&[]);
    Ok(())
}

fn check_split(split: Split) {
    let suite = &**SUITE;
    let failures: Vec<String> = suite
        .split(split)
        .filter_map(|task| {
            check_task(suite, task)
                .err()
                .map(|e| format!("{} ({}): {e}", task.task_id, task.template))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} tasks fail:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[test]
fn every_train_task_replays() {
    check_split(Split::Train);
}

#[test]
fn every_dev_task_replays() {
    check_split(Split::Dev);
}

#[test]
fn every_test_normal_task_replays() {
    check_split(Split::TestNormal);
}

#[test]
fn every_test_challenge_task_replays() {
    check_split(Split::TestChallenge);
}

#[test]
fn splits_have_the_promised_sizes_and_shapes() {
    let suite = &**SUITE;
    let count = |split| suite.split(split).count();
    assert!(
        count(Split::Train) >= 600,
        "train has {}",
        count(Split::Train)
    );
    assert!(count(Split::Dev) >= 90);
    assert!(count(Split::TestNormal) >= 150);
    assert!(
        count(Split::TestChallenge) >= 150,
        "test_challenge has {}",
        count(Split::TestChallenge)
    );
    let ids: BTreeSet<_> = suite.tasks.iter().map(|t| &t.task_id).collect();
    assert_eq!(ids.len(), suite.tasks.len(), "task ids are unique");
    let templates: BTreeSet<_> = suite
        .split(Split::Train)
        .map(|t| t.template.as_str())
        .collect();
    assert!(templates.len() >= 40, "{} train templates", templates.len());
    let mut scenarios: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for task in &suite.tasks {
        scenarios
            .entry(task.task_id.scenario_id())
            .or_default()
            .push(task);
    }
    for (scenario, tasks) in &scenarios {
        assert_eq!(tasks.len(), 3, "scenario {scenario} has 3 variants");
        assert!(
            tasks
                .iter()
                .all(|t| t.difficulty == tasks[0].difficulty && t.split == tasks[0].split)
        );
    }
    let lengths: BTreeSet<usize> = suite.tasks.iter().map(|t| t.plan.len()).collect();
    assert_eq!(lengths.first(), Some(&1));
    assert!(lengths.last().is_some_and(|n| *n >= 5), "{lengths:?}");
    let apps: BTreeSet<usize> = suite.tasks.iter().map(|t| t.apps().len()).collect();
    assert_eq!(
        (apps.first(), apps.last()),
        (Some(&1), Some(&4)),
        "tasks span 1-4 apps"
    );
    assert_eq!(lengths.last(), Some(&6), "tasks span 1-6 sub-tasks");
    let difficulties: BTreeSet<u8> = suite.tasks.iter().map(|t| t.difficulty).collect();
    assert_eq!(difficulties, BTreeSet::from([1, 2, 3]));
    // test_normal: templates seen in train; test_challenge: skill pairs train never shows together.
    assert!(
        suite
            .split(Split::TestNormal)
            .all(|t| templates.contains(t.template.as_str()))
    );
    let pairs = |task: &Task| -> BTreeSet<(String, String)> {
        let kinds: BTreeSet<&str> = task.plan.iter().map(|s| s.kind.as_str()).collect();
        kinds
            .iter()
            .flat_map(|a| {
                kinds
                    .iter()
                    .filter(move |b| a < *b)
                    .map(move |b| (a.to_string(), b.to_string()))
            })
            .collect()
    };
    let train_pairs: BTreeSet<_> = suite.split(Split::Train).flat_map(pairs).collect();
    for task in suite.split(Split::TestChallenge) {
        assert!(!templates.contains(task.template.as_str()));
        assert!(
            pairs(task).iter().any(|p| !train_pairs.contains(p)),
            "{} combines no new pair",
            task.template
        );
    }
}

#[test]
fn the_suite_is_deterministic() {
    let again = Suite::generate(SuiteOptions::default());
    assert_eq!(again.tasks, SUITE.tasks);
    let other = Suite::generate(SuiteOptions {
        seed: 1,
        ..SuiteOptions::default()
    });
    assert_ne!(other.tasks[0].task_id, SUITE.tasks[0].task_id);
}

#[test]
fn episodes_through_the_environment_trait() {
    let world = EmbeddedWorld::with_suite(Arc::clone(&SUITE), Limits::default());
    let task = SUITE.split(Split::Dev).find(|t| t.plan.len() >= 2).unwrap();
    let info = world
        .initialize(&task.task_id, &EpisodeOptions::default())
        .unwrap();
    assert_eq!(info.instruction, task.instruction);
    assert_eq!(info.supervisor, task.supervisor);
    assert!(!world.task_completed(&task.task_id).unwrap());
    let evaluation = world.evaluate(&task.task_id).unwrap();
    assert!(!evaluation.success);
    assert_eq!(evaluation.difficulty, task.difficulty);
    for cell in task.gold_cells() {
        let out = world.execute(&task.task_id, cell).unwrap();
        assert!(!out.starts_with(FAILED), "{out}");
    }
    assert!(world.task_completed(&task.task_id).unwrap());
    let evaluation = world.evaluate(&task.task_id).unwrap();
    assert!(evaluation.success, "{evaluation:?}");
    assert_eq!(evaluation.num_tests, evaluation.passes.len());
    // Re-initialising gives a fresh world.
    world
        .initialize(&task.task_id, &EpisodeOptions::default())
        .unwrap();
    assert!(!world.evaluate(&task.task_id).unwrap().success);
    world.close(&task.task_id).unwrap();
    assert!(matches!(
        world.execute(&task.task_id, "1"),
        Err(rung_env::EnvError::NoEpisode(_))
    ));
    let unknown: rung_env::TaskId = "0000000_1".parse().unwrap();
    assert!(matches!(
        world.initialize(&unknown, &EpisodeOptions::default()),
        Err(rung_env::EnvError::UnknownTask { .. })
    ));
}
