//! Building episodes by hand, for tests, examples and documentation.
//!
//! [`EpisodeBuilder`] keeps one conversation per call site the way rung's agent systems do: a
//! turn's messages are its conversation so far followed by its completion, and the next turn of
//! the same conversation sees that completion and whatever user message came after it. So
//! hand-written episodes have exactly the shape of generated ones.
//!
//! ```
//! use rung_segment::build::EpisodeBuilder;
//! use rung_trajectory::{Role, SystemKind};
//!
//! let mut b = EpisodeBuilder::new(SystemKind::TwoAgent, "a1b2c3d_1", "Find my son.");
//! let orch = b.open(Role::Orchestrator, "You plan.", "Task: Find my son.");
//! b.delegate(orch, 0, "phone", "Find the son.");
//! let exec = b.open(Role::Executor, "You code.", "Sub-task: Find the son.");
//! b.code(exec, Some(0), "print(apis.phone.search_contacts(relationship=\"son\"))", true, "[...]");
//! b.report(exec, 0, "son = {...}", true);
//! b.user(orch, "Result: son = {...}");
//! b.complete(orch, "None");
//! let episode = b.finish();
//! assert_eq!(episode.turns.len(), 4);
//! ```

use std::collections::BTreeMap;

use rung_env::{Evaluation, TaskId};
use rung_trajectory::{
    Action, Cost, Episode, EpisodeEnd, Message, Role, SCHEMA_VERSION, SystemConfig, SystemKind,
    Turn,
};

/// Builds an [`Episode`] turn by turn (see the module documentation).
#[derive(Debug, Clone)]
pub struct EpisodeBuilder {
    episode: Episode,
    conversations: Vec<(Role, Vec<Message>)>,
}

impl EpisodeBuilder {
    /// An empty, completed, successful episode of difficulty 1.
    ///
    /// # Panics
    /// When `task_id` is not a valid task id (`<7 hex>_<n>`).
    pub fn new(kind: SystemKind, task_id: &str, instruction: &str) -> Self {
        let models: BTreeMap<Role, String> = kind
            .roles()
            .iter()
            .map(|r| (*r, "hand".to_owned()))
            .collect();
        Self {
            episode: Episode {
                schema_version: SCHEMA_VERSION,
                task_id: task_id.parse::<TaskId>().expect("a valid task id"),
                split: None,
                system: SystemConfig { kind, models },
                seed: 0,
                instruction: instruction.to_owned(),
                turns: Vec::new(),
                evaluation: Evaluation {
                    success: true,
                    difficulty: 1,
                    num_tests: 1,
                    passes: Vec::new(),
                    failures: Vec::new(),
                },
                cost: Cost::default(),
                end: EpisodeEnd::Completed,
            },
            conversations: Vec::new(),
        }
    }

    /// Sets the difficulty recorded in the evaluation.
    pub fn difficulty(mut self, difficulty: u8) -> Self {
        self.episode.evaluation.difficulty = difficulty;
        self
    }

    /// Sets the episode's seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.episode.seed = seed;
        self
    }

    /// Opens a conversation of `role` with a system prompt and a first user message; returns its
    /// handle.
    pub fn open(&mut self, role: Role, system: &str, user: &str) -> usize {
        self.conversations
            .push((role, vec![Message::system(system), Message::user(user)]));
        self.conversations.len() - 1
    }

    /// Appends a user message (an observation, a result, feedback) to a conversation.
    pub fn user(&mut self, conversation: usize, text: &str) {
        self.conversations[conversation].1.push(Message::user(text));
    }

    /// Appends a turn: the conversation's model produced `completion` (parsed as `action`).
    /// Returns the turn's index.
    pub fn turn(
        &mut self,
        conversation: usize,
        subtask: Option<usize>,
        completion: &str,
        train: bool,
        action: Action,
        code: Option<&str>,
    ) -> usize {
        let (role, messages) = &mut self.conversations[conversation];
        messages.push(Message::assistant(completion, train));
        self.episode.turns.push(Turn {
            role: *role,
            subtask,
            messages: messages.clone(),
            action,
            code: code.map(str::to_owned),
            observation: None,
            prompt_tokens: 0,
            generated_tokens: 0,
            flops: 0.0,
        });
        self.episode.turns.len() - 1
    }

    /// A code turn (fenced Python) followed by the observation as the next user message.
    pub fn code(
        &mut self,
        conversation: usize,
        subtask: Option<usize>,
        code: &str,
        train: bool,
        observation: &str,
    ) -> usize {
        let completion = format!("```python\n{code}\n```");
        let turn = self.turn(
            conversation,
            subtask,
            &completion,
            train,
            Action::Code {
                code: code.to_owned(),
            },
            Some(code),
        );
        self.episode.turns[turn].observation = Some(observation.to_owned());
        self.user(conversation, observation);
        turn
    }

    /// An orchestrator delegation `SUBTASK <app>: <instruction>` of sub-task `k`.
    pub fn delegate(
        &mut self,
        conversation: usize,
        k: usize,
        app: &str,
        instruction: &str,
    ) -> usize {
        self.turn(
            conversation,
            Some(k),
            &format!("SUBTASK {app}: {instruction}"),
            true,
            Action::Subtask {
                app: app.to_owned(),
                instruction: instruction.to_owned(),
            },
            None,
        )
    }

    /// An executor's `DONE: <result>` for sub-task `k`.
    pub fn report(&mut self, conversation: usize, k: usize, result: &str, train: bool) -> usize {
        self.turn(
            conversation,
            Some(k),
            &format!("DONE: {result}"),
            train,
            Action::Report {
                result: result.to_owned(),
            },
            None,
        )
    }

    /// A critic's verdict on sub-task `k`: `ACCEPT`, or `RETRY: <feedback>`.
    pub fn verdict(&mut self, conversation: usize, k: usize, retry: Option<&str>) -> usize {
        let (text, action) = match retry {
            None => ("ACCEPT".to_owned(), Action::Accept),
            Some(feedback) => (
                format!("RETRY: {feedback}"),
                Action::Retry {
                    feedback: feedback.to_owned(),
                },
            ),
        };
        self.turn(conversation, Some(k), &text, true, action, None)
    }

    /// An orchestrator's `COMPLETE: <answer>`.
    pub fn complete(&mut self, conversation: usize, answer: &str) -> usize {
        let code = format!("apis.supervisor.complete_task(answer={answer})");
        self.turn(
            conversation,
            None,
            &format!("COMPLETE: {answer}"),
            true,
            Action::Complete {
                answer: Some(answer.to_owned()),
            },
            Some(&code),
        )
    }

    /// An output in no valid format (never trained).
    pub fn malformed(&mut self, conversation: usize, subtask: Option<usize>, text: &str) -> usize {
        self.turn(
            conversation,
            subtask,
            text,
            false,
            Action::Malformed {
                reason: "no format matched".to_owned(),
            },
            None,
        )
    }

    /// The episode.
    pub fn finish(self) -> Episode {
        self.episode
    }
}
