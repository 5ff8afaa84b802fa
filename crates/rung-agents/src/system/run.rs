//! The bookkeeping every system shares: calling policies, running code, recording turns and
//! enforcing budgets.

use rung_env::{EnvError, Environment, TaskInfo};
use rung_trajectory::{Action, Budget, EpisodeEnd, Message, Role, Turn};

use crate::apps::AppCatalog;
use crate::budget::Budgets;
use crate::policy::{Completion, Policy};

/// Why a system loop stops: the episode ended (however), or the environment failed.
pub(crate) enum Stop {
    /// The episode is over; evaluate it.
    End(EpisodeEnd),
    /// The environment failed; the episode cannot be scored.
    Env(EnvError),
}

impl From<EnvError> for Stop {
    fn from(error: EnvError) -> Self {
        Stop::Env(error)
    }
}

/// Ends the episode with `end`.
pub(crate) fn end<T>(end: EpisodeEnd) -> Result<T, Stop> {
    Err(Stop::End(end))
}

/// One episode in progress.
pub(crate) struct Run<'a> {
    pub env: &'a dyn Environment,
    pub task: &'a TaskInfo,
    pub budgets: &'a Budgets,
    pub apps: &'a AppCatalog,
    pub turns: Vec<Turn>,
    pub interactions: u32,
}

impl<'a> Run<'a> {
    pub fn new(
        env: &'a dyn Environment,
        task: &'a TaskInfo,
        budgets: &'a Budgets,
        apps: &'a AppCatalog,
    ) -> Self {
        Self {
            env,
            task,
            budgets,
            apps,
            turns: Vec::new(),
            interactions: 0,
        }
    }

    /// Asks `policy` for the next output of `role`. A policy error ends the episode; an output
    /// over the tokens-per-turn budget is recorded (not acted on) and ends it too.
    pub fn call(
        &mut self,
        role: Role,
        policy: &dyn Policy,
        messages: &[Message],
        subtask: Option<usize>,
    ) -> Result<Completion, Stop> {
        let completion = match policy.complete(messages) {
            Ok(completion) => completion,
            Err(error) => {
                return end(EpisodeEnd::PolicyError {
                    role,
                    message: error.to_string(),
                });
            }
        };
        let max = self.budgets.max_tokens_per_turn;
        if completion.generated_tokens > max {
            let reason = format!(
                "{} tokens generated, over the budget of {max} per turn",
                completion.generated_tokens
            );
            self.record(
                role,
                subtask,
                messages,
                &completion,
                Action::Malformed { reason },
            );
            return end(EpisodeEnd::BudgetExceeded {
                budget: Budget::TokensPerTurn,
            });
        }
        Ok(completion)
    }

    /// Records a turn and returns its index. The completion is trained on only when the policy
    /// says so and it parsed.
    pub fn record(
        &mut self,
        role: Role,
        subtask: Option<usize>,
        messages: &[Message],
        completion: &Completion,
        action: Action,
    ) -> usize {
        let train = completion.train && !matches!(action, Action::Malformed { .. });
        let mut all = Vec::with_capacity(messages.len() + 1);
        all.extend_from_slice(messages);
        all.push(Message::assistant(completion.text.clone(), train));
        self.turns.push(Turn {
            role,
            subtask,
            messages: all,
            action,
            code: None,
            observation: None,
            prompt_tokens: completion.prompt_tokens,
            generated_tokens: completion.generated_tokens,
            flops: completion.flops,
        });
        self.turns.len() - 1
    }

    /// The assistant message of a recorded turn, to continue the role's conversation with.
    pub fn reply(&self, turn: usize) -> Message {
        self.turns[turn]
            .messages
            .last()
            .cloned()
            .unwrap_or_else(|| Message::assistant(String::new(), false))
    }

    /// Runs `code` for turn `turn` and records it with its output; refuses (ending the
    /// episode) when the interaction budget is spent.
    pub fn execute(&mut self, turn: usize, code: &str) -> Result<String, Stop> {
        if self.interactions >= self.budgets.max_interactions {
            return end(EpisodeEnd::BudgetExceeded {
                budget: Budget::Interactions,
            });
        }
        self.interactions += 1;
        let output = self.env.execute(&self.task.task_id, code)?;
        self.turns[turn].code = Some(code.to_owned());
        self.turns[turn].observation = Some(output.clone());
        Ok(output)
    }

    /// Whether the task is completed after running `code` (asks the environment only when the
    /// code could have completed it).
    pub fn completed(&self, code: &str) -> Result<bool, Stop> {
        if !code.contains("complete_task") {
            return Ok(false);
        }
        Ok(self.env.task_completed(&self.task.task_id)?)
    }
}

/// Counts consecutive malformed outputs of one role.
#[derive(Default)]
pub(crate) struct Streak(u32);

impl Streak {
    /// Counts one more; ends the episode when the format-retry budget is spent.
    pub fn malformed(&mut self, budgets: &Budgets) -> Result<(), Stop> {
        self.0 += 1;
        if self.0 > budgets.max_format_retries {
            return end(EpisodeEnd::BudgetExceeded {
                budget: Budget::FormatRetries,
            });
        }
        Ok(())
    }

    /// A well-formed output breaks the streak.
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}

/// Remembers a role's previous action to stop verbatim repeats.
#[derive(Default)]
pub(crate) struct LastAction(Option<String>);

impl LastAction {
    /// Ends the episode if `action` repeats the previous one (ignoring trailing whitespace on
    /// lines and blank lines around it); otherwise remembers it.
    pub fn check(&mut self, role: Role, action: &str) -> Result<(), Stop> {
        let normal: String = action
            .trim()
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n");
        if self.0.as_deref() == Some(normal.as_str()) {
            return end(EpisodeEnd::RepeatedAction { role });
        }
        self.0 = Some(normal);
        Ok(())
    }
}
