//! rung's own checkpoints: a directory with the HF-style `config.json` and the parameters as a
//! burn record (burnpack, `model.bpk`), plus `adapter.json` when an adapter is attached.
//!
//! Every file is written to a temporary sibling and renamed into place, so an interrupted save
//! leaves the previous checkpoint intact. The record holds exactly the module's parameters
//! (adapter factors included), at the dtype they have in memory; loading checks that it fits the
//! model the config describes.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::hf::CONFIG_FILE;
use crate::lora::{LoraAdapter, LoraConfig, LoraInit};
use crate::model::CausalLm;

/// File name of the parameter record.
pub const RECORD_FILE: &str = "model.bpk";
/// File name of the attached adapter's description.
pub const ADAPTER_FILE: &str = "adapter.json";

/// What `adapter.json` records about an attached adapter; its factors are in the record.
#[derive(Debug, Serialize, Deserialize)]
struct AdapterMeta {
    name: String,
    config: LoraConfig,
}

/// Save `model` into `dir` (created if needed), replacing a previous checkpoint there.
pub fn save_checkpoint(model: &CausalLm, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let record_path = dir.join(RECORD_FILE);
    let tmp = temp_sibling(&record_path);
    remove_if_exists(&tmp)?;
    model
        .clone()
        .into_record()
        .save(&tmp)
        .map_err(|e| ModelError::Record {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
    std::fs::rename(&tmp, &record_path).map_err(|e| ModelError::io(&record_path, e))?;

    let adapter_path = dir.join(ADAPTER_FILE);
    match model.adapter() {
        Some(adapter) => {
            let meta = AdapterMeta {
                name: adapter.name.clone(),
                config: adapter.config.clone(),
            };
            let value = serde_json::to_value(&meta).map_err(|source| ModelError::Json {
                path: adapter_path.clone(),
                source,
            })?;
            write_json_atomic(&adapter_path, &value)?;
        }
        None => remove_if_exists(&adapter_path)?,
    }
    write_json_atomic(&dir.join(CONFIG_FILE), &model.config().to_hf_json())
}

/// Load a checkpoint written by [`save_checkpoint`] onto `device`.
pub fn load_checkpoint(dir: &Path, device: &Device) -> Result<CausalLm> {
    let config = ModelConfig::from_hf_file(&dir.join(CONFIG_FILE))?;
    let mut model = CausalLm::new(&config, device)?;
    let adapter_path = dir.join(ADAPTER_FILE);
    if adapter_path.is_file() {
        let text =
            std::fs::read_to_string(&adapter_path).map_err(|e| ModelError::io(&adapter_path, e))?;
        let meta: AdapterMeta = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: adapter_path.clone(),
            source,
        })?;
        let adapter =
            LoraAdapter::new(meta.name, meta.config, &config, LoraInit::Zeros, 0, device)?;
        model = model.with_adapter(adapter)?;
    }
    let record_path = dir.join(RECORD_FILE);
    if !record_path.is_file() {
        return Err(ModelError::MissingFile {
            file: RECORD_FILE.into(),
            location: dir.display().to_string(),
            hint: " (a rung checkpoint; for HF weights use `hf::load_hf_model`)".into(),
        });
    }
    // Read the whole file now. `ModuleRecord::load` maps tensors to file regions that are read
    // lazily on first use (on the CPU backend, when a weight is first touched): a checkpoint
    // pruned or replaced in between (training goes on, `best/` is overwritten) would then panic
    // or, worse, hand back weights of a different checkpoint.
    let bytes = std::fs::read(&record_path).map_err(|e| ModelError::io(&record_path, e))?;
    let record =
        ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| {
            ModelError::Record {
                path: record_path.clone(),
                message: e.to_string(),
            }
        })?;
    model
        .try_load_record(record)
        .map_err(|e| ModelError::Record {
            path: record_path,
            message: format!("{e} (does config.json match the saved parameters?)"),
        })
}

/// Write `value` as pretty JSON to `path` through a temporary sibling and a rename.
pub(crate) fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Write `bytes` to `path` through a temporary sibling and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path);
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ModelError::io(path, e)),
    }
}
