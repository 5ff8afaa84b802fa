//! The experiment config (TOML): what to train, how, and what to compare.
//!
//! Every table rejects unknown keys, and [`ExperimentConfig::validate`] rejects impossible
//! combinations with the path of the offending key (`group[1].allocations[0].critic`), because
//! a typo in a three-hour run's config should cost a second, not the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rung_curriculum::{Curriculum, Growth, Schedule};
use rung_env::Split;
use rung_model::{LoraConfig, ModelConfig};
use rung_trajectory::{Role, SystemKind};
use serde::{Deserialize, Serialize};

use crate::ExperimentError;

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Short name, shown in the report.
    pub name: String,
    /// One paragraph for the report: what this configuration is for.
    #[serde(default)]
    pub description: String,
    /// Where stages and the report go (relative paths are relative to the working directory).
    pub output_dir: PathBuf,
    /// The burn backend the `rung` binary must have been built with (`cargo xtask experiment
    /// --backend` builds it); a mismatch is an error rather than a silent CPU run.
    #[serde(default)]
    pub backend: BackendKind,
    /// Where episodes run.
    pub environment: EnvironmentConfig,
    /// Expert training data.
    pub data: DataConfig,
    /// The tokenizer every model of the experiment shares.
    #[serde(default)]
    pub tokenizer: TokenizerConfig,
    /// Models by name (`tiny`, `qwen-0.5b`, …), referred to by the groups.
    pub models: BTreeMap<String, ModelEntry>,
    /// Curricula by name; `prost`, `all` and `random` exist unless redefined here.
    #[serde(default)]
    pub schedules: BTreeMap<String, Curriculum>,
    /// Training hyper-parameters shared by every run: any key of `rung train`'s config except
    /// those the experiment sets itself (data, model, roles, curriculum, seed, output_dir, …).
    #[serde(default)]
    pub training: toml::Table,
    /// World pretraining: one base model per preset, trained once on a corpus of world walks
    /// and fine-tuned by every role, schedule and seed (absent: every model starts from
    /// scratch).
    #[serde(default)]
    pub pretraining: Option<PretrainingConfig>,
    /// Evaluation.
    pub evaluation: EvaluationConfig,
    /// Grids of runs; their union (duplicates removed) is the experiment.
    #[serde(rename = "group")]
    pub groups: Vec<GroupConfig>,
    /// How stages run where the executor needs settings (`[executor.slurm]`); the executor
    /// itself is chosen on the command line (`--executor`), so one config runs both ways.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

/// Settings of the executors.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    /// The Slurm executor: one `sbatch` job per stage.
    #[serde(default)]
    pub slurm: SlurmConfig,
}

/// The Slurm executor's settings: where jobs go and what each kind of stage asks for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition` of every job (the cluster's default when unset).
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account` of every job.
    #[serde(default)]
    pub account: Option<String>,
    /// The `rung` binary jobs run, on the compute nodes' shared filesystem (default: the
    /// binary that submits).
    #[serde(default)]
    pub rung: Option<PathBuf>,
    /// Further `sbatch` options for every job (`"--qos=normal"`), one per line of the job
    /// script (`#SBATCH --qos=normal`).
    #[serde(default)]
    pub extra: Vec<String>,
    /// Resources of the cheap stages: expert data, tokenizer, evaluation merges, the report.
    #[serde(default)]
    pub default: SlurmResources,
    /// Resources of a training job.
    #[serde(default)]
    pub train: SlurmResources,
    /// Resources of an evaluation (or evaluation shard) job.
    #[serde(default)]
    pub eval: SlurmResources,
}

/// What one job asks Slurm for; unset keys take the stage kind's defaults
/// ([`SlurmResources::filled`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmResources {
    /// `--time` (Slurm's formats: `90`, `1:30:00`, `2-00:00:00`).
    #[serde(default)]
    pub time: Option<String>,
    /// `--cpus-per-task`.
    #[serde(default)]
    pub cpus: Option<u32>,
    /// `--mem` (`16G`).
    #[serde(default)]
    pub mem: Option<String>,
    /// `--gres` (`gpu:1`); `""` asks for none.
    #[serde(default)]
    pub gres: Option<String>,
    /// Further `sbatch` options for jobs of this kind only.
    #[serde(default)]
    pub extra: Vec<String>,
}

impl SlurmResources {
    /// These resources with unset keys taken from `defaults`.
    pub fn filled(&self, defaults: &SlurmResources) -> SlurmResources {
        SlurmResources {
            time: self.time.clone().or_else(|| defaults.time.clone()),
            cpus: self.cpus.or(defaults.cpus),
            mem: self.mem.clone().or_else(|| defaults.mem.clone()),
            gres: self
                .gres
                .clone()
                .or_else(|| defaults.gres.clone())
                .filter(|g| !g.is_empty()),
            extra: self.extra.clone(),
        }
    }
}

/// Burn backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// `flex`, the CPU backend (always built).
    #[default]
    Cpu,
    /// `wgpu` (Vulkan/Metal/DX12).
    Wgpu,
    /// CUDA.
    Cuda,
}

impl BackendKind {
    /// The name `rung_model::backend_name` reports for this backend's builds.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }
}

/// Where episodes run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EnvironmentConfig {
    /// rung's embedded world, in process.
    Embedded {
        /// Master seed of the task suite.
        #[serde(default)]
        suite_seed: u64,
    },
    /// A pool of AppWorld-protocol servers (real AppWorld, or `rung world serve`).
    Appworld {
        /// Command starting one server; `{port}`, `{experiment}` and `{index}` are replaced.
        server_command: String,
        /// Servers (one episode runs on each at a time).
        #[serde(default = "default_pool_size")]
        pool_size: u16,
        /// Seconds a server may take to start answering.
        #[serde(default = "default_startup_timeout")]
        startup_timeout_s: u64,
        /// Task ids per split (a file of ids, one per line); splits missing here take the gold
        /// file's lists.
        #[serde(default)]
        tasks: BTreeMap<Split, PathBuf>,
        /// Gold plans with sub-task splits (experts and sub-task error rates need them).
        #[serde(default)]
        gold: Option<PathBuf>,
    },
}

fn default_pool_size() -> u16 {
    2
}
fn default_startup_timeout() -> u64 {
    120
}

/// Expert training and validation data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Split whose tasks the experts play for training data.
    #[serde(default = "default_train_split")]
    pub train_split: Split,
    /// Use N tasks of the training split, stratified by template with the data seed
    /// ([`crate::subsets`]); the whole split when unset.
    #[serde(default)]
    pub train_tasks: Option<usize>,
    /// Split whose expert episodes give the validation loss.
    #[serde(default = "default_validation_split")]
    pub validation_split: Split,
    /// Use N tasks of the validation split, stratified by template with the data seed; the
    /// whole split when unset.
    #[serde(default)]
    pub validation_tasks: Option<usize>,
    /// Fraction of expert episodes with a deliberate mistake and its recovery.
    #[serde(default = "default_mistake_rate")]
    pub mistake_rate: f64,
    /// Fraction of expert sub-tasks that start with a documentation look-up.
    #[serde(default = "default_docs_rate")]
    pub docs_rate: f64,
    /// Seed of the expert system.
    #[serde(default)]
    pub seed: u64,
    /// Expert trajectories recorded elsewhere, per system, used instead of playing the experts
    /// here (e.g. trajectories of the synthetic AppWorld tasks for training models that are
    /// evaluated on real AppWorld, whose tasks have no gold sub-task plans). `${VAR}`s expand.
    #[serde(default)]
    pub trajectories: BTreeMap<SystemKind, TrajectoryFiles>,
}

/// A system's recorded trajectories (JSONL, `rung data gen`'s format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryFiles {
    /// Training trajectories.
    pub train: PathBuf,
    /// Validation trajectories.
    pub validation: PathBuf,
}

fn default_train_split() -> Split {
    Split::Train
}
fn default_validation_split() -> Split {
    Split::Dev
}
fn default_mistake_rate() -> f64 {
    rung_agents::ExpertOptions::default().mistake_rate
}
fn default_docs_rate() -> f64 {
    rung_agents::ExpertOptions::default().docs_rate
}

/// The tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerConfig {
    /// A byte-level BPE trained on the training data of every system (the presets' vocabulary
    /// size unless given).
    Train {
        /// Vocabulary size, special tokens included.
        #[serde(default = "default_vocab")]
        vocab_size: usize,
    },
    /// A `tokenizer.json` file.
    File {
        /// The file.
        path: PathBuf,
    },
    /// Each HF model's own tokenizer.
    Model,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        TokenizerConfig::Train {
            vocab_size: default_vocab(),
        }
    }
}

fn default_vocab() -> usize {
    rung_model::config::PRESET_VOCAB
}

/// A model: a from-scratch preset or an HF checkpoint, optionally with LoRA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// Preset name (`tiny`, `small`, `base`, `medium`, `large`).
    #[serde(default)]
    pub preset: Option<String>,
    /// HF model: a local directory or a hub id read from the local HF cache
    /// (`Qwen/Qwen2.5-0.5B-Instruct`).
    #[serde(default)]
    pub hf: Option<String>,
    /// Train a LoRA adapter instead of every weight.
    #[serde(default)]
    pub lora: Option<LoraConfig>,
    /// Training keys overriding `[training]` for this model (e.g. a lower `lr`).
    #[serde(default)]
    pub training: toml::Table,
    /// Whether a preset starts from its world-pretrained base (`[pretraining]`); true by
    /// default when `[pretraining]` exists. `false` trains from scratch: the ablation that
    /// shows what pretraining buys.
    #[serde(default)]
    pub pretrained: Option<bool>,
}

/// The world-pretraining stage: its corpus and how the base models train on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainingConfig {
    /// The corpus: walks through the worlds of other suite seeds (`suite_seeds` must not
    /// contain `environment.suite_seed`).
    pub corpus: rung_agents::corpus::CorpusOptions,
    /// Training keys of the base models, over `[training]` (e.g. `epochs`, `lr`,
    /// `pack_length`); `epochs` defaults to 1.
    #[serde(default)]
    pub training: toml::Table,
    /// Seed of the base models' initialisation and shuffling.
    #[serde(default)]
    pub seed: u64,
}

impl ExperimentConfig {
    /// Whether model `name` fine-tunes a world-pretrained base.
    pub fn pretrained(&self, name: &str) -> bool {
        let Some(entry) = self.models.get(name) else {
            return false;
        };
        self.pretraining.is_some() && entry.preset.is_some() && entry.pretrained.unwrap_or(true)
    }

    /// The preset of model `name` when it fine-tunes a world-pretrained base.
    pub fn pretrained_preset(&self, name: &str) -> Option<&str> {
        self.pretrained(name)
            .then(|| self.models[name].preset.as_deref())
            .flatten()
    }

    /// The distinct presets with a pretrained base, over every model of `[models]`.
    pub fn pretrained_presets(&self) -> Vec<String> {
        let set: std::collections::BTreeSet<String> = self
            .models
            .keys()
            .filter_map(|name| self.pretrained_preset(name).map(str::to_owned))
            .collect();
        set.into_iter().collect()
    }
}

impl ModelEntry {
    /// The model's architecture, where it can be known without loading weights.
    pub fn model_config(&self) -> Option<ModelConfig> {
        if let Some(preset) = &self.preset {
            return ModelConfig::preset(preset).ok();
        }
        let dir = crate::stages::hf_dir(self.hf.as_deref()?).ok()?;
        ModelConfig::from_hf_file(&dir.join("config.json")).ok()
    }
}

/// Evaluation of trained systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationConfig {
    /// Splits to evaluate on; the last is the test split of the report's headline.
    pub splits: Vec<Split>,
    /// Evaluate N tasks of each split, stratified by template with the data seed, drawn from
    /// the tasks validation does not use on the validation split; every such task when unset.
    #[serde(default)]
    pub tasks_per_split: Option<usize>,
    /// Per-split task counts overriding `tasks_per_split` (`{ test_challenge = 28 }`), for
    /// splits of very different sizes.
    #[serde(default)]
    pub tasks_by_split: BTreeMap<Split, usize>,
    /// The learning curve of one run: its system played with every epoch's checkpoints.
    #[serde(default)]
    pub learning_curve: Option<LearningCurveConfig>,
    /// Which checkpoint of each training run plays: `best` (validation loss) or `last`.
    #[serde(default)]
    pub checkpoint: CheckpointChoice,
    /// Per-episode budgets (defaults: `rung eval`'s).
    #[serde(default)]
    pub budgets: BudgetsConfig,
    /// Parallel episodes (default: all cores; a server pool runs one per server).
    #[serde(default)]
    pub threads: Option<usize>,
    /// Split each evaluation's tasks into this many shards, each its own stage (a Slurm job of
    /// its own), merged by a cheap stage into exactly the unsharded result.
    #[serde(default = "default_shards")]
    pub shards: usize,
}

/// Which run's learning curve the report draws.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearningCurveConfig {
    /// The run, by name (`1A-tiny-all-s0`: system, allocation, schedule, seed).
    pub run: String,
    /// The split it plays (one of `evaluation.splits`; default: the headline split).
    #[serde(default)]
    pub split: Option<Split>,
}

impl EvaluationConfig {
    /// How many tasks of `split` are evaluated (`None`: all of them).
    pub fn tasks_for(&self, split: Split) -> Option<usize> {
        self.tasks_by_split
            .get(&split)
            .copied()
            .or(self.tasks_per_split)
    }
}

fn default_shards() -> usize {
    1
}

/// Which checkpoint plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointChoice {
    /// Lowest validation loss.
    #[default]
    Best,
    /// After the last epoch.
    Last,
}

/// Per-episode budgets; unset keys keep `rung eval`'s defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetsConfig {
    /// Code executions per task.
    pub max_interactions: Option<u32>,
    /// Generated tokens of one model call.
    pub max_tokens_per_turn: Option<u64>,
    /// Sub-tasks an orchestrator may issue.
    pub max_subtasks: Option<u32>,
    /// Executor calls per sub-task.
    pub max_executor_steps: Option<u32>,
    /// Critic rejections per sub-task.
    pub max_critic_retries: Option<u32>,
    /// Consecutive malformed outputs tolerated.
    pub max_format_retries: Option<u32>,
}

impl BudgetsConfig {
    /// The budgets, defaults filled in.
    pub fn budgets(&self) -> rung_agents::Budgets {
        let d = rung_agents::Budgets::default();
        rung_agents::Budgets {
            max_interactions: self.max_interactions.unwrap_or(d.max_interactions),
            max_tokens_per_turn: self.max_tokens_per_turn.unwrap_or(d.max_tokens_per_turn),
            max_subtasks: self.max_subtasks.unwrap_or(d.max_subtasks),
            max_executor_steps: self.max_executor_steps.unwrap_or(d.max_executor_steps),
            max_critic_retries: self.max_critic_retries.unwrap_or(d.max_critic_retries),
            max_format_retries: self.max_format_retries.unwrap_or(d.max_format_retries),
        }
    }
}

/// A grid of runs: every system × allocation × schedule × seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Systems (`single`, `two_agent`, `three_agent`).
    pub systems: Vec<SystemKind>,
    /// Uniform allocations: every role of the system played by a model of this name.
    #[serde(default)]
    pub sizes: Vec<String>,
    /// Mixed allocations, role → model name (e.g. a bigger orchestrator); each must name
    /// exactly the roles of every system of the group.
    #[serde(default)]
    pub allocations: Vec<BTreeMap<Role, String>>,
    /// Schedule names.
    pub schedules: Vec<String>,
    /// Seeds of training (initialisation, shuffling, dropout).
    pub seeds: Vec<u64>,
}

/// Keys of `rung train`'s config the experiment sets itself.
pub const OWNED_TRAINING_KEYS: &[(&str, &str)] = &[
    ("data", "the experiment generates the data"),
    ("validation_data", "set `data.validation_split`"),
    (
        "output_dir",
        "stages live under the experiment's `output_dir`",
    ),
    ("model", "name models in `[models]`"),
    ("tokenizer", "set `[tokenizer]`"),
    ("lora", "set `models.<name>.lora`"),
    ("roles", "each role of each system is trained separately"),
    ("curriculum", "name schedules in `group.schedules`"),
    ("seed", "set `group.seeds`"),
    ("gold_plans", "the environment decides"),
    ("world_seed", "set `environment.suite_seed`"),
    ("progress", "the experiment shows its own progress"),
];

impl ExperimentConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            ExperimentError::Config(message) => {
                ExperimentError::Config(format!("{}: {message}", path.display()))
            }
            other => other,
        })
    }

    /// Parses and validates TOML.
    pub fn from_toml(text: &str) -> Result<Self, ExperimentError> {
        let mut config: Self =
            toml::from_str(text).map_err(|e| ExperimentError::Config(e.to_string()))?;
        config.add_builtin_schedules();
        config.validate()?;
        Ok(config)
    }

    fn add_builtin_schedules(&mut self) {
        let builtin = [
            (
                "prost",
                Schedule::Prost {
                    growth: Growth::default(),
                },
            ),
            ("all", Schedule::All),
            (
                "random",
                serde_json::from_value(serde_json::json!({"kind": "random"}))
                    .expect("the random schedule has defaults"),
            ),
        ];
        for (name, schedule) in builtin {
            self.schedules
                .entry(name.to_string())
                .or_insert(Curriculum {
                    schedule,
                    ..Curriculum::default()
                });
        }
    }

    /// Checks what serde cannot, naming the offending key.
    pub fn validate(&self) -> Result<(), ExperimentError> {
        let bad =
            |key: String, why: String| Err(ExperimentError::Config(format!("`{key}`: {why}")));
        if self.name.trim().is_empty() {
            return bad("name".into(), "must not be empty".into());
        }
        for (key, why) in [
            ("data.mistake_rate", self.data.mistake_rate),
            ("data.docs_rate", self.data.docs_rate),
        ] {
            if !(0.0..=1.0).contains(&why) {
                return bad(key.into(), format!("must be between 0 and 1, got {why}"));
            }
        }
        if self.data.train_tasks == Some(0) || self.data.validation_tasks == Some(0) {
            return bad("data".into(), "task limits must be at least 1".into());
        }
        if self.data.train_split == self.data.validation_split {
            return bad(
                "data.validation_split".into(),
                "must differ from `data.train_split` (validation data must be held out)".into(),
            );
        }
        if let EnvironmentConfig::Appworld {
            server_command,
            pool_size,
            tasks,
            gold,
            ..
        } = &self.environment
        {
            if gold.is_none() {
                let systems: std::collections::BTreeSet<SystemKind> = self
                    .groups
                    .iter()
                    .flat_map(|g| g.systems.iter().copied())
                    .collect();
                if let Some(missing) = systems
                    .iter()
                    .find(|s| !self.data.trajectories.contains_key(s))
                {
                    return bad(
                        format!("data.trajectories.{}", missing.name()),
                        "missing: without `environment.gold` (gold sub-task plans) the experts \
                         cannot play, so every system needs recorded trajectories"
                            .into(),
                    );
                }
            }
            if server_command.split_whitespace().next().is_none() {
                return bad("environment.server_command".into(), "is empty".into());
            }
            if !server_command.contains("{port}") {
                return bad(
                    "environment.server_command".into(),
                    "must contain `{port}` so that each server of the pool gets its own".into(),
                );
            }
            if *pool_size == 0 {
                return bad("environment.pool_size".into(), "must be at least 1".into());
            }
            // With a gold file, splits without a task file take the gold file's own lists.
            let needed = self
                .evaluation
                .splits
                .iter()
                .copied()
                .filter(|_| gold.is_none());
            for split in needed {
                if !tasks.contains_key(&split) {
                    return bad(
                        format!("environment.tasks.{}", split_name(split)),
                        "missing: an AppWorld pool needs a task-id file for every split the \
                         experiment uses"
                            .into(),
                    );
                }
            }
        }
        if let TokenizerConfig::Train { vocab_size } = self.tokenizer
            && vocab_size < 260
        {
            return bad(
                "tokenizer.vocab_size".into(),
                format!("{vocab_size} is too small (at least 256 bytes + specials)"),
            );
        }
        if self.models.is_empty() {
            return bad("models".into(), "define at least one model".into());
        }
        for (name, model) in &self.models {
            let key = format!("models.{name}");
            match (&model.preset, &model.hf) {
                (Some(preset), None) => {
                    let config = ModelConfig::preset(preset)
                        .map_err(|e| ExperimentError::Config(format!("`{key}.preset`: {e}")))?;
                    if let TokenizerConfig::Train { vocab_size } = self.tokenizer
                        && vocab_size != config.vocab_size
                    {
                        return bad(
                            "tokenizer.vocab_size".into(),
                            format!(
                                "{vocab_size} differs from preset `{preset}`'s vocabulary ({})",
                                config.vocab_size
                            ),
                        );
                    }
                    if matches!(self.tokenizer, TokenizerConfig::Model) {
                        return bad(
                            "tokenizer.kind".into(),
                            format!("`model` needs HF models, but `{key}` is a preset"),
                        );
                    }
                }
                (None, Some(_)) => {}
                _ => return bad(key, "give exactly one of `preset` and `hf`".into()),
            }
            match (model.pretrained, &self.pretraining, &model.hf) {
                (Some(true), None, _) => {
                    return bad(
                        format!("{key}.pretrained"),
                        "needs a `[pretraining]` section to pretrain the base".into(),
                    );
                }
                (Some(true), _, Some(_)) => {
                    return bad(
                        format!("{key}.pretrained"),
                        "HF models come pretrained; world pretraining is for presets".into(),
                    );
                }
                _ => {}
            }
            if let Some(lora) = &model.lora {
                lora.validate()
                    .map_err(|e| ExperimentError::Config(format!("`{key}.lora`: {e}")))?;
            }
            check_training_table(&model.training, &format!("{key}.training"))?;
        }
        check_training_table(&self.training, "training")?;
        if let Some(pretraining) = &self.pretraining {
            check_training_table(&pretraining.training, "pretraining.training")?;
            let corpus = &pretraining.corpus;
            let evaluated = match self.environment {
                EnvironmentConfig::Embedded { suite_seed } => suite_seed,
                EnvironmentConfig::Appworld { .. } => {
                    return bad(
                        "pretraining".into(),
                        "world pretraining walks the embedded world's apps; AppWorld runs \
                         fine-tune HF models instead"
                            .into(),
                    );
                }
            };
            if corpus.suite_seeds.is_empty() || corpus.walks_per_world == 0 {
                return bad(
                    "pretraining.corpus".into(),
                    "name at least one suite seed and at least one walk per world".into(),
                );
            }
            if corpus.suite_seeds.contains(&evaluated) {
                return bad(
                    "pretraining.corpus.suite_seeds".into(),
                    format!(
                        "contains {evaluated}, the seed of the evaluated tasks' worlds; the \
                         corpus must come from other worlds"
                    ),
                );
            }
            if matches!(self.tokenizer, TokenizerConfig::Model) {
                return bad(
                    "tokenizer.kind".into(),
                    "world pretraining needs a shared tokenizer (`train` or `file`)".into(),
                );
            }
            for preset in self.pretrained_presets() {
                crate::pretrain::pretrain_config(
                    self,
                    &preset,
                    Path::new("c.jsonl"),
                    None,
                    Path::new("out"),
                )
                .map_err(|e| ExperimentError::Config(format!("`pretraining.training`: {e:#}")))?;
            }
        }
        for name in self.models.keys() {
            // Every model's merged training config must be a valid `rung train` config.
            let files = crate::stages::JobFiles {
                data: Path::new("data.jsonl"),
                validation: Path::new("val.jsonl"),
                output_dir: Path::new("out"),
                tokenizer: None,
                base: None,
            };
            crate::stages::train_config_for(
                self,
                name,
                Role::Executor,
                &Curriculum::default(),
                0,
                files,
            )
            .map_err(|e| {
                ExperimentError::Config(format!("`models.{name}` with `[training]`: {e}"))
            })?;
        }
        if self.evaluation.splits.is_empty() {
            return bad("evaluation.splits".into(), "name at least one split".into());
        }
        if let Some((split, _)) = self
            .evaluation
            .tasks_by_split
            .iter()
            .find(|(split, n)| **n == 0 || !self.evaluation.splits.contains(split))
        {
            return bad(
                format!("evaluation.tasks_by_split.{}", split_name(*split)),
                "must be at least 1, for a split `evaluation.splits` names".into(),
            );
        }
        if self.evaluation.tasks_per_split == Some(0) || self.evaluation.threads == Some(0) {
            return bad(
                "evaluation".into(),
                "`tasks_per_split` and `threads` must be at least 1".into(),
            );
        }
        if self.evaluation.shards == 0 {
            return bad("evaluation.shards".into(), "must be at least 1".into());
        }
        if let Some(tasks) = self
            .evaluation
            .splits
            .iter()
            .filter_map(|s| self.evaluation.tasks_for(*s))
            .min()
            && self.evaluation.shards > tasks
        {
            return bad(
                "evaluation.shards".into(),
                format!(
                    "{} shards of {tasks} tasks (`evaluation.tasks_per_split`) would leave some \
                     empty",
                    self.evaluation.shards
                ),
            );
        }
        let slurm = &self.executor.slurm;
        for (kind, resources) in [
            ("default", &slurm.default),
            ("train", &slurm.train),
            ("eval", &slurm.eval),
        ] {
            let key = format!("executor.slurm.{kind}");
            if resources.cpus == Some(0) {
                return bad(format!("{key}.cpus"), "must be at least 1".into());
            }
            for (name, value) in [("time", &resources.time), ("mem", &resources.mem)] {
                if let Some(value) = value
                    && (value.is_empty() || value.contains(char::is_whitespace))
                {
                    return bad(
                        format!("{key}.{name}"),
                        format!("`{value}` is not a Slurm value (no spaces, not empty)"),
                    );
                }
            }
            if let Some(gres) = &resources.gres
                && gres.contains(char::is_whitespace)
            {
                return bad(format!("{key}.gres"), format!("`{gres}` has spaces"));
            }
            for (i, line) in resources.extra.iter().enumerate() {
                check_sbatch_option(&format!("{key}.extra[{i}]"), line)?;
            }
        }
        for (i, line) in slurm.extra.iter().enumerate() {
            check_sbatch_option(&format!("executor.slurm.extra[{i}]"), line)?;
        }
        for (key, value) in [
            ("executor.slurm.partition", &slurm.partition),
            ("executor.slurm.account", &slurm.account),
        ] {
            if let Some(value) = value
                && (value.is_empty() || value.contains(char::is_whitespace))
            {
                return bad(key.into(), format!("`{value}` is not a Slurm name"));
            }
        }
        if self.groups.is_empty() {
            return bad(
                "group".into(),
                "define at least one `[[group]]` of runs".into(),
            );
        }
        for (g, group) in self.groups.iter().enumerate() {
            let key = format!("group[{g}]");
            if group.systems.is_empty() {
                return bad(format!("{key}.systems"), "name at least one system".into());
            }
            if group.sizes.is_empty() && group.allocations.is_empty() {
                return bad(key, "give `sizes` or `allocations`".into());
            }
            if group.seeds.is_empty() {
                return bad(format!("{key}.seeds"), "name at least one seed".into());
            }
            if group.schedules.is_empty() {
                return bad(
                    format!("{key}.schedules"),
                    "name at least one schedule".into(),
                );
            }
            for (i, size) in group.sizes.iter().enumerate() {
                if !self.models.contains_key(size) {
                    return bad(
                        format!("{key}.sizes[{i}]"),
                        format!("no model `{size}` in `[models]`"),
                    );
                }
            }
            for (i, schedule) in group.schedules.iter().enumerate() {
                if !self.schedules.contains_key(schedule) {
                    let known: Vec<&str> = self.schedules.keys().map(String::as_str).collect();
                    return bad(
                        format!("{key}.schedules[{i}]"),
                        format!("no schedule `{schedule}` (known: {})", known.join(", ")),
                    );
                }
            }
            for (a, allocation) in group.allocations.iter().enumerate() {
                for system in &group.systems {
                    let roles: Vec<Role> = system.roles().to_vec();
                    for role in allocation.keys() {
                        if !roles.contains(role) {
                            return bad(
                                format!("{key}.allocations[{a}].{}", role.name()),
                                format!("the {} system has no {role} role", system.name()),
                            );
                        }
                    }
                    if let Some(missing) = roles.iter().find(|r| !allocation.contains_key(r)) {
                        return bad(
                            format!("{key}.allocations[{a}]"),
                            format!(
                                "the {} system needs a model for its {missing}",
                                system.name()
                            ),
                        );
                    }
                }
                for (role, model) in allocation {
                    if !self.models.contains_key(model) {
                        return bad(
                            format!("{key}.allocations[{a}].{}", role.name()),
                            format!("no model `{model}` in `[models]`"),
                        );
                    }
                }
            }
        }
        if let Some(curve) = &self.evaluation.learning_curve {
            let runs = crate::plan::runs(self);
            if !runs.iter().any(|r| r.name() == curve.run) {
                let names: Vec<String> = runs.iter().map(|r| r.name()).collect();
                return bad(
                    "evaluation.learning_curve.run".into(),
                    format!("no run `{}`; the runs are: {}", curve.run, names.join(", ")),
                );
            }
            if let Some(split) = curve.split
                && !self.evaluation.splits.contains(&split)
            {
                return bad(
                    "evaluation.learning_curve.split".into(),
                    format!("`{}` is not one of `evaluation.splits`", split_name(split)),
                );
            }
        }
        Ok(())
    }

    /// The split of the report's headline numbers.
    pub fn test_split(&self) -> Split {
        *self.evaluation.splits.last().expect("validated non-empty")
    }
}

/// An `sbatch` option of a job script: one `--option[=value]` per line.
fn check_sbatch_option(key: &str, line: &str) -> Result<(), ExperimentError> {
    if !line.starts_with('-') || line.contains('\n') {
        return Err(ExperimentError::Config(format!(
            "`{key}`: `{line}` is not an sbatch option: write one option per entry, e.g. \
             \"--qos=normal\""
        )));
    }
    Ok(())
}

fn check_training_table(table: &toml::Table, key: &str) -> Result<(), ExperimentError> {
    for (name, why) in OWNED_TRAINING_KEYS {
        if table.contains_key(*name) {
            return Err(ExperimentError::Config(format!(
                "`{key}.{name}` is set by the experiment: {why}"
            )));
        }
    }
    Ok(())
}

/// Replaces `${NAME}` with the environment variable `NAME`, so configs can name machine-
/// specific paths (`${RUNG_APPWORLD_ROOT}`) without being edited. Expanded where used, not when
/// parsed: a config validates on machines that lack the variables, and stage keys hold the
/// unexpanded text, so they do not change from machine to machine.
pub fn expand_env(text: &str, key: &str) -> Result<String, ExperimentError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            ExperimentError::Config(format!("`{key}`: unclosed `${{` in `{text}`"))
        })?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            ExperimentError::Config(format!(
                "`{key}` uses ${{{name}}}, which is not set{}",
                if name.starts_with("RUNG_APPWORLD") {
                    " (run `eval \"$(cargo xtask appworld env)\"` after `cargo xtask appworld setup`)"
                } else {
                    ""
                }
            ))
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The serde name of a split (`test_normal`).
pub fn split_name(split: Split) -> String {
    serde_json::to_value(split)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{split:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_expand_and_missing_ones_are_named() {
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("RUNG_TEST_EXPAND", "/data") };
        assert_eq!(
            expand_env("${RUNG_TEST_EXPAND}/x ${RUNG_TEST_EXPAND}", "k").unwrap(),
            "/data/x /data"
        );
        assert_eq!(expand_env("no vars {port}", "k").unwrap(), "no vars {port}");
        let err = expand_env("${RUNG_APPWORLD_NOPE}/gold.json", "environment.gold")
            .unwrap_err()
            .to_string();
        assert!(err.contains("environment.gold") && err.contains("RUNG_APPWORLD_NOPE"));
        assert!(err.contains("cargo xtask appworld env"), "{err}");
        assert!(expand_env("${OPEN", "k").is_err());
    }
}
