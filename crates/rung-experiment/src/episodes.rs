//! Where the experiment's episodes run: the in-process embedded world, or a pool of
//! AppWorld-protocol servers started once (lazily, only when a stage needs episodes) and
//! stopped with the experiment.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rung_agents::harness::{Backend, EvalOptions};
use rung_agents::{AppCatalog, AppWorldGold, GoldSource};
use rung_env::{Environment, PoolOptions, ServerPool, Split, read_task_ids};
use rung_world::sandbox::Limits;
use rung_world::{EmbeddedWorld, Suite, SuiteOptions};

use crate::ExperimentError;
use crate::config::{EnvironmentConfig, expand_env, split_name};
use crate::progress;

/// The environment of an experiment.
pub struct Episodes {
    config: EnvironmentConfig,
    log_dir: std::path::PathBuf,
    threads: Option<usize>,
    embedded: OnceLock<Arc<EmbeddedWorld>>,
    pool: Mutex<Option<Pool>>,
}

struct Pool {
    /// One server per worker; each member restarts its server if it died.
    workers: Vec<Arc<dyn Environment>>,
    /// The gold plans, judging sub-tasks on a server of their own.
    gold: Option<Arc<dyn GoldSource>>,
    apps: AppCatalog,
}

impl Episodes {
    /// Nothing starts until a stage asks for episodes.
    pub fn new(config: &EnvironmentConfig, log_dir: &Path, threads: Option<usize>) -> Self {
        Episodes {
            config: config.clone(),
            log_dir: log_dir.to_path_buf(),
            threads,
            embedded: OnceLock::new(),
            pool: Mutex::new(None),
        }
    }

    fn world(&self, suite_seed: u64) -> Arc<EmbeddedWorld> {
        Arc::clone(self.embedded.get_or_init(|| {
            let suite = Suite::generate(SuiteOptions {
                seed: suite_seed,
                ..SuiteOptions::default()
            });
            Arc::new(EmbeddedWorld::with_suite(
                Arc::new(suite),
                Limits::default(),
            ))
        }))
    }

    /// The template a task was made from: the embedded world's template name, AppWorld's
    /// scenario (its task ids are `<scenario>_<variant>`). Subsets stratify by it.
    pub fn template(&self, task: &rung_env::TaskId) -> String {
        match &self.config {
            EnvironmentConfig::Embedded { suite_seed } => self
                .world(*suite_seed)
                .suite()
                .task(task)
                .map(|t| t.template.clone())
                .unwrap_or_else(|| task.scenario_id().to_string()),
            EnvironmentConfig::Appworld { .. } => task.scenario_id().to_string(),
        }
    }

    /// The tasks of `split` in their file order, without starting any server: the embedded
    /// world's, or an AppWorld split's task file, or the gold file's list.
    pub fn task_ids(&self, split: Split) -> Result<Vec<rung_env::TaskId>, ExperimentError> {
        let tasks = match &self.config {
            EnvironmentConfig::Embedded { suite_seed } => self
                .world(*suite_seed)
                .suite()
                .split(split)
                .map(|t| t.task_id.clone())
                .collect(),
            EnvironmentConfig::Appworld { tasks, gold, .. } => {
                let key = format!("environment.tasks.{}", split_name(split));
                match (tasks.get(&split), gold) {
                    (Some(file), _) => {
                        let file = expand_env(&file.to_string_lossy(), &key)?;
                        read_task_ids(Path::new(&file))
                            .map_err(|e| ExperimentError::Config(format!("`{key}`: {e}")))?
                    }
                    (None, Some(path)) => {
                        let path = expand_env(&path.to_string_lossy(), "environment.gold")?;
                        AppWorldGold::load(Path::new(&path))
                            .map_err(|e| {
                                ExperimentError::Config(format!("`environment.gold` {path}: {e}"))
                            })?
                            .tasks(split)
                    }
                    (None, None) => {
                        return Err(ExperimentError::Config(format!("`{key}` is missing")));
                    }
                }
            }
        };
        if tasks.is_empty() {
            return Err(ExperimentError::Config(format!(
                "the environment has no {} tasks",
                split_name(split)
            )));
        }
        Ok(tasks)
    }

    /// The apps the orchestrator's prompt lists.
    pub fn apps(&self) -> AppCatalog {
        match &self.config {
            EnvironmentConfig::Embedded { .. } => AppCatalog::embedded(),
            EnvironmentConfig::Appworld { .. } => self
                .pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map_or_else(AppCatalog::embedded, |p| p.apps.clone()),
        }
    }

    /// Options for running the first `limit` tasks of `split`, with a progress line.
    pub fn options(
        &self,
        split: Split,
        limit: Option<usize>,
        label: Option<String>,
    ) -> Result<EvalOptions, ExperimentError> {
        let mut options = match &self.config {
            EnvironmentConfig::Embedded { suite_seed } => {
                EvalOptions::embedded(self.world(*suite_seed))
            }
            EnvironmentConfig::Appworld {
                server_command,
                pool_size,
                startup_timeout_s,
                tasks,
                gold,
            } => {
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                if pool.is_none() {
                    let command = expand_env(server_command, "environment.server_command")?;
                    let gold = match gold {
                        Some(path) => {
                            Some(expand_env(&path.to_string_lossy(), "environment.gold")?)
                        }
                        None => None,
                    };
                    *pool = Some(self.start_pool(
                        &command,
                        *pool_size,
                        *startup_timeout_s,
                        gold.as_deref().map(Path::new),
                    )?);
                }
                let pool = pool.as_ref().expect("started above");
                let mut options = EvalOptions {
                    threads: pool.workers.len(),
                    backend: Backend::PerWorker(pool.workers.clone()),
                    gold: pool.gold.clone(),
                    tasks: None,
                    limit: None,
                    trajectories: None,
                    progress: None,
                };
                let key = format!("environment.tasks.{}", split_name(split));
                options.tasks = match tasks.get(&split) {
                    Some(file) => {
                        let file = expand_env(&file.to_string_lossy(), &key)?;
                        Some(
                            read_task_ids(Path::new(&file))
                                .map_err(|e| ExperimentError::Config(format!("`{key}`: {e}")))?,
                        )
                    }
                    // The gold file's own split lists.
                    None if pool.gold.is_some() => None,
                    None => {
                        return Err(ExperimentError::Config(format!("`{key}` is missing")));
                    }
                };
                options
            }
        };
        if let (Some(threads), EnvironmentConfig::Embedded { .. }) = (self.threads, &self.config) {
            options.threads = threads;
        }
        options.limit = limit;
        options.progress = label.map(progress::episodes);
        Ok(options)
    }

    /// Starts `size` worker servers, plus one that judges sub-tasks when there is a gold file
    /// (verdicts replay episodes on a server no episode runs on).
    fn start_pool(
        &self,
        command: &str,
        size: u16,
        startup_timeout_s: u64,
        gold: Option<&Path>,
    ) -> Result<Pool, ExperimentError> {
        // Read the gold file first: a bad file should not cost a pool start-up.
        let gold = match gold {
            Some(path) => Some(AppWorldGold::load(path).map_err(|e| {
                ExperimentError::Config(format!("`environment.gold` {}: {e}", path.display()))
            })?),
            None => None,
        };
        let command: Vec<String> = command.split_whitespace().map(String::from).collect();
        let total = usize::from(size) + usize::from(gold.is_some());
        eprintln!(
            "starting {total} environment server(s){}: {}",
            if gold.is_some() {
                " (one judges sub-tasks)"
            } else {
                ""
            },
            command.join(" ")
        );
        let servers = ServerPool::start(PoolOptions {
            command,
            size: total,
            startup_timeout: Duration::from_secs(startup_timeout_s),
            experiment_prefix: "rung-experiment".into(),
            log_dir: Some(self.log_dir.clone()),
            ..PoolOptions::default()
        })
        .map_err(|e| ExperimentError::Stage(format!("starting the environment servers: {e}")))?;
        let docs = servers.clients()[0].api_docs().map_err(|e| {
            ExperimentError::Stage(format!("reading the environment's API docs: {e}"))
        })?;
        let mut members = servers.into_members();
        let gold = match gold {
            Some(gold) => {
                let judge = members.pop().expect("the pool has a judge server");
                Some(Arc::new(gold.with_judge(Arc::new(judge))) as Arc<dyn GoldSource>)
            }
            None => None,
        };
        Ok(Pool {
            workers: members
                .into_iter()
                .map(|m| Arc::new(m) as Arc<dyn Environment>)
                .collect(),
            gold,
            apps: AppCatalog::from_api_docs(&docs),
        })
    }
}
