//! `rung eval`: run an agent system over a split and score it.
//!
//! Also the options `rung data gen` shares: the world, the experts' rates, the budgets and the
//! progress line.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rung_agents::harness::Progress;
use rung_agents::{
    AppCatalog, AppWorldGold, Backend, Batching, Budgets, Decoding, EvalOptions, ExpertOptions,
    Experts, GoldSource, ModelPolicyOptions, ModelSpec, System, evaluate, load_role_policies,
};
use rung_env::{AppWorldClient, Environment, PoolMember, PoolOptions, ServerPool, Split};
use rung_trajectory::{Role, SystemKind};
use rung_world::sandbox::Limits;
use rung_world::{EmbeddedWorld, Suite, SuiteOptions};

/// Run an agent system over a split and score it.
///
/// Every role is played either by the scripted experts (--experts) or by language models:
/// --model DIR for every role, or --models ROLE=DIR[,adapter=DIR][,tokenizer=FILE] per role
/// (one base with per-role LoRA adapters, or a model per role; roles naming the same model
/// share its weights). A model directory is an HF checkpoint (config.json + model.safetensors)
/// or a rung checkpoint (config.json + model.bpk), with its tokenizer.json; a hub id
/// `owner/name[@revision]` is read from the local HF cache. Generation is greedy unless
/// --temperature is set, and stops at <|im_end|> or at the tokens-per-turn budget.
///
/// Episodes run in parallel: by default on threads over the in-process embedded world; with
/// --server-url against one running `rung world serve`; with --server-command and --pool-size
/// against a pool of environment servers, one episode per server (real AppWorld: add --gold
/// FILE for a task set with gold plans, e.g. the synthetic one of `cargo xtask appworld synth`,
/// or --no-gold and --tasks).
///
/// Writes into --out (default runs/eval/<system>-<split>): results.json (TGC and SGC overall
/// and by difficulty, sub-task error rates by index and by role, cost per task, how episodes
/// ended), results.txt (the same as a table, also printed) and trajectories.jsonl (one episode
/// per line, format in datasets/trajectories/README.md).
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Agent system: single, two-agent or three-agent (`two_agent` works too).
    #[arg(long)]
    system: SystemKind,
    /// Split to evaluate on: train, dev, test_normal or test_challenge.
    #[arg(long, default_value = "test_normal")]
    split: Split,
    /// Play every role with the scripted experts (they follow the gold plans; 100% TGC is the
    /// expected score).
    #[arg(long, conflicts_with_all = ["model", "models", "adapter"])]
    experts: bool,
    /// Model of every role not given by --models: a model directory or hub id.
    #[arg(long, value_name = "DIR")]
    model: Option<String>,
    /// Model of one role, repeatable: ROLE=DIR[,adapter=DIR][,tokenizer=FILE], ROLE one of
    /// single, orchestrator, executor, critic (e.g. --models executor=runs/base,adapter=runs/exec).
    #[arg(long, value_name = "ROLE=DIR[,adapter=DIR][,tokenizer=FILE]")]
    models: Vec<String>,
    /// LoRA adapter (PEFT directory) of one role over --model, repeatable: ROLE=DIR.
    #[arg(long, value_name = "ROLE=DIR")]
    adapter: Vec<String>,
    /// tokenizer.json of every model whose spec names none; default: each model directory's.
    #[arg(long, value_name = "FILE")]
    tokenizer: Option<PathBuf>,
    /// Sampling temperature; 0 (the default) decodes greedily. Samples are seeded by the
    /// episode (see --seed), so runs are reproducible.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus (top-p) mass when sampling.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Most tokens one model call generates, below --max-tokens-per-turn.
    #[arg(long)]
    max_new_tokens: Option<u64>,
    /// Episodes kept in flight over the in-process world or one server, their model calls
    /// merged into batched forward passes (continuous batching; results are those of
    /// one-at-a-time generation). 0 generates one call at a time per worker thread instead.
    #[arg(long, default_value_t = 32)]
    max_concurrent_episodes: usize,
    /// Most sequences one batched decode step holds.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    max_batch: u16,
    #[command(flatten)]
    experts_rates: ExpertArgs,
    #[command(flatten)]
    budgets: BudgetArgs,
    /// Seed of the system: every episode's seed derives from it and the task id.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run only the first N tasks of the split.
    #[arg(long)]
    limit: Option<usize>,
    /// Worker threads over the in-process world or one server; default: all cores. A pool runs
    /// one worker per server.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// Output folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// URL of one running world server (`rung world serve`) to run the episodes on, e.g.
    /// http://127.0.0.1:8000.
    #[arg(long, conflicts_with = "server_command")]
    server_url: Option<String>,
    /// Start --pool-size environment servers with this command and run one episode per server
    /// at a time. Split on whitespace; `{port}` becomes each server's port (and `{experiment}`,
    /// `{index}` its experiment name and index), e.g. "rung world serve --port {port}" or
    /// "appworld serve environment --port {port}".
    #[arg(long)]
    server_command: Option<String>,
    /// Number of servers --server-command starts.
    #[arg(long, default_value_t = 4, requires = "server_command", value_parser = clap::value_parser!(u16).range(1..))]
    pool_size: u16,
    /// Seconds a pool server may take to start answering.
    #[arg(long, default_value_t = 60, requires = "server_command")]
    startup_timeout: u64,
    /// The environment is not rung's embedded world (real AppWorld): take the task ids from
    /// --tasks, list the apps from the environment's API docs, and report no sub-task error
    /// rates (they need gold plans).
    #[arg(long, requires = "tasks", conflicts_with_all = ["experts", "gold"])]
    no_gold: bool,
    #[command(flatten)]
    gold: GoldArgs,
    /// File of task ids to run, one per line (blank lines and `#` comments skipped); default:
    /// every task of the split.
    #[arg(long, value_name = "FILE")]
    tasks: Option<PathBuf>,
    #[command(flatten)]
    world: WorldArgs,
}

/// Gold plans of an AppWorld task set, for runs on AppWorld servers.
#[derive(Debug, Args)]
pub struct GoldArgs {
    /// rung's gold file of the servers' task set (`<root>/gold.json` of `cargo xtask appworld
    /// synth`): the split's tasks, the experts' plans and, with --server-command, sub-task
    /// verdicts from one more server that replays each episode (pool size + 1 servers).
    /// Needs --server-command or --server-url: its tasks are not in the embedded world.
    #[arg(long, value_name = "FILE")]
    gold: Option<PathBuf>,
}

impl GoldArgs {
    /// The gold file, if one was given.
    pub fn load(&self) -> Result<Option<AppWorldGold>> {
        self.gold
            .as_deref()
            .map(|path| AppWorldGold::load(path).map_err(anyhow::Error::from))
            .transpose()
    }
}

/// Starts `size` environment servers with `command` (split on whitespace, with the pool's
/// placeholders) and hands them out as one restarting environment per server.
pub fn start_servers(
    command: &str,
    size: usize,
    startup_timeout: Duration,
    experiment_prefix: &str,
) -> Result<Vec<PoolMember>> {
    let command: Vec<String> = command.split_whitespace().map(String::from).collect();
    if command.is_empty() {
        bail!("--server-command is empty");
    }
    eprintln!(
        "starting {size} environment server(s): {}",
        command.join(" ")
    );
    let pool = ServerPool::start(PoolOptions {
        command,
        size,
        startup_timeout,
        experiment_prefix: experiment_prefix.into(),
        ..PoolOptions::default()
    })
    .context("starting the environment servers")?;
    Ok(pool.into_members())
}

/// The environment side of a run on a pool: the workers' environments, the gold source (the
/// last server judges sub-tasks when there is a gold file) and the apps the servers serve.
pub struct PoolRun {
    /// One environment per worker.
    pub envs: Vec<Arc<dyn Environment>>,
    /// The AppWorld gold, with its judge.
    pub gold: Option<Arc<dyn GoldSource>>,
    /// The apps, from the servers' API docs.
    pub apps: AppCatalog,
}

/// Starts `workers` servers, plus one to judge sub-tasks when `gold` is given.
pub fn start_pool_run(
    command: &str,
    workers: usize,
    startup_timeout: Duration,
    experiment_prefix: &str,
    gold: Option<AppWorldGold>,
) -> Result<PoolRun> {
    let size = workers + usize::from(gold.is_some());
    let mut members = start_servers(command, size, startup_timeout, experiment_prefix)?;
    let gold = gold.map(|gold| {
        let judge = members.pop().expect("a judge server was started");
        Arc::new(gold.with_judge(Arc::new(judge))) as Arc<dyn GoldSource>
    });
    let apps = app_catalog(&members[0])?;
    let envs = members
        .into_iter()
        .map(|m| Arc::new(m) as Arc<dyn Environment>)
        .collect();
    Ok(PoolRun { envs, gold, apps })
}

/// The embedded world.
#[derive(Debug, Args)]
pub struct WorldArgs {
    /// Master seed of the embedded world's task suite (`rung world --seed`).
    #[arg(long, default_value_t = 0)]
    suite_seed: u64,
}

impl WorldArgs {
    /// The in-process world of this suite.
    pub fn embedded(&self) -> Arc<EmbeddedWorld> {
        let suite = Suite::generate(SuiteOptions {
            seed: self.suite_seed,
            ..SuiteOptions::default()
        });
        Arc::new(EmbeddedWorld::with_suite(
            Arc::new(suite),
            Limits::default(),
        ))
    }
}

/// How often the scripted experts err and look things up.
#[derive(Debug, Args)]
pub struct ExpertArgs {
    /// Fraction of expert episodes (seeded) with one deliberate mistake followed by recovery.
    #[arg(long, default_value_t = ExpertOptions::default().mistake_rate)]
    mistake_rate: f64,
    /// Fraction of expert sub-tasks (seeded) that start with a documentation look-up.
    #[arg(long, default_value_t = ExpertOptions::default().docs_rate)]
    docs_rate: f64,
}

impl ExpertArgs {
    pub fn options(&self) -> Result<ExpertOptions> {
        for (name, rate) in [
            ("--mistake-rate", self.mistake_rate),
            ("--docs-rate", self.docs_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!("{name} must be between 0 and 1, got {rate}");
            }
        }
        Ok(ExpertOptions {
            mistake_rate: self.mistake_rate,
            docs_rate: self.docs_rate,
        })
    }
}

/// Per-episode budgets; exceeding one ends the episode cleanly and is recorded.
#[derive(Debug, Args)]
pub struct BudgetArgs {
    /// Code executions per task, the final complete_task call included.
    #[arg(long, default_value_t = Budgets::default().max_interactions)]
    max_interactions: u32,
    /// Generated tokens of one model call; models stop generating there.
    #[arg(long, default_value_t = Budgets::default().max_tokens_per_turn)]
    max_tokens_per_turn: u64,
    /// Sub-tasks an orchestrator may issue per task.
    #[arg(long, default_value_t = Budgets::default().max_subtasks)]
    max_subtasks: u32,
    /// Executor calls per sub-task.
    #[arg(long, default_value_t = Budgets::default().max_executor_steps)]
    max_executor_steps: u32,
    /// Times a critic may send one sub-task back.
    #[arg(long, default_value_t = Budgets::default().max_critic_retries)]
    max_critic_retries: u32,
    /// Consecutive outputs in no valid format answered with a reminder before the episode ends.
    #[arg(long, default_value_t = Budgets::default().max_format_retries)]
    max_format_retries: u32,
}

impl BudgetArgs {
    pub fn budgets(&self) -> Budgets {
        Budgets {
            max_interactions: self.max_interactions,
            max_tokens_per_turn: self.max_tokens_per_turn,
            max_subtasks: self.max_subtasks,
            max_executor_steps: self.max_executor_steps,
            max_critic_retries: self.max_critic_retries,
            max_format_retries: self.max_format_retries,
        }
    }
}

/// A progress line with ETA on stderr, when stderr is a terminal.
pub fn progress_bar(label: String) -> Option<Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let started = Instant::now();
    let shown = Mutex::new(0usize);
    Some(Arc::new(move |done: usize, total: usize| {
        let mut shown = shown.lock().unwrap_or_else(PoisonError::into_inner);
        if done <= *shown {
            return;
        }
        *shown = done;
        let elapsed = started.elapsed().as_secs_f64();
        let eta = elapsed / done as f64 * (total - done) as f64;
        const WIDTH: usize = 30;
        let filled = WIDTH * done / total.max(1);
        eprint!(
            "\r{label} [{}{}] {done}/{total} episodes, {elapsed:.0} s, ETA {eta:.0} s ",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled)
        );
        if done == total {
            eprintln!();
        }
    }))
}

pub fn run(args: &EvalArgs) -> Result<()> {
    let policies = Policies::from_args(args)?;
    let world = args.world.embedded();
    let mut options = EvalOptions::embedded(Arc::clone(&world));
    let mut apps = AppCatalog::embedded();
    let gold = args.gold.load()?;
    if gold.is_some() && args.server_url.is_none() && args.server_command.is_none() {
        bail!(
            "--gold needs AppWorld servers: add --server-command \"PYTHON SERVE.PY --port {{port}} \
             --root DIR\" (see `cargo xtask appworld env`) or --server-url URL"
        );
    }
    if args.no_gold {
        options.gold = None;
    }
    if let Some(path) = &args.tasks {
        options.tasks = Some(rung_env::read_task_ids(path)?);
    }
    options.limit = args.limit;
    if let Some(threads) = args.threads {
        options.threads = usize::from(threads);
    }
    // The servers stop when the last of their environments (in `options`) is dropped.
    if let Some(url) = &args.server_url {
        let client = AppWorldClient::new(url.trim_end_matches('/'));
        client
            .ping()
            .with_context(|| format!("no environment server answers at {url}"))?;
        if args.no_gold || gold.is_some() {
            apps = app_catalog(&client)?;
        }
        if let Some(gold) = gold {
            eprintln!(
                "note: with --server-url no server is free to judge sub-tasks; use \
                 --server-command for sub-task error rates"
            );
            options.gold = Some(Arc::new(gold));
        }
        options.backend = Backend::Shared(Arc::new(client));
    } else if let Some(command) = &args.server_command {
        let run = start_pool_run(
            command,
            usize::from(args.pool_size),
            Duration::from_secs(args.startup_timeout),
            "rung-eval",
            gold,
        )?;
        if args.no_gold || run.gold.is_some() {
            apps = run.apps;
        }
        if run.gold.is_some() {
            options.gold = run.gold;
        }
        options.threads = run.envs.len();
        options.backend = Backend::PerWorker(run.envs);
    }

    let system = match policies {
        Policies::Experts(rates) => {
            let gold = options
                .gold
                .clone()
                .context("the experts need gold plans (the embedded world's, or --gold FILE)")?;
            Experts::new(gold, rates).system(args.system, apps)
        }
        Policies::Models(specs, model_options) => {
            eprintln!("loading {} model(s)", distinct_models(&specs));
            let loaded = load_role_policies(&specs, model_options)?;
            System::of_kind(args.system, |role| Arc::clone(&loaded[&role]), apps)
        }
    }
    .with_budgets(args.budgets.budgets())
    .with_seed(args.seed);

    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("runs/eval").join(format!("{}-{}", args.system, args.split))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let trajectories = out.join("trajectories.jsonl");
    options.trajectories = Some(trajectories.clone());
    options.progress = progress_bar(format!("{} {}", args.system, args.split));
    let report = evaluate(&system, args.split, &options)?;
    let table = report.table();
    let results = out.join("results.json");
    write_atomic(&results, &report.to_json())?;
    write_atomic(&out.join("results.txt"), &table)?;
    print!("{table}");
    println!(
        "wrote {}, {} and {}",
        results.display(),
        out.join("results.txt").display(),
        trajectories.display()
    );
    Ok(())
}

/// Who plays the roles.
enum Policies {
    Experts(ExpertOptions),
    Models(BTreeMap<Role, ModelSpec>, ModelPolicyOptions),
}

impl Policies {
    fn from_args(args: &EvalArgs) -> Result<Self> {
        if args.experts {
            return Ok(Policies::Experts(args.experts_rates.options()?));
        }
        let roles = args.system.roles();
        let mut specs: BTreeMap<Role, ModelSpec> = BTreeMap::new();
        for value in &args.models {
            let (role, spec) = parse_role_model(value, args.tokenizer.as_ref())?;
            check_role(role, args.system, "--models")?;
            if specs.insert(role, spec).is_some() {
                bail!("--models gives the {role} twice");
            }
        }
        if let Some(model) = &args.model {
            for &role in roles {
                specs.entry(role).or_insert_with(|| ModelSpec {
                    tokenizer: args.tokenizer.clone(),
                    ..ModelSpec::new(model.clone())
                });
            }
        }
        for value in &args.adapter {
            let (role, dir) = value.split_once('=').with_context(|| {
                format!("--adapter {value}: expected ROLE=DIR, e.g. executor=runs/exec-lora")
            })?;
            let role = parse_role(role)?;
            check_role(role, args.system, "--adapter")?;
            let spec = specs.get_mut(&role).with_context(|| {
                format!("--adapter {value}: the {role} has no model (give --model or --models)")
            })?;
            if spec.adapter.is_some() {
                bail!("the {role} is given two adapters");
            }
            spec.adapter = Some(PathBuf::from(dir));
        }
        if specs.is_empty() {
            bail!(
                "say who plays the roles: --experts, or --model DIR (and/or --models \
                 ROLE=DIR[,adapter=DIR]) for language models"
            );
        }
        let missing: Vec<&str> = roles
            .iter()
            .filter(|r| !specs.contains_key(r))
            .map(|r| r.name())
            .collect();
        if !missing.is_empty() {
            bail!(
                "no model for the {} of the {} system: add --model DIR or --models ROLE=DIR",
                missing.join(", "),
                args.system
            );
        }
        let decoding = if args.temperature == 0.0 {
            Decoding::Greedy
        } else if args.temperature > 0.0 && args.top_p > 0.0 && args.top_p <= 1.0 {
            Decoding::Sample {
                temperature: args.temperature,
                top_p: args.top_p,
            }
        } else {
            bail!(
                "--temperature must be >= 0 and --top-p in (0, 1], got {} and {}",
                args.temperature,
                args.top_p
            );
        };
        if args.max_new_tokens == Some(0) {
            bail!("--max-new-tokens must be at least 1");
        }
        let options = ModelPolicyOptions {
            decoding,
            max_new_tokens: args.max_new_tokens,
            max_context: None,
            batching: (args.max_concurrent_episodes > 0).then_some(Batching {
                max_concurrent_episodes: args.max_concurrent_episodes,
                max_batch: usize::from(args.max_batch),
                ..Batching::default()
            }),
        };
        Ok(Policies::Models(specs, options))
    }
}

fn parse_role(name: &str) -> Result<Role> {
    [
        Role::Single,
        Role::Orchestrator,
        Role::Executor,
        Role::Critic,
    ]
    .into_iter()
    .find(|r| r.name() == name.trim())
    .with_context(|| {
        format!("unknown role `{name}`: expected single, orchestrator, executor or critic")
    })
}

fn check_role(role: Role, kind: SystemKind, flag: &str) -> Result<()> {
    if !kind.roles().contains(&role) {
        let roles: Vec<&str> = kind.roles().iter().map(|r| r.name()).collect();
        bail!(
            "{flag}: the {kind} system has no {role} (its roles: {})",
            roles.join(", ")
        );
    }
    Ok(())
}

/// Parses `ROLE=DIR[,adapter=DIR][,tokenizer=FILE]`.
fn parse_role_model(value: &str, tokenizer: Option<&PathBuf>) -> Result<(Role, ModelSpec)> {
    let usage = "expected ROLE=DIR[,adapter=DIR][,tokenizer=FILE]";
    let mut parts = value.split(',');
    let first = parts.next().unwrap_or_default();
    let (role, model) = first
        .split_once('=')
        .with_context(|| format!("--models {value}: {usage}"))?;
    let role = parse_role(role)?;
    if model.is_empty() {
        bail!("--models {value}: no model directory after `{role}=`");
    }
    let mut spec = ModelSpec {
        tokenizer: tokenizer.cloned(),
        ..ModelSpec::new(model)
    };
    for part in parts {
        match part.split_once('=') {
            Some(("adapter", dir)) if !dir.is_empty() => spec.adapter = Some(PathBuf::from(dir)),
            Some(("tokenizer", file)) if !file.is_empty() => {
                spec.tokenizer = Some(PathBuf::from(file));
            }
            _ => bail!("--models {value}: unknown part `{part}`; {usage}"),
        }
    }
    Ok((role, spec))
}

fn distinct_models(specs: &BTreeMap<Role, ModelSpec>) -> usize {
    let mut models: Vec<&str> = specs.values().map(|s| s.model.as_str()).collect();
    models.sort_unstable();
    models.dedup();
    models.len()
}

/// The apps an environment serves, from its API docs.
fn app_catalog(env: &dyn Environment) -> Result<AppCatalog> {
    let docs = env
        .api_docs()
        .context("reading the environment's API docs")?;
    Ok(AppCatalog::from_api_docs(&docs))
}

/// Writes `text` to `path` through a temporary sibling and a rename.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_models_parse() {
        let (role, spec) = parse_role_model(
            "executor=runs/base,adapter=runs/exec,tokenizer=t.json",
            None,
        )
        .unwrap();
        assert_eq!(role, Role::Executor);
        assert_eq!(spec.model, "runs/base");
        assert_eq!(spec.adapter, Some(PathBuf::from("runs/exec")));
        assert_eq!(spec.tokenizer, Some(PathBuf::from("t.json")));
        let (_, spec) = parse_role_model("critic=m", Some(&PathBuf::from("x.json"))).unwrap();
        assert_eq!(spec.tokenizer, Some(PathBuf::from("x.json")));
        assert!(parse_role_model("boss=m", None).is_err());
        assert!(parse_role_model("critic=", None).is_err());
        assert!(parse_role_model("critic=m,lora=x", None).is_err());
        assert!(parse_role_model("m", None).is_err());
    }
}
