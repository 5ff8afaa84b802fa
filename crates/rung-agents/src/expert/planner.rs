//! The orchestrator expert: issues the gold sub-tasks in order, then completes with the gold
//! answer.

use std::sync::Arc;

use rung_trajectory::{ChatRole, Message, Role};

use super::{EXPERT_NAME, Slips, slips};
use crate::apps::AppCatalog;
use crate::gold::GoldPlan;
use crate::policy::{Completion, Policy, PolicyError};
use crate::prompts::{self, OrchestratorOutput, SubtaskSpec};

/// Issues the gold sub-tasks, then completes with the gold answer.
pub(super) struct OrchestratorExpert {
    pub plan: Arc<GoldPlan>,
    pub slips: Slips,
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
        let pick = messages.len() as u64;
        Ok(self
            .slips
            .apply(Role::Orchestrator, messages, text, |line| {
                slips::orchestrator_slip(line, pick)
            }))
    }
}
