//! A data set of segmented trajectories and the conversations of their roles.

use std::collections::HashMap;
use std::path::Path;

use rung_segment::{PlanSource, Segmentation, segment};
use rung_trajectory::{ChatRole, Episode, Message, Role};

use crate::CurriculumError;
use crate::rng::{hash_str, mix};
use crate::schedule::{Schedule, ScheduleContext, TrajectoryInfo};

/// One conversation of one role: a run of turns where each turn's prompt extends the previous
/// turn's messages (the single agent's and the orchestrator's whole episode; one executor
/// conversation per sub-task, retries included; one critic conversation per verdict).
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The role.
    pub role: Role,
    /// Its turns (indices into `episode.turns`), in order.
    pub turns: Vec<usize>,
    /// The whole conversation: the last turn's messages, its completion included.
    pub messages: Vec<Message>,
    /// For every message, the turn whose completion it is (`None` for system and user
    /// messages, and for assistant messages no turn of this conversation produced).
    pub completion_of: Vec<Option<usize>>,
}

/// Splits an episode's turns into conversations.
///
/// A turn continues the most recent conversation of its role whose messages (roles and
/// contents; the `train` flags are taken from the turns) are a prefix of the turn's prompt;
/// otherwise it starts a new one. Turns without messages are skipped.
pub fn conversations(episode: &Episode) -> Vec<Conversation> {
    let same = |a: &Message, b: &Message| a.role == b.role && a.content == b.content;
    let mut out: Vec<Conversation> = Vec::new();
    for (i, turn) in episode.turns.iter().enumerate() {
        let Some((last, prompt)) = turn.messages.split_last() else {
            continue;
        };
        let completion = last.role == ChatRole::Assistant;
        let prompt = if completion {
            prompt
        } else {
            turn.messages.as_slice()
        };
        let found = out.iter().rposition(|c| {
            c.role == turn.role
                && c.messages.len() <= prompt.len()
                && c.messages.iter().zip(prompt).all(|(a, b)| same(a, b))
        });
        let conversation = match found {
            Some(c) => &mut out[c],
            None => {
                out.push(Conversation {
                    role: turn.role,
                    turns: Vec::new(),
                    messages: Vec::new(),
                    completion_of: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        conversation.turns.push(i);
        conversation.messages = turn.messages.clone();
        conversation.completion_of.resize(turn.messages.len(), None);
        if completion {
            conversation.completion_of[turn.messages.len() - 1] = Some(i);
        }
    }
    out
}

/// A trajectory ready for scheduling: the episode, its sub-tasks and its conversations.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// The episode.
    pub episode: Episode,
    /// Its sub-tasks.
    pub segmentation: Segmentation,
    /// Its conversations, all roles, in order of their first turn.
    pub conversations: Vec<Conversation>,
    /// What schedules see of it.
    pub info: TrajectoryInfo,
}

impl Trajectory {
    /// Segments `episode` with `plans`; `key` identifies it for random draws.
    pub fn new(episode: Episode, plans: &impl PlanSource, key: u64) -> Self {
        let segmentation = segment(&episode, plans);
        let conversations = conversations(&episode);
        let info = TrajectoryInfo {
            key,
            subtasks: segmentation.len(),
            difficulty: episode.evaluation.difficulty,
        };
        Trajectory {
            episode,
            segmentation,
            conversations,
            info,
        }
    }

    /// The roles that have turns, in rung's role order.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.episode.turns.iter().map(|t| t.role).collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }
}

/// Trajectories ready for scheduling.
///
/// Each trajectory's key (which seeds the `random` schedule) is derived from its task id,
/// system, episode seed and how many trajectories with the same three came before it in the
/// data set, so it does not change when other trajectories are added or the file is
/// reordered.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    /// The trajectories, in input order.
    pub trajectories: Vec<Trajectory>,
    /// What schedules know about the whole set.
    pub context: ScheduleContext,
}

impl Dataset {
    /// Segments `episodes` (gold plans from `plans`).
    pub fn new(episodes: Vec<Episode>, plans: &impl PlanSource) -> Self {
        let mut seen: HashMap<(String, String, u64), u64> = HashMap::new();
        let trajectories: Vec<Trajectory> = episodes
            .into_iter()
            .map(|episode| {
                let id = (
                    episode.task_id.as_str().to_owned(),
                    episode.system.kind.name().to_owned(),
                    episode.seed,
                );
                let occurrence = seen.entry(id.clone()).or_insert(0);
                let key = mix(&[hash_str(&id.0), hash_str(&id.1), id.2, *occurrence]);
                *occurrence += 1;
                Trajectory::new(episode, plans, key)
            })
            .collect();
        let context = ScheduleContext::new(trajectories.iter().map(|t| &t.info));
        Dataset {
            trajectories,
            context,
        }
    }

    /// Reads a trajectory file and segments it.
    pub fn read(path: &Path, plans: &impl PlanSource) -> Result<Self, CurriculumError> {
        let episodes = rung_trajectory::read_file(path)?;
        Ok(Self::new(episodes, plans))
    }

    /// Number of trajectories.
    pub fn len(&self) -> usize {
        self.trajectories.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.trajectories.is_empty()
    }

    /// The sub-tasks of trajectory `index` that `schedule` supervises in `epoch`.
    pub fn supervised(&self, schedule: &Schedule, epoch: usize, index: usize) -> Vec<usize> {
        schedule.supervised(epoch, &self.trajectories[index].info, &self.context)
    }

    /// The roles present, in rung's role order.
    pub fn roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.trajectories.iter().flat_map(|t| t.roles()).collect();
        roles.sort_unstable();
        roles.dedup();
        roles
    }

    /// The largest number of sub-tasks of a trajectory.
    pub fn max_subtasks(&self) -> usize {
        self.trajectories
            .iter()
            .map(|t| t.info.subtasks)
            .max()
            .unwrap_or(0)
    }
}
