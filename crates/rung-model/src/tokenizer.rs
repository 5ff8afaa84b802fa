//! Tokenizers: loading and saving HF `tokenizer.json`, and training rung's byte-level BPE.
//!
//! [`Tokenizer`] wraps [`tokenizers::Tokenizer`] (HF's Rust crate, so any `tokenizer.json` that HF
//! writes loads here, Qwen2 and Llama 3 included) with the small surface the rest of rung needs:
//! [`encode`](Tokenizer::encode) (never adds BOS/EOS or any other token implicitly),
//! [`decode`](Tokenizer::decode) (keeps special tokens, so it inverts `encode` exactly), token/id
//! lookups and the three ChatML special tokens.
//!
//! # Special tokens
//!
//! [`ENDOFTEXT`] (also the padding token), [`IM_START`] and [`IM_END`] are *added special tokens*:
//! the tokenizer cuts the input at every occurrence of their text before pre-tokenization, so each
//! is always one id, never split or merged with its neighbours, whatever surrounds it. A tokenizer
//! trained by [`Tokenizer::train_bpe`] gives them the fixed ids 0, 1 and 2 (the same order as Qwen2,
//! where they are 151643, 151644 and 151645); a loaded tokenizer keeps the ids its file gives them.
//!
//! # The trained tokenizer
//!
//! [`Tokenizer::train_bpe`] builds the same pipeline as Qwen2's `tokenizer.json`, so one code path
//! serves both: the Qwen2 pre-tokenization regex ([`QWEN2_SPLIT_PATTERN`], `Split` with `Isolated`
//! behaviour), then `ByteLevel` (no prefix space, no regex), a BPE model whose initial alphabet is
//! all 256 byte symbols ([`ByteLevel::alphabet`]), and the `ByteLevel` decoder and post-processor.
//! The one difference from Qwen2 is the normalizer: Qwen2 applies NFC, rung's trained tokenizer
//! has none, so `decode(encode(s)) == s` holds for every UTF-8 string (NFC would turn a decomposed
//! `"e\u{301}"` into `"é"`). Every byte has a token, so there is no unknown token.
//!
//! Training is deterministic: the same corpus and settings give a byte-identical `tokenizer.json`
//! (special tokens first, then the byte alphabet in code-point order, then merges in the order they
//! were learned, ties broken by the lower pair of ids).

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::processors::PostProcessorWrapper;
use tokenizers::{
    AddedToken, OffsetReferential, OffsetType, PreTokenizer, SplitDelimiterBehavior, Trainer,
};

/// End of text; also the padding token. Id 0 in a tokenizer trained by rung.
pub const ENDOFTEXT: &str = "<|endoftext|>";
/// Start of a ChatML turn. Id 1 in a tokenizer trained by rung.
pub const IM_START: &str = "<|im_start|>";
/// End of a ChatML turn, and the stop token of generation. Id 2 in a tokenizer trained by rung.
pub const IM_END: &str = "<|im_end|>";
/// The special tokens of a trained tokenizer, in id order (0, 1, 2).
pub const SPECIAL_TOKENS: [&str; 3] = [ENDOFTEXT, IM_START, IM_END];

/// The pre-tokenization regex of Qwen2/Qwen2.5's `tokenizer.json` (single digits, words with one
/// leading non-letter, punctuation runs with their trailing newlines, newline runs, spaces).
pub const QWEN2_SPLIT_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A byte range `start..end` of a text, as `(start, end)`.
pub type ByteSpan = (usize, usize);

/// Number of byte symbols in the byte-level alphabet.
const BYTE_ALPHABET_SIZE: usize = 256;

/// Corpus files are fed to the trainer in chunks of about this many bytes.
const FILE_CHUNK_BYTES: usize = 1 << 20;

/// Errors of loading, saving, training and running a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The tokenizer file could not be read.
    #[error("cannot read tokenizer file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The tokenizer file is not a valid `tokenizer.json`.
    #[error("invalid tokenizer file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// The tokenizer file could not be written.
    #[error("cannot write tokenizer file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A corpus file for training could not be read.
    #[error("cannot read corpus file {}: {source}", path.display())]
    Corpus {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Invalid training settings.
    #[error("invalid tokenizer training settings: {0}")]
    Config(String),
    /// The tokenizer lacks a special token that the caller needs.
    #[error(
        "the tokenizer has no special token {0} (a ChatML tokenizer needs {ENDOFTEXT}, {IM_START} and {IM_END})"
    )]
    MissingSpecialToken(&'static str),
    /// A special token is declared in a way that lets it absorb or depend on its neighbours.
    #[error(
        "special token {token} must be declared with lstrip, rstrip and single_word all false for exact chat rendering"
    )]
    UnsupportedSpecialToken { token: &'static str },
    /// An error inside the `tokenizers` crate.
    #[error("tokenizer {op} failed: {message}")]
    Tokenizers { op: &'static str, message: String },
}

fn tk_err(op: &'static str) -> impl FnOnce(tokenizers::Error) -> TokenizerError {
    move |e| TokenizerError::Tokenizers {
        op,
        message: e.to_string(),
    }
}

/// The ids of the ChatML special tokens of a tokenizer (see [`Tokenizer::chat_tokens`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatTokens {
    /// `<|im_start|>`
    pub im_start: u32,
    /// `<|im_end|>`: end of turn and stop token.
    pub im_end: u32,
    /// `<|endoftext|>`: end of text and padding.
    pub endoftext: u32,
}

/// A tokenizer: HF `tokenizers` with rung's conventions (see the module documentation).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Wraps an HF tokenizer.
    pub fn from_hf(inner: tokenizers::Tokenizer) -> Self {
        Self { inner }
    }

    /// Loads a `tokenizer.json`; errors name the path.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| TokenizerError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let inner =
            tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(Self { inner })
    }

    /// Parses the contents of a `tokenizer.json`.
    pub fn from_json(json: &str) -> Result<Self, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(json.as_bytes()).map_err(|e| {
            TokenizerError::Parse {
                path: PathBuf::from("<string>"),
                message: e.to_string(),
            }
        })?;
        Ok(Self { inner })
    }

    /// The `tokenizer.json` text (pretty-printed, as HF writes it).
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.inner.to_string(true).map_err(tk_err("serialization"))
    }

    /// Saves as `tokenizer.json` atomically: writes a temporary file next to `path`, syncs it and
    /// renames it over `path`, so a reader never sees a partial file. Creates missing parent
    /// directories.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let path = path.as_ref();
        let json = self.to_json()?;
        let write_err = |source| TokenizerError::Write {
            path: path.to_path_buf(),
            source,
        };
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(write_err)?;
        let name = path
            .file_name()
            .ok_or_else(|| {
                write_err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path has no file name",
                ))
            })?
            .to_string_lossy()
            .into_owned();
        static SAVES: AtomicU64 = AtomicU64::new(0);
        let unique = SAVES.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".{name}.tmp.{}.{unique}", std::process::id()));
        let result = (|| {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(json.as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(source) = result {
            let _ = fs::remove_file(&tmp);
            return Err(write_err(source));
        }
        Ok(())
    }

    /// The wrapped HF tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Token ids of `text`. Adds nothing implicitly (no BOS/EOS, no template); the text of an added
    /// special token (`<|im_end|>`, ...) anywhere in `text` becomes that token's single id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(tk_err("encoding"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Token ids of `text` with the byte range of `text` that each token covers (`start..end`).
    /// A token made of part of a multi-byte character covers the whole character.
    pub fn encode_with_offsets(
        &self,
        text: &str,
    ) -> Result<(Vec<u32>, Vec<ByteSpan>), TokenizerError> {
        let encoding = self.inner.encode(text, false).map_err(tk_err("encoding"))?;
        Ok((encoding.get_ids().to_vec(), encoding.get_offsets().to_vec()))
    }

    /// Text of `ids`, special tokens included (so `decode(encode(s)) == s` for the trained
    /// tokenizer). Ids outside the vocabulary are skipped; byte sequences that are not valid UTF-8
    /// (a cut multi-byte character) decode to U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, false).map_err(tk_err("decoding"))
    }

    /// Like [`decode`](Self::decode) but drops special tokens.
    pub fn decode_skip_special(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner.decode(ids, true).map_err(tk_err("decoding"))
    }

    /// Id of a token (vocabulary entry or added token), given in its vocabulary spelling (for
    /// byte-level BPE, `Ġ` stands for a space).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary spelling of an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Size of the id space: one more than the largest id, added tokens included. An embedding
    /// table needs at least this many rows (HF checkpoints often have more, padded).
    pub fn vocab_size(&self) -> usize {
        let max_added = self
            .inner
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .keys()
            .max()
            .map_or(0, |&id| id as usize + 1);
        self.inner.get_vocab_size(true).max(max_added)
    }

    /// Id of `<|endoftext|>`, if the tokenizer has it.
    pub fn endoftext_id(&self) -> Option<u32> {
        self.token_id(ENDOFTEXT)
    }

    /// Id of the padding token (`<|endoftext|>`, as in Qwen2), if the tokenizer has it.
    pub fn pad_id(&self) -> Option<u32> {
        self.endoftext_id()
    }

    /// Id of `<|im_start|>`, if the tokenizer has it.
    pub fn im_start_id(&self) -> Option<u32> {
        self.token_id(IM_START)
    }

    /// Id of `<|im_end|>`, if the tokenizer has it.
    pub fn im_end_id(&self) -> Option<u32> {
        self.token_id(IM_END)
    }

    /// The ChatML special token ids. Errors if one is missing, or is not an added token that
    /// always splits the text exactly at its own boundaries (`lstrip`, `rstrip` and `single_word`
    /// all false, as in Qwen2): chat rendering relies on that.
    pub fn chat_tokens(&self) -> Result<ChatTokens, TokenizerError> {
        let added = self.inner.get_added_vocabulary().get_added_tokens_decoder();
        let id = |token: &'static str| -> Result<u32, TokenizerError> {
            let id = self
                .token_id(token)
                .ok_or(TokenizerError::MissingSpecialToken(token))?;
            match added.get(&id) {
                Some(t) if t.content == token => {
                    if t.lstrip || t.rstrip || t.single_word {
                        Err(TokenizerError::UnsupportedSpecialToken { token })
                    } else {
                        Ok(id)
                    }
                }
                _ => Err(TokenizerError::MissingSpecialToken(token)),
            }
        };
        Ok(ChatTokens {
            im_start: id(IM_START)?,
            im_end: id(IM_END)?,
            endoftext: id(ENDOFTEXT)?,
        })
    }

    /// Trains a byte-level BPE tokenizer on in-memory documents (see the module documentation for
    /// the pipeline). `vocab_size` counts everything (3 special tokens + 256 byte symbols + merges)
    /// and is an upper bound: training also stops when no pair occurs `min_frequency` times.
    /// Pre-tokenized words never cross document boundaries, and special-token text inside the
    /// corpus is skipped (it is not learned as ordinary text). Deterministic.
    pub fn train_bpe<I, S>(
        corpus: I,
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self, TokenizerError>
    where
        I: IntoIterator<Item = S>,
        I::IntoIter: Send,
        S: AsRef<str> + Send,
    {
        let min_vocab = SPECIAL_TOKENS.len() + BYTE_ALPHABET_SIZE;
        if vocab_size < min_vocab {
            return Err(TokenizerError::Config(format!(
                "vocab_size {vocab_size} is below {min_vocab} (3 special tokens + 256 byte symbols)"
            )));
        }
        if min_frequency == 0 {
            return Err(TokenizerError::Config(
                "min_frequency must be at least 1".into(),
            ));
        }
        let specials: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .map(|t| AddedToken::from(*t, true))
            .collect();
        let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let mut trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(specials.clone())
            .initial_alphabet(alphabet)
            .build();

        // Pre-tokenize with the final pipeline, dropping special-token pieces.
        let splitter = Self::pipeline(BPE::default(), &specials)?;
        trainer
            .feed(corpus.into_iter(), |text| {
                let mut pieces = splitter
                    .get_added_vocabulary()
                    .extract_and_normalize(splitter.get_normalizer(), text);
                if let Some(pre) = splitter.get_pre_tokenizer() {
                    pre.pre_tokenize(&mut pieces)?;
                }
                Ok(pieces
                    .get_splits(OffsetReferential::Original, OffsetType::None)
                    .into_iter()
                    .filter(|(_, _, tokens)| tokens.is_none())
                    .map(|(word, _, _)| word.to_owned())
                    .collect())
            })
            .map_err(tk_err("training"))?;
        let mut model = BPE::default();
        trainer.train(&mut model).map_err(tk_err("training"))?;
        let tokenizer = Self {
            inner: Self::pipeline(model, &specials)?,
        };
        for (expected, token) in SPECIAL_TOKENS.iter().enumerate() {
            if tokenizer.token_id(token) != Some(expected as u32) {
                return Err(TokenizerError::Tokenizers {
                    op: "training",
                    message: format!(
                        "special token {token} got id {:?}, expected {expected}",
                        tokenizer.token_id(token)
                    ),
                });
            }
        }
        Ok(tokenizer)
    }

    /// Trains like [`train_bpe`](Self::train_bpe) on the contents of UTF-8 text files. Each file is
    /// one document (words never cross files); large files are cut into chunks only where no
    /// pre-tokenized word can span the cut (after a newline that is followed by a non-space), so
    /// the result does not depend on the chunk size.
    pub fn train_bpe_files<P: AsRef<Path>>(
        files: &[P],
        vocab_size: usize,
        min_frequency: u64,
    ) -> Result<Self, TokenizerError> {
        let mut texts = Vec::with_capacity(files.len());
        for path in files {
            let path = path.as_ref();
            let text = fs::read_to_string(path).map_err(|source| TokenizerError::Corpus {
                path: path.to_path_buf(),
                source,
            })?;
            texts.push(text);
        }
        let chunks: Vec<&str> = texts
            .iter()
            .flat_map(|t| split_corpus_text(t, FILE_CHUNK_BYTES))
            .collect();
        Self::train_bpe(chunks, vocab_size, min_frequency)
    }

    /// rung's byte-level BPE pipeline around `model`, with `specials` added.
    fn pipeline(
        model: BPE,
        specials: &[AddedToken],
    ) -> Result<tokenizers::Tokenizer, TokenizerError> {
        let split = Split::new(
            SplitPattern::Regex(QWEN2_SPLIT_PATTERN.to_owned()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(tk_err("building the pre-tokenizer"))?;
        let byte_level = ByteLevel::new(false, false, false);
        let mut tokenizer = tokenizers::Tokenizer::new(model);
        tokenizer
            .with_pre_tokenizer(Some(PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ]))))
            .with_decoder(Some(DecoderWrapper::ByteLevel(byte_level)))
            .with_post_processor(Some(PostProcessorWrapper::ByteLevel(byte_level)));
        tokenizer
            .add_special_tokens(specials.iter().cloned())
            .map_err(tk_err("adding special tokens"))?;
        Ok(tokenizer)
    }
}

/// Cuts `text` into pieces of about `target` bytes at points where no word of the Qwen2
/// pre-tokenization regex can span the cut: right after a `\n` that is followed by a
/// non-whitespace character. (No alternative of the regex matches a newline followed by a
/// non-whitespace character: newlines only occur in whitespace runs or at the end of a
/// punctuation run.)
fn split_corpus_text(text: &str, target: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > target {
        let bytes = rest.as_bytes();
        let cut = (target..bytes.len().saturating_sub(1)).find(|&i| {
            bytes[i] == b'\n' && {
                // The byte after `\n` starts a character (UTF-8 continuation bytes are >= 0x80
                // and never follow an ASCII byte as a character start).
                let next = rest[i + 1..].chars().next();
                next.is_some_and(|c| !c.is_whitespace())
            }
        });
        match cut {
            Some(i) => {
                pieces.push(&rest[..=i]);
                rest = &rest[i + 1..];
            }
            None => break,
        }
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_corpus_text_cuts_after_newline_before_non_space() {
        let text = "ab\n  cd\nef\n\ngh\nij";
        let pieces = split_corpus_text(text, 1);
        assert_eq!(pieces.concat(), text);
        assert_eq!(pieces, vec!["ab\n  cd\n", "ef\n\n", "gh\n", "ij"]);
        assert_eq!(split_corpus_text(text, 100), vec![text]);
        assert!(split_corpus_text("", 1).is_empty());
    }

    #[test]
    fn chunking_a_document_does_not_change_training() {
        let text = "fn main() {\n    let x = 1;\n\n    println!(\"{x}\");\n}\n// done.\n\n\n"
            .repeat(30)
            + "Le café — déjà vu!\n  indented\n\tTab\r\nCRLF \n end";
        let chunks = split_corpus_text(&text, 64);
        assert!(chunks.len() > 20);
        assert_eq!(chunks.concat(), text);
        let whole = Tokenizer::train_bpe([text.as_str()], 400, 2).unwrap();
        let chunked = Tokenizer::train_bpe(chunks, 400, 2).unwrap();
        assert_eq!(whole.to_json().unwrap(), chunked.to_json().unwrap());
    }
}
