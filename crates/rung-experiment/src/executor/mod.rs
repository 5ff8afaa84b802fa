//! Executors: how the plan's stages ([`StagePlan`]) run. [`local`] runs them in this process
//! one after another; [`slurm`] submits one Slurm job per stage, chained along the plan's
//! edges, each running `rung experiment stage <id>`, which calls [`run_stage`]. Both do a
//! stage's work through [`Context::execute`], so a stage writes the same files either way.

pub mod local;
pub mod sbatch;
pub mod slurm;

use std::collections::BTreeMap;
use std::path::PathBuf;

use rung_trajectory::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ExperimentError;
use crate::config::{ExperimentConfig, TokenizerConfig, split_name};
use crate::episodes::Episodes;
use crate::graph::{StagePlan, Step};
use crate::pretrain::{CorpusOutput, PretrainOutput};
use crate::results::RunResult;
use crate::shards::{self, ShardOutput};
use crate::stages::{self, DataOutput, EvalOutput, TrainOutput};
use crate::store::Store;

/// Which executor runs the stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// In this process, one stage after another.
    #[default]
    Local,
    /// One Slurm job per stage.
    Slurm,
}

impl std::str::FromStr for ExecutorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "local" => Ok(ExecutorKind::Local),
            "slurm" => Ok(ExecutorKind::Slurm),
            _ => Err(format!("unknown executor `{s}`: expected local or slurm")),
        }
    }
}

/// What the report stage wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOutput {
    /// `report.md`.
    pub report: PathBuf,
    /// `results.json`.
    pub results: PathBuf,
    /// Runs reported.
    pub runs: usize,
}

/// A finished node's output.
#[derive(Debug, Clone)]
pub enum Output {
    /// Expert data.
    Data(DataOutput),
    /// The trained tokenizer (file and key).
    Tokenizer(Option<(PathBuf, String)>),
    /// The world-pretraining corpus.
    Corpus(CorpusOutput),
    /// A preset's pretrained base model.
    Pretrain(Box<PretrainOutput>),
    /// A trained model.
    Train(Box<TrainOutput>),
    /// An evaluation (unsharded or merged).
    Eval(Box<EvalOutput>),
    /// An evaluation shard.
    Shard(ShardOutput),
    /// A point of the learning curve.
    Curve(crate::curve::CurvePoint),
    /// The report.
    Report(ReportOutput),
}

/// The outputs of the nodes done so far, by node index.
pub type Outputs = BTreeMap<usize, Output>;

/// What a stage needs to run: the config, its plan, the store it writes and the store its
/// dependencies are read from, the environment.
pub struct Context<'a> {
    /// The config.
    pub config: &'a ExperimentConfig,
    /// The plan.
    pub plan: &'a StagePlan,
    /// The store stages run in (with the forced stages of this invocation).
    pub store: &'a Store,
    /// The store dependencies are read from. For a single stage's job it forces nothing and
    /// requires each dependency to be done: a job must never redo (or silently do) another
    /// job's work.
    pub deps: &'a Store,
    /// Whether dependencies must already be done (a single stage's job) or may run here.
    pub deps_done: bool,
    /// The environment.
    pub episodes: &'a Episodes,
}

impl Context<'_> {
    /// Runs node `node` (or finds it done), its dependencies' outputs taken from `outputs` or
    /// read from their stages, and records its output in `outputs`.
    pub fn execute(&self, node: usize, outputs: &mut Outputs) -> Result<(), ExperimentError> {
        let output = self.run_in(self.store, node, outputs)?;
        outputs.insert(node, output);
        Ok(())
    }

    fn ensure(&self, node: usize, outputs: &mut Outputs) -> Result<(), ExperimentError> {
        if outputs.contains_key(&node) {
            return Ok(());
        }
        if self.deps_done && self.deps.done(&self.plan.nodes[node].stage)?.is_none() {
            let id = &self.plan.nodes[node].id;
            return Err(ExperimentError::Stage(format!(
                "stage `{id}` is not done, and this job reads it: run `rung experiment stage \
                 {id}` first (a Slurm submission orders the jobs so)"
            )));
        }
        let output = self.run_in(self.deps, node, outputs)?;
        outputs.insert(node, output);
        Ok(())
    }

    fn data(
        &self,
        system: rung_trajectory::SystemKind,
        train: bool,
        outputs: &mut Outputs,
    ) -> Result<DataOutput, ExperimentError> {
        let split = if train {
            self.config.data.train_split
        } else {
            self.config.data.validation_split
        };
        match self.plan.data[&(system, train)] {
            Some(node) => {
                self.ensure(node, outputs)?;
                match &outputs[&node] {
                    Output::Data(d) => Ok(d.clone()),
                    _ => unreachable!("data nodes give data"),
                }
            }
            // Recorded trajectories: no stage, read where they are.
            None => stages::data(self.config, self.deps, self.episodes, system, split, None),
        }
    }

    fn tokenizer(
        &self,
        outputs: &mut Outputs,
    ) -> Result<Option<(PathBuf, String)>, ExperimentError> {
        match (self.plan.tokenizer, &self.config.tokenizer) {
            (Some(node), _) => {
                self.ensure(node, outputs)?;
                match &outputs[&node] {
                    Output::Tokenizer(t) => Ok(t.clone()),
                    _ => unreachable!("the tokenizer node gives a tokenizer"),
                }
            }
            (None, TokenizerConfig::Train { .. }) => unreachable!("a trained tokenizer has a node"),
            (None, _) => stages::tokenizer(self.config, self.deps, &[]),
        }
    }

    fn corpus(&self, outputs: &mut Outputs) -> Result<CorpusOutput, ExperimentError> {
        let node = self
            .plan
            .corpus
            .expect("pretraining nodes come with a corpus node");
        self.ensure(node, outputs)?;
        match &outputs[&node] {
            Output::Corpus(c) => Ok(c.clone()),
            _ => unreachable!("the corpus node gives the corpus"),
        }
    }

    fn base(&self, preset: &str, outputs: &mut Outputs) -> Result<PretrainOutput, ExperimentError> {
        let node = self.plan.pretrain[preset];
        self.ensure(node, outputs)?;
        match &outputs[&node] {
            Output::Pretrain(p) => Ok((**p).clone()),
            _ => unreachable!("pretraining nodes give base models"),
        }
    }

    fn trained(
        &self,
        run: usize,
        outputs: &mut Outputs,
    ) -> Result<BTreeMap<Role, TrainOutput>, ExperimentError> {
        let mut roles = BTreeMap::new();
        for (role, job) in self.plan.runs[run].jobs() {
            let node = self.plan.train[&job];
            self.ensure(node, outputs)?;
            match &outputs[&node] {
                Output::Train(t) => roles.insert(role, (**t).clone()),
                _ => unreachable!("training nodes give models"),
            };
        }
        Ok(roles)
    }

    fn evaluation(
        &self,
        node: usize,
        outputs: &mut Outputs,
    ) -> Result<EvalOutput, ExperimentError> {
        self.ensure(node, outputs)?;
        match &outputs[&node] {
            Output::Eval(e) => Ok((**e).clone()),
            _ => unreachable!("evaluation nodes give evaluations"),
        }
    }

    fn run_in(
        &self,
        store: &Store,
        node: usize,
        outputs: &mut Outputs,
    ) -> Result<Output, ExperimentError> {
        let config = self.config;
        Ok(match self.plan.nodes[node].step.clone() {
            Step::Data {
                system,
                split,
                limit,
            } => Output::Data(stages::data(
                config,
                store,
                self.episodes,
                system,
                split,
                limit,
            )?),
            Step::Tokenizer => {
                let mut train = Vec::new();
                for system in self.plan.systems.clone() {
                    train.push(self.data(system, true, outputs)?);
                }
                Output::Tokenizer(stages::tokenizer(config, store, &train)?)
            }
            Step::Corpus => Output::Corpus(crate::pretrain::corpus(config, store)?),
            Step::Pretrain { preset } => {
                let corpus = self.corpus(outputs)?;
                let tokenizer = self.tokenizer(outputs)?;
                Output::Pretrain(Box::new(crate::pretrain::pretrain(
                    config,
                    store,
                    &preset,
                    &corpus,
                    tokenizer.as_ref(),
                )?))
            }
            Step::Train(job) => {
                let data = self.data(job.system, true, outputs)?;
                let validation = self.data(job.system, false, outputs)?;
                let tokenizer = self.tokenizer(outputs)?;
                let base = match config.pretrained_preset(&job.model) {
                    Some(preset) => Some(self.base(preset, outputs)?),
                    None => None,
                };
                Output::Train(Box::new(stages::train(
                    config,
                    store,
                    &job,
                    &data,
                    &validation,
                    tokenizer.as_ref(),
                    base.as_ref(),
                )?))
            }
            Step::Eval { run, split } => {
                let trained = self.trained(run, outputs)?;
                Output::Eval(Box::new(stages::eval(
                    config,
                    store,
                    self.episodes,
                    &self.plan.runs[run],
                    &trained,
                    split,
                )?))
            }
            Step::Shard {
                run,
                split,
                index,
                of,
            } => {
                let trained = self.trained(run, outputs)?;
                Output::Shard(shards::shard(
                    config,
                    store,
                    self.episodes,
                    &self.plan.runs[run],
                    &trained,
                    split,
                    index,
                    of,
                )?)
            }
            Step::Merge { run, split } => {
                let trained = self.trained(run, outputs)?;
                let mut parts = Vec::new();
                for &dep in &self.plan.nodes[node].deps {
                    self.ensure(dep, outputs)?;
                    match &outputs[&dep] {
                        Output::Shard(s) => parts.push(s.clone()),
                        _ => unreachable!("merges read shards"),
                    }
                }
                Output::Eval(Box::new(shards::merge(
                    config,
                    store,
                    &self.plan.runs[run],
                    &trained,
                    split,
                    &parts,
                )?))
            }
            Step::Curve { run, epoch } => {
                let trained = self.trained(run, outputs)?;
                Output::Curve(crate::curve::curve_point(
                    config,
                    store,
                    self.episodes,
                    &self.plan.runs[run],
                    &trained,
                    epoch,
                )?)
            }
            Step::Report => {
                let results = self.results(self.plan.runs.len(), outputs)?;
                let mut guards = self.guards()?;
                guards.pretraining = self.pretraining(outputs)?;
                guards.learning_curve = self.learning_curve(outputs)?;
                let written = crate::report::write(
                    config,
                    &results,
                    self.plan.runs.len(),
                    &guards,
                    &config.output_dir,
                )?;
                let output = ReportOutput {
                    report: written.report,
                    results: written.results,
                    runs: results.len(),
                };
                // Always rewritten (it is cheap); done.json records that it was, for status.
                let stage = &self.plan.nodes[node].stage;
                let _ = store.done(stage)?;
                store.finish(
                    stage,
                    &serde_json::to_value(&output).expect("paths serialise"),
                )?;
                store.log(json!({"event": "report", "report": output.report}));
                Output::Report(output)
            }
        })
    }

    /// What the guards measure (the expert ceilings, played or read from their stages, and
    /// the task subsets' template coverage); an error where the task subsets are impossible
    /// (too few tasks, evaluation that would reuse validation tasks).
    pub fn guards(&self) -> Result<crate::report::Guards, ExperimentError> {
        Ok(crate::report::Guards {
            ceilings: crate::ceiling::ceilings(
                self.config,
                self.store,
                self.episodes,
                &self.plan.systems,
            )?,
            coverage: Some(crate::subsets::Coverage::measure(
                self.config,
                self.episodes,
            )?),
            pretraining: None,
            learning_curve: None,
        })
    }

    /// The learning curve's points, where the config asks for one.
    fn learning_curve(
        &self,
        outputs: &mut Outputs,
    ) -> Result<Option<crate::curve::LearningCurve>, ExperimentError> {
        let Some(curve) = &self.config.evaluation.learning_curve else {
            return Ok(None);
        };
        let mut points = Vec::new();
        for &node in &self.plan.curve {
            self.ensure(node, outputs)?;
            match &outputs[&node] {
                Output::Curve(p) => points.push(p.clone()),
                _ => unreachable!("curve nodes give curve points"),
            }
        }
        Ok(Some(crate::curve::LearningCurve {
            run: curve.run.clone(),
            split: split_name(crate::curve::curve_split(self.config)),
            points,
        }))
    }

    /// The corpus and base models, where the plan pretrains.
    fn pretraining(
        &self,
        outputs: &mut Outputs,
    ) -> Result<Option<crate::pretrain::Pretraining>, ExperimentError> {
        if self.plan.corpus.is_none() {
            return Ok(None);
        }
        let corpus = self.corpus(outputs)?;
        let mut bases = Vec::new();
        for preset in self.plan.pretrain.keys() {
            bases.push(self.base(preset, outputs)?);
        }
        Ok(Some(crate::pretrain::Pretraining {
            corpus: corpus.report,
            bases,
        }))
    }

    /// The guards, refusing a config that cannot measure: one whose experts fall short of
    /// 100% TGC under the evaluation's budgets. Executors call it before any training.
    pub fn guard(&self) -> Result<crate::report::Guards, ExperimentError> {
        let guards = self.guards()?;
        match crate::ceiling::refusal(self.config, &guards.ceilings) {
            Some(why) => Err(ExperimentError::Config(why)),
            None => Ok(guards),
        }
    }

    /// The results of the first `runs` runs, from their trained models and evaluations.
    pub fn results(
        &self,
        runs: usize,
        outputs: &mut Outputs,
    ) -> Result<Vec<RunResult>, ExperimentError> {
        let mut results = Vec::new();
        for r in 0..runs {
            let roles = self.trained(r, outputs)?;
            let mut evals = Vec::new();
            for &split in &self.config.evaluation.splits {
                evals.push(self.evaluation(self.plan.evals[&(r, split)], outputs)?);
            }
            results.push(RunResult::new(&self.plan.runs[r], &roles, &evals));
        }
        Ok(results)
    }
}

/// A one-line account of a finished node, for progress and job logs.
pub fn describe(plan: &StagePlan, node: usize, output: &Output) -> String {
    let id = &plan.nodes[node].id;
    match output {
        Output::Data(d) => format!("{id}: {} episodes", d.episodes),
        Output::Tokenizer(_) => id.clone(),
        Output::Corpus(c) => format!(
            "{id}: {} walks, {} conversations ({} failed cells)",
            c.report.walks, c.report.conversations, c.report.failed_cells
        ),
        Output::Pretrain(p) => format!(
            "{id} ({} tokens, {:.2e} FLOPs, val loss {})",
            p.tokens,
            p.flops,
            p.final_val_loss.map_or("–".into(), |v| format!("{v:.3}")),
        ),
        Output::Train(t) => format!(
            "{id} ({} tokens, {:.2e} FLOPs, val loss {})",
            t.tokens,
            t.flops,
            t.final_val_loss.map_or("–".into(), |v| format!("{v:.3}")),
        ),
        Output::Eval(e) => format!(
            "{id} on {}: TGC {:.1}, SGC {:.1}, {:.2e} FLOPs/task",
            split_name(e.split),
            e.report.scores.overall.tgc,
            e.report.scores.overall.sgc,
            e.report.cost.per_task.flops
        ),
        Output::Shard(s) => format!("{id}: {} episodes", s.count),
        Output::Curve(p) => format!("{id}: TGC {:.1} after {} training tokens", p.tgc, p.tokens),
        Output::Report(r) => format!("{id}: {} runs, {}", r.runs, r.report.display()),
    }
}

/// Checks that this binary computes on the config's backend.
pub fn check_backend(config: &ExperimentConfig) -> Result<(), ExperimentError> {
    let built = rung_model::device::backend_name();
    let wanted = config.backend.name();
    if built.contains(wanted) {
        Ok(())
    } else {
        Err(ExperimentError::Config(format!(
            "`backend = \"{wanted}\"` but this rung binary computes on {built}; build it with \
             `cargo xtask experiment --backend {wanted}` (or change `backend`)"
        )))
    }
}

/// The environment of an experiment's stages (servers start lazily, when a stage needs
/// episodes; each process, so each Slurm job, starts its own pool).
pub fn episodes(config: &ExperimentConfig) -> Episodes {
    Episodes::new(
        &config.environment,
        &config.output_dir.join("servers"),
        config.evaluation.threads,
    )
}

/// Runs one stage of the plan by id, as a Slurm job does: its dependencies must be done (their
/// outputs are read from their stages), and `force` redoes this stage even if done.
pub fn run_stage(
    config: &ExperimentConfig,
    id: &str,
    force: &[crate::StageKind],
) -> Result<String, ExperimentError> {
    check_backend(config)?;
    let store = Store::open(&config.output_dir, force)?;
    let deps = Store::open(&config.output_dir, &[])?;
    let plan = StagePlan::new(config, &store)?;
    let node = plan.find(id)?;
    let episodes = episodes(config);
    let context = Context {
        config,
        plan: &plan,
        store: &store,
        deps: &deps,
        deps_done: true,
        episodes: &episodes,
    };
    let mut outputs = Outputs::new();
    context.execute(node, &mut outputs)?;
    Ok(describe(&plan, node, &outputs[&node]))
}
