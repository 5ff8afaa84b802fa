//! Hugging Face checkpoints: locating their files (a local directory or the local HF hub cache)
//! and loading their safetensors weights into a [`CausalLm`].
//!
//! Weights may be one `model.safetensors` or shards listed in `model.safetensors.index.json`, in
//! f32, f16 or bf16; they are cast to f32 on load. HF stores Linear weights `[out, in]` and burn
//! `[in, out]`; burn-store's `PyTorchToBurnAdapter` transposes them and renames norm `weight` to
//! burn's `gamma`, and the `model.` prefix of HF names is dropped to reach rung's module paths.
//! Every load is checked: a model parameter no file provides, a file tensor no parameter takes,
//! or a shape mismatch is an error naming the tensors.
//!
//! The hub lookup never touches the network: it reads the standard cache (`$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`) that `huggingface-cli download` or Python's `transformers` fill.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::store::{
    BurnToPyTorchAdapter, ChainAdapter, FloatCastAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::{DType, Device};
use hf_hub::{Cache, Repo, RepoType};
use serde_json::Value;

use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::model::CausalLm;

/// Name of the single-file weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Name of the shard index of sharded weights.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of the model config.
pub const CONFIG_FILE: &str = "config.json";

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A directory holding `config.json` and the weights.
    Dir(PathBuf),
    /// A hub repository, read from the local HF cache only.
    Hub {
        /// `owner/name`.
        repo: String,
        /// Branch, tag or commit hash (`main` by default).
        revision: String,
    },
}

impl ModelSource {
    /// Interpret a command-line spec: an existing path is a directory; otherwise
    /// `owner/name` or `owner/name@revision` is a hub repository.
    pub fn parse(spec: &str) -> Self {
        let path = Path::new(spec);
        if path.exists()
            || spec.starts_with('.')
            || spec.starts_with('/')
            || spec.matches('/').count() != 1
        {
            return ModelSource::Dir(path.to_path_buf());
        }
        match spec.split_once('@') {
            Some((repo, revision)) => ModelSource::Hub {
                repo: repo.to_string(),
                revision: revision.to_string(),
            },
            None => ModelSource::Hub {
                repo: spec.to_string(),
                revision: "main".to_string(),
            },
        }
    }

    /// Locate the files in a directory or in the default HF cache.
    pub fn resolve(&self) -> Result<ModelFiles> {
        self.resolve_in(&Cache::from_env())
    }

    /// Locate the files, reading hub repositories from `cache`.
    pub fn resolve_in(&self, cache: &Cache) -> Result<ModelFiles> {
        match self {
            ModelSource::Dir(dir) => ModelFiles::in_dir(dir),
            ModelSource::Hub { repo, revision } => ModelFiles::in_cache(cache, repo, revision),
        }
    }
}

/// The files of one HF checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    /// `config.json`.
    pub config: PathBuf,
    /// Safetensors files holding the weights (one, or every shard in the index).
    pub weights: Vec<PathBuf>,
    /// `tokenizer.json`, when present.
    pub tokenizer: Option<PathBuf>,
}

impl ModelFiles {
    /// The files of a local model directory.
    pub fn in_dir(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(ModelError::MissingFile {
                file: dir.display().to_string(),
                location: "the file system".into(),
                hint: " (expected a model directory or a hub id `owner/name[@revision]`)".into(),
            });
        }
        let location = dir.display().to_string();
        let find = |file: &str| {
            let path = dir.join(file);
            path.is_file().then_some(path)
        };
        Self::collect(&location, find, "")
    }

    /// The files of a hub repository in the local cache (no network access).
    pub fn in_cache(cache: &Cache, repo_id: &str, revision: &str) -> Result<Self> {
        let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
        let snapshot_dir = cache
            .path()
            .join(repo.folder_name())
            .join("snapshots")
            .join(revision);
        let cached = cache.repo(repo);
        let find = |file: &str| {
            cached.get(file).or_else(|| {
                // A commit hash has no `refs/` entry; its snapshot directory is named after it.
                let path = snapshot_dir.join(file);
                path.is_file().then_some(path)
            })
        };
        let location = format!(
            "the HF cache {} for {repo_id}@{revision}",
            cache.path().display()
        );
        let hint = format!(
            " (this build reads the cache only; download it with \
             `huggingface-cli download {repo_id} --revision {revision}` where there is network)"
        );
        Self::collect(&location, find, &hint)
    }

    fn collect(location: &str, find: impl Fn(&str) -> Option<PathBuf>, hint: &str) -> Result<Self> {
        let missing = |file: &str| ModelError::MissingFile {
            file: file.to_string(),
            location: location.to_string(),
            hint: hint.to_string(),
        };
        let config = find(CONFIG_FILE).ok_or_else(|| missing(CONFIG_FILE))?;
        let weights = if let Some(index) = find(INDEX_FILE) {
            shard_names(&index)?
                .into_iter()
                .map(|shard| find(&shard).ok_or_else(|| missing(&shard)))
                .collect::<Result<Vec<_>>>()?
        } else if let Some(single) = find(WEIGHTS_FILE) {
            vec![single]
        } else {
            return Err(ModelError::MissingFile {
                file: format!("{WEIGHTS_FILE} (or {INDEX_FILE})"),
                location: location.to_string(),
                hint: hint.to_string(),
            });
        };
        Ok(Self {
            config,
            weights,
            tokenizer: find("tokenizer.json"),
        })
    }
}

/// The distinct shard file names of a `model.safetensors.index.json`, sorted.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::io(index, e))?;
    let json: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: index.to_path_buf(),
        source,
    })?;
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| ModelError::ConfigKey {
            origin: index.display().to_string(),
            key: "weight_map".into(),
            problem: "missing or not an object".into(),
        })?;
    let mut shards = BTreeSet::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| ModelError::ConfigKey {
            origin: index.display().to_string(),
            key: format!("weight_map.{tensor}"),
            problem: "expected a file name".into(),
        })?;
        shards.insert(file.to_string());
    }
    Ok(shards.into_iter().collect())
}

/// Load an HF checkpoint (config and weights) onto `device`, in f32.
pub fn load_hf_model(source: &ModelSource, device: &Device) -> Result<CausalLm> {
    let files = source.resolve()?;
    load_hf_files(&files, device)
}

/// Load a checkpoint from already located files.
pub fn load_hf_files(files: &ModelFiles, device: &Device) -> Result<CausalLm> {
    let config = ModelConfig::from_hf_file(&files.config)?;
    let model = CausalLm::new(&config, device)?;
    load_safetensors(model, &files.weights)
}

/// Tensors HF checkpoints may carry that are not parameters: rotary caches of old exports, and
/// the (identical) head of a tied model.
fn ignorable(name: &str, tied: bool) -> bool {
    name.ends_with("rotary_emb.inv_freq") || (tied && name == "lm_head.weight")
}

/// Load HF-named safetensors `files` into `model`, checking that together they provide every
/// parameter exactly and nothing else.
pub fn load_safetensors(mut model: CausalLm, files: &[PathBuf]) -> Result<CausalLm> {
    if model.adapter().is_some() {
        return Err(ModelError::Adapter(
            "load base weights before attaching an adapter".into(),
        ));
    }
    let origin = files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let tied = model.config().tie_word_embeddings;
    let mut still_missing: Option<BTreeSet<String>> = None;
    let mut unused = Vec::new();
    for file in files {
        let mut store = SafetensorsStore::from_file(file)
            .with_from_adapter(ChainAdapter::new(
                PyTorchToBurnAdapter,
                FloatCastAdapter::to(DType::F32),
            ))
            .with_key_remapping(r"^model\.", "")
            .allow_partial(true)
            .validate(false);
        let result = model
            .load_from(&mut store)
            .map_err(|e| ModelError::Safetensors {
                path: file.clone(),
                message: e.to_string(),
            })?;
        if !result.errors.is_empty() {
            let details = result
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ModelError::WeightMismatch {
                origin: file.display().to_string(),
                details,
            });
        }
        let missing: BTreeSet<String> = result
            .missing
            .iter()
            .map(|(path, _)| path.clone())
            .collect();
        still_missing = Some(match still_missing {
            None => missing,
            Some(before) => before.intersection(&missing).cloned().collect(),
        });
        unused.extend(
            result
                .unused
                .into_iter()
                .filter(|name| !ignorable(name, tied)),
        );
    }
    let missing: Vec<String> = still_missing.unwrap_or_default().into_iter().collect();
    if !missing.is_empty() || !unused.is_empty() {
        let mut details = Vec::new();
        if !missing.is_empty() {
            details.push(format!(
                "{} model parameter(s) not found in the files: {}",
                missing.len(),
                abbreviate(&missing)
            ));
        }
        if !unused.is_empty() {
            details.push(format!(
                "{} tensor(s) in the files match no parameter: {}",
                unused.len(),
                abbreviate(&unused)
            ));
        }
        details.push(
            "check that config.json describes these weights (layers, sizes, tie_word_embeddings)"
                .into(),
        );
        return Err(ModelError::WeightMismatch {
            origin,
            details: details.join("; "),
        });
    }
    Ok(model)
}

/// Write `model` as an HF checkpoint directory (`config.json` + `model.safetensors`, f32) that
/// transformers loads with `AutoModelForCausalLM.from_pretrained`. An attached adapter must be
/// merged or detached first; use [`crate::peft`] to export it separately.
pub fn save_hf_model(model: &CausalLm, dir: &Path) -> Result<()> {
    if model.adapter().is_some() {
        return Err(ModelError::Adapter(
            "merge or detach the adapter before exporting HF weights".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let path = dir.join(WEIGHTS_FILE);
    let mut store = SafetensorsStore::from_file(&path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .with_key_remapping(r"^(embed_tokens|layers|norm)\.", "model.$1.")
        .clear_metadata()
        .metadata("format", "pt")
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| ModelError::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
    crate::checkpoint::write_json_atomic(&dir.join(CONFIG_FILE), &model.config().to_hf_json())
}

/// At most ten names, then a count.
pub(crate) fn abbreviate(names: &[String]) -> String {
    let mut sorted: BTreeMap<&str, ()> = BTreeMap::new();
    for name in names {
        sorted.insert(name, ());
    }
    let shown: Vec<&str> = sorted.keys().take(10).copied().collect();
    let more = sorted.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!(
            ModelSource::parse("Qwen/Qwen2.5-0.5B"),
            ModelSource::Hub {
                repo: "Qwen/Qwen2.5-0.5B".into(),
                revision: "main".into()
            }
        );
        assert_eq!(
            ModelSource::parse("Qwen/Qwen2.5-0.5B@v1"),
            ModelSource::Hub {
                repo: "Qwen/Qwen2.5-0.5B".into(),
                revision: "v1".into()
            }
        );
        assert_eq!(
            ModelSource::parse("./models/x"),
            ModelSource::Dir(PathBuf::from("./models/x"))
        );
        assert_eq!(
            ModelSource::parse("/abs"),
            ModelSource::Dir(PathBuf::from("/abs"))
        );
    }

    #[test]
    fn abbreviates_long_lists() {
        let names: Vec<String> = (0..12).map(|i| format!("t{i:02}")).collect();
        let s = abbreviate(&names);
        assert!(s.ends_with("and 2 more"), "{s}");
    }
}
