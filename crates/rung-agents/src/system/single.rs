//! The single agent: ReAct-style, one code cell per turn until it calls `complete_task`.

use std::convert::Infallible;

use rung_trajectory::{Action, EpisodeEnd, Role};

use super::run::{LastAction, Run, Stop, Streak, end};
use crate::policy::Policy;
use crate::prompts;

/// Plays the episode until it ends; the result is always the reason it ended.
pub(crate) fn play(run: &mut Run<'_>, policy: &dyn Policy) -> Result<Infallible, Stop> {
    let role = Role::Single;
    let mut conversation = prompts::single_start(run.task);
    let mut streak = Streak::default();
    let mut last = LastAction::default();
    loop {
        let completion = run.call(role, policy, &conversation, None)?;
        match prompts::parse_code(&completion.text) {
            Err(error) => {
                let reason = error.0;
                let turn = run.record(
                    role,
                    None,
                    &conversation,
                    &completion,
                    Action::Malformed {
                        reason: reason.clone(),
                    },
                );
                conversation.push(run.reply(turn));
                streak.malformed(run.budgets)?;
                conversation.push(prompts::format_reminder(role, &reason));
            }
            Ok(code) => {
                streak.reset();
                let action = Action::Code { code: code.clone() };
                let turn = run.record(role, None, &conversation, &completion, action);
                last.check(role, &code)?;
                let output = run.execute(turn, &code)?;
                conversation.push(run.reply(turn));
                conversation.push(prompts::observation(&output));
                if run.completed(&code)? {
                    return end(EpisodeEnd::Completed);
                }
            }
        }
    }
}
