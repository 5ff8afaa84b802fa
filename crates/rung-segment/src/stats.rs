//! `rung data stats FILE`: a summary of a trajectory file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use rung_trajectory::{ChatRole, Episode, Role, SystemKind};
use serde::Serialize;

use crate::plan::PlanSource;
use crate::segment::{Method, segment};

/// Per-system figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemStats {
    /// Episodes.
    pub episodes: usize,
    /// Of which succeeded.
    pub successes: usize,
    /// Turns (model calls).
    pub turns: usize,
    /// Sub-tasks over all episodes.
    pub subtasks: usize,
    /// Fewest sub-tasks in one episode.
    pub min_subtasks: usize,
    /// Most sub-tasks in one episode.
    pub max_subtasks: usize,
    /// Episodes per segmentation method.
    pub methods: BTreeMap<Method, usize>,
}

/// Per-role figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoleStats {
    /// Turns.
    pub turns: usize,
    /// Turns whose completion is marked for training.
    pub trained: usize,
    /// Characters of the completions.
    pub completion_chars: usize,
    /// Characters of the longest prompt (all messages before the completion).
    pub max_prompt_chars: usize,
    /// Generated tokens as the policies reported them (estimates for scripted policies).
    pub generated_tokens: u64,
}

/// The summary of a set of episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DataStats {
    /// Episodes.
    pub episodes: usize,
    /// Distinct tasks.
    pub tasks: usize,
    /// Episodes that succeeded.
    pub successes: usize,
    /// Episodes per split (`unknown` when not recorded).
    pub splits: BTreeMap<String, usize>,
    /// Episodes per end label (`completed`, `budget_exceeded:interactions`, …).
    pub ends: BTreeMap<String, usize>,
    /// Episodes per difficulty.
    pub difficulty: BTreeMap<u8, usize>,
    /// Per system.
    pub systems: BTreeMap<SystemKind, SystemStats>,
    /// Per role.
    pub roles: BTreeMap<Role, RoleStats>,
    /// Episodes per number of sub-tasks.
    pub subtask_histogram: BTreeMap<usize, usize>,
}

impl DataStats {
    /// Computes the summary; sub-tasks are counted with [`segment`] and `plans`.
    pub fn compute(episodes: &[Episode], plans: &impl PlanSource) -> Self {
        let mut stats = DataStats {
            episodes: episodes.len(),
            ..DataStats::default()
        };
        let mut tasks = BTreeSet::new();
        for episode in episodes {
            tasks.insert(episode.task_id.clone());
            let success = episode.evaluation.success;
            stats.successes += usize::from(success);
            let split = episode
                .split
                .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
            *stats.splits.entry(split).or_default() += 1;
            *stats.ends.entry(episode.end.label()).or_default() += 1;
            *stats
                .difficulty
                .entry(episode.evaluation.difficulty)
                .or_default() += 1;
            let seg = segment(episode, plans);
            *stats.subtask_histogram.entry(seg.len()).or_default() += 1;
            let system = stats.systems.entry(episode.system.kind).or_default();
            if system.episodes == 0 {
                system.min_subtasks = seg.len();
            }
            system.episodes += 1;
            system.successes += usize::from(success);
            system.turns += episode.turns.len();
            system.subtasks += seg.len();
            system.min_subtasks = system.min_subtasks.min(seg.len());
            system.max_subtasks = system.max_subtasks.max(seg.len());
            *system.methods.entry(seg.method).or_default() += 1;
            for turn in &episode.turns {
                let role = stats.roles.entry(turn.role).or_default();
                role.turns += 1;
                let (prompt, completion) = match turn.messages.split_last() {
                    Some((last, prompt)) if last.role == ChatRole::Assistant => {
                        (prompt, Some(last))
                    }
                    _ => (turn.messages.as_slice(), None),
                };
                if let Some(completion) = completion {
                    role.trained += usize::from(completion.train);
                    role.completion_chars += completion.content.len();
                }
                let prompt_chars = prompt.iter().map(|m| m.content.len()).sum();
                role.max_prompt_chars = role.max_prompt_chars.max(prompt_chars);
                role.generated_tokens += turn.generated_tokens;
            }
        }
        stats.tasks = tasks.len();
        stats
    }

    /// The printable summary.
    pub fn table(&self, name: &str) -> String {
        let mut out = String::new();
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * a as f64 / b as f64)
            }
        };
        let list = |map: Vec<(String, usize)>| {
            map.into_iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "{name}: {} trajectories of {} tasks, {} succeeded ({})",
            self.episodes,
            self.tasks,
            self.successes,
            pct(self.successes, self.episodes)
        );
        let _ = writeln!(
            out,
            "splits: {}",
            list(self.splits.iter().map(|(k, v)| (k.clone(), *v)).collect())
        );
        let _ = writeln!(
            out,
            "ends: {}",
            list(self.ends.iter().map(|(k, v)| (k.clone(), *v)).collect())
        );
        let _ = writeln!(
            out,
            "difficulty: {}",
            list(
                self.difficulty
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect()
            )
        );
        let _ = writeln!(
            out,
            "sub-tasks per trajectory: {}",
            list(
                self.subtask_histogram
                    .iter()
                    .map(|(k, v)| (format!("{k}:"), *v))
                    .collect()
            )
        );
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .systems
            .iter()
            .map(|(kind, s)| {
                vec![
                    kind.to_string(),
                    s.episodes.to_string(),
                    pct(s.successes, s.episodes),
                    s.turns.to_string(),
                    format!("{:.1}", s.turns as f64 / s.episodes.max(1) as f64),
                    format!(
                        "{}/{:.2}/{}",
                        s.min_subtasks,
                        s.subtasks as f64 / s.episodes.max(1) as f64,
                        s.max_subtasks
                    ),
                    s.methods
                        .iter()
                        .map(|(m, n)| format!("{} {n}", m.name()))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]
            })
            .collect();
        out.push_str(&format_table(
            &[
                "system",
                "trajectories",
                "success",
                "turns",
                "turns/traj",
                "sub-tasks min/mean/max",
                "segmented by",
            ],
            &rows,
        ));
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .roles
            .iter()
            .map(|(role, r)| {
                vec![
                    role.to_string(),
                    r.turns.to_string(),
                    r.trained.to_string(),
                    (r.turns - r.trained).to_string(),
                    format!("{:.0}", r.completion_chars as f64 / r.turns.max(1) as f64),
                    r.max_prompt_chars.to_string(),
                    r.generated_tokens.to_string(),
                ]
            })
            .collect();
        out.push_str(&format_table(
            &[
                "role",
                "turns",
                "trained",
                "not trained",
                "completion chars (mean)",
                "prompt chars (max)",
                "generated tokens",
            ],
            &rows,
        ));
        out
    }
}

/// The summary of a trajectory file as `rung data stats FILE` prints it: totals, splits, how
/// episodes ended, difficulty, sub-tasks per trajectory, then a table per system (trajectories,
/// success, turns, sub-tasks, segmentation method) and per role (turns, trained and untrained
/// completions, completion and prompt sizes, generated tokens as reported by the policies).
pub fn data_stats(name: &str, episodes: &[Episode], plans: &impl PlanSource) -> String {
    DataStats::compute(episodes, plans).table(name)
}

/// Formats a table: a header row, a rule, then the rows; the first column is left-aligned and
/// the others right-aligned, each as wide as its widest cell.
pub fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut parts = Vec::with_capacity(columns);
        for (i, cell) in cells.enumerate().take(columns) {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                parts.push(format!("{cell}{}", " ".repeat(pad)));
            } else {
                parts.push(format!("{}{cell}", " ".repeat(pad)));
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut out, &mut header.iter().copied());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&mut out, &mut rule.iter().map(String::as_str));
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}
