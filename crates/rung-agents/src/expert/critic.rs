//! The critic expert: accepts exactly the report the gold code's output gives, and otherwise
//! says what is wrong.

use std::sync::Arc;

use rung_trajectory::{ChatRole, Message, Role};
use rung_world::sandbox::FAILED;

use super::cells::report_from;
use super::{EXPERT_NAME, Slips, header, locate, slips};
use crate::gold::GoldPlan;
use crate::policy::{Completion, Policy, PolicyError};
use crate::prompts;

/// Accepts exactly the report the gold code's output gives.
pub(super) struct CriticExpert {
    pub plan: Arc<GoldPlan>,
    pub slips: Slips,
}

/// The last cell of a critic request ([`prompts::critic_start`]): its code and output.
fn last_cell(request: &str) -> Option<(&str, &str)> {
    let (cells, _report) = request.rsplit_once("\nReport: ")?;
    let (before, output) = cells.rsplit_once("\n```\nOutput:\n")?;
    let (_, code) = before.rsplit_once("```python\n")?;
    Some((code, output))
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
        let last = last_cell(request);
        let last_failed = last.is_some_and(|(_, output)| output.starts_with(FAILED));
        // Every gold sub-task with this header is a candidate (instructions may repeat); the
        // report is right if it is the gold report of any of them.
        let golds: Vec<_> = self
            .plan
            .subtasks
            .iter()
            .filter(|gold| gold.app == spec.app && gold.instruction == spec.instruction)
            .collect();
        let gold_reports: Vec<String> = golds
            .iter()
            .filter_map(|gold| Some(report_from(&gold.code, gold.output.as_deref()?)))
            .collect();
        let accept = golds.iter().any(|gold| match &gold.output {
            Some(output) => got == Some(prompts::report(&report_from(&gold.code, output)).as_str()),
            None => !last_failed,
        });
        // The work is done when the last cell's output gives a gold report.
        let done =
            last.is_some_and(|(code, output)| gold_reports.contains(&report_from(code, output)));
        let text = if accept {
            prompts::ACCEPT.to_owned()
        } else if last_failed {
            prompts::retry(
                "the last cell failed; fix the error, finish the sub-task and report its result.",
            )
        } else if done {
            prompts::retry("the report does not match what the last cell did; report its result.")
        } else {
            prompts::retry(&format!(
                "the sub-task is not done yet ({}); finish it and report its result.",
                spec.instruction
            ))
        };
        Ok(self
            .slips
            .apply(Role::Critic, messages, text, slips::critic_slip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompts::{ExecutedCell, SubtaskSpec, critic_start};

    #[test]
    fn the_last_cell_is_read_back_from_a_request() {
        let spec = SubtaskSpec {
            app: "phone".into(),
            instruction: "Find your son.".into(),
        };
        let cells = [
            ExecutedCell {
                code: "print(1)",
                output: "1",
            },
            ExecutedCell {
                code: "son = f()\nprint(son)",
                output: "{\"a\": 1}",
            },
        ];
        let request = critic_start(&spec, &cells, "son = {\"a\": 1}");
        assert_eq!(
            last_cell(&request[1].content),
            Some(("son = f()\nprint(son)", "{\"a\": 1}"))
        );
        let none = critic_start(&spec, &[], "done");
        assert_eq!(last_cell(&none[1].content), None);
    }

    #[test]
    fn verdicts_say_what_is_wrong() {
        let spec = SubtaskSpec {
            app: "phone".into(),
            instruction: "Find your son.".into(),
        };
        let critic = CriticExpert {
            plan: Arc::new(GoldPlan {
                task_id: "abcdef0_1".parse().unwrap(),
                subtasks: vec![crate::gold::GoldSubtask {
                    kind: "k".into(),
                    app: "phone".into(),
                    instruction: "Find your son.".into(),
                    code: "son = f()\nprint(son)".into(),
                    output: Some("{\"a\":1}".into()),
                }],
                completion: "apis.supervisor.complete_task()".into(),
                answer: None,
            }),
            slips: Slips {
                rate: 0.0,
                budgets: crate::Budgets::default(),
                seed: 0,
            },
        };
        let verdict = |cells: &[ExecutedCell<'_>], report: &str| {
            critic
                .complete(&critic_start(&spec, cells, report))
                .unwrap()
                .text
        };
        let done = ExecutedCell {
            code: "son = f()\nprint(son)",
            output: "{\"a\":1}",
        };
        assert_eq!(verdict(&[done], "son = {\"a\":1}"), prompts::ACCEPT);
        assert!(verdict(&[done], "son = {}").starts_with("RETRY: the report does not match"));
        let failed = format!("{FAILED}\nException: 404");
        let broken = ExecutedCell {
            code: "son = g()",
            output: &failed,
        };
        assert!(verdict(&[done, broken], "done").starts_with("RETRY: the last cell failed"));
        assert!(verdict(&[], "done").starts_with("RETRY: the sub-task is not done yet"));
    }
}
