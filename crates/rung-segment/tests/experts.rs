//! Segmentation of real expert episodes of the embedded world.
//!
//! Without mistakes or documentation look-ups, a single-agent expert writes exactly the cells
//! its two-agent executor writes, sub-task by sub-task; so the executor's sub-tasks are the
//! ground truth for aligning the single agent's cells to the gold plan.

use std::sync::Arc;

use rung_agents::{AppCatalog, ExpertOptions, Experts, GoldSource, WorldGold};
use rung_env::Split;
use rung_segment::code::lines_within;
use rung_segment::{GoldPlans, Method, NoPlans, segment};
use rung_trajectory::{Action, Role, SystemKind};
use rung_world::EmbeddedWorld;

const TASKS: usize = 40;

#[test]
fn single_agent_alignment_matches_the_executor_sub_tasks() {
    let world = Arc::new(EmbeddedWorld::new());
    let gold = Arc::new(WorldGold::new(Arc::clone(&world)));
    let plans = GoldPlans::from_suite(world.suite());
    let clean = ExpertOptions {
        mistake_rate: 0.0,
        docs_rate: 0.0,
    };
    let experts = Experts::new(Arc::clone(&gold) as Arc<dyn GoldSource>, clean);
    let single = experts.system(SystemKind::Single, AppCatalog::embedded());
    let team = experts.system(SystemKind::TwoAgent, AppCatalog::embedded());
    // Every `TASKS / 3`-th task, so all templates of the train split are visited.
    let tasks = gold.tasks(Split::Train);
    let step = (tasks.len() / TASKS).max(1);
    let mut checked = 0;
    for task in tasks.iter().step_by(step).take(TASKS) {
        let solo = single.run_episode(world.as_ref(), task).unwrap();
        let pair = team.run_episode(world.as_ref(), task).unwrap();
        let expected: Vec<usize> = pair
            .turns
            .iter()
            .filter(|t| t.role == Role::Executor && matches!(t.action, Action::Code { .. }))
            .map(|t| t.subtask.unwrap())
            .collect();
        let seg = segment(&solo, &plans);
        assert_eq!(seg.method, Method::GoldPlan);
        let n_steps = plans_len(&plans, task);
        assert_eq!(seg.len(), n_steps);
        // The single agent's last cell is the completion, which joins the last sub-task.
        let mut want = expected.clone();
        want.push(n_steps - 1);
        assert_eq!(seg.turn_subtask, want, "task {task}");

        // The heuristic finds the same boundaries where consecutive sub-tasks change app.
        let apps: Vec<String> = (0..n_steps)
            .map(|k| seg.subtasks[k].app.clone().unwrap())
            .collect();
        if apps.windows(2).all(|w| w[0] != w[1]) {
            let heuristic = segment(&solo, &NoPlans);
            assert_eq!(heuristic.turn_subtask, want, "heuristic, task {task}");
        }
        checked += 1;
    }
    assert_eq!(checked, TASKS);
}

#[test]
fn cells_copied_from_one_gold_step_are_assigned_to_it_despite_mistakes() {
    let world = Arc::new(EmbeddedWorld::new());
    let gold = Arc::new(WorldGold::new(Arc::clone(&world)));
    let plans = GoldPlans::from_suite(world.suite());
    let noisy = ExpertOptions {
        mistake_rate: 1.0,
        docs_rate: 0.5,
    };
    let single = Experts::new(Arc::clone(&gold) as Arc<dyn GoldSource>, noisy)
        .system(SystemKind::Single, AppCatalog::embedded());
    let tasks = gold.tasks(Split::Train);
    let step = (tasks.len() / TASKS).max(1);
    for task in tasks.iter().step_by(step).take(TASKS) {
        let episode = single.run_episode(world.as_ref(), task).unwrap();
        let seg = segment(&episode, &plans);
        let plan = rung_segment::PlanSource::plan(&plans, task).unwrap();
        assert!(seg.turn_subtask.windows(2).all(|w| w[0] <= w[1]));
        for (i, turn) in episode.turns.iter().enumerate() {
            let Action::Code { code } = &turn.action else {
                continue;
            };
            let owners: Vec<usize> = (0..plan.steps.len())
                .filter(|&k| lines_within(code, &plan.steps[k].code))
                .collect();
            if let [k] = owners[..] {
                assert_eq!(seg.turn_subtask[i], k, "task {task}, turn {i}: {code}");
            }
        }
    }
}

fn plans_len(plans: &GoldPlans, task: &rung_env::TaskId) -> usize {
    rung_segment::PlanSource::plan(plans, task)
        .unwrap()
        .steps
        .len()
}
