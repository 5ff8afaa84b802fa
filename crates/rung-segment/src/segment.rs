//! Splitting an episode into ordered sub-tasks.

use std::collections::BTreeMap;

use rung_trajectory::{Action, Episode, Role, Turn};
use serde::{Deserialize, Serialize};

use crate::code::{CellInfo, lines_within};
use crate::plan::{GoldPlan, PlanSource};

/// How an episode's sub-tasks were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Multi-agent: every orchestrator delegation (`SUBTASK …`) opens the next sub-task.
    Delegations,
    /// Single agent with a gold plan: code cells aligned to the plan's sub-tasks.
    GoldPlan,
    /// Single agent whose turns all record their sub-task.
    Recorded,
    /// Single agent without a gold plan: the app-switch and login heuristic.
    AppSwitch,
}

impl Method {
    /// The name used in tables and on disk.
    pub fn name(self) -> &'static str {
        match self {
            Method::Delegations => "delegations",
            Method::GoldPlan => "gold_plan",
            Method::Recorded => "recorded",
            Method::AppSwitch => "app_switch",
        }
    }
}

/// One sub-task of an episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subtask {
    /// 0-based position among the episode's sub-tasks.
    pub index: usize,
    /// The app it acts in, where known (delegation, gold plan, or the heuristic's app).
    pub app: Option<String>,
    /// Its instruction, where known (delegation or gold plan).
    pub instruction: Option<String>,
    /// Multi-agent: the orchestrator turn whose delegation opened it.
    pub opened_by: Option<usize>,
    /// Indices (into `episode.turns`) of the turns that belong to it, per role, in order.
    pub turns: BTreeMap<Role, Vec<usize>>,
}

impl Subtask {
    /// The turns of one role (empty when the role has none here).
    pub fn turns_of(&self, role: Role) -> &[usize] {
        self.turns.get(&role).map_or(&[], Vec::as_slice)
    }

    /// Number of turns, all roles together.
    pub fn num_turns(&self) -> usize {
        self.turns.values().map(Vec::len).sum()
    }
}

/// An episode split into sub-tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segmentation {
    /// How the sub-tasks were found.
    pub method: Method,
    /// The sub-tasks, in order. An episode with at least one turn has at least one sub-task.
    pub subtasks: Vec<Subtask>,
    /// For every turn of the episode, the sub-task it belongs to.
    pub turn_subtask: Vec<usize>,
}

impl Segmentation {
    /// Number of sub-tasks.
    pub fn len(&self) -> usize {
        self.subtasks.len()
    }

    /// Whether there are none (only for an episode without turns).
    pub fn is_empty(&self) -> bool {
        self.subtasks.is_empty()
    }

    /// The sub-task of a turn.
    pub fn subtask_of(&self, turn: usize) -> Option<usize> {
        self.turn_subtask.get(turn).copied()
    }

    /// The turn indices of every sub-task, as `[first, …]` lists in episode order (all roles).
    pub fn boundaries(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.subtasks.len()];
        for (turn, &k) in self.turn_subtask.iter().enumerate() {
            out[k].push(turn);
        }
        out
    }

    fn build(
        method: Method,
        episode: &Episode,
        turn_subtask: Vec<usize>,
        labels: Vec<(Option<String>, Option<String>, Option<usize>)>,
    ) -> Self {
        let mut subtasks: Vec<Subtask> = labels
            .into_iter()
            .enumerate()
            .map(|(index, (app, instruction, opened_by))| Subtask {
                index,
                app,
                instruction,
                opened_by,
                turns: BTreeMap::new(),
            })
            .collect();
        for (turn, &k) in turn_subtask.iter().enumerate() {
            subtasks[k]
                .turns
                .entry(episode.turns[turn].role)
                .or_default()
                .push(turn);
        }
        Segmentation {
            method,
            subtasks,
            turn_subtask,
        }
    }
}

/// Segments an episode, looking its gold plan up in `plans` (see [`segment_with_plan`]).
pub fn segment(episode: &Episode, plans: &impl PlanSource) -> Segmentation {
    segment_with_plan(episode, plans.plan(&episode.task_id))
}

/// Segments an episode.
///
/// - **Multi-agent** (any turn of an orchestrator, executor or critic): every orchestrator
///   delegation opens the next sub-task ([`Method::Delegations`]); the gold plan is not used,
///   since what was trained is what the orchestrator issued. Executor and critic turns belong to
///   the sub-task they record (`turn.subtask`), or to the latest delegation when they record
///   none. Orchestrator turns that delegate nothing (malformed outputs, `COMPLETE`) belong to the
///   next sub-task delegated after them, or to the last one when none follows (so the final
///   `COMPLETE` is part of the last sub-task). An episode without any delegation is one
///   sub-task.
/// - **Single agent whose turns all record a sub-task**: those ([`Method::Recorded`]).
/// - **Single agent with a gold plan** (one whose instruction matches the episode's, with at
///   least one step): the code cells are aligned to the plan's sub-tasks ([`Method::GoldPlan`];
///   see [`align_to_plan`]). There are exactly as many sub-tasks as the plan has steps; a step
///   the agent never worked on has no turns.
/// - **Single agent without a gold plan**: the app-switch and login heuristic
///   ([`Method::AppSwitch`]; see [`segment_by_apps`]).
pub fn segment_with_plan(episode: &Episode, plan: Option<&GoldPlan>) -> Segmentation {
    let multi = episode.turns.iter().any(|t| t.role != Role::Single);
    if multi {
        return segment_by_delegations(episode);
    }
    if !episode.turns.is_empty() && episode.turns.iter().all(|t| t.subtask.is_some()) {
        let n = episode
            .turns
            .iter()
            .filter_map(|t| t.subtask)
            .max()
            .unwrap_or(0)
            + 1;
        let turn_subtask = episode
            .turns
            .iter()
            .map(|t| t.subtask.unwrap_or(0))
            .collect();
        return Segmentation::build(
            Method::Recorded,
            episode,
            turn_subtask,
            vec![(None, None, None); n],
        );
    }
    match plan {
        Some(plan)
            if !plan.steps.is_empty() && plan.matches(&episode.task_id, &episode.instruction) =>
        {
            let cells: Vec<Option<&str>> = episode.turns.iter().map(cell_code).collect();
            let codes: Vec<&str> = plan.steps.iter().map(|s| s.code.as_str()).collect();
            let turn_subtask = align_to_plan(&cells, &codes);
            let labels = plan
                .steps
                .iter()
                .map(|s| (Some(s.app.clone()), Some(s.instruction.clone()), None))
                .collect();
            Segmentation::build(Method::GoldPlan, episode, turn_subtask, labels)
        }
        _ => {
            let cells: Vec<Option<&str>> = episode.turns.iter().map(cell_code).collect();
            let (turn_subtask, apps) = segment_by_apps(&cells);
            let labels = apps.into_iter().map(|app| (app, None, None)).collect();
            Segmentation::build(Method::AppSwitch, episode, turn_subtask, labels)
        }
    }
}

/// The code a turn wrote: its code action, else the code the system ran for it.
fn cell_code(turn: &Turn) -> Option<&str> {
    match &turn.action {
        Action::Code { code } => Some(code.as_str()),
        _ => turn.code.as_deref(),
    }
}

fn segment_by_delegations(episode: &Episode) -> Segmentation {
    let delegations: Vec<usize> = episode
        .turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.role == Role::Orchestrator && matches!(t.action, Action::Subtask { .. }))
        .map(|(i, _)| i)
        .collect();
    let n = delegations
        .len()
        .max(usize::from(!episode.turns.is_empty()));
    let mut turn_subtask = vec![0; episode.turns.len()];
    let mut current: Option<usize> = None;
    let mut opened = 0;
    let mut pending: Vec<usize> = Vec::new();
    for (i, turn) in episode.turns.iter().enumerate() {
        match turn.role {
            Role::Orchestrator if matches!(turn.action, Action::Subtask { .. }) => {
                current = Some(opened);
                for p in pending.drain(..) {
                    turn_subtask[p] = opened;
                }
                turn_subtask[i] = opened;
                opened += 1;
            }
            Role::Orchestrator | Role::Single => pending.push(i),
            Role::Executor | Role::Critic => {
                turn_subtask[i] = match (turn.subtask, current) {
                    (Some(k), _) if k < n => k,
                    (_, Some(k)) => k,
                    (_, None) => 0,
                };
            }
        }
    }
    for p in pending {
        turn_subtask[p] = n - 1;
    }
    let labels = if delegations.is_empty() {
        vec![(None, None, None); n]
    } else {
        delegations
            .iter()
            .map(|&i| match &episode.turns[i].action {
                Action::Subtask { app, instruction } => {
                    (Some(app.clone()), Some(instruction.clone()), Some(i))
                }
                _ => unreachable!("delegations are subtask actions"),
            })
            .collect()
    };
    Segmentation::build(Method::Delegations, episode, turn_subtask, labels)
}

/// Evidence that a cell serves a gold step, as an integer score.
///
/// - 100 when the cell's non-empty lines (trimmed) appear as a contiguous run in the step's gold
///   code: the cell *is* (part of) the gold code, as an expert's login cell and main cell are;
/// - plus 10 for every `app.api` the cell and the gold code share (non-tool calls, logins
///   included; a documentation look-up of `app.api` counts as `app.api`);
/// - plus 1 for every non-tool app they share.
pub fn step_score(cell: &str, gold: &str) -> i64 {
    let (c, g) = (CellInfo::of(cell), CellInfo::of(gold));
    let exact = if lines_within(cell, gold) { 100 } else { 0 };
    let refs = c.refs().intersection(&g.refs()).count() as i64;
    let gold_apps = g.apps();
    let apps = c.apps().iter().filter(|a| gold_apps.contains(a)).count() as i64;
    exact + 10 * refs + apps
}

/// Aligns a single agent's turns to gold steps: returns each turn's step.
///
/// `cells[i]` is the code turn `i` wrote (`None` for a turn without code). Cells are assigned
/// to steps monotonically (a later cell never belongs to an earlier step) so that the total
/// [`step_score`] is maximal; among equally good alignments the one that moves on to the next
/// step as late as possible wins, so a cell without evidence (a `print`, the final
/// `complete_task`) stays with the step before it. Turns without code belong to the step of the
/// cell before them (the first step when there is none). Exact dynamic programming,
/// `O(cells · steps)`.
pub fn align_to_plan(cells: &[Option<&str>], steps: &[&str]) -> Vec<usize> {
    let m = steps.len();
    assert!(m > 0, "a gold plan needs at least one step");
    let code_turns: Vec<(usize, &str)> = cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.map(|c| (i, c)))
        .collect();
    let n = code_turns.len();
    let mut assigned = vec![0usize; n];
    if n > 0 {
        // Lexicographic objective: score first, then the sum of step indices (smaller wins).
        let weight = (n * m + 1) as i64;
        let value: Vec<Vec<i64>> = code_turns
            .iter()
            .map(|(_, cell)| {
                steps
                    .iter()
                    .enumerate()
                    .map(|(k, gold)| step_score(cell, gold) * weight - k as i64)
                    .collect()
            })
            .collect();
        // best[i][k]: best total of cells 0..=i with cell i at step k.
        let mut best = vec![vec![i64::MIN; m]; n];
        best[0] = value[0].clone();
        for i in 1..n {
            let mut running = i64::MIN;
            for k in 0..m {
                running = running.max(best[i - 1][k]);
                best[i][k] = running.saturating_add(value[i][k]);
            }
        }
        let argmax = |row: &[i64], upto: usize| {
            let mut pick = 0;
            for k in 0..=upto {
                if row[k] > row[pick] {
                    pick = k;
                }
            }
            pick
        };
        assigned[n - 1] = argmax(&best[n - 1], m - 1);
        for i in (0..n - 1).rev() {
            assigned[i] = argmax(&best[i], assigned[i + 1]);
        }
    }
    let mut out = vec![0usize; cells.len()];
    let mut next = code_turns.iter().zip(&assigned).peekable();
    let mut current = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if let Some(&(&(turn, _), &k)) = next.peek()
            && turn == i
        {
            current = k;
            next.next();
        }
        *slot = current;
    }
    out
}

/// The heuristic for single-agent code trajectories without a gold plan.
///
/// Each cell's *app* is the first app it logs into (`apis.<app>.login(…)`), else the first
/// non-tool app it calls or looks up in the documentation (`supervisor` and `api_docs` are
/// tools). Walking the cells in order, a cell whose app differs from the current sub-task's app
/// opens a new sub-task: an app switch, or a login into another app (a login boundary: agents
/// log into an app when they start working in it, so a cell that logs into `pay` opens a `pay`
/// sub-task even if it also still calls `phone`). A cell without an app (plain Python,
/// `supervisor` calls such as `complete_task`) stays in the current sub-task, and the first
/// app-less cells join the first sub-task. Turns without code belong to the current sub-task.
///
/// Limits: two consecutive sub-tasks in the same app are merged into one, and a cell that works
/// in two apps is counted whole for its first one.
///
/// Returns each turn's sub-task and each sub-task's app.
pub fn segment_by_apps(cells: &[Option<&str>]) -> (Vec<usize>, Vec<Option<String>>) {
    let mut apps: Vec<Option<String>> = Vec::new();
    let mut out = Vec::with_capacity(cells.len());
    for cell in cells {
        if let Some(code) = cell {
            let app = CellInfo::of(code).primary_app();
            match (apps.last_mut(), app) {
                (None, app) => apps.push(app),
                (Some(current @ None), app) => *current = app,
                (Some(Some(current)), Some(app)) if *current != app => apps.push(Some(app)),
                _ => {}
            }
        }
        out.push(apps.len().saturating_sub(1));
    }
    if apps.is_empty() && !cells.is_empty() {
        apps.push(None);
    }
    (out, apps)
}
