//! The interface between an agent system and whatever produces a role's text: a language model,
//! a scripted expert, or a test double.

use rung_env::TaskInfo;
use rung_trajectory::{Message, Role, SystemKind};

use crate::budget::Budgets;
use crate::tokens::{estimate_prompt_tokens, estimate_tokens};

/// One model output and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The generated text, without the chat template's end-of-turn marker.
    pub text: String,
    /// Tokens of the prompt the policy consumed.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Floating-point operations of the call (0 for policies that run no model).
    pub flops: f64,
    /// Whether a trainer should imitate this output. Scripted experts clear it on the mistakes
    /// they make on purpose (the recovery that follows is what models should learn); model
    /// policies leave it set.
    pub train: bool,
}

impl Completion {
    /// A completion with counts measured by the caller.
    pub fn new(
        text: impl Into<String>,
        prompt_tokens: u64,
        generated_tokens: u64,
        flops: f64,
    ) -> Self {
        Self {
            text: text.into(),
            prompt_tokens,
            generated_tokens,
            flops,
            train: true,
        }
    }

    /// A completion of a policy without a tokenizer: token counts are the deterministic
    /// estimates of [`crate::tokens`], FLOPs are 0.
    pub fn estimated(messages: &[Message], text: impl Into<String>) -> Self {
        let text = text.into();
        let generated = estimate_tokens(&text);
        Self::new(text, estimate_prompt_tokens(messages), generated, 0.0)
    }

    /// The same completion marked as not to be imitated.
    pub fn not_for_training(mut self) -> Self {
        self.train = false;
        self
    }
}

/// Why a policy produced no output at all. A bad output is not an error (the system handles and
/// records it); this is for failures such as a model backend error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Generation failed (backend or tokenizer error, context too long).
    #[error("generation failed: {0}")]
    Generation(String),
    /// The policy cannot play this episode (a scripted expert without a gold plan for it).
    #[error("cannot play task {task}: {reason}")]
    Unavailable {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// The conversation is not one the policy can continue (a script that lost its place).
    #[error("unexpected conversation: {0}")]
    Unexpected(String),
}

/// What a policy is told when an episode starts.
#[derive(Debug, Clone, Copy)]
pub struct EpisodeContext<'a> {
    /// The task as the environment describes it (id, instruction, supervisor, clock).
    pub task: &'a TaskInfo,
    /// The role the policy plays in this episode.
    pub role: Role,
    /// The system it plays in.
    pub system: SystemKind,
    /// The episode's seed; a policy that samples or makes seeded choices derives its randomness
    /// from it, so that episodes are reproducible however threads interleave.
    pub seed: u64,
    /// The system's tokens-per-turn budget ([`crate::Budgets::max_tokens_per_turn`]): a model
    /// policy caps generation at it, so that an over-long output ends cleanly at the cap
    /// instead of overrunning the budget.
    pub max_tokens_per_turn: u64,
    /// All of the system's budgets: a scripted expert fits its deliberate detours (mistakes,
    /// look-ups, format slips) into them, so that the data it writes under evaluation budgets
    /// shows the same retry messages a model meets there and still succeeds.
    pub budgets: Budgets,
}

/// Produces a role's next output from the conversation so far.
///
/// `messages` is the whole conversation of the role in OpenAI's shape (system, user and
/// assistant messages; the `train` flags are for trainers and carry no meaning here). A model
/// policy renders it with its chat template, generates until its end-of-turn token, and
/// reports its own token counts and FLOPs. It should cap generation at the system's tokens-per-
/// turn budget (see [`crate::Budgets`]), which the system passes in
/// [`EpisodeContext::max_tokens_per_turn`] when an episode starts (see
/// [`crate::model_policy::ModelPolicy`]).
pub trait Policy: Send + Sync {
    /// The model's name as recorded in trajectories (for example `expert`, or a base model and
    /// adapter).
    fn name(&self) -> String;

    /// The next output.
    fn complete(&self, messages: &[Message]) -> Result<Completion, PolicyError>;

    /// How many episodes the harness should keep in flight for this policy to be used well: a
    /// batching model policy serves the pending calls of many episodes in one forward pass, so
    /// it wants many more episodes running than there are cores. `None` (the default): one
    /// episode per worker thread serves it as well as any.
    fn max_concurrent_episodes(&self) -> Option<usize> {
        None
    }

    /// Called once per role at the start of every episode. A policy that needs per-episode
    /// state (a scripted expert needs the task's gold plan, a sampling model its seeded
    /// generator) returns a fresh policy that plays this episode; `None` means this policy
    /// plays it as it is.
    fn start_episode(
        &self,
        context: &EpisodeContext<'_>,
    ) -> Result<Option<Box<dyn Policy>>, PolicyError> {
        let _ = context;
        Ok(None)
    }
}
