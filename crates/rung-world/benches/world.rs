//! Benchmarks of the embedded world's hot paths, so that regressions in the sandbox or the
//! evaluator show up as numbers (`cargo xtask bench world` runs and summarises them).
//!
//! * `execute/three_call_step`: one typical agent step (three API calls in one code cell) in a
//!   persistent sandbox, the unit cost of every rollout. Target: ≥ 5,000 steps/s on one core.
//! * `replay/test_normal_{warm,cold}`: every test_normal task replayed end to end through
//!   `EmbeddedWorld`'s `Environment` API (initialize → gold cells → evaluate → close), the cost of
//!   evaluating a whole split. `warm` has every task's expectation cached beforehand (as in a
//!   long-running server or training run); `cold` starts from a fresh world, so each evaluate
//!   first replays the gold plan to derive the expectation. Target: < 2 s for the split.
//!
//! The suite is generated once, outside every timing. Sample sizes are small so that the whole
//! run takes about a minute; the targets are reported, not asserted.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rung_env::{Environment, EpisodeOptions, Split};
use rung_world::env::start_world;
use rung_world::sandbox::{FAILED, Isolation, Limits, Sandbox};
use rung_world::{EmbeddedWorld, Suite, SuiteOptions, Task};

/// Logs in to phone and mail once, untimed, as an agent's first step would.
const SETUP_CELL: &str = r#"passwords = {a["account_name"]: a["password"] for a in apis.supervisor.show_account_passwords()}
me = apis.supervisor.show_profile()
phone_token = apis.phone.login(username=me["phone_number"], password=passwords["phone"])["access_token"]
mail_token = apis.mail.login(username=me["email"], password=passwords["mail"])["access_token"]"#;

/// A typical step: three read-only API calls, so that the world stays the same across iterations.
const STEP_CELL: &str = r#"p = apis.supervisor.show_profile()
c = apis.phone.search_contacts(access_token=phone_token, query=p["last_name"])
m = apis.mail.show_inbox(access_token=mail_token)"#;

fn suite() -> Arc<Suite> {
    Arc::new(Suite::generate(SuiteOptions::default()))
}

fn bench_execute(c: &mut Criterion, suite: &Suite) {
    let task = suite
        .split(Split::TestNormal)
        .next()
        .expect("test_normal has tasks");
    let mut group = c.benchmark_group("execute");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    // A worker process per episode (the default, for agent code) against a thread (trusted code):
    // what isolation costs per step.
    for (name, isolation) in [
        ("process", Isolation::Process),
        ("thread", Isolation::Thread),
    ] {
        let mut sandbox = Sandbox::new(Limits {
            isolation,
            ..Limits::default()
        });
        let mut world = start_world(suite, task);
        let output = sandbox.execute(SETUP_CELL, &mut world);
        assert!(!output.starts_with(FAILED), "setup cell failed: {output}");
        let output = sandbox.execute(STEP_CELL, &mut world);
        assert!(!output.starts_with(FAILED), "step cell failed: {output}");
        group.bench_function(format!("three_call_step_{name}"), |b| {
            b.iter(|| black_box(sandbox.execute(black_box(STEP_CELL), &mut world)));
        });
    }
    group.finish();
}

/// Replays every task of `tasks` through the `Environment` API; panics if one fails, since a
/// benchmark of a broken replay would measure the wrong thing.
fn replay_all(world: &EmbeddedWorld, tasks: &[&Task]) -> usize {
    let options = EpisodeOptions::default();
    let mut passed = 0;
    for task in tasks {
        let id = &task.task_id;
        world.initialize(id, &options).expect("initialize");
        for cell in task.gold_cells() {
            let output = world.execute(id, cell).expect("execute");
            black_box(output);
        }
        passed += usize::from(world.evaluate(id).expect("evaluate").success);
        world.close(id).expect("close");
    }
    passed
}

fn bench_replay(c: &mut Criterion, suite: &Arc<Suite>) {
    let tasks: Vec<&Task> = suite.split(Split::TestNormal).collect();
    let warm = EmbeddedWorld::with_suite(Arc::clone(suite), Limits::default());
    // Pre-warm: computes and caches every expectation, and checks every gold replay passes.
    let passed = replay_all(&warm, &tasks);
    assert_eq!(passed, tasks.len(), "every test_normal gold replay passes");

    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(tasks.len() as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("test_normal_warm", |b| {
        b.iter(|| replay_all(&warm, &tasks));
    });
    // Each cold iteration also replays every gold plan once more for its expectation.
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("test_normal_cold", |b| {
        b.iter_batched(
            || EmbeddedWorld::with_suite(Arc::clone(suite), Limits::default()),
            |world| replay_all(&world, &tasks),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let suite = suite();
    bench_execute(c, &suite);
    bench_replay(c, &suite);
}

criterion_group!(world, benches);
criterion_main!(world);
