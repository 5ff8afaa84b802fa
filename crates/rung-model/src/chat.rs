//! ChatML rendering (Qwen's chat format) with a per-token training mask, and completion parsing.
//!
//! A conversation renders as one `<|im_start|>{role}\n{content}<|im_end|>\n` block per message,
//! with no default system prompt added (unlike Qwen2.5's template, which inserts one when the
//! conversation has none). With `add_generation_prompt` the text ends with
//! [`GENERATION_PROMPT`] (`<|im_start|>assistant\n`), after which the model writes the assistant's
//! content and ends the turn with [`IM_END`], the stop token.
//!
//! # Ids: exactly the tokenization of the rendered text
//!
//! [`render`] returns the text, its ids and a mask. The ids are *exactly*
//! `tokenizer.encode(&rendered.text)`: the tokenizer cuts its input at every special token before
//! pre-tokenization and BPE, so no merge ever crosses `<|im_start|>` or `<|im_end|>`, and the text
//! between two special tokens is tokenized on its own. `render` therefore tokenizes per message the
//! pieces that the tokenizer itself would see: the `<|im_start|>` id, the whole `{role}\n{content}`
//! piece in one call (never `{role}\n` and `{content}` apart: BPE may merge across that boundary,
//! for instance the role's `\n` with a leading `\n` of the content), the `<|im_end|>` id and the
//! `\n` piece. [`Tokenizer::chat_tokens`] checks that the special tokens have no `lstrip`, `rstrip`
//! or `single_word` flag, which could break this. Consequences: a conversation's ids are a prefix of
//! the ids of any continuation of it (useful for KV-cache reuse), and content that contains the text
//! of a special token (`<|im_end|>`, ...) is tokenized as that special token, exactly as HF's
//! `apply_chat_template(tokenize=True)` does; sanitize such content upstream if that is unwanted.
//!
//! # Mask: the assistant's content and `<|im_end|>`
//!
//! `mask[i]` is 1 when token `i` belongs to an assistant turn with `train == true` and covers at
//! least one byte of its content or is its closing `<|im_end|>`; everything else is 0: the
//! `<|im_start|>assistant\n` header, the `\n` after `<|im_end|>`, all other turns, the generation
//! prompt. This is the rule of HF/TRL's `assistant_only_loss` (the Qwen templates wrap
//! `content + '<|im_end|>'` in `{% generation %}` and HF marks every token that overlaps a character
//! of that span). Learning `<|im_end|>` teaches the model to stop; the `\n` after it is never
//! generated (generation stops at `<|im_end|>`), so it is not trained. A token that straddles the
//! header/content boundary (the role's `\n` merged with a leading `\n` or spaces of the content) is
//! trained, as in HF.

use serde::{Deserialize, Serialize};

use crate::tokenizer::{ENDOFTEXT, IM_END, IM_START, SPECIAL_TOKENS, Tokenizer, TokenizerError};

/// The role of the model's turns.
pub const ASSISTANT: &str = "assistant";
/// Text that starts the model's turn in a generation prompt.
pub const GENERATION_PROMPT: &str = "<|im_start|>assistant\n";

/// Errors of chat rendering.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A role that would break the ChatML header.
    #[error(
        "message {index}: invalid role {role:?} (must be non-empty, without whitespace, control characters or special tokens)"
    )]
    InvalidRole { index: usize, role: String },
    /// `train` set on a turn that is not the assistant's.
    #[error(
        "message {index}: train is set on a {role:?} turn; only assistant turns can be selected for training"
    )]
    TrainOnNonAssistant { index: usize, role: String },
}

/// One chat message, OpenAI style (`role`, `content`), plus `train`: whether this assistant turn is
/// selected for training (its content and `<|im_end|>` get mask 1). `train` defaults to false when
/// deserializing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
    #[serde(default)]
    pub train: bool,
}

impl Message {
    /// A message with `train == false`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
            train: false,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An assistant message not selected for training (context only).
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(ASSISTANT, content)
    }

    /// An assistant message selected for training.
    pub fn assistant_train(content: impl Into<String>) -> Self {
        Self::new(ASSISTANT, content).with_train(true)
    }

    /// Sets `train`.
    pub fn with_train(mut self, train: bool) -> Self {
        self.train = train;
        self
    }
}

/// A rendered conversation: `ids == tokenizer.encode(&text)`, and `mask[i]` (0 or 1) says whether
/// `ids[i]` is trained (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rendered {
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub text: String,
    /// For each id, the bytes of a message's content it was tokenized from (`None` for the
    /// template's tokens: specials, role headers, newlines), so that callers can map text
    /// positions (say, a literal in an assistant's code) to tokens.
    pub spans: Vec<Option<TokenSpan>>,
}

/// The bytes `start..end` of `messages[message].content` that one token covers (a token that
/// straddles the role header and the content covers the content from byte 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSpan {
    /// Index of the message.
    pub message: usize,
    /// First byte in the content.
    pub start: usize,
    /// One past the last byte in the content.
    pub end: usize,
}

impl Rendered {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of tokens with mask 1.
    pub fn num_trained(&self) -> usize {
        self.mask.iter().filter(|&&m| m != 0).count()
    }
}

/// Result of [`parse_completion`]: the assistant's content, and whether generation ended the turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The text before the stop token (all of it if there was none).
    pub content: String,
    /// True when the completion contained `<|im_end|>` (or `<|endoftext|>`), false when it was
    /// cut off (for example by the token limit).
    pub stopped: bool,
}

fn validate(index: usize, message: &Message) -> Result<(), ChatError> {
    let role = &message.role;
    let bad_role = role.is_empty()
        || role.chars().any(|c| c.is_whitespace() || c.is_control())
        || SPECIAL_TOKENS.iter().any(|t| role.contains(t));
    if bad_role {
        return Err(ChatError::InvalidRole {
            index,
            role: role.clone(),
        });
    }
    if message.train && role != ASSISTANT {
        return Err(ChatError::TrainOnNonAssistant {
            index,
            role: role.clone(),
        });
    }
    Ok(())
}

/// The ChatML text of a conversation (see the module documentation), after validating roles.
pub fn render_text(messages: &[Message], add_generation_prompt: bool) -> Result<String, ChatError> {
    let mut text = String::new();
    for (index, message) in messages.iter().enumerate() {
        validate(index, message)?;
        text.push_str(IM_START);
        text.push_str(&message.role);
        text.push('\n');
        text.push_str(&message.content);
        text.push_str(IM_END);
        text.push('\n');
    }
    if add_generation_prompt {
        text.push_str(GENERATION_PROMPT);
    }
    Ok(text)
}

/// Renders a conversation to text, ids and training mask. With `add_generation_prompt` it ends
/// with `<|im_start|>assistant\n` (mask 0), ready for generation.
pub fn render(
    tokenizer: &Tokenizer,
    messages: &[Message],
    add_generation_prompt: bool,
) -> Result<Rendered, ChatError> {
    let special = tokenizer.chat_tokens()?;
    let newline = tokenizer.encode("\n")?;
    let mut out = Rendered {
        text: render_text(messages, add_generation_prompt)?,
        ..Rendered::default()
    };
    let mut piece = String::new();
    for (index, message) in messages.iter().enumerate() {
        out.ids.push(special.im_start);
        out.mask.push(0);
        out.spans.push(None);

        // `{role}\n{content}` is one piece between two special tokens: tokenize it whole and
        // mark the tokens that overlap the content (bytes from `header` on).
        piece.clear();
        piece.push_str(&message.role);
        piece.push('\n');
        let header = piece.len();
        piece.push_str(&message.content);
        let (ids, offsets) = tokenizer.encode_with_offsets(&piece)?;
        out.ids.extend_from_slice(&ids);
        out.mask.extend(
            offsets
                .iter()
                .map(|&(start, end)| u8::from(message.train && (end > header || start >= header))),
        );
        out.spans.extend(offsets.iter().map(|&(start, end)| {
            (end > header).then(|| TokenSpan {
                message: index,
                start: start.saturating_sub(header),
                end: end - header,
            })
        }));

        out.ids.push(special.im_end);
        out.mask.push(u8::from(message.train));
        out.ids.extend_from_slice(&newline);
        out.mask.extend(std::iter::repeat_n(0, newline.len()));
        out.spans
            .extend(std::iter::repeat_n(None, newline.len() + 1));
    }
    if add_generation_prompt {
        out.ids.push(special.im_start);
        out.mask.push(0);
        let header = tokenizer.encode("assistant\n")?;
        out.mask.extend(std::iter::repeat_n(0, header.len()));
        out.spans
            .extend(std::iter::repeat_n(None, header.len() + 1));
        out.ids.extend(header);
    }
    Ok(out)
}

/// Renders a conversation as a generation prompt: `render(tokenizer, messages, true)`.
pub fn render_prompt(tokenizer: &Tokenizer, messages: &[Message]) -> Result<Rendered, ChatError> {
    render(tokenizer, messages, true)
}

/// The stop token of generation: the id of `<|im_end|>`.
pub fn stop_token(tokenizer: &Tokenizer) -> Result<u32, ChatError> {
    Ok(tokenizer.chat_tokens()?.im_end)
}

/// Parses generated text (what follows the generation prompt): the content is the text before the
/// first `<|im_end|>` (or `<|endoftext|>`, which some models emit instead), verbatim.
pub fn parse_completion(text: &str) -> Completion {
    let stop = [IM_END, ENDOFTEXT]
        .iter()
        .filter_map(|t| text.find(t))
        .min();
    match stop {
        Some(end) => Completion {
            content: text[..end].to_owned(),
            stopped: true,
        },
        None => Completion {
            content: text.to_owned(),
            stopped: false,
        },
    }
}

/// Parses generated ids (what follows the generation prompt): decodes the ids before the first
/// `<|im_end|>` or `<|endoftext|>` id.
pub fn parse_completion_ids(tokenizer: &Tokenizer, ids: &[u32]) -> Result<Completion, ChatError> {
    let special = tokenizer.chat_tokens()?;
    let stop = ids
        .iter()
        .position(|&id| id == special.im_end || id == special.endoftext);
    let end = stop.unwrap_or(ids.len());
    Ok(Completion {
        content: tokenizer.decode(&ids[..end])?,
        stopped: stop.is_some(),
    })
}
