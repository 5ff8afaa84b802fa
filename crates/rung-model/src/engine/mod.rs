//! A continuous-batching inference engine: one thread per model that merges the generation
//! requests of many callers into batched decode steps.
//!
//! Callers on any thread submit a prompt with its [`GenerateOptions`] and block until their
//! answer is ready ([`Engine::generate`]) or collect it later ([`Engine::submit`]). The engine
//! thread loops:
//!
//! 1. take every pending request (blocking only while nothing is running) and prefill it,
//!    up to [`EngineOptions::max_batch`] running sequences — new sequences *join* between decode
//!    steps, as in vLLM's continuous batching, instead of waiting for a batch to drain;
//! 2. run one decode step for all running sequences together (`step.rs`): one token per row,
//!    each row's keys and values in its slot of one preallocated cache (`slots.rs`);
//! 3. answer and drop the sequences that stopped (stop token, stop string or token cap): they
//!    *leave* the batch at once and their caller resumes.
//!
//! The engine knows nothing of agents or environments: it serves token ids.
//!
//! # Same answers as `generate`
//!
//! A request's answer is exactly `generate(model, &[prompt], options, detokenize)` — the same
//! ids, text, counts, finish reason and FLOPs (the FLOPs a batch of one would cost, so cost
//! accounting does not depend on what else was running), bit for bit, for greedy and for seeded
//! sampling (a request draws from the stream `generate` gives its row 0). Prefill is
//! `generate`'s own batch-of-one forward (from a cached prefix where one applies: `prefix.rs`);
//! the decode step batches row-wise work and attends together only where the kernels provably
//! reduce in the same order (`step.rs` explains when). The tests of this module compare engine and `generate` outputs for prompts of
//! different lengths joining at different times, and whole steps' logits bit for bit. That
//! analysis is of the CPU backend's kernels; on a GPU backend the engine computes the same
//! function, but last-bit equality with `generate` is not established.
//!
//! # Prefix caching
//!
//! The keys and values of recent prompts are kept ([`EngineOptions::prefix_cache`]); a prompt
//! that begins like one of them (a role's system prompt, an episode's conversation so far)
//! prefills only its tail, from a block boundary where the result is provably the same as
//! prefilling it all (see `prefix.rs`). FLOPs are still reported as a whole-prompt prefill,
//! so that cost accounting is the same with and without the engine.
//!
//! # Threads and devices
//!
//! The model should live on a device without autodiff ([`crate::inference_device`]): nothing is
//! recorded, and the flex backend runs its fused inference kernels. Only sampling reads logits
//! back to the host, once per step for the whole batch.

mod prefix;
mod sequence;
mod slots;
mod step;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use prefix::PrefixCache;
pub use sequence::SharedDetokenize;
use sequence::{Reply, Sequence};
use slots::SlotCache;

use crate::cache::KvCache;
use crate::error::{ModelError, Result};
use crate::generate::{FlopCounter, GenerateOptions, Generation, check_request, last_logits};
use crate::input::AttentionMask;
use crate::model::CausalLm;

/// Settings of an [`Engine`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Most sequences decoded together; further requests wait for a sequence to leave. Bounds
    /// the memory of the KV cache (a slot of the longest running sequence's length each).
    pub max_batch: usize,
    /// Prompts whose keys and values are kept for reuse by later prompts with the same
    /// beginning (see the module documentation, "Prefix caching"); 0 turns prefix caching off.
    pub prefix_cache: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            max_batch: 64,
            prefix_cache: 64,
        }
    }
}

/// Counters of an engine's work since it started (for benchmarks and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineStats {
    /// Requests answered (errors included).
    pub requests: u64,
    /// Decode steps run.
    pub decode_steps: u64,
    /// Rows over all decode steps (`decoded_rows / decode_steps` is the mean batch).
    pub decoded_rows: u64,
    /// Largest batch of one decode step.
    pub max_batch: u64,
    /// Prompt tokens prefilled.
    pub prefilled_tokens: u64,
    /// Prompt tokens whose keys and values came from the prefix cache instead.
    pub reused_tokens: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    decode_steps: AtomicU64,
    decoded_rows: AtomicU64,
    max_batch: AtomicU64,
    prefilled_tokens: AtomicU64,
    reused_tokens: AtomicU64,
}

/// One submitted request.
struct Job {
    prompt: Vec<u32>,
    options: GenerateOptions,
    detokenize: Option<SharedDetokenize>,
    reply: Reply,
}

/// A request in flight; [`Pending::wait`] blocks until its answer is ready.
#[derive(Debug)]
pub struct Pending {
    answer: Receiver<Result<Generation>>,
}

impl Pending {
    /// The answer: as [`crate::generate()`] would give it for this one prompt.
    pub fn wait(self) -> Result<Generation> {
        self.answer.recv().unwrap_or_else(|RecvError| {
            Err(ModelError::Engine(
                "the engine stopped before answering (its thread panicked)".into(),
            ))
        })
    }
}

/// A model served by a batching thread (see the module documentation). `Send + Sync`: share it
/// between the threads that generate with the model.
pub struct Engine {
    sender: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    vocab_size: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Start the engine thread for `model` (shared, not copied: burn parameters are reference
    /// counted).
    pub fn start(model: CausalLm, options: EngineOptions) -> Result<Self> {
        if options.max_batch == 0 {
            return Err(ModelError::InvalidInput(
                "an engine needs a max_batch of at least 1".into(),
            ));
        }
        let vocab_size = model.config().vocab_size;
        let (sender, receiver) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("rung-engine".into())
            .spawn(move || serve(&model, options, &receiver, &thread_counters))
            .map_err(|e| ModelError::Engine(format!("cannot start the engine thread: {e}")))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            counters,
            vocab_size,
        })
    }

    /// Queue a continuation of `prompt`; the answer comes through the returned [`Pending`].
    pub fn submit(
        &self,
        prompt: Vec<u32>,
        options: GenerateOptions,
        detokenize: Option<SharedDetokenize>,
    ) -> Result<Pending> {
        let (reply, answer) = mpsc::channel();
        let job = Job {
            prompt,
            options,
            detokenize,
            reply,
        };
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let sent = sender.as_ref().is_some_and(|s| s.send(job).is_ok());
        if sent {
            Ok(Pending { answer })
        } else {
            Err(ModelError::Engine("the engine has stopped".into()))
        }
    }

    /// Continue `prompt` and wait for the answer: the batched equivalent of
    /// `generate(model, &[prompt], options, detokenize)`.
    pub fn generate(
        &self,
        prompt: Vec<u32>,
        options: &GenerateOptions,
        detokenize: Option<SharedDetokenize>,
    ) -> Result<Generation> {
        self.submit(prompt, options.clone(), detokenize)?.wait()
    }

    /// The work done so far.
    pub fn stats(&self) -> EngineStats {
        let c = &self.counters;
        EngineStats {
            requests: c.requests.load(Ordering::Relaxed),
            decode_steps: c.decode_steps.load(Ordering::Relaxed),
            decoded_rows: c.decoded_rows.load(Ordering::Relaxed),
            max_batch: c.max_batch.load(Ordering::Relaxed),
            prefilled_tokens: c.prefilled_tokens.load(Ordering::Relaxed),
            reused_tokens: c.reused_tokens.load(Ordering::Relaxed),
        }
    }

    /// The vocabulary size of the served model.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

impl Drop for Engine {
    /// Stop accepting requests, let the running ones finish, and join the thread.
    fn drop(&mut self) {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

/// The engine thread: admit, step, answer, until every sender is gone and nothing runs.
fn serve(model: &CausalLm, options: EngineOptions, receiver: &Receiver<Job>, counters: &Counters) {
    let flops = FlopCounter::new(model);
    let mut queue: VecDeque<Job> = VecDeque::new();
    // `running[i]` is the sequence in slot `i` of `slots`.
    let mut running: Vec<Sequence> = Vec::new();
    let mut slots = SlotCache::new(model.config(), options.max_batch, &model.device());
    let mut prefixes = PrefixCache::new(options.prefix_cache);
    let mut open = true;
    loop {
        if open && running.is_empty() && queue.is_empty() {
            match receiver.recv() {
                Ok(job) => queue.push_back(job),
                Err(RecvError) => open = false,
            }
        }
        while open {
            match receiver.try_recv() {
                Ok(job) => queue.push_back(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        while running.len() < options.max_batch
            && let Some(job) = queue.pop_front()
        {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            match prefill(model, &flops, &mut prefixes, counters, job) {
                Ok(Some((sequence, cache))) => match slots.insert(&cache.layers) {
                    Ok(_) => running.push(sequence),
                    Err(error) => sequence.fail(error),
                },
                Ok(None) => {}
                Err((error, reply)) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        if running.is_empty() {
            if !open && queue.is_empty() {
                return;
            }
            continue;
        }
        decode(model, &flops, &mut running, &mut slots, counters);
    }
}

/// Prefill `job` alone (exactly `generate`'s prefill of a batch of one) and choose its first
/// token. Returns the sequence and its cache if it goes on, `None` if it was answered already.
fn prefill(
    model: &CausalLm,
    flops: &FlopCounter,
    prefixes: &mut PrefixCache,
    counters: &Counters,
    job: Job,
) -> std::result::Result<Option<(Sequence, KvCache)>, (ModelError, Reply)> {
    let Job {
        prompt,
        options,
        detokenize,
        reply,
    } = job;
    let prompts = [prompt];
    if let Err(error) = check_request(model, &prompts, &options, detokenize.is_some()) {
        return Err((error, reply));
    }
    let [prompt] = prompts;
    let len = prompt.len();
    // A cached beginning of the prompt, whose keys and values are exactly those its own
    // prefill would compute: only the tail is run.
    let (reused, mut cache) = prefixes
        .lookup(&prompt)
        .unwrap_or_else(|| (0, KvCache::new(model.config().num_hidden_layers)));
    let tail = len - reused;
    let ids: Vec<i64> = prompt[reused..].iter().map(|&t| i64::from(t)).collect();
    let logits = match AttentionMask::left_padded(&[tail], tail)
        .and_then(|mask| last_logits(model, ids, [1, tail], mask, &mut cache))
    {
        Ok(logits) => logits,
        Err(error) => return Err((error, reply)),
    };
    counters
        .prefilled_tokens
        .fetch_add(tail as u64, Ordering::Relaxed);
    counters
        .reused_tokens
        .fetch_add(reused as u64, Ordering::Relaxed);
    prefixes.store(&prompt, &cache);
    let mut sequence = Sequence::new(len, options, detokenize, reply);
    sequence.flops = flops.forward(len, len) + flops.head(1);
    sequence.cached = cache.len();
    sequence.next_position = cache.next_positions()[0];
    if sequence.is_done() {
        // No token to generate at all.
        sequence.finish();
        return Ok(None);
    }
    sequence.accept(&logits);
    if sequence.is_done() {
        sequence.finish();
        return Ok(None);
    }
    Ok(Some((sequence, cache)))
}

/// One decode step of every running sequence; the ones that stop are answered and removed.
fn decode(
    model: &CausalLm,
    flops: &FlopCounter,
    running: &mut Vec<Sequence>,
    slots: &mut SlotCache,
    counters: &Counters,
) {
    let batch = running.len();
    counters.decode_steps.fetch_add(1, Ordering::Relaxed);
    counters
        .decoded_rows
        .fetch_add(batch as u64, Ordering::Relaxed);
    counters
        .max_batch
        .fetch_max(batch as u64, Ordering::Relaxed);
    for sequence in running.iter_mut() {
        sequence.flops += flops.forward(1, sequence.cached + 1) + flops.head(1);
    }
    let logits = match step::decode_step(model, running, slots) {
        Ok(logits) => logits,
        Err(error) => {
            // A failed step leaves every cache in an unknown state: fail all its rows.
            let message = error.to_string();
            for slot in (0..running.len()).rev() {
                slots.remove(slot);
                running.swap_remove(slot).fail(ModelError::Engine(format!(
                    "a decode step failed: {message}"
                )));
            }
            return;
        }
    };
    let vocab = logits.len() / batch;
    for (row, sequence) in running.iter_mut().enumerate() {
        sequence.accept(&logits[row * vocab..(row + 1) * vocab]);
    }
    // From the back, so that the sequence `swap_remove` moves into a freed slot was already
    // looked at (and stays).
    for slot in (0..running.len()).rev() {
        if running[slot].is_done() {
            slots.remove(slot);
            running.swap_remove(slot).finish();
        }
    }
}

#[cfg(test)]
mod tests;
