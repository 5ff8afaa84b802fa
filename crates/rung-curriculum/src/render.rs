//! The seam to a tokenizer and chat template: [`ChatRenderer`].

use rung_trajectory::{ChatRole, Message};

/// Token ids and a 0/1 loss mask of the same length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Token ids.
    pub ids: Vec<u32>,
    /// 1 where the token is trained, 0 elsewhere.
    pub mask: Vec<u8>,
}

/// The bytes `start..end` of `messages[message].content` that one rendered token covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentSpan {
    /// Index of the message.
    pub message: usize,
    /// First byte in the content.
    pub start: usize,
    /// One past the last byte in the content.
    pub end: usize,
}

/// For each rendered token, the content bytes it covers (`None` for template tokens).
pub type Spans = Vec<Option<ContentSpan>>;

/// Renders a conversation to model input.
///
/// The contract, which rung-model's ChatML renderer (`rung_model::chat::render`) meets and any
/// implementation must:
/// - `render` returns the ids of the conversation exactly as inference would see them (no
///   generation prompt), and a mask that is 1 exactly on the tokens of the assistant messages
///   whose `train` is true (their content and end-of-turn token) and 0 elsewhere;
/// - `count_tokens(m) == render(m).ids.len()`;
/// - removing a whole message never makes the rendering longer.
///
/// This crate knows nothing of burn or of a particular tokenizer: a trainer implements this
/// trait for its tokenizer (a thin adapter over `rung_model::chat::render`), and the tests of
/// this crate do the same in their own code.
pub trait ChatRenderer {
    /// The renderer's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Ids and loss mask of `messages`.
    fn render(&self, messages: &[Message]) -> Result<Tokens, Self::Error>;

    /// Number of tokens `render` would return; override when counting is cheaper than
    /// rendering.
    fn count_tokens(&self, messages: &[Message]) -> Result<usize, Self::Error> {
        Ok(self.render(messages)?.ids.len())
    }

    /// `render`, plus which content bytes each token covers, where the renderer can say
    /// (`None` otherwise: its samples then mark no token as a literal, see
    /// [`crate::literal`]). Same ids and mask as `render`.
    fn render_with_spans(
        &self,
        messages: &[Message],
    ) -> Result<(Tokens, Option<Spans>), Self::Error> {
        Ok((self.render(messages)?, None))
    }
}

impl<R: ChatRenderer + ?Sized> ChatRenderer for &R {
    type Error = R::Error;

    fn render(&self, messages: &[Message]) -> Result<Tokens, Self::Error> {
        (**self).render(messages)
    }

    fn count_tokens(&self, messages: &[Message]) -> Result<usize, Self::Error> {
        (**self).count_tokens(messages)
    }

    fn render_with_spans(
        &self,
        messages: &[Message],
    ) -> Result<(Tokens, Option<Spans>), Self::Error> {
        (**self).render_with_spans(messages)
    }
}

/// The ChatML role name of a message author (`system`, `user`, `assistant`).
pub fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    }
}

/// A tokenizer-free renderer: ChatML text with one token per byte.
///
/// Ids 0, 1 and 2 are `<|endoftext|>`, `<|im_start|>` and `<|im_end|>` (as in rung's trained
/// tokenizers); byte `b` is id `b + 3`. The mask follows rung-model's rule: the content and
/// `<|im_end|>` of trained assistant messages. Token counts are byte counts: an upper bound
/// of any byte-level BPE's counts, useful for planning without a tokenizer
/// (`rung curriculum show` without `--tokenizer`) and for tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteRenderer;

/// Id of `<|im_start|>` in [`ByteRenderer`].
pub const BYTE_IM_START: u32 = 1;
/// Id of `<|im_end|>` in [`ByteRenderer`].
pub const BYTE_IM_END: u32 = 2;

impl ByteRenderer {
    /// The text of ids rendered by this renderer.
    pub fn decode(ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            match id {
                0 => bytes.extend_from_slice(b"<|endoftext|>"),
                1 => bytes.extend_from_slice(b"<|im_start|>"),
                2 => bytes.extend_from_slice(b"<|im_end|>"),
                b => bytes.push((b - 3) as u8),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl ChatRenderer for ByteRenderer {
    type Error = std::convert::Infallible;

    fn render(&self, messages: &[Message]) -> Result<Tokens, Self::Error> {
        let mut out = Tokens::default();
        for message in messages {
            let trained = u8::from(message.train && message.role == ChatRole::Assistant);
            out.ids.push(BYTE_IM_START);
            out.mask.push(0);
            for b in role_name(message.role).bytes().chain([b'\n']) {
                out.ids.push(u32::from(b) + 3);
                out.mask.push(0);
            }
            for b in message.content.bytes() {
                out.ids.push(u32::from(b) + 3);
                out.mask.push(trained);
            }
            out.ids.push(BYTE_IM_END);
            out.mask.push(trained);
            out.ids.push(u32::from(b'\n') + 3);
            out.mask.push(0);
        }
        Ok(out)
    }

    fn count_tokens(&self, messages: &[Message]) -> Result<usize, Self::Error> {
        Ok(messages
            .iter()
            .map(|m| role_name(m.role).len() + m.content.len() + 4)
            .sum())
    }

    fn render_with_spans(
        &self,
        messages: &[Message],
    ) -> Result<(Tokens, Option<Spans>), Self::Error> {
        let tokens = self.render(messages)?;
        let mut spans = Vec::with_capacity(tokens.ids.len());
        for (index, message) in messages.iter().enumerate() {
            spans.extend(std::iter::repeat_n(None, role_name(message.role).len() + 2));
            spans.extend((0..message.content.len()).map(|b| {
                Some(ContentSpan {
                    message: index,
                    start: b,
                    end: b + 1,
                })
            }));
            spans.extend([None, None]);
        }
        Ok((tokens, Some(spans)))
    }
}
