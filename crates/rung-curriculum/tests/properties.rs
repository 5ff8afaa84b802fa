//! Property tests over random trajectories, schedules, context limits and batch settings.

use std::collections::BTreeSet;

use proptest::prelude::*;
use rung_curriculum::{
    BatchOptions, ByteRenderer, Curriculum, Dataset, Growth, Overflow, Sample, SampleOptions,
    Schedule, Unsupervised, batches, epoch_samples,
};
use rung_segment::NoPlans;
use rung_segment::build::EpisodeBuilder;
use rung_trajectory::{Episode, Role, SystemKind};

/// One sub-task of a random trajectory: executor (or single-agent) cells with their `train`
/// flags, and whether the critic sends it back once.
#[derive(Debug, Clone)]
struct SubSpec {
    cells: Vec<(bool, String)>,
    retry: bool,
}

#[derive(Debug, Clone)]
struct Spec {
    kind: SystemKind,
    subtasks: Vec<SubSpec>,
    difficulty: u8,
    seed: u64,
}

fn sub_spec() -> impl Strategy<Value = SubSpec> {
    (
        prop::collection::vec(
            (
                prop::bool::weighted(0.8),
                "[a-z_]{1,12}( [a-z0-9=]{1,8}){0,4}",
            ),
            1..4,
        ),
        any::<bool>(),
    )
        .prop_map(|(cells, retry)| SubSpec { cells, retry })
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![
            Just(SystemKind::Single),
            Just(SystemKind::TwoAgent),
            Just(SystemKind::ThreeAgent)
        ],
        prop::collection::vec(sub_spec(), 1..6),
        1u8..=3,
        any::<u64>(),
    )
        .prop_map(|(kind, subtasks, difficulty, seed)| Spec {
            kind,
            subtasks,
            difficulty,
            seed,
        })
}

/// Builds the episode of a spec; every environment output reads `observation`.
fn build(spec: &Spec, observation: &str) -> Episode {
    let mut b = EpisodeBuilder::new(spec.kind, "0a1b2c3_1", "A random task.")
        .difficulty(spec.difficulty)
        .seed(spec.seed);
    if spec.kind == SystemKind::Single {
        let c = b.open(Role::Single, "single system", "Task: A random task.");
        for (k, sub) in spec.subtasks.iter().enumerate() {
            for (train, code) in &sub.cells {
                b.code(c, Some(k), &format!("{code} # {k}"), *train, observation);
            }
        }
        return b.finish();
    }
    let critic = spec.kind == SystemKind::ThreeAgent;
    let orch = b.open(
        Role::Orchestrator,
        "orchestrator system",
        "Task: A random task.",
    );
    for (k, sub) in spec.subtasks.iter().enumerate() {
        b.delegate(orch, k, "app", &format!("step {k}"));
        let exec = b.open(Role::Executor, "executor system", &format!("Sub-task {k}"));
        for (train, code) in &sub.cells {
            b.code(exec, Some(k), code, *train, observation);
        }
        if critic && sub.retry {
            b.report(exec, k, "too early", false);
            let c = b.open(Role::Critic, "critic system", &format!("check {k} early"));
            b.verdict(c, k, Some("not yet"));
            b.user(exec, "Feedback: not yet");
            b.code(exec, Some(k), &format!("fix {k}"), true, observation);
        }
        b.report(exec, k, &format!("r{k}"), true);
        if critic {
            let c = b.open(Role::Critic, "critic system", &format!("check {k}"));
            b.verdict(c, k, None);
        }
        b.user(orch, &format!("result {k}: {observation}"));
    }
    b.complete(orch, "None");
    b.finish()
}

fn growth() -> impl Strategy<Value = Growth> {
    prop_oneof![
        (1usize..4, 1usize..4).prop_map(|(start, step)| Growth::Linear { start, step }),
        (1usize..3, 2usize..4).prop_map(|(start, factor)| Growth::Exponential { start, factor }),
        (1usize..8).prop_map(|epochs| Growth::Proportional { epochs }),
    ]
}

fn schedule() -> impl Strategy<Value = Schedule> {
    prop_oneof![
        growth().prop_map(|growth| Schedule::Prost { growth }),
        Just(Schedule::All),
        (growth(), any::<u64>(), any::<bool>()).prop_map(|(growth, seed, resample)| {
            Schedule::Random {
                growth,
                seed,
                resample,
            }
        }),
        growth().prop_map(|growth| Schedule::Reverse { growth }),
        (1usize..4).prop_map(|epochs_per_level| Schedule::Difficulty { epochs_per_level }),
    ]
}

fn curriculum() -> impl Strategy<Value = Curriculum> {
    (schedule(), any::<bool>()).prop_map(|(schedule, keep)| Curriculum {
        schedule,
        unsupervised: if keep {
            Unsupervised::Keep
        } else {
            Unsupervised::Truncate
        },
    })
}

fn dataset(specs: &[Spec], observation: &str) -> Dataset {
    Dataset::new(
        specs.iter().map(|s| build(s, observation)).collect(),
        &NoPlans,
    )
}

/// Decoded runs of supervised tokens.
fn runs(sample: &Sample) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for (&id, &m) in sample.ids.iter().zip(&sample.loss_mask) {
        if m == 1 {
            current.push(id);
        } else if !current.is_empty() {
            out.push(ByteRenderer::decode(&current));
            current.clear();
        }
    }
    if !current.is_empty() {
        out.push(ByteRenderer::decode(&current));
    }
    out
}

const LAST_EPOCH: usize = 40;

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_schedule_eventually_supervises_every_sub_task(
        specs in prop::collection::vec(spec(), 1..6),
        schedule in schedule(),
    ) {
        let data = dataset(&specs, "ok");
        for (i, t) in data.trajectories.iter().enumerate() {
            let n = t.info.subtasks;
            let mut seen = BTreeSet::new();
            let mut full_from = None;
            for epoch in 1..=LAST_EPOCH {
                let set = data.supervised(&schedule, epoch, i);
                prop_assert!(set.windows(2).all(|w| w[0] < w[1]) && set.iter().all(|&k| k < n));
                seen.extend(set.iter().copied());
                if set.len() == n {
                    full_from.get_or_insert(epoch);
                } else {
                    // Once all are in, later epochs keep all.
                    prop_assert!(full_from.is_none(), "{schedule:?} dropped sub-tasks at epoch {epoch}");
                }
            }
            prop_assert_eq!(seen.len(), n);
            prop_assert!(full_from.is_some());
            prop_assert!(data.supervised(&schedule, 0, i).is_empty());
        }
    }

    #[test]
    fn random_matches_prost_counts(
        specs in prop::collection::vec(spec(), 1..6),
        growth in growth(),
        seed in any::<u64>(),
        resample in any::<bool>(),
    ) {
        let data = dataset(&specs, "ok");
        let prost = Schedule::Prost { growth };
        let random = Schedule::Random { growth, seed, resample };
        for i in 0..data.len() {
            for epoch in 0..=12 {
                prop_assert_eq!(
                    data.supervised(&random, epoch, i).len(),
                    data.supervised(&prost, epoch, i).len()
                );
            }
            // Deterministic for the seed.
            prop_assert_eq!(data.supervised(&random, 2, i), data.supervised(&random, 2, i));
        }
    }

    #[test]
    fn samples_fit_the_context_and_supervise_whole_turns(
        specs in prop::collection::vec(spec(), 1..4),
        curriculum in curriculum(),
        max in 60usize..400,
        split in any::<bool>(),
        epoch in 1usize..6,
    ) {
        let data = dataset(&specs, "Execution successful.");
        let options = SampleOptions {
            max_tokens: Some(max),
            overflow: if split { Overflow::Split } else { Overflow::Drop },
        };
        for role in [Role::Single, Role::Orchestrator, Role::Executor, Role::Critic] {
            let unlimited = epoch_samples(&data, &curriculum, epoch, role, &ByteRenderer, &SampleOptions::default()).unwrap();
            let limited = epoch_samples(&data, &curriculum, epoch, role, &ByteRenderer, &options).unwrap();
            let fit = limited.stats.roles[&role].fit;
            for sample in &limited.samples {
                prop_assert!(sample.len() <= max);
                prop_assert_eq!(sample.ids.len(), sample.loss_mask.len());
                let episode = &data.trajectories[sample.trajectory].episode;
                let want: Vec<String> = sample.supervised_turns.iter()
                    .map(|&t| format!("{}<|im_end|>", episode.turns[t].completion().unwrap().content))
                    .collect();
                prop_assert_eq!(runs(sample), want);
                // The head (system prompt and task) is always there.
                let text = ByteRenderer::decode(&sample.ids);
                prop_assert!(text.starts_with("<|im_start|>system\n"));
            }
            // Every supervised turn survives, unless reported.
            let all: BTreeSet<(usize, usize)> = unlimited.samples.iter()
                .flat_map(|s| s.supervised_turns.iter().map(move |&t| (s.trajectory, t)))
                .collect();
            let kept: Vec<(usize, usize)> = limited.samples.iter()
                .flat_map(|s| s.supervised_turns.iter().map(move |&t| (s.trajectory, t)))
                .collect();
            let kept_set: BTreeSet<(usize, usize)> = kept.iter().copied().collect();
            prop_assert_eq!(kept.len(), kept_set.len(), "no turn is supervised twice");
            prop_assert!(kept_set.is_subset(&all));
            if split {
                prop_assert_eq!(kept_set.len() + fit.lost_turns, all.len());
            } else {
                let dropped_convs = unlimited.samples.len() - limited.samples.len();
                prop_assert_eq!(dropped_convs, fit.dropped);
            }
            // Supervised tokens are exactly those of the unlimited samples' turns.
            let per_turn = |samples: &[Sample]| samples.iter().map(Sample::supervised_tokens).sum::<usize>();
            if fit.dropped == 0 && fit.lost_turns == 0 {
                prop_assert_eq!(per_turn(&limited.samples), per_turn(&unlimited.samples));
            }
        }
    }

    #[test]
    fn masked_out_text_never_changes_supervised_tokens(
        specs in prop::collection::vec(spec(), 1..4),
        curriculum in curriculum(),
        a in ".{0,40}",
        b in ".{0,40}",
        epoch in 1usize..6,
    ) {
        let (da, db) = (dataset(&specs, &a), dataset(&specs, &b));
        for role in [Role::Single, Role::Orchestrator, Role::Executor, Role::Critic] {
            let sa = epoch_samples(&da, &curriculum, epoch, role, &ByteRenderer, &SampleOptions::default()).unwrap().samples;
            let sb = epoch_samples(&db, &curriculum, epoch, role, &ByteRenderer, &SampleOptions::default()).unwrap().samples;
            prop_assert_eq!(sa.len(), sb.len());
            for (x, y) in sa.iter().zip(&sb) {
                let sup = |s: &Sample| s.ids.iter().zip(&s.loss_mask).filter(|(_, m)| **m == 1).map(|(i, _)| *i).collect::<Vec<_>>();
                prop_assert_eq!(sup(x), sup(y));
                prop_assert_eq!(&x.supervised_turns, &y.supervised_turns);
            }
        }
    }

    #[test]
    fn batching_pads_and_packing_keeps_samples_apart(
        lengths in prop::collection::vec(1usize..50, 0..40),
        batch_size in 1usize..6,
        pack in prop::option::of(50usize..120),
        sort in any::<bool>(),
        shuffle in any::<bool>(),
        seed in any::<u64>(),
        epoch in 1usize..4,
    ) {
        let samples: Vec<Sample> = lengths.iter().enumerate().map(|(i, &len)| Sample {
            trajectory: i,
            conversation: 0,
            part: 0,
            role: Role::Executor,
            ids: (0..len).map(|j| 10 + (i * 100 + j) as u32).collect(),
            loss_mask: (0..len).map(|j| u8::from(j % 3 == 1)).collect(),
            literal_mask: (0..len).map(|j| u8::from(j % 6 == 1)).collect(),
            position_ids: (0..len as u32).collect(),
            supervised_turns: vec![],
            subtasks: vec![],
            dropped_turns: 0,
        }).collect();
        let options = BatchOptions { batch_size, pack_length: pack, sort_by_length: sort, shuffle, seed, pad_id: 3 };
        let out = batches(&samples, &options, epoch).unwrap();
        prop_assert_eq!(&out, &batches(&samples, &options, epoch).unwrap());
        let mut seen = vec![0; samples.len()];
        for batch in &out {
            prop_assert!(batch.rows >= 1 && batch.rows <= batch_size);
            prop_assert_eq!(batch.seq_len, batch.lengths.iter().copied().max().unwrap());
            for size in [batch.input_ids.len(), batch.loss_mask.len(), batch.position_ids.len(), batch.segment_ids.len()] {
                prop_assert_eq!(size, batch.rows * batch.seq_len);
            }
            for (r, row) in batch.samples.iter().enumerate() {
                if pack.is_none() {
                    prop_assert_eq!(row.len(), 1);
                }
                if let Some(p) = pack {
                    prop_assert!(batch.lengths[r] <= p);
                }
                let base = r * batch.seq_len;
                let mut at = 0;
                for (s, &i) in row.iter().enumerate() {
                    seen[i] += 1;
                    let sample = &samples[i];
                    let range = base + at..base + at + sample.len();
                    prop_assert_eq!(&batch.input_ids[range.clone()], &sample.ids[..]);
                    prop_assert_eq!(&batch.loss_mask[range.clone()], &sample.loss_mask[..]);
                    prop_assert_eq!(&batch.position_ids[range.clone()], &sample.position_ids[..]);
                    prop_assert!(batch.segment_ids[range].iter().all(|&g| g == s as u32 + 1));
                    at += sample.len();
                }
                prop_assert_eq!(at, batch.lengths[r]);
                for j in at..batch.seq_len {
                    prop_assert_eq!(batch.input_ids[base + j], 3);
                    prop_assert_eq!(batch.loss_mask[base + j], 0);
                    prop_assert_eq!(batch.segment_ids[base + j], 0);
                    prop_assert_eq!(batch.position_ids[base + j], 0);
                }
                // Attention: causal, within a sample, never across samples or to padding.
                for q in 0..batch.seq_len {
                    for k in 0..batch.seq_len {
                        let same = batch.segment_ids[base + q] != 0
                            && batch.segment_ids[base + q] == batch.segment_ids[base + k];
                        prop_assert_eq!(batch.attends(r, q, k), same && k <= q);
                    }
                }
            }
        }
        prop_assert!(seen.iter().all(|&n| n == 1), "every sample exactly once");
    }
}
