//! LoRA on an HF model directory (`model = { hf_dir = ... }`): rung-model's tiny Qwen2 fixture
//! (2 layers, hidden 64, vocabulary 256, q/k/v biases, sharded safetensors).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rung_curriculum::Overflow;
use rung_model::{LoraConfig, LoraTarget, ModelSource};
use rung_train::optim::param_values;
use rung_train::{ModelSpec, Trainer};

use common::{config, step_losses, tmp};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rung-model/tests/fixtures/qwen2")
}

/// A character-level ChatML tokenizer small enough for the fixture's 256-token vocabulary:
/// the three special tokens (ids 0-2), newline, tab and printable ASCII, no merges. (rung's
/// byte-level BPE needs 259 tokens at least.)
fn write_char_tokenizer(dir: &Path) -> PathBuf {
    let specials = rung_model::tokenizer::SPECIAL_TOKENS;
    let added: Vec<serde_json::Value> = specials
        .iter()
        .enumerate()
        .map(|(id, content)| {
            serde_json::json!({"id": id, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let mut vocab = serde_json::Map::new();
    let chars = ['\n', '\t']
        .into_iter()
        .chain((b' '..=b'~').map(char::from));
    for (id, token) in specials
        .iter()
        .map(|s| s.to_string())
        .chain(chars.map(String::from))
        .enumerate()
    {
        vocab.insert(token, id.into());
    }
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": null, "post_processor": null, "decoder": null,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
            "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": []},
    });
    let path = dir.join("char-tokenizer.json");
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

/// Every file of the fixture with its bytes.
fn fixture_files() -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(fixture())
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn lora_on_an_hf_model_directory_learns_and_leaves_the_base_untouched() {
    let files = fixture_files();
    let dir = tmp("hf-lora");
    let mut c = config(&dir, 2);
    c.model = ModelSpec::HfDir(fixture());
    c.tokenizer = Some(write_char_tokenizer(&dir));
    c.max_seq_len = 512;
    c.overflow = Overflow::Split;
    c.lora = Some(LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        use_rslora: false,
        target_modules: LoraTarget::ALL.to_vec(),
    });
    c.epochs = 30;
    c.lr = 1e-2;
    c.weight_decay = 0.0;
    let mut t = Trainer::new(c).unwrap();
    assert_eq!(t.model().config().vocab_size, 256);
    let before = param_values(t.model());
    let summary = t.run().unwrap();
    let after = param_values(t.model());

    let losses = step_losses(&dir.join("run"));
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("loss {first:.4} -> {last:.4} over {} steps", losses.len());
    assert!(first > 4.0, "initial loss near ln(256) = 5.55: {first}");
    assert!(last < 0.5 * first, "loss falls clearly: {first} -> {last}");

    // Base weights: byte-identical to before training and to a fresh load of the directory.
    let device = rung_model::autodiff_device();
    let fresh = rung_model::load_hf_model(&ModelSource::Dir(fixture()), &device).unwrap();
    let fresh = param_values(&fresh);
    let mut base = 0;
    for (name, value) in &before {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        if name.starts_with("adapter") {
            assert_ne!(
                bits(value),
                bits(&after[name]),
                "adapter tensor {name} trained"
            );
            continue;
        }
        base += 1;
        assert_eq!(
            bits(value),
            bits(&after[name]),
            "base weight {name} changed"
        );
        assert_eq!(
            bits(value),
            bits(&fresh[name]),
            "base weight {name} differs from disk"
        );
    }
    assert_eq!(base, fresh.len(), "every base tensor compared");
    assert_eq!(
        summary.trainable_params,
        t.model().adapter().unwrap().num_params()
    );
    assert_eq!(fixture_files(), files, "the model directory is unchanged");
    let adapter_config = std::fs::read_to_string(dir.join("run/adapter/adapter_config.json"))
        .expect("the PEFT adapter is exported");
    assert!(
        adapter_config.contains("fixtures/qwen2"),
        "the adapter names its base: {adapter_config}"
    );
}
