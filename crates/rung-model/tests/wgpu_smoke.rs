//! The wgpu backend runs the same model code as the CPU and gives the same logits.
//!
//! Only built with `--features wgpu`. Without a GPU it runs on Mesa's software Vulkan driver
//! (lavapipe, Debian package `mesa-vulkan-drivers`), which is how CI exercises the GPU code path:
//!
//! ```sh
//! XDG_RUNTIME_DIR=/tmp CARGO_TARGET_DIR=target-wgpu \
//!     cargo test -p rung-model --features wgpu --test wgpu_smoke
//! ```
//!
//! CI runs it together with rung-train's `wgpu_train` (see `.ci/run`).
#![cfg(feature = "wgpu")]

mod common;

use burn::tensor::Device;
use common::*;
use rung_model::{CausalLm, GenerateOptions, ModelSource, load_hf_model, load_peft_adapter};

const TOLERANCE: f32 = 1e-4;

fn load(device: &Device, adapter: bool) -> CausalLm {
    let model = load_hf_model(&ModelSource::Dir(fixtures().join("qwen2")), device).unwrap();
    if !adapter {
        return model;
    }
    let lora = load_peft_adapter(
        &fixtures().join("qwen2_lora"),
        "qwen",
        model.config(),
        device,
    )
    .unwrap();
    model.with_adapter(lora).unwrap()
}

#[test]
fn wgpu_is_the_default_device() {
    assert_eq!(rung_model::device::backend_name(), "wgpu");
}

#[test]
fn forward_on_wgpu_matches_cpu_and_transformers() {
    let gpu = rung_model::default_device();
    let cpu = Device::flex();
    let reference = reference();
    let sequences = sequences(&reference);
    for (adapter, key) in [(false, "qwen2"), (true, "qwen2_lora")] {
        let on_gpu = load(&gpu, adapter);
        let on_cpu = load(&cpu, adapter);
        assert_eq!(on_gpu.device(), gpu);
        let want = reference_logits(&reference, key);
        for (seq, want) in sequences.iter().zip(&want) {
            let g = logits_of(&on_gpu, seq);
            let c = logits_of(&on_cpu, seq);
            let vs_cpu = max_abs_diff(&g, &c);
            let vs_reference = max_abs_diff(&g, want);
            println!("{key} {seq:?}: wgpu vs cpu {vs_cpu:e}, vs transformers {vs_reference:e}");
            assert!(vs_cpu <= TOLERANCE, "{key}: wgpu vs cpu {vs_cpu}");
            assert!(
                vs_reference <= TOLERANCE,
                "{key}: wgpu vs transformers {vs_reference}"
            );
        }
    }
}

/// A block longer than `ATTENTION_CHUNK` takes the chunked attention path (narrow, cat).
#[test]
fn long_block_on_wgpu_matches_cpu() {
    let seq: Vec<u32> = (0..200u32).map(|i| (i * 37 + 11) % 256).collect();
    assert!(seq.len() > 2 * rung_model::attention::ATTENTION_CHUNK);
    let on_gpu = logits_of(&load(&rung_model::default_device(), true), &seq);
    let on_cpu = logits_of(&load(&Device::flex(), true), &seq);
    let err = max_abs_diff(&on_gpu, &on_cpu);
    println!("200 tokens with adapter: wgpu vs cpu {err:e}");
    assert!(err <= TOLERANCE, "wgpu vs cpu {err}");
}

#[test]
fn kv_cached_generation_on_wgpu_matches_cpu() {
    let prompts = vec![vec![5u32, 17, 200, 3], vec![1, 2, 3]];
    let options = GenerateOptions {
        max_new_tokens: 8,
        ..GenerateOptions::default()
    };
    let on_gpu = rung_model::generate(
        &load(&rung_model::default_device(), false),
        &prompts,
        &options,
        None,
    )
    .unwrap();
    let on_cpu =
        rung_model::generate(&load(&Device::flex(), false), &prompts, &options, None).unwrap();
    let ids = |g: &rung_model::Generation| -> Vec<Vec<u32>> {
        g.sequences.iter().map(|s| s.ids.clone()).collect()
    };
    assert_eq!(ids(&on_gpu), ids(&on_cpu));
}
