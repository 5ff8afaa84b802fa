//! Batched inference changes the speed of an evaluation, never its trajectories: an untrained
//! model evaluated with its calls merged by the continuous-batching engine, many episodes in
//! flight, gives exactly the episodes of one-at-a-time generation (actions, texts, token
//! counts, FLOPs, ends), greedy and sampled.

use std::sync::Arc;

use rung_agents::{
    AppCatalog, Batching, Budgets, Decoding, ExpertOptions, ModelPolicy, ModelPolicyOptions,
    Policy, System, prompts, run_split,
};
use rung_env::Split;
use rung_model::tokenizer::Tokenizer;
use rung_model::{CausalLm, ModelConfig};
use rung_trajectory::{Episode, Role, SystemKind};
use rung_world::EmbeddedWorld;

mod common;

/// The world's text, to train a small tokenizer on.
fn corpus(world: &EmbeddedWorld) -> Vec<String> {
    let mut texts = vec![
        prompts::single_system(),
        prompts::executor_system(),
        prompts::orchestrator_system(&AppCatalog::embedded()),
        prompts::critic_system(),
    ];
    for task in world.suite().split(Split::Train) {
        texts.push(task.instruction.clone());
        texts.extend(task.gold_cells().into_iter().map(str::to_owned));
    }
    texts
}

/// An episode without its wall time (the one field that depends on the schedule).
fn timeless(mut episode: Episode) -> Episode {
    episode.cost.wall_seconds = 0.0;
    episode
}

struct Setup {
    fixture: common::Fixture,
    model: CausalLm,
    tokenizer: Arc<Tokenizer>,
}

impl Setup {
    fn new() -> Self {
        let fixture = common::Fixture::new();
        let tokenizer = Arc::new(Tokenizer::train_bpe(corpus(&fixture.world), 2048, 2).unwrap());
        let config = ModelConfig::preset("tiny").unwrap();
        let device = rung_model::inference_device();
        device.seed(11);
        let model = CausalLm::new(&config, &device).unwrap();
        Self {
            fixture,
            model,
            tokenizer,
        }
    }

    /// A policy of the one model (the first policy materialises its weights; clones share them).
    fn policy(&self, decoding: Decoding, batching: Option<Batching>) -> ModelPolicy {
        let options = ModelPolicyOptions {
            decoding,
            batching,
            ..ModelPolicyOptions::default()
        };
        ModelPolicy::new(
            "untrained-tiny",
            self.model.clone(),
            Arc::clone(&self.tokenizer),
            options,
        )
        .unwrap()
    }

    /// `kind` played by `policy` (the three-agent system behind an expert orchestrator, so that
    /// the model's executor and critic are asked), over the first dev tasks.
    fn run(&self, kind: SystemKind, policy: Arc<dyn Policy>) -> Vec<Episode> {
        let budgets = Budgets {
            max_interactions: 5,
            max_tokens_per_turn: 40,
            max_subtasks: 2,
            max_executor_steps: 2,
            max_critic_retries: 1,
            max_format_retries: 1,
        };
        let system = match kind {
            SystemKind::ThreeAgent => {
                let experts = self.fixture.experts(ExpertOptions {
                    mistake_rate: 0.0,
                    docs_rate: 0.0,
                });
                System::three_agent(
                    experts.for_role(Role::Orchestrator),
                    Arc::clone(&policy),
                    policy,
                    AppCatalog::embedded(),
                )
            }
            _ => System::of_kind(kind, |_| Arc::clone(&policy), AppCatalog::embedded()),
        }
        .with_budgets(budgets)
        .with_seed(5);
        let options = rung_agents::EvalOptions {
            limit: Some(10),
            threads: 2,
            ..self.fixture.options()
        };
        run_split(&system, Split::Dev, &options)
            .unwrap()
            .into_iter()
            .map(timeless)
            .collect()
    }
}

fn check(setup: &Setup, kind: SystemKind, decoding: Decoding) {
    let one_at_a_time = setup.policy(decoding, None);
    let batched = setup.policy(
        decoding,
        Some(Batching {
            max_concurrent_episodes: 8,
            max_batch: 6,
            ..Batching::default()
        }),
    );
    assert_eq!(one_at_a_time.engine_stats(), None);
    let want = setup.run(kind, Arc::new(one_at_a_time));
    let batched = Arc::new(batched);
    let got = setup.run(kind, Arc::clone(&batched) as Arc<dyn Policy>);
    assert_eq!(got.len(), 10);
    let calls: usize = want.iter().map(|e| e.turns.len()).sum();
    assert!(calls >= 20, "{kind}: only {calls} model calls");
    for (got, want) in got.iter().zip(&want) {
        assert_eq!(got, want, "{kind} {decoding:?}: task {}", want.task_id);
    }
    // The engine did batch: several episodes' calls shared decode steps.
    let stats = batched.engine_stats().unwrap();
    assert!(stats.max_batch >= 2, "{kind}: {stats:?}");
    assert!(stats.max_batch <= 6, "{kind}: {stats:?}");
    assert!(stats.decode_steps < stats.decoded_rows, "{kind}: {stats:?}");
    // Later prompts reuse the keys and values of earlier ones (system prompt, conversation).
    assert!(
        stats.reused_tokens > stats.prefilled_tokens,
        "{kind}: {stats:?}"
    );
}

#[test]
fn batched_greedy_evaluation_gives_the_same_trajectories() {
    let setup = Setup::new();
    check(&setup, SystemKind::Single, Decoding::Greedy);
    check(&setup, SystemKind::ThreeAgent, Decoding::Greedy);
}

#[test]
fn batched_sampled_evaluation_gives_the_same_trajectories() {
    let setup = Setup::new();
    let decoding = Decoding::Sample {
        temperature: 1.0,
        top_p: 0.9,
    };
    check(&setup, SystemKind::Single, decoding);
}
