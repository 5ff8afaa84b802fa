//! An epoch's samples and statistics, and the per-epoch table of `rung curriculum show`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use rung_segment::format_table;
use rung_trajectory::Role;
use serde::Serialize;

use crate::CurriculumError;
use crate::data::Dataset;
use crate::render::ChatRenderer;
use crate::sample::{FitReport, Sample, SampleOptions, render_trajectory};
use crate::schedule::Curriculum;

/// Figures of one role in one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RoleEpochStats {
    /// Samples.
    pub samples: usize,
    /// Tokens with loss mask 1.
    pub supervised_tokens: usize,
    /// Tokens with loss mask 0.
    pub context_tokens: usize,
    /// Context-length handling.
    pub fit: FitReport,
    /// (trajectory, sub-task) pairs with at least one supervised token of this role.
    pub subtasks: usize,
    /// The same, by sub-task index.
    pub subtasks_by_index: Vec<usize>,
}

impl RoleEpochStats {
    /// Adds another role's (or epoch's) figures.
    pub fn add(&mut self, other: &RoleEpochStats) {
        self.samples += other.samples;
        self.supervised_tokens += other.supervised_tokens;
        self.context_tokens += other.context_tokens;
        self.fit.add(&other.fit);
        self.subtasks += other.subtasks;
        add_by_index(&mut self.subtasks_by_index, &other.subtasks_by_index);
    }
}

fn add_by_index(into: &mut Vec<usize>, from: &[usize]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

/// Statistics of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct EpochStats {
    /// The epoch (1-based).
    pub epoch: usize,
    /// (trajectory, sub-task) pairs the schedule supervises.
    pub scheduled: usize,
    /// All (trajectory, sub-task) pairs of the data set.
    pub total_subtasks: usize,
    /// Scheduled pairs by sub-task index: how many trajectories have sub-task `i` supervised.
    pub scheduled_by_index: Vec<usize>,
    /// Per role.
    pub roles: BTreeMap<Role, RoleEpochStats>,
}

impl EpochStats {
    /// All roles together.
    pub fn total(&self) -> RoleEpochStats {
        let mut total = RoleEpochStats::default();
        for role in self.roles.values() {
            total.add(role);
        }
        total
    }

    /// Merges the roles of `other` (same epoch) into this.
    pub fn merge_roles(&mut self, other: EpochStats) {
        for (role, stats) in other.roles {
            self.roles.entry(role).or_default().add(&stats);
        }
    }
}

/// The samples of one role in one epoch, with their statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochSamples {
    /// The samples, in data-set order (trajectory, then conversation, then part).
    pub samples: Vec<Sample>,
    /// Their statistics (this role only).
    pub stats: EpochStats,
}

/// Renders epoch `epoch` (1-based) of `curriculum` for `role`: every trajectory with its
/// scheduled sub-tasks (see [`render_trajectory`]).
pub fn epoch_samples<R: ChatRenderer>(
    dataset: &Dataset,
    curriculum: &Curriculum,
    epoch: usize,
    role: Role,
    renderer: &R,
    options: &SampleOptions,
) -> Result<EpochSamples, CurriculumError> {
    curriculum
        .schedule
        .validate()
        .map_err(CurriculumError::Config)?;
    let mut stats = schedule_stats(dataset, curriculum, epoch);
    let mut role_stats = RoleEpochStats::default();
    let mut samples = Vec::new();
    for (index, trajectory) in dataset.trajectories.iter().enumerate() {
        let supervised = dataset.supervised(&curriculum.schedule, epoch, index);
        if supervised.is_empty() {
            continue;
        }
        let (mut rendered, report) = render_trajectory(
            trajectory,
            index,
            role,
            &supervised,
            curriculum.unsupervised,
            renderer,
            options,
        )?;
        role_stats.fit.add(&report);
        let covered: BTreeSet<usize> = rendered
            .iter()
            .flat_map(|s| s.subtasks.iter().copied())
            .collect();
        for k in covered {
            role_stats.subtasks += 1;
            add_by_index(&mut role_stats.subtasks_by_index, &one_hot(k));
        }
        samples.append(&mut rendered);
    }
    for sample in &samples {
        let supervised = sample.supervised_tokens();
        role_stats.samples += 1;
        role_stats.supervised_tokens += supervised;
        role_stats.context_tokens += sample.len() - supervised;
    }
    stats.roles.insert(role, role_stats);
    Ok(EpochSamples { samples, stats })
}

fn one_hot(k: usize) -> Vec<usize> {
    let mut v = vec![0; k + 1];
    v[k] = 1;
    v
}

/// The schedule's side of an epoch's statistics (no rendering, no roles).
pub fn schedule_stats(dataset: &Dataset, curriculum: &Curriculum, epoch: usize) -> EpochStats {
    let mut stats = EpochStats {
        epoch,
        ..EpochStats::default()
    };
    for index in 0..dataset.len() {
        stats.total_subtasks += dataset.trajectories[index].info.subtasks;
        for k in dataset.supervised(&curriculum.schedule, epoch, index) {
            stats.scheduled += 1;
            add_by_index(&mut stats.scheduled_by_index, &one_hot(k));
        }
    }
    stats
}

/// The statistics of an epoch over several roles.
pub fn epoch_stats<R: ChatRenderer>(
    dataset: &Dataset,
    curriculum: &Curriculum,
    epoch: usize,
    roles: &[Role],
    renderer: &R,
    options: &SampleOptions,
) -> Result<EpochStats, CurriculumError> {
    let mut stats = schedule_stats(dataset, curriculum, epoch);
    for &role in roles {
        let epoch_role = epoch_samples(dataset, curriculum, epoch, role, renderer, options)?;
        stats.merge_roles(epoch_role.stats);
    }
    Ok(stats)
}

/// The per-epoch table of `rung curriculum show`: for epochs `1..=epochs`, the sub-tasks the
/// schedule supervises (all trajectories, and by 1-based sub-task position `#k`), the samples,
/// supervised and context tokens over `roles` (all roles of the data when empty), how many
/// samples context-length handling shortened, dropped or split, and the sub-tasks each role
/// actually has supervised tokens in. `tokens` names the renderer's unit in the header.
pub fn curriculum_table<R: ChatRenderer>(
    dataset: &Dataset,
    curriculum: &Curriculum,
    epochs: usize,
    roles: &[Role],
    renderer: &R,
    options: &SampleOptions,
    tokens: &str,
) -> Result<String, CurriculumError> {
    let roles: Vec<Role> = if roles.is_empty() {
        dataset.roles()
    } else {
        roles.to_vec()
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "schedule: {}; unsupervised sub-tasks: {}; context: {}{}",
        curriculum.schedule.describe(),
        match curriculum.unsupervised {
            crate::Unsupervised::Truncate => "truncate",
            crate::Unsupervised::Keep => "keep",
        },
        options
            .max_tokens
            .map_or_else(|| "unlimited".to_owned(), |m| format!("{m} {tokens}")),
        match (options.max_tokens, options.overflow) {
            (None, _) => "",
            (Some(_), crate::Overflow::Drop) => ", overflow: drop",
            (Some(_), crate::Overflow::Split) => ", overflow: split",
        }
    );
    let total: usize = dataset.trajectories.iter().map(|t| t.info.subtasks).sum();
    let _ = writeln!(
        out,
        "data: {} trajectories, {} sub-tasks (at most {} per trajectory); roles: {}; tokens: {tokens}",
        dataset.len(),
        total,
        dataset.max_subtasks(),
        roles
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push('\n');
    let width = dataset.max_subtasks();
    let mut header: Vec<String> = [
        "epoch",
        "supervised sub-tasks",
        "samples",
        "supervised tokens",
        "context tokens",
        "shortened",
        "dropped",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if options.overflow == crate::Overflow::Split {
        header.push("split".into());
        header.push("lost turns".into());
    }
    header.extend(roles.iter().map(|r| r.name().to_owned()));
    header.extend((1..=width).map(|k| format!("#{k}")));
    let mut rows = Vec::new();
    for epoch in 1..=epochs {
        let stats = epoch_stats(dataset, curriculum, epoch, &roles, renderer, options)?;
        let t = stats.total();
        let mut row = vec![
            epoch.to_string(),
            format!("{}/{}", stats.scheduled, stats.total_subtasks),
            t.samples.to_string(),
            t.supervised_tokens.to_string(),
            t.context_tokens.to_string(),
            t.fit.shortened.to_string(),
            t.fit.dropped.to_string(),
        ];
        if options.overflow == crate::Overflow::Split {
            row.push(t.fit.split.to_string());
            row.push(t.fit.lost_turns.to_string());
        }
        row.extend(
            roles
                .iter()
                .map(|r| stats.roles.get(r).map_or(0, |s| s.subtasks).to_string()),
        );
        row.extend((0..width).map(|k| {
            stats
                .scheduled_by_index
                .get(k)
                .copied()
                .unwrap_or(0)
                .to_string()
        }));
        rows.push(row);
    }
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str(&format_table(&header, &rows));
    let _ = writeln!(
        out,
        "\nrole columns: sub-tasks with supervised tokens of that role; #k: trajectories whose k-th \
         sub-task is scheduled; shortened: samples that lost unsupervised turns to fit; dropped: \
         conversations that could not fit"
    );
    Ok(out)
}
