//! Every text an agent reads and every format it must write, in one place.
//!
//! Training data and inference build their messages with these same functions, so a model is
//! trained on exactly the text it later sees. The texts are short because small models read
//! them.
//!
//! # Output formats
//!
//! | role | output | parser |
//! |---|---|---|
//! | single, executor | a code action: one fenced block, ```` ```python ```` … ```` ``` ```` (info string `python`, `py`, `python3` or none); only the first such block runs, and text around it is ignored | [`parse_code`], [`parse_executor`] |
//! | executor | the end-of-sub-task report: a line `DONE: <short result>`, used only when the reply has no code block; the result names the variable holding a value later sub-tasks need (`DONE: son = {…}`) | [`parse_executor`] |
//! | orchestrator | `SUBTASK <app>: <one-line instruction>` to delegate, or `COMPLETE: <answer>` to finish (`COMPLETE: None` when the task asks no question); the first line starting with either keyword counts | [`parse_orchestrator`] |
//! | critic | `ACCEPT`, or `RETRY: <what to fix>` | [`parse_critic`] |
//!
//! Keywords are matched case-insensitively at the start of a line (after indentation). An
//! output in none of its role's formats is *malformed*: the system answers with
//! [`format_reminder`] and records it (see [`crate::Budgets::max_format_retries`]).
//!
//! `COMPLETE:` answers are turned into `apis.supervisor.complete_task(answer=…)` by
//! [`complete_call`]: an answer that reads as JSON (a number, a list, a quoted string, `true`)
//! is passed as that value, anything else as a string.

use rung_env::TaskInfo;
use rung_trajectory::{Message, Role};
use serde_json::Value;

use crate::apps::AppCatalog;

/// Characters of an environment output shown to the single agent and the executor.
pub const OBSERVATION_CHARS: usize = 3000;

/// Characters of each cell output shown to the critic.
pub const CRITIC_OUTPUT_CHARS: usize = 1000;

/// How to write and run code; shared by the single agent and the executor.
const CODE_RULES: &str = "\
Reply with one Python cell in a ```python block; its output comes back as the next message. \
Variables persist across cells.
Only a Python subset runs: no while, try, import, class or **; loop with for and break.
Call APIs as apis.<app>.<api>(name=value). See apis.api_docs.show_api_descriptions(app_name=...) \
and apis.api_docs.show_api_doc(app_name=..., api_name=...).
Passwords: apis.supervisor.show_account_passwords(). Log in with apis.<app>.login(username=<email, \
or phone number for phone>, password=...), keep the token as <app>_token and pass \
access_token=<app>_token.
List APIs are paged: page_index from 0, page_limit at most 20.";

/// The single agent's system message.
pub fn single_system() -> String {
    format!(
        "You do tasks for your supervisor by writing code that calls app APIs.\n{CODE_RULES}\n\
         When the task is done, call apis.supervisor.complete_task(answer=...) with the answer, \
         or apis.supervisor.complete_task() if the task asks no question."
    )
}

/// The executor's system message.
pub fn executor_system() -> String {
    format!(
        "You are the executor: you do one sub-task of a larger task by writing code that calls \
         app APIs.\n{CODE_RULES} Variables from earlier sub-tasks are still there (passwords, \
         <app>_token, and the ones named in earlier results).\n\
         When the sub-task is done, reply with one line DONE: <short result>, naming the \
         variable that holds what later steps need, e.g. DONE: son = {{...}}. Never call \
         complete_task."
    )
}

/// The orchestrator's system message.
pub fn orchestrator_system(apps: &AppCatalog) -> String {
    let apps = if apps.is_empty() {
        String::new()
    } else {
        format!("Apps:\n{}\n", apps.describe())
    };
    format!(
        "You are the orchestrator: you split a task into sub-tasks and give them one at a time \
         to an executor, who writes the code, keeps variables between sub-tasks and logs in \
         itself.\n{apps}Reply with one line, either\nSUBTASK <app>: <one-line instruction>\n\
         or, when everything is done,\nCOMPLETE: <answer> (COMPLETE: None if the task asks no \
         question)."
    )
}

/// The critic's system message.
pub fn critic_system() -> String {
    "You are the critic: you check whether an executor did its sub-task. Reply ACCEPT if the \
     code did what the sub-task asks and the result is right; otherwise reply RETRY: <what to \
     fix>."
        .to_owned()
}

/// The supervisor and clock, as every role that writes code or plans sees them.
fn supervisor_line(task: &TaskInfo) -> String {
    let s = &task.supervisor;
    format!(
        "Supervisor: {} {}, email {}, phone {}. Now: {}.",
        s.first_name, s.last_name, s.email, s.phone_number, task.datetime
    )
}

/// The first messages of the single agent.
pub fn single_start(task: &TaskInfo) -> Vec<Message> {
    vec![
        Message::system(single_system()),
        Message::user(format!(
            "Task: {}\n{}",
            task.instruction,
            supervisor_line(task)
        )),
    ]
}

/// The first messages of the orchestrator.
pub fn orchestrator_start(task: &TaskInfo, apps: &AppCatalog) -> Vec<Message> {
    vec![
        Message::system(orchestrator_system(apps)),
        Message::user(format!(
            "Task: {}\n{}",
            task.instruction,
            supervisor_line(task)
        )),
    ]
}

/// A sub-task as the orchestrator issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtaskSpec {
    /// Target app.
    pub app: String,
    /// One-line instruction.
    pub instruction: String,
}

/// The line that opens the executor's and the critic's view of a sub-task.
pub fn subtask_header(subtask: &SubtaskSpec) -> String {
    format!("Sub-task for {}: {}", subtask.app, subtask.instruction)
}

/// Reads back a [`subtask_header`] line (scripted experts locate themselves with it).
pub fn parse_subtask_header(line: &str) -> Option<SubtaskSpec> {
    let rest = line.trim().strip_prefix("Sub-task for ")?;
    let (app, instruction) = rest.split_once(": ")?;
    Some(SubtaskSpec {
        app: app.to_owned(),
        instruction: instruction.to_owned(),
    })
}

/// The first messages of an executor: its sub-task, the supervisor, and the results of the
/// sub-tasks finished before it (so it knows which variables exist).
pub fn executor_start(task: &TaskInfo, subtask: &SubtaskSpec, earlier: &[String]) -> Vec<Message> {
    let mut user = format!("{}\n{}", subtask_header(subtask), supervisor_line(task));
    if !earlier.is_empty() {
        user.push_str("\nResults of earlier sub-tasks:");
        for (i, result) in earlier.iter().enumerate() {
            user.push_str(&format!("\n{}. {result}", i + 1));
        }
    }
    vec![Message::system(executor_system()), Message::user(user)]
}

/// One executed cell, as the critic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutedCell<'a> {
    /// The code.
    pub code: &'a str,
    /// The environment's output.
    pub output: &'a str,
}

/// Prefix of the report line in the critic's request.
const REPORT_PREFIX: &str = "Report: ";

/// The critic's request: the sub-task, every cell the executor ran for it and the report.
pub fn critic_start(
    subtask: &SubtaskSpec,
    cells: &[ExecutedCell<'_>],
    result: &str,
) -> Vec<Message> {
    let mut user = subtask_header(subtask);
    if cells.is_empty() {
        user.push_str("\nThe executor ran no code.");
    }
    for cell in cells {
        user.push_str(&format!(
            "\n{}\nOutput:\n{}",
            code_action(cell.code),
            clip(cell.output, CRITIC_OUTPUT_CHARS)
        ));
    }
    user.push_str(&format!("\n{REPORT_PREFIX}{}", report(result)));
    vec![Message::system(critic_system()), Message::user(user)]
}

/// The report line of a critic request, without its prefix (`DONE: …`).
pub fn parse_critic_request_report(request: &str) -> Option<&str> {
    request.lines().last()?.strip_prefix(REPORT_PREFIX)
}

/// An environment output as the next user message.
pub fn observation(output: &str) -> Message {
    Message::user(clip(output, OBSERVATION_CHARS))
}

/// What the orchestrator hears when a sub-task is done (`index` is 0-based).
pub fn subtask_result(index: usize, result: &str) -> Message {
    Message::user(format!("Result of sub-task {}: {result}", index + 1))
}

/// What the orchestrator hears when its `COMPLETE` did not complete the task.
pub fn completion_failed(output: &str) -> Message {
    Message::user(format!(
        "complete_task did not complete the task:\n{}",
        clip(output, OBSERVATION_CHARS)
    ))
}

/// What the executor hears when the critic sends its sub-task back.
pub fn critic_feedback(feedback: &str) -> Message {
    Message::user(format!(
        "The critic sent the sub-task back: {feedback}\nFix it, then reply DONE: <short result>."
    ))
}

/// The answer to a malformed output: what was wrong and the role's format again.
pub fn format_reminder(role: Role, reason: &str) -> Message {
    let format = match role {
        Role::Single => "Reply with one ```python code block.",
        Role::Executor => {
            "Reply with one ```python code block, or DONE: <short result> when the sub-task is done."
        }
        Role::Orchestrator => {
            "Reply with one line: SUBTASK <app>: <one-line instruction>, or COMPLETE: <answer>."
        }
        Role::Critic => "Reply ACCEPT, or RETRY: <what to fix>.",
    };
    Message::user(format!("Not understood: {reason}. {format}"))
}

/// A code action as a policy writes it.
pub fn code_action(code: &str) -> String {
    format!("```python\n{}\n```", code.trim_end())
}

/// An executor's report as a policy writes it.
pub fn report(result: &str) -> String {
    format!("DONE: {result}")
}

/// An orchestrator's delegation as a policy writes it.
pub fn subtask_line(subtask: &SubtaskSpec) -> String {
    format!("SUBTASK {}: {}", subtask.app, subtask.instruction)
}

/// An orchestrator's completion as a policy writes it.
pub fn complete_line(answer: Option<&str>) -> String {
    format!("COMPLETE: {}", answer.unwrap_or("None"))
}

/// The critic's acceptance.
pub const ACCEPT: &str = "ACCEPT";

/// The critic's rejection as a policy writes it.
pub fn retry(feedback: &str) -> String {
    format!("RETRY: {feedback}")
}

/// Why an output is in none of its role's formats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// An executor's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorOutput {
    /// Code to run.
    Code(String),
    /// The sub-task is done, with this result.
    Report(String),
}

/// An orchestrator's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrchestratorOutput {
    /// Delegate a sub-task.
    Subtask(SubtaskSpec),
    /// Finish the task; `None` when it asks no question.
    Complete(Option<String>),
}

/// A critic's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The sub-task is done.
    Accept,
    /// Send it back with this feedback.
    Retry(String),
}

/// Strips `keyword` from the start of `line` (after indentation), ignoring case.
fn keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let line = line.trim_start();
    let head = line.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &line[keyword.len()..])
}

/// The first runnable code block, if any; an unclosed or empty one is an error.
fn code_block(text: &str) -> Result<Option<String>, FormatError> {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let info = info.trim().to_ascii_lowercase();
        let runnable = matches!(info.as_str(), "" | "python" | "py" | "python3");
        let mut body = Vec::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line.trim_start().starts_with("```") {
                closed = true;
                break;
            }
            body.push(line);
        }
        if !runnable {
            continue;
        }
        if !closed {
            return Err(FormatError(
                "the ```python block is not closed with ```".into(),
            ));
        }
        let code = body.join("\n");
        if code.trim().is_empty() {
            return Err(FormatError("the ```python block is empty".into()));
        }
        return Ok(Some(code.trim_end().to_owned()));
    }
    Ok(None)
}

/// The single agent's output: a code action.
pub fn parse_code(text: &str) -> Result<String, FormatError> {
    code_block(text)?.ok_or_else(|| FormatError("no ```python block".into()))
}

/// The executor's output: a code action, or else a `DONE:` report.
pub fn parse_executor(text: &str) -> Result<ExecutorOutput, FormatError> {
    if let Some(code) = code_block(text)? {
        return Ok(ExecutorOutput::Code(code));
    }
    text.lines()
        .find_map(|line| keyword(line, "DONE:"))
        .map(|result| ExecutorOutput::Report(result.trim().to_owned()))
        .ok_or_else(|| FormatError("no ```python block and no DONE: line".into()))
}

/// The orchestrator's output; `apps` are the apps a sub-task may name.
pub fn parse_orchestrator(
    text: &str,
    apps: &AppCatalog,
) -> Result<OrchestratorOutput, FormatError> {
    for line in text.lines() {
        if let Some(answer) = keyword(line, "COMPLETE:") {
            let answer = answer.trim();
            let none = answer.is_empty()
                || answer.eq_ignore_ascii_case("none")
                || answer.eq_ignore_ascii_case("null");
            return Ok(OrchestratorOutput::Complete(
                (!none).then(|| answer.to_owned()),
            ));
        }
        if let Some(rest) = keyword(line, "SUBTASK") {
            let (app, instruction) = rest.split_once(':').ok_or_else(|| {
                FormatError("SUBTASK needs an app and a colon: SUBTASK <app>: <instruction>".into())
            })?;
            let (app, instruction) = (app.trim(), instruction.trim());
            if app.is_empty() || app.contains(char::is_whitespace) {
                return Err(FormatError(format!("`{app}` is not an app name")));
            }
            if !apps.accepts(app) {
                let names: Vec<&str> = apps.names().collect();
                return Err(FormatError(format!(
                    "unknown app `{app}`; the apps are {}",
                    names.join(", ")
                )));
            }
            if instruction.is_empty() {
                return Err(FormatError("the SUBTASK line has no instruction".into()));
            }
            return Ok(OrchestratorOutput::Subtask(SubtaskSpec {
                app: app.to_owned(),
                instruction: instruction.to_owned(),
            }));
        }
    }
    Err(FormatError("no SUBTASK or COMPLETE: line".into()))
}

/// The critic's output.
pub fn parse_critic(text: &str) -> Result<Verdict, FormatError> {
    for line in text.lines() {
        if let Some(rest) = keyword(line, "ACCEPT") {
            // `ACCEPTED` or `ACCEPTABLE?` are not the keyword.
            if rest.chars().next().is_none_or(|c| !c.is_alphanumeric()) {
                return Ok(Verdict::Accept);
            }
        }
        if let Some(feedback) = keyword(line, "RETRY:") {
            let feedback = feedback.trim();
            if feedback.is_empty() {
                return Err(FormatError("RETRY: needs feedback after the colon".into()));
            }
            return Ok(Verdict::Retry(feedback.to_owned()));
        }
    }
    Err(FormatError("no ACCEPT or RETRY: line".into()))
}

/// The value an answer text stands for: JSON when it reads as JSON (numbers, lists, quoted
/// strings, booleans, objects), a string otherwise. Python's `True`/`False` are booleans too.
pub fn answer_value(text: &str) -> Value {
    let text = text.trim();
    match text {
        "True" => return Value::Bool(true),
        "False" => return Value::Bool(false),
        _ => {}
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) | Err(_) => Value::String(text.to_owned()),
        Ok(value) => value,
    }
}

/// How an answer value is written after `COMPLETE:` so that [`answer_value`] reads it back:
/// plain text for a one-line string that reads as itself, JSON otherwise; `None` for no answer.
pub fn answer_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => {
            let plain = !s.contains(['\n', '\r'])
                && s.trim() == s
                && !s.is_empty()
                && !["none", "null"].contains(&s.to_ascii_lowercase().as_str())
                && answer_value(s) == *value;
            Some(if plain { s.clone() } else { value.to_string() })
        }
        other => Some(other.to_string()),
    }
}

/// The code an orchestrator's `COMPLETE` runs.
pub fn complete_call(answer: Option<&str>) -> String {
    match answer {
        None => "apis.supervisor.complete_task()".to_owned(),
        Some(text) => format!(
            "apis.supervisor.complete_task(answer={})",
            python_literal(&answer_value(text))
        ),
    }
}

/// A Python (and Starlark) literal for a JSON value.
fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(python_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `text` cut to `max` characters, with a note of how much was cut.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let rest = text[end..].chars().count();
            format!("{}\n…[{rest} more characters]", &text[..end])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apps() -> AppCatalog {
        AppCatalog::embedded()
    }

    #[test]
    fn code_blocks_parse_and_garbage_is_explained() {
        assert_eq!(
            parse_code("```python\nx = 1\nprint(x)\n```").unwrap(),
            "x = 1\nprint(x)"
        );
        assert_eq!(
            parse_code("Let me look.\n```\nprint(2)\n```\nthen more").unwrap(),
            "print(2)"
        );
        assert_eq!(
            parse_code("```json\n{}\n```\n```py\nprint(3)\n```").unwrap(),
            "print(3)",
            "a block in another language is skipped"
        );
        assert_eq!(
            parse_code("```python\nprint(1)\n```\n```python\nprint(2)\n```").unwrap(),
            "print(1)",
            "only the first block runs"
        );
        assert_eq!(
            parse_code("I will print it").unwrap_err().0,
            "no ```python block"
        );
        assert!(
            parse_code("```python\nprint(1)")
                .unwrap_err()
                .0
                .contains("not closed")
        );
        assert!(
            parse_code("```python\n  \n```")
                .unwrap_err()
                .0
                .contains("empty")
        );
        assert_eq!(parse_code(&code_action("print(1)\n")).unwrap(), "print(1)");
    }

    #[test]
    fn executor_reports_and_code_take_precedence() {
        assert_eq!(
            parse_executor("DONE: son = {\"a\": 1}").unwrap(),
            ExecutorOutput::Report("son = {\"a\": 1}".into())
        );
        assert_eq!(
            parse_executor("All good.\n  done: finished").unwrap(),
            ExecutorOutput::Report("finished".into())
        );
        assert_eq!(
            parse_executor("DONE: x\n```python\nprint(1)\n```").unwrap(),
            ExecutorOutput::Code("print(1)".into())
        );
        assert_eq!(
            parse_executor(&report("")).unwrap(),
            ExecutorOutput::Report(String::new())
        );
        assert!(parse_executor("I am done").is_err());
    }

    #[test]
    fn orchestrator_lines_parse_and_apps_are_checked() {
        let line = subtask_line(&SubtaskSpec {
            app: "phone".into(),
            instruction: "Find your son.".into(),
        });
        assert_eq!(
            parse_orchestrator(&format!("Plan first.\n{line}"), &apps()).unwrap(),
            OrchestratorOutput::Subtask(SubtaskSpec {
                app: "phone".into(),
                instruction: "Find your son.".into()
            })
        );
        assert_eq!(
            parse_orchestrator("COMPLETE: 15.81", &apps()).unwrap(),
            OrchestratorOutput::Complete(Some("15.81".into()))
        );
        for none in ["COMPLETE: None", "complete:", "COMPLETE: null"] {
            assert_eq!(
                parse_orchestrator(none, &apps()).unwrap(),
                OrchestratorOutput::Complete(None)
            );
        }
        assert!(
            parse_orchestrator("SUBTASK spotify: play", &apps())
                .unwrap_err()
                .0
                .contains("unknown app `spotify`; the apps are mail, music")
        );
        assert!(parse_orchestrator("SUBTASK phone find", &apps()).is_err());
        assert!(parse_orchestrator("SUBTASK phone:   ", &apps()).is_err());
        assert!(parse_orchestrator("Let us think.", &apps()).is_err());
    }

    #[test]
    fn critic_verdicts_parse() {
        assert_eq!(parse_critic(ACCEPT).unwrap(), Verdict::Accept);
        assert_eq!(
            parse_critic("Looks fine.\naccept").unwrap(),
            Verdict::Accept
        );
        assert_eq!(
            parse_critic(&retry("use page_limit=20")).unwrap(),
            Verdict::Retry("use page_limit=20".into())
        );
        assert!(parse_critic("ACCEPTED").is_err());
        assert!(parse_critic("RETRY:").is_err());
        assert!(parse_critic("maybe").is_err());
    }

    #[test]
    fn answers_round_trip_through_complete_lines() {
        for value in [
            json!(15.81),
            json!(3),
            json!("Mark Ito"),
            json!("42"),
            json!("none"),
            json!("two\nlines"),
            json!(["b", "a"]),
            json!(true),
        ] {
            let text = answer_text(&value).unwrap();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(answer_value(&text), value, "{text}");
        }
        assert_eq!(answer_text(&json!("Mark Ito")).unwrap(), "Mark Ito");
        assert_eq!(answer_text(&json!("42")).unwrap(), "\"42\"");
        assert_eq!(answer_text(&Value::Null), None);
        assert_eq!(complete_call(None), "apis.supervisor.complete_task()");
        assert_eq!(
            complete_call(Some("Mark Ito")),
            "apis.supervisor.complete_task(answer=\"Mark Ito\")"
        );
        assert_eq!(
            complete_call(Some("[\"a\", true, null, 1.5]")),
            "apis.supervisor.complete_task(answer=[\"a\", True, None, 1.5])"
        );
    }

    #[test]
    fn headers_and_reports_read_back() {
        let spec = SubtaskSpec {
            app: "mail".into(),
            instruction: "Count: the mails.".into(),
        };
        assert_eq!(parse_subtask_header(&subtask_header(&spec)).unwrap(), spec);
        let request = critic_start(
            &spec,
            &[ExecutedCell {
                code: "print(1)",
                output: "1",
            }],
            "n = 1",
        );
        assert_eq!(
            parse_critic_request_report(&request[1].content),
            Some("DONE: n = 1")
        );
        assert!(
            request[1]
                .content
                .contains("```python\nprint(1)\n```\nOutput:\n1")
        );
    }

    #[test]
    fn clipping_notes_what_was_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcdé", 3), "abc\n…[2 more characters]");
    }
}
