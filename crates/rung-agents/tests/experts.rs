//! The scripted experts solve every task of the embedded world in every system, their
//! trajectories replay, and their deliberate mistakes are recovered from.

mod common;

use std::time::Instant;

use rung_agents::harness::has_mistake;
use rung_agents::{
    DataGenOptions, EvalOptions, ExpertOptions, evaluate, generate_expert_data, replay_episode,
    run_split,
};
use rung_env::Split;
use rung_trajectory::{Action, ChatRole, EpisodeEnd, Role, SystemKind, TrajectoryReader};
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
        // About a fifth of the episodes carry a deliberate mistake (mistake_rate 0.2).
        let share = report.with_mistake as f64 / report.written as f64;
        assert!((0.1..0.3).contains(&share), "{kind}: {share}");
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

#[test]
fn mistakes_are_followed_by_recovery_and_still_succeed() {
    let always = ExpertOptions {
        mistake_rate: 1.0,
        docs_rate: 0.0,
    };
    let fixture = common::Fixture::new();
    let options = fixture.options();
    for kind in SystemKind::ALL {
        let system = fixture.expert_system(kind, always);
        let episodes = run_split(&system, Split::Dev, &options).unwrap();
        let (mut wrong_parameter, mut rejected) = (0, 0);
        for episode in &episodes {
            assert!(episode.evaluation.success, "{kind} {}", episode.task_id);
            assert_eq!(episode.end, EpisodeEnd::Completed);
            if !has_mistake(episode) {
                continue;
            }
            let failed = episode.turns.iter().position(|t| {
                t.observation
                    .as_deref()
                    .is_some_and(|o| o.starts_with(FAILED))
            });
            let retry = episode
                .turns
                .iter()
                .any(|t| matches!(t.action, Action::Retry { .. }));
            match (failed, retry) {
                (Some(at), false) => {
                    wrong_parameter += 1;
                    let turn = &episode.turns[at];
                    let obs = turn.observation.as_deref().unwrap();
                    assert!(
                        obs.contains("422") && obs.contains("unexpected argument"),
                        "{obs}"
                    );
                    assert!(
                        !turn.completion().unwrap().train,
                        "the mistake is not trained on"
                    );
                    // The corrected cell comes later, is trained on, and succeeds.
                    let later = &episode.turns[at + 1..];
                    assert!(later.iter().any(|t| {
                        t.role == turn.role
                            && t.completion().unwrap().train
                            && t.observation
                                .as_deref()
                                .is_some_and(|o| !o.starts_with(FAILED))
                    }));
                }
                (None, true) => {
                    rejected += 1;
                    assert_eq!(kind, SystemKind::ThreeAgent);
                    let premature = episode
                        .turns
                        .iter()
                        .position(|t| {
                            matches!(t.action, Action::Report { .. })
                                && !t.completion().unwrap().train
                        })
                        .expect("a premature report");
                    let next = &episode.turns[premature + 1];
                    assert_eq!(next.role, Role::Critic);
                    assert!(matches!(next.action, Action::Retry { .. }));
                    assert!(next.completion().unwrap().train, "critics learn to reject");
                    // The executor hears the feedback and finishes the sub-task.
                    let resumed = &episode.turns[premature + 2];
                    assert_eq!(resumed.role, Role::Executor);
                    let feedback = &resumed.messages[resumed.messages.len() - 2];
                    assert_eq!(feedback.role, ChatRole::User);
                    assert!(
                        feedback
                            .content
                            .starts_with("The critic sent the sub-task back: ")
                    );
                }
                other => panic!(
                    "{kind} {}: unexpected mistake shape {other:?}",
                    episode.task_id
                ),
            }
        }
        eprintln!(
            "{kind}: {wrong_parameter} wrong-parameter and {rejected} rejected-report episodes of {}",
            episodes.len()
        );
        assert!(
            wrong_parameter + rejected >= episodes.len() * 9 / 10,
            "{kind}: nearly every episode has a mistake"
        );
        assert!(wrong_parameter > 0);
        if kind == SystemKind::ThreeAgent {
            assert!(rejected > 0);
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
