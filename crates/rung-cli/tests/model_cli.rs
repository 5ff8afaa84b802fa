//! `rung model` end to end: the binary on rung-model's committed fixtures (tiny random Qwen2 and
//! Llama checkpoints, PEFT adapters, and transformers' reference logits from
//! `crates/rung-model/tests/fixtures/make_fixtures.py`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rung_model::tokenizer::Tokenizer;
use serde_json::Value;

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rung-model/tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rung(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rung"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .expect("the rung binary runs")
}

/// Run, expect success, return stdout.
fn rung_ok(args: &[&str]) -> String {
    let out = rung(args);
    assert!(
        out.status.success(),
        "rung {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run, expect failure, return stderr.
fn rung_err(args: &[&str]) -> String {
    let out = rung(args);
    assert!(
        !out.status.success(),
        "rung {args:?} unexpectedly succeeded"
    );
    String::from_utf8(out.stderr).unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ids_arg(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn cli_logits(model: &Path, adapter: Option<&Path>, ids: &[u32]) -> Vec<Vec<f32>> {
    let ids = ids_arg(ids);
    let mut args = vec!["model", "logits", "--model", path_str(model), "--ids", &ids];
    if let Some(adapter) = adapter {
        args.extend(["--adapter", path_str(adapter)]);
    }
    let json: Value = serde_json::from_str(&rung_ok(&args)).unwrap();
    serde_json::from_value(json["logits"].clone()).unwrap()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "number of positions");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "vocabulary size");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// The CLI's logits for every reference sequence, against transformers' (or PEFT's).
fn check_logits(model: &Path, adapter: Option<&Path>, key: &str) {
    let reference = reference();
    let sequences: Vec<Vec<u32>> = serde_json::from_value(reference["sequences"].clone()).unwrap();
    let want: Vec<Vec<Vec<f32>>> = serde_json::from_value(reference[key].clone()).unwrap();
    for (seq, want) in sequences.iter().zip(&want) {
        let got = cli_logits(model, adapter, seq);
        let err = max_abs_diff(&got, want);
        assert!(err <= TOLERANCE, "{key} {seq:?}: max abs error {err}");
    }
}

fn info(model: &Path, adapter: Option<&Path>) -> Value {
    let mut args = vec!["model", "info", "--json", "--model", path_str(model)];
    if let Some(adapter) = adapter {
        args.extend(["--adapter", path_str(adapter)]);
    }
    serde_json::from_str(&rung_ok(&args)).unwrap()
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rung-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of the Qwen2 fixture with a `tokenizer.json`: a byte-level BPE with no merges (3
/// special tokens + 256 bytes), so every ASCII byte gets an id below the fixture's vocabulary of
/// 256 (the ids 256..258 go to the non-ASCII bytes 0x9F, 0xA0 and 0xAD).
fn qwen2_with_tokenizer(tmp: &TempDir) -> (PathBuf, Tokenizer) {
    let dir = tmp.0.join("qwen2");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join("qwen2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let tokenizer = Tokenizer::train_bpe(["hello world, hello rung"], 259, 1).unwrap();
    tokenizer.save(dir.join("tokenizer.json")).unwrap();
    (dir, tokenizer)
}

#[test]
fn logits_match_transformers() {
    check_logits(&fixtures().join("qwen2"), None, "qwen2");
    check_logits(&fixtures().join("llama"), None, "llama");
}

#[test]
fn logits_with_a_peft_adapter_match_peft() {
    check_logits(
        &fixtures().join("qwen2"),
        Some(&fixtures().join("qwen2_lora")),
        "qwen2_lora",
    );
    check_logits(
        &fixtures().join("llama"),
        Some(&fixtures().join("llama_lora")),
        "llama_lora",
    );
}

#[test]
fn info_reports_the_parameter_count() {
    // Counts from transformers: sum(p.numel() for p in model.parameters()).
    let qwen = info(&fixtures().join("qwen2"), None);
    assert_eq!(qwen["parameters"], 90_688);
    assert_eq!(qwen["family"], "qwen2");
    assert_eq!(qwen["tied_embeddings"], true);
    assert_eq!(qwen["format"], "hf-safetensors");
    assert_eq!(qwen["weights"].as_array().unwrap().len(), 2, "two shards");
    assert_eq!(qwen["config"]["hidden_size"], 64);
    assert!(qwen["backend"].is_string());

    let llama = info(
        &fixtures().join("llama"),
        Some(&fixtures().join("llama_lora")),
    );
    assert_eq!(llama["parameters"], 119_104);
    assert_eq!(llama["family"], "llama");
    assert_eq!(llama["tied_embeddings"], false);

    // PEFT counts 8192 lora_A/lora_B parameters for this adapter.
    let with_adapter = info(
        &fixtures().join("qwen2"),
        Some(&fixtures().join("qwen2_lora")),
    );
    assert_eq!(with_adapter["adapter"]["parameters"], 8192);
    assert_eq!(with_adapter["adapter"]["rank"], 4);

    // The text form names the same count.
    let text = rung_ok(&[
        "model",
        "info",
        "--model",
        path_str(&fixtures().join("qwen2")),
    ]);
    assert!(text.contains("90,688"), "{text}");
    assert!(text.contains("tied"), "{text}");
}

#[test]
fn rung_checkpoints_are_detected() {
    let tmp = TempDir::new("checkpoint");
    let dir = tmp.0.join("ckpt");
    let device = rung_model::inference_device();
    let model = rung_model::load_hf_model(
        &rung_model::ModelSource::Dir(fixtures().join("qwen2")),
        &device,
    )
    .unwrap();
    rung_model::save_checkpoint(&model, &dir).unwrap();
    let described = info(&dir, None);
    assert_eq!(described["format"], "rung-checkpoint");
    assert_eq!(described["parameters"], 90_688);
    check_logits(&dir, None, "qwen2");
    check_logits(&dir, Some(&fixtures().join("qwen2_lora")), "qwen2_lora");
}

#[test]
fn generate_uses_the_model_tokenizer() {
    let tmp = TempDir::new("generate");
    let (dir, tokenizer) = qwen2_with_tokenizer(&tmp);
    let model = path_str(&dir);
    let prompt = "hello world";
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            "model",
            "generate",
            "--model",
            model,
            "--prompt",
            prompt,
            "--max-new-tokens",
            "8",
            "--json",
        ];
        args.extend(extra);
        serde_json::from_str(&rung_ok(&args)).unwrap()
    };

    let greedy = run(&[]);
    let prompt_ids = tokenizer.encode(prompt).unwrap();
    assert_eq!(greedy["prompt_tokens"], prompt_ids.len());
    let ids: Vec<u32> = serde_json::from_value(greedy["ids"].clone()).unwrap();
    let generated = greedy["generated_tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&generated), "{greedy}");
    assert_eq!(greedy["text"], tokenizer.decode(&ids).unwrap());
    assert!(greedy["flops"].as_u64().unwrap() > 0);

    // The first greedy token is the argmax of the last position's logits.
    let logits = cli_logits(&dir, None, &prompt_ids);
    let last = logits.last().unwrap();
    let argmax = (0..last.len())
        .max_by(|&a, &b| last[a].total_cmp(&last[b]).then(b.cmp(&a)))
        .unwrap() as u32;
    let first = match ids.first() {
        Some(&id) => id,
        None => greedy["finish_reason"]["id"].as_u64().unwrap() as u32,
    };
    assert_eq!(first, argmax, "{greedy}");

    // Greedy is deterministic, and so is sampling with a seed.
    assert_eq!(run(&[])["ids"], greedy["ids"]);
    let sampled = ["--temperature", "1.5", "--top-p", "0.9", "--seed", "7"];
    assert_eq!(run(&sampled)["ids"], run(&sampled)["ids"]);

    // Chat mode renders ChatML around the prompt.
    let chat = run(&["--chat"]);
    let chat_prompt: Vec<u32> = serde_json::from_value(chat["prompt_ids"].clone()).unwrap();
    let rendered = format!("<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n");
    assert_eq!(tokenizer.decode(&chat_prompt).unwrap(), rendered);

    // Plain output: the text on stdout, the counts on stderr.
    let out = rung(&[
        "model",
        "generate",
        "--model",
        model,
        "--prompt",
        prompt,
        "--max-new-tokens",
        "4",
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("prompt tokens: 11") && stderr.contains("FLOPs"),
        "{stderr}"
    );
}

#[test]
fn errors_say_how_to_fix_them() {
    let qwen = fixtures().join("qwen2");
    let err = rung_err(&[
        "model",
        "generate",
        "--model",
        path_str(&qwen),
        "--prompt",
        "hi",
    ]);
    assert!(
        err.contains("tokenizer.json") && err.contains("--tokenizer"),
        "{err}"
    );

    let err = rung_err(&[
        "model",
        "logits",
        "--model",
        path_str(&qwen),
        "--ids",
        "1,999",
    ]);
    assert!(
        err.contains("999") && err.contains("vocab_size 256"),
        "{err}"
    );

    let err = rung_err(&["model", "info", "--model", "/no/such/model"]);
    assert!(err.contains("not found"), "{err}");

    let err = rung_err(&["model", "info", "--model", path_str(&fixtures())]);
    assert!(err.contains("config.json"), "{err}");

    let err = rung_err(&[
        "model",
        "logits",
        "--model",
        path_str(&qwen),
        "--ids",
        "1",
        "--adapter",
        path_str(&fixtures().join("llama_lora")),
    ]);
    assert!(err.contains("adapter"), "{err}");

    // A hub id that is not in the local cache names the download command.
    let cache = TempDir::new("hf-home");
    let out = Command::new(env!("CARGO_BIN_EXE_rung"))
        .args(["model", "info", "--model", "nobody/nothing@v1"])
        .env("HF_HOME", &cache.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("huggingface-cli download nobody/nothing"),
        "{err}"
    );
}
