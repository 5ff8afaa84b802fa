//! `cargo xtask bench world --load`: the world server under concurrent clients.
//!
//! Builds `rung` and the `world_load` example of rung-world (release profile unless
//! `--profile` says otherwise), starts one `rung world serve` on a free port, and drives it at each client count in turn (1, 4, 16 and
//! 64 by default) with gold episodes for `--seconds` each: episodes/s, p50/p99 latency of
//! `/execute`, errors (any error fails the command) and the server's peak resident memory at
//! that level (`VmHWM` of `/proc/<pid>/status`, reset between levels through `clear_refs`).
//! Prints a table and, with `--json FILE`, writes the figures.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench_common::{build_target, fmt, last_json_line, write_json};

/// Options of `cargo xtask bench world`.
#[derive(Debug, clap::Args)]
pub struct WorldBenchArgs {
    /// Drive a `rung world serve` process with concurrent clients instead of running the
    /// criterion benchmarks.
    #[arg(long)]
    pub load: bool,
    /// Client counts, one level each (with --load).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub clients: Vec<usize>,
    /// Seconds of load per level (with --load).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// The server's worker threads (`rung world serve --workers`; its default when absent).
    #[arg(long)]
    pub workers: Option<u16>,
    /// Cargo profile of the server and the clients (with --load). `release` is what the
    /// figures mean; `dev` reuses a test build and measures a slower server.
    #[arg(long, default_value = "release")]
    pub profile: String,
    /// Also write the figures to this JSON file (with --load).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The server process, killed when dropped so that a failed level leaves nothing behind.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `rung world serve --port 0` and reads the port from its listening line.
    fn start(rung: &Path, workers: Option<u16>) -> Result<Self> {
        let mut command = Command::new(rung);
        command.args(["world", "serve", "--port", "0"]);
        if let Some(workers) = workers {
            command.args(["--workers", &workers.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} world serve", rung.display()))?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let mut url = None;
        for line in lines.by_ref() {
            let line = line?;
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_owned);
                break;
            }
        }
        // Keep draining the server's stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let mut server = Self {
            child,
            url: String::new(),
        };
        server.url = url.context("rung world serve exited without its listening line")?;
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Resets the peak-RSS mark so that the next level's peak is its own (Linux `clear_refs`).
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Runs the load levels and prints the table; fails if any request failed.
pub fn run(root: &Path, args: &WorldBenchArgs) -> Result<()> {
    if args.clients.is_empty() || args.clients.contains(&0) {
        bail!("--clients needs counts of at least 1, e.g. --clients 1,4,16,64");
    }
    let rung = build_target(root, &args.profile, &["--workspace"], "--bin", "rung")?;
    let client = build_target(
        root,
        &args.profile,
        &["--workspace"],
        "--example",
        "world_load",
    )?;
    let server = Server::start(&rung, args.workers)?;
    eprintln!(
        "xtask: rung world serve (pid {}) at {}; {} s per level",
        server.pid(),
        server.url,
        args.seconds
    );
    let mut levels = Vec::new();
    for &clients in &args.clients {
        reset_peak(server.pid());
        let output = Command::new(&client)
            .args(["--url", &server.url])
            .args(["--clients", &clients.to_string()])
            .args(["--seconds", &args.seconds.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {}", client.display()))?;
        if !output.status.success() {
            bail!(
                "the load client failed at {clients} clients ({})",
                output.status
            );
        }
        let mut level = last_json_line(&output.stdout)
            .with_context(|| format!("the load client printed no JSON at {clients} clients"))?;
        let peak = status_kib(server.pid(), "VmHWM");
        level["server_peak_rss_mib"] = json!(peak.map(|k| k as f64 / 1024.0));
        level["server_rss_after_mib"] =
            json!(status_kib(server.pid(), "VmRSS").map(|k| k as f64 / 1024.0));
        eprintln!("xtask: {clients} clients: {level}");
        levels.push(level);
    }
    print_table(&levels);
    let results = json!({
        "server": {"command": "rung world serve", "workers": args.workers, "profile": args.profile},
        "seconds_per_level": args.seconds,
        "levels": levels,
    });
    if let Some(path) = &args.json {
        write_json(path, &results)?;
    }
    let errors: u64 = levels.iter().filter_map(|l| l["errors"].as_u64()).sum();
    if errors > 0 {
        let first = levels
            .iter()
            .find_map(|l| l["first_error"].as_str())
            .unwrap_or("?");
        bail!("{errors} request(s) failed under load; the first: {first}");
    }
    Ok(())
}

fn print_table(levels: &[Value]) {
    println!(
        "{:>7}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}  {:>6}  {:>13}",
        "clients",
        "episodes",
        "episodes/s",
        "executes",
        "p50 ms",
        "p99 ms",
        "errors",
        "peak RSS MiB"
    );
    for level in levels {
        let num = |key: &str| level[key].as_f64();
        println!(
            "{:>7}  {:>8}  {:>10}  {:>8}  {:>10}  {:>10}  {:>6}  {:>13}",
            fmt(num("clients"), 0),
            fmt(num("episodes"), 0),
            fmt(num("episodes_per_s"), 1),
            fmt(num("executes"), 0),
            fmt(num("execute_p50_ms"), 2),
            fmt(num("execute_p99_ms"), 2),
            fmt(num("errors"), 0),
            fmt(num("server_peak_rss_mib"), 0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let pid = std::process::id();
        // RSS first: the peak read after it can only be as large or larger.
        let rss = status_kib(pid, "VmRSS").expect("VmRSS of this process");
        let peak = status_kib(pid, "VmHWM").expect("VmHWM of this process");
        assert!(peak >= rss && rss > 0, "{peak} {rss}");
        assert_eq!(status_kib(pid, "NoSuchField"), None);
    }
}
