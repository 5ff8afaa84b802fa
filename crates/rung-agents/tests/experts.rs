//! The scripted experts solve every task of the embedded world in every system, their
//! trajectories replay, and their deliberate mistakes are recovered from.

mod common;

use std::time::Instant;

use rung_agents::harness::has_mistake;
use rung_agents::{
    AppCatalog, Budgets, DataGenOptions, EvalOptions, ExpertHabits, ExpertOptions, Experts,
    MistakeMix, evaluate, generate_expert_data, prompts, replay_episode, run_split,
};
use rung_env::Split;
use rung_trajectory::{
    Action, ChatRole, Episode, EpisodeEnd, Role, SystemKind, TrajectoryReader, Turn,
};
use rung_world::sandbox::FAILED;

#[test]
fn experts_reach_full_tgc_and_sgc_on_every_split_in_every_system() {
    let fixture = common::Fixture::new();
    let options = fixture.options();
    for kind in SystemKind::ALL {
        let system = fixture.expert_system(kind, ExpertOptions::default());
        for split in Split::ALL {
            let started = Instant::now();
            let report = evaluate(&system, split, &options).unwrap();
            eprintln!(
                "{:.1} s\n{}",
                started.elapsed().as_secs_f64(),
                report.table()
            );
            let expected = fixture.gold.tasks(split).len();
            assert!(expected > 0);
            assert_eq!(report.episodes, expected, "{kind} {split}");
            assert_eq!(report.scores.overall.tgc, 100.0, "{kind} {split}");
            assert_eq!(report.scores.overall.sgc, 100.0, "{kind} {split}");
            assert!(
                report
                    .scores
                    .by_difficulty
                    .values()
                    .all(|c| c.tgc == 100.0 && c.sgc == 100.0)
            );
            assert_eq!(
                report.ends.get("completed"),
                Some(&expected),
                "{kind} {split}"
            );
            let errors = report.subtask_errors.as_ref().unwrap();
            assert!(errors.overall.subtasks >= expected, "{kind} {split}");
            assert_eq!(errors.overall.errors, 0, "{kind} {split}: {errors:?}");
            assert_eq!(errors.unjudged_episodes, 0);
            let roles: Vec<Role> = errors.by_role.keys().copied().collect();
            assert_eq!(roles, kind.roles(), "every role is judged");
            assert!(report.cost.per_task.interactions > 2.0);
            assert!(report.cost.per_task.prompt_tokens > 100.0);
            assert_eq!(
                report.cost.total.flops, 0.0,
                "scripted policies run no model"
            );
        }
    }
}

#[test]
fn every_written_expert_episode_replays_to_success() {
    let dir = std::env::temp_dir().join(format!("rung-agents-data-{}", std::process::id()));
    let fixture = common::Fixture::new();
    let world = fixture.world.clone();
    let train = fixture.gold.tasks(Split::Train);
    for kind in SystemKind::ALL {
        let path = dir.join(format!("{kind}.jsonl"));
        let options = DataGenOptions {
            run: fixture.options(),
            ..DataGenOptions::embedded(world.clone())
        };
        let report = generate_expert_data(Split::Train, kind, &options, &path).unwrap();
        assert_eq!(report.written, train.len(), "{kind}");
        assert!(report.failed.is_empty(), "{kind}: {:?}", report.failed);
        // About a fifth of the episodes carry a deliberate mistake (mistake_rate 0.2); three-agent
        // ones also wrong reports for the critic.
        let share = report.with_mistake as f64 / report.written as f64;
        let expected = if kind == SystemKind::ThreeAgent {
            0.3..1.0
        } else {
            0.1..0.3
        };
        assert!(expected.contains(&share), "{kind}: {share}");
        let episodes: Vec<_> = TrajectoryReader::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let ids: Vec<_> = episodes.iter().map(|e| e.task_id.clone()).collect();
        assert_eq!(ids, train, "{kind}: one episode per task, in task order");
        for episode in &episodes {
            assert_eq!(episode.split, Some(Split::Train));
            assert_eq!(episode.system.kind, kind);
            assert!(episode.evaluation.success);
            let replayed = replay_episode(world.as_ref(), episode).unwrap();
            assert!(
                replayed.success,
                "{kind} {}: {:?}",
                episode.task_id, replayed.failures
            );
            assert_eq!(replayed, episode.evaluation);
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Experts at mistake rate 1 with only `kind` in the mix (weights of the others 0).
fn only(kind: &str) -> ExpertHabits {
    let zero = MistakeMix {
        wrong_parameter: 0.0,
        premature_report: 0.0,
        wrong_username: 0.0,
        wrong_id: 0.0,
        empty_search: 0.0,
    };
    let mix = match kind {
        "wrong_parameter" => MistakeMix {
            wrong_parameter: 1.0,
            ..zero
        },
        "premature_report" => MistakeMix {
            premature_report: 1.0,
            ..zero
        },
        "wrong_username" => MistakeMix {
            wrong_username: 1.0,
            ..zero
        },
        "wrong_id" => MistakeMix {
            wrong_id: 1.0,
            ..zero
        },
        "empty_search" => MistakeMix {
            empty_search: 1.0,
            ..zero
        },
        other => panic!("no mistake kind {other}"),
    };
    ExpertHabits {
        mix,
        ..ExpertHabits::none()
    }
}

const ALWAYS: ExpertOptions = ExpertOptions {
    mistake_rate: 1.0,
    docs_rate: 0.0,
};

/// The first deliberately wrong code turn of an episode (a well-formed cell not to train on).
fn wrong_cell(episode: &Episode) -> Option<usize> {
    episode
        .turns
        .iter()
        .position(|t| matches!(t.action, Action::Code { .. }) && !t.completion().unwrap().train)
}

/// The next turn of the same role in the same conversation as turn `at` (the orchestrator has
/// one conversation; its sub-task lines are recorded with the sub-task they open).
fn next_in_conversation(episode: &Episode, at: usize) -> Option<&Turn> {
    let turn = &episode.turns[at];
    episode.turns[at + 1..].iter().find(|t| {
        t.role == turn.role && (t.role == Role::Orchestrator || t.subtask == turn.subtask)
    })
}

/// Checks a data mistake: its cell is not trained on, its real output is the next message of
/// the conversation, and a later trained cell of the same role succeeds. Returns the output.
fn check_recovery(kind: SystemKind, episode: &Episode, at: usize) -> String {
    let turn = &episode.turns[at];
    let observation = turn.observation.clone().expect("the wrong cell ran");
    let next = next_in_conversation(episode, at).expect("the conversation goes on");
    let reply = &next.messages[turn.messages.len()];
    assert_eq!(reply.role, ChatRole::User);
    assert_eq!(
        reply.content,
        prompts::observation(&observation).content,
        "{kind} {}: the real output is the next message",
        episode.task_id
    );
    assert!(
        episode.turns[at + 1..].iter().any(|t| t.role == turn.role
            && t.completion().unwrap().train
            && t.observation
                .as_deref()
                .is_some_and(|o| !o.starts_with(FAILED))),
        "{kind} {}: a trained cell recovers",
        episode.task_id
    );
    observation
}

#[test]
fn each_data_mistake_is_made_at_rate_one_and_recovered_from() {
    let fixture = common::Fixture::new();
    let options = fixture.options();
    for kind in SystemKind::ALL {
        for mistake in [
            "wrong_username",
            "wrong_id",
            "empty_search",
            "wrong_parameter",
        ] {
            let system = fixture
                .experts(ALWAYS)
                .with_habits(only(mistake))
                .unwrap()
                .system(kind, AppCatalog::embedded());
            // Every split for the single agent (the cheapest), dev for the teams.
            let splits: &[Split] = if kind == SystemKind::Single {
                &Split::ALL
            } else {
                &[Split::Dev]
            };
            let mut episodes = Vec::new();
            for &split in splits {
                episodes.extend(run_split(&system, split, &options).unwrap());
            }
            let (mut made, mut not_found) = (0, 0);
            for episode in &episodes {
                assert!(
                    episode.evaluation.success,
                    "{kind} {mistake} {}",
                    episode.task_id
                );
                assert_eq!(episode.end, EpisodeEnd::Completed);
                let Some(at) = wrong_cell(episode) else {
                    continue;
                };
                made += 1;
                let output = check_recovery(kind, episode, at);
                let cell = episode.turns[at].code.as_deref().unwrap();
                let later: Vec<&str> = episode.turns[at + 1..]
                    .iter()
                    .filter(|t| t.completion().unwrap().train)
                    .filter_map(|t| t.code.as_deref())
                    .collect();
                match mistake {
                    "wrong_username" => {
                        assert!(
                            output.starts_with(FAILED) && output.contains("401"),
                            "{output}"
                        );
                        assert!(output.contains("Invalid credentials"), "{output}");
                        assert!(cell.contains(".login(username=\""), "{cell}");
                        assert!(!cell.contains("profile = "), "{cell}");
                        assert_eq!(
                            later.first().copied(),
                            Some("profile = apis.supervisor.show_profile()\nprint(profile)"),
                            "{kind} {}: the profile is read first",
                            episode.task_id
                        );
                        assert!(
                            later[1].contains(".login(username=profile["),
                            "{}",
                            later[1]
                        );
                    }
                    "wrong_id" => {
                        assert!(output.starts_with(FAILED), "{output}");
                        assert!(output.contains("404") || output.contains("401"), "{output}");
                        not_found += usize::from(output.contains("status code is 404"));
                    }
                    "empty_search" => {
                        assert_eq!(output.trim(), "[]", "{cell}");
                        assert!(cell.starts_with("print(apis."), "{cell}");
                    }
                    _ => {
                        assert!(output.contains("422") && output.contains("unexpected argument"));
                    }
                }
            }
            eprintln!(
                "{kind} {mistake}: {made} of {} episodes ({not_found} answered 404)",
                episodes.len()
            );
            assert!(
                made * 5 >= episodes.len(),
                "{kind} {mistake}: made in only {made}"
            );
        }
    }
}

#[test]
fn premature_and_wrong_reports_are_rejected_then_made_right() {
    let fixture = common::Fixture::new();
    let options = fixture.options();
    let habits = ExpertHabits {
        critic_negative_rate: 0.5,
        ..only("premature_report")
    };
    let system = fixture
        .experts(ALWAYS)
        .with_habits(habits)
        .unwrap()
        .system(SystemKind::ThreeAgent, AppCatalog::embedded());
    let episodes = run_split(&system, Split::Dev, &options).unwrap();
    let feedback = "The critic sent the sub-task back: ";
    let (mut rejected, mut mismatched) = (0, 0);
    for episode in &episodes {
        assert!(episode.evaluation.success, "{}", episode.task_id);
        for (i, turn) in episode.turns.iter().enumerate() {
            if !matches!(turn.action, Action::Report { .. }) || turn.completion().unwrap().train {
                continue;
            }
            rejected += 1;
            let critic = &episode.turns[i + 1];
            assert_eq!(critic.role, Role::Critic);
            let Action::Retry { feedback: why } = &critic.action else {
                panic!("{}: {:?}", episode.task_id, critic.action)
            };
            assert!(
                critic.completion().unwrap().train,
                "critics learn to reject"
            );
            if why.starts_with("the report does not match") {
                mismatched += 1;
            }
            let resumed = next_in_conversation(episode, i).unwrap();
            let heard = &resumed.messages[resumed.messages.len() - 2];
            assert!(heard.content.starts_with(feedback), "{}", heard.content);
            // The sub-task's accepted report comes later and is trained on.
            assert!(episode.turns[i + 1..].iter().any(|t| t.role == Role::Critic
                && t.subtask == turn.subtask
                && t.action == Action::Accept));
        }
    }
    eprintln!("{rejected} rejected reports, {mismatched} misstating a finished sub-task");
    assert!(
        rejected >= episodes.len(),
        "a premature report in every episode and more"
    );
    assert!(mismatched > 0);
}

#[test]
fn format_slips_get_the_real_reminder_and_the_episode_goes_on() {
    let fixture = common::Fixture::new();
    let options = EvalOptions {
        limit: Some(20),
        ..fixture.options()
    };
    // Evaluation-like budgets: one reminder per streak.
    let budgets = Budgets {
        max_format_retries: 1,
        ..Budgets::default()
    };
    let habits = ExpertHabits {
        format_slip_rate: 0.3,
        ..ExpertHabits::none()
    };
    let clean = ExpertOptions {
        mistake_rate: 0.0,
        docs_rate: 0.3,
    };
    let mut slipped: std::collections::BTreeSet<Role> = Default::default();
    for kind in SystemKind::ALL {
        let system = fixture
            .experts(clean)
            .with_habits(habits)
            .unwrap()
            .system(kind, AppCatalog::embedded())
            .with_budgets(budgets);
        let episodes = run_split(&system, Split::Train, &options).unwrap();
        let mut slips = 0;
        for episode in &episodes {
            assert!(episode.evaluation.success, "{kind} {}", episode.task_id);
            assert_eq!(episode.end, EpisodeEnd::Completed);
            for (i, turn) in episode.turns.iter().enumerate() {
                let Action::Malformed { reason } = &turn.action else {
                    continue;
                };
                slips += 1;
                slipped.insert(turn.role);
                assert!(!turn.completion().unwrap().train);
                let next = next_in_conversation(episode, i).expect("the role goes on");
                let reminder = &next.messages[turn.messages.len()];
                assert_eq!(
                    *reminder,
                    prompts::format_reminder(turn.role, reason),
                    "{kind} {}",
                    episode.task_id
                );
                assert!(
                    !matches!(next.action, Action::Malformed { .. }),
                    "never two slips in a row: {kind} {} turn {i}: {:?} then {:?}",
                    episode.task_id,
                    turn.completion().unwrap().content,
                    next.completion().unwrap().content
                );
                assert!(
                    next.completion().unwrap().train,
                    "the proper output is trained on"
                );
            }
        }
        eprintln!("{kind}: {slips} slips in {} episodes", episodes.len());
        assert!(slips > 0, "{kind}");
    }
    assert_eq!(slipped.len(), 4, "every role slips: {slipped:?}");
}

#[test]
fn critic_turns_are_balanced_with_real_rejections() {
    let fixture = common::Fixture::new();
    let options = fixture.options();
    let share = |experts: Experts| {
        let system = experts.system(SystemKind::ThreeAgent, AppCatalog::embedded());
        let episodes = run_split(&system, Split::Train, &options).unwrap();
        assert!(episodes.iter().all(|e| e.evaluation.success));
        let (mut accepts, mut rejects) = (0usize, 0usize);
        for turn in episodes.iter().flat_map(|e| e.turns_of(Role::Critic)) {
            match turn.action {
                Action::Accept => accepts += 1,
                Action::Retry { .. } => rejects += 1,
                _ => {}
            }
        }
        eprintln!(
            "{} episodes: {accepts} accepts, {rejects} rejects ({:.1}% rejects)",
            episodes.len(),
            100.0 * rejects as f64 / (accepts + rejects) as f64
        );
        rejects as f64 / (accepts + rejects) as f64
    };
    let defaults = ExpertOptions::default();
    let before = share(
        fixture
            .experts(defaults)
            .with_habits(ExpertHabits {
                critic_negative_rate: 0.0,
                ..ExpertHabits::default()
            })
            .unwrap(),
    );
    let after = share(fixture.experts(defaults));
    assert!(before < 0.1, "premature reports alone are rare: {before}");
    assert!(
        after >= 0.2,
        "default experts give critics real negatives: {after}"
    );
}

#[test]
fn detours_fit_evaluation_budgets_and_mistakes_still_succeed_on_every_split() {
    let fixture = common::Fixture::new();
    let options = fixture.options();
    // The default config's budgets, with the per-turn token cap left at its default (expert
    // token counts are estimates).
    let tight = Budgets {
        max_interactions: 12,
        max_subtasks: 8,
        max_executor_steps: 3,
        max_critic_retries: 1,
        max_format_retries: 1,
        ..Budgets::default()
    };
    let roomy = Budgets {
        max_executor_steps: 8,
        max_interactions: 24,
        ..tight
    };
    let noisy = ExpertOptions {
        mistake_rate: 1.0,
        docs_rate: 0.3,
    };
    for kind in SystemKind::ALL {
        for split in Split::ALL {
            for budgets in [tight, roomy] {
                let system = fixture
                    .expert_system(kind, noisy)
                    .with_budgets(budgets)
                    .with_seed(3);
                let report = evaluate(&system, split, &options).unwrap();
                assert_eq!(
                    report.scores.overall.tgc,
                    100.0,
                    "{kind} {split} {budgets:?}:\n{}",
                    report.table()
                );
            }
        }
    }
}

#[test]
fn http_and_in_process_runs_give_identical_trajectories() {
    let fixture = common::Fixture::new();
    let world = fixture.world.clone();
    let server = rung_env::serve(world.clone(), "127.0.0.1:0").unwrap();
    let tasks: Vec<_> = fixture
        .gold
        .tasks(Split::TestNormal)
        .into_iter()
        .step_by(4)
        .collect();
    let local = EvalOptions {
        tasks: Some(tasks),
        ..fixture.options()
    };
    // One client per worker, as with a pool of AppWorld servers.
    let clients = [
        rung_env::AppWorldClient::new(server.url()),
        rung_env::AppWorldClient::new(server.url()),
    ];
    let remote = EvalOptions {
        gold: local.gold.clone(),
        tasks: local.tasks.clone(),
        ..EvalOptions::pool(&clients)
    };
    let mistakes = ExpertOptions {
        mistake_rate: 0.5,
        docs_rate: 0.5,
    };
    for kind in SystemKind::ALL {
        let system = fixture.expert_system(kind, mistakes).with_seed(11);
        let strip = |episodes: Vec<rung_trajectory::Episode>| {
            episodes
                .into_iter()
                .map(|mut e| {
                    e.cost.wall_seconds = 0.0;
                    e
                })
                .collect::<Vec<_>>()
        };
        let here = strip(run_split(&system, Split::TestNormal, &local).unwrap());
        let there = strip(run_split(&system, Split::TestNormal, &remote).unwrap());
        assert_eq!(here.len(), there.len());
        assert!(here.iter().any(has_mistake));
        for (a, b) in here.iter().zip(&there) {
            assert_eq!(a, b, "{kind} {}", a.task_id);
        }
    }
    // A different seed makes different choices.
    let system = fixture.expert_system(SystemKind::Single, mistakes);
    let a = run_split(&system.clone().with_seed(1), Split::TestNormal, &local).unwrap();
    let b = run_split(&system.with_seed(2), Split::TestNormal, &local).unwrap();
    assert!(a.iter().zip(&b).any(|(a, b)| a.turns != b.turns));
}
