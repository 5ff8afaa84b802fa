//! Copied literals: the supervised tokens that measure copying skill.
//!
//! Token accuracy hides whether a model can copy: about a tenth of the supervised tokens of an
//! episode are task-specific values (ids, emails, phone numbers, dates, amounts, names) that the
//! assistant's code repeats from the instruction or from API outputs, and a model that gets none
//! of them right still scores ~92% token accuracy. This module marks those tokens so a trainer
//! can report accuracy on them alone.
//!
//! **Definition.** In a sample, a token is *literal* when
//! 1. it is supervised (loss mask 1) and belongs to a trained assistant message;
//! 2. its bytes overlap a literal of that message's code: the contents of a string literal
//!    (between the quotes, `'…'` or `"…"`, escapes kept as written) or a number literal (digits
//!    with an optional fractional part, not part of an identifier), at least
//!    [`MIN_LITERAL_BYTES`] bytes long; the code is the content of the message's fenced blocks
//!    (```` ``` ````) when it has any, else the whole content; `#` comments are skipped;
//! 3. the literal's text occurs in a user message (instruction, observations) *before* that
//!    assistant message in the sample, and in no system message: a value copied from the
//!    task's context, not one the fixed prompt teaches.

use std::ops::Range;

use rung_trajectory::{ChatRole, Message};

use crate::render::Spans;

/// Shorter literals (`0`, `1`, `"a"`) occur in nearly any context and say nothing of copying.
pub const MIN_LITERAL_BYTES: usize = 2;

/// Byte ranges of the string contents and number literals of `code`, in order.
pub fn literal_ranges(code: &str) -> Vec<Range<usize>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'\'' | b'"' => {
                let start = i + 1;
                let mut j = start;
                let mut closed = false;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' => j += 2,
                        b'\n' => break,
                        c if c == b => {
                            closed = true;
                            break;
                        }
                        _ => j += 1,
                    }
                }
                if closed {
                    out.push(start..j);
                    i = j + 1;
                } else {
                    i = j.min(bytes.len());
                }
            }
            b'0'..=b'9' => {
                let ident = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                let mut end = i;
                while end > start && bytes[end - 1] == b'.' {
                    end -= 1;
                }
                if !ident {
                    out.push(start..end);
                }
                // An identifier's tail (`x12ab`) is no number either.
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.retain(|r| r.len() >= MIN_LITERAL_BYTES);
    out
}

/// Byte ranges of `content` that hold code: the insides of ```` ``` ```` fences (the rest of
/// the opening line, a language tag, excluded), or all of it when it has no fence.
fn code_regions(content: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = content[rest..].find("```") {
        let open = rest + open + 3;
        let body = content[open..]
            .find('\n')
            .map_or(content.len(), |n| open + n + 1);
        let close = content[body..]
            .find("```")
            .map_or(content.len(), |c| body + c);
        out.push(body..close);
        rest = (close + 3).min(content.len());
    }
    if out.is_empty() {
        out.push(0..content.len());
    }
    out
}

/// The copied literals of `messages[index]` (an assistant message): byte ranges of its
/// content, as defined in the module documentation.
pub fn copied_literals(messages: &[Message], index: usize) -> Vec<Range<usize>> {
    let content = &messages[index].content;
    let context: Vec<&str> = messages[..index]
        .iter()
        .filter(|m| m.role == ChatRole::User)
        .map(|m| m.content.as_str())
        .collect();
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == ChatRole::System)
        .map(|m| m.content.as_str())
        .collect();
    code_regions(content)
        .into_iter()
        .flat_map(|region| {
            literal_ranges(&content[region.clone()])
                .into_iter()
                .map(move |r| region.start + r.start..region.start + r.end)
        })
        .filter(|r| {
            let text = &content[r.clone()];
            context.iter().any(|c| c.contains(text)) && !system.iter().any(|s| s.contains(text))
        })
        .collect()
}

/// The literal mask of a rendered sample: 1 on the supervised tokens (`mask` 1) of trained
/// assistant messages that overlap one of their copied literals. All zero without `spans`.
pub fn literal_mask(messages: &[Message], mask: &[u8], spans: Option<&Spans>) -> Vec<u8> {
    let mut out = vec![0; mask.len()];
    let Some(spans) = spans else {
        return out;
    };
    let literals: Vec<Vec<Range<usize>>> = (0..messages.len())
        .map(|i| {
            if messages[i].role == ChatRole::Assistant && messages[i].train {
                copied_literals(messages, i)
            } else {
                Vec::new()
            }
        })
        .collect();
    for (t, span) in spans.iter().enumerate().take(mask.len()) {
        let Some(span) = span else { continue };
        if mask[t] == 1
            && literals
                .get(span.message)
                .is_some_and(|ls| ls.iter().any(|r| r.start < span.end && span.start < r.end))
        {
            out[t] = 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{ByteRenderer, ChatRenderer};

    #[test]
    fn finds_strings_and_numbers_but_not_identifiers_or_comments() {
        let code = "x2 = apis.pay.send(to='ann@x.com', amount=12.5, n=7) # '99'\nprint(\"a\\\"b\")";
        let found: Vec<&str> = literal_ranges(code).into_iter().map(|r| &code[r]).collect();
        assert_eq!(found, vec!["ann@x.com", "12.5", "a\\\"b"]);
    }

    #[test]
    fn marks_exactly_the_copied_literal_tokens() {
        let messages = vec![
            Message::system("Use apis. Example: login('demo')."),
            Message::user("Send 42 dollars to ann@x.com."),
            Message::assistant(
                "```python\nt = login('demo')\npay('ann@x.com', 42, 'bob')\n```",
                true,
            ),
            Message::user("{\"id\": 31337}"),
            Message::assistant("show(31337, 'ann@x.com')", true),
            Message::assistant("show(31337)", false),
        ];
        let (tokens, spans) = ByteRenderer.render_with_spans(&messages).unwrap();
        let spans = spans.unwrap();
        assert_eq!(spans.len(), tokens.ids.len());
        let lit = literal_mask(&messages, &tokens.mask, Some(&spans));
        // The bytes (one token each) marked, message by message.
        let text = ByteRenderer::decode(&tokens.ids);
        let marked: String = tokens
            .ids
            .iter()
            .zip(&lit)
            .map(|(&id, &l)| {
                if l == 1 {
                    ByteRenderer::decode(&[id])
                } else {
                    "|".into()
                }
            })
            .collect::<String>()
            .split('|')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        // 'demo' is in the system prompt, 'bob' in no context; 31337 only counts after the
        // observation; the untrained last message has none.
        assert_eq!(marked, "ann@x.com 42 31337 ann@x.com", "{text}");
        assert!(lit.iter().zip(&tokens.mask).all(|(&l, &m)| l <= m));
    }

    #[test]
    fn no_spans_no_literals() {
        let messages = vec![Message::user("id 12"), Message::assistant("f(12)", true)];
        let tokens = ByteRenderer.render(&messages).unwrap();
        assert!(
            literal_mask(&messages, &tokens.mask, None)
                .iter()
                .all(|&l| l == 0)
        );
    }
}
