//! Model behaviour beyond reference parity: presets, padding and positions, the KV cache,
//! generation, LoRA training state, checkpoints and error reporting.

mod common;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use common::*;
use rung_model::generate::{FinishReason, GenerateOptions, Sampling, argmax, generate};
use rung_model::lora::{LoraAdapter, LoraConfig, LoraInit, LoraTarget};
use rung_model::{
    AttentionMask, CausalLm, ForwardOptions, KvCache, ModelConfig, ModelError, ModelSource,
    PRESET_NAMES, load_checkpoint, load_hf_model, save_checkpoint, save_hf_model,
};

fn device() -> Device {
    rung_model::inference_device()
}

fn qwen2() -> CausalLm {
    load_hf_model(&ModelSource::Dir(fixtures().join("qwen2")), &device()).unwrap()
}

fn llama() -> CausalLm {
    load_hf_model(&ModelSource::Dir(fixtures().join("llama")), &device()).unwrap()
}

#[test]
fn preset_parameter_counts_agree_with_modules() {
    let documented = [1_115_008, 4_983_552, 9_441_408, 25_698_816, 47_197_440];
    for (name, want) in PRESET_NAMES.iter().zip(documented) {
        let config = ModelConfig::preset(name).unwrap();
        // Lazily initialised: counting does not allocate the weights.
        let model = CausalLm::new(&config, &device()).unwrap();
        assert_eq!(config.num_params(), want, "{name} formula");
        assert_eq!(model.num_params(), want, "{name} module");
    }
    // Untied heads and biases are counted too.
    let model = llama();
    assert_eq!(model.num_params(), model.config().num_params());
    let model = qwen2();
    assert_eq!(model.num_params(), model.config().num_params());
}

/// Rows of `[pos][vocab]` logits for a padded batch.
fn batch_logits(model: &CausalLm, rows: &[Vec<u32>], mask: AttentionMask) -> Vec<Vec<Vec<f32>>> {
    let logits = model
        .forward_with(
            ids_tensor(rows, &model.device()),
            &ForwardOptions {
                attention_mask: Some(mask),
                ..ForwardOptions::default()
            },
            None,
        )
        .unwrap();
    let [b, t, v] = logits.dims();
    let flat: Vec<f32> = logits.try_into_vec_as::<f32>().unwrap();
    (0..b)
        .map(|r| {
            (0..t)
                .map(|i| flat[(r * t + i) * v..(r * t + i + 1) * v].to_vec())
                .collect()
        })
        .collect()
}

#[test]
fn left_and_right_padding_do_not_change_real_positions() {
    let model = qwen2();
    let seqs = sequences(&reference());
    let width = seqs.iter().map(Vec::len).max().unwrap();
    let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
    let left: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| [vec![0; width - s.len()], s.clone()].concat())
        .collect();
    let right: Vec<Vec<u32>> = seqs
        .iter()
        .map(|s| [s.clone(), vec![0; width - s.len()]].concat())
        .collect();
    let left_logits = batch_logits(
        &model,
        &left,
        AttentionMask::left_padded(&lengths, width).unwrap(),
    );
    let right_logits = batch_logits(
        &model,
        &right,
        AttentionMask::right_padded(&lengths, width).unwrap(),
    );
    let mut worst = 0.0f32;
    for (i, seq) in seqs.iter().enumerate() {
        let alone = logits_of(&model, seq);
        let pad = width - seq.len();
        worst = worst.max(max_abs_diff(&alone, &left_logits[i][pad..]));
        worst = worst.max(max_abs_diff(&alone, &right_logits[i][..seq.len()]));
    }
    println!("padded batch vs single sequences: {worst:e}");
    assert!(worst <= 1e-4, "{worst}");
}

#[test]
fn explicit_positions_equal_default_positions_and_shift_changes_output() {
    let model = llama();
    let seq = vec![3u32, 1, 4, 1, 5, 9, 2, 6];
    let ids = ids_tensor(std::slice::from_ref(&seq), &model.device());
    let explicit = ForwardOptions {
        attention_mask: None,
        position_ids: Some((0..8).collect()),
        ..ForwardOptions::default()
    };
    let a: Vec<f32> = model
        .forward_with(ids.clone(), &explicit, None)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    let b: Vec<f32> = model.forward(ids.clone()).try_into_vec_as::<f32>().unwrap();
    assert_eq!(a, b);
    let shifted = ForwardOptions {
        attention_mask: None,
        position_ids: Some((10..18).collect()),
        ..ForwardOptions::default()
    };
    let c: Vec<f32> = model
        .forward_with(ids, &shifted, None)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    // Relative positions are unchanged, so RoPE gives (nearly) the same result...
    let rel = a
        .iter()
        .zip(&c)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(rel < 1e-3, "{rel}");
    // ...while a wrong length of position ids is an error.
    let bad = ForwardOptions {
        attention_mask: None,
        position_ids: Some(vec![0, 1]),
        ..ForwardOptions::default()
    };
    let ids = ids_tensor(&[seq], &model.device());
    assert!(matches!(
        model.forward_with(ids, &bad, None),
        Err(ModelError::InvalidInput(_))
    ));
}

#[test]
fn packed_samples_with_segments_equal_separate_samples() {
    let model = qwen2();
    let a = vec![5u32, 17, 200, 3];
    let b = vec![1u32, 2, 3, 4, 5, 6];
    let packed = [a.clone(), b.clone()].concat();
    let options = ForwardOptions {
        position_ids: Some((0..4).chain(0..6).collect()),
        segment_ids: Some([vec![0; 4], vec![1; 6]].concat()),
        ..ForwardOptions::default()
    };
    let logits = model
        .forward_with(ids_tensor(&[packed], &model.device()), &options, None)
        .unwrap();
    let v = logits.dims()[2];
    let flat: Vec<f32> = logits.try_into_vec_as::<f32>().unwrap();
    let rows: Vec<Vec<f32>> = flat.chunks(v).map(<[f32]>::to_vec).collect();
    let err = max_abs_diff(&logits_of(&model, &a), &rows[..4])
        .max(max_abs_diff(&logits_of(&model, &b), &rows[4..]));
    println!("packed vs separate: {err:e}");
    assert!(err <= 1e-4, "{err}");
    // Segments cannot continue a cache.
    let mut cache = KvCache::new(model.config().num_hidden_layers);
    let plain = ForwardOptions::default();
    model
        .forward_with(
            ids_tensor(std::slice::from_ref(&a), &model.device()),
            &plain,
            Some(&mut cache),
        )
        .unwrap();
    let seg = ForwardOptions {
        segment_ids: Some(vec![0; 4]),
        ..ForwardOptions::default()
    };
    let err = model
        .forward_with(ids_tensor(&[a], &model.device()), &seg, Some(&mut cache))
        .unwrap_err();
    assert!(err.to_string().contains("segment"), "{err}");
}

/// Greedy decoding by recomputing the whole sequence at every step.
fn greedy_full_recompute(model: &CausalLm, prompt: &[u32], steps: usize) -> Vec<u32> {
    let mut seq = prompt.to_vec();
    let mut out = Vec::new();
    for _ in 0..steps {
        let logits = logits_of(model, &seq);
        let next = argmax(logits.last().unwrap());
        out.push(next);
        seq.push(next);
    }
    out
}

#[test]
fn kv_cached_greedy_equals_full_recompute_for_64_tokens() {
    for model in [qwen2(), llama()] {
        let prompts = vec![vec![5u32, 17, 200, 3], vec![1, 2, 3, 4, 5, 6, 7, 8, 9]];
        let options = GenerateOptions {
            max_new_tokens: 64,
            ..GenerateOptions::default()
        };
        // Batched (so the shorter prompt is left-padded) and one at a time.
        let batched = generate(&model, &prompts, &options, None).unwrap();
        for (row, prompt) in prompts.iter().enumerate() {
            let want = greedy_full_recompute(&model, prompt, 64);
            assert_eq!(batched.sequences[row].ids, want, "batched row {row}");
            let alone = generate(&model, std::slice::from_ref(prompt), &options, None).unwrap();
            assert_eq!(alone.sequences[0].ids, want, "single row {row}");
            assert_eq!(alone.sequences[0].finish_reason, FinishReason::Length);
        }
        assert_eq!(batched.generated_tokens, 128);
        assert_eq!(batched.prompt_tokens, 13);
    }
}

#[test]
fn cache_continues_positions_like_a_full_forward() {
    let model = qwen2();
    let seq = [9u32, 8, 7, 6, 5, 4, 3];
    let full = logits_of(&model, &seq);
    let mut cache = KvCache::new(model.config().num_hidden_layers);
    let options = ForwardOptions::default();
    let mut stepped = Vec::new();
    for chunk in [&seq[..3], &seq[3..4], &seq[4..]] {
        let logits = model
            .forward_with(
                ids_tensor(&[chunk.to_vec()], &model.device()),
                &options,
                Some(&mut cache),
            )
            .unwrap();
        let [_, t, v] = logits.dims();
        let flat: Vec<f32> = logits.try_into_vec_as::<f32>().unwrap();
        stepped.extend((0..t).map(|i| flat[i * v..(i + 1) * v].to_vec()));
    }
    assert_eq!(cache.len(), 7);
    assert_eq!(cache.next_positions(), [7]);
    let err = max_abs_diff(&full, &stepped);
    assert!(err <= 1e-4, "{err}");
}

/// Blocks longer than `ATTENTION_CHUNK` are attended in chunks of queries; the logits must not
/// change: a 300-token forward (3 chunks) against a 44-token cached prefix plus 256 tokens in one
/// block (2 chunks over a non-empty cache) and against token-by-token decoding (never chunked).
#[test]
fn long_blocks_attend_in_chunks_like_token_by_token_decoding() {
    use rung_model::attention::ATTENTION_CHUNK;
    let model = qwen2();
    let seq: Vec<u32> = (0..300u32).map(|i| (i * 37 + 11) % 256).collect();
    assert!(seq.len() > 2 * ATTENTION_CHUNK);
    let full = logits_of(&model, &seq);
    let run = |blocks: &[&[u32]]| -> Vec<Vec<f32>> {
        let mut cache = KvCache::new(model.config().num_hidden_layers);
        let mut out = Vec::new();
        for block in blocks {
            let logits = model
                .forward_with(
                    ids_tensor(&[block.to_vec()], &model.device()),
                    &ForwardOptions::default(),
                    Some(&mut cache),
                )
                .unwrap();
            let [_, t, v] = logits.dims();
            let flat: Vec<f32> = logits.try_into_vec_as::<f32>().unwrap();
            out.extend((0..t).map(|i| flat[i * v..(i + 1) * v].to_vec()));
        }
        out
    };
    let two_blocks = run(&[&seq[..44], &seq[44..]]);
    let one_by_one: Vec<&[u32]> = seq.chunks(1).collect();
    let stepped = run(&one_by_one);
    let err = max_abs_diff(&full, &stepped);
    assert!(err <= 1e-4, "full vs token by token: {err}");
    let err = max_abs_diff(&two_blocks, &stepped);
    assert!(
        err <= 1e-4,
        "cached prefix + long block vs token by token: {err}"
    );
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let model = qwen2();
    let prompts = vec![vec![1u32, 2, 3], vec![4u32, 5]];
    let sample = |seed| GenerateOptions {
        max_new_tokens: 24,
        sampling: Sampling::Sample {
            temperature: 1.0,
            top_p: 0.9,
            seed,
        },
        ..GenerateOptions::default()
    };
    let a = generate(&model, &prompts, &sample(11), None).unwrap();
    let b = generate(&model, &prompts, &sample(11), None).unwrap();
    let c = generate(&model, &prompts, &sample(12), None).unwrap();
    assert_eq!(a.sequences, b.sequences);
    assert_ne!(a.sequences, c.sequences);
    // A row's stream depends on its index and seed, not on the other rows.
    let alone = generate(&model, &prompts[..1], &sample(11), None).unwrap();
    assert_eq!(alone.sequences[0].ids, a.sequences[0].ids);
    // Invalid sampling parameters are refused.
    let mut bad = sample(1);
    bad.sampling = Sampling::Sample {
        temperature: 0.0,
        top_p: 0.9,
        seed: 1,
    };
    assert!(generate(&model, &prompts, &bad, None).is_err());
}

#[test]
fn stop_tokens_and_stop_strings_end_rows() {
    let model = qwen2();
    let prompt = vec![vec![1u32, 2, 3, 4]];
    let free = generate(
        &model,
        &prompt,
        &GenerateOptions {
            max_new_tokens: 12,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let ids = free.sequences[0].ids.clone();
    // Stop on the 5th generated token (pick one that did not occur earlier).
    let k = (4..12).find(|&k| !ids[..k].contains(&ids[k])).unwrap();
    let options = GenerateOptions {
        max_new_tokens: 12,
        stop_token_ids: vec![ids[k]],
        ..Default::default()
    };
    let stopped = generate(&model, &prompt, &options, None).unwrap();
    let s = &stopped.sequences[0];
    assert_eq!(s.ids, ids[..k]);
    assert_eq!(s.generated_tokens, k + 1);
    assert_eq!(s.finish_reason, FinishReason::StopToken(ids[k]));

    let detok = |ids: &[u32]| ids.iter().map(|i| format!("<{i}>")).collect::<String>();
    let stop = format!("<{}><{}>", ids[2], ids[3]);
    let options = GenerateOptions {
        max_new_tokens: 12,
        stop_strings: vec![stop.clone()],
        ..Default::default()
    };
    let stopped = generate(&model, &prompt, &options, Some(&detok)).unwrap();
    let s = &stopped.sequences[0];
    let first = detok(&ids).find(&stop).unwrap();
    assert_eq!(s.text.as_deref(), Some(&detok(&ids)[..first]));
    assert_eq!(s.finish_reason, FinishReason::StopString(stop));
    assert!(s.ids.len() <= 4 && ids.starts_with(&s.ids));
    // Stop strings without a detokenizer are refused.
    assert!(generate(&model, &prompt, &options, None).is_err());
}

#[test]
fn flops_follow_the_documented_formula() {
    let model = llama();
    let c = model.config().clone();
    let prompts = vec![vec![1u32, 2, 3, 4], vec![7u32, 8]];
    let options = GenerateOptions {
        max_new_tokens: 3,
        ..Default::default()
    };
    let g = generate(&model, &prompts, &options, None).unwrap();
    let head = (c.vocab_size * c.hidden_size) as u64;
    let per_token = 2 * (c.matmul_params() as u64 - head);
    let per_key = 4 * (c.num_hidden_layers * c.q_dim()) as u64;
    // Prefill 2 rows × 4 slots against 4 keys, then two decode steps against 5 and 6 keys; one
    // logits row per row per pass.
    let want = 8 * (per_token + per_key * 4)
        + 2 * (per_token + per_key * 5)
        + 2 * (per_token + per_key * 6)
        + 3 * 2 * 2 * head;
    assert_eq!(g.flops, want);
    // Roughly 2·N per token.
    let n = c.num_params() as u64;
    assert!(
        g.flops > 2 * n * 12 / 2 && g.flops < 2 * n * 12 * 2,
        "{} vs {}",
        g.flops,
        2 * n * 12
    );
}

#[test]
fn lora_training_updates_only_adapter_parameters() {
    let device = rung_model::autodiff_device();
    let config = ModelConfig::preset("tiny").unwrap();
    let adapter_config = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        use_rslora: false,
        target_modules: vec![LoraTarget::Q, LoraTarget::V, LoraTarget::Down],
    };
    let adapter = LoraAdapter::new(
        "role",
        adapter_config,
        &config,
        LoraInit::Standard,
        3,
        &device,
    )
    .unwrap();
    let n_adapter_tensors = 3 * 3 * 2;
    let model = CausalLm::new(&config, &device)
        .unwrap()
        .with_adapter(adapter)
        .unwrap()
        .freeze_base();
    let before = model.clone();

    let ids: Vec<i64> = (0..32).map(|i| (i * 37 % 4096) as i64).collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [2, 16]), &device);
    let logits = model.forward(ids);
    let loss = logits.powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    assert_eq!(
        grads.len(),
        n_adapter_tensors,
        "only adapter parameters get gradients"
    );
    let mut optim = AdamWConfig::new().init();
    let after = optim.step(1e-2, model, grads);
    // AdamW keeps two moments per adapter tensor and nothing for the base.
    assert_eq!(optim.to_record().len(), 2 * n_adapter_tensors);

    let same = |a: Tensor<2>, b: Tensor<2>| {
        let d: f32 = (a - b).abs().max().into_scalar();
        d
    };
    for (x, y) in before.layers.iter().zip(&after.layers) {
        assert_eq!(
            same(
                x.self_attn.q_proj.weight.val(),
                y.self_attn.q_proj.weight.val()
            ),
            0.0
        );
        assert_eq!(
            same(x.mlp.up_proj.weight.val(), y.mlp.up_proj.weight.val()),
            0.0
        );
    }
    let emb: f32 = (before.embed_tokens.weight.val() - after.embed_tokens.weight.val())
        .abs()
        .max()
        .into_scalar();
    assert_eq!(emb, 0.0);
    let (b0, a0) = (before.adapter().unwrap(), after.adapter().unwrap());
    for (x, y) in b0.layers.iter().zip(&a0.layers) {
        for target in [LoraTarget::Q, LoraTarget::V, LoraTarget::Down] {
            let (x, y) = (x.branch(target).unwrap(), y.branch(target).unwrap());
            // B starts at zero, so the first step moves it by about the learning rate.
            assert!(same(x.lora_b.weight.val(), y.lora_b.weight.val()) > 1e-3);
        }
    }
}

#[test]
fn checkpoint_round_trip_keeps_logits_and_adapter() {
    let model = llama();
    let adapter = LoraAdapter::new(
        "critic",
        LoraConfig::default(),
        model.config(),
        LoraInit::RandomB { bound: 0.2 },
        5,
        &device(),
    )
    .unwrap();
    let model = model.with_adapter(adapter).unwrap();
    let tmp = TempDir::new("checkpoint");
    save_checkpoint(&model, tmp.path()).unwrap();
    // Saving again replaces the files and leaves no temporaries behind.
    save_checkpoint(&model, tmp.path()).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["adapter.json", "config.json", "model.bpk"]);
    let loaded = load_checkpoint(tmp.path(), &device()).unwrap();
    assert_eq!(loaded.adapter().unwrap().name, "critic");
    let seq = [1u32, 5, 9, 13];
    assert_eq!(logits_of(&model, &seq), logits_of(&loaded, &seq));

    // A config that does not fit the record is a clear error.
    let mut config = model.config().clone();
    config.intermediate_size += 1;
    std::fs::write(
        tmp.path().join("config.json"),
        serde_json::to_string(&config.to_hf_json()).unwrap(),
    )
    .unwrap();
    let err = load_checkpoint(tmp.path(), &device()).unwrap_err();
    assert!(matches!(err, ModelError::Record { .. }), "{err}");
}

/// A loaded checkpoint owns its weights: replacing or deleting the files afterwards (a trainer
/// overwriting `best/`, pruning old steps) changes nothing in the model already loaded.
#[test]
fn loaded_checkpoint_does_not_depend_on_its_files() {
    let saved = qwen2();
    let tmp = TempDir::new("checkpoint-owned");
    save_checkpoint(&saved, tmp.path()).unwrap();
    let loaded = load_checkpoint(tmp.path(), &device()).unwrap();

    // Another model with the same shapes replaces the record in place.
    let other = CausalLm::new(saved.config(), &device()).unwrap();
    save_checkpoint(&other, tmp.path()).unwrap();
    let seq = [3u32, 1, 4, 1, 5, 9, 2, 6];
    let want = logits_of(&saved, &seq);
    assert_ne!(want, logits_of(&other, &seq), "the two models differ");
    assert_eq!(
        logits_of(&loaded, &seq),
        want,
        "weights of the checkpoint as loaded"
    );

    // And with the files gone.
    let again = load_checkpoint(tmp.path(), &device()).unwrap();
    std::fs::remove_dir_all(tmp.path()).unwrap();
    assert_eq!(logits_of(&again, &seq), logits_of(&other, &seq));
}

#[test]
fn hf_export_round_trips() {
    let model = qwen2();
    let tmp = TempDir::new("export");
    save_hf_model(&model, tmp.path()).unwrap();
    let back = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device()).unwrap();
    let seq = [4u32, 8, 15, 16, 23, 42];
    assert_eq!(logits_of(&model, &seq), logits_of(&back, &seq));
    // An attached adapter must be merged first.
    let adapter = LoraAdapter::new(
        "a",
        LoraConfig::default(),
        model.config(),
        LoraInit::Standard,
        0,
        &device(),
    )
    .unwrap();
    let with = model.with_adapter(adapter).unwrap();
    assert!(matches!(
        save_hf_model(&with, tmp.path()),
        Err(ModelError::Adapter(_))
    ));
}

#[test]
fn corrupt_safetensors_is_a_clear_error() {
    let tmp = TempDir::new("corrupt");
    copy_dir(&fixtures().join("llama"), tmp.path());
    let weights = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");

    std::fs::write(&weights, b"not a safetensors file").unwrap();
    let err = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device()).unwrap_err();
    assert!(matches!(err, ModelError::Safetensors { .. }), "{err}");
}

#[test]
fn missing_tensor_is_named() {
    use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, PathFilter, SafetensorsStore};
    let model = llama();
    let tmp = TempDir::new("missing-tensor");
    copy_dir(&fixtures().join("llama"), tmp.path());
    let weights = tmp.path().join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&weights)
        .with_to_adapter(BurnToPyTorchAdapter)
        .with_key_remapping(r"^(embed_tokens|layers|norm)\.", "model.$1.")
        .filter(PathFilter::new().with_predicate(|path, _| !path.contains("layers.1.mlp.up_proj")))
        .overwrite(true);
    model.save_into(&mut store).unwrap();
    let err = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::WeightMismatch { .. }), "{msg}");
    assert!(
        msg.contains("layers.1.mlp.up_proj.weight") && msg.contains("not found"),
        "{msg}"
    );
}

#[test]
fn config_mismatch_names_the_tensors() {
    let tmp = TempDir::new("mismatch");
    copy_dir(&fixtures().join("llama"), tmp.path());
    let config_path = tmp.path().join("config.json");
    let original = read_json(&config_path);

    // One layer fewer: the file has tensors the model cannot place.
    let mut fewer = original.clone();
    fewer["num_hidden_layers"] = 1.into();
    std::fs::write(&config_path, fewer.to_string()).unwrap();
    let msg = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("match no parameter") && msg.contains("layers.1."),
        "{msg}"
    );

    // One layer more: parameters the file lacks.
    let mut more = original.clone();
    more["num_hidden_layers"] = 3.into();
    std::fs::write(&config_path, more.to_string()).unwrap();
    let msg = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("not found") && msg.contains("layers.2."),
        "{msg}"
    );

    // A different width: shape mismatch.
    let mut wider = original.clone();
    wider["intermediate_size"] = 96.into();
    std::fs::write(&config_path, wider.to_string()).unwrap();
    let msg = load_hf_model(&ModelSource::Dir(tmp.path().to_path_buf()), &device())
        .unwrap_err()
        .to_string();
    assert!(
        msg.to_lowercase().contains("shape") && msg.contains("mlp"),
        "{msg}"
    );

    // An adapter for another model shape.
    std::fs::write(&config_path, original.to_string()).unwrap();
    let qwen = qwen2();
    let err = rung_model::load_peft_adapter(
        &fixtures().join("llama_lora"),
        "x",
        qwen.config(),
        &device(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("mlp.down_proj"), "{err}");
}

#[test]
fn hub_cache_is_read_offline_and_missing_files_are_named() {
    use hf_hub::Cache;
    let tmp = TempDir::new("hub");
    let repo = tmp.path().join("models--tiny--llama");
    let hash = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), hash).unwrap();
    let snapshot = repo.join("snapshots").join(hash);
    copy_dir(&fixtures().join("llama"), &snapshot);
    let cache = Cache::new(tmp.path().to_path_buf());

    for spec in ["tiny/llama", &format!("tiny/llama@{hash}")] {
        let files = ModelSource::parse(spec).resolve_in(&cache).unwrap();
        let model = rung_model::hf::load_hf_files(&files, &device()).unwrap();
        assert_eq!(model.config().num_hidden_layers, 2);
    }

    std::fs::remove_file(snapshot.join("model.safetensors")).unwrap();
    let err = ModelSource::parse("tiny/llama")
        .resolve_in(&cache)
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::MissingFile { .. }), "{msg}");
    assert!(
        msg.contains("model.safetensors") && msg.contains("huggingface-cli download"),
        "{msg}"
    );

    let err = ModelSource::parse("tiny/absent")
        .resolve_in(&cache)
        .unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}
