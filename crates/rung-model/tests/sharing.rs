//! Several named adapters over one base share the base's weights.
//!
//! Alone in its test binary so that no other test allocates while resident memory is measured.

use burn::tensor::{Int, Tensor, TensorData};
use rung_model::lora::{LoraAdapter, LoraConfig, LoraInit, LoraTarget};
use rung_model::{AdapterBank, CausalLm, ModelConfig};

/// Resident set size of this process in bytes (Linux).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
#[cfg(target_os = "linux")]
fn named_adapters_share_base_weights() {
    let device = rung_model::inference_device();
    let config = ModelConfig::preset("medium").unwrap();
    let base = CausalLm::new(&config, &device).unwrap();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64, 2, 3, 4], [1, 4]), &device);
    // Materialise the lazily initialised base weights (≈103 MB in f32).
    let base_logits: Vec<f32> = base.forward(ids.clone()).try_into_vec_as::<f32>().unwrap();
    let base_bytes = (config.num_params() * 4) as u64;

    let mut bank = AdapterBank::new(base).unwrap();
    let roles = ["orchestrator", "executor", "critic", "planner"];
    for (seed, role) in roles.iter().enumerate() {
        let lora = LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.0,
            use_rslora: false,
            target_modules: LoraTarget::ALL.to_vec(),
        };
        let adapter = LoraAdapter::new(
            *role,
            lora,
            &config,
            LoraInit::RandomB { bound: 0.05 },
            seed as u64,
            &device,
        )
        .unwrap();
        bank.insert(adapter).unwrap();
    }
    let before = rss_bytes();
    let models: Vec<CausalLm> = roles.iter().map(|r| bank.model(r).unwrap()).collect();
    let outputs: Vec<Vec<f32>> = models
        .iter()
        .map(|m| m.forward(ids.clone()).try_into_vec_as::<f32>().unwrap())
        .collect();
    let growth = rss_bytes().saturating_sub(before);
    println!(
        "base {:.1} MB; 4 adapted models alive: RSS grew {:.1} MB",
        base_bytes as f64 / 1e6,
        growth as f64 / 1e6
    );
    // Copying the base even once would add ~103 MB.
    assert!(
        growth < base_bytes / 2,
        "RSS grew {growth} bytes for 4 adapted models"
    );

    // The adapters do change the output, each differently, and the base is unchanged.
    for (i, out) in outputs.iter().enumerate() {
        assert_ne!(out, &base_logits, "adapter {i} has no effect");
        for other in &outputs[i + 1..] {
            assert_ne!(out, other);
        }
    }
    let again: Vec<f32> = bank.base().forward(ids).try_into_vec_as::<f32>().unwrap();
    assert_eq!(again, base_logits);
    assert_eq!(
        bank.names(),
        ["critic", "executor", "orchestrator", "planner"]
    );
    assert!(
        bank.model("nobody")
            .unwrap_err()
            .to_string()
            .contains("orchestrator")
    );
    drop(models);
}
