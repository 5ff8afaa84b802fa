//! Scripted experts: one policy per role that follows a task's gold plan.
//!
//! - The **orchestrator** issues the gold sub-tasks in order, then `COMPLETE` with the gold
//!   answer.
//! - The **executor** (and the **single** agent, over all sub-tasks, ending with the gold
//!   completion cell) writes the gold code split into natural cells: on a seeded fraction of
//!   sub-tasks first a documentation look-up of the sub-task's main API, then the login lines as
//!   their own cell, then the rest. The executor reports `DONE: <result>` derived from its last
//!   output (`var = value` when the code ends by printing a variable, `called app.api` when it
//!   printed nothing).
//! - The **critic** accepts a report exactly when it equals the report the gold code's output
//!   gives, and otherwise sends the sub-task back, saying whether the last cell failed, the
//!   report misstates a finished sub-task's output, or the sub-task is not done.
//!
//! Experts also teach what fails, each detour seeded and marked `train: false` where it is the
//! error, while the real error output and the recovery after it are trained on:
//!
//! - A fraction of episodes ([`ExpertOptions::mistake_rate`]) contains one deliberate mistake
//!   and its recovery, of a kind drawn by [`MistakeMix`]: a wrong keyword argument (422); a
//!   login with another person's or a mistyped username (401), recovered by reading
//!   `apis.supervisor.show_profile()`; a guessed id (404, or 401 for someone else's record),
//!   recovered by looking it up; a search whose near-miss query finds nothing (`[]`), recovered
//!   by the right query; or — in three-agent systems — a premature report that the critic
//!   rejects. Mistakes other than the wrong keyword are probed on the gold source first
//!   ([`GoldSource::probe`]) and only made where they fail without changing the world.
//! - In three-agent systems a fraction of sub-tasks ([`ExpertHabits::critic_negative_rate`])
//!   gets a report the critic must reject: a wrong value, an earlier sub-task's result, or a
//!   failed cell reported; so critics see real negatives.
//! - A fraction of model turns ([`ExpertHabits::format_slip_rate`]) first comes out in no valid
//!   format; the system answers with its real format reminder, then the expert writes the
//!   proper output. Slips never come twice in a row.
//!
//! Every detour is fitted into the system's budgets ([`crate::Budgets`], passed at episode
//! start): look-ups, wrong reports and mistakes that would overrun a budget are left out, so
//! that data made under evaluation budgets still succeeds.
//!
//! Experts know a task only through a [`GoldSource`], so they can follow any task set that
//! provides gold plans.

mod cells;
mod coder;
mod critic;
mod mistakes;
mod planner;
mod script;
mod slips;

use std::sync::{Arc, Mutex};

use rung_trajectory::{ChatRole, Message, Role, SystemKind};
use serde::{Deserialize, Serialize};

use crate::apps::AppCatalog;
use crate::gold::{GoldPlan, GoldSource};
use crate::policy::{Completion, EpisodeContext, Policy, PolicyError};
use crate::prompts::{self, SubtaskSpec};
use crate::system::System;
pub(crate) use cells::report_from;
use coder::{CoderExpert, CoderState};
use critic::CriticExpert;
use planner::OrchestratorExpert;
use script::{Mistake, Script, ScriptInputs};

/// The name experts go by in trajectories.
pub const EXPERT_NAME: &str = "expert";

/// The version of the experts' behaviour, raised whenever the same options and seed give other
/// trajectories (2: data mistakes, format slips, wrong reports, budget fitting). Content-addressed
/// stores of expert data should put it in their keys, so that old data is not reused.
pub const EXPERT_VERSION: u32 = 2;

/// How often experts look things up and make mistakes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExpertOptions {
    /// Fraction of episodes (seeded) with one deliberate mistake followed by recovery. At 0 the
    /// experts are flawless: [`Experts::new`] then also turns off slips and wrong reports.
    pub mistake_rate: f64,
    /// Fraction of sub-tasks (seeded) whose code starts with a documentation look-up.
    pub docs_rate: f64,
}

impl Default for ExpertOptions {
    fn default() -> Self {
        Self {
            mistake_rate: 0.2,
            docs_rate: 0.3,
        }
    }
}

/// Relative weights of the kinds of an episode's one mistake. A kind that cannot be made in an
/// episode (no login, no looked-up id, no search, not a three-agent system) gives its turn to
/// the others. Missing fields read as their defaults, so old configs parse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MistakeMix {
    /// A wrong keyword argument (the API answers 422).
    pub wrong_parameter: f64,
    /// A report before the work is done, which the critic rejects (three-agent systems).
    pub premature_report: f64,
    /// A login with someone else's or a mistyped username (401).
    pub wrong_username: f64,
    /// A guessed id instead of a looked-up one (404, or 401 for another user's record).
    pub wrong_id: f64,
    /// A search whose near-miss query finds nothing (`[]`).
    pub empty_search: f64,
}

impl Default for MistakeMix {
    fn default() -> Self {
        Self {
            wrong_parameter: 1.0,
            premature_report: 1.0,
            wrong_username: 1.0,
            wrong_id: 1.0,
            empty_search: 1.0,
        }
    }
}

impl MistakeMix {
    pub(crate) fn weight(&self, kind: Mistake) -> f64 {
        match kind {
            Mistake::WrongParameter => self.wrong_parameter,
            Mistake::PrematureReport => self.premature_report,
            Mistake::WrongUsername => self.wrong_username,
            Mistake::WrongId => self.wrong_id,
            Mistake::EmptySearch => self.empty_search,
        }
    }
}

/// Detours beyond the episode's one mistake, and the mix of mistakes: what lets training data
/// show the failures a model meets at evaluation (format reminders, critic rejections).
/// Missing fields read as their defaults, so old configs parse.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExpertHabits {
    /// Which kinds of mistake [`ExpertOptions::mistake_rate`] draws.
    pub mix: MistakeMix,
    /// Fraction of model turns (seeded, every role) first written in no valid format, answered
    /// by the system's format reminder. Needs `max_format_retries` of at least 1.
    pub format_slip_rate: f64,
    /// Fraction of three-agent sub-tasks (seeded) with a wrong report the critic rejects before
    /// the right one. Needs `max_critic_retries` of at least 1.
    pub critic_negative_rate: f64,
}

impl Default for ExpertHabits {
    fn default() -> Self {
        Self {
            mix: MistakeMix::default(),
            format_slip_rate: 0.05,
            critic_negative_rate: 0.3,
        }
    }
}

/// Habits with a rate outside `[0, 1]` or a negative or non-finite weight.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid expert habits: {0}")]
pub struct InvalidHabits(pub String);

impl ExpertHabits {
    /// No slips and no wrong reports (the mix stays, for the mistakes `mistake_rate` asks for).
    pub fn none() -> Self {
        Self {
            format_slip_rate: 0.0,
            critic_negative_rate: 0.0,
            ..Self::default()
        }
    }

    /// The habits [`Experts::new`] gives `options`: the defaults, or [`ExpertHabits::none`]
    /// when `options` ask for no mistakes (callers asking for flawless experts get them).
    pub fn for_options(options: &ExpertOptions) -> Self {
        if options.mistake_rate > 0.0 {
            Self::default()
        } else {
            Self::none()
        }
    }

    /// Checks rates and weights.
    pub fn validate(&self) -> Result<(), InvalidHabits> {
        for (name, rate) in [
            ("format_slip_rate", self.format_slip_rate),
            ("critic_negative_rate", self.critic_negative_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(InvalidHabits(format!("{name} = {rate} is not in [0, 1]")));
            }
        }
        let m = &self.mix;
        for (name, weight) in [
            ("wrong_parameter", m.wrong_parameter),
            ("premature_report", m.premature_report),
            ("wrong_username", m.wrong_username),
            ("wrong_id", m.wrong_id),
            ("empty_search", m.empty_search),
        ] {
            if !weight.is_finite() || weight < 0.0 {
                return Err(InvalidHabits(format!(
                    "mix.{name} = {weight} is not a finite weight of at least 0"
                )));
            }
        }
        Ok(())
    }
}

/// The experts of one gold source.
#[derive(Clone)]
pub struct Experts {
    source: Arc<dyn GoldSource>,
    options: ExpertOptions,
    habits: ExpertHabits,
}

impl Experts {
    /// Experts following `source`'s gold plans, with the habits of
    /// [`ExpertHabits::for_options`].
    pub fn new(source: Arc<dyn GoldSource>, options: ExpertOptions) -> Self {
        Self {
            source,
            options,
            habits: ExpertHabits::for_options(&options),
        }
    }

    /// The same experts with other habits.
    pub fn with_habits(mut self, habits: ExpertHabits) -> Result<Self, InvalidHabits> {
        habits.validate()?;
        self.habits = habits;
        Ok(self)
    }

    /// Their habits.
    pub fn habits(&self) -> &ExpertHabits {
        &self.habits
    }

    /// The expert policy of `role`.
    pub fn for_role(&self, role: Role) -> Arc<dyn Policy> {
        Arc::new(ExpertPolicy {
            role,
            source: Arc::clone(&self.source),
            options: self.options,
            habits: self.habits,
        })
    }

    /// A system of `kind` with an expert in every role.
    pub fn system(&self, kind: SystemKind, apps: AppCatalog) -> System {
        System::of_kind(kind, |role| self.for_role(role), apps)
    }
}

/// The expert of one role; it plays only through [`Policy::start_episode`].
struct ExpertPolicy {
    role: Role,
    source: Arc<dyn GoldSource>,
    options: ExpertOptions,
    habits: ExpertHabits,
}

impl Policy for ExpertPolicy {
    fn name(&self) -> String {
        EXPERT_NAME.to_owned()
    }

    fn complete(&self, _messages: &[Message]) -> Result<Completion, PolicyError> {
        Err(PolicyError::Unexpected(
            "a scripted expert plays only inside an episode (after start_episode)".into(),
        ))
    }

    fn start_episode(
        &self,
        context: &EpisodeContext<'_>,
    ) -> Result<Option<Box<dyn Policy>>, PolicyError> {
        let task = &context.task.task_id;
        let plan = self
            .source
            .plan(task)
            .ok_or_else(|| PolicyError::Unavailable {
                task: task.to_string(),
                reason: "the gold source has no plan for it".into(),
            })?;
        let slips = Slips {
            rate: self.habits.format_slip_rate,
            budgets: context.budgets,
            seed: context.seed,
        };
        let player: Box<dyn Policy> = match self.role {
            Role::Orchestrator => Box::new(OrchestratorExpert { plan, slips }),
            Role::Critic => Box::new(CriticExpert { plan, slips }),
            Role::Executor | Role::Single => {
                let script = Script::new(&ScriptInputs {
                    plan: &plan,
                    source: self.source.as_ref(),
                    options: &self.options,
                    habits: &self.habits,
                    system: context.system,
                    seed: context.seed,
                    budgets: &context.budgets,
                    supervisor: &context.task.supervisor,
                });
                Box::new(CoderExpert {
                    role: self.role,
                    plan,
                    steps: script.lists,
                    state: Mutex::new(CoderState::default()),
                })
            }
        };
        Ok(Some(player))
    }
}

/// When a stateless expert slips (see [`slips::slips_now`]).
#[derive(Debug, Clone, Copy)]
struct Slips {
    rate: f64,
    budgets: crate::Budgets,
    seed: u64,
}

impl Slips {
    /// `intended`, or in its place the slip `slip` makes of it (not for training).
    fn apply(
        &self,
        role: Role,
        messages: &[Message],
        intended: String,
        slip: impl FnOnce(&str) -> String,
    ) -> Completion {
        if slips::slips_now(self.rate, &self.budgets, self.seed, role, messages) {
            Completion::estimated(messages, slip(&intended)).not_for_training()
        } else {
            Completion::estimated(messages, intended)
        }
    }
}

/// The gold sub-task a header names, searching from `hint` on (instructions may repeat).
fn locate(plan: &GoldPlan, spec: &SubtaskSpec, hint: usize) -> Result<usize, PolicyError> {
    let n = plan.subtasks.len();
    (hint.min(n)..n)
        .chain(0..hint.min(n))
        .find(|&k| {
            let gold = &plan.subtasks[k];
            gold.app == spec.app && gold.instruction == spec.instruction
        })
        .ok_or_else(|| {
            PolicyError::Unexpected(format!(
                "sub-task `{}` for {} is not in the gold plan of {}",
                spec.instruction, spec.app, plan.task_id
            ))
        })
}

/// The sub-task named in the first line of a conversation's first user message.
fn header(messages: &[Message]) -> Result<SubtaskSpec, PolicyError> {
    messages
        .iter()
        .find(|m| m.role == ChatRole::User)
        .and_then(|m| m.content.lines().next())
        .and_then(prompts::parse_subtask_header)
        .ok_or_else(|| PolicyError::Unexpected("no sub-task header in the conversation".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn habits_parse_with_defaults_and_are_validated() {
        let empty: ExpertHabits = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ExpertHabits::default());
        let some: ExpertHabits =
            serde_json::from_str(r#"{"format_slip_rate": 0.1, "mix": {"wrong_id": 3.0}}"#).unwrap();
        assert_eq!(some.format_slip_rate, 0.1);
        assert_eq!(some.mix.wrong_id, 3.0);
        assert_eq!(some.mix.empty_search, 1.0);
        assert_eq!(some.critic_negative_rate, 0.3);
        assert!(ExpertHabits::default().validate().is_ok());
        let bad = ExpertHabits {
            format_slip_rate: 1.5,
            ..ExpertHabits::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .0
                .contains("format_slip_rate = 1.5")
        );
        let mut negative = ExpertHabits::default();
        negative.mix.wrong_username = -1.0;
        assert!(
            negative
                .validate()
                .unwrap_err()
                .0
                .contains("mix.wrong_username")
        );
        let clean = ExpertOptions {
            mistake_rate: 0.0,
            docs_rate: 0.5,
        };
        assert_eq!(ExpertHabits::for_options(&clean), ExpertHabits::none());
        assert_eq!(
            ExpertHabits::for_options(&ExpertOptions::default()),
            ExpertHabits::default()
        );
    }
}
