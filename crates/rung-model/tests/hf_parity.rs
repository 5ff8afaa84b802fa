//! rung against HF transformers and PEFT: logits of the committed tiny checkpoints, with and
//! without adapters, in both directions of the adapter format.

mod common;

use burn::tensor::Device;
use common::*;
use rung_model::hf::{ModelFiles, load_hf_files};
use rung_model::lora::{LoraAdapter, LoraConfig, LoraInit, LoraTarget};
use rung_model::peft::{load_peft_adapter, save_peft_adapter};
use rung_model::{CausalLm, ModelSource, load_hf_model};

const TOLERANCE: f32 = 1e-4;

fn device() -> Device {
    rung_model::inference_device()
}

fn load(name: &str) -> CausalLm {
    load_hf_model(&ModelSource::Dir(fixtures().join(name)), &device()).unwrap()
}

fn check(model: &CausalLm, key: &str) -> f32 {
    let reference = reference();
    let err = max_error_vs(
        model,
        &sequences(&reference),
        &reference_logits(&reference, key),
    );
    println!("{key}: max abs error vs transformers {err:e}");
    assert!(err <= TOLERANCE, "{key}: max abs error {err} > {TOLERANCE}");
    err
}

#[test]
fn qwen2_sharded_f32_matches_transformers() {
    let files = ModelFiles::in_dir(&fixtures().join("qwen2")).unwrap();
    assert_eq!(files.weights.len(), 2, "the Qwen2 fixture is sharded");
    let model = load_hf_files(&files, &device()).unwrap();
    assert!(model.config().tie_word_embeddings && model.config().attention_bias);
    assert!(model.lm_head.is_none());
    check(&model, "qwen2");
}

#[test]
fn llama_bf16_matches_transformers() {
    let model = load("llama");
    assert!(!model.config().tie_word_embeddings && model.lm_head.is_some());
    assert!(model.config().rope_scaling.is_some());
    check(&model, "llama");
}

#[test]
fn qwen2_with_peft_adapter_matches_peft() {
    let model = load("qwen2");
    let adapter = load_peft_adapter(
        &fixtures().join("qwen2_lora"),
        "qwen",
        model.config(),
        &device(),
    )
    .unwrap();
    assert!(adapter.config.use_rslora);
    assert_eq!(adapter.config.target_modules.len(), 7);
    check(&model.with_adapter(adapter).unwrap(), "qwen2_lora");
}

#[test]
fn llama_with_peft_adapter_matches_peft() {
    let model = load("llama");
    let adapter = load_peft_adapter(
        &fixtures().join("llama_lora"),
        "llama",
        model.config(),
        &device(),
    )
    .unwrap();
    assert_eq!(
        adapter.config.target_modules,
        vec![LoraTarget::Q, LoraTarget::V, LoraTarget::Down]
    );
    check(&model.with_adapter(adapter).unwrap(), "llama_lora");
}

#[test]
fn merged_adapter_equals_applied_adapter_and_unmerge_restores_base() {
    let base = load("qwen2");
    let adapter = load_peft_adapter(
        &fixtures().join("qwen2_lora"),
        "qwen",
        base.config(),
        &device(),
    )
    .unwrap();
    let adapted = base.clone().with_adapter(adapter).unwrap();
    let (merged, adapter) = adapted.clone().merge_adapter().unwrap();
    assert!(merged.adapter().is_none());
    assert_eq!(merged.merged_adapters(), ["qwen".to_string()]);
    // Merged logits agree with the reference as well as with the applied adapter.
    let err = check(&merged, "qwen2_lora");
    println!("merged adapter vs transformers+PEFT: {err:e}");
    let reference = reference();
    let seqs = sequences(&reference);
    let applied_vs_merged = seqs
        .iter()
        .map(|s| max_abs_diff(&logits_of(&adapted, s), &logits_of(&merged, s)))
        .fold(0.0, f32::max);
    println!("merged vs applied adapter: {applied_vs_merged:e}");
    assert!(applied_vs_merged <= TOLERANCE);

    let restored = merged.unmerge_adapter(adapter).unwrap();
    assert!(restored.merged_adapters().is_empty());
    let mut worst = 0.0f32;
    for (a, b) in base.layers.iter().zip(&restored.layers) {
        for (x, y) in [
            (&a.self_attn.q_proj, &b.self_attn.q_proj),
            (&a.self_attn.k_proj, &b.self_attn.k_proj),
            (&a.self_attn.v_proj, &b.self_attn.v_proj),
            (&a.self_attn.o_proj, &b.self_attn.o_proj),
            (&a.mlp.gate_proj, &b.mlp.gate_proj),
            (&a.mlp.up_proj, &b.mlp.up_proj),
            (&a.mlp.down_proj, &b.mlp.down_proj),
        ] {
            let diff: f32 = (x.weight.val() - y.weight.val()).abs().max().into_scalar();
            worst = worst.max(diff);
        }
    }
    println!("unmerge vs original base weights: {worst:e}");
    assert!(worst <= 1e-6, "unmerge left {worst}");
    // And the restored model still applies the adapter.
    let (_, again) = restored.take_adapter();
    assert!(again.is_some());
}

/// The adapter rung saved for PEFT (committed under `rung_adapter_qwen2/`): how it was made.
fn rung_adapter(model: &CausalLm) -> LoraAdapter {
    let config = LoraConfig {
        rank: 3,
        alpha: 6.0,
        dropout: 0.0,
        use_rslora: false,
        target_modules: vec![LoraTarget::Q, LoraTarget::K, LoraTarget::O, LoraTarget::Up],
    };
    LoraAdapter::new(
        "rung",
        config,
        model.config(),
        LoraInit::RandomB { bound: 0.3 },
        7,
        &device(),
    )
    .unwrap()
}

/// Regenerate the committed rung adapter; then run `make_fixtures.py peft-from-rung`.
#[test]
#[ignore = "writes fixtures; run once, then run make_fixtures.py peft-from-rung"]
fn write_rung_adapter_fixture() {
    let model = load("qwen2");
    let dir = fixtures().join("rung_adapter_qwen2");
    save_peft_adapter(&rung_adapter(&model), &dir, Some("tests/fixtures/qwen2")).unwrap();
}

#[test]
fn adapter_saved_by_rung_gives_peft_logits() {
    let model = load("qwen2");
    let dir = fixtures().join("rung_adapter_qwen2");
    let loaded = load_peft_adapter(&dir, "rung", model.config(), &device()).unwrap();
    let peft = read_json(&dir.join("peft_logits.json"));
    let want = reference_logits(&peft, "logits");
    let adapted = model.clone().with_adapter(loaded).unwrap();
    let err = max_error_vs(&adapted, &sequences(&peft), &want);
    println!("rung-saved adapter, rung vs PEFT logits: {err:e}");
    assert!(err <= TOLERANCE, "{err}");

    // Saving is deterministic and lossless: the adapter made today saves to the same tensors.
    let tmp = TempDir::new("rung-adapter");
    save_peft_adapter(
        &rung_adapter(&model),
        tmp.path(),
        Some("tests/fixtures/qwen2"),
    )
    .unwrap();
    let again = load_peft_adapter(tmp.path(), "again", model.config(), &device()).unwrap();
    let adapted_again = model.with_adapter(again).unwrap();
    let err_again = max_error_vs(&adapted_again, &sequences(&peft), &want);
    assert!(err_again <= TOLERANCE, "{err_again}");
}
