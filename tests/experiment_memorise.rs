//! `configs/memorise.toml`: can the whole pipeline learn at all? Models trained until they have
//! memorised four tasks' expert trajectories must complete most of those tasks when they play
//! them. This is the one test in which trained models get tasks done, so it catches any
//! disagreement between training and inference (chat rendering, loss masks, tokenisation,
//! role prompts, generation, parsing of the model's code) that the unit tests of each side miss.

mod common;

use rung_experiment::RunOptions;
use rung_experiment::report::Verdict;

use common::{committed_config, read_results};

#[test]
fn memorised_models_complete_their_tasks() {
    let (config, out) = committed_config("memorise.toml", "memorise");

    let outcome = rung_experiment::run(&config, &RunOptions::default())
        .unwrap()
        .expect("not a dry run");
    let results = read_results(&outcome.results);
    assert_eq!(
        results.test_split, "train",
        "evaluated on the training tasks"
    );
    assert_eq!(results.runs.len(), 3);

    for run in &results.runs {
        for (role, training) in &run.training {
            let loss = training.epochs.last().unwrap().loss.unwrap();
            assert!(
                loss < 0.05,
                "{} {role}: memorised (last epoch's training loss {loss})",
                run.name,
            );
        }
        let train = &run.splits["train"];
        assert_eq!(train.tasks, 4);
        println!("{}: TGC {} SGC {}", run.name, train.tgc, train.sgc);
        // Measured: 1A all 100, 1A prost 75, 2A all 75 (one slip, e.g. a wrong digit of a
        // phone number, derails an episode); an untrained or mis-rendered model gets 0.
        assert!(
            train.tgc >= 50.0,
            "{}: a model that memorised its trajectories completes most of its tasks (TGC {})",
            run.name,
            train.tgc
        );
    }

    // With tasks done, the Pareto front ranks effectiveness, and the claims have numbers.
    let headline = &results.configurations["train"];
    assert!(headline.iter().any(|c| c.pareto && c.tgc.mean > 0.0));
    let pareto_claim = &results.claims[1];
    assert_ne!(pareto_claim.verdict, Verdict::NotTested);
    assert!(
        pareto_claim.evidence.iter().all(|e| !e.contains("0% TGC")),
        "{pareto_claim:?}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
