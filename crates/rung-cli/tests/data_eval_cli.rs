//! `rung data gen` and `rung eval` end to end: the binary writes expert data that reads back,
//! scores the experts at 100%, and runs language models from checkpoint directories, in
//! process and over a pool of world servers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use rung_env::Split;
use rung_model::lora::{LoraAdapter, LoraConfig, LoraInit};
use rung_model::tokenizer::Tokenizer;
use rung_model::{CausalLm, ModelConfig, save_checkpoint, save_peft_adapter};
use rung_trajectory::{Role, SystemKind, read_file};
use rung_world::{Suite, SuiteOptions};
use serde_json::Value;

fn rung(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rung"))
        .args(args)
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

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rung-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn results(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn data_gen_writes_expert_episodes_that_read_back() {
    let dir = scratch("data-gen");
    let out = dir.join("dev-two-agent.jsonl");
    let stdout = rung_ok(&[
        "data",
        "gen",
        "--split",
        "dev",
        "--system",
        "two-agent",
        "--out",
        s(&out),
    ]);
    assert!(stdout.contains("wrote 150 episodes"), "{stdout}");
    let episodes = read_file(&out).unwrap();
    assert_eq!(episodes.len(), 150);
    for episode in &episodes {
        assert_eq!(episode.split, Some(Split::Dev));
        assert_eq!(episode.system.kind, SystemKind::TwoAgent);
        assert_eq!(episode.system.models[&Role::Executor], "expert");
        assert!(episode.evaluation.success, "{}", episode.task_id);
    }
    // Same options, same episodes (timings aside); another seed changes the mistakes.
    let again = dir.join("again.jsonl");
    rung_ok(&[
        "data",
        "gen",
        "--split",
        "dev",
        "--system",
        "two_agent",
        "--out",
        s(&again),
    ]);
    let strip = |path: &Path| {
        read_file(path)
            .unwrap()
            .into_iter()
            .map(|mut e| {
                e.cost.wall_seconds = 0.0;
                e
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&out), strip(&again));
    let none = dir.join("no-mistakes.jsonl");
    let stdout = rung_ok(&[
        "data",
        "gen",
        "--split",
        "dev",
        "--system",
        "single",
        "--limit",
        "20",
        "--mistake-rate",
        "0",
        "--out",
        s(&none),
    ]);
    assert!(
        stdout.contains("wrote 20 episodes (0 with a deliberate mistake"),
        "{stdout}"
    );
    let error = rung_err(&["data", "gen", "--mistake-rate", "2", "--out", s(&none)]);
    assert!(
        error.contains("--mistake-rate must be between 0 and 1"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_scores_the_experts_at_full_tgc() {
    let dir = scratch("eval-experts");
    let stdout = rung_ok(&[
        "eval",
        "--experts",
        "--system",
        "three-agent",
        "--split",
        "dev",
        "--out",
        s(&dir),
    ]);
    assert!(
        stdout.contains("overall          100.0   100.0     150"),
        "{stdout}"
    );
    let report = results(&dir);
    assert_eq!(report["scores"]["overall"]["tgc"], 100.0);
    assert_eq!(report["episodes"], 150);
    assert_eq!(report["ends"]["completed"], 150);
    assert_eq!(report["subtask_errors"]["overall"]["errors"], 0);
    let table = std::fs::read_to_string(dir.join("results.txt")).unwrap();
    assert!(stdout.starts_with(&table));
    let episodes = read_file(&dir.join("trajectories.jsonl")).unwrap();
    assert_eq!(episodes.len(), 150);
    assert!(
        episodes
            .iter()
            .all(|e| e.system.kind == SystemKind::ThreeAgent)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn eval_explains_what_it_needs() {
    let help = rung_ok(&["eval", "--help"]);
    for needle in [
        "--experts",
        "--models <ROLE=DIR[,adapter=DIR][,tokenizer=FILE]>",
        "--server-command",
        "--pool-size",
        "results.json",
        "trajectories.jsonl",
        "--temperature",
        "--max-tokens-per-turn",
    ] {
        assert!(help.contains(needle), "`{needle}` missing from:\n{help}");
    }
    let help = rung_ok(&["data", "gen", "--help"]);
    for needle in ["--mistake-rate", "--split", "--system", "train: false"] {
        assert!(help.contains(needle), "`{needle}` missing from:\n{help}");
    }
    let error = rung_err(&["eval", "--system", "single", "--split", "dev"]);
    assert!(error.contains("--experts, or --model DIR"), "{error}");
    let error = rung_err(&[
        "eval",
        "--system",
        "two-agent",
        "--models",
        "critic=x",
        "--model",
        "y",
    ]);
    assert!(
        error.contains("the two_agent system has no critic"),
        "{error}"
    );
    let error = rung_err(&["eval", "--system", "two-agent", "--models", "executor=x"]);
    assert!(error.contains("no model for the orchestrator"), "{error}");
    let error = rung_err(&[
        "eval",
        "--system",
        "single",
        "--model",
        "/nonexistent/model",
    ]);
    assert!(error.contains("/nonexistent/model"), "{error}");
    let error = rung_err(&["eval", "--system", "nine-agent", "--experts"]);
    assert!(error.contains("unknown system"), "{error}");
}

/// An untrained `tiny` checkpoint with a tokenizer of the world's text in `dir`, and a LoRA
/// adapter for it in `adapter`.
fn write_model(dir: &Path, adapter: &Path) {
    let suite = Suite::generate(SuiteOptions::default());
    let corpus: Vec<String> = suite
        .split(Split::Train)
        .take(200)
        .flat_map(|t| {
            let mut texts = vec![t.instruction.clone()];
            texts.extend(t.gold_cells().into_iter().map(str::to_owned));
            texts
        })
        .collect();
    let tokenizer = Arc::new(Tokenizer::train_bpe(corpus, 1024, 2).unwrap());
    let config = ModelConfig::preset("tiny").unwrap();
    let device = rung_model::inference_device();
    let model = CausalLm::new(&config, &device).unwrap();
    save_checkpoint(&model, dir).unwrap();
    tokenizer.save(dir.join("tokenizer.json")).unwrap();
    let lora = LoraAdapter::new(
        "executor",
        LoraConfig::default(),
        &config,
        LoraInit::RandomB { bound: 0.05 },
        1,
        &device,
    )
    .unwrap();
    save_peft_adapter(&lora, adapter, None).unwrap();
}

#[test]
fn eval_runs_models_from_checkpoints_in_process_and_over_a_server_pool() {
    let dir = scratch("eval-model");
    let model = dir.join("tiny");
    let adapter = dir.join("executor-lora");
    write_model(&model, &adapter);
    let out = dir.join("in-process");
    let executor = format!("executor={},adapter={}", s(&model), s(&adapter));
    let stdout = rung_ok(&[
        "eval",
        "--system",
        "two-agent",
        "--split",
        "dev",
        "--limit",
        "6",
        "--model",
        s(&model),
        "--models",
        &executor,
        "--max-tokens-per-turn",
        "8",
        "--threads",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(stdout.contains("on dev: 6 episodes"), "{stdout}");
    let report = results(&out);
    assert_eq!(report["episodes"], 6);
    assert_eq!(report["scores"]["overall"]["tgc"], 0.0);
    assert_eq!(report["system"]["models"]["orchestrator"], s(&model));
    assert_eq!(
        report["system"]["models"]["executor"],
        format!("{}+{}", s(&model), s(&adapter))
    );
    assert!(report["cost"]["total"]["flops"].as_f64().unwrap() > 0.0);
    let episodes = read_file(&out.join("trajectories.jsonl")).unwrap();
    assert_eq!(episodes.len(), 6);
    for episode in &episodes {
        assert!(episode.turns.iter().all(|t| t.generated_tokens <= 8));
    }

    // Real AppWorld's way: a pool of servers, task ids from a file, no gold.
    let tasks = dir.join("tasks.txt");
    let ids: Vec<String> = episodes
        .iter()
        .take(3)
        .map(|e| e.task_id.to_string())
        .collect();
    std::fs::write(&tasks, format!("# three dev tasks\n{}\n", ids.join("\n"))).unwrap();
    let pooled = dir.join("pool");
    let server = format!("{} world serve --port {{port}}", env!("CARGO_BIN_EXE_rung"));
    let stdout = rung_ok(&[
        "eval",
        "--system",
        "single",
        "--split",
        "dev",
        "--model",
        s(&model),
        "--max-tokens-per-turn",
        "8",
        "--server-command",
        &server,
        "--pool-size",
        "2",
        "--no-gold",
        "--tasks",
        s(&tasks),
        "--out",
        s(&pooled),
    ]);
    assert!(stdout.contains("on dev: 3 episodes"), "{stdout}");
    let report = results(&pooled);
    assert_eq!(report["episodes"], 3);
    assert!(
        report["subtask_errors"].is_null(),
        "no gold, no sub-task rates"
    );
    let episodes = read_file(&pooled.join("trajectories.jsonl")).unwrap();
    let ran: Vec<String> = episodes.iter().map(|e| e.task_id.to_string()).collect();
    assert_eq!(ran, ids);
    let _ = std::fs::remove_dir_all(&dir);
}
