//! Schedules, samples and loss masks on hand-made trajectories, rendered with rung-model's real
//! tokenizer and ChatML template.

mod common;

use std::collections::BTreeSet;

use common::{ModelRenderer, single, three_agent, tokenizer};
use rung_curriculum::{
    BatchOptions, ByteRenderer, Curriculum, Dataset, Growth, Overflow, Sample, SampleOptions,
    Schedule, ScheduleContext, TrajectoryInfo, Unsupervised, batches, conversations,
    curriculum_table, epoch_samples,
};
use rung_segment::NoPlans;
use rung_trajectory::{Episode, Role};

/// A sample's supervised ids, their count and the supervised turns.
type SupervisedView = (Vec<u32>, usize, Vec<usize>);

fn prost() -> Curriculum {
    Curriculum::default()
}

/// The runs of consecutive supervised tokens, decoded.
fn supervised_runs(sample: &Sample) -> Vec<String> {
    let tok = tokenizer();
    let mut runs = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    for (&id, &m) in sample.ids.iter().zip(&sample.loss_mask) {
        if m == 1 {
            current.push(id);
        } else if !current.is_empty() {
            runs.push(tok.decode(&current).unwrap());
            current.clear();
        }
    }
    if !current.is_empty() {
        runs.push(tok.decode(&current).unwrap());
    }
    runs
}

/// The supervised ids of a sample, in order.
fn supervised_ids(sample: &Sample) -> Vec<u32> {
    sample
        .ids
        .iter()
        .zip(&sample.loss_mask)
        .filter(|(_, m)| **m == 1)
        .map(|(id, _)| *id)
        .collect()
}

fn completion(episode: &Episode, turn: usize) -> String {
    episode.turns[turn].completion().unwrap().content.clone()
}

#[test]
fn prost_linear_supervises_a_growing_prefix_and_masks_exactly_those_turns() {
    let dataset = Dataset::new(
        vec![three_agent("Execution successful."), single("15.81")],
        &NoPlans,
    );
    let renderer = ModelRenderer(tokenizer());
    let expected_sets: [&[usize]; 5] = [&[0], &[0, 1], &[0, 1, 2], &[0, 1, 2, 3], &[0, 1, 2, 3]];
    for (index, trajectory) in dataset.trajectories.iter().enumerate() {
        assert_eq!(trajectory.segmentation.len(), 4);
        let episode = &trajectory.episode;
        for (e, want) in expected_sets.iter().enumerate() {
            let epoch = e + 1;
            let supervised = dataset.supervised(&prost().schedule, epoch, index);
            assert_eq!(supervised, *want, "epoch {epoch}");
            for role in trajectory.roles() {
                let samples = epoch_samples(
                    &dataset,
                    &prost(),
                    epoch,
                    role,
                    &renderer,
                    &SampleOptions::default(),
                )
                .unwrap()
                .samples;
                let samples: Vec<&Sample> =
                    samples.iter().filter(|s| s.trajectory == index).collect();
                // Exactly the role's trained turns of the scheduled sub-tasks.
                let expected: BTreeSet<usize> = (0..episode.turns.len())
                    .filter(|&t| {
                        episode.turns[t].role == role
                            && want.contains(&trajectory.segmentation.turn_subtask[t])
                            && episode.turns[t].completion().unwrap().train
                    })
                    .collect();
                let got: BTreeSet<usize> = samples
                    .iter()
                    .flat_map(|s| s.supervised_turns.iter().copied())
                    .collect();
                assert_eq!(got, expected, "{role} epoch {epoch}");
                let got_subtasks: BTreeSet<usize> = samples
                    .iter()
                    .flat_map(|s| s.subtasks.iter().copied())
                    .collect();
                assert!(got_subtasks.iter().all(|k| want.contains(k)));
                // The loss-mask tokens decode to exactly those turns' contents + <|im_end|>.
                for sample in &samples {
                    let want_runs: Vec<String> = sample
                        .supervised_turns
                        .iter()
                        .map(|&t| format!("{}<|im_end|>", completion(episode, t)))
                        .collect();
                    assert_eq!(supervised_runs(sample), want_runs, "{role} epoch {epoch}");
                    assert_eq!(
                        sample.position_ids,
                        (0..sample.len() as u32).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}

#[test]
fn three_agent_samples_per_role_have_the_expected_shape() {
    let dataset = Dataset::new(vec![three_agent("ok")], &NoPlans);
    let renderer = ModelRenderer(tokenizer());
    let tok = tokenizer();
    let options = SampleOptions::default();
    // Epoch 1: the orchestrator's conversation is cut after its first delegation.
    let orch = epoch_samples(
        &dataset,
        &prost(),
        1,
        Role::Orchestrator,
        &renderer,
        &options,
    )
    .unwrap()
    .samples;
    assert_eq!(orch.len(), 1);
    let text = tok.decode(&orch[0].ids).unwrap();
    assert!(text.starts_with("<|im_start|>system\nYou are the orchestrator.<|im_end|>\n"));
    assert!(
        text.ends_with("SUBTASK phone: Step 0 in phone.<|im_end|>\n"),
        "{text}"
    );
    assert_eq!(
        supervised_runs(&orch[0]),
        ["SUBTASK phone: Step 0 in phone.<|im_end|>"]
    );
    // Executor: one conversation for sub-task 0; the critic: one verdict.
    let exec = epoch_samples(&dataset, &prost(), 1, Role::Executor, &renderer, &options)
        .unwrap()
        .samples;
    assert_eq!(exec.len(), 1);
    assert_eq!(supervised_runs(&exec[0]).len(), 3);
    let critic = epoch_samples(&dataset, &prost(), 1, Role::Critic, &renderer, &options)
        .unwrap()
        .samples;
    assert_eq!(critic.len(), 1);
    assert_eq!(supervised_runs(&critic[0]), ["ACCEPT<|im_end|>"]);
    // Epoch 4: the untrained mistake and premature report are context, never supervised.
    let exec = epoch_samples(&dataset, &prost(), 4, Role::Executor, &renderer, &options)
        .unwrap()
        .samples;
    assert_eq!(exec.len(), 4);
    let all: Vec<String> = exec.iter().flat_map(supervised_runs).collect();
    assert!(
        all.iter()
            .all(|r| !r.contains("wrong_1") && !r.contains("premature"))
    );
    assert!(tok.decode(&exec[1].ids).unwrap().contains("wrong_1"));
    assert!(
        tok.decode(&exec[2].ids)
            .unwrap()
            .contains("DONE: premature")
    );
    // The sub-task-2 conversation continues after the critic's RETRY (one conversation).
    assert_eq!(supervised_runs(&exec[2]).len(), 3);
    // Epoch 4 supervises the critic's RETRY and both ACCEPTs of sub-task 2 as well.
    let critic = epoch_samples(&dataset, &prost(), 4, Role::Critic, &renderer, &options)
        .unwrap()
        .samples;
    assert_eq!(critic.len(), 5);
}

#[test]
fn changing_masked_text_changes_no_supervised_token() {
    let renderer = ModelRenderer(tokenizer());
    let options = SampleOptions::default();
    let texts = [
        "ok",
        "Execution successful.",
        "{\"a\": [1, 2, 3]} <|im_end|> weird",
        "",
    ];
    for curriculum in [
        prost(),
        Curriculum {
            schedule: Schedule::All,
            unsupervised: Unsupervised::Keep,
        },
    ] {
        for epoch in 1..=4 {
            for role in [
                Role::Orchestrator,
                Role::Executor,
                Role::Critic,
                Role::Single,
            ] {
                let mut reference: Option<Vec<SupervisedView>> = None;
                for text in texts {
                    let dataset = Dataset::new(vec![three_agent(text), single(text)], &NoPlans);
                    let samples =
                        epoch_samples(&dataset, &curriculum, epoch, role, &renderer, &options)
                            .unwrap()
                            .samples;
                    let view: Vec<SupervisedView> = samples
                        .iter()
                        .map(|s| {
                            (
                                supervised_ids(s),
                                s.supervised_tokens(),
                                s.supervised_turns.clone(),
                            )
                        })
                        .collect();
                    match &reference {
                        None => reference = Some(view),
                        Some(r) => assert_eq!(&view, r, "{role} epoch {epoch} text {text:?}"),
                    }
                }
            }
        }
    }
}

#[test]
fn truncation_and_context_limits_never_remove_a_supervised_token() {
    let dataset = Dataset::new(
        vec![three_agent("Execution successful."), single("15.81")],
        &NoPlans,
    );
    let renderer = ModelRenderer(tokenizer());
    let keep = Curriculum {
        schedule: Schedule::default(),
        unsupervised: Unsupervised::Keep,
    };
    for epoch in 1..=4 {
        for role in dataset.roles() {
            let full = epoch_samples(
                &dataset,
                &keep,
                epoch,
                role,
                &renderer,
                &SampleOptions::default(),
            )
            .unwrap()
            .samples;
            let truncated = epoch_samples(
                &dataset,
                &prost(),
                epoch,
                role,
                &renderer,
                &SampleOptions::default(),
            )
            .unwrap()
            .samples;
            assert_eq!(full.len(), truncated.len());
            for (f, t) in full.iter().zip(&truncated) {
                assert_eq!(supervised_ids(f), supervised_ids(t));
                assert!(t.len() <= f.len());
                // Truncation keeps a prefix.
                assert_eq!(&f.ids[..t.len()], &t.ids[..]);
            }
            // A context limit: samples shrink by dropping unsupervised turns, or split.
            let longest = truncated.iter().map(Sample::len).max().unwrap_or(0);
            for max in [longest, longest * 3 / 4, longest / 2] {
                let options = SampleOptions {
                    max_tokens: Some(max),
                    overflow: Overflow::Split,
                };
                let out =
                    epoch_samples(&dataset, &prost(), epoch, role, &renderer, &options).unwrap();
                let report = out.stats.roles[&role].fit;
                let kept: BTreeSet<usize> = out
                    .samples
                    .iter()
                    .flat_map(|s| s.supervised_turns.iter().copied())
                    .collect();
                let all: BTreeSet<usize> = truncated
                    .iter()
                    .flat_map(|s| s.supervised_turns.iter().copied())
                    .collect();
                assert_eq!(kept.len() + report.lost_turns, all.len());
                for sample in &out.samples {
                    assert!(sample.len() <= max);
                    let episode = &dataset.trajectories[sample.trajectory].episode;
                    let want: Vec<String> = sample
                        .supervised_turns
                        .iter()
                        .map(|&t| format!("{}<|im_end|>", completion(episode, t)))
                        .collect();
                    assert_eq!(supervised_runs(sample), want);
                }
            }
        }
    }
}

#[test]
fn oldest_unsupervised_turns_are_dropped_first_and_the_head_is_kept() {
    // Reverse, epoch 1: only sub-task 3 is supervised; the orchestrator's earlier delegations
    // are context, and the oldest go first.
    let dataset = Dataset::new(vec![three_agent("ok")], &NoPlans);
    let curriculum = Curriculum {
        schedule: Schedule::Reverse {
            growth: Growth::default(),
        },
        unsupervised: Unsupervised::Truncate,
    };
    let renderer = ByteRenderer;
    let role = Role::Orchestrator;
    let full = epoch_samples(
        &dataset,
        &curriculum,
        1,
        role,
        &renderer,
        &SampleOptions::default(),
    )
    .unwrap()
    .samples;
    assert_eq!(full.len(), 1);
    let full_len = full[0].len();
    let options = SampleOptions {
        max_tokens: Some(full_len - 1),
        overflow: Overflow::Drop,
    };
    let out = epoch_samples(&dataset, &curriculum, 1, role, &renderer, &options).unwrap();
    assert_eq!(out.samples.len(), 1);
    let sample = &out.samples[0];
    assert_eq!(sample.dropped_turns, 1);
    assert_eq!(out.stats.roles[&role].fit.shortened, 1);
    let text = ByteRenderer::decode(&sample.ids);
    assert!(text.starts_with("<|im_start|>system\nYou are the orchestrator.<|im_end|>\n<|im_start|>user\nTask: Do four things.<|im_end|>\n"));
    assert!(
        !text.contains("SUBTASK phone"),
        "the oldest delegation is dropped"
    );
    assert!(
        !text.contains("Result of step 0"),
        "with the result that answered it"
    );
    assert!(text.contains("SUBTASK pay"));
    assert!(text.ends_with("COMPLETE: None<|im_end|>\n"));
    assert_eq!(sample.supervised_turns.len(), 2); // the last delegation and COMPLETE
    // Too small for the supervised turns themselves: dropped, or split into two samples.
    let head = 80; // system prompt and task
    let tight = SampleOptions {
        max_tokens: Some(head + 45),
        overflow: Overflow::Drop,
    };
    let out = epoch_samples(&dataset, &curriculum, 1, role, &renderer, &tight).unwrap();
    assert!(out.samples.is_empty());
    assert_eq!(out.stats.roles[&role].fit.dropped, 1);
    let split = SampleOptions {
        overflow: Overflow::Split,
        ..tight
    };
    let out = epoch_samples(&dataset, &curriculum, 1, role, &renderer, &split).unwrap();
    assert_eq!(out.samples.len(), 2);
    assert_eq!(out.stats.roles[&role].fit.split, 1);
    assert!(
        out.samples
            .iter()
            .all(|s| s.len() <= head + 45 && s.supervised_turns.len() == 1)
    );

    // Keep, prost epoch 1: the kept tail after the supervised delegation goes first, latest
    // first, before any older context.
    let keep = Curriculum {
        schedule: Schedule::default(),
        unsupervised: Unsupervised::Keep,
    };
    let full = epoch_samples(
        &dataset,
        &keep,
        1,
        role,
        &renderer,
        &SampleOptions::default(),
    )
    .unwrap()
    .samples;
    let options = SampleOptions {
        max_tokens: Some(full[0].len() - 1),
        overflow: Overflow::Drop,
    };
    let out = epoch_samples(&dataset, &keep, 1, role, &renderer, &options).unwrap();
    let text = ByteRenderer::decode(&out.samples[0].ids);
    assert_eq!(out.samples[0].dropped_turns, 1);
    assert!(text.contains("SUBTASK notes"), "{text}");
    assert!(!text.contains("COMPLETE"));
    assert_eq!(out.samples[0].supervised_turns, [0]);
}

#[test]
fn schedules_follow_their_formulas() {
    let info = |n, difficulty| TrajectoryInfo {
        key: 7,
        subtasks: n,
        difficulty,
    };
    let ctx = ScheduleContext::default();
    let counts = |g: Growth, n: usize| (1..=6).map(|e| g.count(e, n)).collect::<Vec<_>>();
    assert_eq!(counts(Growth::default(), 4), [1, 2, 3, 4, 4, 4]);
    assert_eq!(
        counts(Growth::Linear { start: 2, step: 3 }, 9),
        [2, 5, 8, 9, 9, 9]
    );
    assert_eq!(
        counts(
            Growth::Exponential {
                start: 1,
                factor: 2
            },
            6
        ),
        [1, 2, 4, 6, 6, 6]
    );
    assert_eq!(
        counts(
            Growth::Exponential {
                start: 1,
                factor: 3
            },
            20
        ),
        [1, 3, 9, 20, 20, 20]
    );
    assert_eq!(
        counts(Growth::Proportional { epochs: 3 }, 4),
        [2, 3, 4, 4, 4, 4]
    );
    assert_eq!(
        counts(Growth::Proportional { epochs: 3 }, 1),
        [1, 1, 1, 1, 1, 1]
    );
    assert_eq!(Growth::default().count(0, 4), 0);
    assert_eq!(Growth::default().full_epoch(4), 4);

    let reverse = Schedule::Reverse {
        growth: Growth::default(),
    };
    let sets: Vec<Vec<usize>> = (1..=5)
        .map(|e| reverse.supervised(e, &info(4, 1), &ctx))
        .collect();
    assert_eq!(
        sets,
        vec![
            vec![3],
            vec![2, 3],
            vec![1, 2, 3],
            vec![0, 1, 2, 3],
            vec![0, 1, 2, 3]
        ]
    );
    assert_eq!(Schedule::All.supervised(1, &info(3, 1), &ctx), [0, 1, 2]);
    assert!(Schedule::All.supervised(0, &info(3, 1), &ctx).is_empty());

    let random = Schedule::Random {
        growth: Growth::default(),
        seed: 5,
        resample: false,
    };
    let sets: Vec<Vec<usize>> = (1..=6)
        .map(|e| random.supervised(e, &info(6, 1), &ctx))
        .collect();
    for (e, set) in sets.iter().enumerate() {
        assert_eq!(set.len(), e + 1);
        if e > 0 {
            assert!(
                sets[e - 1].iter().all(|k| set.contains(k)),
                "nested: {sets:?}"
            );
        }
    }
    assert_eq!(
        sets,
        (1..=6)
            .map(|e| random.supervised(e, &info(6, 1), &ctx))
            .collect::<Vec<_>>()
    );
    let differs = (0..20u64).any(|key| {
        let i = TrajectoryInfo { key, ..info(6, 1) };
        random.supervised(1, &i, &ctx) != random.supervised(1, &info(6, 1), &ctx)
    });
    assert!(differs, "different trajectories draw different orders");

    let levels = ScheduleContext {
        levels: vec![1, 2, 3],
    };
    let difficulty = Schedule::Difficulty {
        epochs_per_level: 2,
    };
    let admitted = |e, d| !difficulty.supervised(e, &info(2, d), &levels).is_empty();
    assert_eq!(
        (1..=7).map(|e| admitted(e, 1)).collect::<Vec<_>>(),
        [true; 7]
    );
    assert_eq!(
        (1..=7).map(|e| admitted(e, 2)).collect::<Vec<_>>(),
        [false, false, true, true, true, true, true]
    );
    assert_eq!(
        (1..=7).map(|e| admitted(e, 3)).collect::<Vec<_>>(),
        [false, false, false, false, true, true, true]
    );
    assert_eq!(difficulty.supervised(5, &info(2, 3), &levels), [0, 1]);
}

#[test]
fn curricula_serialise_as_tagged_objects() {
    let cases = [
        (r#"{}"#, Curriculum::default()),
        (
            r#"{"schedule": {"kind": "prost", "growth": {"kind": "exponential", "factor": 3}}, "unsupervised": "keep"}"#,
            Curriculum {
                schedule: Schedule::Prost {
                    growth: Growth::Exponential {
                        start: 1,
                        factor: 3,
                    },
                },
                unsupervised: Unsupervised::Keep,
            },
        ),
        (
            r#"{"schedule": {"kind": "all"}}"#,
            Curriculum {
                schedule: Schedule::All,
                ..Default::default()
            },
        ),
        (
            r#"{"schedule": {"kind": "random", "seed": 9}}"#,
            Curriculum {
                schedule: Schedule::Random {
                    growth: Growth::default(),
                    seed: 9,
                    resample: false,
                },
                ..Default::default()
            },
        ),
        (
            r#"{"schedule": {"kind": "difficulty", "epochs_per_level": 2}}"#,
            Curriculum {
                schedule: Schedule::Difficulty {
                    epochs_per_level: 2,
                },
                ..Default::default()
            },
        ),
    ];
    for (json, want) in cases {
        let got: Curriculum = serde_json::from_str(json).unwrap();
        assert_eq!(got, want, "{json}");
        let back: Curriculum = serde_json::from_str(&serde_json::to_string(&got).unwrap()).unwrap();
        assert_eq!(back, got);
    }
    assert_eq!(
        serde_json::to_value(Curriculum::default()).unwrap(),
        serde_json::json!({"schedule": {"kind": "prost", "growth": {"kind": "linear", "start": 1, "step": 1}}, "unsupervised": "truncate"})
    );
    for bad in [
        r#"{"schedule": {"kind": "prost", "grwoth": {"kind": "linear"}}}"#,
        r#"{"schedule": {"kind": "progressive"}}"#,
        r#"{"schedule": {"kind": "prost"}, "unsupervised": "drop"}"#,
        r#"{"schedlue": {"kind": "prost"}}"#,
    ] {
        assert!(serde_json::from_str::<Curriculum>(bad).is_err(), "{bad}");
    }
    assert!(
        Schedule::Prost {
            growth: Growth::Linear { start: 1, step: 0 }
        }
        .validate()
        .is_err()
    );
}

#[test]
fn conversations_follow_prompt_prefixes() {
    let episode = three_agent("ok");
    let convs = conversations(&episode);
    let count = |role| convs.iter().filter(|c| c.role == role).count();
    assert_eq!(count(Role::Orchestrator), 1);
    assert_eq!(count(Role::Executor), 4);
    assert_eq!(count(Role::Critic), 5);
    let orch = &convs[0];
    assert_eq!(orch.turns.len(), 5);
    assert_eq!(
        orch.messages,
        episode.turns[*orch.turns.last().unwrap()].messages
    );
}

#[test]
fn the_table_shows_each_epoch() {
    let dataset = Dataset::new(vec![three_agent("ok"), single("ok")], &NoPlans);
    let table = curriculum_table(
        &dataset,
        &prost(),
        5,
        &[],
        &ByteRenderer,
        &SampleOptions::default(),
        "bytes",
    )
    .unwrap();
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.trim_start().starts_with(char::is_numeric))
        .collect();
    assert_eq!(rows.len(), 5, "{table}");
    let cells = |row: &str| {
        row.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // epoch, scheduled/total, samples, sup, ctx, shortened, dropped, 4 roles, #1..#4
    let first = cells(rows[0]);
    assert_eq!(first[0], "1");
    assert_eq!(first[1], "2/8");
    // Epoch 1 samples: orchestrator 1, executor 1, critic 1, single 1.
    assert_eq!(first[2], "4");
    assert_eq!(&first[7..11], ["1", "1", "1", "1"]);
    assert_eq!(&first[11..], ["2", "0", "0", "0"]);
    let last = cells(rows[4]);
    assert_eq!(last[1], "8/8");
    assert_eq!(&last[7..11], ["4", "4", "4", "4"]);
    assert_eq!(&last[11..], ["2", "2", "2", "2"]);
    assert!(table.contains("orchestrator"));
    assert!(table.contains("#4"));
}

#[test]
fn batches_of_real_samples_pad_and_pack() {
    let dataset = Dataset::new(vec![three_agent("ok"), single("ok")], &NoPlans);
    let renderer = ModelRenderer(tokenizer());
    let samples = epoch_samples(
        &dataset,
        &Curriculum {
            schedule: Schedule::All,
            ..prost()
        },
        1,
        Role::Executor,
        &renderer,
        &SampleOptions::default(),
    )
    .unwrap()
    .samples;
    let longest = samples.iter().map(Sample::len).max().unwrap();
    let options = BatchOptions {
        batch_size: 2,
        pack_length: Some(longest * 2),
        sort_by_length: true,
        shuffle: true,
        seed: 1,
        pad_id: tokenizer().pad_id().unwrap(),
    };
    let a = batches(&samples, &options, 1).unwrap();
    assert_eq!(a, batches(&samples, &options, 1).unwrap());
    let packed: usize = a
        .iter()
        .map(|b| b.samples.iter().map(Vec::len).sum::<usize>())
        .sum();
    assert_eq!(packed, samples.len());
    assert!(a.iter().all(|b| b.seq_len <= longest * 2));
    let supervised: usize = a.iter().map(|b| b.supervised_tokens()).sum();
    assert_eq!(
        supervised,
        samples.iter().map(Sample::supervised_tokens).sum::<usize>()
    );
}
