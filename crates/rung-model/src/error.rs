//! The one error type of the model crate.
//!
//! Every variant says what failed and, where there is one, how to fix it: a missing file names the
//! file and the directory that was searched, a bad config key names the key, a weight mismatch
//! names the tensors.

use std::path::PathBuf;

/// Errors from building, loading, saving and running models.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A JSON file (config, index, adapter config) is not valid JSON.
    #[error("{path} is not valid JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },

    /// A config key is missing or has the wrong type or value.
    #[error("config {origin}: key `{key}`: {problem}")]
    ConfigKey {
        /// Where the config came from (a path or "preset").
        origin: String,
        /// The offending key.
        key: String,
        /// What is wrong with it.
        problem: String,
    },

    /// `model_type` names an architecture this crate does not implement.
    #[error(
        "config {origin}: unsupported model_type `{model_type}`; supported: {supported} \
         (architectures with RMSNorm, rotary embeddings, GQA and a SwiGLU MLP)"
    )]
    UnsupportedModelType {
        /// Where the config came from.
        origin: String,
        /// The `model_type` found.
        model_type: String,
        /// The supported values, comma separated.
        supported: String,
    },

    /// An invalid configuration (inconsistent sizes, unknown preset, ...).
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),

    /// A required file is absent from a model directory or from the local HF cache.
    #[error("missing file `{file}` in {location}{hint}")]
    MissingFile {
        /// The file name that was looked for.
        file: String,
        /// The directory or cache entry that was searched.
        location: String,
        /// How to fix it (may be empty).
        hint: String,
    },

    /// A safetensors file could not be read (corrupt, truncated or not safetensors).
    #[error("cannot read safetensors file {path}: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The reader's message.
        message: String,
    },

    /// Loading weights left some model parameters without a value, found tensors that match
    /// no parameter, or found tensors with the wrong shape.
    #[error("weights in {origin} do not match the model: {details}")]
    WeightMismatch {
        /// The file(s) loaded.
        origin: String,
        /// Which tensors were missing, unused or mis-shaped.
        details: String,
    },

    /// A burn record (rung's own checkpoint format) could not be saved or loaded.
    #[error("checkpoint {path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// The recorder's message.
        message: String,
    },

    /// A LoRA adapter is inconsistent with its configuration or with the model.
    #[error("LoRA adapter: {0}")]
    Adapter(String),

    /// Invalid arguments to a forward pass or to generation.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Reading a tensor back from the device failed.
    #[error("reading a tensor from the device failed: {0}")]
    TensorRead(String),

    /// The batching engine is gone (its thread stopped or panicked) or failed a whole step.
    #[error("inference engine: {0}")]
    Engine(String),
}

/// Result alias used across the crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    /// An [`ModelError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
