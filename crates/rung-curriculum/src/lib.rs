//! ProST curricula: which sub-tasks each epoch supervises, and the training samples that
//! follow.
//!
//! Progressive sub-task training (ProST) changes nothing in the model or the loss: epoch `e`
//! supervises a growing prefix of every trajectory's sub-tasks. This crate is that schedule and
//! everything between a trajectory file and a trainer's batches:
//!
//! 1. [`Dataset`] segments trajectories into sub-tasks ([`rung_segment`]) and splits every
//!    episode into the conversations of its roles ([`conversations`]).
//! 2. A [`Curriculum`] — a [`Schedule`] (`prost`, `all`, `random`, `reverse`, `difficulty`) and
//!    the handling of [`Unsupervised`] sub-tasks — maps (epoch, trajectory) to the supervised
//!    sub-tasks. Schedules are deterministic for a seed and serialise as tagged objects for
//!    experiment configs (`{"schedule": {"kind": "prost", "growth": {"kind": "linear", "step":
//!    1}}, "unsupervised": "truncate"}`).
//! 3. [`epoch_samples`] renders an epoch for **one role** into [`Sample`]s: token ids, a loss
//!    mask that is 1 only on the tokens of that role's supervised assistant turns, position
//!    ids. Context-length handling ([`SampleOptions`]) never cuts a supervised turn.
//! 4. [`batches`] pads, optionally packs several samples per row (with segment ids so that
//!    attention stays within each sample), sorts by length and shuffles deterministically per
//!    epoch.
//! 5. [`EpochStats`] and [`curriculum_table`] report what an epoch trains.
//!
//! Epochs are **1-based**; sub-task indices are **0-based** (as in the trajectory format).
//!
//! # No burn here: the [`ChatRenderer`] seam
//!
//! Trajectory, segmentation and curriculum crates know nothing of burn. The chat template and
//! tokenizer live in `rung-model`, which depends on burn, so this crate does **not** depend on
//! it: it defines the small [`ChatRenderer`] trait (render messages with `train` flags to ids
//! and a loss mask; count tokens) and works with any implementation. The production adapter
//! over `rung_model::chat::render` belongs to the trainer crate; this crate's tests carry the
//! same thin adapter in their own code (`tests/common/mod.rs`, through a dev-dependency on
//! `rung-model`), so that training text is checked to equal inference text token for token.
//! [`ByteRenderer`] is a tokenizer-free ChatML renderer (one token per byte) for planning and
//! tests.
//!
//! # Example
//!
//! ```
//! use rung_curriculum::{
//!     BatchOptions, ByteRenderer, Curriculum, Dataset, SampleOptions, batches, epoch_samples,
//! };
//! use rung_segment::NoPlans;
//! use rung_segment::build::EpisodeBuilder;
//! use rung_trajectory::{Role, SystemKind};
//!
//! // A single-agent episode of two sub-tasks (recorded on the turns here).
//! let mut b = EpisodeBuilder::new(SystemKind::Single, "a1b2c3d_1", "Text my son.");
//! let c = b.open(Role::Single, "You write code.", "Task: Text my son.");
//! b.code(c, Some(0), "son = apis.phone.search_contacts(relationship='son')[0]", true, "ok");
//! b.code(c, Some(1), "apis.phone.send_text_message(phone_number=son['phone_number'])", true, "ok");
//! let data = Dataset::new(vec![b.finish()], &NoPlans);
//!
//! let curriculum = Curriculum::default(); // prost, one new sub-task per epoch, truncate
//! let options = SampleOptions { max_tokens: Some(4096), ..SampleOptions::default() };
//! let epoch1 = epoch_samples(&data, &curriculum, 1, Role::Single, &ByteRenderer, &options)?;
//! assert_eq!(epoch1.samples[0].subtasks, [0]);
//! let text = ByteRenderer::decode(&epoch1.samples[0].ids);
//! assert!(!text.contains("send_text_message"), "sub-task 1 is cut off in epoch 1");
//! let epoch2 = epoch_samples(&data, &curriculum, 2, Role::Single, &ByteRenderer, &options)?;
//! assert_eq!(epoch2.samples[0].subtasks, [0, 1]);
//! let batches = batches(&epoch2.samples, &BatchOptions::default(), 2)?;
//! assert_eq!(batches[0].rows, 1);
//! # Ok::<(), rung_curriculum::CurriculumError>(())
//! ```

#![warn(missing_docs)]

mod batch;
mod data;
mod epoch;
pub mod literal;
mod render;
pub mod rng;
mod sample;
mod schedule;

pub use batch::{Batch, BatchOptions, batches};
pub use data::{Conversation, Dataset, Trajectory, conversations};
pub use epoch::{
    EpochSamples, EpochStats, RoleEpochStats, curriculum_table, epoch_samples, epoch_stats,
    schedule_stats,
};
pub use render::{
    BYTE_IM_END, BYTE_IM_START, ByteRenderer, ChatRenderer, ContentSpan, Spans, Tokens, role_name,
};
pub use sample::{FitReport, Overflow, Sample, SampleOptions, render_trajectory};
pub use schedule::{Curriculum, Growth, Schedule, ScheduleContext, TrajectoryInfo, Unsupervised};

/// Errors of curricula and samples.
#[derive(Debug, thiserror::Error)]
pub enum CurriculumError {
    /// The trajectory file could not be read.
    #[error(transparent)]
    Trajectory(#[from] rung_trajectory::TrajectoryError),
    /// Invalid settings.
    #[error("invalid curriculum settings: {0}")]
    Config(String),
    /// The renderer failed.
    #[error("rendering failed: {0}")]
    Render(Box<dyn std::error::Error + Send + Sync>),
    /// The renderer broke its contract.
    #[error("the chat renderer broke its contract: {0}")]
    Renderer(String),
}

impl CurriculumError {
    fn render(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        CurriculumError::Render(Box::new(e))
    }
}
