//! The records: an episode, its turns and messages, its cost and how it ended.
//!
//! Field names are part of the on-disk format (see `datasets/trajectories/README.md`); changing
//! the meaning or shape of one requires a new [`SCHEMA_VERSION`].

use std::collections::BTreeMap;
use std::fmt;

use rung_env::{Evaluation, Split, TaskId};
use serde::{Deserialize, Serialize};

/// Version of the record layout written by this build. Readers refuse other versions rather
/// than guess, so an old training run can never silently misread a newer file.
pub const SCHEMA_VERSION: u32 = 1;

/// Which agent system produced an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemKind {
    /// One model writes all the code and completes the task.
    Single,
    /// An orchestrator delegates sub-tasks to an executor.
    TwoAgent,
    /// Orchestrator and executor plus a critic that reviews each sub-task.
    ThreeAgent,
}

impl SystemKind {
    /// All kinds, smallest team first.
    pub const ALL: [SystemKind; 3] = [
        SystemKind::Single,
        SystemKind::TwoAgent,
        SystemKind::ThreeAgent,
    ];

    /// The name used on disk and on the command line (`two_agent`).
    pub fn name(self) -> &'static str {
        match self {
            SystemKind::Single => "single",
            SystemKind::TwoAgent => "two_agent",
            SystemKind::ThreeAgent => "three_agent",
        }
    }

    /// The roles of the system, in the order they act.
    pub fn roles(self) -> &'static [Role] {
        match self {
            SystemKind::Single => &[Role::Single],
            SystemKind::TwoAgent => &[Role::Orchestrator, Role::Executor],
            SystemKind::ThreeAgent => &[Role::Orchestrator, Role::Executor, Role::Critic],
        }
    }
}

impl fmt::Display for SystemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for SystemKind {
    type Err = String;

    /// Accepts `two_agent` and `two-agent` alike, since command lines prefer dashes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.replace('-', "_");
        SystemKind::ALL
            .into_iter()
            .find(|k| k.name() == wanted)
            .ok_or_else(|| {
                format!("unknown system `{s}`: expected single, two_agent or three_agent")
            })
    }
}

/// The part an agent plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The whole task, alone.
    Single,
    /// Plans and tracks sub-tasks, completes the task.
    Orchestrator,
    /// Writes code for one sub-task until it is done.
    Executor,
    /// Checks a sub-task's result and may send it back once.
    Critic,
}

impl Role {
    /// The name used on disk (`orchestrator`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Single => "single",
            Role::Orchestrator => "orchestrator",
            Role::Executor => "executor",
            Role::Critic => "critic",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The system and the model behind each of its roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemConfig {
    /// The system.
    pub kind: SystemKind,
    /// Model name per role (for example `expert`, or a base model plus adapter).
    pub models: BTreeMap<Role, String>,
}

/// Who wrote a chat message, in OpenAI's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    /// Instructions that set up the role.
    System,
    /// Everything the system tells the model: task, observations, results, feedback.
    User,
    /// What the model produced.
    Assistant,
}

/// One chat message: OpenAI's `{role, content}` plus whether a trainer should learn it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Author.
    pub role: ChatRole,
    /// Exact text, as the model saw or produced it.
    pub content: String,
    /// Whether supervised training should put loss on this message. Only assistant messages
    /// can be true; a deliberate expert mistake or a malformed output is false, so models learn
    /// the recovery without learning the mistake.
    pub train: bool,
}

impl Message {
    /// A system message (never trained).
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::System,
            content: content.into(),
            train: false,
        }
    }

    /// A user message (never trained).
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::User,
            content: content.into(),
            train: false,
        }
    }

    /// An assistant message with its training flag.
    pub fn assistant(content: impl Into<String>, train: bool) -> Self {
        Self {
            role: ChatRole::Assistant,
            content: content.into(),
            train,
        }
    }
}

/// What the system understood a model's output to be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A code cell to run (single agent, executor).
    Code {
        /// The code, without its fence.
        code: String,
    },
    /// The executor's end-of-sub-task report.
    Report {
        /// The short result after `DONE:`.
        result: String,
    },
    /// The orchestrator delegates a sub-task.
    Subtask {
        /// Target app.
        app: String,
        /// One-line instruction.
        instruction: String,
    },
    /// The orchestrator completes the task.
    Complete {
        /// The answer text after `COMPLETE:`; `None` when the task asks no question.
        answer: Option<String>,
    },
    /// The critic accepts the sub-task's result.
    Accept,
    /// The critic sends the sub-task back.
    Retry {
        /// What to fix.
        feedback: String,
    },
    /// The output matched none of the role's formats.
    Malformed {
        /// Why it did not parse.
        reason: String,
    },
}

/// One model call: what the model saw, what it produced, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// The role that was called.
    pub role: Role,
    /// The sub-task this turn belongs to, **0-based** in the order the orchestrator issued
    /// them (the orchestrator's turn that issues sub-task `k` carries `k`). `None` for turns
    /// outside any sub-task: the single agent, and the orchestrator's final or malformed
    /// outputs.
    pub subtask: Option<usize>,
    /// The exact messages the model was given, followed by the completion it produced as the
    /// last (assistant) message.
    pub messages: Vec<Message>,
    /// The parsed completion.
    pub action: Action,
    /// Code the system ran in the environment because of this turn: the code action itself,
    /// or the `complete_task` call an orchestrator's `COMPLETE` triggers.
    pub code: Option<String>,
    /// The environment's output for `code`.
    pub observation: Option<String>,
    /// Prompt tokens as counted by the policy (scripted policies estimate them).
    pub prompt_tokens: u64,
    /// Generated tokens as counted by the policy.
    pub generated_tokens: u64,
    /// Floating-point operations of the call, as reported by the policy (0 for scripts).
    pub flops: f64,
}

impl Turn {
    /// The completion the model produced (the last message).
    pub fn completion(&self) -> Option<&Message> {
        self.messages.last()
    }
}

/// A budget of the agent system, named in an episode that exceeded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// Code executions per task.
    Interactions,
    /// Generated tokens in one model call.
    TokensPerTurn,
    /// Sub-tasks per task.
    Subtasks,
    /// Executor calls per sub-task.
    ExecutorSteps,
    /// Consecutive outputs in no valid format.
    FormatRetries,
}

impl Budget {
    /// The name used on disk.
    pub fn name(self) -> &'static str {
        match self {
            Budget::Interactions => "interactions",
            Budget::TokensPerTurn => "tokens_per_turn",
            Budget::Subtasks => "subtasks",
            Budget::ExecutorSteps => "executor_steps",
            Budget::FormatRetries => "format_retries",
        }
    }
}

/// How an episode ended. Every episode is evaluated, however it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum EpisodeEnd {
    /// `apis.supervisor.complete_task` was called.
    Completed,
    /// A budget ran out before the task was completed.
    BudgetExceeded {
        /// Which one.
        budget: Budget,
    },
    /// A role repeated its previous action verbatim; the repeat was not run.
    RepeatedAction {
        /// Who repeated.
        role: Role,
    },
    /// A policy failed to produce any output (a model error, not a bad output).
    PolicyError {
        /// Whose policy.
        role: Role,
        /// The policy's error message.
        message: String,
    },
}

impl EpisodeEnd {
    /// A short label for tables (`budget_exceeded:interactions`).
    pub fn label(&self) -> String {
        match self {
            EpisodeEnd::Completed => "completed".into(),
            EpisodeEnd::BudgetExceeded { budget } => format!("budget_exceeded:{}", budget.name()),
            EpisodeEnd::RepeatedAction { role } => format!("repeated_action:{role}"),
            EpisodeEnd::PolicyError { role, .. } => format!("policy_error:{role}"),
        }
    }
}

/// What an episode cost.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cost {
    /// Prompt tokens over all model calls (a prompt re-read at every call counts every time).
    pub prompt_tokens: u64,
    /// Generated tokens over all model calls.
    pub generated_tokens: u64,
    /// Floating-point operations over all model calls.
    pub flops: f64,
    /// Wall-clock seconds of the whole episode, environment included.
    pub wall_seconds: f64,
    /// Code executions sent to the environment (AppWorld's interactions).
    pub interactions: u32,
}

impl Cost {
    /// Adds another cost to this one.
    pub fn add(&mut self, other: &Cost) {
        self.prompt_tokens += other.prompt_tokens;
        self.generated_tokens += other.generated_tokens;
        self.flops += other.flops;
        self.wall_seconds += other.wall_seconds;
        self.interactions += other.interactions;
    }
}

/// One agent system working on one task, start to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The task.
    pub task_id: TaskId,
    /// The task's split, where the runner knows it.
    pub split: Option<Split>,
    /// The system and its models.
    pub system: SystemConfig,
    /// Seed of the episode (policies that sample or inject mistakes derive theirs from it).
    pub seed: u64,
    /// The task's instruction, for readers that do not want to dig it out of the messages.
    pub instruction: String,
    /// Model calls in the order they happened.
    pub turns: Vec<Turn>,
    /// The environment's evaluation at the end.
    pub evaluation: Evaluation,
    /// What it cost.
    pub cost: Cost,
    /// How it ended.
    pub end: EpisodeEnd,
}

impl Episode {
    /// The code the episode ran, in order: replaying these cells from the task's start state
    /// reproduces the episode's end state.
    pub fn code_cells(&self) -> impl Iterator<Item = &str> {
        self.turns.iter().filter_map(|t| t.code.as_deref())
    }

    /// The turns of one role.
    pub fn turns_of(&self, role: Role) -> impl Iterator<Item = &Turn> {
        self.turns.iter().filter(move |t| t.role == role)
    }
}
