//! Where the experiment's episodes run: the in-process embedded world, or a pool of
//! AppWorld-protocol servers started once (lazily, only when a stage needs episodes) and
//! stopped with the experiment.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rung_agents::harness::EvalOptions;
use rung_agents::{AppCatalog, GoldSource};
use rung_env::{Environment, PoolOptions, ServerPool, Split, TaskId};
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
    servers: ServerPool,
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
                    *pool =
                        Some(self.start_pool(server_command, *pool_size, *startup_timeout_s)?);
                }
                let pool = pool.as_ref().expect("started above");
                let mut options = EvalOptions::pool(pool.servers.clients());
                let file = tasks.get(&split).ok_or_else(|| {
                    ExperimentError::Config(format!(
                        "`environment.tasks.{}` is missing",
                        split_name(split)
                    ))
                })?;
                let key = format!("environment.tasks.{}", split_name(split));
                let file = expand_env(&file.to_string_lossy(), &key)?;
                options.tasks = Some(read_task_ids(Path::new(&file))?);
                options.gold = match gold {
                    Some(path) => {
                        let path = expand_env(&path.to_string_lossy(), "environment.gold")?;
                        Some(load_gold(Path::new(&path))?)
                    }
                    None => None,
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

    fn start_pool(
        &self,
        command: &str,
        size: u16,
        startup_timeout_s: u64,
    ) -> Result<Pool, ExperimentError> {
        let command: Vec<String> = command.split_whitespace().map(String::from).collect();
        eprintln!(
            "starting {size} environment server(s): {}",
            command.join(" ")
        );
        let servers = ServerPool::start(PoolOptions {
            command,
            size: usize::from(size),
            startup_timeout: Duration::from_secs(startup_timeout_s),
            experiment_prefix: "rung-experiment".into(),
            log_dir: Some(self.log_dir.clone()),
            ..PoolOptions::default()
        })
        .map_err(|e| ExperimentError::Stage(format!("starting the environment servers: {e}")))?;
        let docs = servers.clients()[0].api_docs().map_err(|e| {
            ExperimentError::Stage(format!("reading the environment's API docs: {e}"))
        })?;
        Ok(Pool {
            apps: AppCatalog::from_api_docs(&docs),
            servers,
        })
    }
}

/// Gold plans of an AppWorld task set (as written by the synthetic-task generator).
fn load_gold(path: &Path) -> Result<Arc<dyn GoldSource>, ExperimentError> {
    // INTEGRATE: the AppWorld gold source (issue 9) is being written.
    Err(ExperimentError::Config(format!(
        "`environment.gold` {}: AppWorld gold plans are not supported by this build",
        path.display()
    )))
}

/// Task ids, one per line (blank lines and `#` comments skipped).
pub fn read_task_ids(path: &Path) -> Result<Vec<TaskId>, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::store::io(path, e))?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let id: TaskId = line
            .parse()
            .map_err(|e| ExperimentError::Config(format!("{}:{}: {e}", path.display(), n + 1)))?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(ExperimentError::Config(format!(
            "{} lists no task ids",
            path.display()
        )));
    }
    Ok(ids)
}
