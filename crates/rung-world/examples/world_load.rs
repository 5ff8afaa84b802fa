//! The load client of `cargo xtask bench world --load`: `--clients N` threads, each with its
//! own `AppWorldClient`, play whole gold episodes (initialize, every gold cell, evaluate, close)
//! against a world server for `--seconds S`, and one JSON line reports episodes/s, the latency
//! of `/execute` (p50, p99) and every error.
//!
//! `cargo run --release -p rung-world --example world_load -- --url http://127.0.0.1:8000 \
//!   --clients 16 --seconds 10`
//!
//! Gold cells make the work real: logins, searches and writes through the apps, and an
//! evaluation that diffs the episode's database against the task's expectation. Each client
//! plays its own tasks (client c of N plays tasks c, c+N, …), so no two clients share a task id
//! at once. The suite must be the server's (`rung world serve` with its default seed).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rung_env::{AppWorldClient, Environment, EpisodeOptions, Split};
use rung_world::sandbox::FAILED;
use rung_world::{Suite, SuiteOptions, Task};
use serde_json::json;

struct Args {
    url: String,
    clients: usize,
    seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "http://127.0.0.1:8000".into(),
        clients: 1,
        seconds: 10.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--clients" => {
                args.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?;
            }
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?;
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}`; expected --url, --clients, --seconds"
                ));
            }
        }
    }
    if args.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    Ok(args)
}

/// What one client did.
#[derive(Default)]
struct Tally {
    episodes: usize,
    /// Latency of every `/execute`, seconds.
    executes: Vec<f64>,
    errors: usize,
    first_error: Option<String>,
}

impl Tally {
    fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// Plays `task`'s gold episode, recording latencies and errors.
fn episode(client: &AppWorldClient, task: &Task, tally: &mut Tally) {
    let id = &task.task_id;
    if let Err(e) = client.initialize(id, &EpisodeOptions::default()) {
        tally.error(format!("initialize {id}: {e}"));
        return;
    }
    for cell in task.gold_cells() {
        let started = Instant::now();
        let output = client.execute(id, cell);
        tally.executes.push(started.elapsed().as_secs_f64());
        match output {
            Ok(output) if output.starts_with(FAILED) => {
                tally.error(format!("{id}: a gold cell failed: {output}"));
            }
            Ok(_) => {}
            Err(e) => tally.error(format!("execute {id}: {e}")),
        }
    }
    match client.evaluate(id) {
        Ok(evaluation) if evaluation.success => tally.episodes += 1,
        Ok(evaluation) => tally.error(format!("{id}: the gold episode fails: {evaluation:?}")),
        Err(e) => tally.error(format!("evaluate {id}: {e}")),
    }
    if let Err(e) = client.close(id) {
        tally.error(format!("close {id}: {e}"));
    }
}

/// The `q`-quantile of sorted values, nearest rank.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("world_load: {e}");
            std::process::exit(2);
        }
    };
    let suite = Suite::generate(SuiteOptions::default());
    let tasks: Arc<Vec<Task>> = Arc::new(
        Split::ALL
            .into_iter()
            .flat_map(|split| suite.split(split).cloned().collect::<Vec<_>>())
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let threads: Vec<_> = (0..args.clients)
        .map(|c| {
            let (tasks, url, clients) = (Arc::clone(&tasks), args.url.clone(), args.clients);
            thread::spawn(move || {
                let client = AppWorldClient::new(url);
                let mut tally = Tally::default();
                let mut next = c;
                while Instant::now() < deadline {
                    episode(&client, &tasks[next % tasks.len()], &mut tally);
                    next += clients;
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for thread in threads {
        let tally = thread.join().unwrap_or_else(|_| {
            let mut t = Tally::default();
            t.error("a client thread panicked".into());
            t
        });
        total.episodes += tally.episodes;
        total.executes.extend(tally.executes);
        total.errors += tally.errors;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    total.executes.sort_by(f64::total_cmp);
    let ms = |v: Option<f64>| v.map(|s| s * 1000.0);
    println!(
        "{}",
        json!({
            "clients": args.clients,
            "episodes": total.episodes,
            "seconds": seconds,
            "episodes_per_s": total.episodes as f64 / seconds,
            "executes": total.executes.len(),
            "execute_p50_ms": ms(quantile(&total.executes, 0.50)),
            "execute_p99_ms": ms(quantile(&total.executes, 0.99)),
            "errors": total.errors,
            "first_error": total.first_error,
        })
    );
}
