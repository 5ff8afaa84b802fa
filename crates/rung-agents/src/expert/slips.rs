//! Format slips: outputs in none of a role's formats, of the kinds small models write (a code
//! cell without its fence, an unclosed fence, a report without its keyword). An expert writes
//! one now and then, not for training; the system answers it with its real format reminder,
//! and the expert's proper output after the reminder is what a model learns from.

use rung_trajectory::{ChatRole, Message, Role};

use crate::budget::Budgets;
use crate::prompts;
use crate::seed::{derive, unit};

/// Whether `text` is in none of `role`'s formats. The orchestrator's check ignores which apps
/// exist: a slip must fail in any system, so it may have no keyword line at all.
pub(crate) fn malformed(role: Role, text: &str) -> bool {
    match role {
        Role::Single => prompts::parse_code(text).is_err(),
        Role::Executor => prompts::parse_executor(text).is_err(),
        Role::Critic => prompts::parse_critic(text).is_err(),
        Role::Orchestrator => !text.lines().any(|line| {
            let line = line.trim_start().to_ascii_lowercase();
            line.starts_with("subtask") || line.starts_with("complete:")
        }),
    }
}

/// A slip instead of the code action `code`: the bare code, an unclosed fence, or prose.
pub(crate) fn code_slip(role: Role, code: &str, pick: u64) -> String {
    let code = code.trim_end();
    let options = [
        code.to_owned(),
        format!("```python\n{code}"),
        "I will write the code for this step next.".to_owned(),
    ];
    choose(role, &options, pick)
}

/// A slip instead of the `DONE: <result>` report `report`.
pub(crate) fn report_slip(report: &str) -> String {
    let result = report.strip_prefix("DONE:").unwrap_or(report).trim();
    let options = [format!("The sub-task is done: {result}")];
    choose(Role::Executor, &options, 0)
}

/// A slip instead of the orchestrator's line `line`.
pub(crate) fn orchestrator_slip(line: &str, pick: u64) -> String {
    let options = match line.split_once(':') {
        Some((head, rest)) if head.starts_with("SUBTASK ") => {
            let app = head.trim_start_matches("SUBTASK ").trim();
            vec![
                format!("Next, the executor should work in {app}:{rest}"),
                format!("{app}:{rest}"),
            ]
        }
        _ => {
            let answer = line.split_once(':').map_or("", |(_, a)| a.trim());
            vec![format!("The task is finished; the answer is {answer}.")]
        }
    };
    choose(Role::Orchestrator, &options, pick)
}

/// A slip instead of the critic's verdict `verdict`.
pub(crate) fn critic_slip(verdict: &str) -> String {
    let options = match verdict.strip_prefix("RETRY:") {
        Some(feedback) => vec![format!("Not yet:{feedback}")],
        None => vec!["The code did what the sub-task asks and the result is right.".to_owned()],
    };
    choose(Role::Critic, &options, 0)
}

/// The `pick`-th option (cyclically) that is malformed for `role`, else a plain sentence.
fn choose(role: Role, options: &[String], pick: u64) -> String {
    let n = options.len();
    (0..n)
        .map(|i| &options[(pick as usize + i) % n])
        .find(|text| malformed(role, text))
        .cloned()
        .unwrap_or_else(|| "Let me think about this step.".to_owned())
}

/// Whether a stateless expert (orchestrator, critic) slips on this turn: drawn from the
/// episode seed, the conversation's opening request and the turn's position, never twice in a
/// row (the last message is not a reminder) and never where no reminder is allowed.
pub(crate) fn slips_now(
    rate: f64,
    budgets: &Budgets,
    seed: u64,
    role: Role,
    messages: &[Message],
) -> bool {
    if budgets.max_format_retries == 0 || rate <= 0.0 {
        return false;
    }
    let reminded = messages
        .last()
        .is_some_and(|m| m.role == ChatRole::User && m.content.starts_with("Not understood: "));
    if reminded {
        return false;
    }
    let opening = messages
        .iter()
        .find(|m| m.role == ChatRole::User)
        .map_or("", |m| m.content.as_str());
    let turn = messages.len() as u64;
    let draw = derive(
        seed,
        &[
            b"slip",
            role.to_string().as_bytes(),
            opening.as_bytes(),
            &turn.to_le_bytes(),
        ],
    );
    unit(draw) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slip_is_malformed_for_its_role() {
        let code = "son = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]\nprint(son)";
        for pick in 0..3 {
            for role in [Role::Single, Role::Executor] {
                let slip = code_slip(role, code, pick);
                assert!(malformed(role, &slip), "{slip}");
            }
        }
        assert_eq!(code_slip(Role::Single, code, 0), code);
        assert!(code_slip(Role::Single, code, 1).starts_with("```python\nson = "));
        // Bare code that happens to hold a DONE: line is not a slip for the executor.
        let tricky = "done: 1";
        assert!(malformed(
            Role::Executor,
            &code_slip(Role::Executor, tricky, 0)
        ));
        let report = report_slip("DONE: son = {\"a\": 1}");
        assert_eq!(report, "The sub-task is done: son = {\"a\": 1}");
        assert!(malformed(Role::Executor, &report));
        for pick in 0..2 {
            let slip = orchestrator_slip("SUBTASK phone: Find your son.", pick);
            assert!(malformed(Role::Orchestrator, &slip), "{slip}");
            assert!(slip.contains("Find your son."));
        }
        let done = orchestrator_slip("COMPLETE: 15.81", 0);
        assert_eq!(done, "The task is finished; the answer is 15.81.");
        assert!(malformed(Role::Critic, &critic_slip("ACCEPT")));
        let retry = critic_slip("RETRY: the last cell failed.");
        assert!(malformed(Role::Critic, &retry) && retry.contains("the last cell failed."));
    }

    #[test]
    fn stateless_slips_never_follow_a_reminder_and_respect_the_budget() {
        let budgets = Budgets::default();
        let start = vec![Message::system("s"), Message::user("Task: x")];
        let always = slips_now(1.0, &budgets, 1, Role::Orchestrator, &start);
        assert!(always);
        let mut reminded = start.clone();
        reminded.push(Message::assistant("oops", false));
        reminded.push(prompts::format_reminder(Role::Orchestrator, "no line"));
        assert!(!slips_now(1.0, &budgets, 1, Role::Orchestrator, &reminded));
        let none = Budgets {
            max_format_retries: 0,
            ..Budgets::default()
        };
        assert!(!slips_now(1.0, &none, 1, Role::Orchestrator, &start));
        assert!(!slips_now(0.0, &budgets, 1, Role::Orchestrator, &start));
        let share = (0..2000u64)
            .filter(|&seed| slips_now(0.05, &budgets, seed, Role::Critic, &start))
            .count();
        assert!((60..140).contains(&share), "{share} of 2000");
    }
}
