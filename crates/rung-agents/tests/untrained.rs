//! A random, untrained language model plays every role of every system over the dev split
//! without panicking, scores near zero, and every episode ends with a recorded reason.
//!
//! The model is the `tiny` preset (1.1 M parameters) with fresh weights and a byte-level BPE
//! tokenizer trained on the world's own text. Budgets are small (32 new tokens per turn, few
//! interactions) so the three runs over the 150 dev tasks take about a minute on two cores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rung_agents::{
    AppCatalog, Budgets, Decoding, ModelPolicy, ModelPolicyOptions, ModelSpec, Policy, System,
    evaluate, load_role_policies, prompts,
};
use rung_env::Split;
use rung_model::chat::render_prompt;
use rung_model::lora::{LoraAdapter, LoraConfig, LoraInit};
use rung_model::tokenizer::Tokenizer;
use rung_model::{CausalLm, ModelConfig, save_checkpoint, save_hf_model, save_peft_adapter};
use rung_trajectory::{Action, Episode, EpisodeEnd, Message, Role, SystemKind, read_file};
use rung_world::EmbeddedWorld;

mod common;

/// Tokens per turn: small, so that a run over a split is fast on a CPU.
const TOKENS_PER_TURN: u64 = 32;

/// The world's text: instructions and gold code of the train split, plus the system prompts.
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

/// An untrained `tiny` model with a tokenizer of the world's text.
fn untrained_policy(world: &EmbeddedWorld) -> (ModelPolicy, Arc<Tokenizer>) {
    untrained_policy_with(world, ModelPolicyOptions::default())
}

fn untrained_policy_with(
    world: &EmbeddedWorld,
    options: ModelPolicyOptions,
) -> (ModelPolicy, Arc<Tokenizer>) {
    let (model, tokenizer) = untrained_model(world);
    let policy =
        ModelPolicy::new("untrained-tiny", model, Arc::clone(&tokenizer), options).unwrap();
    (policy, tokenizer)
}

/// A fresh `tiny` model (random weights: tests running at the same time draw from the same
/// generator, so two calls may differ) and the tokenizer.
fn untrained_model(world: &EmbeddedWorld) -> (CausalLm, Arc<Tokenizer>) {
    let tokenizer = Arc::new(Tokenizer::train_bpe(corpus(world), 2048, 2).unwrap());
    assert!(tokenizer.vocab_size() > 1000, "{}", tokenizer.vocab_size());
    let config = ModelConfig::preset("tiny").unwrap();
    assert!(config.vocab_size >= tokenizer.vocab_size());
    let device = rung_model::inference_device();
    device.seed(7);
    (CausalLm::new(&config, &device).unwrap(), tokenizer)
}

/// A train task of the fixture's world.
fn some_task(fixture: &common::Fixture) -> rung_env::TaskId {
    fixture.gold.tasks(Split::Train).swap_remove(0)
}

/// What two runs of one episode must share: everything but the wall time.
fn texts(episode: &Episode) -> Vec<Vec<Message>> {
    episode.turns.iter().map(|t| t.messages.clone()).collect()
}

#[test]
fn an_untrained_model_runs_the_dev_split_in_every_system() {
    let fixture = common::Fixture::new();
    let (policy, tokenizer) = untrained_policy(&fixture.world);
    let policy: Arc<dyn Policy> = Arc::new(policy);
    let budgets = Budgets {
        max_interactions: 6,
        max_tokens_per_turn: TOKENS_PER_TURN,
        max_subtasks: 3,
        max_executor_steps: 3,
        max_critic_retries: 1,
        max_format_retries: 1,
    };
    let dir = std::env::temp_dir().join(format!("rung-agents-untrained-{}", std::process::id()));
    for kind in SystemKind::ALL {
        let started = Instant::now();
        let system = System::of_kind(kind, |_| Arc::clone(&policy), AppCatalog::embedded())
            .with_budgets(budgets);
        let path = dir.join(format!("{kind}.jsonl"));
        let options = rung_agents::EvalOptions {
            trajectories: Some(path.clone()),
            ..fixture.options()
        };
        let report = evaluate(&system, Split::Dev, &options).unwrap();
        eprintln!(
            "{kind}: {:.1} s\n{}",
            started.elapsed().as_secs_f64(),
            report.table()
        );
        assert_eq!(report.episodes, 150, "{kind}: the whole dev split");
        assert!(
            report.scores.overall.tgc <= 5.0,
            "{kind}: an untrained model scores {}",
            report.scores.overall.tgc
        );
        assert_eq!(report.ends.values().sum::<usize>(), 150);
        assert!(report.cost.total.flops > 0.0, "{kind}: FLOPs are counted");

        let episodes = read_file(&path).unwrap();
        assert_eq!(episodes.len(), 150);
        let mut ends: BTreeMap<String, usize> = BTreeMap::new();
        for episode in &episodes {
            assert!(
                !episode.turns.is_empty(),
                "{}: no model call",
                episode.task_id
            );
            assert!(!episode.end.label().is_empty());
            assert!(
                !matches!(episode.end, EpisodeEnd::PolicyError { .. }),
                "{}: {:?}",
                episode.task_id,
                episode.end
            );
            *ends.entry(episode.end.label()).or_default() += 1;
            for turn in &episode.turns {
                assert!(turn.generated_tokens >= 1);
                assert!(
                    turn.generated_tokens <= TOKENS_PER_TURN,
                    "capped at the budget"
                );
                assert!(turn.flops > 0.0);
                // Token counts are exact: the prompt is the rendering of the messages before
                // the completion.
                let before = &turn.messages[..turn.messages.len() - 1];
                let chat = rung_agents::model_policy::chat_messages(before)
                    .into_iter()
                    .map(|m| m.with_train(false))
                    .collect::<Vec<_>>();
                let rendered = render_prompt(&tokenizer, &chat).unwrap();
                assert_eq!(turn.prompt_tokens, rendered.len() as u64);
                if let Action::Malformed { reason } = &turn.action {
                    assert!(!reason.is_empty());
                }
            }
        }
        assert_eq!(ends, report.ends, "{kind}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sampling_is_seeded_by_the_episode_and_greedy_is_deterministic() {
    let fixture = common::Fixture::new();
    let task = some_task(&fixture);
    let sample = ModelPolicyOptions {
        decoding: Decoding::Sample {
            temperature: 1.0,
            top_p: 0.95,
        },
        ..ModelPolicyOptions::default()
    };
    let budgets = Budgets {
        max_tokens_per_turn: 16,
        max_format_retries: 2,
        ..Budgets::default()
    };
    let (model, tokenizer) = untrained_model(&fixture.world);
    let run = |options: ModelPolicyOptions, seed: u64| {
        // One set of weights for every run (policies materialise them on creation).
        let policy = ModelPolicy::new("m", model.clone(), Arc::clone(&tokenizer), options);
        let policy: Arc<dyn Policy> = Arc::new(policy.unwrap());
        let system = System::single(policy, AppCatalog::embedded())
            .with_budgets(budgets)
            .with_seed(seed);
        system.run_episode(fixture.world.as_ref(), &task).unwrap()
    };
    let a = run(sample, 1);
    let b = run(sample, 1);
    let c = run(sample, 2);
    assert_eq!(texts(&a), texts(&b), "same seed, same samples");
    assert_ne!(texts(&a), texts(&c), "another seed samples otherwise");
    // Within an episode, each call draws from its own stream.
    let outputs: Vec<&str> = a
        .turns
        .iter()
        .map(|t| t.messages.last().unwrap().content.as_str())
        .collect();
    assert_eq!(outputs.len(), 3);
    assert_ne!(outputs[0], outputs[1]);
    let greedy = ModelPolicyOptions::default();
    assert_eq!(texts(&run(greedy, 1)), texts(&run(greedy, 2)));
    // An explicit cap below the budget wins.
    let capped = run(
        ModelPolicyOptions {
            max_new_tokens: Some(5),
            ..greedy
        },
        1,
    );
    assert!(capped.turns.iter().all(|t| t.generated_tokens == 5));
}

#[test]
fn policies_load_from_checkpoints_with_per_role_adapters() {
    let fixture = common::Fixture::new();
    let (policy, tokenizer) = untrained_policy(&fixture.world);
    let dir = std::env::temp_dir().join(format!("rung-agents-load-{}", std::process::id()));
    let rung_dir = dir.join("rung");
    let hf_dir = dir.join("hf");
    let adapter_dir = dir.join("executor-lora");
    save_checkpoint(policy.model(), &rung_dir).unwrap();
    save_hf_model(policy.model(), &hf_dir).unwrap();
    tokenizer.save(rung_dir.join("tokenizer.json")).unwrap();
    let config = policy.model().config().clone();
    let adapter = LoraAdapter::new(
        "trained",
        LoraConfig::default(),
        &config,
        LoraInit::RandomB { bound: 0.05 },
        3,
        &rung_model::inference_device(),
    )
    .unwrap();
    save_peft_adapter(&adapter, &adapter_dir, None).unwrap();

    let rung_spec = ModelSpec::new(rung_dir.display().to_string());
    let specs = BTreeMap::from([
        (Role::Orchestrator, rung_spec.clone()),
        (
            Role::Executor,
            ModelSpec {
                adapter: Some(adapter_dir.clone()),
                ..rung_spec.clone()
            },
        ),
        (
            Role::Critic,
            ModelSpec {
                tokenizer: Some(rung_dir.join("tokenizer.json")),
                ..ModelSpec::new(hf_dir.display().to_string())
            },
        ),
    ]);
    let policies = load_role_policies(&specs, ModelPolicyOptions::default()).unwrap();
    assert_eq!(policies[&Role::Orchestrator].name(), rung_spec.model);
    assert_eq!(
        policies[&Role::Executor].name(),
        format!("{}+{}", rung_spec.model, adapter_dir.display())
    );
    let messages = prompts::critic_start(
        &prompts::SubtaskSpec {
            app: "mail".into(),
            instruction: "find the latest email".into(),
        },
        &[],
        "x = 1",
    );
    let outputs: Vec<_> = [Role::Orchestrator, Role::Executor, Role::Critic]
        .iter()
        .map(|role| policies[role].complete(&messages).unwrap())
        .collect();
    let original = policy.complete(&messages).unwrap();
    // The checkpoint and the HF export are the same model as the one saved.
    assert_eq!(outputs[0], original);
    assert_eq!(outputs[2], original);
    // The executor runs the LoRA branches too, which the FLOPs estimate counts.
    assert_eq!(outputs[1].prompt_tokens, original.prompt_tokens);
    assert!(outputs[1].flops > original.flops);

    // Generation stops where the context is full; a prompt that fills it is a policy error.
    let context = |max_context| {
        let options = ModelPolicyOptions {
            max_context: Some(max_context),
            ..ModelPolicyOptions::default()
        };
        let model = policy.model().clone();
        ModelPolicy::new("m", model, Arc::clone(&tokenizer), options)
            .unwrap()
            .complete(&messages)
    };
    let prompt = original.prompt_tokens as usize;
    let short = context(prompt + 3).unwrap();
    assert!(short.generated_tokens <= 3);
    let error = context(prompt).unwrap_err().to_string();
    assert!(error.contains("context full"), "{error}");

    // Missing tokenizers and misplaced adapters are explained.
    let no_tokenizer =
        BTreeMap::from([(Role::Single, ModelSpec::new(hf_dir.display().to_string()))]);
    let error = load_role_policies(&no_tokenizer, ModelPolicyOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("no tokenizer.json"), "{error}");
    let missing = BTreeMap::from([(
        Role::Single,
        ModelSpec::new(dir.join("nothing").display().to_string()),
    )]);
    let error = load_role_policies(&missing, ModelPolicyOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("nothing"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// With all roles untrained, the orchestrator never issues a sub-task, so the executor and the
/// critic are never asked. Expert partners get them asked: an untrained executor behind an
/// expert orchestrator, and an untrained critic reviewing an expert executor.
#[test]
fn an_untrained_executor_and_critic_run_behind_expert_partners() {
    let fixture = common::Fixture::new();
    // The experts' (estimated) outputs are longer than the untrained model's cap, so the cap
    // is the policy's own rather than the budget.
    let capped = ModelPolicyOptions {
        max_new_tokens: Some(TOKENS_PER_TURN),
        ..ModelPolicyOptions::default()
    };
    let (policy, _) = untrained_policy_with(&fixture.world, capped);
    let untrained: Arc<dyn Policy> = Arc::new(policy);
    let experts = fixture.experts(rung_agents::ExpertOptions {
        mistake_rate: 0.0,
        docs_rate: 0.0,
    });
    let budgets = Budgets {
        max_format_retries: 1,
        ..Budgets::default()
    };
    let options = rung_agents::EvalOptions {
        limit: Some(20),
        ..fixture.options()
    };
    let systems = [
        (
            Role::Executor,
            System::two_agent(
                experts.for_role(Role::Orchestrator),
                Arc::clone(&untrained),
                AppCatalog::embedded(),
            ),
        ),
        (
            Role::Critic,
            System::three_agent(
                experts.for_role(Role::Orchestrator),
                experts.for_role(Role::Executor),
                Arc::clone(&untrained),
                AppCatalog::embedded(),
            ),
        ),
    ];
    for (role, system) in systems {
        let system = system.with_budgets(budgets);
        let episodes = rung_agents::run_split(&system, Split::Dev, &options).unwrap();
        assert_eq!(episodes.len(), 20);
        let successes = episodes.iter().filter(|e| e.evaluation.success).count();
        assert!(successes <= 1, "{role}: {successes} successes");
        for episode in &episodes {
            let turns: Vec<_> = episode.turns_of(role).collect();
            assert!(
                !turns.is_empty(),
                "{}: the {role} was not asked: {:?} {:#?}",
                episode.task_id,
                episode.end,
                episode
                    .turns
                    .iter()
                    .map(|t| (t.role, &t.action))
                    .collect::<Vec<_>>()
            );
            assert!(
                turns
                    .iter()
                    .all(|t| t.flops > 0.0 && t.generated_tokens <= TOKENS_PER_TURN)
            );
            assert!(
                matches!(
                    episode.end,
                    EpisodeEnd::BudgetExceeded { .. } | EpisodeEnd::RepeatedAction { .. }
                ) || episode.evaluation.success,
                "{}: {:?}",
                episode.task_id,
                episode.end
            );
        }
    }
}
