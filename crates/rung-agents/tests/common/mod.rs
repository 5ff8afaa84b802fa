//! Shared fixtures: one embedded world per test binary, expert systems, and test policies that
//! misbehave on purpose.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rung_agents::{
    AppCatalog, Completion, EvalOptions, ExpertOptions, Experts, GoldSource, Policy, PolicyError,
    System, WorldGold,
};
use rung_trajectory::{Message, SystemKind};
use rung_world::EmbeddedWorld;

/// A world of its own for one test: an environment runs one episode per task id at a time, so
/// tests running in parallel must not share one.
pub struct Fixture {
    /// The world.
    pub world: Arc<EmbeddedWorld>,
    /// Its gold.
    pub gold: Arc<dyn GoldSource>,
}

impl Fixture {
    /// A fresh default world.
    pub fn new() -> Self {
        let world = Arc::new(EmbeddedWorld::new());
        let gold: Arc<dyn GoldSource> = Arc::new(WorldGold::new(Arc::clone(&world)));
        Self { world, gold }
    }

    /// Run options over the world in process.
    pub fn options(&self) -> EvalOptions {
        EvalOptions {
            gold: Some(Arc::clone(&self.gold)),
            ..EvalOptions::embedded(Arc::clone(&self.world))
        }
    }

    /// Experts of the world's gold.
    pub fn experts(&self, options: ExpertOptions) -> Experts {
        Experts::new(Arc::clone(&self.gold), options)
    }

    /// An expert system of `kind`.
    pub fn expert_system(&self, kind: SystemKind, options: ExpertOptions) -> System {
        self.experts(options).system(kind, AppCatalog::embedded())
    }
}

/// A policy whose `n`-th output (0-based) is `script(n, messages)`, with estimated counts.
pub struct Scripted<F> {
    script: F,
    calls: AtomicUsize,
}

impl<F> Scripted<F>
where
    F: Fn(usize, &[Message]) -> String + Send + Sync + 'static,
{
    pub fn policy(script: F) -> Arc<dyn Policy> {
        Arc::new(Self {
            script,
            calls: AtomicUsize::new(0),
        })
    }
}

impl<F> Policy for Scripted<F>
where
    F: Fn(usize, &[Message]) -> String + Send + Sync,
{
    fn name(&self) -> String {
        "garbage".into()
    }

    fn complete(&self, messages: &[Message]) -> Result<Completion, PolicyError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(Completion::estimated(messages, (self.script)(n, messages)))
    }
}

/// A policy that always fails to generate.
pub struct Broken;

impl Policy for Broken {
    fn name(&self) -> String {
        "broken".into()
    }

    fn complete(&self, _messages: &[Message]) -> Result<Completion, PolicyError> {
        Err(PolicyError::Generation("CUDA out of memory".into()))
    }
}
