//! The plan of stages: every stage of an experiment, its content-addressed directory and the
//! stages it reads (its dependency edges), all known from the config before anything runs.
//!
//! One plan serves both executors: the local one runs its nodes in order in one process, the
//! Slurm one submits one job per node chained along the edges. Nodes come in an order that
//! respects the edges (a node's dependencies come before it) and that the local executor
//! keeps: expert data, the tokenizer, then run by run (seed by seed) the run's training jobs
//! right before its evaluations, the report last.

use std::collections::BTreeMap;

use rung_env::Split;
use rung_trajectory::SystemKind;
use serde_json::json;

use crate::ExperimentError;
use crate::config::{ExperimentConfig, TokenizerConfig};
use crate::curve::{curve_run, curve_stage, epochs_of};
use crate::plan::{self, Run, TrainJob};
use crate::pretrain::{corpus_stage, pretrain_stage};
use crate::shards::shard_stage;
use crate::stages::{
    data_name, data_stage, eval_name, eval_stage, recorded_key, tokenizer_file_key,
    tokenizer_stage, train_stage,
};
use crate::store::{Stage, StageKind, Store};

/// What a node does.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The experts' episodes of a system on a split.
    Data {
        /// The system.
        system: SystemKind,
        /// The split.
        split: Split,
        /// Its task limit.
        limit: Option<usize>,
    },
    /// The shared BPE tokenizer.
    Tokenizer,
    /// The world-pretraining corpus.
    Corpus,
    /// A preset's world-pretrained base model.
    Pretrain {
        /// The preset.
        preset: String,
    },
    /// One role's model.
    Train(TrainJob),
    /// One run (an index into [`StagePlan::runs`]) on one split, unsharded.
    Eval {
        /// The run.
        run: usize,
        /// The split.
        split: Split,
    },
    /// One shard of a run's evaluation on a split.
    Shard {
        /// The run.
        run: usize,
        /// The split.
        split: Split,
        /// Shard, 0-based.
        index: usize,
        /// Shards.
        of: usize,
    },
    /// The merge of a sharded evaluation into the evaluation's stage.
    Merge {
        /// The run.
        run: usize,
        /// The split.
        split: Split,
    },
    /// The learning curve's point after one epoch of a run's training.
    Curve {
        /// The run.
        run: usize,
        /// Epoch (1-based).
        epoch: usize,
    },
    /// The report over every run.
    Report,
}

/// One stage of the plan.
#[derive(Debug, Clone)]
pub struct Node {
    /// Stable id on the command line and in job names: `data/1A-train`, `tokenizer`,
    /// `train/1A-single-tiny-prost-s0`, `eval/1A-tiny-prost-s0-test_normal`,
    /// `eval/…/shard-1-of-2`, `merge/…`, `report`.
    pub id: String,
    /// What it does.
    pub step: Step,
    /// Its directory (`done.json` there says it is finished).
    pub stage: Stage,
    /// Indices of the nodes it reads.
    pub deps: Vec<usize>,
}

/// Every stage of an experiment with its edges.
#[derive(Debug, Clone)]
pub struct StagePlan {
    /// The runs, seed by seed.
    pub runs: Vec<Run>,
    /// The distinct training jobs.
    pub jobs: Vec<TrainJob>,
    /// The systems (each needs expert data).
    pub systems: Vec<SystemKind>,
    /// The nodes, dependencies first.
    pub nodes: Vec<Node>,
    /// The data node of each system's training (`true`) and validation data; `None` where
    /// the trajectories are recorded elsewhere (nothing to run).
    pub data: BTreeMap<(SystemKind, bool), Option<usize>>,
    /// The tokenizer node, where the tokenizer is trained.
    pub tokenizer: Option<usize>,
    /// The corpus node, where models are world-pretrained.
    pub corpus: Option<usize>,
    /// The pretraining node of each preset with a pretrained base.
    pub pretrain: BTreeMap<String, usize>,
    /// The node of each training job.
    pub train: BTreeMap<TrainJob, usize>,
    /// The node whose stage holds each (run, split)'s evaluation: the evaluation, or the merge
    /// of its shards.
    pub evals: BTreeMap<(usize, Split), usize>,
    /// The learning curve's nodes, epoch by epoch.
    pub curve: Vec<usize>,
    /// The report node.
    pub report: usize,
}

impl StagePlan {
    /// Plans `config`'s stages in `store`. Reads only recorded trajectory and tokenizer files
    /// (their content is part of later stages' keys).
    pub fn new(config: &ExperimentConfig, store: &Store) -> Result<Self, ExperimentError> {
        let mut runs = plan::runs(config);
        runs.sort_by(|a, b| (a.seed, &a.configuration).cmp(&(b.seed, &b.configuration)));
        let jobs = plan::jobs(&runs);
        let systems = plan::systems(&runs);
        let mut out = StagePlan {
            runs,
            jobs,
            systems,
            nodes: Vec::new(),
            data: BTreeMap::new(),
            tokenizer: None,
            corpus: None,
            pretrain: BTreeMap::new(),
            train: BTreeMap::new(),
            evals: BTreeMap::new(),
            curve: Vec::new(),
            report: 0,
        };
        let mut data_keys: BTreeMap<(SystemKind, bool), String> = BTreeMap::new();
        for system in out.systems.clone() {
            for (train, split, limit) in [
                (true, config.data.train_split, config.data.train_tasks),
                (
                    false,
                    config.data.validation_split,
                    config.data.validation_tasks,
                ),
            ] {
                if let Some(key) = recorded_key(config, system, train) {
                    data_keys.insert((system, train), key?);
                    out.data.insert((system, train), None);
                    continue;
                }
                let stage = data_stage(config, store, system, split, limit);
                data_keys.insert((system, train), stage.key.clone());
                let node = out.push(
                    format!("data/{}", data_name(system, split)),
                    Step::Data {
                        system,
                        split,
                        limit,
                    },
                    stage,
                    Vec::new(),
                );
                out.data.insert((system, train), Some(node));
            }
        }
        let tokenizer_key = match &config.tokenizer {
            TokenizerConfig::Model => None,
            TokenizerConfig::File { path } => Some(tokenizer_file_key(path)?),
            TokenizerConfig::Train { vocab_size } => {
                let keys: Vec<&str> = out
                    .systems
                    .iter()
                    .map(|s| data_keys[&(*s, true)].as_str())
                    .collect();
                let stage = tokenizer_stage(*vocab_size, store, &keys);
                let key = stage.key.clone();
                let deps = out
                    .systems
                    .iter()
                    .filter_map(|s| out.data[&(*s, true)])
                    .collect();
                out.tokenizer = Some(out.push("tokenizer".into(), Step::Tokenizer, stage, deps));
                Some(key)
            }
        };
        let mut base_keys: BTreeMap<String, String> = BTreeMap::new();
        let presets: std::collections::BTreeSet<String> = out
            .jobs
            .iter()
            .filter_map(|job| config.pretrained_preset(&job.model).map(str::to_owned))
            .collect();
        if !presets.is_empty() {
            let stage = corpus_stage(config, store)?;
            let corpus_key = stage.key.clone();
            let corpus = out.push("corpus".into(), Step::Corpus, stage, Vec::new());
            out.corpus = Some(corpus);
            for preset in presets {
                let stage = pretrain_stage(
                    config,
                    store,
                    &preset,
                    &corpus_key,
                    tokenizer_key.as_deref(),
                )?;
                base_keys.insert(preset.clone(), stage.key.clone());
                let mut deps = vec![corpus];
                deps.extend(out.tokenizer);
                let node = out.push(
                    format!("pretrain/{preset}"),
                    Step::Pretrain {
                        preset: preset.clone(),
                    },
                    stage,
                    deps,
                );
                out.pretrain.insert(preset, node);
            }
        }
        let mut train_keys: BTreeMap<TrainJob, String> = BTreeMap::new();
        let splits = config.evaluation.splits.clone();
        let shards = config.evaluation.shards;
        for r in 0..out.runs.len() {
            let run = out.runs[r].clone();
            for job in run.jobs().into_values() {
                if out.train.contains_key(&job) {
                    continue;
                }
                let system = job.system;
                let stage = train_stage(
                    config,
                    store,
                    &job,
                    &data_keys[&(system, true)],
                    &data_keys[&(system, false)],
                    tokenizer_key.as_deref(),
                    config
                        .pretrained_preset(&job.model)
                        .map(|preset| base_keys[preset].as_str()),
                );
                train_keys.insert(job.clone(), stage.key.clone());
                let mut deps: Vec<usize> = [out.data[&(system, true)], out.data[&(system, false)]]
                    .into_iter()
                    .flatten()
                    .collect();
                deps.extend(out.tokenizer);
                deps.extend(
                    config
                        .pretrained_preset(&job.model)
                        .map(|preset| out.pretrain[preset]),
                );
                let node = out.push(
                    format!("train/{}", job.name()),
                    Step::Train(job.clone()),
                    stage,
                    deps,
                );
                out.train.insert(job, node);
            }
            let roles = run.jobs();
            let keys = roles
                .iter()
                .map(|(role, job)| (*role, train_keys[job].as_str()))
                .collect();
            let trained: Vec<usize> = roles.values().map(|j| out.train[j]).collect();
            for &split in &splits {
                let stage = eval_stage(config, store, &run, &keys, split);
                let name = eval_name(&run, split);
                let node = if shards == 1 {
                    out.push(
                        format!("eval/{name}"),
                        Step::Eval { run: r, split },
                        stage,
                        trained.clone(),
                    )
                } else {
                    let parts: Vec<usize> = (0..shards)
                        .map(|index| {
                            out.push(
                                format!("eval/{name}/shard-{}-of-{shards}", index + 1),
                                Step::Shard {
                                    run: r,
                                    split,
                                    index,
                                    of: shards,
                                },
                                shard_stage(store, &stage, &name, index, shards),
                                trained.clone(),
                            )
                        })
                        .collect();
                    out.push(
                        format!("merge/{name}"),
                        Step::Merge { run: r, split },
                        stage,
                        parts,
                    )
                };
                out.evals.insert((r, split), node);
            }
            if curve_run(config, &out.runs).is_some_and(|c| c == &run) {
                let epochs = run
                    .configuration
                    .models
                    .values()
                    .map(|m| epochs_of(config, m))
                    .min()
                    .unwrap_or(1);
                for epoch in 1..=epochs {
                    let stage = curve_stage(config, store, &run, &keys, epoch);
                    let node = out.push(
                        format!("curve/{}-e{epoch}", run.name()),
                        Step::Curve { run: r, epoch },
                        stage,
                        trained.clone(),
                    );
                    out.curve.push(node);
                }
            }
        }
        let evals: Vec<usize> = (0..out.runs.len())
            .flat_map(|r| splits.iter().map(move |s| (r, *s)))
            .map(|k| out.evals[&k])
            .collect();
        let keys: Vec<&str> = evals
            .iter()
            .map(|&n| out.nodes[n].stage.key.as_str())
            .collect();
        let stage = store.stage(
            StageKind::Report,
            "report",
            &json!({"evaluations": keys, "name": config.name}),
        );
        let mut deps = evals;
        deps.extend(out.curve.iter().copied());
        out.report = out.push("report".into(), Step::Report, stage, deps);
        Ok(out)
    }

    fn push(&mut self, id: String, step: Step, stage: Stage, deps: Vec<usize>) -> usize {
        self.nodes.push(Node {
            id,
            step,
            stage,
            deps,
        });
        self.nodes.len() - 1
    }

    /// The node with this id; the error lists the ids there are.
    pub fn find(&self, id: &str) -> Result<usize, ExperimentError> {
        self.nodes.iter().position(|n| n.id == id).ok_or_else(|| {
            let ids: Vec<&str> = self.nodes.iter().map(|n| n.id.as_str()).collect();
            ExperimentError::Config(format!(
                "no stage `{id}` in this experiment; its stages are: {}",
                ids.join(", ")
            ))
        })
    }

    /// The ids of a node's dependencies.
    pub fn dep_ids(&self, node: usize) -> Vec<&str> {
        self.nodes[node]
            .deps
            .iter()
            .map(|&d| self.nodes[d].id.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> ExperimentConfig {
        let text = format!(
            r#"
name = "t"
output_dir = "out"
environment = {{ kind = "embedded" }}
data = {{ train_tasks = 4 }}
models = {{ tiny = {{ preset = "tiny" }} }}
evaluation = {{ splits = ["dev", "test_normal"], tasks_per_split = 5 {extra} }}
[[group]]
systems = ["single", "two_agent"]
sizes = ["tiny"]
schedules = ["prost"]
seeds = [0, 1]
"#
        );
        ExperimentConfig::from_toml(&text).unwrap()
    }

    fn store(tag: &str) -> (Store, std::path::PathBuf) {
        let root = std::env::temp_dir().join(format!("rung-graph-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        (Store::open(&root, &[]).unwrap(), root)
    }

    fn deps(plan: &StagePlan, id: &str) -> Vec<String> {
        let mut d: Vec<String> = plan
            .dep_ids(plan.find(id).unwrap())
            .into_iter()
            .map(String::from)
            .collect();
        d.sort();
        d
    }

    #[test]
    fn edges_follow_what_each_stage_reads() {
        let (store, root) = store("edges");
        let plan = StagePlan::new(&config(""), &store).unwrap();
        // 2 systems × (train, dev) data, a tokenizer, 2 seeds × (1 + 2) roles' training,
        // 4 runs × 2 splits of evaluation, the report.
        assert_eq!(plan.nodes.len(), 4 + 1 + 6 + 8 + 1);
        assert_eq!(deps(&plan, "data/1A-train"), Vec::<String>::new());
        assert_eq!(deps(&plan, "tokenizer"), ["data/1A-train", "data/2A-train"]);
        assert_eq!(
            deps(&plan, "train/2A-executor-tiny-prost-s1"),
            ["data/2A-dev", "data/2A-train", "tokenizer"]
        );
        assert_eq!(
            deps(&plan, "eval/2A-tiny-prost-s1-test_normal"),
            [
                "train/2A-executor-tiny-prost-s1",
                "train/2A-orchestrator-tiny-prost-s1"
            ]
        );
        let report = deps(&plan, "report");
        assert_eq!(report.len(), 8);
        assert!(report.iter().all(|d| d.starts_with("eval/")));
        // Dependencies come first, ids are unique, and every stage has its own directory.
        for (i, node) in plan.nodes.iter().enumerate() {
            assert!(node.deps.iter().all(|&d| d < i), "{}", node.id);
        }
        let dirs: std::collections::BTreeSet<_> = plan.nodes.iter().map(|n| &n.stage.dir).collect();
        assert_eq!(dirs.len(), plan.nodes.len());
        // Seed 0's runs (training then evaluation) come before any stage of seed 1.
        let first_s1 = plan
            .nodes
            .iter()
            .position(|n| n.id.contains("-s1"))
            .unwrap();
        assert!(
            plan.nodes[..first_s1]
                .iter()
                .any(|n| n.id.starts_with("eval/"))
        );
        assert!(
            plan.find("train/nope")
                .unwrap_err()
                .to_string()
                .contains("tokenizer")
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn shards_split_an_evaluation_and_a_merge_writes_its_stage() {
        let (store, root) = store("shards");
        let unsharded = StagePlan::new(&config(""), &store).unwrap();
        let plan = StagePlan::new(&config(", shards = 2"), &store).unwrap();
        let name = "1A-tiny-prost-s0-dev";
        let shard_deps = deps(&plan, &format!("eval/{name}/shard-2-of-2"));
        assert_eq!(shard_deps, ["train/1A-single-tiny-prost-s0"]);
        assert_eq!(
            deps(&plan, &format!("merge/{name}")),
            [
                format!("eval/{name}/shard-1-of-2"),
                format!("eval/{name}/shard-2-of-2")
            ]
        );
        // The merge writes the unsharded evaluation's directory, so results are shared.
        let merge = &plan.nodes[plan.find(&format!("merge/{name}")).unwrap()];
        let eval = &unsharded.nodes[unsharded.find(&format!("eval/{name}")).unwrap()];
        assert_eq!(merge.stage, eval.stage);
        assert!(
            deps(&plan, "report")
                .iter()
                .all(|d| d.starts_with("merge/"))
        );
        assert_eq!(plan.nodes.len(), unsharded.nodes.len() + 8 * 2);
        let _ = std::fs::remove_dir_all(root);
    }
}
