//! Budgets, loop detection and garbage outputs end episodes cleanly, as documented, and are
//! recorded in the trajectory.

mod common;

use std::sync::Arc;

use rung_agents::harness::subtasks::analyse;
use rung_agents::prompts;
use rung_agents::{
    AppCatalog, Budgets, EvalOptions, ExpertOptions, Experts, GoldPlan, GoldSource, Policy, System,
    evaluate,
};
use rung_env::{Split, TaskId};
use rung_trajectory::{Action, Budget, ChatRole, Episode, EpisodeEnd, Role, SystemKind};
use rung_world::sandbox::FAILED;

use common::{Broken, Fixture, Scripted};

/// A train task that asks no question and whose gold plan changes the world, so doing nothing
/// fails.
fn task(fixture: &Fixture) -> TaskId {
    fixture
        .gold
        .tasks(Split::Train)
        .into_iter()
        .find(|id| {
            let task = fixture.world.suite().task(id).unwrap();
            task.answer.is_none() && task.plan.len() >= 2
        })
        .unwrap()
}

/// Runs `system` on the test task in a world of its own.
fn run(system: impl FnOnce(&Fixture) -> System) -> Episode {
    let fixture = Fixture::new();
    let episode = system(&fixture)
        .run_episode(fixture.world.as_ref(), &task(&fixture))
        .unwrap();
    assert_eq!(episode.task_id, task(&fixture));
    episode
}

fn apps() -> AppCatalog {
    AppCatalog::embedded()
}

fn expert(fixture: &Fixture, role: Role) -> Arc<dyn Policy> {
    fixture
        .experts(ExpertOptions {
            mistake_rate: 0.0,
            docs_rate: 0.0,
        })
        .for_role(role)
}

fn assert_clean_failure(episode: &Episode, end: EpisodeEnd) {
    assert_eq!(episode.end, end);
    assert!(!episode.evaluation.success, "nothing useful was done");
    assert!(
        episode.evaluation.num_tests > 0,
        "the episode was still evaluated"
    );
    let line = serde_json::to_string(episode).unwrap();
    let back: Episode = serde_json::from_str(&line).unwrap();
    assert_eq!(&back, episode, "the record round-trips");
}

#[test]
fn output_without_code_ends_after_the_format_retries() {
    let agent = Scripted::policy(|_, _| "I think we should look at the contacts first.".into());
    let episode = run(|_| System::single(agent, apps()));
    assert_clean_failure(
        &episode,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::FormatRetries,
        },
    );
    let retries = Budgets::default().max_format_retries as usize;
    assert_eq!(episode.turns.len(), retries + 1);
    for turn in &episode.turns {
        assert_eq!(
            turn.action,
            Action::Malformed {
                reason: "no ```python block".into()
            }
        );
        assert!(!turn.completion().unwrap().train);
        assert_eq!(turn.code, None);
    }
    // The agent was told what was wrong before its last try.
    let last = &episode.turns[retries].messages;
    let reminder = &last[last.len() - 2];
    assert_eq!(reminder.role, ChatRole::User);
    assert_eq!(
        reminder.content,
        "Not understood: no ```python block. Reply with one ```python code block."
    );
    assert_eq!(episode.cost.interactions, 0);
    assert!(episode.cost.prompt_tokens > 0 && episode.cost.generated_tokens > 0);
}

#[test]
fn broken_code_runs_until_the_interaction_budget() {
    let agent = Scripted::policy(|n, _| {
        prompts::code_action(&format!("for x in range({n}):\n    print(x"))
    });
    let budgets = Budgets {
        max_interactions: 5,
        ..Budgets::default()
    };
    let episode = run(|_| System::single(agent, apps()).with_budgets(budgets));
    assert_clean_failure(
        &episode,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::Interactions,
        },
    );
    assert_eq!(episode.cost.interactions, 5);
    assert_eq!(
        episode.turns.len(),
        6,
        "the sixth action is recorded but not run"
    );
    for turn in &episode.turns[..5] {
        assert!(turn.observation.as_deref().unwrap().starts_with(FAILED));
        assert!(
            turn.completion().unwrap().train,
            "well-formed model output keeps its flag"
        );
    }
    assert_eq!(episode.turns[5].code, None);
    assert!(matches!(episode.turns[5].action, Action::Code { .. }));
}

#[test]
fn a_repeated_action_is_stopped_without_running_it() {
    let agent =
        Scripted::policy(|_, _| prompts::code_action("print(apis.supervisor.show_profile())"));
    let episode = run(|_| System::single(agent, apps()));
    assert_clean_failure(&episode, EpisodeEnd::RepeatedAction { role: Role::Single });
    assert_eq!(episode.turns.len(), 2);
    assert_eq!(episode.cost.interactions, 1);
    assert!(episode.turns[0].observation.is_some());
    assert_eq!(episode.turns[1].observation, None);
}

#[test]
fn endless_output_exceeds_the_token_budget() {
    let agent = Scripted::policy(|_, _| "DONE: ".to_owned() + &"and more ".repeat(5000));
    let episode = run(|f| System::two_agent(expert(f, Role::Orchestrator), agent, apps()));
    assert_clean_failure(
        &episode,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::TokensPerTurn,
        },
    );
    let last = episode.turns.last().unwrap();
    assert_eq!(last.role, Role::Executor);
    assert_eq!(last.generated_tokens, 10_002);
    match &last.action {
        Action::Malformed { reason } => {
            assert_eq!(
                reason,
                "10002 tokens generated, over the budget of 1024 per turn"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failing_policy_ends_the_episode_with_its_error() {
    let episode = run(|f| {
        System::three_agent(
            expert(f, Role::Orchestrator),
            expert(f, Role::Executor),
            Arc::new(Broken),
            apps(),
        )
    });
    assert_eq!(
        episode.end,
        EpisodeEnd::PolicyError {
            role: Role::Critic,
            message: "generation failed: CUDA out of memory".into()
        }
    );
    assert_eq!(episode.system.models[&Role::Critic], "broken");
    assert!(
        episode
            .turns
            .iter()
            .any(|t| t.role == Role::Executor && t.code.is_some())
    );
}

#[test]
fn endless_distinct_subtasks_hit_the_subtask_budget() {
    let orchestrator = Scripted::policy(|n, _| format!("SUBTASK notes: Write note number {n}."));
    let executor = Scripted::policy(|_, _| "DONE: nothing to do".into());
    let budgets = Budgets {
        max_subtasks: 3,
        ..Budgets::default()
    };
    let episode = run(|_| System::two_agent(orchestrator, executor, apps()).with_budgets(budgets));
    assert_clean_failure(
        &episode,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::Subtasks,
        },
    );
    let subtasks: Vec<Option<usize>> = episode
        .turns_of(Role::Orchestrator)
        .map(|t| t.subtask)
        .collect();
    assert_eq!(subtasks, [Some(0), Some(1), Some(2), Some(3)]);
    // The orchestrator heard each (useless) result.
    let last = &episode.turns.last().unwrap().messages;
    assert_eq!(
        last[last.len() - 2].content,
        "Result of sub-task 3: nothing to do"
    );
}

#[test]
fn an_executor_that_never_reports_hits_the_step_budget() {
    let executor = Scripted::policy(|n, _| prompts::code_action(&format!("print({n})")));
    let budgets = Budgets {
        max_executor_steps: 4,
        ..Budgets::default()
    };
    let episode = run(|f| {
        System::two_agent(expert(f, Role::Orchestrator), executor, apps()).with_budgets(budgets)
    });
    assert_clean_failure(
        &episode,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::ExecutorSteps,
        },
    );
    assert_eq!(episode.turns_of(Role::Executor).count(), 4);
    assert_eq!(episode.cost.interactions, 4);
}

#[test]
fn a_repeated_subtask_and_garbage_orchestrator_output_are_handled() {
    let orchestrator = Scripted::policy(|n, _| match n {
        0 => "Let me think about this.".into(),
        _ => "SUBTASK phone: Find your son.".into(),
    });
    let executor = Scripted::policy(|_, _| "DONE: son = None".into());
    let episode = run(|_| System::two_agent(orchestrator, executor, apps()));
    assert_clean_failure(
        &episode,
        EpisodeEnd::RepeatedAction {
            role: Role::Orchestrator,
        },
    );
    let actions: Vec<&Action> = episode.turns.iter().map(|t| &t.action).collect();
    assert!(
        matches!(actions[0], Action::Malformed { reason } if reason == "no SUBTASK or COMPLETE: line")
    );
    assert!(matches!(actions[1], Action::Subtask { app, .. } if app == "phone"));
    assert!(matches!(actions[2], Action::Report { .. }));
    assert!(matches!(actions[3], Action::Subtask { .. }));
    assert_eq!(actions.len(), 4, "the repeat is not delegated");
}

#[test]
fn critic_rejections_send_back_once_then_pass_the_result_on() {
    let critic = Scripted::policy(|_, _| "RETRY: are you sure?".into());
    let fixture = Fixture::new();
    let system = System::three_agent(
        expert(&fixture, Role::Orchestrator),
        expert(&fixture, Role::Executor),
        critic,
        apps(),
    );
    let task = task(&fixture);
    let episode = system.run_episode(fixture.world.as_ref(), &task).unwrap();
    assert_eq!(episode.end, EpisodeEnd::Completed);
    assert!(
        episode.evaluation.success,
        "the expert's work stands: {:?}",
        episode.evaluation
    );
    let plan = fixture.gold.plan(&task).unwrap();
    for k in 0..plan.subtasks.len() {
        let verdicts = episode
            .turns_of(Role::Critic)
            .filter(|t| t.subtask == Some(k))
            .count();
        assert_eq!(
            verdicts, 2,
            "sub-task {k}: reviewed, sent back once, reviewed again"
        );
    }
}

#[test]
fn garbage_critic_output_ends_after_the_format_retries() {
    let critic = Scripted::policy(|_, _| "Hmm.".into());
    let episode = run(|f| {
        System::three_agent(
            expert(f, Role::Orchestrator),
            expert(f, Role::Executor),
            critic,
            apps(),
        )
    });
    assert_clean_failure(
        &episode,
        EpisodeEnd::BudgetExceeded {
            budget: Budget::FormatRetries,
        },
    );
    assert_eq!(episode.turns_of(Role::Critic).count(), 3);
}

struct NoGold;

impl GoldSource for NoGold {
    fn tasks(&self, _split: Split) -> Vec<TaskId> {
        Vec::new()
    }
    fn plan(&self, _task_id: &TaskId) -> Option<Arc<GoldPlan>> {
        None
    }
}

#[test]
fn an_expert_without_a_gold_plan_cannot_play() {
    let episode = run(|_| {
        Experts::new(Arc::new(NoGold), ExpertOptions::default()).system(SystemKind::Single, apps())
    });
    match &episode.end {
        EpisodeEnd::PolicyError { role, message } => {
            assert_eq!(*role, Role::Single);
            assert!(message.contains("no plan"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(episode.turns.is_empty());
}

#[test]
fn an_executor_that_reports_without_working_errs_on_every_changing_subtask() {
    let executor = Scripted::policy(|_, _| "DONE: done".into());
    let fixture = Fixture::new();
    let system = System::two_agent(expert(&fixture, Role::Orchestrator), executor, apps());
    let path =
        std::env::temp_dir().join(format!("rung-agents-garbage-{}.jsonl", std::process::id()));
    let options = EvalOptions {
        limit: Some(60),
        trajectories: Some(path.clone()),
        ..fixture.options()
    };
    let report = evaluate(&system, Split::Dev, &options).unwrap();
    let table = report.table();
    assert!(
        table.contains("two_agent (orchestrator=expert, executor=garbage) on dev: 60 episodes"),
        "{table}"
    );
    let back: rung_agents::EvalReport = serde_json::from_str(&report.to_json()).unwrap();
    // (serde_json may parse a float one ulp off, so floats compare approximately.)
    assert!((back.scores.overall.tgc - report.scores.overall.tgc).abs() < 1e-9);
    assert_eq!(
        back.scores.by_difficulty.len(),
        report.scores.by_difficulty.len()
    );
    let counts = |r: &rung_agents::EvalReport| {
        let e = r.subtask_errors.as_ref().unwrap();
        (
            r.episodes,
            r.ends.clone(),
            e.overall.subtasks,
            e.overall.errors,
            e.by_index.len(),
        )
    };
    assert_eq!(counts(&back), counts(&report), "the JSON report reads back");
    let written = rung_trajectory::read_file(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(written.len(), 60, "one trajectory per episode");
    assert!(written.iter().all(|e| e.split == Some(Split::Dev)));
    assert!(
        written
            .iter()
            .flat_map(|e| e.turns_of(Role::Executor))
            .all(|t| t.action
                == Action::Report {
                    result: "done".into()
                })
    );
    // Per-task outcomes and diagnostics add up to the aggregates.
    assert_eq!(report.outcomes.len(), 60);
    let solved = report.outcomes.iter().filter(|o| o.success).count();
    assert!((100.0 * solved as f64 / 60.0 - report.scores.overall.tgc).abs() < 1e-9);
    let e = report.subtask_errors.as_ref().unwrap();
    let failed: usize = report.outcomes.iter().map(|o| o.failed_subtasks).sum();
    let judged: usize = report.outcomes.iter().map(|o| o.subtasks).sum();
    assert_eq!((failed, judged), (e.overall.errors, e.overall.subtasks));
    let d = report.diagnostics;
    assert_eq!(d.episodes, 60);
    assert_eq!(d.malformed_turns, 0, "`DONE: done` is a valid report");
    assert_eq!(
        d.code_cells as u32, report.cost.total.interactions,
        "every cell that ran is an interaction"
    );
    assert!(
        d.turns >= 2 * 60,
        "an orchestrator and an executor turn at least"
    );
    let errors = report.subtask_errors.unwrap();
    assert_eq!(
        errors.by_role[&Role::Orchestrator].errors,
        0,
        "the gold plan is issued"
    );
    assert_eq!(
        errors.by_role[&Role::Executor].errors,
        errors.overall.errors,
        "every error is the executor's"
    );
    // No code ran, so every sub-task is missed (read-only ones print nothing either).
    assert_eq!(errors.by_role[&Role::Executor].percent, 100.0, "{errors:?}");
    assert_eq!(errors.unreached, 0);
    // What succeeds without any code are questions whose answer the expert orchestrator
    // knows from the gold plan and that need no state change.
    assert!(report.scores.overall.tgc < 50.0);
    for episode in written.iter().filter(|e| e.evaluation.success) {
        let task = fixture.world.suite().task(&episode.task_id).unwrap();
        assert!(task.answer.is_some(), "{}", episode.task_id);
        assert_eq!(episode.cost.interactions, 1, "only complete_task ran");
    }
    // The sub-task verdicts agree with a direct analysis.
    let episode = system
        .run_episode(fixture.world.as_ref(), &task(&fixture))
        .unwrap();
    let verdicts = analyse(&episode, fixture.gold.as_ref()).unwrap();
    assert!(verdicts.iter().any(|v| v.erred == [Role::Executor]));
}
