//! The runs of an experiment, and the training jobs they need.
//!
//! A **run** is one agent system with one model per role, trained with one schedule and seed,
//! then evaluated. A **training job** is one role's model of one system: runs share a job when
//! they need the same (system, role, model, schedule, seed) — e.g. a mixed allocation reuses
//! the uniform runs' executors — so nothing is trained twice.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rung_trajectory::{Role, SystemKind};
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;

/// One role's model to train.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TrainJob {
    /// System whose expert data trains it.
    pub system: SystemKind,
    /// The role.
    pub role: Role,
    /// Model name (`[models]`).
    pub model: String,
    /// Schedule name.
    pub schedule: String,
    /// Seed.
    pub seed: u64,
}

impl TrainJob {
    /// A readable, path-safe name.
    pub fn name(&self) -> String {
        format!(
            "{}-{}-{}-{}-s{}",
            short(self.system),
            self.role.name(),
            self.model,
            self.schedule,
            self.seed
        )
    }
}

/// A system configuration without its seed: what the report compares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Configuration {
    /// The system.
    pub system: SystemKind,
    /// Model name per role.
    pub models: BTreeMap<Role, String>,
    /// Schedule name.
    pub schedule: String,
}

impl Configuration {
    /// The allocation as text: `small` when uniform, else `orchestrator=small,executor=tiny`.
    pub fn allocation(&self) -> String {
        let distinct: BTreeSet<&String> = self.models.values().collect();
        if distinct.len() == 1 {
            return distinct.into_iter().next().cloned().unwrap_or_default();
        }
        self.models
            .iter()
            .map(|(role, model)| format!("{}={model}", role.name()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether every role has the same model.
    pub fn uniform(&self) -> bool {
        self.models.values().collect::<BTreeSet<_>>().len() == 1
    }

    /// The same configuration under another schedule.
    pub fn with_schedule(&self, schedule: &str) -> Configuration {
        Configuration {
            schedule: schedule.to_string(),
            ..self.clone()
        }
    }
}

impl fmt::Display for Configuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            short(self.system),
            self.allocation(),
            self.schedule
        )
    }
}

/// One run: a configuration and a seed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Run {
    /// What is run.
    pub configuration: Configuration,
    /// Training seed.
    pub seed: u64,
}

impl Run {
    /// The training job of each role.
    pub fn jobs(&self) -> BTreeMap<Role, TrainJob> {
        self.configuration
            .models
            .iter()
            .map(|(&role, model)| {
                (
                    role,
                    TrainJob {
                        system: self.configuration.system,
                        role,
                        model: model.clone(),
                        schedule: self.configuration.schedule.clone(),
                        seed: self.seed,
                    },
                )
            })
            .collect()
    }

    /// A readable, path-safe name.
    pub fn name(&self) -> String {
        let allocation = self.configuration.allocation().replace([',', '='], "_");
        format!(
            "{}-{}-{}-s{}",
            short(self.configuration.system),
            allocation,
            self.configuration.schedule,
            self.seed
        )
    }
}

/// Short system names for tables and plots: `1A`, `2A`, `3A`.
pub fn short(system: SystemKind) -> &'static str {
    match system {
        SystemKind::Single => "1A",
        SystemKind::TwoAgent => "2A",
        SystemKind::ThreeAgent => "3A",
    }
}

/// Every run of the experiment, deduplicated and sorted.
pub fn runs(config: &ExperimentConfig) -> Vec<Run> {
    let mut runs = BTreeSet::new();
    for group in &config.groups {
        for &system in &group.systems {
            let mut allocations: Vec<BTreeMap<Role, String>> = group
                .sizes
                .iter()
                .map(|size| {
                    system
                        .roles()
                        .iter()
                        .map(|&role| (role, size.clone()))
                        .collect()
                })
                .collect();
            allocations.extend(group.allocations.iter().cloned());
            for models in allocations {
                for schedule in &group.schedules {
                    for &seed in &group.seeds {
                        runs.insert(Run {
                            configuration: Configuration {
                                system,
                                models: models.clone(),
                                schedule: schedule.clone(),
                            },
                            seed,
                        });
                    }
                }
            }
        }
    }
    runs.into_iter().collect()
}

/// The distinct training jobs of `runs`, sorted.
pub fn jobs(runs: &[Run]) -> Vec<TrainJob> {
    let set: BTreeSet<TrainJob> = runs.iter().flat_map(|r| r.jobs().into_values()).collect();
    set.into_iter().collect()
}

/// The distinct systems of `runs` (each needs expert data).
pub fn systems(runs: &[Run]) -> Vec<SystemKind> {
    let set: BTreeSet<SystemKind> = runs.iter().map(|r| r.configuration.system).collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
name = "t"
output_dir = "out"
environment = { kind = "embedded" }
data = { train_tasks = 4 }
models = { tiny = { preset = "tiny" }, small = { preset = "small" } }
evaluation = { splits = ["dev"] }
[[group]]
systems = ["single", "two_agent"]
sizes = ["tiny", "small"]
schedules = ["prost", "all"]
seeds = [0, 1]
[[group]]
systems = ["two_agent"]
allocations = [{ orchestrator = "small", executor = "tiny" }]
schedules = ["prost"]
seeds = [0]
[[group]]
systems = ["single"]
sizes = ["tiny"]
schedules = ["prost"]
seeds = [0]
"#;

    #[test]
    fn groups_expand_to_distinct_runs_and_shared_jobs() {
        let config = ExperimentConfig::from_toml(CONFIG).unwrap();
        let runs = runs(&config);
        // 2 systems × 2 sizes × 2 schedules × 2 seeds, plus one mixed run; the third group
        // repeats a run of the first.
        assert_eq!(runs.len(), 17);
        let jobs = jobs(&runs);
        // single: 2 sizes × 2 schedules × 2 seeds = 8; two-agent: 2 roles × 8 = 16; the mixed
        // run's jobs (small orchestrator, tiny executor, prost, seed 0) already exist.
        assert_eq!(jobs.len(), 24);
        let mixed = runs
            .iter()
            .find(|r| !r.configuration.uniform())
            .expect("the mixed run");
        assert_eq!(
            mixed.configuration.allocation(),
            "orchestrator=small,executor=tiny"
        );
        assert_eq!(mixed.name(), "2A-orchestrator_small_executor_tiny-prost-s0");
        for job in mixed.jobs().values() {
            assert!(jobs.contains(job), "{job:?} is shared with a uniform run");
        }
        assert_eq!(systems(&runs), [SystemKind::Single, SystemKind::TwoAgent]);
    }
}
