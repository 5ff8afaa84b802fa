//! Helpers shared by the trainer's integration tests: hand-built single-agent trajectories, a
//! small training config, scratch folders and bitwise comparison of parameters.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rung_curriculum::{Curriculum, Schedule};
use rung_segment::build::EpisodeBuilder;
use rung_train::TrainConfig;
use rung_trajectory::{Episode, Role, SystemKind};

const APPS: [&str; 4] = ["phone", "pay", "mail", "notes"];

pub fn episode(i: usize) -> Episode {
    let task = format!("{:07x}_1", 0xabc0000 + i);
    let mut b = EpisodeBuilder::new(SystemKind::Single, &task, "Do two things.");
    let c = b.open(
        Role::Single,
        "You write code.",
        &format!("Task {i}: do two things."),
    );
    let app = APPS[i % 4];
    b.code(
        c,
        Some(0),
        &format!("t = apis.{app}.login(u={i})"),
        true,
        "ok",
    );
    b.code(
        c,
        Some(1),
        &format!("print(apis.{app}.work(t, {i}))"),
        true,
        "done; the result is stored and the task can go on with the next step now.",
    );
    b.finish()
}

/// A scratch directory removed when dropped.
pub struct TmpDir(pub PathBuf);

impl std::ops::Deref for TmpDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tmp(name: &str) -> TmpDir {
    let dir = std::env::temp_dir().join(format!("rung-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TmpDir(dir)
}

pub fn write_data(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("data.jsonl");
    let episodes: Vec<Episode> = (0..n).map(episode).collect();
    rung_trajectory::write_file(&path, &episodes).unwrap();
    path
}

pub fn config(dir: &Path, n: usize) -> TrainConfig {
    let data = write_data(dir, n);
    let mut c = TrainConfig::new(data, dir.join("run"));
    c.gold_plans = false;
    c.validation_fraction = 0.0;
    c.curriculum = Curriculum {
        schedule: Schedule::All,
        ..Curriculum::default()
    };
    c.progress = false;
    c.batch_size = 2;
    c.epochs = 2;
    c.lr = 3e-3;
    c.warmup_steps = 1;
    c.max_seq_len = 256;
    c
}

/// Step losses from a run's `metrics.jsonl`.
pub fn step_losses(run: &Path) -> Vec<f64> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "step")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

pub fn assert_same(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, va) in a {
        let vb = &b[k];
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "parameter {k} differs"
        );
    }
}
