//! Parity of the engine with `generate`: every answer must equal the one-prompt `generate` call
//! bit for bit, however the requests overlap in the batch.

use std::sync::Arc;

use burn::tensor::Device;

use super::*;
use crate::config::ModelConfig;
use crate::generate::{FinishReason, Sampling, generate};
use crate::lora::{LoraAdapter, LoraConfig, LoraInit};

/// An untrained tiny model, its lazy parameters materialised (so the engine thread and the
/// test see the same weights). Untrained logits are nearly tied: the strictest test of
/// bit-identical arithmetic, since any last-bit difference flips some greedy choice.
fn model() -> CausalLm {
    let config = ModelConfig::preset("tiny").unwrap();
    let model = CausalLm::new(&config, &Device::flex()).unwrap();
    let options = GenerateOptions {
        max_new_tokens: 1,
        ..GenerateOptions::default()
    };
    generate(&model, &[vec![1]], &options, None).unwrap();
    model
}

/// A deterministic prompt of `len` ids.
fn prompt(len: usize, salt: u32) -> Vec<u32> {
    (0..len as u32)
        .map(|i| i.wrapping_mul(2_654_435_761).wrapping_add(salt * 97) % 4000 + 3)
        .collect()
}

fn options(max_new_tokens: usize, sampling: Sampling) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        sampling,
        ..GenerateOptions::default()
    }
}

/// Reference answers, one `generate` call per prompt.
fn reference(model: &CausalLm, jobs: &[(Vec<u32>, GenerateOptions)]) -> Vec<Generation> {
    jobs.iter()
        .map(|(p, o)| generate(model, std::slice::from_ref(p), o, None).unwrap())
        .collect()
}

/// Prompts of very different lengths (one longer than an attention chunk), different caps, and
/// requests that join while others are being decoded.
fn staggered(sampling: impl Fn(u64) -> Sampling) -> Vec<(Vec<u32>, GenerateOptions)> {
    [
        (9, 40),
        (1, 3),
        (70, 25),
        (23, 1),
        (5, 33),
        (41, 12),
        (2, 18),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(len, new))| (prompt(len, i as u32), options(new, sampling(i as u64))))
    .collect()
}

/// Submit the first jobs at once, then each further job after one earlier answer arrived, so
/// that sequences join a running batch and leave it at different steps.
fn run_staggered(engine: &Engine, jobs: &[(Vec<u32>, GenerateOptions)]) -> Vec<Generation> {
    let mut pending: Vec<Option<Pending>> = Vec::new();
    let mut answers: Vec<Option<Generation>> = vec![None; jobs.len()];
    for (i, (p, o)) in jobs.iter().enumerate() {
        if i >= 3 {
            // Wait for the shortest pending request, then join.
            let j = (0..pending.len())
                .filter(|&j| pending[j].is_some())
                .min_by_key(|&j| jobs[j].1.max_new_tokens)
                .unwrap();
            answers[j] = Some(pending[j].take().unwrap().wait().unwrap());
        }
        pending.push(Some(engine.submit(p.clone(), o.clone(), None).unwrap()));
    }
    for (j, p) in pending.into_iter().enumerate() {
        if let Some(p) = p {
            answers[j] = Some(p.wait().unwrap());
        }
    }
    answers.into_iter().map(Option::unwrap).collect()
}

#[test]
fn greedy_answers_equal_generate() {
    let model = model();
    let jobs = staggered(|_| Sampling::Greedy);
    let want = reference(&model, &jobs);
    let engine = Engine::start(model, EngineOptions::default()).unwrap();
    let got = run_staggered(&engine, &jobs);
    assert_eq!(got, want);
    let stats = engine.stats();
    assert_eq!(stats.requests, jobs.len() as u64);
    assert!(stats.max_batch >= 2, "{stats:?}");
    // Prefill chooses the first token, each decode step one more per row.
    let decoded: usize = want.iter().map(|g| g.generated_tokens - 1).sum();
    assert_eq!(stats.decoded_rows, decoded as u64);
    assert!(stats.decode_steps < stats.decoded_rows, "{stats:?}");
}

#[test]
fn seeded_sampling_answers_equal_generate() {
    let model = model();
    let jobs = staggered(|i| Sampling::Sample {
        temperature: 0.8,
        top_p: 0.9,
        seed: 1000 + i,
    });
    let want = reference(&model, &jobs);
    // Different seeds do sample different text (the test would be vacuous otherwise).
    assert_ne!(want[0].sequences[0].ids, want[4].sequences[0].ids);
    let engine = Engine::start(model, EngineOptions::default()).unwrap();
    assert_eq!(run_staggered(&engine, &jobs), want);
}

#[test]
fn many_threads_and_a_small_batch_limit_give_the_same_answers() {
    let model = model();
    let jobs: Vec<(Vec<u32>, GenerateOptions)> = (0..10)
        .map(|i| {
            (
                prompt(3 + 7 * i, i as u32),
                options(4 + 3 * i, Sampling::Greedy),
            )
        })
        .collect();
    let want = reference(&model, &jobs);
    let engine = Arc::new(
        Engine::start(
            model,
            EngineOptions {
                max_batch: 3,
                ..EngineOptions::default()
            },
        )
        .unwrap(),
    );
    let got: Vec<Generation> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(p, o)| {
                let engine = Arc::clone(&engine);
                scope.spawn(move || engine.generate(p.clone(), o, None).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got, want);
    assert!(engine.stats().max_batch <= 3);
}

#[test]
fn stop_tokens_and_stop_strings_end_sequences_as_generate_does() {
    let model = model();
    let free = generate(
        &model,
        &[prompt(12, 5)],
        &options(20, Sampling::Greedy),
        None,
    )
    .unwrap();
    let ids = &free.sequences[0].ids;
    // Stop at the token produced fifth; render ids as text to stop on the seventh.
    let stop_token = GenerateOptions {
        stop_token_ids: vec![ids[4]],
        ..options(20, Sampling::Greedy)
    };
    let detok: SharedDetokenize =
        Arc::new(|ids: &[u32]| ids.iter().map(|i| format!("<{i}>")).collect::<String>());
    let stop_string = GenerateOptions {
        stop_strings: vec![format!("<{}>", ids[6])],
        ..options(20, Sampling::Greedy)
    };
    let engine = Engine::start(model.clone(), EngineOptions::default()).unwrap();
    let a = engine
        .submit(prompt(12, 5), stop_token.clone(), None)
        .unwrap();
    let b = engine
        .submit(prompt(12, 5), stop_string.clone(), Some(Arc::clone(&detok)))
        .unwrap();
    let (a, b) = (a.wait().unwrap(), b.wait().unwrap());
    let want_a = generate(&model, &[prompt(12, 5)], &stop_token, None).unwrap();
    let want_b = generate(&model, &[prompt(12, 5)], &stop_string, Some(&*detok)).unwrap();
    assert_eq!(a, want_a);
    assert_eq!(b, want_b);
    assert!(matches!(
        a.sequences[0].finish_reason,
        FinishReason::StopToken(_)
    ));
    assert!(matches!(
        b.sequences[0].finish_reason,
        FinishReason::StopString(_)
    ));
}

#[test]
fn an_adapted_model_answers_as_generate_does() {
    let base = model();
    let config = ModelConfig::preset("tiny").unwrap();
    let adapter = LoraAdapter::new(
        "role",
        LoraConfig::default(),
        &config,
        LoraInit::RandomB { bound: 0.05 },
        7,
        &Device::flex(),
    )
    .unwrap();
    let model = base.with_adapter(adapter).unwrap();
    let jobs = staggered(|_| Sampling::Greedy);
    let want = reference(&model, &jobs);
    let engine = Engine::start(model, EngineOptions::default()).unwrap();
    assert_eq!(run_staggered(&engine, &jobs), want);
}

#[test]
fn bad_requests_get_the_errors_of_generate_and_the_engine_goes_on() {
    let engine = Engine::start(model(), EngineOptions::default()).unwrap();
    let empty = engine.generate(Vec::new(), &options(3, Sampling::Greedy), None);
    assert!(
        matches!(empty, Err(ModelError::InvalidInput(_))),
        "{empty:?}"
    );
    let outside = engine.generate(vec![5, 99_999], &options(3, Sampling::Greedy), None);
    assert!(
        matches!(outside, Err(ModelError::InvalidInput(_))),
        "{outside:?}"
    );
    let stop_strings = GenerateOptions {
        stop_strings: vec!["x".into()],
        ..options(3, Sampling::Greedy)
    };
    let no_detok = engine.generate(vec![5], &stop_strings, None);
    assert!(matches!(no_detok, Err(ModelError::InvalidInput(_))));
    let ok = engine
        .generate(vec![5, 6], &options(3, Sampling::Greedy), None)
        .unwrap();
    assert_eq!(ok.generated_tokens, 3);
    assert!(
        Engine::start(
            model(),
            EngineOptions {
                max_batch: 0,
                ..EngineOptions::default()
            }
        )
        .is_err()
    );
}

/// The decode step's logits are bit-identical to a batch-of-one decode (what `generate` runs
/// per call), for rows of different lengths decoded together — stronger than comparing chosen
/// tokens, which a last-bit difference rarely flips.
#[test]
fn decode_step_logits_are_bit_identical_to_one_row_decodes() {
    use super::slots::SlotCache;
    use crate::cache::KvCache;
    use crate::generate::last_logits;
    use crate::input::AttentionMask;

    let model = model();
    let layers = model.config().num_hidden_layers;
    // Either side of the score kernel's switch (rep · keys = 256: 128 keys for tiny) and of the
    // 512-key blocks of the weighted sum, with rows crossing them during the steps.
    let lengths = [3usize, 17, 70, 1, 64, 126, 127, 150, 300, 509, 700];
    let mut references: Vec<KvCache> = Vec::new();
    let mut sequences: Vec<Sequence> = Vec::new();
    let mut slots = SlotCache::new(model.config(), lengths.len(), &model.device());
    let mut answers = Vec::new();
    for (i, &len) in lengths.iter().enumerate() {
        let ids: Vec<i64> = prompt(len, i as u32)
            .iter()
            .map(|&t| i64::from(t))
            .collect();
        let mut cache = KvCache::new(layers);
        let mask = AttentionMask::left_padded(&[len], len).unwrap();
        let logits = last_logits(&model, ids, [1, len], mask, &mut cache).unwrap();
        let (reply, answer) = mpsc::channel();
        answers.push(answer);
        let mut sequence = Sequence::new(len, options(100, Sampling::Greedy), None, reply);
        sequence.cached = cache.len();
        sequence.next_position = cache.next_positions()[0];
        assert_eq!(slots.insert(&cache.layers).unwrap(), i);
        sequence.accept(&logits);
        references.push(cache);
        sequences.push(sequence);
    }
    let vocab = model.config().vocab_size;
    for step in 0..6 {
        if step == 3 {
            // Rows leave (the last slot moves into a freed one) and the rest go on.
            for slot in [5, 0] {
                slots.remove(slot);
                sequences.swap_remove(slot);
                references.swap_remove(slot);
            }
        }
        let batched = step::decode_step(&model, &mut sequences, &mut slots).unwrap();
        for (row, sequence) in sequences.iter_mut().enumerate() {
            let token = i64::from(sequence.last_token());
            let mask = AttentionMask::new(1, 1, vec![true]).unwrap();
            let alone =
                last_logits(&model, vec![token], [1, 1], mask, &mut references[row]).unwrap();
            let got = &batched[row * vocab..(row + 1) * vocab];
            let differ = got
                .iter()
                .zip(&alone)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differ,
                0,
                "step {step}, row {row} ({} keys): {differ} logits differ",
                references[row].len()
            );
            sequence.accept(got);
        }
    }
}

/// Prompts that begin alike (a shared "system prompt" of 200 tokens, then conversations that
/// grow turn by turn) prefill only their tails from the prefix cache, and still answer exactly
/// as `generate` does.
#[test]
fn prefix_reuse_answers_equal_generate() {
    let model = model();
    let system = prompt(200, 1);
    let with = |tail: &[u32]| [system.as_slice(), tail].concat();
    let first = with(&prompt(30, 2));
    let second = with(&prompt(45, 3));
    // A later turn of the first conversation: its prompt, an answer, a new message.
    let later = [first.as_slice(), &prompt(20, 4), &prompt(90, 5)].concat();
    let exact = first.clone();
    let on_boundary = with(&prompt(56, 6)); // 256 tokens: the prefix cut leaves one chunk
    let jobs: Vec<(Vec<u32>, GenerateOptions)> = [first, second, later, exact, on_boundary]
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, options(6 + i, Sampling::Greedy)))
        .collect();
    let want = reference(&model, &jobs);
    let engine = Engine::start(model, EngineOptions::default()).unwrap();
    // One at a time, so each prompt finds the earlier ones cached.
    let got: Vec<Generation> = jobs
        .iter()
        .map(|(p, o)| engine.generate(p.clone(), o, None).unwrap())
        .collect();
    assert_eq!(got, want);
    let stats = engine.stats();
    // Every prompt after the first shares at least 200 tokens with an earlier one, of which
    // the first 192 (three attention chunks) are reused.
    assert!(stats.reused_tokens >= 4 * 192, "{stats:?}");
    let total: usize = jobs.iter().map(|(p, _)| p.len()).sum();
    assert_eq!(
        (stats.prefilled_tokens + stats.reused_tokens) as usize,
        total
    );
}

/// Reuse is bit-identical at the level of logits too: a prefill from a cached prefix gives the
/// last position's logits of a whole-prompt prefill, bit for bit, for tails shorter and longer
/// than an attention chunk and of one token.
#[test]
fn prefill_from_a_cached_prefix_is_bit_identical() {
    use super::prefix::PrefixCache;
    use crate::cache::KvCache;
    use crate::generate::last_logits;
    use crate::input::AttentionMask;

    let model = model();
    let layers = model.config().num_hidden_layers;
    let prefill = |ids: &[u32], cache: &mut KvCache| {
        let n = ids.len();
        let ids: Vec<i64> = ids.iter().map(|&t| i64::from(t)).collect();
        let mask = AttentionMask::left_padded(&[n], n).unwrap();
        last_logits(&model, ids, [1, n], mask, cache).unwrap()
    };
    let base = prompt(300, 9);
    let mut prefixes = PrefixCache::new(4);
    let mut cache = KvCache::new(layers);
    prefill(&base, &mut cache);
    prefixes.store(&base, &cache);
    for tail in [1usize, 5, 64, 65, 150] {
        let full = [&base[..256], &prompt(tail, 10 + tail as u32)].concat();
        let whole = prefill(&full, &mut KvCache::new(layers));
        let (reused, mut cache) = prefixes.lookup(&full).unwrap();
        assert_eq!(reused, 256);
        let from_prefix = prefill(&full[reused..], &mut cache);
        let differ = whole
            .iter()
            .zip(&from_prefix)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differ, 0, "tail {tail}: {differ} logits differ");
    }
}
