//! Agent systems: which roles exist, which policy plays each, and how an episode runs.
//!
//! # How an episode runs
//!
//! - **single**: the agent sees the task and writes one code cell per turn; each output comes
//!   back as the next message, until its code completes the task.
//! - **two_agent**: the orchestrator sees the task and, after each sub-task, its result; it
//!   issues `SUBTASK <app>: …` or `COMPLETE: <answer>` (which the system turns into
//!   `apis.supervisor.complete_task(...)`). For each sub-task a fresh executor conversation
//!   starts with the sub-task, the supervisor and the earlier results; the executor writes code
//!   until it reports `DONE: <result>`, which goes back to the orchestrator. All code runs in one
//!   episode, so variables persist across sub-tasks.
//! - **three_agent**: as two_agent, but every report first goes to the critic with the
//!   sub-task's code and outputs; `RETRY: <feedback>` sends the sub-task back to the same
//!   executor conversation, at most [`Budgets::max_critic_retries`] times.
//!
//! Budgets, loop detection and malformed outputs are described on [`Budgets`]; whatever ends
//! the episode, it is evaluated and the reason is recorded.

mod run;
mod single;
mod team;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use rung_env::{Environment, EpisodeOptions, TaskId, TaskInfo};
use rung_trajectory::{
    Cost, Episode, EpisodeEnd, Role, SCHEMA_VERSION, SystemConfig, SystemKind, Turn,
};

use crate::apps::AppCatalog;
use crate::budget::Budgets;
use crate::error::AgentError;
use crate::policy::{EpisodeContext, Policy};
use crate::seed;
use run::{Run, Stop};

/// An agent system: a kind, one policy per role, budgets, the apps it may delegate to, and a
/// seed from which every episode's seed is derived.
#[derive(Clone)]
pub struct System {
    kind: SystemKind,
    policies: BTreeMap<Role, Arc<dyn Policy>>,
    budgets: Budgets,
    apps: AppCatalog,
    seed: u64,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("config", &self.config())
            .field("budgets", &self.budgets)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl System {
    fn new(kind: SystemKind, policies: BTreeMap<Role, Arc<dyn Policy>>, apps: AppCatalog) -> Self {
        Self {
            kind,
            policies,
            budgets: Budgets::default(),
            apps,
            seed: 0,
        }
    }

    /// One agent for the whole task.
    pub fn single(agent: Arc<dyn Policy>, apps: AppCatalog) -> Self {
        Self::new(
            SystemKind::Single,
            BTreeMap::from([(Role::Single, agent)]),
            apps,
        )
    }

    /// An orchestrator and an executor.
    pub fn two_agent(
        orchestrator: Arc<dyn Policy>,
        executor: Arc<dyn Policy>,
        apps: AppCatalog,
    ) -> Self {
        Self::new(
            SystemKind::TwoAgent,
            BTreeMap::from([
                (Role::Orchestrator, orchestrator),
                (Role::Executor, executor),
            ]),
            apps,
        )
    }

    /// An orchestrator, an executor and a critic.
    pub fn three_agent(
        orchestrator: Arc<dyn Policy>,
        executor: Arc<dyn Policy>,
        critic: Arc<dyn Policy>,
        apps: AppCatalog,
    ) -> Self {
        Self::new(
            SystemKind::ThreeAgent,
            BTreeMap::from([
                (Role::Orchestrator, orchestrator),
                (Role::Executor, executor),
                (Role::Critic, critic),
            ]),
            apps,
        )
    }

    /// A system of `kind` whose every role is played by `policy` (one model, or the experts
    /// through [`crate::Experts::for_role`]).
    pub fn of_kind(
        kind: SystemKind,
        mut policy: impl FnMut(Role) -> Arc<dyn Policy>,
        apps: AppCatalog,
    ) -> Self {
        let policies = kind
            .roles()
            .iter()
            .map(|&role| (role, policy(role)))
            .collect();
        Self::new(kind, policies, apps)
    }

    /// The same system with other budgets.
    pub fn with_budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// The same system with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The kind of system.
    pub fn kind(&self) -> SystemKind {
        self.kind
    }

    /// Its budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Its seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many episodes to run at once: the largest wish of its policies (see
    /// [`Policy::max_concurrent_episodes`]), `None` when none has one.
    pub fn max_concurrent_episodes(&self) -> Option<usize> {
        self.policies
            .values()
            .filter_map(|p| p.max_concurrent_episodes())
            .max()
    }

    /// The kind and the model of each role, as trajectories record them.
    pub fn config(&self) -> SystemConfig {
        SystemConfig {
            kind: self.kind,
            models: self
                .policies
                .iter()
                .map(|(role, policy)| (*role, policy.name()))
                .collect(),
        }
    }

    /// The seed of the episode of `task_id`: a function of the system's seed and the task only.
    pub fn episode_seed(&self, task_id: &TaskId) -> u64 {
        seed::derive(self.seed, &[task_id.as_str().as_bytes()])
    }

    /// Runs one episode of `task_id` in `env` and returns its trajectory. Budgets, loops and
    /// bad outputs end the episode normally (see the module docs); only a failing environment
    /// is an error, after which the episode is closed as far as the environment allows.
    pub fn run_episode(
        &self,
        env: &dyn Environment,
        task_id: &TaskId,
    ) -> Result<Episode, AgentError> {
        let started = Instant::now();
        let seed = self.episode_seed(task_id);
        let env_error = |source| AgentError::Env {
            task_id: task_id.clone(),
            source,
        };
        let options = EpisodeOptions {
            random_seed: Some(seed),
            ..EpisodeOptions::default()
        };
        let info = env.initialize(task_id, &options).map_err(env_error)?;
        let played = self.play(env, &info, seed);
        let evaluated = played.and_then(|played| Ok((played, env.evaluate(task_id)?)));
        let closed = env.close(task_id);
        let ((turns, end, interactions), evaluation) = evaluated.map_err(env_error)?;
        closed.map_err(env_error)?;
        let mut cost = Cost {
            interactions,
            ..Cost::default()
        };
        for turn in &turns {
            cost.prompt_tokens += turn.prompt_tokens;
            cost.generated_tokens += turn.generated_tokens;
            cost.flops += turn.flops;
        }
        cost.wall_seconds = started.elapsed().as_secs_f64();
        Ok(Episode {
            schema_version: SCHEMA_VERSION,
            task_id: task_id.clone(),
            split: None,
            system: self.config(),
            seed,
            instruction: info.instruction.clone(),
            turns,
            evaluation,
            cost,
            end,
        })
    }

    /// Plays the episode: its turns, how it ended, and the interactions used.
    fn play(
        &self,
        env: &dyn Environment,
        info: &TaskInfo,
        seed: u64,
    ) -> Result<(Vec<Turn>, EpisodeEnd, u32), rung_env::EnvError> {
        let mut run = Run::new(env, info, &self.budgets, &self.apps);
        let stop = match self.episode_policies(info, seed) {
            Err(end) => Stop::End(end),
            Ok(playing) => {
                let get = |role: Role| playing[&role].as_ref();
                let outcome = match self.kind {
                    SystemKind::Single => single::play(&mut run, get(Role::Single)),
                    SystemKind::TwoAgent | SystemKind::ThreeAgent => {
                        let team = team::Team {
                            orchestrator: get(Role::Orchestrator),
                            executor: get(Role::Executor),
                            critic: playing.get(&Role::Critic).map(Playing::as_ref),
                        };
                        team::play(&mut run, &team)
                    }
                };
                match outcome {
                    Err(stop) => stop,
                    Ok(never) => match never {},
                }
            }
        };
        match stop {
            Stop::End(end) => Ok((run.turns, end, run.interactions)),
            Stop::Env(error) => Err(error),
        }
    }

    /// The policy of each role for one episode, or how the episode ends if one cannot play.
    fn episode_policies(
        &self,
        info: &TaskInfo,
        seed: u64,
    ) -> Result<BTreeMap<Role, Playing<'_>>, EpisodeEnd> {
        let mut playing = BTreeMap::new();
        for (&role, policy) in &self.policies {
            let context = EpisodeContext {
                task: info,
                role,
                system: self.kind,
                seed,
                max_tokens_per_turn: self.budgets.max_tokens_per_turn,
                budgets: self.budgets,
            };
            let player = match policy.start_episode(&context) {
                Ok(Some(own)) => Playing::Own(own),
                Ok(None) => Playing::Shared(policy.as_ref()),
                Err(error) => {
                    return Err(EpisodeEnd::PolicyError {
                        role,
                        message: error.to_string(),
                    });
                }
            };
            playing.insert(role, player);
        }
        Ok(playing)
    }
}

/// A role's policy for one episode: its own instance, or the system's shared one.
enum Playing<'a> {
    Own(Box<dyn Policy>),
    Shared(&'a dyn Policy),
}

impl Playing<'_> {
    fn as_ref(&self) -> &dyn Policy {
        match self {
            Playing::Own(policy) => policy.as_ref(),
            Playing::Shared(policy) => *policy,
        }
    }
}
