//! Several named LoRA adapters over one base model, e.g. one per agent role.
//!
//! burn tensors are reference counted, so cloning a [`CausalLm`] shares its weights; a bank holds
//! one base and its adapters, and [`AdapterBank::model`] hands out the base with one adapter
//! attached at the cost of the adapter alone. Nothing ever mutates the shared base in place:
//! merging returns new weight tensors and leaves the base the other models see untouched.

use std::collections::BTreeMap;

use crate::error::{ModelError, Result};
use crate::lora::LoraAdapter;
use crate::model::CausalLm;

/// A base model plus named adapters.
#[derive(Debug, Clone)]
pub struct AdapterBank {
    base: CausalLm,
    adapters: BTreeMap<String, LoraAdapter>,
}

impl AdapterBank {
    /// A bank over `base`, which must have no adapter attached.
    pub fn new(base: CausalLm) -> Result<Self> {
        if let Some(adapter) = base.adapter() {
            return Err(ModelError::Adapter(format!(
                "the base of an adapter bank must have no adapter attached (found `{}`)",
                adapter.name
            )));
        }
        Ok(Self {
            base,
            adapters: BTreeMap::new(),
        })
    }

    /// Add (or replace) an adapter under its own name, after checking it fits the base.
    pub fn insert(&mut self, adapter: LoraAdapter) -> Result<()> {
        adapter.check_fits(self.base.config())?;
        self.adapters.insert(adapter.name.clone(), adapter);
        Ok(())
    }

    /// Remove and return the adapter called `name`.
    pub fn remove(&mut self, name: &str) -> Option<LoraAdapter> {
        self.adapters.remove(name)
    }

    /// The adapter called `name`.
    pub fn get(&self, name: &str) -> Option<&LoraAdapter> {
        self.adapters.get(name)
    }

    /// Names of the adapters, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.adapters.keys().map(String::as_str).collect()
    }

    /// The shared base model.
    pub fn base(&self) -> &CausalLm {
        &self.base
    }

    /// The base with adapter `name` attached; shares the base's weights.
    pub fn model(&self, name: &str) -> Result<CausalLm> {
        let adapter = self.adapters.get(name).ok_or_else(|| {
            ModelError::Adapter(format!(
                "no adapter named `{name}`; the bank has: {}",
                self.names().join(", ")
            ))
        })?;
        self.base.clone().with_adapter(adapter.clone())
    }
}
