//! LoRA adapters in Hugging Face PEFT's on-disk format, so an adapter trained by rung loads in
//! PEFT and one trained with PEFT loads here.
//!
//! A PEFT adapter directory holds `adapter_config.json` and `adapter_model.safetensors`, whose
//! tensors are named `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`
//! (`[r, in]`) and `...lora_B.weight` (`[out, r]`), likewise for `k_proj`, `v_proj`, `o_proj`
//! and `mlp.{gate,up,down}_proj`. rung's [`LoraAdapter`] paths are the same after dropping the
//! `base_model.model.model.` prefix and lower-casing `lora_A`/`lora_B`; the factor layouts are
//! PyTorch Linear layouts, transposed by burn-store's PyTorch adapters.
//!
//! Only what rung can represent is accepted: plain LoRA (optionally rsLoRA) on the seven
//! projections, the same rank and alpha everywhere, no bias training, no DoRA, no extra trained
//! modules. Anything else is an error that names the offending `adapter_config.json` key.

use std::collections::BTreeSet;
use std::path::Path;

use burn::store::{
    BurnToPyTorchAdapter, ChainAdapter, FloatCastAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    SafetensorsStore,
};
use burn::tensor::{DType, Device};
use serde_json::{Value, json};

use crate::checkpoint::write_json_atomic;
use crate::config::ModelConfig;
use crate::error::{ModelError, Result};
use crate::hf::abbreviate;
use crate::lora::{LoraAdapter, LoraConfig, LoraInit, LoraTarget};

/// Name of the adapter config in a PEFT adapter directory.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// Name of the adapter weights in a PEFT adapter directory.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Write `adapter` as a PEFT adapter directory. `base_model` fills `base_model_name_or_path`
/// (PEFT uses it to find the base model when none is given).
pub fn save_peft_adapter(
    adapter: &LoraAdapter,
    dir: &Path,
    base_model: Option<&str>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let weights = dir.join(ADAPTER_WEIGHTS_FILE);
    let mut store = SafetensorsStore::from_file(&weights)
        .with_to_adapter(BurnToPyTorchAdapter)
        .with_key_remapping(r"^layers\.", "base_model.model.model.layers.")
        .with_key_remapping(r"\.lora_a\.weight$", ".lora_A.weight")
        .with_key_remapping(r"\.lora_b\.weight$", ".lora_B.weight")
        .clear_metadata()
        .metadata("format", "pt")
        .overwrite(true);
    adapter
        .save_into(&mut store)
        .map_err(|e| ModelError::Safetensors {
            path: weights.clone(),
            message: e.to_string(),
        })?;
    write_json_atomic(
        &dir.join(ADAPTER_CONFIG_FILE),
        &peft_config_json(&adapter.config, base_model),
    )
}

/// The `adapter_config.json` PEFT writes for `config`.
pub fn peft_config_json(config: &LoraConfig, base_model: Option<&str>) -> Value {
    let targets: Vec<&str> = LoraTarget::ALL
        .into_iter()
        .filter(|t| config.targets(*t))
        .map(LoraTarget::module_name)
        .collect();
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "use_rslora": config.use_rslora,
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": false,
        "revision": null,
    })
}

/// Parse a PEFT `adapter_config.json` into rung's [`LoraConfig`], refusing what rung cannot
/// represent. `origin` names the file in errors.
pub fn parse_peft_config(value: &Value, origin: &str) -> Result<LoraConfig> {
    let bad = |key: &str, problem: String| ModelError::ConfigKey {
        origin: origin.to_string(),
        key: key.to_string(),
        problem,
    };
    let get = |key: &str| value.get(key).filter(|v| !v.is_null());
    match get("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        other => {
            return Err(bad(
                "peft_type",
                format!("expected \"LORA\", found {other:?}"),
            ));
        }
    }
    let rank = get("r")
        .and_then(Value::as_u64)
        .and_then(|r| usize::try_from(r).ok())
        .ok_or_else(|| bad("r", "missing or not a positive integer".into()))?;
    let alpha = get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| bad("lora_alpha", "missing or not a number".into()))?;
    let dropout = match get("lora_dropout") {
        None => 0.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| bad("lora_dropout", format!("expected a number, found {v}")))?,
    };
    let use_rslora = match get("use_rslora") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad("use_rslora", format!("expected a bool, found {v}")))?,
    };
    let target_modules = match get("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().and_then(LoraTarget::parse).ok_or_else(|| {
                    bad(
                        "target_modules",
                        format!(
                            "{item} is not supported; rung adapts q_proj, k_proj, v_proj, o_proj, \
                             gate_proj, up_proj and down_proj"
                        ),
                    )
                })
            })
            .collect::<Result<BTreeSet<_>>>()?
            .into_iter()
            .collect(),
        Some(Value::String(pattern)) => {
            return Err(bad(
                "target_modules",
                format!("regex targets ({pattern:?}) are not supported; list the module names"),
            ));
        }
        _ => return Err(bad("target_modules", "missing or not a list".into())),
    };
    if let Some(bias) = get("bias").and_then(Value::as_str)
        && bias != "none"
    {
        return Err(bad(
            "bias",
            format!("\"{bias}\" is not supported (only \"none\")"),
        ));
    }
    for flag in ["fan_in_fan_out", "use_dora", "lora_bias"] {
        if get(flag).and_then(Value::as_bool).unwrap_or(false) {
            return Err(bad(flag, "true is not supported".into()));
        }
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if let Some(p) = get(pattern)
            && p.as_object().is_none_or(|o| !o.is_empty())
        {
            return Err(bad(
                pattern,
                "per-module ranks or alphas are not supported".into(),
            ));
        }
    }
    for list in ["modules_to_save", "layers_to_transform"] {
        if let Some(v) = get(list)
            && v.as_array().is_none_or(|a| !a.is_empty())
        {
            return Err(bad(list, format!("{v} is not supported (must be null)")));
        }
    }
    let config = LoraConfig {
        rank,
        alpha,
        dropout,
        use_rslora,
        target_modules,
    };
    config.validate()?;
    Ok(config)
}

/// Load a PEFT adapter directory as an adapter named `name` for a model of shape `model`.
pub fn load_peft_adapter(
    dir: &Path,
    name: &str,
    model: &ModelConfig,
    device: &Device,
) -> Result<LoraAdapter> {
    let config_path = dir.join(ADAPTER_CONFIG_FILE);
    let weights = dir.join(ADAPTER_WEIGHTS_FILE);
    for file in [&config_path, &weights] {
        if !file.is_file() {
            return Err(ModelError::MissingFile {
                file: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                location: dir.display().to_string(),
                hint: " (a PEFT adapter directory, as written by `save_pretrained`)".into(),
            });
        }
    }
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: config_path.clone(),
        source,
    })?;
    let config = parse_peft_config(&value, &config_path.display().to_string())?;
    let mut adapter = LoraAdapter::new(name, config, model, LoraInit::Zeros, 0, device)?;

    let mut store = SafetensorsStore::from_file(&weights)
        .with_from_adapter(ChainAdapter::new(
            PyTorchToBurnAdapter,
            FloatCastAdapter::to(DType::F32),
        ))
        .with_key_remapping(r"^base_model\.model\.model\.", "")
        .with_key_remapping(r"\.lora_A\.(default\.)?weight$", ".lora_a.weight")
        .with_key_remapping(r"\.lora_B\.(default\.)?weight$", ".lora_b.weight")
        .allow_partial(true)
        .validate(false);
    let result = adapter
        .load_from(&mut store)
        .map_err(|e| ModelError::Safetensors {
            path: weights.clone(),
            message: e.to_string(),
        })?;
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        problems.push(
            result
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
    if !result.missing.is_empty() {
        let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
        problems.push(format!(
            "adapter_config.json targets tensors the file lacks: {}",
            abbreviate(&missing)
        ));
    }
    if !result.unused.is_empty() {
        problems.push(format!(
            "tensors rung cannot place (other modules, biases or layers): {}",
            abbreviate(&result.unused)
        ));
    }
    if !problems.is_empty() {
        return Err(ModelError::WeightMismatch {
            origin: weights.display().to_string(),
            details: problems.join("; "),
        });
    }
    Ok(adapter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_peft_json() {
        let config = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.05,
            use_rslora: true,
            target_modules: vec![LoraTarget::Q, LoraTarget::V, LoraTarget::Down],
        };
        let back = parse_peft_config(&peft_config_json(&config, Some("x")), "t").unwrap();
        assert_eq!(config, back);
    }

    #[test]
    fn refuses_what_rung_cannot_represent() {
        let config = LoraConfig::default();
        let mut v = peft_config_json(&config, None);
        v["target_modules"] = json!(["q_proj", "lm_head"]);
        let err = parse_peft_config(&v, "a.json").unwrap_err().to_string();
        assert!(
            err.contains("target_modules") && err.contains("lm_head"),
            "{err}"
        );

        let mut v = peft_config_json(&config, None);
        v["use_dora"] = json!(true);
        assert!(
            parse_peft_config(&v, "a.json")
                .unwrap_err()
                .to_string()
                .contains("use_dora")
        );

        let mut v = peft_config_json(&config, None);
        v["rank_pattern"] = json!({"q_proj": 2});
        assert!(
            parse_peft_config(&v, "a.json")
                .unwrap_err()
                .to_string()
                .contains("rank_pattern")
        );
    }
}
