//! Training samples: a scheduled trajectory rendered for one role.

use std::collections::BTreeSet;

use rung_trajectory::{ChatRole, Message, Role};
use serde::{Deserialize, Serialize};

use crate::CurriculumError;
use crate::data::{Conversation, Trajectory};
use crate::literal::literal_mask;
use crate::render::ChatRenderer;
use crate::schedule::Unsupervised;

/// What to do with a conversation that does not fit the context even after dropping all of its
/// unsupervised turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Drop the sample (counted in the statistics).
    #[default]
    Drop,
    /// Split it into several samples, each supervising a consecutive run of the supervised
    /// turns with the earlier turns as (droppable) context, so every supervised turn is
    /// trained exactly once per epoch. A supervised turn that does not fit even alone with the
    /// system prompt and task is skipped (counted as a lost turn).
    Split,
}

/// How samples are cut to the model's context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SampleOptions {
    /// The longest sample, in tokens; `None` for no limit.
    pub max_tokens: Option<usize>,
    /// What to do when a conversation cannot fit.
    pub overflow: Overflow,
}

/// One training sample: model input for one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Index of the trajectory in the data set.
    pub trajectory: usize,
    /// Index of the conversation in the trajectory.
    pub conversation: usize,
    /// Which piece of the conversation (0 unless [`Overflow::Split`] split it).
    pub part: usize,
    /// The role whose turns are supervised.
    pub role: Role,
    /// Token ids.
    pub ids: Vec<u32>,
    /// 1 on the tokens of the supervised assistant turns (content and end-of-turn token), 0
    /// elsewhere. Position `i`'s flag is for predicting `ids[i]` (a trainer shifts as usual).
    pub loss_mask: Vec<u8>,
    /// 1 on the supervised tokens that copy a task-specific value from the context (see
    /// [`crate::literal`]), 0 elsewhere; all 0 when the renderer gives no token spans.
    pub literal_mask: Vec<u8>,
    /// 0, 1, … (consecutive even where turns were dropped).
    pub position_ids: Vec<u32>,
    /// The turns (indices into `episode.turns`) supervised here.
    pub supervised_turns: Vec<usize>,
    /// The sub-tasks of those turns, ascending.
    pub subtasks: Vec<usize>,
    /// Unsupervised turns dropped to fit the context.
    pub dropped_turns: usize,
}

impl Sample {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no tokens.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Tokens with loss mask 1.
    pub fn supervised_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m != 0).count()
    }
}

/// What context-length handling did to a trajectory's conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct FitReport {
    /// Samples that lost unsupervised turns to fit.
    pub shortened: usize,
    /// Conversations dropped because they could not fit ([`Overflow::Drop`]).
    pub dropped: usize,
    /// Extra samples made by [`Overflow::Split`].
    pub split: usize,
    /// Supervised turns that could not fit even alone ([`Overflow::Split`]).
    pub lost_turns: usize,
}

impl FitReport {
    /// Adds another report.
    pub fn add(&mut self, other: &FitReport) {
        self.shortened += other.shortened;
        self.dropped += other.dropped;
        self.split += other.split;
        self.lost_turns += other.lost_turns;
    }
}

/// Renders trajectory `index` for `role` with `supervised` sub-tasks: one sample per
/// conversation of the role that has at least one supervised token (more with
/// [`Overflow::Split`]).
///
/// A turn is supervised when its sub-task is in `supervised` and its completion is marked for
/// training (`train`: deliberate mistakes and malformed outputs never are); every other token
/// has loss mask 0. With [`Unsupervised::Truncate`] each conversation ends with its last
/// supervised turn.
///
/// Context-length handling never cuts a supervised turn: the messages before the first
/// assistant message (system prompt and task) are always kept; while the sample is too long,
/// unsupervised turns (an assistant message with the user messages that follow it) are
/// dropped, oldest first (with [`Unsupervised::Keep`], the kept turns after the last
/// supervised one go before any other, since they cannot affect the loss); if it still does
/// not fit, [`Overflow`] decides.
pub fn render_trajectory<R: ChatRenderer>(
    trajectory: &Trajectory,
    index: usize,
    role: Role,
    supervised: &[usize],
    unsupervised: Unsupervised,
    renderer: &R,
    options: &SampleOptions,
) -> Result<(Vec<Sample>, FitReport), CurriculumError> {
    let mut samples = Vec::new();
    let mut report = FitReport::default();
    let wanted: BTreeSet<usize> = supervised.iter().copied().collect();
    for (c, conversation) in trajectory.conversations.iter().enumerate() {
        if conversation.role != role {
            continue;
        }
        let Some(prepared) = prepare(trajectory, conversation, &wanted, unsupervised) else {
            continue;
        };
        let pieces = fit(&prepared, renderer, options, &mut report)?;
        for (part, piece) in pieces.into_iter().enumerate() {
            let messages = prepared.assemble(&piece);
            let (tokens, spans) = renderer
                .render_with_spans(&messages)
                .map_err(CurriculumError::render)?;
            if tokens.ids.len() != tokens.mask.len() {
                return Err(CurriculumError::Renderer(format!(
                    "render returned {} ids and {} mask values",
                    tokens.ids.len(),
                    tokens.mask.len()
                )));
            }
            if let Some(max) = options.max_tokens
                && tokens.ids.len() > max
            {
                return Err(CurriculumError::Renderer(format!(
                    "render returned {} tokens where count_tokens promised at most {max}",
                    tokens.ids.len()
                )));
            }
            if let Some(spans) = &spans
                && spans.len() != tokens.ids.len()
            {
                return Err(CurriculumError::Renderer(format!(
                    "render returned {} ids and {} token spans",
                    tokens.ids.len(),
                    spans.len()
                )));
            }
            let literal_mask = literal_mask(&messages, &tokens.mask, spans.as_ref());
            let supervised_turns: Vec<usize> = piece
                .trained
                .iter()
                .filter_map(|&u| prepared.units[u].turn)
                .collect();
            let subtasks: BTreeSet<usize> = supervised_turns
                .iter()
                .map(|&t| trajectory.segmentation.turn_subtask[t])
                .collect();
            let len = tokens.ids.len();
            samples.push(Sample {
                trajectory: index,
                conversation: c,
                part,
                role,
                ids: tokens.ids,
                loss_mask: tokens.mask,
                literal_mask,
                position_ids: (0..len as u32).collect(),
                supervised_turns,
                subtasks: subtasks.into_iter().collect(),
                dropped_turns: piece.dropped,
            });
        }
    }
    Ok((samples, report))
}

/// An assistant message and the non-assistant messages after it.
#[derive(Debug, Clone)]
struct Unit {
    start: usize,
    end: usize,
    supervised: bool,
    turn: Option<usize>,
}

/// A conversation with its training flags set, cut into a protected head and units.
struct Prepared {
    messages: Vec<Message>,
    protected: usize,
    units: Vec<Unit>,
}

/// One sample's choice of units.
#[derive(Debug, Clone)]
struct Piece {
    /// Units trained here (ascending).
    trained: Vec<usize>,
    /// Units kept as context (ascending).
    context: Vec<usize>,
    /// Context units dropped to fit.
    dropped: usize,
}

fn prepare(
    trajectory: &Trajectory,
    conversation: &Conversation,
    wanted: &BTreeSet<usize>,
    unsupervised: Unsupervised,
) -> Option<Prepared> {
    let turns = &trajectory.episode.turns;
    let mut messages = conversation.messages.clone();
    let mut last_trained = None;
    for (j, message) in messages.iter_mut().enumerate() {
        let trained = message.role == ChatRole::Assistant
            && conversation.completion_of[j].is_some_and(|t| {
                turns[t].completion().is_some_and(|m| m.train)
                    && wanted.contains(&trajectory.segmentation.turn_subtask[t])
            });
        message.train = trained;
        if trained {
            last_trained = Some(j);
        }
    }
    let last_trained = last_trained?;
    if unsupervised == Unsupervised::Truncate {
        messages.truncate(last_trained + 1);
    }
    let protected = messages
        .iter()
        .position(|m| m.role == ChatRole::Assistant)
        .expect("a trained message is an assistant message");
    let mut units: Vec<Unit> = Vec::new();
    for (j, message) in messages.iter().enumerate().skip(protected) {
        if message.role == ChatRole::Assistant {
            units.push(Unit {
                start: j,
                end: j + 1,
                supervised: message.train,
                turn: conversation.completion_of[j],
            });
        } else if let Some(unit) = units.last_mut() {
            unit.end = j + 1;
        }
    }
    Some(Prepared {
        messages,
        protected,
        units,
    })
}

impl Prepared {
    /// The messages of a piece: the protected head, then its units in order, training flags set
    /// for its trained units only. It ends with its last unit's assistant message: the user
    /// messages after it cannot affect the loss of a causal model.
    fn assemble(&self, piece: &Piece) -> Vec<Message> {
        let mut out: Vec<Message> = self.messages[..self.protected].to_vec();
        let mut chosen: Vec<(usize, bool)> = piece
            .trained
            .iter()
            .map(|&u| (u, true))
            .chain(
                piece
                    .context
                    .iter()
                    .skip(piece.dropped)
                    .map(|&u| (u, false)),
            )
            .collect();
        chosen.sort_unstable();
        let last = chosen.last().map(|&(u, _)| u);
        for (u, trained) in chosen {
            let unit = &self.units[u];
            let end = if Some(u) == last {
                unit.start + 1
            } else {
                unit.end
            };
            for (j, message) in self.messages[unit.start..end].iter().enumerate() {
                let mut message = message.clone();
                message.train = trained && j == 0;
                out.push(message);
            }
        }
        out
    }
}

/// Chooses the pieces (samples) of a prepared conversation.
fn fit<R: ChatRenderer>(
    prepared: &Prepared,
    renderer: &R,
    options: &SampleOptions,
    report: &mut FitReport,
) -> Result<Vec<Piece>, CurriculumError> {
    let supervised: Vec<usize> = (0..prepared.units.len())
        .filter(|&u| prepared.units[u].supervised)
        .collect();
    let last_unit = prepared.units.len() - 1;
    // The piece that trains supervised[from..to], with every other unit up to its end as
    // context (the tail after the last supervised unit too, when it is kept).
    let piece = |from: usize, to: usize, dropped: usize| {
        let trained: Vec<usize> = supervised[from..to].to_vec();
        let end = if to == supervised.len() {
            last_unit
        } else {
            supervised[to - 1]
        };
        // Dropped first: the kept tail after the last trained unit (latest first: it cannot
        // affect the loss), then the oldest context.
        let last_trained = *trained.last().expect("a piece trains at least one unit");
        let context: Vec<usize> = (last_trained + 1..=end)
            .rev()
            .chain((0..last_trained).filter(|u| !trained.contains(u)))
            .collect();
        let dropped = dropped.min(context.len());
        Piece {
            trained,
            context,
            dropped,
        }
    };
    let Some(max) = options.max_tokens else {
        return Ok(vec![piece(0, supervised.len(), 0)]);
    };
    let count = |p: &Piece| -> Result<usize, CurriculumError> {
        renderer
            .count_tokens(&prepared.assemble(p))
            .map_err(CurriculumError::render)
    };
    let mut pieces = Vec::new();
    let mut from = 0;
    while from < supervised.len() {
        // The most supervised units (from `from` on) that fit with all context dropped.
        let minimal_fits = |to: usize| -> Result<bool, CurriculumError> {
            Ok(count(&piece(from, to, usize::MAX))? <= max)
        };
        let to = if minimal_fits(supervised.len())? {
            supervised.len()
        } else {
            let (mut lo, mut hi) = (from, supervised.len()); // lo fits (or is `from`), hi does not
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if minimal_fits(mid)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            lo
        };
        if to < supervised.len() && options.overflow == Overflow::Drop {
            report.dropped += 1;
            return Ok(Vec::new());
        }
        if to == from {
            report.lost_turns += 1;
            from += 1;
            continue;
        }
        // The fewest oldest context units to drop.
        let full = piece(from, to, 0);
        let dropped = if count(&full)? <= max {
            0
        } else {
            let (mut lo, mut hi) = (0, full.context.len()); // lo does not fit, hi fits
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if count(&piece(from, to, mid))? <= max {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            hi
        };
        if dropped > 0 {
            report.shortened += 1;
        }
        pieces.push(piece(from, to, dropped));
        from = to;
    }
    report.split += pieces.len().saturating_sub(1);
    Ok(pieces)
}
