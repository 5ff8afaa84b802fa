//! `rung curriculum show` (the per-epoch table of a ProST curriculum over a trajectory file)
//! and `rung data stats` (a summary of a trajectory file).
//!
//! The tables themselves are library functions (`rung_curriculum::curriculum_table`,
//! `rung_segment::data_stats`); this module parses the options and loads the data.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use rung_curriculum::{
    ByteRenderer, ChatRenderer, Curriculum, Dataset, Growth, Overflow, SampleOptions, Schedule,
    Tokens, Unsupervised, curriculum_table, role_name,
};
use rung_segment::{GoldPlans, data_stats};
use rung_trajectory::{Message, Role};

/// Curricula of progressive sub-task training (ProST).
#[derive(Debug, Subcommand)]
pub enum CurriculumCommand {
    /// Print what each epoch of a curriculum supervises on a trajectory file.
    ///
    /// Trajectories are split into sub-tasks (orchestrator delegations for teams; the gold
    /// plan, or the app-switch heuristic, for the single agent). For every epoch the table
    /// shows the scheduled sub-tasks, the samples of all roles with their supervised and
    /// context tokens, how context-length handling shortened or dropped samples, the sub-tasks
    /// each role has supervised tokens in, and per sub-task position (#1, #2, …) how many
    /// trajectories have it scheduled. Without --tokenizer, tokens are bytes of the ChatML
    /// text (an upper bound of a byte-level BPE's count).
    Show(ShowArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleName {
    /// Epoch e supervises the first k(e) sub-tasks.
    Prost,
    /// Every sub-task every epoch (standard SFT).
    All,
    /// k(e) sub-tasks chosen at random (seeded).
    Random,
    /// The last k(e) sub-tasks.
    Reverse,
    /// Easy tasks first (by difficulty level), all sub-tasks.
    Difficulty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GrowthName {
    /// k(e) = min(n, start + step·(e−1)).
    Linear,
    /// k(e) = min(n, start·factor^(e−1)).
    Exponential,
    /// k(e) = min(n, ⌈n·e / growth-epochs⌉).
    Proportional,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UnsupervisedName {
    /// Cut each conversation after its last supervised turn.
    Truncate,
    /// Keep unsupervised turns as zero-weight context.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OverflowName {
    /// Drop a conversation that does not fit.
    Drop,
    /// Split it into several samples.
    Split,
}

/// Where gold plans for single-agent segmentation come from.
#[derive(Debug, Args)]
pub struct GoldArgs {
    /// Gold plans from a task file written by `rung world export` (for example
    /// datasets/world/train.jsonl); repeat for several. Default: the embedded world's suite.
    #[arg(long = "tasks")]
    tasks: Vec<PathBuf>,
    /// Seed of the embedded world's suite whose gold plans are used when no --tasks is given
    /// (0: the suite of `rung world` and `rung data gen`).
    #[arg(long, default_value_t = 0)]
    world_seed: u64,
    /// Use no gold plans: single-agent trajectories are cut at app switches and logins.
    #[arg(long, conflicts_with = "tasks")]
    no_gold: bool,
}

impl GoldArgs {
    fn plans(&self) -> Result<GoldPlans> {
        if self.no_gold {
            return Ok(GoldPlans::new());
        }
        if self.tasks.is_empty() {
            return Ok(GoldPlans::embedded(self.world_seed));
        }
        let mut plans = GoldPlans::new();
        for path in &self.tasks {
            plans.extend(GoldPlans::read_jsonl(path)?.into_plans());
        }
        Ok(plans)
    }
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Trajectory file (JSON Lines, as `rung data gen` writes).
    #[arg(long)]
    data: PathBuf,
    /// Schedule.
    #[arg(long, value_enum, default_value_t = ScheduleName::Prost)]
    schedule: ScheduleName,
    /// Epochs to show.
    #[arg(long, default_value_t = 6)]
    epochs: usize,
    /// How k(e), the number of supervised sub-tasks, grows (prost, random, reverse).
    #[arg(long, value_enum, default_value_t = GrowthName::Linear)]
    growth: GrowthName,
    /// Sub-tasks in epoch 1 (linear, exponential).
    #[arg(long, default_value_t = 1)]
    start: usize,
    /// New sub-tasks per epoch (linear).
    #[arg(long, default_value_t = 1)]
    step: usize,
    /// Growth factor per epoch (exponential).
    #[arg(long, default_value_t = 2)]
    factor: usize,
    /// The epoch by which all sub-tasks are in (proportional); default --epochs.
    #[arg(long)]
    growth_epochs: Option<usize>,
    /// Seed of the random schedule.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random schedule: draw a fresh set every epoch instead of growing one random order.
    #[arg(long)]
    resample: bool,
    /// Epochs per difficulty level (difficulty).
    #[arg(long, default_value_t = 1)]
    epochs_per_level: usize,
    /// What happens to unsupervised sub-tasks.
    #[arg(long, value_enum, default_value_t = UnsupervisedName::Truncate)]
    unsupervised: UnsupervisedName,
    /// The curriculum as JSON (`{"schedule": {"kind": "prost", ...}, "unsupervised": ...}`),
    /// as in an experiment config; overrides the schedule options above.
    #[arg(long)]
    curriculum: Option<String>,
    /// Roles to count (single, orchestrator, executor, critic); repeatable. Default: all in
    /// the data.
    #[arg(long = "role", value_parser = parse_role)]
    roles: Vec<Role>,
    /// Context length in tokens: longer samples lose their oldest unsupervised turns, then
    /// --overflow decides.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// What to do with a conversation that cannot fit --max-tokens.
    #[arg(long, value_enum, default_value_t = OverflowName::Drop)]
    overflow: OverflowName,
    /// A tokenizer.json to count real tokens with rung-model's ChatML rendering.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    #[command(flatten)]
    gold: GoldArgs,
}

/// `rung data stats FILE`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Trajectory file (JSON Lines).
    file: PathBuf,
    #[command(flatten)]
    gold: GoldArgs,
}

fn parse_role(text: &str) -> Result<Role, String> {
    [
        Role::Single,
        Role::Orchestrator,
        Role::Executor,
        Role::Critic,
    ]
    .into_iter()
    .find(|r| r.name() == text)
    .ok_or_else(|| {
        format!("unknown role `{text}`: expected single, orchestrator, executor or critic")
    })
}

impl ShowArgs {
    fn curriculum(&self) -> Result<Curriculum> {
        if let Some(json) = &self.curriculum {
            let curriculum: Curriculum =
                serde_json::from_str(json).context("--curriculum is not a valid curriculum")?;
            return Ok(curriculum);
        }
        let growth = match self.growth {
            GrowthName::Linear => Growth::Linear {
                start: self.start,
                step: self.step,
            },
            GrowthName::Exponential => Growth::Exponential {
                start: self.start,
                factor: self.factor,
            },
            GrowthName::Proportional => Growth::Proportional {
                epochs: self.growth_epochs.unwrap_or(self.epochs),
            },
        };
        let schedule = match self.schedule {
            ScheduleName::Prost => Schedule::Prost { growth },
            ScheduleName::All => Schedule::All,
            ScheduleName::Random => Schedule::Random {
                growth,
                seed: self.seed,
                resample: self.resample,
            },
            ScheduleName::Reverse => Schedule::Reverse { growth },
            ScheduleName::Difficulty => Schedule::Difficulty {
                epochs_per_level: self.epochs_per_level,
            },
        };
        let unsupervised = match self.unsupervised {
            UnsupervisedName::Truncate => Unsupervised::Truncate,
            UnsupervisedName::Keep => Unsupervised::Keep,
        };
        Ok(Curriculum {
            schedule,
            unsupervised,
        })
    }
}

/// Runs a `rung curriculum` command.
pub fn run(command: CurriculumCommand) -> Result<()> {
    match command {
        CurriculumCommand::Show(args) => {
            print!("{}", show(&args)?);
            Ok(())
        }
    }
}

/// The table `rung curriculum show` prints.
pub fn show(args: &ShowArgs) -> Result<String> {
    let curriculum = args.curriculum()?;
    curriculum
        .schedule
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid schedule: {e}"))?;
    let plans = args.gold.plans()?;
    let dataset = Dataset::read(&args.data, &plans)
        .with_context(|| format!("cannot read trajectories from {}", args.data.display()))?;
    let options = SampleOptions {
        max_tokens: args.max_tokens,
        overflow: match args.overflow {
            OverflowName::Drop => Overflow::Drop,
            OverflowName::Split => Overflow::Split,
        },
    };
    let table = match &args.tokenizer {
        None => curriculum_table(
            &dataset,
            &curriculum,
            args.epochs,
            &args.roles,
            &ByteRenderer,
            &options,
            "bytes",
        )?,
        Some(path) => {
            let tokenizer = rung_model::tokenizer::Tokenizer::from_file(path)?;
            curriculum_table(
                &dataset,
                &curriculum,
                args.epochs,
                &args.roles,
                &ModelRenderer(&tokenizer),
                &options,
                "tokens",
            )?
        }
    };
    Ok(table)
}

/// Runs `rung data stats`.
pub fn run_stats(args: &StatsArgs) -> Result<()> {
    print!("{}", stats(args)?);
    Ok(())
}

/// The summary `rung data stats` prints.
pub fn stats(args: &StatsArgs) -> Result<String> {
    let plans = args.gold.plans()?;
    let episodes = rung_trajectory::read_file(&args.file)?;
    Ok(data_stats(
        &args.file.display().to_string(),
        &episodes,
        &plans,
    ))
}

/// rung-model's ChatML rendering behind rung-curriculum's renderer seam.
struct ModelRenderer<'a>(&'a rung_model::tokenizer::Tokenizer);

impl ChatRenderer for ModelRenderer<'_> {
    type Error = rung_model::chat::ChatError;

    fn render(&self, messages: &[Message]) -> Result<Tokens, Self::Error> {
        let messages: Vec<rung_model::chat::Message> = messages
            .iter()
            .map(|m| rung_model::chat::Message {
                role: role_name(m.role).to_owned(),
                content: m.content.clone(),
                train: m.train,
            })
            .collect();
        let rendered = rung_model::chat::render(self.0, &messages, false)?;
        Ok(Tokens {
            ids: rendered.ids,
            mask: rendered.mask,
        })
    }
}
