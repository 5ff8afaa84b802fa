//! Tokenizer: special tokens, byte-level BPE training (determinism, layout), round trips,
//! `tokenizer.json` save/load (rung's layout and Qwen2's), errors.

use std::path::{Path, PathBuf};

use rung_model::tokenizer::{
    ENDOFTEXT, IM_END, IM_START, SPECIAL_TOKENS, Tokenizer, TokenizerError,
};
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
}

const FRAGMENTS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog.",
    "Send the invoice to Alice before Friday, then archive the thread.",
    "fn main() {\n    let x: Vec<u32> = (0..10).collect();\n    println!(\"{x:?}\");\n}\n",
    "def total(items):\n    return sum(i[\"price\"] * i[\"qty\"] for i in items)\n",
    "for song in apis.spotify.show_playlist(playlist_id=42)[\"songs\"]:\n    print(song)\n",
    "{\"id\": 17, \"name\": \"Bob\", \"tags\": [\"a\", \"b\"], \"ok\": true, \"price\": 12.50}",
    "  indented line\n\n\nafter blank lines\r\nwindows line\tTab\t\tTabs",
    "Prix : 12,50 € — déjà vu, naïve façon, Straße, Ελληνικά, русский текст.",
    "中文文本测试，日本語のテキスト、한국어 텍스트。",
    "Emoji: 🎉🚀 👩‍👩‍👧 ✅ and flags 🇫🇷🇯🇵.",
    "Numbers 0 1 2 3 1234567890 3.14159 -42 1e-9 0xFF",
    "I'm sure you'll see they've done what we'd said.",
    "assistant\nuser\nsystem\ntool\n",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n",
];

fn corpus(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let parts = 1 + rng.below(4);
            let mut doc = String::new();
            for _ in 0..parts {
                doc.push_str(rng.pick(FRAGMENTS));
                doc.push_str(rng.pick(&[" ", "\n", "\n\n", "", "  "]));
            }
            doc
        })
        .collect()
}

fn trained(vocab_size: usize) -> Tokenizer {
    Tokenizer::train_bpe(corpus(400, 7), vocab_size, 2).expect("training")
}

fn tmp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tokenizer-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Strings that must survive `decode(encode(s))`.
fn tricky_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "\n",
        "\n\n\n",
        "\r\n",
        "\t\t x",
        "   leading spaces",
        "trailing spaces   ",
        "Hello, world!",
        "fn f(x: &str) -> Option<u32> { x.parse().ok() }\n",
        "{\"a\": [1, 2, {\"b\": null}], \"c\": \"\\n\\u00e9\"}",
        "e\u{301} (decomposed) vs \u{e9} (composed)",
        "zero\u{200b}width and \u{feff}bom",
        "nul \0 and bell \u{7} and del \u{7f}",
        "👩‍👩‍👧🎉🇫🇷 emoji",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 and 𐍈 gothic",
        "مرحبا بالعالم and עברית",
        "中文，日本語、한국어",
        "<|im_start|>user\nhi<|im_end|>\n",
        "<|im_end|><|im_end|><|endoftext|>",
        "<|im_end",
        "|>",
        "<|notspecial|>",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(FRAGMENTS.iter().map(|s| s.to_string()));
    // Random strings of random Unicode scalar values, ASCII-heavy.
    let mut rng = Rng(99);
    for _ in 0..200 {
        let len = rng.below(40);
        let s: String = (0..len)
            .map(|_| match rng.below(4) {
                0 => char::from_u32(rng.below(0x80) as u32).unwrap(),
                1 => [' ', '\n', '\t', '\r'][rng.below(4)],
                _ => loop {
                    if let Some(c) = char::from_u32(rng.below(0x11_0000) as u32) {
                        break c;
                    }
                },
            })
            .collect();
        v.push(s);
    }
    v
}

#[test]
fn special_tokens_are_single_fixed_ids() {
    let tok = trained(700);
    assert_eq!(tok.token_id(ENDOFTEXT), Some(0));
    assert_eq!(tok.token_id(IM_START), Some(1));
    assert_eq!(tok.token_id(IM_END), Some(2));
    assert_eq!(tok.endoftext_id(), Some(0));
    assert_eq!(tok.pad_id(), Some(0));
    assert_eq!(tok.im_start_id(), Some(1));
    assert_eq!(tok.im_end_id(), Some(2));
    let chat = tok.chat_tokens().unwrap();
    assert_eq!((chat.endoftext, chat.im_start, chat.im_end), (0, 1, 2));
    assert_eq!(tok.id_to_token(2).as_deref(), Some(IM_END));

    assert_eq!(tok.encode(IM_START).unwrap(), vec![1]);
    assert_eq!(tok.encode(IM_END).unwrap(), vec![2]);
    assert_eq!(tok.encode(ENDOFTEXT).unwrap(), vec![0]);
    assert_eq!(
        tok.encode("<|im_start|><|im_end|><|endoftext|><|im_start|>")
            .unwrap(),
        vec![1, 2, 0, 1]
    );
    // Never split, never merged with neighbours: the text around is tokenized on its own.
    for (left, right) in [
        ("x", "y"),
        (" ", " "),
        ("\n", "\n"),
        ("user\n", "\nassistant"),
        ("é", "🎉"),
    ] {
        for special in SPECIAL_TOKENS {
            let ids = tok.encode(&format!("{left}{special}{right}")).unwrap();
            let mut expected = tok.encode(left).unwrap();
            expected.push(tok.token_id(special).unwrap());
            expected.extend(tok.encode(right).unwrap());
            assert_eq!(ids, expected, "{left:?} {special} {right:?}");
        }
    }
    // Partial special-token text is ordinary text.
    let partial = tok.encode("<|im_end").unwrap();
    assert!(partial.iter().all(|&id| id > 2), "{partial:?}");
    // Special ids appear nowhere else.
    for s in tricky_strings() {
        let ids = tok.encode(&s).unwrap();
        let n_special = ids.iter().filter(|&&id| id <= 2).count();
        let expected = SPECIAL_TOKENS
            .iter()
            .map(|t| s.matches(t).count())
            .sum::<usize>();
        assert_eq!(n_special, expected, "{s:?}");
    }
}

#[test]
fn encode_adds_nothing_and_decode_keeps_special_tokens() {
    let tok = trained(700);
    assert!(tok.encode("").unwrap().is_empty());
    let ids = tok.encode("hello").unwrap();
    assert!(ids.iter().all(|&id| id > 2));
    assert_eq!(tok.decode(&[1]).unwrap(), IM_START);
    let ids = tok.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "<|im_start|>user\nhi<|im_end|>");
    assert_eq!(tok.decode_skip_special(&ids).unwrap(), "user\nhi");
}

#[test]
fn training_is_deterministic() {
    let docs = corpus(400, 7);
    let a = Tokenizer::train_bpe(docs.iter().map(String::as_str), 900, 2).unwrap();
    let b = Tokenizer::train_bpe(docs.clone(), 900, 2).unwrap();
    let json = a.to_json().unwrap();
    assert_eq!(json, b.to_json().unwrap());

    // Files: each file is one document, so training on files equals training on the documents.
    let dir = tmp_dir("determinism");
    let files: Vec<PathBuf> = docs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = dir.join(format!("doc{i}.txt"));
            std::fs::write(&p, d).unwrap();
            p
        })
        .collect();
    let c = Tokenizer::train_bpe_files(&files, 900, 2).unwrap();
    assert_eq!(json, c.to_json().unwrap());

    // A different corpus gives a different tokenizer (the test above is not vacuous).
    let d = Tokenizer::train_bpe(corpus(400, 8), 900, 2).unwrap();
    assert_ne!(json, d.to_json().unwrap());
}

#[test]
fn trained_layout_vocab_size_and_min_frequency() {
    let tok = trained(700);
    assert_eq!(tok.vocab_size(), 700);
    let json: Value = serde_json::from_str(&tok.to_json().unwrap()).unwrap();
    assert_eq!(json["model"]["type"], "BPE");
    assert_eq!(json["normalizer"], Value::Null);
    assert_eq!(json["pre_tokenizer"]["type"], "Sequence");
    assert_eq!(json["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
    assert_eq!(
        json["pre_tokenizer"]["pretokenizers"][1]["type"],
        "ByteLevel"
    );
    assert_eq!(json["decoder"]["type"], "ByteLevel");
    let added = json["added_tokens"].as_array().unwrap();
    assert_eq!(added.len(), 3);
    for (i, t) in added.iter().enumerate() {
        assert_eq!(t["id"], i as u64);
        assert_eq!(t["content"], SPECIAL_TOKENS[i]);
        assert_eq!(t["special"], true);
        assert_eq!(t["lstrip"], false);
        assert_eq!(t["rstrip"], false);
    }
    // Ids 3..259 are the 256 byte symbols in code-point order; merges follow.
    let byte_symbols: Vec<String> = (3..259).map(|id| tok.id_to_token(id).unwrap()).collect();
    assert!(byte_symbols.iter().all(|s| s.chars().count() == 1));
    let mut sorted = byte_symbols.clone();
    sorted.sort_by_key(|s| s.chars().next().unwrap() as u32);
    assert_eq!(byte_symbols, sorted);
    assert_eq!(tok.id_to_token(259).unwrap().chars().count(), 2);
    assert_eq!(json["model"]["merges"].as_array().unwrap().len(), 700 - 259);

    // The smallest vocabulary is bytes only: one token per UTF-8 byte.
    let bytes_only = Tokenizer::train_bpe(corpus(50, 1), 259, 1).unwrap();
    assert_eq!(bytes_only.vocab_size(), 259);
    assert_eq!(bytes_only.encode("aé🎉").unwrap().len(), 1 + 2 + 4);
    // A huge min_frequency stops training before any merge.
    let no_merges = Tokenizer::train_bpe(corpus(50, 1), 5000, 1_000_000).unwrap();
    assert_eq!(no_merges.vocab_size(), 259);
    // A corpus too small for the requested size stops early, below it.
    let small = Tokenizer::train_bpe(["abc abc abd"], 5000, 1).unwrap();
    assert!(small.vocab_size() > 259 && small.vocab_size() < 280);
    assert_eq!(small.encode("abc").unwrap().len(), 1);
}

#[test]
fn special_token_text_in_the_corpus_is_not_learned() {
    let docs: Vec<String> = (0..200)
        .map(|i| format!("<|im_start|>user\nmessage {i}<|im_end|>\n<|endoftext|>"))
        .collect();
    let tok = Tokenizer::train_bpe(docs, 400, 2).unwrap();
    let json: Value = serde_json::from_str(&tok.to_json().unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap();
    for token in vocab.keys() {
        if !SPECIAL_TOKENS.contains(&token.as_str()) {
            assert!(
                !token.contains("im_") && !token.contains("<|") && !token.contains("|>"),
                "{token}"
            );
        }
    }
    assert!(vocab.contains_key("message"), "ordinary text is learned");
}

#[test]
fn round_trip_arbitrary_utf8() {
    for tok in [trained(259), trained(700), trained(2000)] {
        for s in tricky_strings() {
            let ids = tok.encode(&s).unwrap();
            assert_eq!(tok.decode(&ids).unwrap(), s, "{s:?} -> {ids:?}");
            let (ids2, offsets) = tok.encode_with_offsets(&s).unwrap();
            assert_eq!(ids, ids2);
            assert_eq!(offsets.len(), ids.len());
            assert!(offsets.iter().all(|&(a, b)| a <= b && b <= s.len()));
        }
    }
    // Merges make text shorter than bytes.
    let tok = trained(2000);
    let text = FRAGMENTS.concat();
    assert!(tok.encode(&text).unwrap().len() * 2 < text.len());
}

#[test]
fn save_and_load_round_trip() {
    let tok = trained(700);
    let dir = tmp_dir("save");
    let path = dir.join("sub/dir/tokenizer.json");
    tok.save(&path).unwrap();
    let loaded = Tokenizer::from_file(&path).unwrap();
    assert_eq!(loaded.to_json().unwrap(), tok.to_json().unwrap());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        tok.to_json().unwrap()
    );
    assert_eq!(loaded.vocab_size(), 700);
    assert_eq!(loaded.chat_tokens().unwrap(), tok.chat_tokens().unwrap());
    for s in tricky_strings() {
        assert_eq!(loaded.encode(&s).unwrap(), tok.encode(&s).unwrap());
    }
    // Overwriting is atomic (temp + rename): the file is replaced and no temp file is left.
    let other = trained(300);
    other.save(&path).unwrap();
    assert_eq!(Tokenizer::from_file(&path).unwrap().vocab_size(), 300);
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["tokenizer.json"]);
    // Also via JSON text.
    let again = Tokenizer::from_json(&tok.to_json().unwrap()).unwrap();
    assert_eq!(
        again.encode("hello world").unwrap(),
        tok.encode("hello world").unwrap()
    );
}

#[test]
fn corrupt_or_missing_file_is_a_clear_error() {
    let dir = tmp_dir("corrupt");
    let missing = dir.join("nope/tokenizer.json");
    let err = Tokenizer::from_file(&missing).unwrap_err();
    assert!(matches!(err, TokenizerError::Read { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot read tokenizer file") && msg.contains(&missing.display().to_string()),
        "{msg}"
    );

    for (name, content) in [
        ("truncated.json", {
            let json = trained(300).to_json().unwrap();
            json[..json.len() / 2].to_string()
        }),
        ("garbage.json", "\u{0}\u{1}not json at all".to_string()),
        ("empty-object.json", "{}".to_string()),
        (
            "bad-model.json",
            r#"{"version":"1.0","added_tokens":[],"model":{"type":"Nope"}}"#.to_string(),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let err = Tokenizer::from_file(&path).unwrap_err();
        assert!(
            matches!(err, TokenizerError::Parse { .. }),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid tokenizer file") && msg.contains(&path.display().to_string()),
            "{msg}"
        );
    }
    assert!(matches!(
        Tokenizer::from_json("[1, 2"),
        Err(TokenizerError::Parse { .. })
    ));

    let missing_corpus = dir.join("missing-corpus.txt");
    let err = Tokenizer::train_bpe_files(&[&missing_corpus], 300, 2).unwrap_err();
    assert!(
        err.to_string()
            .contains(&missing_corpus.display().to_string()),
        "{err}"
    );
}

#[test]
fn invalid_training_settings_are_errors() {
    let err = Tokenizer::train_bpe(["abc"], 258, 1).unwrap_err();
    assert!(matches!(err, TokenizerError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("258"));
    let err = Tokenizer::train_bpe(["abc"], 300, 0).unwrap_err();
    assert!(matches!(err, TokenizerError::Config(_)), "{err:?}");
}

/// Rewrites a rung tokenizer.json into the layout of Qwen2/Qwen2.5's: BPE vocabulary without the
/// special tokens (ids shifted down by 3), special tokens added after it (`<|endoftext|>`,
/// `<|im_start|>`, `<|im_end|>` = N, N+1, N+2), NFC normalizer, merges as "a b" strings, and the
/// model fields HF writes.
fn to_qwen2_layout(tok: &Tokenizer) -> (String, u32) {
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
    let merges: Vec<Value> = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            Value::from(format!(
                "{} {}",
                m[0].as_str().unwrap(),
                m[1].as_str().unwrap()
            ))
        })
        .collect();
    json["model"]["merges"] = Value::from(merges);
    json["model"]["continuing_subword_prefix"] = Value::from("");
    json["model"]["end_of_word_suffix"] = Value::from("");
    json["normalizer"] = serde_json::json!({"type": "NFC"});
    let added: Vec<Value> = SPECIAL_TOKENS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": n + i as u64, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json["added_tokens"] = Value::from(added);
    (serde_json::to_string_pretty(&json).unwrap(), n as u32)
}

#[test]
fn loads_a_qwen2_layout_tokenizer_json() {
    let tok = trained(700);
    let (qwen_json, n) = to_qwen2_layout(&tok);
    let dir = tmp_dir("qwen2");
    let path = dir.join("tokenizer.json");
    std::fs::write(&path, qwen_json).unwrap();
    let qwen = Tokenizer::from_file(&path).unwrap();
    assert_eq!(n, 697);
    let chat = qwen.chat_tokens().unwrap();
    assert_eq!(
        (chat.endoftext, chat.im_start, chat.im_end),
        (n, n + 1, n + 2)
    );
    assert_eq!(qwen.pad_id(), Some(n));
    assert_eq!(qwen.vocab_size(), n as usize + 3);
    // Same tokenization up to the id layout, for NFC text.
    let map = |id: u32| if id < 3 { n + id } else { id - 3 };
    for s in tricky_strings() {
        if s.contains('\u{301}') || s.chars().any(|c| ('\u{300}'..='\u{36f}').contains(&c)) {
            continue; // NFC changes these (by design of Qwen2's normalizer)
        }
        let expected: Vec<u32> = tok.encode(&s).unwrap().into_iter().map(map).collect();
        let ids = qwen.encode(&s).unwrap();
        if ids == expected {
            assert_eq!(qwen.decode(&ids).unwrap(), s);
        } else {
            // Only strings that NFC changes may differ.
            let nfc_changed = qwen.decode(&ids).unwrap() != s;
            assert!(nfc_changed, "{s:?}: {ids:?} vs {expected:?}");
        }
    }
    // NFC composes: decomposed input encodes like the composed form.
    assert_eq!(
        qwen.encode("e\u{301}").unwrap(),
        qwen.encode("\u{e9}").unwrap()
    );
    // It saves back and reloads identically.
    let copy = dir.join("copy/tokenizer.json");
    qwen.save(&copy).unwrap();
    assert_eq!(
        Tokenizer::from_file(&copy).unwrap().to_json().unwrap(),
        qwen.to_json().unwrap()
    );
}
