//! What an expert will write in one episode: the cells of every sub-task, with the seeded
//! choices (documentation look-ups, one deliberate mistake, wrong reports for the critic,
//! format slips) made once, up front, and fitted into the system's budgets.

use rung_env::Supervisor;
use rung_trajectory::SystemKind;

use super::cells::{docs_cell, main_api, split_login, wrong_parameter};
use super::mistakes::{
    Expect, IdSite, empty_searches, login_recovery, usernames_in, verified, wrong_usernames,
};
use super::{ExpertHabits, ExpertOptions};
use crate::budget::Budgets;
use crate::gold::{GoldPlan, GoldSource};
use crate::seed::{derive, unit};

/// One thing the expert writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A code cell worth imitating.
    Code(String),
    /// An output in no valid format (not for training) instead of the step after it, which
    /// the expert writes once the system has answered with its format reminder.
    Slip,
    /// A mistaken cell (not for training), then the steps that recover from it.
    Mistake {
        /// The wrong cell.
        wrong: String,
        /// What follows its error: perhaps a docs look-up, the corrected cells; in three-agent
        /// systems perhaps first a report of the failure that the critic sends back.
        recovery: Vec<Step>,
        /// Whether to recover even if the wrong cell unexpectedly succeeded. True for
        /// mistakes whose recovery is safe to run anyway (logins and look-ups, which change
        /// nothing); false for a wrong parameter, whose "recovery" could repeat an action.
        always_recover: bool,
    },
    /// The end-of-sub-task report, derived from the last output. `train` is false for a
    /// deliberately premature report that a critic is expected to reject.
    Report {
        /// Whether it is worth imitating.
        train: bool,
    },
    /// A report with the wrong result (not for training) that the critic rejects; the right
    /// report follows its feedback.
    WrongReport,
}

impl Step {
    /// Executor calls the step takes.
    fn calls(&self) -> usize {
        match self {
            Step::Mistake { recovery, .. } => 1 + recovery.iter().map(Step::calls).sum::<usize>(),
            _ => 1,
        }
    }

    /// Code cells the step runs.
    fn cells(&self) -> usize {
        match self {
            Step::Code(_) => 1,
            Step::Mistake { recovery, .. } => 1 + recovery.iter().map(Step::cells).sum::<usize>(),
            _ => 0,
        }
    }
}

/// The kind of mistake an episode contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mistake {
    /// A wrong keyword argument, its error, and the corrected call.
    WrongParameter,
    /// A premature report the critic rejects, then the rest of the sub-task.
    PrematureReport,
    /// A login with someone else's (or a mistyped) username, its 401, then the profile
    /// look-up and the right login.
    WrongUsername,
    /// A guessed id, its 404 (or 401), then the look-up and the right call.
    WrongId,
    /// A search with a near-miss query that finds nothing, then the right search.
    EmptySearch,
}

impl Mistake {
    /// Every kind, in the order a seeded draw lists them.
    pub const ALL: [Mistake; 5] = [
        Mistake::WrongParameter,
        Mistake::PrematureReport,
        Mistake::WrongUsername,
        Mistake::WrongId,
        Mistake::EmptySearch,
    ];
}

/// Everything a script depends on.
pub(crate) struct ScriptInputs<'a> {
    pub plan: &'a GoldPlan,
    pub source: &'a dyn GoldSource,
    pub options: &'a ExpertOptions,
    pub habits: &'a ExpertHabits,
    pub system: SystemKind,
    pub seed: u64,
    pub budgets: &'a Budgets,
    pub supervisor: &'a Supervisor,
}

/// The expert's plan for one episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    /// Step lists: one per gold sub-task for an executor (each ending with a report); one for
    /// the single agent (every sub-task, then the completion cell).
    pub lists: Vec<Vec<Step>>,
    /// The mistake made, if any, and in which sub-task.
    pub mistake: Option<(Mistake, usize)>,
    /// Sub-tasks with a report the critic must reject besides a premature one.
    pub negatives: Vec<usize>,
}

/// A mistake's cells, before it is placed in a sub-task.
struct Detour {
    wrong: String,
    recovery: Vec<String>,
    always_recover: bool,
    /// Whether the gold body still runs after the recovery (a login mistake precedes it).
    then_body: bool,
}

/// One sub-task's parts and the extras drawn for it.
struct Part {
    login: Option<String>,
    body: String,
    docs: Option<String>,
    negative: bool,
}

impl Script {
    /// Decides the episode's steps from its seed.
    pub fn new(inputs: &ScriptInputs<'_>) -> Self {
        let ScriptInputs {
            plan,
            options,
            habits,
            system,
            seed,
            budgets,
            ..
        } = *inputs;
        let team = system != SystemKind::Single;
        let three = system == SystemKind::ThreeAgent;
        let mut parts: Vec<Part> = plan
            .subtasks
            .iter()
            .enumerate()
            .map(|(k, subtask)| {
                let (login, body) = split_login(&subtask.code);
                let drawn = unit(derive(seed, &[b"docs", &k.to_le_bytes()])) < options.docs_rate;
                let docs = main_api(&body)
                    .filter(|_| drawn)
                    .map(|(app, api)| docs_cell(&app, &api));
                // The critic can only reject a wrong report when it knows the right one.
                let negative = three
                    && budgets.max_critic_retries > 0
                    && subtask.output.is_some()
                    && unit(derive(seed, &[b"negative", &k.to_le_bytes()]))
                        < habits.critic_negative_rate;
                Part {
                    login,
                    body,
                    docs,
                    negative,
                }
            })
            .collect();
        let mut mistake = choose_mistake(inputs, &parts);
        if let Some((Mistake::PrematureReport, at, _)) = &mistake {
            // One rejection per sub-task: a premature report already is one.
            parts[*at].negative = false;
            // Without a login cell first, a premature report would come before any cell: let
            // a docs look-up give it something to report.
            if parts[*at].login.is_none()
                && let Some((app, api)) = main_api(&parts[*at].body)
            {
                parts[*at].docs = Some(docs_cell(&app, &api));
            }
        }
        // Fit each sub-task into the executor's steps, then everything into the interactions:
        // look-ups go first, then wrong reports, then the mistake.
        if team {
            let max = budgets.max_executor_steps as usize;
            for k in 0..parts.len() {
                let calls = |parts: &[Part], m: &Option<(Mistake, usize, Option<Detour>)>| {
                    assemble(&parts[k], k, m, three)
                        .iter()
                        .map(Step::calls)
                        .sum::<usize>()
                };
                if calls(&parts, &mistake) > max {
                    parts[k].docs = None;
                }
                if calls(&parts, &mistake) > max {
                    parts[k].negative = false;
                }
                if calls(&parts, &mistake) > max && mistake.as_ref().is_some_and(|m| m.1 == k) {
                    mistake = None;
                }
            }
        }
        let cells = |parts: &[Part], m: &Option<(Mistake, usize, Option<Detour>)>| {
            let body: usize = (0..parts.len())
                .map(|k| {
                    assemble(&parts[k], k, m, three)
                        .iter()
                        .map(Step::cells)
                        .sum::<usize>()
                })
                .sum();
            body + 1
        };
        let max = budgets.max_interactions as usize;
        for k in (0..parts.len()).rev() {
            if cells(&parts, &mistake) <= max {
                break;
            }
            parts[k].docs = None;
        }
        if cells(&parts, &mistake) > max {
            mistake = None;
        }
        let mut lists: Vec<Vec<Step>> = (0..parts.len())
            .map(|k| assemble(&parts[k], k, &mistake, three))
            .collect();
        if !team {
            let mut all: Vec<Step> = lists.into_iter().flatten().collect();
            all.push(Step::Code(plan.completion.clone()));
            lists = vec![all];
        }
        add_slips(&mut lists, habits.format_slip_rate, team, budgets, seed);
        Script {
            lists,
            mistake: mistake.map(|(kind, at, _)| (kind, at)),
            negatives: (0..parts.len()).filter(|&k| parts[k].negative).collect(),
        }
    }
}

/// The steps of sub-task `k`.
fn assemble(
    part: &Part,
    k: usize,
    mistake: &Option<(Mistake, usize, Option<Detour>)>,
    three: bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if let Some(docs) = &part.docs {
        steps.push(Step::Code(docs.clone()));
    }
    let here = mistake.as_ref().filter(|(_, at, _)| *at == k);
    let login_mistake = matches!(here, Some((Mistake::WrongUsername, ..)));
    if let Some(login) = &part.login
        && !login_mistake
    {
        steps.push(Step::Code(login.clone()));
    }
    let mut negative = part.negative;
    match here {
        Some((Mistake::PrematureReport, ..)) => {
            steps.push(Step::Report { train: false });
            steps.push(Step::Code(part.body.clone()));
        }
        Some((_, _, Some(detour))) => {
            let mut recovery: Vec<Step> = Vec::new();
            // A failed cell reported as done: the critic sends it back.
            if std::mem::take(&mut negative) && three {
                recovery.push(Step::Report { train: false });
            }
            recovery.extend(detour.recovery.iter().cloned().map(Step::Code));
            steps.push(Step::Mistake {
                wrong: detour.wrong.clone(),
                recovery,
                always_recover: detour.always_recover,
            });
            if detour.then_body {
                steps.push(Step::Code(part.body.clone()));
            }
        }
        _ => steps.push(Step::Code(part.body.clone())),
    }
    if three && negative {
        steps.push(Step::WrongReport);
    }
    // The report closes an executor's list; a single agent's lists are flattened later and
    // their reports dropped.
    steps.push(Step::Report { train: true });
    steps
}

/// Puts a format slip before a seeded fraction of the code and report steps, where the
/// format-retry budget allows one and (for executors) a step is left. Reports are dropped from
/// single-agent lists here too.
fn add_slips(lists: &mut [Vec<Step>], rate: f64, team: bool, budgets: &Budgets, seed: u64) {
    for (l, list) in lists.iter_mut().enumerate() {
        if !team {
            list.retain(|s| !matches!(s, Step::Report { .. }));
        }
        if budgets.max_format_retries == 0 || rate <= 0.0 {
            continue;
        }
        let mut calls: usize = list.iter().map(Step::calls).sum();
        let mut out = Vec::with_capacity(list.len());
        for (i, step) in std::mem::take(list).into_iter().enumerate() {
            let slippable = matches!(
                step,
                Step::Code(_) | Step::Report { .. } | Step::WrongReport
            );
            let room = !team || calls < budgets.max_executor_steps as usize;
            let drawn = unit(derive(seed, &[b"slip", &l.to_le_bytes(), &i.to_le_bytes()])) < rate;
            if slippable && room && drawn {
                out.push(Step::Slip);
                calls += 1;
            }
            out.push(step);
        }
        *list = out;
    }
}

/// Whether and where the episode makes its one mistake, with its cells (none for a premature
/// report). Kinds are tried in a seeded order weighted by the habits' mix, and sub-tasks in a
/// seeded rotation; mistakes that need a probe are only made where it confirms them.
fn choose_mistake(
    inputs: &ScriptInputs<'_>,
    parts: &[Part],
) -> Option<(Mistake, usize, Option<Detour>)> {
    let ScriptInputs {
        options,
        habits,
        system,
        seed,
        ..
    } = *inputs;
    if parts.is_empty() || unit(derive(seed, &[b"mistake"])) >= options.mistake_rate {
        return None;
    }
    let mut kinds: Vec<(Mistake, f64)> = Mistake::ALL
        .into_iter()
        .map(|kind| (kind, habits.mix.weight(kind)))
        .filter(|&(kind, w)| {
            w > 0.0 && (kind != Mistake::PrematureReport || system == SystemKind::ThreeAgent)
        })
        .collect();
    let n = parts.len();
    let start = derive(seed, &[b"where"]) as usize % n;
    let mut draw = 0u64;
    while !kinds.is_empty() {
        // A weighted draw without replacement.
        let total: f64 = kinds.iter().map(|(_, w)| w).sum();
        let mut x = unit(derive(seed, &[b"kind", &draw.to_le_bytes()])) * total;
        draw += 1;
        let pick = kinds
            .iter()
            .position(|(_, w)| {
                x -= w;
                x < 0.0
            })
            .unwrap_or(kinds.len() - 1);
        let (kind, _) = kinds.remove(pick);
        for k in (0..n).map(|i| (start + i) % n) {
            if kind == Mistake::PrematureReport {
                return Some((kind, k, None));
            }
            if let Some(detour) = detour(inputs, parts, kind, k) {
                return Some((kind, k, Some(detour)));
            }
        }
    }
    None
}

/// The cells of a `kind` mistake in sub-task `k`, if it can be made there.
fn detour(inputs: &ScriptInputs<'_>, parts: &[Part], kind: Mistake, k: usize) -> Option<Detour> {
    let ScriptInputs {
        plan,
        source,
        seed,
        supervisor,
        ..
    } = *inputs;
    let part = &parts[k];
    let task = &plan.task_id;
    let mut before: Vec<&str> = plan.subtasks[..k].iter().map(|s| s.code.as_str()).collect();
    match kind {
        Mistake::PrematureReport => None,
        Mistake::WrongParameter => {
            let (wrong, app, api) =
                wrong_parameter(&part.body, |app, api| source.api_parameters(app, api))?;
            let mut recovery = Vec::new();
            let looked_up = part
                .docs
                .as_ref()
                .is_some_and(|d| *d == docs_cell(&app, &api));
            if !looked_up && unit(derive(seed, &[b"recovery-docs"])) < 0.5 {
                recovery.push(docs_cell(&app, &api));
            }
            recovery.push(part.body.clone());
            Some(Detour {
                wrong,
                recovery,
                always_recover: false,
                then_body: false,
            })
        }
        Mistake::WrongUsername => {
            let login = part.login.as_ref()?;
            let outputs: Vec<&str> = plan.subtasks[..k]
                .iter()
                .filter_map(|s| s.output.as_deref())
                .collect();
            let candidates = wrong_usernames(login, supervisor, &usernames_in(&outputs))?;
            let wrong = verified(
                source,
                task,
                &before,
                &candidates,
                Expect::Failure,
                &["401"],
            )?;
            Some(Detour {
                wrong,
                recovery: login_recovery(login),
                always_recover: true,
                then_body: true,
            })
        }
        Mistake::WrongId => {
            let site = IdSite::find(&part.body)?;
            if let Some(login) = &part.login {
                before.push(login);
            }
            let reveal = site.reveal();
            let mut cells = before.clone();
            cells.push(&reveal);
            let probed = source.probe(task, &cells)?;
            let shown = probed.last().filter(|c| !c.changed_state)?;
            let real: i64 = shown.output.trim().parse().ok()?;
            let wrong = verified(
                source,
                task,
                &before,
                &site.guesses(real),
                Expect::Failure,
                &["404", "401"],
            )?;
            Some(Detour {
                wrong,
                recovery: vec![part.body.clone()],
                always_recover: true,
                then_body: false,
            })
        }
        Mistake::EmptySearch => {
            let candidates = empty_searches(&part.body);
            if candidates.is_empty() {
                return None;
            }
            if let Some(login) = &part.login {
                before.push(login);
            }
            let wrong = verified(source, task, &before, &candidates, Expect::Empty, &[])?;
            Some(Detour {
                wrong,
                recovery: vec![part.body.clone()],
                always_recover: true,
                then_body: false,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rung_env::{Split, TaskId};

    use super::*;
    use crate::gold::GoldSubtask;

    /// Knows parameter names but cannot probe, so only wrong parameters and premature reports
    /// are possible.
    struct Params;

    impl GoldSource for Params {
        fn tasks(&self, _split: Split) -> Vec<TaskId> {
            Vec::new()
        }
        fn plan(&self, _task_id: &TaskId) -> Option<Arc<GoldPlan>> {
            None
        }
        fn api_parameters(&self, _app: &str, _api: &str) -> Option<Vec<String>> {
            Some(vec!["access_token".into(), "relationship".into()])
        }
    }

    fn plan() -> GoldPlan {
        let subtask = |code: &str, output: &str| GoldSubtask {
            kind: "k".into(),
            app: "phone".into(),
            instruction: "Find your son.".into(),
            code: code.into(),
            output: Some(output.into()),
        };
        GoldPlan {
            task_id: "abcdef0_1".parse().unwrap(),
            subtasks: vec![
                subtask(
                    "phone_token = apis.phone.login(username=profile[\"phone_number\"], password=\"p\")[\"access_token\"]\nson = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]\nprint(son)",
                    "{\"a\": 1}",
                ),
                subtask("print(son[\"email\"])", "a@b.c"),
            ],
            completion: "apis.supervisor.complete_task()".into(),
            answer: None,
        }
    }

    fn supervisor() -> Supervisor {
        Supervisor {
            first_name: "Ada".into(),
            last_name: "Moss".into(),
            email: "ada.moss@mail.com".into(),
            phone_number: "5550001234".into(),
        }
    }

    struct Setup {
        options: ExpertOptions,
        habits: ExpertHabits,
        budgets: Budgets,
    }

    impl Setup {
        fn new(mistake_rate: f64, docs_rate: f64) -> Self {
            Self {
                options: ExpertOptions {
                    mistake_rate,
                    docs_rate,
                },
                habits: ExpertHabits::none(),
                budgets: Budgets::default(),
            }
        }

        fn script(&self, system: SystemKind, seed: u64) -> Script {
            let plan = plan();
            Script::new(&ScriptInputs {
                plan: &plan,
                source: &Params,
                options: &self.options,
                habits: &self.habits,
                system,
                seed,
                budgets: &self.budgets,
                supervisor: &supervisor(),
            })
        }
    }

    #[test]
    fn gold_code_is_split_into_login_and_body_with_a_report() {
        let script = Setup::new(0.0, 0.0).script(SystemKind::TwoAgent, 1);
        assert_eq!(script.mistake, None);
        let first = &script.lists[0];
        assert_eq!(first.len(), 3);
        assert!(matches!(&first[0], Step::Code(c) if c.starts_with("phone_token = ")));
        assert!(matches!(&first[1], Step::Code(c) if c.starts_with("son = ")));
        assert_eq!(first[2], Step::Report { train: true });
        assert_eq!(
            script.lists[1],
            [
                Step::Code("print(son[\"email\"])".into()),
                Step::Report { train: true }
            ]
        );
        let single = Setup::new(0.0, 0.0).script(SystemKind::Single, 1);
        assert_eq!(single.lists.len(), 1);
        assert!(single.lists[0].iter().all(|s| matches!(s, Step::Code(_))));
        assert_eq!(
            single.lists[0].last(),
            Some(&Step::Code("apis.supervisor.complete_task()".into()))
        );
    }

    #[test]
    fn docs_look_ups_come_first_when_drawn() {
        let script = Setup::new(0.0, 1.0).script(SystemKind::TwoAgent, 1);
        assert_eq!(
            script.lists[0][0],
            Step::Code(
                "print(apis.api_docs.show_api_doc(app_name=\"phone\", api_name=\"search_contacts\"))"
                    .into()
            )
        );
        // A sub-task that calls no app API gets no look-up.
        assert!(matches!(&script.lists[1][0], Step::Code(c) if c.starts_with("print(son")));
    }

    #[test]
    fn every_episode_makes_one_mistake_at_rate_one() {
        let setup = Setup::new(1.0, 0.0);
        for seed in 0..40 {
            let two = setup.script(SystemKind::TwoAgent, seed);
            assert_eq!(
                two.mistake,
                Some((Mistake::WrongParameter, 0)),
                "without probes only the wrong parameter of sub-task 0 is possible"
            );
            match &two.lists[0][1] {
                Step::Mistake {
                    wrong,
                    recovery,
                    always_recover,
                } => {
                    assert!(wrong.contains("relation=\"son\""));
                    let Some(Step::Code(last)) = recovery.last() else {
                        panic!("{recovery:?}")
                    };
                    assert!(last.contains("relationship=\"son\""));
                    assert!(!always_recover, "a succeeding wrong cell is not repeated");
                }
                other => panic!("{other:?}"),
            }
            let three = setup.script(SystemKind::ThreeAgent, seed);
            if let Some((Mistake::PrematureReport, at)) = three.mistake {
                let steps = &three.lists[at];
                let premature = steps
                    .iter()
                    .position(|s| *s == Step::Report { train: false })
                    .unwrap();
                assert!(
                    matches!(steps[premature + 1], Step::Code(_)),
                    "the work goes on after it"
                );
                assert_eq!(steps.last(), Some(&Step::Report { train: true }));
            }
        }
        let kinds: std::collections::BTreeSet<_> = (0..40)
            .filter_map(|seed| setup.script(SystemKind::ThreeAgent, seed).mistake)
            .map(|(kind, _)| kind)
            .collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [Mistake::WrongParameter, Mistake::PrematureReport],
            "both kinds occur in three-agent systems"
        );
        let mut only_premature = Setup::new(1.0, 0.0);
        only_premature.habits.mix = super::super::MistakeMix {
            wrong_parameter: 0.0,
            ..Default::default()
        };
        for seed in 0..10 {
            assert_eq!(
                only_premature.script(SystemKind::TwoAgent, seed).mistake,
                None
            );
        }
        assert_eq!(
            Setup::new(0.0, 0.0)
                .script(SystemKind::ThreeAgent, 3)
                .mistake,
            None
        );
    }

    #[test]
    fn detours_are_fitted_into_the_executor_steps_and_interactions() {
        let mut setup = Setup::new(1.0, 1.0);
        // Sub-task 0 is login, body, report: with docs and a mistake it needs 6 calls.
        setup.budgets.max_executor_steps = 3;
        for seed in 0..20 {
            let script = setup.script(SystemKind::TwoAgent, seed);
            assert_eq!(script.mistake, None, "no room for a mistake");
            for list in &script.lists {
                let calls: usize = list.iter().map(Step::calls).sum();
                assert!(calls <= 3, "{list:?}");
            }
        }
        setup.budgets.max_executor_steps = 12;
        setup.budgets.max_interactions = 4;
        let single = setup.script(SystemKind::Single, 1);
        let cells: usize = single.lists[0].iter().map(Step::cells).sum();
        assert_eq!(cells, 4, "login, body, print and completion: {single:?}");
        assert_eq!(single.mistake, None);
    }

    #[test]
    fn slips_come_before_steps_one_at_a_time_within_budgets() {
        let mut setup = Setup::new(0.0, 0.0);
        setup.habits.format_slip_rate = 1.0;
        let script = setup.script(SystemKind::TwoAgent, 5);
        for list in &script.lists {
            assert!(
                list.windows(2)
                    .all(|w| !(w[0] == Step::Slip && w[1] == Step::Slip))
            );
            for (i, step) in list.iter().enumerate() {
                if *step == Step::Slip {
                    assert!(matches!(list[i + 1], Step::Code(_) | Step::Report { .. }));
                }
            }
            assert_eq!(list[0], Step::Slip);
        }
        setup.budgets.max_executor_steps = 4;
        let tight = setup.script(SystemKind::TwoAgent, 5);
        let calls: usize = tight.lists[0].iter().map(Step::calls).sum();
        assert_eq!(calls, 4, "one slip fits: {:?}", tight.lists[0]);
        setup.budgets.max_format_retries = 0;
        let none = setup.script(SystemKind::Single, 5);
        assert!(!none.lists[0].contains(&Step::Slip));
        setup.habits.format_slip_rate = 0.0;
        setup.budgets.max_format_retries = 2;
        assert!(!setup.script(SystemKind::Single, 5).lists[0].contains(&Step::Slip));
    }

    #[test]
    fn wrong_reports_precede_the_right_one_where_the_critic_may_reject() {
        let mut setup = Setup::new(0.0, 0.0);
        setup.habits.critic_negative_rate = 1.0;
        let three = setup.script(SystemKind::ThreeAgent, 2);
        assert_eq!(three.negatives, [0, 1]);
        for list in &three.lists {
            let n = list.len();
            assert_eq!(
                list[n - 2..],
                [Step::WrongReport, Step::Report { train: true }]
            );
        }
        let two = setup.script(SystemKind::TwoAgent, 2);
        assert!(two.negatives.is_empty(), "no critic, no negatives");
        setup.budgets.max_critic_retries = 0;
        assert!(setup.script(SystemKind::ThreeAgent, 2).negatives.is_empty());
        // A failed cell reported as done: the wrong parameter's error is reported first.
        setup.budgets.max_critic_retries = 1;
        setup.options.mistake_rate = 1.0;
        setup.habits.mix.premature_report = 0.0;
        let failed = setup.script(SystemKind::ThreeAgent, 2);
        let Step::Mistake { recovery, .. } = &failed.lists[0][1] else {
            panic!("{:?}", failed.lists[0])
        };
        assert_eq!(recovery[0], Step::Report { train: false });
        assert!(!failed.lists[0].contains(&Step::WrongReport));
    }

    #[test]
    fn scripts_are_deterministic_by_seed() {
        let mut setup = Setup::new(0.5, 0.5);
        setup.habits = ExpertHabits::default();
        for seed in 0..20 {
            assert_eq!(
                setup.script(SystemKind::ThreeAgent, seed),
                setup.script(SystemKind::ThreeAgent, seed)
            );
        }
        let differ = (0..20).any(|seed| {
            setup.script(SystemKind::ThreeAgent, seed)
                != setup.script(SystemKind::ThreeAgent, seed + 100)
        });
        assert!(differ);
    }
}
