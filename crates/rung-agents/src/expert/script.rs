//! What an expert will write in one episode: the cells of every sub-task, with the seeded
//! choices (documentation look-ups, one deliberate mistake) made once, up front.

use rung_trajectory::SystemKind;

use super::ExpertOptions;
use super::cells::{docs_cell, main_api, split_login, wrong_parameter};
use crate::gold::{GoldPlan, GoldSource};
use crate::seed::{derive, unit};

/// One thing the expert writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A code cell worth imitating.
    Code(String),
    /// A cell with a wrong parameter (not for training), then the cells that recover from it;
    /// the recovery is skipped if the wrong cell unexpectedly succeeded.
    Mistake {
        /// The wrong cell.
        wrong: String,
        /// What follows its error: perhaps a docs look-up, then the corrected cell.
        recovery: Vec<String>,
    },
    /// The end-of-sub-task report, derived from the last output. `train` is false for a
    /// deliberately premature report that a critic is expected to reject.
    Report {
        /// Whether it is worth imitating.
        train: bool,
    },
}

/// The kind of mistake an episode contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mistake {
    /// A wrong keyword argument, its error, and the corrected call.
    WrongParameter,
    /// A premature report the critic rejects, then the rest of the sub-task.
    PrematureReport,
}

/// The expert's plan for one episode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Script {
    /// Steps of each gold sub-task; executor scripts end with a report, single-agent ones not.
    pub subtasks: Vec<Vec<Step>>,
    /// The mistake made, if any, and in which sub-task.
    pub mistake: Option<(Mistake, usize)>,
}

impl Script {
    /// Decides the episode's steps from its seed. Every role computes the same script.
    pub fn new(
        plan: &GoldPlan,
        source: &dyn GoldSource,
        options: &ExpertOptions,
        system: SystemKind,
        seed: u64,
    ) -> Self {
        let wrong: Vec<Option<(String, String, String)>> = plan
            .subtasks
            .iter()
            .map(|s| {
                let (_, body) = split_login(&s.code);
                wrong_parameter(&body, |app, api| source.api_parameters(app, api))
            })
            .collect();
        let mistake = choose_mistake(&wrong, options, system, seed);
        let subtasks = plan
            .subtasks
            .iter()
            .enumerate()
            .map(|(k, subtask)| {
                let (login, body) = split_login(&subtask.code);
                let docs = unit(derive(seed, &[b"docs", &k.to_le_bytes()])) < options.docs_rate;
                let main = main_api(&body);
                let mut steps = Vec::new();
                let here = mistake.filter(|(_, at)| *at == k).map(|(m, _)| m);
                let docs_first =
                    docs || (here == Some(Mistake::PrematureReport) && login.is_none());
                if docs_first && let Some((app, api)) = &main {
                    steps.push(Step::Code(docs_cell(app, api)));
                }
                if let Some(login) = login {
                    steps.push(Step::Code(login));
                }
                match (here, &wrong[k]) {
                    (Some(Mistake::WrongParameter), Some((wrong, app, api))) => {
                        let mut recovery = Vec::new();
                        let looked_up =
                            docs_first && main.as_ref() == Some(&(app.clone(), api.clone()));
                        if !looked_up && unit(derive(seed, &[b"recovery-docs"])) < 0.5 {
                            recovery.push(docs_cell(app, api));
                        }
                        recovery.push(body);
                        steps.push(Step::Mistake {
                            wrong: wrong.clone(),
                            recovery,
                        });
                    }
                    (Some(Mistake::PrematureReport), _) => {
                        steps.push(Step::Report { train: false });
                        steps.push(Step::Code(body));
                    }
                    _ => steps.push(Step::Code(body)),
                }
                if system != SystemKind::Single {
                    steps.push(Step::Report { train: true });
                }
                steps
            })
            .collect();
        Script { subtasks, mistake }
    }
}

/// Whether and where the episode makes its one mistake.
fn choose_mistake(
    wrong: &[Option<(String, String, String)>],
    options: &ExpertOptions,
    system: SystemKind,
    seed: u64,
) -> Option<(Mistake, usize)> {
    if wrong.is_empty() || unit(derive(seed, &[b"mistake"])) >= options.mistake_rate {
        return None;
    }
    let mutable: Vec<usize> = (0..wrong.len()).filter(|&k| wrong[k].is_some()).collect();
    let premature = system == SystemKind::ThreeAgent;
    let kind = match (mutable.is_empty(), premature) {
        (true, false) => return None,
        (true, true) => Mistake::PrematureReport,
        (false, false) => Mistake::WrongParameter,
        (false, true) if unit(derive(seed, &[b"kind"])) < 0.5 => Mistake::WrongParameter,
        (false, true) => Mistake::PrematureReport,
    };
    let pick = derive(seed, &[b"where"]) as usize;
    let at = match kind {
        Mistake::WrongParameter => mutable[pick % mutable.len()],
        Mistake::PrematureReport => pick % wrong.len(),
    };
    Some((kind, at))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rung_env::{Split, TaskId};

    use super::*;
    use crate::gold::GoldSubtask;

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
        let subtask = |code: &str| GoldSubtask {
            kind: "k".into(),
            app: "phone".into(),
            instruction: "Find your son.".into(),
            code: code.into(),
            output: None,
        };
        GoldPlan {
            task_id: "abcdef0_1".parse().unwrap(),
            subtasks: vec![
                subtask(
                    "phone_token = apis.phone.login(username=\"1\", password=\"p\")[\"access_token\"]\nson = apis.phone.search_contacts(access_token=phone_token, relationship=\"son\")[0]\nprint(son)",
                ),
                subtask("print(son[\"email\"])"),
            ],
            completion: "apis.supervisor.complete_task()".into(),
            answer: None,
        }
    }

    fn options(mistake_rate: f64, docs_rate: f64) -> ExpertOptions {
        ExpertOptions {
            mistake_rate,
            docs_rate,
        }
    }

    #[test]
    fn gold_code_is_split_into_login_and_body_with_a_report() {
        let script = Script::new(
            &plan(),
            &Params,
            &options(0.0, 0.0),
            SystemKind::TwoAgent,
            1,
        );
        assert_eq!(script.mistake, None);
        let first = &script.subtasks[0];
        assert_eq!(first.len(), 3);
        assert!(matches!(&first[0], Step::Code(c) if c.starts_with("phone_token = ")));
        assert!(matches!(&first[1], Step::Code(c) if c.starts_with("son = ")));
        assert_eq!(first[2], Step::Report { train: true });
        assert_eq!(
            script.subtasks[1],
            [
                Step::Code("print(son[\"email\"])".into()),
                Step::Report { train: true }
            ]
        );
        let single = Script::new(&plan(), &Params, &options(0.0, 0.0), SystemKind::Single, 1);
        assert!(
            single
                .subtasks
                .iter()
                .flatten()
                .all(|s| matches!(s, Step::Code(_)))
        );
    }

    #[test]
    fn docs_look_ups_come_first_when_drawn() {
        let script = Script::new(
            &plan(),
            &Params,
            &options(0.0, 1.0),
            SystemKind::TwoAgent,
            1,
        );
        assert_eq!(
            script.subtasks[0][0],
            Step::Code(
                "print(apis.api_docs.show_api_doc(app_name=\"phone\", api_name=\"search_contacts\"))"
                    .into()
            )
        );
        // A sub-task that calls no app API gets no look-up.
        assert!(matches!(&script.subtasks[1][0], Step::Code(c) if c.starts_with("print(son")));
    }

    #[test]
    fn every_episode_makes_one_mistake_at_rate_one() {
        for seed in 0..40 {
            let two = Script::new(
                &plan(),
                &Params,
                &options(1.0, 0.0),
                SystemKind::TwoAgent,
                seed,
            );
            assert_eq!(
                two.mistake,
                Some((Mistake::WrongParameter, 0)),
                "only sub-task 0 calls an API"
            );
            match &two.subtasks[0][1] {
                Step::Mistake { wrong, recovery } => {
                    assert!(wrong.contains("relation=\"son\""));
                    assert!(recovery.last().unwrap().contains("relationship=\"son\""));
                }
                other => panic!("{other:?}"),
            }
            let three = Script::new(
                &plan(),
                &Params,
                &options(1.0, 0.0),
                SystemKind::ThreeAgent,
                seed,
            );
            if let Some((Mistake::PrematureReport, at)) = three.mistake {
                let steps = &three.subtasks[at];
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
            .filter_map(|seed| {
                Script::new(
                    &plan(),
                    &Params,
                    &options(1.0, 0.0),
                    SystemKind::ThreeAgent,
                    seed,
                )
                .mistake
                .map(|(kind, _)| format!("{kind:?}"))
            })
            .collect();
        assert_eq!(
            kinds.len(),
            2,
            "both kinds occur in three-agent systems: {kinds:?}"
        );
        let none = Script::new(
            &plan(),
            &Params,
            &options(0.0, 0.0),
            SystemKind::ThreeAgent,
            3,
        );
        assert_eq!(none.mistake, None);
    }
}
