//! A fuzzer for the sandbox: generated programs and mutated gold programs run against the world,
//! each checked for what must never happen whatever the code is: a crash report, a cell past its
//! limits, an episode that stops answering, a process past its memory bound.
//!
//! Programs come from a grammar over the Starlark subset agents write (assignments, loops,
//! conditions, functions, comprehensions, f-strings, built-ins, string methods, real
//! `apis.<app>.<api>` calls with the real parameter names, and sizes chosen to hit the limits)
//! and from mutations of the suite's gold cells (lines deleted, repeated, swapped, cut short,
//! literals replaced by huge or odd values). Everything is drawn from one seed, so a finding
//! replays exactly: the report names the program.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rung_env::{Environment, EpisodeOptions};

use crate::apps::registry;
use crate::env::EmbeddedWorld;
use crate::sandbox::{FAILED, Limits};
use crate::tasks::Suite;

/// How long and how hard to fuzz.
#[derive(Debug, Clone)]
pub struct FuzzOptions {
    /// Seed of every random choice.
    pub seed: u64,
    /// Stop after this many programs…
    pub max_programs: usize,
    /// …or after this much time, whichever comes first.
    pub max_time: Duration,
    /// The sandbox limits the programs run under (short cells keep the fuzzer fast).
    pub limits: Limits,
}

impl Default for FuzzOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            max_programs: usize::MAX,
            max_time: Duration::from_secs(60),
            limits: Limits {
                max_time: Duration::from_secs(1),
                ..Limits::default()
            },
        }
    }
}

/// Something that must never happen.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// Index of the program (replay with the same seed).
    pub program: usize,
    /// The cell that showed it.
    pub code: String,
    /// What went wrong.
    pub problem: String,
    /// The cell's output.
    pub output: String,
}

/// What a fuzzing run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FuzzReport {
    /// Programs run (each in its own episode).
    pub programs: usize,
    /// Cells run.
    pub cells: usize,
    /// Cells that succeeded.
    pub succeeded: usize,
    /// Cells that failed as code fails (syntax, exceptions, API errors).
    pub failed: usize,
    /// Cells stopped at the memory limit.
    pub memory: usize,
    /// Cells stopped at the time limit.
    pub timeouts: usize,
    /// Longest cell, in seconds.
    pub slowest_cell_seconds: f64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Peak resident memory of this process (Linux), in bytes.
    pub host_peak_bytes: Option<u64>,
    /// Largest peak resident memory of any worker process this process reaped (Linux).
    pub worker_peak_bytes: Option<u64>,
    /// What must never happen, and did.
    pub findings: Vec<Finding>,
}

/// Time a cell may take past its own limit before it counts as a finding: the sandbox's kill
/// grace plus scheduling on a loaded machine.
const LATE: Duration = Duration::from_secs(4);

/// Runs generated and mutated programs until the count or the time is up.
pub fn fuzz(suite: &Arc<Suite>, options: &FuzzOptions) -> FuzzReport {
    let world = EmbeddedWorld::with_suite(Arc::clone(suite), options.limits);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let gold: Vec<String> = suite
        .tasks
        .iter()
        .flat_map(|t| t.gold_cells().into_iter().map(str::to_owned))
        .collect();
    let started = Instant::now();
    let mut report = FuzzReport::default();
    let episode = EpisodeOptions::default();
    while report.programs < options.max_programs && started.elapsed() < options.max_time {
        let program = report.programs;
        let task = &suite.tasks[rng.random_range(0..suite.tasks.len())];
        let cells: Vec<String> = if rng.random_bool(0.5) {
            (0..rng.random_range(1..5))
                .map(|_| Generator { rng: &mut rng }.program())
                .collect()
        } else {
            let start = rng.random_range(0..gold.len());
            let take = rng.random_range(1..4).min(gold.len() - start);
            gold[start..start + take]
                .iter()
                .map(|cell| mutate(&mut rng, cell))
                .collect()
        };
        let id = &task.task_id;
        if let Err(e) = world.initialize(id, &episode) {
            report
                .findings
                .push(finding(program, "", format!("initialize: {e}"), ""));
            break;
        }
        for code in cells.iter().map(String::as_str).chain(["print('alive')"]) {
            let begun = Instant::now();
            let output = match world.execute(id, code) {
                Ok(output) => output,
                Err(e) => {
                    report
                        .findings
                        .push(finding(program, code, format!("execute: {e}"), ""));
                    break;
                }
            };
            let took = begun.elapsed();
            report.cells += 1;
            report.slowest_cell_seconds = report.slowest_cell_seconds.max(took.as_secs_f64());
            if took > options.limits.max_time + LATE {
                let problem = format!("the cell took {took:.1?}, past its limit");
                report
                    .findings
                    .push(finding(program, code, problem, &output));
            }
            if output.contains("crashed") || output.contains("InternalError") {
                let problem = "the interpreter crashed".to_owned();
                report
                    .findings
                    .push(finding(program, code, problem, &output));
            }
            if code == "print('alive')" && output != "alive" {
                let problem = "the episode stopped answering".to_owned();
                report
                    .findings
                    .push(finding(program, code, problem, &output));
            }
            if !output.starts_with(FAILED) {
                report.succeeded += 1;
            } else if output.contains("MemoryError") {
                report.memory += 1;
            } else if output.contains("TimeoutError") {
                report.timeouts += 1;
            } else {
                report.failed += 1;
            }
        }
        if let Err(e) = world.evaluate(id).and_then(|_| world.close(id)) {
            report
                .findings
                .push(finding(program, "", format!("evaluate/close: {e}"), ""));
        }
        report.programs += 1;
    }
    report.seconds = started.elapsed().as_secs_f64();
    drop(world);
    (report.host_peak_bytes, report.worker_peak_bytes) = peaks();
    // A worker may use its limit plus the executable and the interpreter's slack.
    let bound = options.limits.max_heap as u64 + (512 << 20);
    if let Some(peak) = report.worker_peak_bytes.filter(|&p| p > bound) {
        let problem = format!(
            "a worker peaked at {} MiB, over {} MiB",
            peak >> 20,
            bound >> 20
        );
        report
            .findings
            .push(finding(report.programs, "", problem, ""));
    }
    report
}

/// This process's peak RSS and the largest peak RSS of its reaped children, from the kernel.
#[cfg(target_os = "linux")]
fn peaks() -> (Option<u64>, Option<u64>) {
    use crate::sandbox::procfs;
    (
        procfs::status_bytes("self", "VmHWM"),
        procfs::reaped_children_peak_bytes(),
    )
}

#[cfg(not(target_os = "linux"))]
fn peaks() -> (Option<u64>, Option<u64>) {
    (None, None)
}

fn finding(program: usize, code: &str, problem: String, output: &str) -> Finding {
    Finding {
        program,
        code: code.to_owned(),
        problem,
        output: output.chars().take(2000).collect(),
    }
}

// ---- generated programs ---------------------------------------------------------------------

/// Draws programs from a grammar of the Starlark agents write.
struct Generator<'r> {
    rng: &'r mut ChaCha8Rng,
}

const NAMES: &[&str] = &["x", "y", "items", "token", "page", "result", "n", "s", "d"];

impl Generator<'_> {
    fn program(&mut self) -> String {
        let statements = self.rng.random_range(1..6);
        let mut out = String::new();
        for _ in 0..statements {
            self.statement(0, &mut out);
        }
        out
    }

    fn statement(&mut self, indent: usize, out: &mut String) {
        let pad = "    ".repeat(indent);
        let nested = indent < 2;
        match self.rng.random_range(0..10) {
            0 | 1 => {
                let name = self.name();
                let value = self.expr(0);
                out.push_str(&format!("{pad}{name} = {value}\n"));
            }
            2 => {
                let value = self.expr(0);
                out.push_str(&format!("{pad}print({value})\n"));
            }
            3 => {
                let call = self.api_call();
                out.push_str(&format!("{pad}{call}\n"));
            }
            4 if nested => {
                let name = self.name();
                let iterable = self.iterable();
                out.push_str(&format!("{pad}for {name} in {iterable}:\n"));
                self.block(indent + 1, out);
            }
            5 if nested => {
                let condition = self.expr(1);
                out.push_str(&format!("{pad}if {condition}:\n"));
                self.block(indent + 1, out);
                if self.rng.random_bool(0.5) {
                    out.push_str(&format!("{pad}else:\n"));
                    self.block(indent + 1, out);
                }
            }
            6 if indent == 0 => {
                let body = self.expr(1);
                let arg = self.expr(1);
                out.push_str(&format!("def f(a):\n    return {body}\nprint(f({arg}))\n"));
            }
            7 => {
                let name = self.name();
                let value = self.expr(1);
                let op = ["+=", "-=", "*="].choose(self.rng).expect("non-empty");
                out.push_str(&format!("{pad}{name} {op} {value}\n"));
            }
            8 => {
                let value = self.expr(1);
                out.push_str(&format!("{pad}items = []\n{pad}items.append({value})\n"));
            }
            _ => {
                let name = self.name();
                let value = self.expr(0);
                out.push_str(&format!("{pad}print(f'{{{name}}} and {{{value}}}')\n"));
            }
        }
    }

    fn block(&mut self, indent: usize, out: &mut String) {
        for _ in 0..self.rng.random_range(1..3) {
            self.statement(indent, out);
        }
    }

    fn name(&mut self) -> &'static str {
        NAMES.choose(self.rng).expect("non-empty")
    }

    fn iterable(&mut self) -> String {
        match self.rng.random_range(0..4) {
            0 => format!("range({})", self.int()),
            1 => self.name().to_owned(),
            2 => format!("[{}, {}]", self.expr(2), self.expr(2)),
            _ => format!("{}.get('items', [])", self.api_call()),
        }
    }

    fn int(&mut self) -> String {
        match self.rng.random_range(0..6) {
            0 => "0".into(),
            1 => "-1".into(),
            2 => self.rng.random_range(1..20).to_string(),
            3 => self.rng.random_range(100..100_000).to_string(),
            // Sizes that reach the memory and integer limits.
            4 => [
                "100000000",
                "2000000000",
                "2147483647",
                "99999999999999999999",
            ]
            .choose(self.rng)
            .expect("non-empty")
            .to_string(),
            _ => self.rng.random_range(-1000..1000).to_string(),
        }
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "",
            "a",
            "hello",
            "Ann",
            "2024-01-01",
            "x@y.z",
            "\\n",
            "\\\"",
            "'",
            "{}",
            "%s",
            "é",
            "名前",
            "\\u0000",
            "\\\\",
        ];
        let piece = PIECES.choose(self.rng).expect("non-empty");
        format!("\"{piece}\"")
    }

    fn expr(&mut self, depth: usize) -> String {
        let leaf = depth >= 3 || self.rng.random_bool(0.3);
        if leaf {
            return match self.rng.random_range(0..6) {
                0 | 1 => self.int(),
                2 | 3 => self.string(),
                4 => ["True", "False", "None"]
                    .choose(self.rng)
                    .expect("non-empty")
                    .to_string(),
                _ => self.name().to_owned(),
            };
        }
        let d = depth + 1;
        match self.rng.random_range(0..16) {
            0 => {
                let op = ["+", "-", "*", "//", "%", "==", "<", "and", "or", "in", "!="]
                    .choose(self.rng)
                    .expect("non-empty");
                format!("({} {op} {})", self.expr(d), self.expr(d))
            }
            1 => format!("[{}, {}]", self.expr(d), self.expr(d)),
            2 => format!("{{{}: {}}}", self.string(), self.expr(d)),
            3 => format!("{}[{}]", self.expr(d), self.expr(d)),
            4 => format!("{}[{}:{}]", self.expr(d), self.int(), self.int()),
            5 => {
                let f = [
                    "len",
                    "str",
                    "int",
                    "sorted",
                    "list",
                    "dict",
                    "min",
                    "max",
                    "enumerate",
                    "reversed",
                    "bool",
                    "repr",
                    "type",
                    "sum",
                    "round",
                    "abs",
                    "hash",
                    "range",
                ]
                .choose(self.rng)
                .expect("non-empty");
                format!("{f}({})", self.expr(d))
            }
            6 => format!("json.encode({})", self.expr(d)),
            7 => format!("json.decode({})", self.expr(d)),
            8 => {
                let method = [
                    "upper()",
                    "lower()",
                    "split(',')",
                    "strip()",
                    "replace('a', 'bb')",
                    "startswith('a')",
                    "format(1, 2)",
                    "join(['a', 'b'])",
                    "keys()",
                    "values()",
                    "items()",
                    "get('id')",
                    "count('a')",
                    "find('x')",
                ]
                .choose(self.rng)
                .expect("non-empty");
                format!("{}.{method}", self.expr(d))
            }
            9 => format!(
                "[{} for i in range({}) if {}]",
                self.expr(d),
                self.int(),
                self.expr(d)
            ),
            10 => format!("{{i: {} for i in range({})}}", self.expr(d), self.int()),
            11 => format!(
                "({} if {} else {})",
                self.expr(d),
                self.expr(d),
                self.expr(d)
            ),
            12 => format!("{} * {}", self.expr(d), self.int()),
            13 => self.api_call(),
            14 => format!("{}['{}']", self.api_call(), self.name()),
            _ => format!("f'{{{}}}-{{{}}}'", self.name(), self.name()),
        }
    }

    /// A call to a real API with some of its real parameters.
    fn api_call(&mut self) -> String {
        let registry = registry();
        let apps = registry.app_names();
        let app = *apps.choose(self.rng).expect("apps exist");
        let apis = registry.app(app).expect("listed app");
        let names: Vec<&&str> = apis.keys().collect();
        let api = **names.choose(self.rng).expect("apps have APIs");
        let spec = &apis[api];
        let mut args: Vec<String> = spec
            .params
            .iter()
            .filter(|_| self.rng.random_bool(0.7))
            .map(|p| p.name.to_owned())
            .collect();
        if self.rng.random_bool(0.3) {
            args.push("access_token".into());
        }
        if self.rng.random_bool(0.1) {
            args.push("bogus".into());
        }
        let args: Vec<String> = args
            .into_iter()
            .map(|name| format!("{name}={}", self.expr(2)))
            .collect();
        format!("apis.{app}.{api}({})", args.join(", "))
    }
}

// ---- mutated gold programs ------------------------------------------------------------------

/// One to three random edits of a gold cell.
fn mutate(rng: &mut ChaCha8Rng, cell: &str) -> String {
    let mut lines: Vec<String> = cell.lines().map(str::to_owned).collect();
    for _ in 0..rng.random_range(1..4) {
        if lines.is_empty() {
            lines.push(Generator { rng }.program());
            continue;
        }
        let at = rng.random_range(0..lines.len());
        match rng.random_range(0..8) {
            0 => {
                lines.remove(at);
            }
            1 => {
                let line = lines[at].clone();
                lines.insert(at, line);
            }
            2 => {
                let other = rng.random_range(0..lines.len());
                lines.swap(at, other);
            }
            3 => {
                // Cut the line short at a character boundary.
                let line = &lines[at];
                let cut = rng.random_range(0..=line.len());
                let cut = (0..=cut)
                    .rev()
                    .find(|&i| line.is_char_boundary(i))
                    .unwrap_or(0);
                lines[at] = line[..cut].to_owned();
            }
            4 => lines[at] = replace_literal(rng, &lines[at]),
            5 => {
                let indent: String = lines[at].chars().take_while(|c| *c == ' ').collect();
                let statement = Generator { rng }.program();
                for (i, line) in statement.lines().enumerate() {
                    lines.insert(at + i, format!("{indent}{line}"));
                }
            }
            6 => lines[at] = format!("    {}", lines[at]),
            _ => {
                lines[at] =
                    lines[at].replace(['"', '\''], if rng.random_bool(0.5) { "\"" } else { "'" })
            }
        }
    }
    lines.join("\n")
}

/// Replaces the first number or string literal of a line by an extreme value.
fn replace_literal(rng: &mut ChaCha8Rng, line: &str) -> String {
    const EXTREMES: &[&str] = &[
        "'x' * 300000000",
        "[0] * 2000000000",
        "-1",
        "2147483648",
        "None",
        "''",
        "'\\u0000'",
        "{'a': [1, 2]}",
        "'a' * 2000000",
    ];
    let extreme = *EXTREMES.choose(rng).expect("non-empty");
    if let Some(start) = line.find(|c: char| c.is_ascii_digit()) {
        let end = line[start..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(line.len(), |e| start + e);
        return format!("{}{extreme}{}", &line[..start], &line[end..]);
    }
    for quote in ['\'', '"'] {
        if let Some(start) = line.find(quote)
            && let Some(len) = line[start + 1..].find(quote)
        {
            let end = start + 1 + len + 1;
            return format!("{}{extreme}{}", &line[..start], &line[end..]);
        }
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_and_mutations_are_deterministic_by_seed() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let generated: Vec<String> = (0..20)
                .map(|_| Generator { rng: &mut rng }.program())
                .collect();
            let mutated = mutate(
                &mut rng,
                "t = apis.mail.login(username='a', password='b')\nprint(t)",
            );
            (generated, mutated)
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn literals_are_replaced() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let line = "page = apis.mail.show_inbox(page_index=12)";
        let replaced = replace_literal(&mut rng, line);
        assert!(!replaced.contains("=12)"), "{replaced}");
        assert!(replaced.starts_with("page = apis.mail.show_inbox(page_index="));
        assert_eq!(replace_literal(&mut rng, "x = y"), "x = y");
    }
}
