//! Model hyper-parameters: parsed from a Hugging Face `config.json` (Qwen2 and Llama families) or
//! taken from a named preset for from-scratch training.
//!
//! One struct describes both: the architecture is the same decoder (RMSNorm, rotary embeddings,
//! grouped-query attention, SwiGLU MLP); the families differ only in q/k/v biases and the keys of
//! their config files.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{ModelError, Result};

/// The checkpoint family, i.e. the HF `model_type`. It decides which config keys and weight
/// names a checkpoint uses and whether q/k/v projections carry biases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Qwen2 / Qwen2.5: q/k/v projections with bias.
    Qwen2,
    /// Llama 2/3: no biases anywhere.
    Llama,
}

impl Family {
    /// The HF `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Qwen2 => "qwen2",
            Family::Llama => "llama",
        }
    }

    /// The HF architecture class name written into `config.json`.
    pub fn architecture(self) -> &'static str {
        match self {
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Llama => "LlamaForCausalLM",
        }
    }

    /// Every supported `model_type`, for error messages.
    pub const SUPPORTED: &'static str = "qwen2, llama";

    fn parse(model_type: &str) -> Option<Self> {
        match model_type {
            "qwen2" => Some(Family::Qwen2),
            "llama" => Some(Family::Llama),
            _ => None,
        }
    }
}

/// Frequency rescaling of rotary embeddings for long contexts.
///
/// Only Llama 3's scheme is implemented because it is the one the Llama 3.x checkpoints this
/// project targets (Llama 3.2 1B/3B) ship with; Qwen2.5 checkpoints carry none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "lowercase")]
pub enum RopeScaling {
    /// `rope_type: "llama3"`: low frequencies are divided by `factor`, high ones kept, and the
    /// band in between interpolated (HF `_compute_llama3_parameters`).
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// Wavelength threshold (as a fraction of the original context) of the low band.
        low_freq_factor: f64,
        /// Wavelength threshold (as a fraction of the original context) of the high band.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: usize,
    },
}

/// Hyper-parameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Checkpoint family (decides key names and biases).
    pub family: Family,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP's hidden layer.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than the query heads).
    pub num_key_value_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// Base of the rotary embedding frequencies.
    pub rope_theta: f64,
    /// Optional long-context rescaling of the rotary frequencies.
    pub rope_scaling: Option<RopeScaling>,
    /// Vocabulary size (rows of the embedding and of the LM head).
    pub vocab_size: usize,
    /// Longest sequence the model was trained for (informational; positions are not capped).
    pub max_position_embeddings: usize,
    /// Whether the LM head reuses the token embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether the q/k/v projections have biases (always for Qwen2, never for Llama).
    pub attention_bias: bool,
    /// Beginning-of-sequence token, when the checkpoint declares one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token(s), when the checkpoint declares them; generation stops on them.
    pub eos_token_ids: Vec<u32>,
}

/// Names of the built-in presets, smallest first.
pub const PRESET_NAMES: [&str; 5] = ["tiny", "small", "base", "medium", "large"];

/// Vocabulary size of the presets: a byte-level BPE trained on the experiment's corpus.
pub const PRESET_VOCAB: usize = 4096;

impl ModelConfig {
    /// A preset for from-scratch training, by name (see [`PRESET_NAMES`]).
    ///
    /// All presets are Llama-family (no biases), tie the embeddings, use a vocabulary of
    /// [`PRESET_VOCAB`] tokens, head width 32 or 64, grouped-query attention, RoPE theta 10000 and
    /// a context of 2048 tokens. Exact parameter counts (asserted in tests, from the formula and
    /// from the instantiated module):
    ///
    /// | preset   | hidden | layers | heads/kv | mlp  | parameters |
    /// |----------|-------:|-------:|---------:|-----:|-----------:|
    /// | `tiny`   | 128    | 3      | 4/2      | 384  | 1,115,008  |
    /// | `small`  | 256    | 5      | 4/2      | 768  | 4,983,552  |
    /// | `base`   | 384    | 5      | 6/2      | 1024 | 9,441,408  |
    /// | `medium` | 512    | 8      | 8/4      | 1408 | 25,698,816 |
    /// | `large`  | 768    | 7      | 12/4     | 2048 | 47,197,440 |
    pub fn preset(name: &str) -> Result<Self> {
        let (hidden, layers, heads, kv, mlp) = match name {
            // 1,115,008 parameters.
            "tiny" => (128, 3, 4, 2, 384),
            // 4,983,552 parameters.
            "small" => (256, 5, 4, 2, 768),
            // 9,441,408 parameters.
            "base" => (384, 5, 6, 2, 1024),
            // 25,698,816 parameters.
            "medium" => (512, 8, 8, 4, 1408),
            // 47,197,440 parameters.
            "large" => (768, 7, 12, 4, 2048),
            other => {
                return Err(ModelError::InvalidConfig(format!(
                    "unknown preset `{other}`; presets: {}",
                    PRESET_NAMES.join(", ")
                )));
            }
        };
        Ok(Self {
            family: Family::Llama,
            hidden_size: hidden,
            intermediate_size: mlp,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: hidden / heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: None,
            vocab_size: PRESET_VOCAB,
            max_position_embeddings: 2048,
            tie_word_embeddings: true,
            attention_bias: false,
            bos_token_id: None,
            eos_token_ids: Vec::new(),
        })
    }

    /// Read and parse an HF `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_hf_json(&value, &path.display().to_string())
    }

    /// Parse an HF `config.json` already read as JSON; `origin` names it in errors.
    ///
    /// Required keys: `model_type` (`qwen2` or `llama`), `hidden_size`, `intermediate_size`,
    /// `num_hidden_layers`, `num_attention_heads`, `vocab_size`, `rms_norm_eps`. Optional, with
    /// transformers' defaults: `num_key_value_heads` (= heads), `head_dim` (= hidden / heads),
    /// `rope_theta` (10000), `max_position_embeddings` (2048), `tie_word_embeddings` (false),
    /// `rope_scaling` (none; `llama3` supported), `hidden_act` (must be `silu`).
    pub fn from_hf_json(value: &Value, origin: &str) -> Result<Self> {
        let obj = value.as_object().ok_or_else(|| ModelError::ConfigKey {
            origin: origin.to_string(),
            key: "<root>".into(),
            problem: "expected a JSON object".into(),
        })?;
        let keys = Keys { obj, origin };
        let model_type = keys.string("model_type")?;
        let family =
            Family::parse(&model_type).ok_or_else(|| ModelError::UnsupportedModelType {
                origin: origin.to_string(),
                model_type: model_type.clone(),
                supported: Family::SUPPORTED.to_string(),
            })?;

        if let Some(act) = keys.opt_string("hidden_act")?
            && act != "silu"
        {
            return Err(keys.bad(
                "hidden_act",
                format!("`{act}` is not supported (only silu)"),
            ));
        }
        let attention_bias = match family {
            Family::Qwen2 => {
                if keys.opt_bool("use_sliding_window")?.unwrap_or(false) {
                    return Err(keys.bad(
                        "use_sliding_window",
                        "sliding-window attention is not supported; set it to false".into(),
                    ));
                }
                true
            }
            Family::Llama => {
                for key in ["attention_bias", "mlp_bias"] {
                    if keys.opt_bool(key)?.unwrap_or(false) {
                        return Err(keys.bad(key, "Llama biases are not supported".into()));
                    }
                }
                false
            }
        };

        let hidden_size = keys.usize("hidden_size")?;
        let num_attention_heads = keys.usize("num_attention_heads")?;
        let num_key_value_heads = keys
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        let head_dim = match keys.opt_usize("head_dim")? {
            Some(d) => d,
            None if num_attention_heads > 0 => hidden_size / num_attention_heads,
            None => 0,
        };
        // transformers 4 writes `rope_theta` and `rope_scaling` at the top level; transformers 5
        // writes both inside `rope_parameters`. Hub checkpoints come in either form.
        let rope_parameters = match obj.get("rope_parameters") {
            None | Some(Value::Null) => None,
            Some(Value::Object(params)) => Some(params),
            Some(other) => {
                return Err(keys.bad(
                    "rope_parameters",
                    format!("expected an object, found {other}"),
                ));
            }
        };
        let rope_theta = match keys.opt_f64("rope_theta")? {
            Some(theta) => theta,
            None => match rope_parameters {
                Some(params) => Keys {
                    obj: params,
                    origin,
                }
                .opt_f64("rope_theta")
                .map_err(|e| nest(e, "rope_parameters"))?
                .unwrap_or(10_000.0),
                None => 10_000.0,
            },
        };
        let rope_scaling = match (obj.get("rope_scaling"), rope_parameters) {
            (Some(v), _) if !v.is_null() => parse_rope_scaling(v, origin, "rope_scaling")?,
            (_, Some(params)) => {
                parse_rope_scaling(&Value::Object(params.clone()), origin, "rope_parameters")?
            }
            _ => None,
        };
        let eos_token_ids = match obj.get("eos_token_id") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    token_id(v).ok_or_else(|| keys.bad("eos_token_id", "not a token id".into()))
                })
                .collect::<Result<_>>()?,
            Some(v) => {
                vec![token_id(v).ok_or_else(|| keys.bad("eos_token_id", "not a token id".into()))?]
            }
        };
        let bos_token_id = match obj.get("bos_token_id") {
            None | Some(Value::Null) => None,
            Some(v) => {
                Some(token_id(v).ok_or_else(|| keys.bad("bos_token_id", "not a token id".into()))?)
            }
        };

        let config = Self {
            family,
            hidden_size,
            intermediate_size: keys.usize("intermediate_size")?,
            num_hidden_layers: keys.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: keys.f64("rms_norm_eps")?,
            rope_theta,
            rope_scaling,
            vocab_size: keys.usize("vocab_size")?,
            max_position_embeddings: keys.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: keys.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            attention_bias,
            bos_token_id,
            eos_token_ids,
        };
        config.validate().map_err(|e| match e {
            ModelError::InvalidConfig(problem) => {
                ModelError::InvalidConfig(format!("{origin}: {problem}"))
            }
            other => other,
        })?;
        Ok(config)
    }

    /// This config as an HF `config.json` that transformers loads with `AutoModelForCausalLM`
    /// (and that [`ModelConfig::from_hf_json`] reads back unchanged).
    pub fn to_hf_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("architectures".into(), json!([self.family.architecture()]));
        obj.insert("model_type".into(), json!(self.family.model_type()));
        obj.insert("hidden_size".into(), json!(self.hidden_size));
        obj.insert("intermediate_size".into(), json!(self.intermediate_size));
        obj.insert("num_hidden_layers".into(), json!(self.num_hidden_layers));
        obj.insert(
            "num_attention_heads".into(),
            json!(self.num_attention_heads),
        );
        obj.insert(
            "num_key_value_heads".into(),
            json!(self.num_key_value_heads),
        );
        obj.insert("head_dim".into(), json!(self.head_dim));
        obj.insert("hidden_act".into(), json!("silu"));
        obj.insert("rms_norm_eps".into(), json!(self.rms_norm_eps));
        obj.insert("rope_theta".into(), json!(self.rope_theta));
        obj.insert(
            "rope_scaling".into(),
            match &self.rope_scaling {
                None => Value::Null,
                Some(RopeScaling::Llama3 {
                    factor,
                    low_freq_factor,
                    high_freq_factor,
                    original_max_position_embeddings,
                }) => json!({
                    "rope_type": "llama3",
                    "factor": factor,
                    "low_freq_factor": low_freq_factor,
                    "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings,
                }),
            },
        );
        obj.insert("vocab_size".into(), json!(self.vocab_size));
        obj.insert(
            "max_position_embeddings".into(),
            json!(self.max_position_embeddings),
        );
        obj.insert(
            "tie_word_embeddings".into(),
            json!(self.tie_word_embeddings),
        );
        if self.family == Family::Llama {
            obj.insert("attention_bias".into(), json!(false));
            obj.insert("mlp_bias".into(), json!(false));
        } else {
            obj.insert("use_sliding_window".into(), json!(false));
        }
        obj.insert("bos_token_id".into(), json!(self.bos_token_id));
        obj.insert(
            "eos_token_id".into(),
            match self.eos_token_ids.as_slice() {
                [] => Value::Null,
                [one] => json!(one),
                many => json!(many),
            },
        );
        obj.insert("torch_dtype".into(), json!("float32"));
        obj.insert("use_cache".into(), json!(true));
        Value::Object(obj)
    }

    /// Check that the sizes are consistent; every constructor calls it.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ModelError::InvalidConfig(format!("{key} must be positive")));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(ModelError::InvalidConfig(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads, self.num_key_value_heads
            )));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(ModelError::InvalidConfig(format!(
                "head_dim ({}) must be even for rotary embeddings",
                self.head_dim
            )));
        }
        if self.rms_norm_eps.is_nan()
            || self.rms_norm_eps <= 0.0
            || self.rope_theta.is_nan()
            || self.rope_theta <= 0.0
        {
            return Err(ModelError::InvalidConfig(
                "rms_norm_eps and rope_theta must be positive".into(),
            ));
        }
        let expected_bias = self.family == Family::Qwen2;
        if self.attention_bias != expected_bias {
            return Err(ModelError::InvalidConfig(format!(
                "attention_bias must be {expected_bias} for the {} family",
                self.family.model_type()
            )));
        }
        Ok(())
    }

    /// Width of all query heads together (`num_attention_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of all key (or value) heads together (`num_key_value_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Parameters of one decoder layer: q/k/v/o projections (plus q/k/v biases when present),
    /// the three MLP matrices and the two RMSNorm scales.
    pub fn params_per_layer(&self) -> usize {
        let d = self.hidden_size;
        let attn = d * self.q_dim() + 2 * d * self.kv_dim() + self.q_dim() * d;
        let bias = if self.attention_bias {
            self.q_dim() + 2 * self.kv_dim()
        } else {
            0
        };
        let mlp = 3 * d * self.intermediate_size;
        attn + bias + mlp + 2 * d
    }

    /// Total parameter count: embedding `V·d` + layers + final norm `d` + untied head `V·d`.
    /// Equals the instantiated module's `num_params()` (asserted in tests).
    pub fn num_params(&self) -> usize {
        let embed = self.vocab_size * self.hidden_size;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + self.num_hidden_layers * self.params_per_layer() + self.hidden_size + head
    }

    /// Weights that take part in a matrix multiply per token: every projection matrix of every
    /// layer plus the LM head (`V·d`, tied or not). Excluded: the embedding lookup (a gather, no
    /// FLOPs), norms and biases (O(d) per token). Used by the FLOPs estimate of generation.
    pub fn matmul_params(&self) -> usize {
        let d = self.hidden_size;
        let per_layer = d * self.q_dim()
            + 2 * d * self.kv_dim()
            + self.q_dim() * d
            + 3 * d * self.intermediate_size;
        self.num_hidden_layers * per_layer + self.vocab_size * d
    }
}

fn token_id(value: &Value) -> Option<u32> {
    value.as_u64().and_then(|v| u32::try_from(v).ok())
}

fn nest(err: ModelError, parent: &str) -> ModelError {
    match err {
        ModelError::ConfigKey {
            origin,
            key,
            problem,
        } => ModelError::ConfigKey {
            origin,
            key: format!("{parent}.{key}"),
            problem,
        },
        other => other,
    }
}

/// Parse `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5); `default` means
/// no rescaling.
fn parse_rope_scaling(value: &Value, origin: &str, key: &str) -> Result<Option<RopeScaling>> {
    let obj = value.as_object().ok_or_else(|| ModelError::ConfigKey {
        origin: origin.to_string(),
        key: key.to_string(),
        problem: "expected an object or null".into(),
    })?;
    let keys = Keys { obj, origin };
    let parse = || -> Result<Option<RopeScaling>> {
        // transformers accepts both spellings.
        let kind = match keys.opt_string("rope_type")? {
            Some(kind) => kind,
            None => keys.string("type")?,
        };
        match kind.as_str() {
            "default" => Ok(None),
            "llama3" => Ok(Some(RopeScaling::Llama3 {
                factor: keys.f64("factor")?,
                low_freq_factor: keys.f64("low_freq_factor")?,
                high_freq_factor: keys.f64("high_freq_factor")?,
                original_max_position_embeddings: keys.usize("original_max_position_embeddings")?,
            })),
            other => Err(keys.bad(
                "rope_type",
                format!("`{other}` is not supported (supported: default, llama3)"),
            )),
        }
    };
    parse().map_err(|e| nest(e, key))
}

/// Typed access to config keys with errors that name the key.
struct Keys<'a> {
    obj: &'a Map<String, Value>,
    origin: &'a str,
}

impl Keys<'_> {
    fn bad(&self, key: &str, problem: String) -> ModelError {
        ModelError::ConfigKey {
            origin: self.origin.to_string(),
            key: key.to_string(),
            problem,
        }
    }

    fn present(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> ModelError {
        self.bad(key, "missing (required)".into())
    }

    fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.present(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        self.bad(key, format!("expected a non-negative integer, found {v}"))
                    })
            })
            .transpose()
    }

    fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.present(key)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| self.bad(key, format!("expected a number, found {v}")))
            })
            .transpose()
    }

    fn f64(&self, key: &str) -> Result<f64> {
        self.opt_f64(key)?.ok_or_else(|| self.missing(key))
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        self.present(key)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.bad(key, format!("expected true or false, found {v}")))
            })
            .transpose()
    }

    fn opt_string(&self, key: &str) -> Result<Option<String>> {
        self.present(key)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.bad(key, format!("expected a string, found {v}")))
            })
            .transpose()
    }

    fn string(&self, key: &str) -> Result<String> {
        self.opt_string(key)?.ok_or_else(|| self.missing(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen_json() -> Value {
        json!({
            "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 256,
            "max_position_embeddings": 512, "tie_word_embeddings": true, "eos_token_id": 3
        })
    }

    #[test]
    fn parses_qwen2_with_defaults() {
        let c = ModelConfig::from_hf_json(&qwen_json(), "test").unwrap();
        assert_eq!(c.family, Family::Qwen2);
        assert_eq!(c.head_dim, 16);
        assert!(c.attention_bias);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.rope_theta, 1e6);
        assert_eq!(c.eos_token_ids, vec![3]);
    }

    #[test]
    fn hf_json_round_trips() {
        for name in PRESET_NAMES {
            let c = ModelConfig::preset(name).unwrap();
            let back = ModelConfig::from_hf_json(&c.to_hf_json(), name).unwrap();
            assert_eq!(c, back);
        }
        let mut q = ModelConfig::from_hf_json(&qwen_json(), "q").unwrap();
        q.rope_scaling = Some(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 64,
        });
        let back = ModelConfig::from_hf_json(&q.to_hf_json(), "q").unwrap();
        assert_eq!(q, back);
    }

    #[test]
    fn parses_transformers5_rope_parameters() {
        let mut v = qwen_json();
        let obj = v.as_object_mut().unwrap();
        obj.remove("rope_theta");
        obj.insert(
            "rope_parameters".into(),
            json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 64}),
        );
        let c = ModelConfig::from_hf_json(&v, "v5").unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert!(
            matches!(c.rope_scaling, Some(RopeScaling::Llama3 { factor, .. }) if factor == 8.0)
        );
        v["rope_parameters"] = json!({"rope_type": "yarn", "rope_theta": 1.0});
        let err = ModelConfig::from_hf_json(&v, "v5").unwrap_err().to_string();
        assert!(
            err.contains("rope_parameters.rope_type") && err.contains("yarn"),
            "{err}"
        );
    }

    #[test]
    fn missing_key_is_named() {
        let mut v = qwen_json();
        v.as_object_mut().unwrap().remove("hidden_size");
        let err = ModelConfig::from_hf_json(&v, "cfg.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`hidden_size`") && err.contains("missing"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let mut v = qwen_json();
        v["num_attention_heads"] = json!("four");
        let err = ModelConfig::from_hf_json(&v, "cfg.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`num_attention_heads`") && err.contains("integer"),
            "{err}"
        );
    }

    #[test]
    fn unknown_model_type_lists_supported() {
        let mut v = qwen_json();
        v["model_type"] = json!("gpt2");
        let err = ModelConfig::from_hf_json(&v, "cfg.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gpt2") && err.contains("qwen2, llama"),
            "{err}"
        );
    }

    #[test]
    fn inconsistent_heads_rejected() {
        let mut v = qwen_json();
        v["num_key_value_heads"] = json!(3);
        let err = ModelConfig::from_hf_json(&v, "cfg.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiple of num_key_value_heads"), "{err}");
    }

    #[test]
    fn preset_counts_match_documented_values() {
        let expected = [
            ("tiny", 1_115_008),
            ("small", 4_983_552),
            ("base", 9_441_408),
            ("medium", 25_698_816),
            ("large", 47_197_440),
        ];
        for (name, count) in expected {
            assert_eq!(
                ModelConfig::preset(name).unwrap().num_params(),
                count,
                "{name}"
            );
        }
        assert!(ModelConfig::preset("huge").is_err());
    }
}
