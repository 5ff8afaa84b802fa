//! Generates the whole task suite deterministically from a seed.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rung_env::{Split, Supervisor, TaskId};

use super::Task;
use super::builder::Builder;
use super::templates::{Template, challenge_templates, normal_templates};
use crate::db::{Db, Id};
use crate::population;

/// How large a suite to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteOptions {
    /// Master seed: the same seed gives the same suite, byte for byte.
    pub seed: u64,
    /// Number of distinct worlds the tasks are spread over.
    pub worlds: u64,
    /// Scenarios per normal template in train, dev and test_normal.
    pub train_scenarios: u32,
    /// See `train_scenarios`.
    pub dev_scenarios: u32,
    /// See `train_scenarios`.
    pub test_normal_scenarios: u32,
    /// Scenarios per challenge template (all in test_challenge).
    pub challenge_scenarios: u32,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            worlds: 6,
            train_scenarios: 5,
            dev_scenarios: 1,
            test_normal_scenarios: 2,
            challenge_scenarios: 4,
        }
    }
}

/// The population seed of world `k` of the suite with master seed `suite_seed`: suites of
/// different seeds never share a world (for fewer than a million worlds each), which is what
/// keeps a pretraining corpus from other suite seeds away from the evaluated people.
pub fn world_seed(suite_seed: u64, k: u64) -> u64 {
    suite_seed.wrapping_mul(1_000_003).wrapping_add(k)
}

/// Number of variants of every scenario, as in AppWorld.
pub const VARIANTS: u32 = 3;

/// All tasks plus the worlds they run in.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Tasks in split order, then template order.
    pub tasks: Vec<Task>,
    worlds: BTreeMap<u64, Arc<(Db, String)>>,
    by_id: BTreeMap<TaskId, usize>,
}

impl Suite {
    /// Builds the suite.
    ///
    /// # Panics
    /// When a template cannot be instantiated in any world (a bug in the template, caught by the
    /// suite's tests).
    pub fn generate(options: SuiteOptions) -> Self {
        let worlds: BTreeMap<u64, Arc<(Db, String)>> = (0..options.worlds)
            .map(|k| {
                let seed = world_seed(options.seed, k);
                (seed, Arc::new(population::generate(seed)))
            })
            .collect();
        let mut tasks = Vec::new();
        let normal = normal_templates();
        let per_split = [
            (Split::Train, options.train_scenarios, 0),
            (Split::Dev, options.dev_scenarios, options.train_scenarios),
            (
                Split::TestNormal,
                options.test_normal_scenarios,
                options.train_scenarios + options.dev_scenarios,
            ),
        ];
        for (split, count, offset) in per_split {
            for template in &normal {
                for scenario in 0..count {
                    tasks.extend(scenario_tasks(
                        template,
                        offset + scenario,
                        split,
                        &worlds,
                        options.seed,
                    ));
                }
            }
        }
        for template in &challenge_templates() {
            for scenario in 0..options.challenge_scenarios {
                tasks.extend(scenario_tasks(
                    template,
                    scenario,
                    Split::TestChallenge,
                    &worlds,
                    options.seed,
                ));
            }
        }
        let by_id = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.task_id.clone(), i))
            .collect();
        Suite {
            tasks,
            worlds,
            by_id,
        }
    }

    /// The task with this id.
    pub fn task(&self, id: &TaskId) -> Option<&Task> {
        self.by_id.get(id).map(|&i| &self.tasks[i])
    }

    /// Tasks of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Task> {
        self.tasks.iter().filter(move |t| t.split == split)
    }

    /// The start state and clock of the world a task runs in.
    pub fn world_of(&self, task: &Task) -> Arc<(Db, String)> {
        Arc::clone(&self.worlds[&task.world_seed])
    }
}

fn mix(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The three variants of one scenario; the scenario's difficulty is that of its hardest variant.
fn scenario_tasks(
    template: &Template,
    scenario: u32,
    split: Split,
    worlds: &BTreeMap<u64, Arc<(Db, String)>>,
    seed: u64,
) -> Vec<Task> {
    let scenario_seed = mix(&[
        template.name.as_bytes(),
        &scenario.to_le_bytes(),
        &seed.to_le_bytes(),
    ]);
    let scenario_id = format!("{:07x}", scenario_seed & 0x0fff_ffff);
    let world_seeds: Vec<u64> = worlds.keys().copied().collect();
    let mut tasks: Vec<Task> = (1..=VARIANTS)
        .map(|variant| {
            let mut rng = ChaCha8Rng::seed_from_u64(scenario_seed ^ u64::from(variant));
            for _attempt in 0..200 {
                let world_seed = *world_seeds.choose(&mut rng).expect("at least one world");
                let world = &worlds[&world_seed];
                let (db, now) = (&world.0, world.1.as_str());
                let me: Id = rng.random_range(1..=db.people.len() as Id);
                let mut builder = Builder::new(db, now, me, variant, &mut rng);
                let Some(instruction) = (template.build)(&mut builder) else {
                    continue;
                };
                let task_id = TaskId::new(&scenario_id, variant).expect("7-hex scenario ids");
                return make_task(
                    task_id,
                    split,
                    template,
                    world_seed,
                    now,
                    db,
                    me,
                    instruction,
                    builder,
                );
            }
            panic!(
                "template {} found no world state to instantiate scenario {scenario}",
                template.name
            )
        })
        .collect();
    let difficulty = tasks.iter().map(|t| t.difficulty).max().unwrap_or(1);
    for task in &mut tasks {
        task.difficulty = difficulty;
    }
    tasks
}

#[allow(clippy::too_many_arguments)]
fn make_task(
    task_id: TaskId,
    split: Split,
    template: &Template,
    world_seed: u64,
    now: &str,
    db: &Db,
    me: Id,
    instruction: String,
    builder: Builder<'_>,
) -> Task {
    let person = db.person(me);
    let completion = match &builder.answer_var {
        Some(var) => format!("apis.supervisor.complete_task(answer={var})"),
        None => "apis.supervisor.complete_task()".to_owned(),
    };
    let plan = builder.plan;
    let apps = {
        let mut apps: Vec<&str> = plan.iter().map(|s| s.app.as_str()).collect();
        apps.sort_unstable();
        apps.dedup();
        apps.len()
    };
    let difficulty = match (plan.len(), apps) {
        (0..=2, 1) => 1,
        (0..=3, _) => 2,
        _ => 3,
    };
    Task {
        task_id,
        split,
        template: template.name.to_owned(),
        difficulty,
        world_seed,
        datetime: now.to_owned(),
        supervisor: Supervisor {
            first_name: person.first_name.clone(),
            last_name: person.last_name.clone(),
            email: person.email.clone(),
            phone_number: person.phone_number.clone(),
        },
        supervisor_id: me,
        instruction,
        plan,
        completion,
        answer: builder.answer,
    }
}

use rand::Rng as _;
