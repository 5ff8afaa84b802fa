//! Slurm job scripts: one per stage, with the stage kind's resources, the cluster settings of
//! `[executor.slurm]` and the stage's dependencies as `afterok`, running `rung experiment
//! stage <id>`. Pure text, so it is tested without a cluster.

use std::path::{Path, PathBuf};

use crate::config::{BackendKind, ExperimentConfig, SlurmResources};
use crate::graph::Step;

/// Which resources a stage asks for: `[executor.slurm.train]` for training,
/// `[executor.slurm.eval]` for evaluations and their shards, `[executor.slurm.default]` for the
/// cheap rest (data, tokenizer, merges, report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// Data, tokenizer, merges, the report.
    Default,
    /// Training.
    Train,
    /// Evaluation.
    Eval,
}

impl ResourceKind {
    /// The kind of a plan step.
    pub fn of(step: &Step) -> ResourceKind {
        match step {
            Step::Train(_) | Step::Pretrain { .. } => ResourceKind::Train,
            Step::Eval { .. } | Step::Shard { .. } | Step::Curve { .. } => ResourceKind::Eval,
            Step::Data { .. }
            | Step::Tokenizer
            | Step::Corpus
            | Step::Merge { .. }
            | Step::Report => ResourceKind::Default,
        }
    }
}

/// The built-in resources of a kind: a few CPUs for the cheap stages; for training and
/// evaluation more CPUs, memory and time, and one GPU where the backend computes on one.
pub fn default_resources(kind: ResourceKind, backend: BackendKind) -> SlurmResources {
    let gpu = (backend != BackendKind::Cpu).then(|| "gpu:1".to_string());
    let (time, cpus, mem, gres) = match kind {
        ResourceKind::Default => ("2:00:00", 2, "8G", None),
        ResourceKind::Train => ("24:00:00", 8, "32G", gpu),
        ResourceKind::Eval => ("12:00:00", 8, "32G", gpu),
    };
    SlurmResources {
        time: Some(time.into()),
        cpus: Some(cpus),
        mem: Some(mem.into()),
        gres,
        extra: Vec::new(),
    }
}

/// A stage kind's resources: the config's, unset keys from the defaults.
pub fn resources(config: &ExperimentConfig, kind: ResourceKind) -> SlurmResources {
    let slurm = &config.executor.slurm;
    let given = match kind {
        ResourceKind::Default => &slurm.default,
        ResourceKind::Train => &slurm.train,
        ResourceKind::Eval => &slurm.eval,
    };
    given.filled(&default_resources(kind, config.backend))
}

/// The Slurm job name of a stage: `rung.<experiment>.<stage id>` with `/` as `.`, so
/// `squeue --name` finds an experiment's jobs and a person reads which stage a job is.
pub fn job_name(experiment: &str, stage_id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '.'
                }
            })
            .collect()
    };
    format!("rung.{}.{}", clean(experiment), clean(stage_id))
}

/// A stage id as a file name: `/` as `.`.
pub fn file_stem(stage_id: &str) -> String {
    stage_id.replace('/', ".")
}

/// One job to submit.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// `--job-name`.
    pub name: String,
    /// The stage it runs.
    pub stage_id: String,
    /// `--output` (`%j` is the job id).
    pub log: PathBuf,
    /// `--chdir`: the submitting directory, so the config's relative paths mean the same.
    pub workdir: PathBuf,
    /// Resources.
    pub resources: SlurmResources,
    /// Job ids that must finish successfully first (`--dependency=afterok:…`).
    pub after: Vec<u64>,
    /// The command (argv) the job runs.
    pub command: Vec<String>,
}

impl JobSpec {
    /// The job's `sbatch` script.
    pub fn script(&self, config: &ExperimentConfig) -> String {
        let slurm = &config.executor.slurm;
        let mut lines = vec!["#!/bin/bash".to_string()];
        let mut opt = |o: String| lines.push(format!("#SBATCH {o}"));
        opt(format!("--job-name={}", self.name));
        opt(format!("--output={}", self.log.display()));
        opt(format!("--chdir={}", self.workdir.display()));
        opt("--export=ALL".into());
        opt("--nodes=1".into());
        opt("--ntasks=1".into());
        // A failed dependency cancels the job instead of leaving it pending forever.
        opt("--kill-on-invalid-dep=yes".into());
        if !self.after.is_empty() {
            let ids: Vec<String> = self.after.iter().map(u64::to_string).collect();
            opt(format!("--dependency=afterok:{}", ids.join(":")));
        }
        if let Some(partition) = &slurm.partition {
            opt(format!("--partition={partition}"));
        }
        if let Some(account) = &slurm.account {
            opt(format!("--account={account}"));
        }
        let r = &self.resources;
        if let Some(time) = &r.time {
            opt(format!("--time={time}"));
        }
        if let Some(cpus) = r.cpus {
            opt(format!("--cpus-per-task={cpus}"));
        }
        if let Some(mem) = &r.mem {
            opt(format!("--mem={mem}"));
        }
        if let Some(gres) = &r.gres {
            opt(format!("--gres={gres}"));
        }
        for extra in slurm.extra.iter().chain(&r.extra) {
            opt(extra.clone());
        }
        lines.push("set -euo pipefail".into());
        lines.push(format!(
            "echo \"rung stage {}: Slurm job ${{SLURM_JOB_ID:-?}} on $(hostname) at $(date -u \
             +%FT%TZ)\"",
            self.stage_id
        ));
        let command: Vec<String> = self.command.iter().map(|a| quote(a)).collect();
        lines.push(format!("exec {}", command.join(" ")));
        lines.join("\n") + "\n"
    }
}

/// `s` single-quoted for bash.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The command a stage's job runs.
pub fn stage_command(
    rung: &Path,
    config: &Path,
    output_dir: &Path,
    force: &[crate::StageKind],
    stage_id: &str,
) -> Vec<String> {
    let mut argv = vec![
        rung.display().to_string(),
        "experiment".into(),
        "stage".into(),
        "--config".into(),
        config.display().to_string(),
        "--output-dir".into(),
        output_dir.display().to_string(),
    ];
    for kind in force {
        argv.push("--force".into());
        argv.push(kind.name().into());
    }
    argv.push(stage_id.into());
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
output_dir = "out"
backend = "cuda"
environment = { kind = "embedded" }
data = { train_tasks = 4 }
models = { tiny = { preset = "tiny" } }
evaluation = { splits = ["dev"] }
[[group]]
systems = ["single"]
sizes = ["tiny"]
schedules = ["prost"]
seeds = [0]
"#;

    fn config(extra: &str) -> ExperimentConfig {
        ExperimentConfig::from_toml(&format!("{BASE}{extra}")).unwrap()
    }

    fn spec(config: &ExperimentConfig, kind: ResourceKind, after: Vec<u64>) -> String {
        JobSpec {
            name: job_name(&config.name, "train/1A-single-tiny-prost-s0"),
            stage_id: "train/1A-single-tiny-prost-s0".into(),
            log: "/shared/out/slurm/logs/train.1A-%j.log".into(),
            workdir: "/shared/work".into(),
            resources: resources(config, kind),
            after,
            command: stage_command(
                Path::new("/opt/rung"),
                Path::new("/shared/out/slurm/config.toml"),
                Path::new("/shared/out"),
                &[crate::StageKind::Train],
                "train/1A-single-tiny-prost-s0",
            ),
        }
        .script(config)
    }

    #[test]
    fn scripts_carry_resources_dependencies_and_the_stage_command() {
        let config = config(
            r#"
[executor.slurm]
partition = "gpu"
account = "proj"
extra = ["--qos=high"]
train = { cpus = 16, mem = "64G", time = "2-00:00:00", extra = ["--constraint=a100"] }
eval = { gres = "" }
"#,
        );
        let script = spec(&config, ResourceKind::Train, vec![12, 13]);
        for line in [
            "#!/bin/bash",
            "#SBATCH --job-name=rung.t.train.1A-single-tiny-prost-s0",
            "#SBATCH --output=/shared/out/slurm/logs/train.1A-%j.log",
            "#SBATCH --dependency=afterok:12:13",
            "#SBATCH --kill-on-invalid-dep=yes",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=proj",
            "#SBATCH --cpus-per-task=16",
            "#SBATCH --mem=64G",
            "#SBATCH --time=2-00:00:00",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --qos=high",
            "#SBATCH --constraint=a100",
            "#SBATCH --export=ALL",
            "exec /opt/rung experiment stage --config /shared/out/slurm/config.toml \
             --output-dir /shared/out --force train train/1A-single-tiny-prost-s0",
        ] {
            assert!(
                script.lines().any(|l| l == line),
                "missing `{line}` in\n{script}"
            );
        }
        assert!(script.contains("#SBATCH --chdir=/shared/work\n"));
        // Directives must precede the first command, or sbatch ignores them.
        let lines: Vec<&str> = script.lines().collect();
        let first_command = lines.iter().position(|l| l.starts_with("set ")).unwrap();
        let last_directive = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .unwrap();
        assert!(last_directive < first_command);

        // An evaluation without a GPU (`gres = ""`) keeps the built-in CPUs and memory; no
        // dependencies, no dependency line.
        let eval = spec(&config, ResourceKind::Eval, vec![]);
        assert!(!eval.contains("--gres"), "{eval}");
        assert!(!eval.contains("--dependency"), "{eval}");
        assert!(eval.contains("#SBATCH --cpus-per-task=8\n"));
        assert!(!eval.contains("--constraint"), "train's extras are train's");
        // The cheap stages take the defaults: no GPU even on CUDA.
        let cheap = spec(&config, ResourceKind::Default, vec![1]);
        assert!(!cheap.contains("--gres"));
        assert!(cheap.contains("#SBATCH --mem=8G\n"));
    }

    #[test]
    fn a_cpu_backend_asks_for_no_gpu_and_arguments_are_quoted() {
        let cpu = ExperimentConfig::from_toml(&BASE.replace("\"cuda\"", "\"cpu\"")).unwrap();
        assert!(!spec(&cpu, ResourceKind::Train, vec![]).contains("--gres"));
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("/x/y-1.toml"), "/x/y-1.toml");
        assert_eq!(quote(""), "''");
        assert_eq!(
            job_name("my exp", "eval/a/shard-1-of-2"),
            "rung.my.exp.eval.a.shard-1-of-2"
        );
    }

    #[test]
    fn slurm_settings_are_checked_by_key() {
        for (extra, key) in [
            ("[executor.slurm]\nparition = \"gpu\"", "parition"),
            ("[executor.slurm.train]\ngpus = 2", "gpus"),
            (
                "[executor.slurm]\nextra = [\"qos=high\"]",
                "executor.slurm.extra[0]",
            ),
            (
                "[executor.slurm.eval]\ncpus = 0",
                "executor.slurm.eval.cpus",
            ),
            (
                "[executor.slurm.default]\nmem = \"8 G\"",
                "executor.slurm.default.mem",
            ),
            ("[executor.lsf]\nqueue = \"x\"", "lsf"),
        ] {
            let err = ExperimentConfig::from_toml(&format!("{BASE}{extra}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(key),
                "`{extra}` gives `{err}`, not naming `{key}`"
            );
        }
        let err = ExperimentConfig::from_toml(&BASE.replace(
            "splits = [\"dev\"]",
            "splits = [\"dev\"], tasks_per_split = 2, shards = 3",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("evaluation.shards"), "{err}");
    }
}
