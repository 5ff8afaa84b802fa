//! Hostile agent code: every way a cell can exhaust memory fails that cell alone, within its
//! limit, and the episode goes on with its namespace; other episodes never notice.
//!
//! Memory is measured by the kernel: this process's peak RSS (`VmHWM`) and the largest peak of
//! any worker it has reaped (`getrusage(RUSAGE_CHILDREN)`), so a test fails if any allocation
//! path gets past the limit. Process isolation is Linux-only, and so are these tests.
#![cfg(target_os = "linux")]

use std::sync::{Arc, LazyLock};
use std::thread;
use std::time::{Duration, Instant};

use rung_env::{AppWorldClient, Environment, EpisodeOptions};
use rung_world::population;
use rung_world::sandbox::{FAILED, Isolation, Limits, Sandbox, procfs};
use rung_world::world::World;
use rung_world::{EmbeddedWorld, Suite, SuiteOptions};

/// The configured bound of every sandbox in these tests (the default).
const LIMIT: usize = 256 << 20;
/// What a worker may reach above `LIMIT`: its executable and libraries at start, plus the
/// interpreter's own slack (128 MiB); generous for a test binary.
const WORKER_PEAK_BOUND: u64 = (LIMIT as u64) + (256 << 20);
/// This process never holds agent data: its peak stays far below one sandbox's limit.
const HOST_PEAK_BOUND: u64 = 1 << 30;

static SUITE: LazyLock<Arc<Suite>> =
    LazyLock::new(|| Arc::new(Suite::generate(SuiteOptions::default())));

fn world() -> World {
    let (db, now) = population::generate(1);
    World::new(db, now, 1)
}

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new(Limits::default());
    assert_eq!(sandbox.isolation(), Isolation::Process);
    sandbox
}

fn assert_memory_bounded() {
    let host = procfs::status_bytes("self", "VmHWM").unwrap();
    let worker = procfs::reaped_children_peak_bytes().unwrap();
    assert!(
        host < HOST_PEAK_BOUND,
        "this process peaked at {} MiB",
        host >> 20
    );
    assert!(
        worker < WORKER_PEAK_BOUND,
        "a worker peaked at {} MiB, over its bound of {} MiB",
        worker >> 20,
        WORKER_PEAK_BOUND >> 20
    );
}

/// Runs `cells` after defining `kept = 'still here'`, expects the last one to fail on memory,
/// and checks the episode goes on with its namespace.
fn exhausts_memory(cells: &[&str]) {
    let mut sandbox = sandbox();
    let mut world = world();
    assert_eq!(
        sandbox.execute("kept = 'still here'", &mut world),
        "Execution successful."
    );
    let (last, setup) = cells.split_last().unwrap();
    for cell in setup {
        let out = sandbox.execute(cell, &mut world);
        assert!(!out.starts_with(FAILED), "{cell}: {out}");
    }
    let worker = sandbox.worker_pid();
    let started = Instant::now();
    let out = sandbox.execute(last, &mut world);
    let took = started.elapsed();
    eprintln!("{last:?}: {took:.2?}: {out}");
    assert!(out.starts_with(FAILED), "{out}");
    assert!(
        out.contains("MemoryError") && out.contains("256 MiB"),
        "the failure names memory and the limit: {out}"
    );
    assert!(
        !out.contains("crashed"),
        "resource exhaustion is no crash: {out}"
    );
    assert!(
        out.contains("Variables from earlier cells are kept"),
        "{out}"
    );
    assert_ne!(
        sandbox.worker_pid(),
        worker,
        "the worker that held the memory is gone"
    );
    assert_eq!(sandbox.execute("print(kept)", &mut world), "still here");
    assert_eq!(sandbox.execute("print(1 + 1)", &mut world), "2");
    assert_memory_bounded();
}

#[test]
fn one_huge_list_repetition() {
    exhausts_memory(&["x = [0] * 2000000000"]);
}

#[test]
fn string_doubling_cell_by_cell() {
    let mut sandbox = sandbox();
    let mut world = world();
    assert_eq!(
        sandbox.execute("s = 'ab'", &mut world),
        "Execution successful."
    );
    let mut failed_at = None;
    for i in 0..64 {
        let out = sandbox.execute("s = s + s", &mut world);
        if out.starts_with(FAILED) {
            assert!(
                out.contains("MemoryError") && out.contains("256 MiB"),
                "{out}"
            );
            failed_at = Some(i);
            break;
        }
    }
    let failed_at = failed_at.expect("doubling a string 64 times must hit the limit");
    // 2 bytes doubled `failed_at` times succeeded; the namespace holds the last good string.
    let expected = 2usize << failed_at;
    assert!(expected <= LIMIT, "{expected}");
    assert_eq!(
        sandbox.execute("print(len(s))", &mut world),
        expected.to_string()
    );
    assert_memory_bounded();
}

#[test]
fn string_doubling_in_one_cell() {
    exhausts_memory(&["s = 'ab'\nfor i in range(64):\n    s = s + s"]);
}

#[test]
fn string_repetition() {
    exhausts_memory(&["s = 'x' * 2000000000"]);
}

#[test]
fn list_concatenation_in_a_loop() {
    exhausts_memory(&["x = [1]\nfor i in range(40):\n    x = x + x"]);
}

#[test]
fn comprehension_of_large_strings() {
    exhausts_memory(&["x = ['y' * 1000000 + str(i) for i in range(2000)]"]);
}

#[test]
fn dict_growth() {
    exhausts_memory(&["d = {i: 'v' * 100000 + str(i) for i in range(20000)}"]);
}

#[test]
fn json_of_api_outputs() {
    exhausts_memory(&[
        "doc = json.encode(apis.api_docs.show_api_descriptions(app_name='mail'))",
        "x = json.decode('[' + ','.join([doc] * 2000000) + ']')",
    ]);
}

#[test]
fn growth_across_cells() {
    let mut cells = vec!["chunks = []"];
    cells.extend(std::iter::repeat_n(
        "chunks.append('z' * 20000000 + str(len(chunks)))",
        4,
    ));
    cells.push("chunks.append('z' * 200000000)");
    exhausts_memory(&cells);
}

#[test]
fn huge_api_arguments_are_refused_by_the_api() {
    let mut sandbox = sandbox();
    let mut world = world();
    let before = world.db.clone();
    let out = sandbox.execute(
        "apis.supervisor.show_profile(extra='x' * 10000000)",
        &mut world,
    );
    assert!(out.starts_with(FAILED), "{out}");
    assert!(
        out.contains("Response status code is 413") && out.contains("at most 1048576 bytes"),
        "{out}"
    );
    // An episode cannot grow its world without end, one allowed call at a time either: 16 MiB
    // of arguments in all.
    let call = "apis.api_docs.show_api_doc(app_name='x' * 1000000, api_name='y')";
    for _ in 0..16 {
        let out = sandbox.execute(call, &mut world);
        assert!(
            out.contains("Response status code is 4") && !out.contains("413"),
            "{out}"
        );
    }
    let out = sandbox.execute(call, &mut world);
    assert!(
        out.contains("413") && out.contains("an episode may send at most 16777216"),
        "{out}"
    );
    assert!(
        world.db.diff(&before).is_empty(),
        "refused calls change nothing"
    );
    assert_memory_bounded();
}

#[test]
fn a_native_operation_past_the_time_limit_is_stopped() {
    let limits = Limits {
        max_time: Duration::from_millis(200),
        ..Limits::default()
    };
    let mut sandbox = Sandbox::new(limits);
    let mut world = world();
    sandbox.execute("kept = 1", &mut world);
    // One expression with no statement boundary inside, where Starlark cannot stop it: comparing
    // two lists of twelve billion elements, built in a few kilobytes from shared references.
    let started = Instant::now();
    let build = "a = [0] * 4000\nb = [a] * 1000\nc = [b] * 3000\n\
                 a2 = [0] * 4000\nb2 = [a2] * 1000\nc2 = [b2] * 3000";
    assert_eq!(sandbox.execute(build, &mut world), "Execution successful.");
    let out = sandbox.execute("same = c == c2", &mut world);
    let took = started.elapsed();
    eprintln!("{took:.2?}: {out}");
    assert!(
        out.starts_with(FAILED) && out.contains("TimeoutError"),
        "{out}"
    );
    assert!(
        out.contains("Variables from earlier cells are kept"),
        "{out}"
    );
    assert_eq!(sandbox.execute("print(kept)", &mut world), "1");
}

/// The cells of every gold program in the suite's first tasks, run episode by episode.
fn gold_run(env: &dyn Environment, count: usize) -> Vec<(String, Vec<String>, String)> {
    SUITE
        .tasks
        .iter()
        .step_by(37)
        .take(count)
        .map(|task| {
            env.initialize(&task.task_id, &EpisodeOptions::default())
                .unwrap();
            let outputs = task
                .gold_cells()
                .iter()
                .map(|cell| env.execute(&task.task_id, cell).unwrap())
                .collect();
            let evaluation = format!("{:?}", env.evaluate(&task.task_id).unwrap());
            env.close(&task.task_id).unwrap();
            (task.task_id.to_string(), outputs, evaluation)
        })
        .collect()
}

/// While one episode runs hostile cells, six others play their gold programs on the same
/// environment; they must end exactly as on a quiet one.
fn hostile_neighbour_changes_nothing(env: Arc<dyn Environment + Send + Sync>) {
    let quiet = gold_run(
        &EmbeddedWorld::with_suite(Arc::clone(&SUITE), Limits::default()),
        6,
    );
    let hostile = {
        let env = Arc::clone(&env);
        thread::spawn(move || {
            let task = &SUITE.tasks[1];
            env.initialize(&task.task_id, &EpisodeOptions::default())
                .unwrap();
            let mut failures = 0;
            for cell in [
                "x = [0] * 2000000000",
                "s = 'ab'\nfor i in range(64):\n    s = s + s",
                "d = {i: 'v' * 100000 + str(i) for i in range(20000)}",
            ] {
                let out = env.execute(&task.task_id, cell).unwrap();
                failures += usize::from(out.contains("MemoryError"));
            }
            env.close(&task.task_id).unwrap();
            failures
        })
    };
    let busy = gold_run(&*env, 6);
    assert_eq!(hostile.join().unwrap(), 3);
    assert_eq!(busy, quiet);
    assert!(
        busy.iter().all(|(_, _, e)| e.contains("success: true")),
        "the gold programs pass: {busy:?}"
    );
    assert_memory_bounded();
}

#[test]
fn other_episodes_finish_as_in_a_quiet_run() {
    hostile_neighbour_changes_nothing(Arc::new(EmbeddedWorld::with_suite(
        Arc::clone(&SUITE),
        Limits::default(),
    )));
}

#[test]
fn other_episodes_of_an_http_server_finish_as_in_a_quiet_run() {
    let world = Arc::new(EmbeddedWorld::with_suite(
        Arc::clone(&SUITE),
        Limits::default(),
    ));
    let server = rung_env::serve(world, "127.0.0.1:0").unwrap();
    hostile_neighbour_changes_nothing(Arc::new(AppWorldClient::new(server.url())));
    server.stop();
}

#[test]
fn the_memory_budget_bounds_open_episodes() {
    let world = EmbeddedWorld::with_suite(Arc::clone(&SUITE), Limits::default())
        .with_memory_budget(2 * LIMIT + LIMIT / 2);
    assert_eq!(world.max_open_episodes(), 2);
    let ids: Vec<_> = SUITE.tasks[..3].iter().map(|t| &t.task_id).collect();
    let options = EpisodeOptions::default();
    world.initialize(ids[0], &options).unwrap();
    world.initialize(ids[1], &options).unwrap();
    // Re-initializing an open episode replaces it and needs no room.
    world.initialize(ids[1], &options).unwrap();
    let refused = world.initialize(ids[2], &options).unwrap_err();
    assert_eq!(refused.http_status(), 503, "{refused}");
    assert!(refused.to_string().contains("memory budget"), "{refused}");
    world.close(ids[0]).unwrap();
    world.initialize(ids[2], &options).unwrap();
    assert_eq!(world.execute(ids[2], "print(2 * 21)").unwrap(), "42");
}
