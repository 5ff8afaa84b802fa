//! The coding expert (executor, or single agent): plays its script's steps, one per call.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rung_trajectory::{ChatRole, Message, Role};
use rung_world::sandbox::FAILED;
use serde_json::Value;

use super::cells::report_from;
use super::script::Step;
use super::{EXPERT_NAME, header, locate, slips};
use crate::gold::GoldPlan;
use crate::policy::{Completion, Policy, PolicyError};
use crate::prompts;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state is replaced field by field between calls; a panic cannot leave it half-made.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where a coding expert is in its script.
#[derive(Default)]
pub(super) struct CoderState {
    /// Index into the step lists (the sub-task, for an executor).
    list: usize,
    /// Next step in that list.
    cursor: usize,
    /// Recovery steps still to take after a mistake.
    pending: VecDeque<Step>,
    /// After a mistaken cell: whether to recover even if it did not fail.
    check_failure: Option<bool>,
    /// Where to look for the next sub-task in the plan.
    hint: usize,
}

/// Writes the gold code as cells (executor: one sub-task per conversation; single: all).
pub(super) struct CoderExpert {
    pub role: Role,
    pub plan: Arc<GoldPlan>,
    pub steps: Vec<Vec<Step>>,
    pub state: Mutex<CoderState>,
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

    /// A report the critic must reject: the right value changed (a number off by one, a list or
    /// record missing its last item), an earlier sub-task's result, or a bare "done" —
    /// whichever first differs from every gold report of the sub-task.
    fn wrong_report(&self, messages: &[Message], list: usize) -> String {
        let right = Self::report(messages);
        let gold = self.plan.subtasks.get(list);
        let golds: Vec<String> = self
            .plan
            .subtasks
            .iter()
            .filter(|g| gold.is_some_and(|s| s.app == g.app && s.instruction == g.instruction))
            .filter_map(|g| Some(prompts::report(&report_from(&g.code, g.output.as_deref()?))))
            .collect();
        let result = right.strip_prefix("DONE: ").unwrap_or(&right);
        let changed = result.split_once(" = ").and_then(|(var, value)| {
            let wrong = match serde_json::from_str::<Value>(value).ok()? {
                Value::Number(n) if n.is_i64() => (n.as_i64()? + 1).to_string(),
                Value::Number(n) => format!("{:.2}", n.as_f64()? + 1.0),
                // A list or record cut short: its last item or field left out.
                Value::Array(mut items) if items.len() > 1 => {
                    items.pop();
                    Value::Array(items).to_string()
                }
                Value::Object(fields) if fields.len() > 1 => {
                    let keep = fields.len() - 1;
                    let fewer: serde_json::Map<String, Value> =
                        fields.into_iter().take(keep).collect();
                    Value::Object(fewer).to_string()
                }
                _ => return None,
            };
            Some(prompts::report(&format!("{var} = {wrong}")))
        });
        let opening = messages
            .iter()
            .find(|m| m.role == ChatRole::User)
            .map_or("", |m| m.content.as_str());
        let earlier = opening
            .split_once("\nResults of earlier sub-tasks:")
            .and_then(|(_, list)| list.lines().last())
            .and_then(|line| line.split_once(". "))
            .map(|(_, result)| prompts::report(result));
        [changed, earlier, Some(prompts::report("done"))]
            .into_iter()
            .flatten()
            .find(|text| *text != right && !golds.contains(text))
            .unwrap_or_else(|| prompts::report("nothing to report"))
    }

    /// The output of one step.
    fn perform(&self, step: Step, messages: &[Message], state: &mut CoderState) -> Completion {
        let done = |text: String| Completion::estimated(messages, text);
        match step {
            Step::Code(code) => done(prompts::code_action(&code)),
            Step::Slip => {
                // The slip stands for the step after it, which comes once the reminder is in.
                let next = self.steps[state.list].get(state.cursor);
                let pick = messages.len() as u64;
                let text = match next {
                    Some(Step::Code(code)) => slips::code_slip(self.role, code, pick),
                    _ => slips::report_slip(&Self::report(messages)),
                };
                done(text).not_for_training()
            }
            Step::Mistake {
                wrong,
                recovery,
                always_recover,
            } => {
                state.pending = recovery.into();
                state.check_failure = Some(always_recover);
                done(prompts::code_action(&wrong)).not_for_training()
            }
            Step::Report { train } => {
                let completion = done(Self::report(messages));
                if train {
                    completion
                } else {
                    completion.not_for_training()
                }
            }
            Step::WrongReport => done(self.wrong_report(messages, state.list)).not_for_training(),
        }
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
        if let Some(always) = state.check_failure.take() {
            let last = messages.last().map_or("", |m| m.content.as_str());
            if !always && !last.starts_with(FAILED) {
                state.pending.clear();
            }
        }
        if let Some(step) = state.pending.pop_front() {
            return Ok(self.perform(step, messages, &mut state));
        }
        let step = self.steps[state.list].get(state.cursor).cloned();
        state.cursor += 1;
        match step {
            Some(step) => Ok(self.perform(step, messages, &mut state)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gold::GoldSubtask;
    use crate::prompts::SubtaskSpec;

    fn expert(output: &str) -> CoderExpert {
        let subtask = GoldSubtask {
            kind: "k".into(),
            app: "phone".into(),
            instruction: "Find your son.".into(),
            code: "son = f()\nprint(son)".into(),
            output: Some(output.into()),
        };
        CoderExpert {
            role: Role::Executor,
            plan: Arc::new(GoldPlan {
                task_id: "abcdef0_1".parse().unwrap(),
                subtasks: vec![subtask],
                completion: "apis.supervisor.complete_task()".into(),
                answer: None,
            }),
            steps: vec![Vec::new()],
            state: Mutex::new(CoderState::default()),
        }
    }

    fn conversation(output: &str, earlier: &str) -> Vec<Message> {
        let spec = SubtaskSpec {
            app: "phone".into(),
            instruction: "Find your son.".into(),
        };
        let mut user = prompts::subtask_header(&spec);
        if !earlier.is_empty() {
            user.push_str(&format!("\nResults of earlier sub-tasks:\n1. {earlier}"));
        }
        vec![
            Message::system("s"),
            Message::user(user),
            Message::assistant(prompts::code_action("son = f()\nprint(son)"), true),
            Message::user(output),
        ]
    }

    #[test]
    fn wrong_reports_change_the_value_or_fall_back() {
        let cases = [
            ("7", "", "DONE: son = 8"),
            ("15.81", "", "DONE: son = 16.81"),
            ("[1,2,3]", "", "DONE: son = [1,2]"),
            ("{\"b\":1,\"a\":2}", "", "DONE: son = {\"b\":1}"),
            ("Jack", "x = 1", "DONE: x = 1"),
            ("Jack", "", "DONE: done"),
        ];
        for (output, earlier, wrong) in cases {
            let expert = expert(output);
            let messages = conversation(output, earlier);
            assert_eq!(
                CoderExpert::report(&messages),
                format!("DONE: son = {output}")
            );
            assert_eq!(expert.wrong_report(&messages, 0), wrong, "{output}");
        }
    }
}
