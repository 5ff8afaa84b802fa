//! Shared test code: the thin adapter from rung-curriculum's `ChatRenderer` to rung-model's
//! tokenizer and ChatML renderer (the production adapter belongs to the trainer crate; see the
//! crate documentation), a small trained BPE tokenizer, and hand-made trajectories.

#![allow(dead_code)]

use std::sync::OnceLock;

use rung_curriculum::{ChatRenderer, Tokens, role_name};
use rung_model::chat::{self, ChatError};
use rung_model::tokenizer::Tokenizer;
use rung_segment::build::EpisodeBuilder;
use rung_trajectory::{Episode, Message, Role, SystemKind};

/// `ChatRenderer` over rung-model's `chat::render`: training text equals inference text.
pub struct ModelRenderer<'a>(pub &'a Tokenizer);

impl ChatRenderer for ModelRenderer<'_> {
    type Error = ChatError;

    fn render(&self, messages: &[Message]) -> Result<Tokens, ChatError> {
        let messages: Vec<chat::Message> = messages
            .iter()
            .map(|m| chat::Message {
                role: role_name(m.role).to_owned(),
                content: m.content.clone(),
                train: m.train,
            })
            .collect();
        let rendered = chat::render(self.0, &messages, false)?;
        Ok(Tokens {
            ids: rendered.ids,
            mask: rendered.mask,
        })
    }
}

pub const APPS: [&str; 4] = ["phone", "pay", "mail", "notes"];

/// A three-agent trajectory of four sub-tasks: sub-task 1 has a wrong-parameter mistake
/// (untrained) and its recovery, sub-task 2 a premature report (untrained) that the critic
/// sends back, then the fix; the orchestrator completes after sub-task 3. `observation` is the
/// text of every environment output (to vary masked-out text).
pub fn three_agent(observation: &str) -> Episode {
    let mut b =
        EpisodeBuilder::new(SystemKind::ThreeAgent, "abc1234_1", "Do four things.").difficulty(2);
    let orch = b.open(
        Role::Orchestrator,
        "You are the orchestrator.",
        "Task: Do four things.",
    );
    for (k, app) in APPS.iter().enumerate() {
        b.delegate(orch, k, app, &format!("Step {k} in {app}."));
        let exec = b.open(
            Role::Executor,
            "You are the executor.",
            &format!("Sub-task: Step {k} in {app}."),
        );
        let login = format!("{app}_token = apis.{app}.login(username=\"u\", password=\"p{k}\")");
        b.code(exec, Some(k), &login, true, observation);
        if k == 1 {
            b.code(
                exec,
                Some(k),
                &format!("apis.{app}.do(wrong_{k}=1)"),
                false,
                "Execution failed.",
            );
        }
        if k == 2 {
            b.report(exec, k, "premature", false);
            let critic = b.open(
                Role::Critic,
                "You are the critic.",
                &format!("Check step {k}."),
            );
            b.verdict(critic, k, Some("Not done yet."));
            b.user(exec, "Feedback: Not done yet.");
        }
        b.code(
            exec,
            Some(k),
            &format!("x{k} = apis.{app}.do(value={k})\nprint(x{k})"),
            true,
            observation,
        );
        b.report(exec, k, &format!("x{k} = {k}"), true);
        let critic = b.open(
            Role::Critic,
            "You are the critic.",
            &format!("Check step {k} again."),
        );
        b.verdict(critic, k, None);
        b.user(
            orch,
            &format!("Result of step {k}: x{k} = {k}. {observation}"),
        );
    }
    b.complete(orch, "None");
    b.finish()
}

/// A single-agent trajectory of four sub-tasks whose turns record their sub-task; sub-task 2
/// has an untrained mistake.
pub fn single(observation: &str) -> Episode {
    let mut b = EpisodeBuilder::new(SystemKind::Single, "def5678_2", "Do four things alone.");
    let c = b.open(
        Role::Single,
        "You are the agent.",
        "Task: Do four things alone.",
    );
    for (k, app) in APPS.iter().enumerate() {
        b.code(
            c,
            Some(k),
            &format!("t{k} = apis.{app}.login(username=\"u\")"),
            true,
            observation,
        );
        if k == 2 {
            b.code(c, Some(k), "apis.mail.oops()", false, "Execution failed.");
        }
        b.code(
            c,
            Some(k),
            &format!("print(apis.{app}.work(access_token=t{k}))"),
            true,
            observation,
        );
    }
    b.code(
        c,
        Some(3),
        "apis.supervisor.complete_task()",
        true,
        "Execution successful.",
    );
    b.finish()
}

/// A small BPE tokenizer trained on the hand-made trajectories' text.
pub fn tokenizer() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let mut corpus = Vec::new();
        for episode in [three_agent("Execution successful."), single("15.81")] {
            for turn in &episode.turns {
                for m in &turn.messages {
                    corpus.push(m.content.clone());
                }
            }
        }
        Tokenizer::train_bpe(corpus, 600, 2).expect("tokenizer trains")
    })
}
