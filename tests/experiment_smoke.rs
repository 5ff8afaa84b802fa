//! The whole ProST pipeline on `configs/smoke.toml`: expert data, tokenizer, training of every
//! role with `prost` and `all`, evaluation, Pareto analysis, report; then a re-run that finds
//! everything done, and a resumed run that redoes exactly the stage whose output was lost.
//!
//! Every other config under `configs/` must parse and validate.

use std::collections::BTreeSet;
use std::path::Path;

use rung_experiment::report::Results;
use rung_experiment::{ExperimentConfig, RunOptions};
use serde_json::Value;

mod common;

use common::{committed_config, read_results, root};

fn events(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn started(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == "start")
        .map(|e| e["stage"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn smoke_experiment_runs_end_to_end_and_resumes() {
    let (config, out) = committed_config("smoke.toml", "smoke");

    let outcome = rung_experiment::run(&config, &RunOptions::default())
        .unwrap()
        .expect("not a dry run");
    assert_eq!(outcome.runs, 4, "single and two-agent × prost and all");
    let report = std::fs::read_to_string(&outcome.report).unwrap();
    let results = read_results(&outcome.results);

    // One corpus and one pretrained tiny base, shared by all six role models.
    let stages = started(&events(&out));
    assert_eq!(
        stages.iter().filter(|s| *s == "corpus").count(),
        1,
        "{stages:?}"
    );
    assert_eq!(
        stages.iter().filter(|s| *s == "pretrain").count(),
        1,
        "{stages:?}"
    );
    let base: Vec<_> = std::fs::read_dir(out.join("stages/pretrain"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(base.len(), 1);
    let base_done: Value =
        serde_json::from_str(&std::fs::read_to_string(base[0].join("done.json")).unwrap()).unwrap();
    assert!(
        base_done["tokens"].as_u64().unwrap() > 10_000,
        "{base_done}"
    );
    let base_dir = base_done["model_dir"].as_str().unwrap().to_owned();
    let mut fine_tuned = 0;
    for stage in std::fs::read_dir(out.join("stages/train")).unwrap() {
        let run = stage.unwrap().path().join("run/config.json");
        let train: Value = serde_json::from_str(&std::fs::read_to_string(&run).unwrap()).unwrap();
        assert_eq!(
            train["model"]["hf_dir"].as_str(),
            Some(base_dir.as_str()),
            "{} fine-tunes the base",
            run.display()
        );
        fine_tuned += 1;
    }
    assert_eq!(
        fine_tuned, 6,
        "1 single + 2 two-agent roles, × prost and all"
    );
    assert!(
        report.contains("World pretraining: "),
        "the report shows the corpus"
    );
    assert!(
        report.contains("| literal acc. |"),
        "and copying accuracy per role"
    );

    // The learning curve: the tiny single agent `all` with each of its two epochs' checkpoints.
    let curve = results
        .learning_curve
        .as_ref()
        .expect("the smoke config asks for one");
    assert_eq!(curve.run, "1A-tiny-all-s0");
    let epochs: Vec<usize> = curve.points.iter().map(|p| p.epoch).collect();
    assert_eq!(epochs, [1, 2]);
    assert!(curve.points[0].tokens > 0 && curve.points[1].tokens > curve.points[0].tokens);
    assert!(curve.points.iter().all(|p| (0.0..=100.0).contains(&p.tgc)));
    let own = results
        .runs
        .iter()
        .find(|r| r.name == "1A-tiny-all-s0")
        .unwrap();
    assert_eq!(
        curve.points[1].tgc, own.splits["test_normal"].tgc,
        "the last epoch's point is the run's own evaluation (checkpoint = last)"
    );
    assert!(report.contains("## Learning curve (`1A-tiny-all-s0` on `test_normal`)"));
    assert!(out.join("plots/learning-curve.svg").is_file());

    // Every run was trained and evaluated on the headline split.
    assert_eq!(results.runs.len(), 4);
    for run in &results.runs {
        let roles = run.run.configuration.system.roles().len();
        assert_eq!(run.training.len(), roles, "{}", run.name);
        let split = &run.splits["test_normal"];
        assert_eq!(split.tasks, 6, "{}", run.name);
        assert!((0.0..=100.0).contains(&split.tgc));
        assert!(
            split.cost_per_task.flops > 0.0,
            "{}: models cost FLOPs",
            run.name
        );
        for training in run.training.values() {
            assert_eq!(training.epochs.len(), 2);
            assert!(training.flops > 0.0 && training.supervised_tokens > 0);
            assert!(training.model_dir.join("config.json").is_file());
        }
        assert!(report.contains(&run.name), "the report lists {}", run.name);
    }

    // ProST's first epoch supervises only the first sub-task, so it trains on fewer tokens
    // than `all`'s first epoch; by the last epoch of this short run both have the same data
    // or prost still less.
    let by_name = |name: &str| results.runs.iter().find(|r| r.name == name).unwrap();
    for system in ["1A", "2A"] {
        let prost = by_name(&format!("{system}-tiny-prost-s0"));
        let all = by_name(&format!("{system}-tiny-all-s0"));
        for (role, p) in &prost.training {
            let a = &all.training[role];
            assert!(
                p.epochs[0].supervised_tokens < a.epochs[0].supervised_tokens,
                "{system} {role}: prost epoch 1 supervises less"
            );
            assert!(p.epochs[1].supervised_tokens <= a.epochs[1].supervised_tokens);
        }
    }

    // The Pareto front is exactly the non-dominated configurations.
    let headline = &results.configurations["test_normal"];
    assert_eq!(headline.len(), 4);
    let points: Vec<(f64, f64)> = headline
        .iter()
        .map(|c| (c.flops_per_task.mean, c.tgc.mean))
        .collect();
    for (c, &(cost, tgc)) in headline.iter().zip(&points) {
        let dominated = points
            .iter()
            .any(|&p| rung_experiment::pareto::dominates(p, (cost, tgc)));
        assert_eq!(c.pareto, !dominated, "{}", c.label);
    }
    let front: BTreeSet<&String> = headline
        .iter()
        .filter(|c| c.pareto)
        .map(|c| &c.label)
        .collect();
    assert!(!front.is_empty());
    assert_eq!(
        front,
        results.pareto_front.iter().collect::<BTreeSet<_>>(),
        "results.json lists the same front"
    );
    assert_eq!(results.claims.len(), 3);
    assert!(report.contains("ProST lowers sub-task error rates"));

    // The guards: the experts complete every evaluated task under the smoke budgets, the task
    // subsets cover one template per task, and every configuration has per-task outcomes, an
    // interval, and a histogram of how its episodes ended.
    assert_eq!(results.expert_ceiling.len(), 2, "one row per system");
    for c in &results.expert_ceiling {
        assert_eq!((c.tgc, c.episodes), (100.0, 6), "{c:?}");
    }
    let coverage = results.coverage.as_ref().expect("coverage measured");
    assert_eq!(
        (coverage.train_tasks, coverage.train_templates),
        (12, 12),
        "12 tasks of 12 templates (the split has {})",
        coverage.split_templates
    );
    assert_eq!(coverage.splits[0].templates, 6);
    for c in headline {
        assert_eq!(c.task_success.len(), 6, "{}", c.label);
        let interval = c.tgc_interval.expect("an interval");
        assert!(interval.interval.contains(c.tgc.mean), "{}", c.label);
        assert_eq!(c.ends.values().sum::<usize>(), 6, "{}", c.label);
    }
    assert!(
        results
            .comparisons
            .iter()
            .any(|c| c.paired.is_some_and(|p| p.tasks == 6)),
        "prost and all compared task by task"
    );
    for section in [
        "## Guards",
        "expert ceiling",
        "## Paired comparisons",
        "parse failures/turn",
    ] {
        assert!(report.contains(section), "the report has `{section}`");
    }

    // Each configuration's final validation loss is the mean of its runs' role models' losses,
    // and the report compares it between prost and all for both systems.
    for c in headline {
        let run = results
            .runs
            .iter()
            .find(|r| r.run.configuration == c.configuration)
            .unwrap();
        let losses: Vec<f64> = run
            .training
            .values()
            .map(|t| t.final_val_loss.expect("smoke validates"))
            .collect();
        let mean = losses.iter().sum::<f64>() / losses.len() as f64;
        let summary = c.final_val_loss.expect("summarised");
        assert!((summary.mean - mean).abs() < 1e-9, "{}", c.label);
    }
    assert!(report.contains("`prost` against `all` at the end of training"));
    assert!(report.contains("of 2 pairs"), "one pair per system");
    assert!(
        report.contains("all at prost's compute"),
        "the equal-compute view of each pair"
    );

    // Plots: SVG and PNG of each.
    for stem in [
        "pareto",
        "loss-epochs",
        "loss-flops",
        "subtask-errors-single",
        "subtask-errors-two_agent",
    ] {
        let svg = std::fs::read_to_string(out.join("plots").join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<svg"), "{stem}.svg");
        let png = std::fs::read(out.join("plots").join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png");
        assert!(
            report.contains(&format!("plots/{stem}.svg")),
            "report links {stem}"
        );
    }
    let pareto_svg = std::fs::read_to_string(out.join("plots/pareto.svg")).unwrap();
    for label in &front {
        assert!(
            pareto_svg.contains(label.as_str()),
            "front point {label} is labelled"
        );
    }

    // A second run finds every stage done and writes the same results.
    let first_events = events(&out).len();
    rung_experiment::run(&config, &RunOptions::default()).unwrap();
    let again = events(&out);
    assert!(
        started(&again[first_events..]).is_empty(),
        "nothing is redone: {:?}",
        started(&again[first_events..])
    );
    let rerun = read_results(&outcome.results);
    assert_eq!(rerun.runs, results.runs);

    // Losing one evaluation's output (as a killed run would) redoes exactly that stage, with
    // the same result: greedy decoding of the same weights.
    let eval_dir = std::fs::read_dir(out.join("stages/eval"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("2A-tiny-prost-s0"))
        .unwrap();
    std::fs::remove_file(eval_dir.join("done.json")).unwrap();
    let before = events(&out).len();
    rung_experiment::run(&config, &RunOptions::default()).unwrap();
    let after = events(&out);
    assert_eq!(started(&after[before..]), ["eval"]);
    let resumed = read_results(&outcome.results);
    let tgc = |r: &Results| {
        r.runs
            .iter()
            .map(|run| run.splits["test_normal"].tgc)
            .collect::<Vec<_>>()
    };
    assert_eq!(tgc(&resumed), tgc(&results));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn every_committed_config_validates() {
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config = ExperimentConfig::from_file(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let runs = rung_experiment::plan::runs(&config);
            assert!(!runs.is_empty(), "{}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 3, "smoke, default and appworld-qwen at least");
}

#[test]
fn bad_configs_name_the_key() {
    let smoke = std::fs::read_to_string(root().join("configs/smoke.toml")).unwrap();
    let cases = [
        ("[data]", "[data]\nbogus = 1", "bogus"),
        (
            "sizes = [\"tiny\"]",
            "sizes = [\"huge\"]",
            "group[0].sizes[0]",
        ),
        (
            "schedules = [\"prost\", \"all\"]",
            "schedules = [\"prost\", \"fast\"]",
            "group[0].schedules[1]",
        ),
        ("epochs = 2", "epochs = 2\nseed = 3", "training.seed"),
        ("epochs = 2", "epochs = 0", "epochs"),
        (
            "tasks_per_split = 6",
            "tasks_per_split = 0",
            "tasks_per_split",
        ),
        (
            "tiny = { preset = \"tiny\" }",
            "tiny = { preset = \"giant\" }",
            "models.tiny.preset",
        ),
        (
            "validation_split = \"dev\"",
            "validation_split = \"train\"",
            "data.validation_split",
        ),
        (
            "learning_curve = { run = \"1A-tiny-all-s0\" }",
            "learning_curve = { run = \"1A-tiny-all-s9\" }",
            "evaluation.learning_curve.run",
        ),
        (
            "corpus = { suite_seeds = [1]",
            "corpus = { suite_seeds = [0]",
            "pretraining.corpus.suite_seeds",
        ),
        (
            "tiny = { preset = \"tiny\" }",
            "tiny = { preset = \"tiny\", pretrained = true }\nbig = { hf = \"x/y\", pretrained = true }",
            "models.big.pretrained",
        ),
    ];
    for (from, to, key) in cases {
        assert!(smoke.contains(from), "{from}");
        let text = smoke.replacen(from, to, 1);
        let err = ExperimentConfig::from_toml(&text)
            .expect_err(to)
            .to_string();
        assert!(
            err.contains(key),
            "`{to}` gives `{err}`, which does not name `{key}`"
        );
    }
    let mixed = smoke.replace(
        "[[group]]",
        "[[group]]\nsystems = [\"two_agent\"]\nallocations = [{ single = \"tiny\" }]\nschedules = [\"prost\"]\nseeds = [0]\n\n[[group]]",
    );
    let err = ExperimentConfig::from_toml(&mixed).unwrap_err().to_string();
    assert!(err.contains("group[0].allocations[0].single"), "{err}");
}

/// `configs/appworld-synthetic.toml` through real AppWorld servers (the engine from PyPI): run
/// by `.ci/appworld` after `cargo xtask appworld setup` and `synth`, with the variables of
/// `cargo xtask appworld env` exported.
#[test]
#[ignore = "needs the AppWorld virtualenv and synthetic data: run .ci/appworld"]
fn appworld_synthetic_experiment_runs_through_real_servers() {
    let (config, out) = committed_config("appworld-synthetic.toml", "appworld-exp");
    let outcome = rung_experiment::run(&config, &RunOptions::default())
        .unwrap()
        .expect("not a dry run");
    let results = read_results(&outcome.results);
    assert_eq!(results.runs.len(), 4);
    for run in &results.runs {
        let split = &run.splits["test_normal"];
        assert_eq!(split.tasks, 6, "the gold file's test_normal split");
        assert!(
            split.subtask_error.is_some(),
            "{}: the judge server gives sub-task verdicts",
            run.name
        );
        assert!(split.cost_per_task.flops > 0.0);
    }
    // The expert data came from real AppWorld: every episode succeeded there.
    let data: Vec<_> = std::fs::read_dir(out.join("stages/data"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(data.len(), 4, "train and dev of two systems");
    for dir in data {
        let done: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("done.json")).unwrap()).unwrap();
        assert_eq!(done["tgc"], 100.0, "{}", dir.display());
        assert!(done["episodes"].as_u64().unwrap() >= 6);
    }
    let _ = std::fs::remove_dir_all(&out);
}
