//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Int, Tensor, TensorData};
use rung_model::CausalLm;
use serde_json::Value;

/// `tests/fixtures`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `reference.json` written by `make_fixtures.py`.
pub fn reference() -> Value {
    read_json(&fixtures().join("reference.json"))
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The token sequences of a reference file.
pub fn sequences(reference: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(reference["sequences"].clone()).unwrap()
}

/// Logits `[seq][pos][vocab]` stored under `key`.
pub fn reference_logits(reference: &Value, key: &str) -> Vec<Vec<Vec<f32>>> {
    serde_json::from_value(reference[key].clone()).unwrap()
}

pub fn ids_tensor(rows: &[Vec<u32>], device: &Device) -> Tensor<2, Int> {
    let seq = rows[0].len();
    let flat: Vec<i64> = rows.iter().flatten().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), seq]), device)
}

/// Logits `[pos][vocab]` of one unpadded sequence.
pub fn logits_of(model: &CausalLm, seq: &[u32]) -> Vec<Vec<f32>> {
    let logits = model.forward(ids_tensor(&[seq.to_vec()], &model.device()));
    let [_, t, v] = logits.dims();
    let flat: Vec<f32> = logits.try_into_vec_as::<f32>().unwrap();
    (0..t).map(|i| flat[i * v..(i + 1) * v].to_vec()).collect()
}

pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "different number of positions");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "different vocab");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Max abs difference between a model's logits and reference logits over all sequences.
pub fn max_error_vs(model: &CausalLm, seqs: &[Vec<u32>], want: &[Vec<Vec<f32>>]) -> f32 {
    seqs.iter()
        .zip(want)
        .map(|(seq, want)| max_abs_diff(&logits_of(model, seq), want))
        .fold(0.0, f32::max)
}

/// A fresh scratch directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rung-model-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copy every file of `from` into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}
