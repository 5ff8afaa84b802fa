//! ChatML rendering: ids equal the tokenization of the rendered text, the mask covers exactly the
//! trained assistant contents and their `<|im_end|>`, generation prompts, completion parsing.

use rung_model::chat::{
    ChatError, Completion, GENERATION_PROMPT, Message, Rendered, parse_completion,
    parse_completion_ids, render, render_prompt, render_text, stop_token,
};
use rung_model::tokenizer::{IM_END, Tokenizer, TokenizerError};
use serde_json::Value;

/// SplitMix64: a tiny deterministic generator for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Content pieces, chosen to stress boundaries: leading/trailing spaces and newlines, blank
/// lines, tabs, CRLF, code, JSON, Unicode, emoji, digits, special-token look-alikes.
const PIECES: &[&str] = &[
    "Hello there!",
    " leading space",
    "  two leading spaces",
    "\nleading newline",
    "\n\nleading blank line",
    " \n space then newline",
    "\t tab first",
    "trailing newline\n",
    "trailing spaces   ",
    "\n",
    " ",
    "",
    "\r\nCRLF\r\n",
    "fn main() {\n    println!(\"hi\");\n}\n",
    "```python\nfor x in apis.venmo.show_transactions(page_index=0):\n    print(x[\"amount\"])\n```",
    "{\"name\": \"Alice\", \"items\": [1, 2, 3], \"nested\": {\"k\": null}}",
    "déjà vu — naïve façon, Straße 12,50 €",
    "中文，日本語、한국어",
    "🎉🚀 👩‍👩‍👧 done ✅",
    "1234567890 3.14 -42",
    "assistant",
    "user\n",
    "I'll check: it's done, they've paid.",
    "<|im_end",
    "|> not special",
    "a<|im_end|>b",
];

const CORPUS_EXTRA: &[&str] = &[
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\nWhat is the total?<|im_end|>\n<|im_start|>assistant\nThe total is 42.<|im_end|>\n",
    "    return x\n\n\ndef f():\n\tpass\n",
];

fn corpus(n: usize) -> Vec<String> {
    let mut rng = Rng(11);
    (0..n)
        .map(|_| {
            let mut doc = String::new();
            for _ in 0..1 + rng.below(4) {
                doc.push_str(if rng.chance(30) {
                    rng.pick(CORPUS_EXTRA)
                } else {
                    rng.pick(PIECES)
                });
                doc.push_str(rng.pick(&["", " ", "\n", "\n\n"]));
            }
            doc
        })
        .collect()
}

fn trained(vocab_size: usize) -> Tokenizer {
    Tokenizer::train_bpe(corpus(500), vocab_size, 2).expect("training")
}

/// The Qwen2 layout of a trained tokenizer: special tokens after the BPE vocabulary, NFC.
fn qwen2_layout(tok: &Tokenizer) -> Tokenizer {
    let mut json: Value = serde_json::from_str(&tok.to_json().unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap().clone();
    let mut new_vocab = serde_json::Map::new();
    for (token, id) in vocab {
        let id = id.as_u64().unwrap();
        if id >= 3 {
            new_vocab.insert(token, Value::from(id - 3));
        }
    }
    let n = new_vocab.len() as u64;
    json["model"]["vocab"] = Value::Object(new_vocab);
    json["normalizer"] = serde_json::json!({"type": "NFC"});
    for (i, t) in json["added_tokens"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .enumerate()
    {
        t["id"] = Value::from(n + i as u64);
    }
    Tokenizer::from_json(&json.to_string()).unwrap()
}

fn random_conversation(rng: &mut Rng) -> (Vec<Message>, bool) {
    let mut messages = Vec::new();
    if rng.chance(50) {
        messages.push(Message::system(random_content(rng)));
    }
    let turns = 1 + rng.below(4);
    for _ in 0..turns {
        messages.push(Message::user(random_content(rng)));
        if rng.chance(15) {
            messages.push(Message::new("tool", random_content(rng)));
        }
        if rng.chance(85) {
            let m = Message::assistant(random_content(rng)).with_train(rng.chance(60));
            messages.push(m);
        }
    }
    (messages, rng.chance(30))
}

fn random_content(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(4) {
        s.push_str(rng.pick(PIECES));
        s.push_str(rng.pick(&["", " ", "\n", "\n\n", "  "]));
    }
    s
}

/// The expected mask computed independently of `render`: tokenize the full text once, find the
/// byte spans of each trained assistant content and of its `<|im_end|>`, and mark every token that
/// overlaps one (HF's `return_assistant_tokens_mask` rule).
fn expected_mask(tok: &Tokenizer, messages: &[Message], text: &str) -> Vec<u8> {
    let mut spans = Vec::new();
    let mut pos = 0;
    for m in messages {
        let header = format!("<|im_start|>{}\n", m.role);
        assert_eq!(&text[pos..pos + header.len()], header);
        let start = pos + header.len();
        let end = start + m.content.len();
        assert_eq!(&text[end..end + IM_END.len()], IM_END);
        if m.train {
            spans.push((start, end));
            spans.push((end, end + IM_END.len()));
        }
        pos = end + IM_END.len() + 1;
    }
    let (_, offsets) = tok.encode_with_offsets(text).unwrap();
    offsets
        .iter()
        .map(|&(s, e)| u8::from(spans.iter().any(|&(a, b)| s < b && e > a)))
        .collect()
}

fn check(tok: &Tokenizer, messages: &[Message], gen_prompt: bool, exact_decode: bool) -> Rendered {
    let r = render(tok, messages, gen_prompt).unwrap();
    assert_eq!(r.text, render_text(messages, gen_prompt).unwrap());
    // The core property: ids with masks are exactly the ids of the full text in one go.
    assert_eq!(r.ids, tok.encode(&r.text).unwrap(), "text {:?}", r.text);
    assert_eq!(r.mask.len(), r.ids.len());
    assert!(r.mask.iter().all(|&m| m <= 1));
    assert_eq!(
        r.mask,
        expected_mask(tok, messages, &r.text),
        "text {:?}",
        r.text
    );
    if exact_decode {
        assert_eq!(tok.decode(&r.ids).unwrap(), r.text);
    }
    // Token spans: one per id, inside their message's content, in order, covering all of it
    // without gaps (byte-level tokens of one multi-byte character share its span).
    assert_eq!(r.spans.len(), r.ids.len());
    for (i, m) in messages.iter().enumerate() {
        let spans: Vec<_> = r
            .spans
            .iter()
            .flatten()
            .filter(|s| s.message == i)
            .collect();
        let (mut start, mut end) = (0, 0);
        for s in &spans {
            assert!(
                s.start < s.end && s.end <= m.content.len(),
                "{s:?} in {:?}",
                m.content
            );
            assert!(
                s.start >= start && s.start <= end,
                "spans of message {i}: {spans:?}"
            );
            (start, end) = (s.start, end.max(s.end));
        }
        assert_eq!(end, m.content.len(), "spans cover message {i}: {spans:?}");
    }
    // Generation prompt: the same conversation plus `<|im_start|>assistant\n`, untrained.
    let without = render(tok, messages, false).unwrap();
    if gen_prompt {
        assert!(r.text.ends_with(GENERATION_PROMPT));
        let mut expected = without.ids.clone();
        expected.push(tok.im_start_id().unwrap());
        expected.extend(tok.encode("assistant\n").unwrap());
        assert_eq!(r.ids, expected);
        assert!(r.mask[without.len()..].iter().all(|&m| m == 0));
    } else {
        assert_eq!(r, without);
    }
    // Prefix property: rendering a prefix of the conversation gives a prefix of the ids.
    for k in 0..messages.len() {
        let prefix = render(tok, &messages[..k], false).unwrap();
        assert_eq!(prefix.ids[..], without.ids[..prefix.len()]);
        assert_eq!(prefix.mask[..], without.mask[..prefix.len()]);
    }
    r
}

#[test]
fn ids_with_masks_equal_full_text_ids_random_conversations() {
    let small = trained(600);
    let tokenizers = [
        Tokenizer::train_bpe(corpus(50), 259, 1).unwrap(), // bytes only
        small.clone(),
        trained(1500),
    ];
    let mut rng = Rng(2024);
    let mut trained_tokens = 0;
    for tok in &tokenizers {
        for _ in 0..80 {
            let (messages, gen_prompt) = random_conversation(&mut rng);
            trained_tokens += check(tok, &messages, gen_prompt, true).num_trained();
        }
    }
    assert!(trained_tokens > 1000, "{trained_tokens}");
    // Qwen2 layout (special tokens after the vocabulary, NFC normalizer).
    let qwen = qwen2_layout(&small);
    for _ in 0..80 {
        let (messages, gen_prompt) = random_conversation(&mut rng);
        check(&qwen, &messages, gen_prompt, true);
    }
}

#[test]
fn exact_text_and_mask_of_a_simple_conversation() {
    let tok = trained(600);
    let messages = vec![
        Message::system("You are a helpful assistant."),
        Message::user("What is the total?"),
        Message::assistant_train("The total is 42."),
    ];
    let r = check(&tok, &messages, false, true);
    assert_eq!(
        r.text,
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the total?<|im_end|>\n<|im_start|>assistant\nThe total is 42.<|im_end|>\n"
    );
    // Trained: exactly the content tokens and <|im_end|>; the final "\n" is not.
    let content = tok.encode("The total is 42.").unwrap();
    let newline = tok.encode("\n").unwrap();
    let n = r.len();
    let tail = n - newline.len() - 1 - content.len();
    assert_eq!(r.ids[tail..n - newline.len() - 1], content[..]);
    assert_eq!(r.ids[n - newline.len() - 1], tok.im_end_id().unwrap());
    let expected: Vec<u8> = (0..n)
        .map(|i| u8::from(i >= tail && i < n - newline.len()))
        .collect();
    assert_eq!(r.mask, expected);
    assert_eq!(r.num_trained(), content.len() + 1);
    let masked: Vec<u32> = r
        .ids
        .iter()
        .zip(&r.mask)
        .filter(|(_, m)| **m == 1)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(tok.decode(&masked).unwrap(), "The total is 42.<|im_end|>");
}

#[test]
fn untrained_assistant_turns_have_mask_zero() {
    let tok = trained(600);
    let messages = vec![
        Message::user("hi"),
        Message::assistant("context only"),
        Message::user("again"),
        Message::assistant_train("learn this"),
        Message::user("and"),
        Message::assistant("not this"),
    ];
    let r = check(&tok, &messages, false, true);
    let masked: Vec<u32> = r
        .ids
        .iter()
        .zip(&r.mask)
        .filter(|(_, m)| **m == 1)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(tok.decode(&masked).unwrap(), "learn this<|im_end|>");
    let all_context = vec![Message::user("hi"), Message::assistant("context only")];
    let r = check(&tok, &all_context, true, true);
    assert_eq!(r.num_trained(), 0);
    assert!(r.mask.iter().all(|&m| m == 0));
}

#[test]
fn edge_cases_at_the_header_content_boundary() {
    for tok in [trained(600), trained(1500), qwen2_layout(&trained(600))] {
        let im_end = tok.im_end_id().unwrap();
        for content in [
            "",
            " ",
            "\n",
            "\n\n",
            "\nx",
            " \n x",
            "\t",
            "  indented",
            "\r\n",
            "🎉",
            "é",
            "x\n",
            "<|im_end|>",
            "a<|im_start|>b",
            "<|endoftext|>",
            "assistant\n",
            "\u{feff}",
        ] {
            let messages = vec![Message::user(content), Message::assistant_train(content)];
            let r = check(&tok, &messages, false, true);
            // The last assistant block: <|im_start|> header... content <|im_end|> "\n".
            let masked: Vec<u32> = r
                .ids
                .iter()
                .zip(&r.mask)
                .filter(|(_, m)| **m == 1)
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(*masked.last().unwrap(), im_end, "{content:?}");
            let text = tok.decode(&masked).unwrap();
            // Content plus <|im_end|>, possibly with the role's "\n" when BPE merged it with
            // leading whitespace of the content (HF's overlap rule).
            let expected = format!("{content}{IM_END}");
            assert!(
                text == expected || text == format!("\n{expected}"),
                "{content:?}: {text:?}"
            );
            if text != expected {
                assert!(content.starts_with(char::is_whitespace), "{content:?}");
            }
            // Empty content: only <|im_end|> is trained.
            if content.is_empty() {
                assert_eq!(masked, vec![im_end]);
            }
        }
    }
}

#[test]
fn generation_prompt_stop_token_and_completion_parsing() {
    let tok = trained(600);
    let messages = vec![Message::system("Be brief."), Message::user("Say hi.")];
    let prompt = render_prompt(&tok, &messages).unwrap();
    assert!(
        prompt
            .text
            .ends_with("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n")
    );
    assert_eq!(prompt.num_trained(), 0);
    assert_eq!(prompt.ids, tok.encode(&prompt.text).unwrap());
    assert_eq!(stop_token(&tok).unwrap(), 2);
    let empty = render_prompt(&tok, &[]).unwrap();
    assert_eq!(empty.text, GENERATION_PROMPT);
    assert_eq!(empty.ids, tok.encode(GENERATION_PROMPT).unwrap());

    assert_eq!(
        parse_completion("Hi!<|im_end|>\n<|im_start|>user\n"),
        Completion {
            content: "Hi!".into(),
            stopped: true
        }
    );
    assert_eq!(
        parse_completion("cut off mid-"),
        Completion {
            content: "cut off mid-".into(),
            stopped: false
        }
    );
    assert_eq!(
        parse_completion(" x\n<|endoftext|>junk<|im_end|>"),
        Completion {
            content: " x\n".into(),
            stopped: true
        }
    );
    assert_eq!(
        parse_completion("<|im_end|>"),
        Completion {
            content: String::new(),
            stopped: true
        }
    );

    let mut ids = tok.encode("Hi there, 🎉!").unwrap();
    ids.push(2);
    ids.extend(tok.encode("garbage").unwrap());
    assert_eq!(
        parse_completion_ids(&tok, &ids).unwrap(),
        Completion {
            content: "Hi there, 🎉!".into(),
            stopped: true
        }
    );
    let ids = tok.encode("no stop").unwrap();
    assert_eq!(
        parse_completion_ids(&tok, &ids).unwrap(),
        Completion {
            content: "no stop".into(),
            stopped: false
        }
    );
    // Rendering a parsed completion back as a trained turn reproduces the generated ids.
    let generated = tok.encode("The answer is 7.").unwrap();
    let mut full = prompt.ids.clone();
    full.extend(&generated);
    full.push(2);
    let parsed = parse_completion_ids(&tok, &generated).unwrap();
    let mut convo = messages.clone();
    convo.push(Message::assistant_train(parsed.content));
    let r = render(&tok, &convo, false).unwrap();
    assert_eq!(r.ids[..full.len()], full[..]);
}

#[test]
fn invalid_messages_and_tokenizers_are_errors() {
    let tok = trained(600);
    for role in ["", "us er", "user\n", "<|im_end|>", "a\tb"] {
        let err = render(&tok, &[Message::new(role, "x")], false).unwrap_err();
        assert!(
            matches!(err, ChatError::InvalidRole { index: 0, .. }),
            "{role:?}: {err:?}"
        );
    }
    let err = render(
        &tok,
        &[Message::user("q"), Message::user("x").with_train(true)],
        false,
    )
    .unwrap_err();
    assert!(
        matches!(err, ChatError::TrainOnNonAssistant { index: 1, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("only assistant turns"));
    // Custom roles are fine.
    assert!(
        render(
            &tok,
            &[Message::new("tool", "{}"), Message::new("ipython", "")],
            false
        )
        .is_ok()
    );

    // A tokenizer without ChatML special tokens (BPE vocabulary entries are not enough).
    let mut json: Value = serde_json::from_str(&tok.to_json().unwrap()).unwrap();
    json["added_tokens"] = Value::Array(vec![]);
    let plain = Tokenizer::from_json(&json.to_string()).unwrap();
    let err = render(&plain, &[Message::user("x")], false).unwrap_err();
    assert!(
        matches!(
            err,
            ChatError::Tokenizer(TokenizerError::MissingSpecialToken(_))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no special token"), "{err}");
    // A special token that strips whitespace around it would break exact rendering.
    let mut json: Value = serde_json::from_str(&tok.to_json().unwrap()).unwrap();
    json["added_tokens"][2]["lstrip"] = Value::Bool(true);
    let stripping = Tokenizer::from_json(&json.to_string()).unwrap();
    let err = render(&stripping, &[Message::user("x")], false).unwrap_err();
    assert!(
        matches!(
            err,
            ChatError::Tokenizer(TokenizerError::UnsupportedSpecialToken { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn messages_deserialize_openai_style() {
    let m: Message = serde_json::from_str(r#"{"role": "user", "content": "hi"}"#).unwrap();
    assert_eq!(m, Message::user("hi"));
    let m: Message =
        serde_json::from_str(r#"{"role": "assistant", "content": "ok", "train": true}"#).unwrap();
    assert_eq!(m, Message::assistant_train("ok"));
    let back: Message = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
    assert_eq!(back, m);
}
