//! Policies backed by a language model of `rung-model`.
//!
//! A [`ModelPolicy`] plays one role with one [`CausalLm`] (a base model, or a base with that
//! role's LoRA adapter attached) and its tokenizer:
//!
//! 1. the role's conversation is rendered with [`rung_model::chat::render_prompt`] — the same
//!    ChatML rendering training uses, through the same message conversion ([`chat_messages`]),
//!    so a model sees at inference exactly the token sequence it was trained on;
//! 2. [`rung_model::generate()`] continues it, greedily by default or with seeded temperature /
//!    top-p sampling ([`Decoding`]), until `<|im_end|>` (or `<|endoftext|>`, or one of the
//!    model config's end-of-sequence ids) or the token cap. The cap is the system's
//!    tokens-per-turn budget ([`crate::Budgets::max_tokens_per_turn`], passed at episode start),
//!    lowered further by [`ModelPolicyOptions::max_new_tokens`] if set. An over-long output is
//!    thus cut at the budget instead of running on, and the system parses the cut text like
//!    any other (typically an unclosed code block: a malformed output, answered with the
//!    format reminder);
//! 3. the completion carries the exact prompt and generated token counts (the stop token
//!    included, as it was generated) and generation's FLOPs estimate.
//!
//! # Several roles, one base
//!
//! [`load_role_policies`] builds the policies of a whole system from [`ModelSpec`]s: roles that
//! name the same model share one loaded base (burn tensors are reference counted, so cloning a
//! model shares its weights), and a role's adapter is attached through an
//! [`rung_model::AdapterBank`], costing only the adapter's memory. Roles may also name
//! different models.
//!
//! # Threads and batching
//!
//! A policy is `Send + Sync` without a lock: a [`CausalLm`]'s parameters are immutable after
//! loading and generation keeps its KV caches per call. By default ([`Batching`]) every call goes
//! to a continuous-batching [`Engine`] of the policy's model (one engine thread per model; roles
//! of one base model without adapters share it): the calls of all episodes in flight are merged
//! into batched decode steps, and [`crate::Policy::max_concurrent_episodes`] asks the harness to
//! keep enough episodes running to fill the batches. The answers are exactly those of
//! one-at-a-time generation — same text, token counts and FLOPs — so batching changes the speed
//! of an evaluation, never its trajectories. Without batching each call generates its one
//! sequence on the calling thread.
//!
//! # Reproducibility
//!
//! Greedy decoding is deterministic. Sampling draws from a stream seeded by the episode's seed,
//! the role and the index of the call within the episode, so an episode samples the same text
//! however the threads interleave.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rung_model::checkpoint::RECORD_FILE;
use rung_model::tokenizer::Tokenizer;
use rung_model::{
    AdapterBank, CausalLm, Engine, EngineOptions, EngineStats, GenerateOptions, ModelSource,
    Sampling, chat, load_checkpoint, load_hf_model, load_peft_adapter,
};
use rung_trajectory::{ChatRole, Message, Role};

use crate::error::AgentError;
use crate::policy::{Completion, EpisodeContext, Policy, PolicyError};
use crate::seed;

/// The token cap of a call made outside an episode (no budget known; such calls also sample
/// with seed 0); the default tokens-per-turn budget.
pub const DEFAULT_MAX_NEW_TOKENS: u64 = 1024;

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Decoding {
    /// The most likely token (deterministic).
    #[default]
    Greedy,
    /// Sample from the temperature-scaled distribution restricted to the top-p nucleus; the
    /// random stream is seeded per episode, role and call.
    Sample {
        /// Softmax temperature (> 0).
        temperature: f32,
        /// Nucleus mass in (0, 1].
        top_p: f32,
    },
}

/// Batched inference of a model policy: its calls go to a continuous-batching
/// [`Engine`] of its model, which merges the pending calls of all episodes into one forward
/// pass, and the harness runs many episodes at once to keep the batch full. Answers are those of
/// one-at-a-time generation, bit for bit (see [`rung_model::engine`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Episodes the harness keeps in flight (each blocks on its model calls, so many more than
    /// there are cores; the world's work runs on their threads meanwhile).
    pub max_concurrent_episodes: usize,
    /// Most sequences one decode step of the engine holds.
    pub max_batch: usize,
    /// Prompts whose keys and values the engine keeps for reuse by later prompts beginning
    /// the same way (the system prompt, an episode's conversation so far); 0 turns it off.
    pub prefix_cache: usize,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            max_concurrent_episodes: 32,
            max_batch: 32,
            prefix_cache: 64,
        }
    }
}

/// Settings of a model policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPolicyOptions {
    /// Token choice.
    pub decoding: Decoding,
    /// Most tokens one call generates, below the system's tokens-per-turn budget; `None` caps
    /// at the budget alone.
    pub max_new_tokens: Option<u64>,
    /// Longest prompt plus generated tokens a call may reach: generation stops where the
    /// context is full, and a prompt that fills it alone ends the episode with a policy error
    /// instead of running the model past its context. `None` takes the model's
    /// `max_position_embeddings`.
    pub max_context: Option<usize>,
    /// Batched inference (the default); `None` generates each call on the calling thread, one
    /// sequence at a time.
    pub batching: Option<Batching>,
}

impl Default for ModelPolicyOptions {
    fn default() -> Self {
        Self {
            decoding: Decoding::default(),
            max_new_tokens: None,
            max_context: None,
            batching: Some(Batching::default()),
        }
    }
}

/// Converts a role's conversation into `rung-model`'s chat messages, keeping each message's
/// `train` flag. Training and inference both render through this function, so they see the
/// same text.
pub fn chat_messages(messages: &[Message]) -> Vec<chat::Message> {
    messages
        .iter()
        .map(|m| {
            let role = match m.role {
                ChatRole::System => "system",
                ChatRole::User => "user",
                ChatRole::Assistant => chat::ASSISTANT,
            };
            chat::Message::new(role, m.content.clone())
                .with_train(m.train && m.role == ChatRole::Assistant)
        })
        .collect()
}

/// What every episode's instance of one policy shares.
struct Shared {
    name: String,
    model: CausalLm,
    tokenizer: Arc<Tokenizer>,
    stop_token_ids: Vec<u32>,
    pad_token_id: u32,
    options: ModelPolicyOptions,
    max_context: usize,
    /// The batching engine serving `model`, when batching.
    engine: Option<Arc<Engine>>,
}

/// Per-episode state: the cap and the seeded stream of sampling.
struct EpisodeState {
    role: Role,
    seed: u64,
    max_new_tokens: u64,
    calls: AtomicU64,
}

/// A role played by a language model (see the module documentation).
///
/// Cloning is cheap (the model and tokenizer are shared); the policy is `Send + Sync`.
pub struct ModelPolicy {
    shared: Arc<Shared>,
    episode: Option<EpisodeState>,
}

impl std::fmt::Debug for ModelPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelPolicy")
            .field("name", &self.shared.name)
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

impl Clone for ModelPolicy {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            episode: None,
        }
    }
}

// The harness shares one policy between its worker threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ModelPolicy>();
};

impl ModelPolicy {
    /// A policy that generates with `model` and `tokenizer`, recorded in trajectories as
    /// `name`.
    ///
    /// The tokenizer must have the ChatML special tokens, and every id it produces must be
    /// inside the model's vocabulary. The model's lazily initialised parameters (those of a
    /// freshly built, untrained model) are materialised here, on one thread, so a random model
    /// is the same whichever worker first uses it.
    pub fn new(
        name: impl Into<String>,
        model: CausalLm,
        tokenizer: Arc<Tokenizer>,
        options: ModelPolicyOptions,
    ) -> Result<Self, AgentError> {
        Self::build(name.into(), model, tokenizer, options, None)
    }

    /// [`ModelPolicy::new`], batching through `engine` (an engine of this very model, shared
    /// with other roles) instead of starting one, when given and batching is on.
    fn build(
        name: String,
        model: CausalLm,
        tokenizer: Arc<Tokenizer>,
        options: ModelPolicyOptions,
        engine: Option<Arc<Engine>>,
    ) -> Result<Self, AgentError> {
        let setup = |message: String| AgentError::Setup(format!("model `{name}`: {message}"));
        let chat_tokens = tokenizer
            .chat_tokens()
            .map_err(|e| setup(format!("its tokenizer cannot render chats: {e}")))?;
        let config = model.config();
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(setup(format!(
                "the tokenizer has {} tokens but the model's vocabulary only {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        if let Decoding::Sample { temperature, top_p } = options.decoding
            && !(temperature > 0.0 && top_p > 0.0 && top_p <= 1.0)
        {
            return Err(setup(format!(
                "sampling needs a temperature > 0 and top-p in (0, 1], got {temperature} and \
                 {top_p}"
            )));
        }
        if options.max_new_tokens == Some(0) {
            return Err(setup("max_new_tokens must be at least 1".into()));
        }
        if let Some(batching) = options.batching
            && (batching.max_batch == 0 || batching.max_concurrent_episodes == 0)
        {
            return Err(setup(format!(
                "batching needs max_batch and max_concurrent_episodes of at least 1, got {} and {}",
                batching.max_batch, batching.max_concurrent_episodes
            )));
        }
        let mut stop_token_ids = vec![chat_tokens.im_end, chat_tokens.endoftext];
        for &id in &config.eos_token_ids {
            if !stop_token_ids.contains(&id) {
                stop_token_ids.push(id);
            }
        }
        let max_context = options
            .max_context
            .unwrap_or(config.max_position_embeddings);
        // Materialise lazy parameters now (one token: negligible for a loaded checkpoint).
        let probe = GenerateOptions {
            max_new_tokens: 1,
            ..GenerateOptions::default()
        };
        rung_model::generate(&model, &[vec![chat_tokens.im_start]], &probe, None)
            .map_err(|e| setup(format!("a first forward pass failed: {e}")))?;
        // Started after the probe, so the engine thread sees the materialised weights.
        let engine = match (options.batching, engine) {
            (None, _) => None,
            (Some(_), Some(engine)) => Some(engine),
            (Some(batching), None) => {
                Some(Arc::new(start_engine(&model, batching).map_err(|e| {
                    setup(format!("starting its inference engine failed: {e}"))
                })?))
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                name,
                model,
                tokenizer,
                stop_token_ids,
                pad_token_id: chat_tokens.endoftext,
                options,
                max_context,
                engine,
            }),
            episode: None,
        })
    }

    /// The model this policy generates with.
    pub fn model(&self) -> &CausalLm {
        &self.shared.model
    }

    /// Its tokenizer.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.shared.tokenizer
    }

    /// The work of its batching engine so far (`None` without batching); the engine may be
    /// shared with other roles of the same model.
    pub fn engine_stats(&self) -> Option<EngineStats> {
        self.shared.engine.as_ref().map(|e| e.stats())
    }

    /// Its settings.
    pub fn options(&self) -> &ModelPolicyOptions {
        &self.shared.options
    }

    /// The token cap of the next call.
    fn max_new_tokens(&self) -> u64 {
        let budget = self
            .episode
            .as_ref()
            .map_or(DEFAULT_MAX_NEW_TOKENS, |e| e.max_new_tokens);
        self.shared
            .options
            .max_new_tokens
            .map_or(budget, |own| own.min(budget))
            .max(1)
    }

    /// The sampling of the next call, advancing the episode's call counter.
    fn sampling(&self) -> Sampling {
        match self.shared.options.decoding {
            Decoding::Greedy => Sampling::Greedy,
            Decoding::Sample { temperature, top_p } => {
                let seed = match &self.episode {
                    Some(e) => {
                        let call = e.calls.fetch_add(1, Ordering::Relaxed);
                        seed::derive(e.seed, &[e.role.name().as_bytes(), &call.to_le_bytes()])
                    }
                    None => 0,
                };
                Sampling::Sample {
                    temperature,
                    top_p,
                    seed,
                }
            }
        }
    }
}

impl Policy for ModelPolicy {
    fn name(&self) -> String {
        self.shared.name.clone()
    }

    fn complete(&self, messages: &[Message]) -> Result<Completion, PolicyError> {
        let shared = &self.shared;
        let mut conversation = chat_messages(messages);
        // Training flags mean nothing to generation (and the renderer only allows them on
        // assistant turns, which `chat_messages` already ensures).
        for message in &mut conversation {
            message.train = false;
        }
        let prompt = chat::render_prompt(&shared.tokenizer, &conversation)
            .map_err(|e| PolicyError::Generation(format!("rendering the prompt: {e}")))?;
        // Generation stops at the cap or where the context is full, whichever comes first.
        let room = shared.max_context.saturating_sub(prompt.len()) as u64;
        if room == 0 {
            return Err(PolicyError::Generation(format!(
                "context full: the prompt has {} tokens and the model's context {}",
                prompt.len(),
                shared.max_context
            )));
        }
        let max_new_tokens = self.max_new_tokens().min(room);
        let options = GenerateOptions {
            max_new_tokens: max_new_tokens as usize,
            sampling: self.sampling(),
            stop_token_ids: shared.stop_token_ids.clone(),
            stop_strings: Vec::new(),
            pad_token_id: shared.pad_token_id,
        };
        let generation = match &shared.engine {
            Some(engine) => engine.generate(prompt.ids, &options, None),
            None => rung_model::generate(&shared.model, &[prompt.ids], &options, None),
        }
        .map_err(|e| PolicyError::Generation(e.to_string()))?;
        let Some(sequence) = generation.sequences.first() else {
            return Err(PolicyError::Generation(
                "generation returned no sequence".into(),
            ));
        };
        // Special tokens the model wrote before stopping stay in the text, so the next turn's
        // prompt re-renders them as the same ids.
        let text = shared
            .tokenizer
            .decode(&sequence.ids)
            .map_err(|e| PolicyError::Generation(format!("decoding the output: {e}")))?;
        Ok(Completion::new(
            text,
            sequence.prompt_tokens as u64,
            sequence.generated_tokens as u64,
            generation.flops as f64,
        ))
    }

    fn max_concurrent_episodes(&self) -> Option<usize> {
        self.shared
            .options
            .batching
            .map(|b| b.max_concurrent_episodes)
    }

    fn start_episode(
        &self,
        context: &EpisodeContext<'_>,
    ) -> Result<Option<Box<dyn Policy>>, PolicyError> {
        Ok(Some(Box::new(Self {
            shared: Arc::clone(&self.shared),
            episode: Some(EpisodeState {
                role: context.role,
                seed: context.seed,
                max_new_tokens: context.max_tokens_per_turn,
                calls: AtomicU64::new(0),
            }),
        })))
    }
}

/// The engine of a batching policy's model.
fn start_engine(model: &CausalLm, batching: Batching) -> rung_model::Result<Engine> {
    Engine::start(
        model.clone(),
        EngineOptions {
            max_batch: batching.max_batch,
            prefix_cache: batching.prefix_cache,
        },
    )
}

/// Where a role's model comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelSpec {
    /// A model directory — an HF checkpoint (`config.json` plus `model.safetensors` or a
    /// sharded index) or a rung checkpoint (`config.json` plus `model.bpk`) — or a hub id
    /// `owner/name[@revision]` already in the local HF cache.
    pub model: String,
    /// A PEFT LoRA adapter directory (`adapter_config.json`, `adapter_model.safetensors`) to
    /// attach for this role.
    pub adapter: Option<PathBuf>,
    /// The `tokenizer.json` to use; by default the model directory's.
    pub tokenizer: Option<PathBuf>,
}

impl ModelSpec {
    /// The base model `model` with no adapter and its own tokenizer.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }

    /// The name trajectories record: the model, plus `+<adapter>` when one is attached.
    pub fn name(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{}+{}", self.model, adapter.display()),
            None => self.model.clone(),
        }
    }
}

/// Loads a model directory or cached hub model onto the inference device.
pub fn load_model(spec: &str) -> Result<CausalLm, AgentError> {
    let device = rung_model::inference_device();
    let source = ModelSource::parse(spec);
    let loaded = match &source {
        ModelSource::Dir(dir) if dir.join(RECORD_FILE).is_file() => load_checkpoint(dir, &device),
        _ => load_hf_model(&source, &device),
    };
    loaded.map_err(|e| AgentError::Setup(format!("loading model `{spec}`: {e}")))
}

/// The tokenizer of `spec`: its explicit file, else the model's `tokenizer.json`.
fn load_tokenizer(spec: &ModelSpec) -> Result<Tokenizer, AgentError> {
    let path = match &spec.tokenizer {
        Some(path) => Some(path.clone()),
        None => match ModelSource::parse(&spec.model) {
            ModelSource::Dir(dir) => Some(dir.join("tokenizer.json")),
            hub @ ModelSource::Hub { .. } => hub.resolve().ok().and_then(|files| files.tokenizer),
        },
    };
    let Some(path) = path.filter(|p| p.is_file()) else {
        return Err(AgentError::Setup(format!(
            "model `{}` has no tokenizer.json{}: put the tokenizer it was trained with next to \
             the weights, or name one explicitly",
            spec.model,
            spec.tokenizer
                .as_ref()
                .map(|p| format!(" at {}", p.display()))
                .unwrap_or_default()
        )));
    };
    Tokenizer::from_file(&path)
        .map_err(|e| AgentError::Setup(format!("loading the tokenizer {}: {e}", path.display())))
}

/// Builds a [`ModelPolicy`] for every role of `specs`. Roles naming the same model share one
/// loaded copy of its weights; each role's adapter is attached to that shared base through an
/// [`AdapterBank`]. Tokenizers are loaded once per file.
pub fn load_role_policies(
    specs: &BTreeMap<Role, ModelSpec>,
    options: ModelPolicyOptions,
) -> Result<BTreeMap<Role, Arc<dyn Policy>>, AgentError> {
    let device = rung_model::inference_device();
    let mut bases: BTreeMap<&str, CausalLm> = BTreeMap::new();
    let mut banks: BTreeMap<&str, AdapterBank> = BTreeMap::new();
    for spec in specs.values() {
        if !bases.contains_key(spec.model.as_str()) {
            bases.insert(&spec.model, load_model(&spec.model)?);
        }
    }
    // Adapters, per base.
    for (role, spec) in specs {
        let Some(dir) = &spec.adapter else { continue };
        let base = &bases[spec.model.as_str()];
        if let Some(existing) = base.adapter() {
            return Err(AgentError::Setup(format!(
                "model `{}` already carries adapter `{}`, so the {role} cannot attach {} on top; \
                 merge it first or use a checkpoint without an adapter",
                spec.model,
                existing.name,
                dir.display()
            )));
        }
        if !banks.contains_key(spec.model.as_str()) {
            let bank = AdapterBank::new(base.clone())
                .map_err(|e| AgentError::Setup(format!("model `{}`: {e}", spec.model)))?;
            banks.insert(&spec.model, bank);
        }
        let bank = banks.get_mut(spec.model.as_str()).expect("inserted above");
        let adapter = load_peft_adapter(dir, role.name(), bank.base().config(), &device)
            .map_err(|e| AgentError::Setup(format!("loading the {role}'s adapter: {e}")))?;
        bank.insert(adapter)
            .map_err(|e| AgentError::Setup(format!("the {role}'s adapter: {e}")))?;
    }
    let mut tokenizers: BTreeMap<PathBuf, Arc<Tokenizer>> = BTreeMap::new();
    let mut policies: BTreeMap<Role, Arc<dyn Policy>> = BTreeMap::new();
    // Roles that play one base model without an adapter run the same model: one engine serves
    // them all, so their calls share batches.
    let mut engines: BTreeMap<&str, Arc<Engine>> = BTreeMap::new();
    for (role, spec) in specs {
        let model = match &spec.adapter {
            Some(_) => banks[spec.model.as_str()]
                .model(role.name())
                .map_err(|e| AgentError::Setup(e.to_string()))?,
            None => bases[spec.model.as_str()].clone(),
        };
        let key = spec
            .tokenizer
            .clone()
            .unwrap_or_else(|| Path::new(&spec.model).join("tokenizer.json"));
        let tokenizer = match tokenizers.get(&key) {
            Some(tokenizer) => Arc::clone(tokenizer),
            None => {
                let tokenizer = Arc::new(load_tokenizer(spec)?);
                tokenizers.insert(key, Arc::clone(&tokenizer));
                tokenizer
            }
        };
        let shared_engine = match (&spec.adapter, options.batching) {
            (None, Some(_)) => engines.get(spec.model.as_str()).cloned(),
            _ => None,
        };
        let policy = ModelPolicy::build(spec.name(), model, tokenizer, options, shared_engine)?;
        if let (None, Some(engine)) = (&spec.adapter, &policy.shared.engine) {
            engines
                .entry(spec.model.as_str())
                .or_insert_with(|| Arc::clone(engine));
        }
        policies.insert(*role, Arc::new(policy));
    }
    Ok(policies)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_messages_keep_roles_and_train_only_on_assistants() {
        let messages = [
            Message::system("s"),
            Message::user("u"),
            Message::assistant("a", true),
            Message::assistant("b", false),
        ];
        let chat = chat_messages(&messages);
        let roles: Vec<&str> = chat.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "assistant"]);
        let train: Vec<bool> = chat.iter().map(|m| m.train).collect();
        assert_eq!(train, [false, false, true, false]);
        assert_eq!(chat[2].content, "a");
    }

    #[test]
    fn spec_names_show_the_adapter() {
        let mut spec = ModelSpec::new("models/base");
        assert_eq!(spec.name(), "models/base");
        spec.adapter = Some(PathBuf::from("adapters/executor"));
        assert_eq!(spec.name(), "models/base+adapters/executor");
    }
}
