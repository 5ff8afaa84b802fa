//! The multi-agent systems: an orchestrator that delegates sub-tasks to an executor, and
//! optionally a critic that reviews each sub-task before its result goes back.

use std::convert::Infallible;

use rung_trajectory::{Action, Budget, EpisodeEnd, Role};

use super::run::{LastAction, Run, Stop, Streak, end};
use crate::policy::Policy;
use crate::prompts::{
    self, ExecutedCell, ExecutorOutput, OrchestratorOutput, SubtaskSpec, Verdict,
};

/// The policies of a team for one episode.
pub(crate) struct Team<'p> {
    pub orchestrator: &'p dyn Policy,
    pub executor: &'p dyn Policy,
    pub critic: Option<&'p dyn Policy>,
}

/// Plays the episode until it ends; the result is always the reason it ended.
pub(crate) fn play(run: &mut Run<'_>, team: &Team<'_>) -> Result<Infallible, Stop> {
    let role = Role::Orchestrator;
    let mut conversation = prompts::orchestrator_start(run.task, run.apps);
    let mut streak = Streak::default();
    let mut last = LastAction::default();
    let mut results: Vec<String> = Vec::new();
    loop {
        let completion = run.call(role, team.orchestrator, &conversation, None)?;
        match prompts::parse_orchestrator(&completion.text, run.apps) {
            Err(error) => {
                let reason = error.0;
                let action = Action::Malformed {
                    reason: reason.clone(),
                };
                let turn = run.record(role, None, &conversation, &completion, action);
                conversation.push(run.reply(turn));
                streak.malformed(run.budgets)?;
                conversation.push(prompts::format_reminder(role, &reason));
            }
            Ok(OrchestratorOutput::Complete(answer)) => {
                streak.reset();
                let action = Action::Complete {
                    answer: answer.clone(),
                };
                let turn = run.record(role, None, &conversation, &completion, action);
                last.check(role, &prompts::complete_line(answer.as_deref()))?;
                let code = prompts::complete_call(answer.as_deref());
                let output = run.execute(turn, &code)?;
                if run.completed(&code)? {
                    return end(EpisodeEnd::Completed);
                }
                conversation.push(run.reply(turn));
                conversation.push(prompts::completion_failed(&output));
            }
            Ok(OrchestratorOutput::Subtask(spec)) => {
                streak.reset();
                let index = results.len();
                let action = Action::Subtask {
                    app: spec.app.clone(),
                    instruction: spec.instruction.clone(),
                };
                let turn = run.record(role, Some(index), &conversation, &completion, action);
                if index >= run.budgets.max_subtasks as usize {
                    return end(EpisodeEnd::BudgetExceeded {
                        budget: Budget::Subtasks,
                    });
                }
                last.check(role, &prompts::subtask_line(&spec))?;
                let result = subtask(run, team, index, &spec, &results)?;
                conversation.push(run.reply(turn));
                conversation.push(prompts::subtask_result(index, &result));
                results.push(result);
            }
        }
    }
}

/// Runs one sub-task with the executor (and critic) and returns the result to report.
fn subtask(
    run: &mut Run<'_>,
    team: &Team<'_>,
    index: usize,
    spec: &SubtaskSpec,
    earlier: &[String],
) -> Result<String, Stop> {
    let role = Role::Executor;
    let mut conversation = prompts::executor_start(run.task, spec, earlier);
    let mut streak = Streak::default();
    let mut last = LastAction::default();
    let mut cells: Vec<(String, String)> = Vec::new();
    let (mut steps, mut retries) = (0u32, 0u32);
    loop {
        if steps >= run.budgets.max_executor_steps {
            return end(EpisodeEnd::BudgetExceeded {
                budget: Budget::ExecutorSteps,
            });
        }
        steps += 1;
        let completion = run.call(role, team.executor, &conversation, Some(index))?;
        match prompts::parse_executor(&completion.text) {
            Err(error) => {
                let reason = error.0;
                let action = Action::Malformed {
                    reason: reason.clone(),
                };
                let turn = run.record(role, Some(index), &conversation, &completion, action);
                conversation.push(run.reply(turn));
                streak.malformed(run.budgets)?;
                conversation.push(prompts::format_reminder(role, &reason));
            }
            Ok(ExecutorOutput::Code(code)) => {
                streak.reset();
                let action = Action::Code { code: code.clone() };
                let turn = run.record(role, Some(index), &conversation, &completion, action);
                last.check(role, &code)?;
                let output = run.execute(turn, &code)?;
                conversation.push(run.reply(turn));
                conversation.push(prompts::observation(&output));
                if run.completed(&code)? {
                    return end(EpisodeEnd::Completed);
                }
                cells.push((code, output));
            }
            Ok(ExecutorOutput::Report(result)) => {
                streak.reset();
                let action = Action::Report {
                    result: result.clone(),
                };
                let turn = run.record(role, Some(index), &conversation, &completion, action);
                conversation.push(run.reply(turn));
                let Some(critic) = team.critic else {
                    return Ok(result);
                };
                match review(run, critic, index, spec, &cells, &result)? {
                    Verdict::Retry(feedback) if retries < run.budgets.max_critic_retries => {
                        retries += 1;
                        conversation.push(prompts::critic_feedback(&feedback));
                    }
                    // Accepted, or rejected once too often: the result goes on as it is.
                    _ => return Ok(result),
                }
            }
        }
    }
}

/// Asks the critic about a reported sub-task.
fn review(
    run: &mut Run<'_>,
    critic: &dyn Policy,
    index: usize,
    spec: &SubtaskSpec,
    cells: &[(String, String)],
    result: &str,
) -> Result<Verdict, Stop> {
    let role = Role::Critic;
    let view: Vec<ExecutedCell<'_>> = cells
        .iter()
        .map(|(code, output)| ExecutedCell { code, output })
        .collect();
    let mut conversation = prompts::critic_start(spec, &view, result);
    let mut streak = Streak::default();
    loop {
        let completion = run.call(role, critic, &conversation, Some(index))?;
        match prompts::parse_critic(&completion.text) {
            Err(error) => {
                let reason = error.0;
                let action = Action::Malformed {
                    reason: reason.clone(),
                };
                let turn = run.record(role, Some(index), &conversation, &completion, action);
                conversation.push(run.reply(turn));
                streak.malformed(run.budgets)?;
                conversation.push(prompts::format_reminder(role, &reason));
            }
            Ok(verdict) => {
                let action = match &verdict {
                    Verdict::Accept => Action::Accept,
                    Verdict::Retry(feedback) => Action::Retry {
                        feedback: feedback.clone(),
                    },
                };
                run.record(role, Some(index), &conversation, &completion, action);
                return Ok(verdict);
            }
        }
    }
}
