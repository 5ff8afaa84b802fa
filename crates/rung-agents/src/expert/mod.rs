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
//!   gives, and otherwise sends the sub-task back.
//!
//! A seeded fraction of episodes contains one deliberate mistake followed by its recovery: a
//! wrong keyword argument (its error output, perhaps a documentation look-up, the corrected
//! cell), or — in three-agent systems — a premature report that the critic rejects, after which
//! the executor finishes the sub-task. Mistaken outputs are marked `train: false`.
//!
//! Experts know a task only through a [`GoldSource`], so they can follow any task set that
//! provides gold plans.

mod cells;
mod script;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rung_trajectory::{ChatRole, Message, Role, SystemKind};
use rung_world::sandbox::FAILED;
use serde::{Deserialize, Serialize};

use crate::apps::AppCatalog;
use crate::gold::{GoldPlan, GoldSource};
use crate::policy::{Completion, EpisodeContext, Policy, PolicyError};
use crate::prompts::{self, OrchestratorOutput, SubtaskSpec};
use crate::system::System;
pub(crate) use cells::report_from;
use script::{Script, Step};

/// The name experts go by in trajectories.
pub const EXPERT_NAME: &str = "expert";

/// How often experts look things up and make mistakes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExpertOptions {
    /// Fraction of episodes (seeded) with one deliberate mistake followed by recovery.
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

/// The experts of one gold source.
#[derive(Clone)]
pub struct Experts {
    source: Arc<dyn GoldSource>,
    options: ExpertOptions,
}

impl Experts {
    /// Experts following `source`'s gold plans.
    pub fn new(source: Arc<dyn GoldSource>, options: ExpertOptions) -> Self {
        Self { source, options }
    }

    /// The expert policy of `role`.
    pub fn for_role(&self, role: Role) -> Arc<dyn Policy> {
        Arc::new(ExpertPolicy {
            role,
            source: Arc::clone(&self.source),
            options: self.options,
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
        let player: Box<dyn Policy> = match self.role {
            Role::Orchestrator => Box::new(OrchestratorExpert { plan }),
            Role::Critic => Box::new(CriticExpert { plan }),
            Role::Executor | Role::Single => {
                let script = Script::new(
                    &plan,
                    self.source.as_ref(),
                    &self.options,
                    context.system,
                    context.seed,
                );
                let mut lists = script.subtasks;
                if self.role == Role::Single {
                    let mut all: Vec<Step> = lists.into_iter().flatten().collect();
                    all.push(Step::Code(plan.completion.clone()));
                    lists = vec![all];
                }
                Box::new(CoderExpert {
                    role: self.role,
                    plan,
                    steps: lists,
                    state: Mutex::new(CoderState::default()),
                })
            }
        };
        Ok(Some(player))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is replaced field by field between calls; a panic cannot leave it half-made.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

/// Issues the gold sub-tasks, then completes with the gold answer.
struct OrchestratorExpert {
    plan: Arc<GoldPlan>,
}

impl Policy for OrchestratorExpert {
    fn name(&self) -> String {
        EXPERT_NAME.to_owned()
    }

    fn complete(&self, messages: &[Message]) -> Result<Completion, PolicyError> {
        let any_app = AppCatalog::default();
        let issued = messages
            .iter()
            .filter(|m| m.role == ChatRole::Assistant)
            .filter(|m| {
                matches!(
                    prompts::parse_orchestrator(&m.content, &any_app),
                    Ok(OrchestratorOutput::Subtask(_))
                )
            })
            .count();
        let text = match self.plan.subtasks.get(issued) {
            Some(gold) => prompts::subtask_line(&SubtaskSpec {
                app: gold.app.clone(),
                instruction: gold.instruction.clone(),
            }),
            None => {
                let answer = self.plan.answer.as_ref().and_then(prompts::answer_text);
                prompts::complete_line(answer.as_deref())
            }
        };
        Ok(Completion::estimated(messages, text))
    }
}

/// Accepts exactly the report the gold code's output gives.
struct CriticExpert {
    plan: Arc<GoldPlan>,
}

impl Policy for CriticExpert {
    fn name(&self) -> String {
        EXPERT_NAME.to_owned()
    }

    fn complete(&self, messages: &[Message]) -> Result<Completion, PolicyError> {
        let spec = header(messages)?;
        locate(&self.plan, &spec, 0)?;
        let request = messages
            .iter()
            .find(|m| m.role == ChatRole::User)
            .map_or("", |m| m.content.as_str());
        let got = prompts::parse_critic_request_report(request);
        let last_failed = request
            .rsplit_once("\nOutput:\n")
            .is_some_and(|(_, last)| last.starts_with(FAILED));
        // Every gold sub-task with this header is a candidate (instructions may repeat); the
        // report is right if it is the gold report of any of them.
        let accept = self
            .plan
            .subtasks
            .iter()
            .filter(|gold| gold.app == spec.app && gold.instruction == spec.instruction)
            .any(|gold| match &gold.output {
                Some(output) => {
                    got == Some(prompts::report(&report_from(&gold.code, output)).as_str())
                }
                None => !last_failed,
            });
        let text = if accept {
            prompts::ACCEPT.to_owned()
        } else if last_failed {
            prompts::retry(
                "the last cell failed; fix the error, finish the sub-task and report its result.",
            )
        } else {
            prompts::retry(&format!(
                "the sub-task is not done yet ({}); finish it and report its result.",
                spec.instruction
            ))
        };
        Ok(Completion::estimated(messages, text))
    }
}

/// Where a coding expert is in its script.
#[derive(Default)]
struct CoderState {
    /// Index into the step lists (the sub-task, for an executor).
    list: usize,
    /// Next step in that list.
    cursor: usize,
    /// Recovery cells still to write after a mistake.
    pending: VecDeque<String>,
    /// Whether the next call must first check that the mistake failed.
    check_failure: bool,
    /// Where to look for the next sub-task in the plan.
    hint: usize,
}

/// Writes the gold code as cells (executor: one sub-task per conversation; single: all).
struct CoderExpert {
    role: Role,
    plan: Arc<GoldPlan>,
    steps: Vec<Vec<Step>>,
    state: Mutex<CoderState>,
}

impl CoderExpert {
    /// The report of the last cell in the conversation and its output.
    fn report(messages: &[Message]) -> String {
        let last_cell = messages.iter().enumerate().rev().find_map(|(i, m)| {
            let code = (m.role == ChatRole::Assistant)
                .then(|| prompts::parse_code(&m.content).ok())
                .flatten()?;
            let output = messages.get(i + 1).map_or("", |o| o.content.as_str());
            Some((code, output))
        });
        let result = match last_cell {
            Some((code, output)) => report_from(&code, output),
            None => "done".to_owned(),
        };
        prompts::report(&result)
    }
}

impl Policy for CoderExpert {
    fn name(&self) -> String {
        EXPERT_NAME.to_owned()
    }

    fn complete(&self, messages: &[Message]) -> Result<Completion, PolicyError> {
        let mut state = lock(&self.state);
        if self.role == Role::Executor && messages.len() <= 2 {
            let k = locate(&self.plan, &header(messages)?, state.hint)?;
            *state = CoderState {
                list: k,
                hint: k + 1,
                ..CoderState::default()
            };
        }
        if std::mem::take(&mut state.check_failure) {
            let last = messages.last().map_or("", |m| m.content.as_str());
            if !last.starts_with(FAILED) {
                state.pending.clear();
            }
        }
        if let Some(code) = state.pending.pop_front() {
            return Ok(Completion::estimated(messages, prompts::code_action(&code)));
        }
        let step = self.steps[state.list].get(state.cursor).cloned();
        state.cursor += 1;
        match step {
            Some(Step::Code(code)) => {
                Ok(Completion::estimated(messages, prompts::code_action(&code)))
            }
            Some(Step::Mistake { wrong, recovery }) => {
                state.pending = recovery.into();
                state.check_failure = true;
                Ok(
                    Completion::estimated(messages, prompts::code_action(&wrong))
                        .not_for_training(),
                )
            }
            Some(Step::Report { train }) => {
                let completion = Completion::estimated(messages, Self::report(messages));
                Ok(if train {
                    completion
                } else {
                    completion.not_for_training()
                })
            }
            // Asked again after its last report (a critic that keeps rejecting): say it again.
            None if self.role == Role::Executor => {
                Ok(Completion::estimated(messages, Self::report(messages)))
            }
            None => Err(PolicyError::Unexpected(format!(
                "the gold program of {} is finished but the episode goes on",
                self.plan.task_id
            ))),
        }
    }
}
