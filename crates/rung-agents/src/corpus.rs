//! The world-pretraining corpus: world walks rendered as executor conversations.
//!
//! Every role model of an experiment starts from a base model pretrained on this corpus, so
//! the syntax of the apps (logins, list and show calls, parameters copied from one output into
//! the next call, documentation look-ups, real error messages) is learned once per size rather
//! than by each of dozens of role models from a few thousand task trajectories.
//!
//! Each run of calls in one app of a walk ([`rung_world::walks`]) becomes one executor
//! conversation built with the same prompt functions inference uses ([`crate::prompts`]): the
//! sub-task header, the supervisor line, the results of the walk's earlier sub-tasks, each code
//! cell and its real output, and the `DONE:` report. Variables persist along a walk as they do along a task, so later
//! conversations read earlier results. A cell that failed keeps its output but is not
//! supervised (the walk guessed an id; the model should learn what the error says, not the
//! guess) and gets no report.
//!
//! Walks come from the worlds of other suite seeds than the evaluated one, whose people have
//! emails at another domain ([`CORPUS_EMAIL_DOMAIN`]), and any walk that still mentions a person
//! of an evaluated world (email or phone number) is dropped, so no evaluated person or task
//! reaches pretraining. The corpus holds no task trajectory at all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rung_env::{Evaluation, Supervisor, TaskId, TaskInfo};
use rung_trajectory::{
    Action, Cost, Episode, EpisodeEnd, Message, Role, SCHEMA_VERSION, SystemConfig, SystemKind,
    Turn,
};
use rung_world::population;
use rung_world::tasks::world_seed;
use rung_world::walks::{Walk, WalkOptions, WalkStep, walk, walkers};
use serde::{Deserialize, Serialize};

use crate::AgentError;
use crate::expert::report_from;
use crate::prompts::{self, SubtaskSpec};

/// The email domain of the corpus worlds' people. First and last names recur across worlds,
/// so with the evaluated worlds' domain most walks would show some evaluated person's email
/// (and be dropped, biasing the corpus against outputs that list people); with another domain
/// no email can coincide, and only a rare phone-number clash drops a walk.
pub const CORPUS_EMAIL_DOMAIN: &str = "post.com";

/// Model name recorded on corpus episodes.
pub const CORPUS_MODEL: &str = "world-walk";

/// Which worlds the corpus walks, and how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusOptions {
    /// Suite seeds whose worlds are walked (never the evaluated suite's seed).
    pub suite_seeds: Vec<u64>,
    /// Worlds per suite seed (as many as a suite builds).
    #[serde(default = "default_worlds")]
    pub worlds_per_seed: u64,
    /// Walks per world, over its people in turn.
    pub walks_per_world: usize,
    /// How each walk is drawn.
    #[serde(default)]
    pub walk: WalkOptions,
    /// Seed of the walks' choices.
    #[serde(default)]
    pub seed: u64,
}

fn default_worlds() -> u64 {
    rung_world::SuiteOptions::default().worlds
}

/// What [`write_corpus`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CorpusReport {
    /// Walks kept.
    pub walks: usize,
    /// Walks dropped because they mention a person of an evaluated world.
    pub dropped: usize,
    /// Executor conversations (one per run of calls in one app).
    pub conversations: usize,
    /// Code cells, look-ups included.
    pub cells: usize,
    /// Cells that failed (unsupervised).
    pub failed_cells: usize,
}

/// The emails and phone numbers of every person in the worlds of suite `suite_seed`.
pub fn people_of_suite(suite_seed: u64) -> BTreeSet<String> {
    let worlds = rung_world::SuiteOptions::default().worlds;
    (0..worlds)
        .flat_map(|k| {
            let (db, _) = population::generate(world_seed(suite_seed, k));
            db.people
                .iter()
                .flat_map(|p| [p.email.clone(), p.phone_number.clone()])
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Generates the corpus and writes it (atomically) to `path` as trajectory JSONL, keeping away
/// from every person of the worlds of `evaluated_suite_seed`.
pub fn write_corpus(
    options: &CorpusOptions,
    evaluated_suite_seed: u64,
    path: &Path,
) -> Result<CorpusReport, AgentError> {
    if options.suite_seeds.contains(&evaluated_suite_seed) {
        return Err(AgentError::Setup(format!(
            "the pretraining corpus walks suite seed {evaluated_suite_seed}, the seed of the \
             evaluated tasks' worlds; choose other `suite_seeds`"
        )));
    }
    let excluded = people_of_suite(evaluated_suite_seed);
    let mut report = CorpusReport::default();
    let mut episodes = Vec::new();
    for &suite in &options.suite_seeds {
        for k in 0..options.worlds_per_seed {
            let seed = world_seed(suite, k);
            let start = population::generate_with_domain(seed, CORPUS_EMAIL_DOMAIN);
            let people = walkers(&start.0);
            if people.is_empty() {
                continue;
            }
            for i in 0..options.walks_per_world {
                let person = people[i % people.len()];
                let walk_seed = options
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(seed.wrapping_mul(1_000_033))
                    .wrapping_add(i as u64);
                let walk = walk(seed, &start, person, walk_seed, &options.walk);
                if mentions(&walk, &excluded) {
                    report.dropped += 1;
                    continue;
                }
                let p = start.0.person(person);
                let supervisor = Supervisor {
                    first_name: p.first_name.clone(),
                    last_name: p.last_name.clone(),
                    email: p.email.clone(),
                    phone_number: p.phone_number.clone(),
                };
                if excluded.contains(&supervisor.email)
                    || excluded.contains(&supervisor.phone_number)
                {
                    report.dropped += 1;
                    continue;
                }
                let id = corpus_task_id(episodes.len());
                let episode = render(&walk, &supervisor, id, walk_seed);
                report.walks += 1;
                report.cells += walk.steps.len();
                report.failed_cells += walk.steps.iter().filter(|s| s.failed()).count();
                report.conversations += conversations(&walk).len();
                episodes.push(episode);
            }
        }
    }
    rung_trajectory::write_file(path, &episodes)?;
    Ok(report)
}

/// Whether any text of `walk` contains one of `people`'s emails or phone numbers.
fn mentions(walk: &Walk, people: &BTreeSet<String>) -> bool {
    walk.steps.iter().any(|step| {
        [&step.code, &step.output, &step.instruction]
            .iter()
            .any(|text| people.iter().any(|id| text.contains(id.as_str())))
    })
}

/// A task id for corpus episode `n`: scenario ids of the form `f<6 hex digits>` with variant
/// 9, which no suite generates (variants are 1 to 3).
fn corpus_task_id(n: usize) -> TaskId {
    TaskId::new(&format!("f{:06x}", n % 0x100_0000), 9).expect("a well-formed id")
}

/// Most calls in one executor conversation: long enough that the supervised cells outweigh the
/// system prompt, short enough to stay one sub-task.
const CELLS_PER_CONVERSATION: usize = 4;

/// The walk's calls grouped into sub-tasks: runs of consecutive calls in one app, at most
/// [`CELLS_PER_CONVERSATION`] each.
pub fn conversations(walk: &Walk) -> Vec<&[WalkStep]> {
    let mut groups = Vec::new();
    let mut start = 0;
    for i in 1..=walk.steps.len() {
        let cut = i == walk.steps.len()
            || walk.steps[i].app != walk.steps[start].app
            || i - start == CELLS_PER_CONVERSATION;
        if cut {
            groups.push(&walk.steps[start..i]);
            start = i;
        }
    }
    groups
}

/// The instructions of `steps` as one sub-task: `Do a. Then do b.`
fn joined_instruction(steps: &[WalkStep]) -> String {
    let mut text = String::new();
    for (i, step) in steps.iter().enumerate() {
        if i == 0 {
            text.push_str(&step.instruction);
            continue;
        }
        let mut chars = step.instruction.chars();
        let first = chars.next().map(|c| c.to_lowercase().collect::<String>());
        text.push_str(" Then ");
        text.push_str(&first.unwrap_or_default());
        text.push_str(chars.as_str());
    }
    text
}

/// `walk` as one episode of executor conversations, one per group of calls
/// ([`conversations`]): the sub-task header, each cell and its real output, and the report of
/// the last cell when it succeeded.
pub fn render(walk: &Walk, supervisor: &Supervisor, task_id: TaskId, seed: u64) -> Episode {
    let mut turns = Vec::new();
    let mut earlier: Vec<String> = Vec::new();
    for (k, steps) in conversations(walk).into_iter().enumerate() {
        let instruction = joined_instruction(steps);
        let info = TaskInfo {
            task_id: task_id.clone(),
            instruction: instruction.clone(),
            supervisor: supervisor.clone(),
            datetime: walk.now.clone(),
        };
        let spec = SubtaskSpec {
            app: steps[0].app.clone(),
            instruction,
        };
        let mut messages = prompts::executor_start(&info, &spec, &earlier);
        for step in steps {
            messages.push(Message::assistant(
                prompts::code_action(&step.code),
                !step.failed(),
            ));
            turns.push(turn(
                k,
                messages.clone(),
                Action::Code {
                    code: step.code.clone(),
                },
                Some(step),
            ));
            messages.push(prompts::observation(&step.output));
        }
        let last = steps.last().expect("groups are not empty");
        if last.failed() {
            continue;
        }
        let result = report_from(&last.code, &last.output);
        messages.push(Message::assistant(prompts::report(&result), true));
        turns.push(turn(
            k,
            messages,
            Action::Report {
                result: result.clone(),
            },
            None,
        ));
        earlier.push(result);
    }
    let cost = Cost {
        interactions: walk.steps.len() as u32,
        ..Cost::default()
    };
    Episode {
        schema_version: SCHEMA_VERSION,
        task_id,
        split: None,
        system: SystemConfig {
            kind: SystemKind::ThreeAgent,
            models: BTreeMap::from([(Role::Executor, CORPUS_MODEL.to_owned())]),
        },
        seed,
        instruction: format!(
            "World walk of {} {} in world {}",
            supervisor.first_name, supervisor.last_name, walk.world_seed
        ),
        turns,
        evaluation: Evaluation {
            success: true,
            difficulty: 1,
            num_tests: 0,
            passes: Vec::new(),
            failures: Vec::new(),
        },
        cost,
        end: EpisodeEnd::Completed,
    }
}

fn turn(
    subtask: usize,
    messages: Vec<Message>,
    action: Action,
    step: Option<&rung_world::walks::WalkStep>,
) -> Turn {
    Turn {
        role: Role::Executor,
        subtask: Some(subtask),
        messages,
        action,
        code: step.map(|s| s.code.clone()),
        observation: step.map(|s| s.output.clone()),
        prompt_tokens: 0,
        generated_tokens: 0,
        flops: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rung-corpus-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn options() -> CorpusOptions {
        CorpusOptions {
            suite_seeds: vec![11],
            worlds_per_seed: 2,
            walks_per_world: 6,
            walk: WalkOptions::default(),
            seed: 3,
        }
    }

    #[test]
    fn the_corpus_never_walks_the_evaluated_suite() {
        let dir = scratch("refuse");
        let err = write_corpus(
            &CorpusOptions {
                suite_seeds: vec![0, 11],
                ..options()
            },
            0,
            &dir.join("c.jsonl"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("suite seed 0"), "{err}");
    }

    #[test]
    fn corpus_episodes_are_executor_conversations_with_real_outputs() {
        let path = scratch("render").join("c.jsonl");
        let report = write_corpus(&options(), 0, &path).unwrap();
        let episodes = rung_trajectory::read_file(&path).unwrap();
        assert_eq!(episodes.len(), report.walks);
        assert_eq!(report.walks + report.dropped, 12);
        assert!(report.dropped <= 1, "emails cannot clash: {report:?}");
        for episode in &episodes {
            assert!(episode.turns.iter().all(|t| t.role == Role::Executor));
            let first = &episode.turns[0].messages;
            assert_eq!(first[0].content, prompts::executor_system());
            assert!(first[1].content.starts_with("Sub-task for "));
            // Reports follow successful cells and carry what later calls read.
            for pair in episode.turns.windows(2) {
                if let Action::Report { result } = &pair[1].action {
                    assert!(!result.starts_with("failed"), "{result}");
                    assert_eq!(pair[0].subtask, pair[1].subtask);
                }
            }
            // A conversation holds up to four cells of one app, each followed by its output.
            let last = episode.turns.last().unwrap();
            let cells = last
                .messages
                .iter()
                .filter(|m| m.content.starts_with("```python"))
                .count();
            assert!((1..=4).contains(&cells), "{cells} cells");
        }
        let failed: usize = episodes
            .iter()
            .flat_map(|e| &e.turns)
            .filter(|t| t.code.is_some())
            .filter(|t| !t.messages.last().unwrap().train)
            .count();
        assert_eq!(failed, report.failed_cells);
    }

    #[test]
    fn no_evaluated_person_reaches_the_corpus() {
        let path = scratch("disjoint").join("c.jsonl");
        write_corpus(&options(), 0, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let people = people_of_suite(0);
        assert!(people.len() > 100, "{} identifiers", people.len());
        for id in &people {
            assert!(
                !text.contains(id.as_str()),
                "{id} of an evaluated world is in the corpus"
            );
        }
        let suite = rung_world::Suite::generate(rung_world::SuiteOptions::default());
        for task in &suite.tasks {
            assert!(!text.contains(task.task_id.as_str()), "{}", task.task_id);
        }
    }
}
