//! Deterministic token estimates for policies that have no tokenizer.
//!
//! Scripted policies report token counts so that cost tables compare like with like, but they
//! run no model and own no tokenizer. They count with this estimate instead: every run of
//! letters, digits and `_` is one token, and every other character that is not whitespace is
//! one token. Real BPE tokenizers land within a small factor of it on code and English; the
//! numbers are estimates and are documented as such wherever they are reported.

use rung_trajectory::Message;

/// Tokens a chat template adds around each message (`<|im_start|>role\n … <|im_end|>\n`).
pub const MESSAGE_OVERHEAD: u64 = 4;

/// Estimated tokens of `text`.
pub fn estimate_tokens(text: &str) -> u64 {
    let mut count = 0;
    let mut in_word = false;
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            if !in_word {
                count += 1;
                in_word = true;
            }
        } else {
            in_word = false;
            if !c.is_whitespace() {
                count += 1;
            }
        }
    }
    count
}

/// Estimated prompt tokens of a conversation, chat-template overhead included, plus the
/// assistant header that generation starts after.
pub fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    messages
        .iter()
        .map(|m| estimate_tokens(&m.content) + MESSAGE_OVERHEAD)
        .sum::<u64>()
        + MESSAGE_OVERHEAD / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_punctuation_count_separately() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("   \n"), 0);
        assert_eq!(estimate_tokens("hello world"), 2);
        assert_eq!(estimate_tokens("apis.phone.login(username=\"a@b.c\")"), 16);
        assert_eq!(estimate_tokens("phone_token"), 1);
        assert_eq!(estimate_tokens("DONE: x = 3"), 5);
    }

    #[test]
    fn prompt_estimate_adds_template_overhead() {
        let messages = [Message::system("a b"), Message::user("c")];
        assert_eq!(
            estimate_prompt_tokens(&messages),
            3 + 2 * MESSAGE_OVERHEAD + 2
        );
    }
}
