//! One request's life inside the engine: its KV cache, its random stream, the tokens chosen so
//! far and the stop rules — the per-row bookkeeping of [`crate::generate()`]'s loop, kept per
//! sequence so that sequences can join and leave a running batch.
//!
//! Every rule here mirrors `generate` for a single prompt (row 0): the same token choice, the
//! same stop checks in the same order, the same output assembly and the same FLOPs formula, so
//! an engine answer equals `generate(model, &[prompt], options, detokenize)` exactly.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::generate::{
    FinishReason, GenerateOptions, Generation, Sampling, SequenceOutput, choose,
};

/// A detokenizer the engine thread can call: it turns a sequence's generated ids into text (for
/// stop strings and [`SequenceOutput::text`]).
pub type SharedDetokenize = Arc<dyn Fn(&[u32]) -> String + Send + Sync>;

/// Where the answer of a request goes.
pub(crate) type Reply = Sender<Result<Generation>>;

/// A request being generated.
pub(crate) struct Sequence {
    prompt_len: usize,
    options: GenerateOptions,
    detokenize: Option<SharedDetokenize>,
    rng: ChaCha8Rng,
    outputs: Vec<u32>,
    finished: Option<FinishReason>,
    text: Option<String>,
    /// Cached positions (prompt plus the tokens fed back so far).
    pub(crate) cached: usize,
    /// Position id of the next token fed.
    pub(crate) next_position: i64,
    /// FLOPs of this request as `generate` counts them for a batch of one.
    pub(crate) flops: u64,
    reply: Reply,
}

impl Sequence {
    /// A sequence for a prompt of `prompt_len` tokens (its cache lives in the engine's
    /// [`super::slots::SlotCache`]).
    pub(crate) fn new(
        prompt_len: usize,
        options: GenerateOptions,
        detokenize: Option<SharedDetokenize>,
        reply: Reply,
    ) -> Self {
        // The stream of row 0 of `generate`: a request is a batch of one.
        let seed = match options.sampling {
            Sampling::Sample { seed, .. } => seed,
            Sampling::Greedy => 0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(0);
        Self {
            prompt_len,
            options,
            detokenize,
            rng,
            outputs: Vec::new(),
            finished: None,
            text: None,
            cached: 0,
            next_position: 0,
            flops: 0,
            reply,
        }
    }

    /// The last token chosen: what the next decode step feeds.
    pub(crate) fn last_token(&self) -> u32 {
        *self
            .outputs
            .last()
            .expect("a sequence is decoded only after it chose a token")
    }

    /// Whether nothing more is to be generated (a stop, or the token cap).
    pub(crate) fn is_done(&self) -> bool {
        self.finished.is_some() || self.outputs.len() >= self.options.max_new_tokens
    }

    /// Choose the next token from this sequence's `logits` (`[vocab]`) and apply the stop rules.
    pub(crate) fn accept(&mut self, logits: &[f32]) {
        let token = choose(logits, self.options.sampling, &mut self.rng);
        self.outputs.push(token);
        if self.options.stop_token_ids.contains(&token) {
            self.finished = Some(FinishReason::StopToken(token));
            return;
        }
        if let Some(detok) = &self.detokenize
            && !self.options.stop_strings.is_empty()
        {
            let text = detok(&self.outputs);
            let hit = self
                .options
                .stop_strings
                .iter()
                .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
                .min_by_key(|(at, _)| *at);
            if let Some((at, stop)) = hit {
                self.text = Some(text[..at].to_string());
                self.finished = Some(FinishReason::StopString(stop.clone()));
            }
        }
    }

    /// The answer, assembled as `generate` assembles a row's output.
    fn output(self) -> (Generation, Reply) {
        let finish = self.finished.unwrap_or(FinishReason::Length);
        let mut ids = self.outputs;
        let generated_tokens = ids.len();
        if let FinishReason::StopToken(_) = finish {
            ids.pop();
        }
        let text = match (self.text, &self.detokenize) {
            (Some(text), _) => Some(text),
            (None, Some(detok)) => Some(detok(&ids)),
            (None, None) => None,
        };
        let generation = Generation {
            sequences: vec![SequenceOutput {
                ids,
                text,
                prompt_tokens: self.prompt_len,
                generated_tokens,
                finish_reason: finish,
            }],
            prompt_tokens: self.prompt_len,
            generated_tokens,
            flops: self.flops,
        };
        (generation, self.reply)
    }

    /// Answer the waiting caller with `error` instead.
    pub(crate) fn fail(self, error: crate::error::ModelError) {
        let _ = self.reply.send(Err(error));
    }

    /// Send the answer to the waiting caller (who may have stopped waiting: that is fine).
    pub(crate) fn finish(self) {
        let (generation, reply) = self.output();
        let _ = reply.send(Ok(generation));
    }
}
