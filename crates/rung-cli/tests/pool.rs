//! `rung world serve` works as the server process of a `ServerPool`, in place of
//! `appworld serve environment`: the pool's `{port}` placeholder, readiness probe, parallel
//! episodes, restart and clean shutdown all work with the real binary.

use std::path::Path;
use std::thread;
use std::time::Duration;

use rung_env::{Environment, EpisodeOptions, PoolOptions, ServerPool, Split};
use rung_world::sandbox::FAILED;
use rung_world::{Suite, SuiteOptions, Task};

fn pool_options(size: usize) -> PoolOptions {
    PoolOptions {
        command: [
            env!("CARGO_BIN_EXE_rung"),
            "world",
            "serve",
            "--port",
            "{port}",
        ]
        .map(String::from)
        .to_vec(),
        size,
        startup_timeout: Duration::from_secs(60),
        experiment_prefix: "rung-cli-pool-test".into(),
        ..PoolOptions::default()
    }
}

/// Runs `task`'s gold plan through `env` and returns whether it succeeds.
fn run_gold(env: &impl Environment, task: &Task) -> bool {
    let info = env
        .initialize(&task.task_id, &EpisodeOptions::default())
        .expect("initialize");
    assert_eq!(info.instruction, task.instruction);
    for cell in task.gold_cells() {
        let output = env.execute(&task.task_id, cell).expect("execute");
        assert!(!output.starts_with(FAILED), "{}: {output}", task.task_id);
    }
    let evaluation = env.evaluate(&task.task_id).expect("evaluate");
    env.close(&task.task_id).expect("close");
    evaluation.success
}

#[test]
fn a_pool_of_rung_world_servers() {
    let suite = Suite::generate(SuiteOptions::default());
    let tasks: Vec<&Task> = suite.split(Split::Dev).take(2).collect();
    let mut pool = ServerPool::start(pool_options(2)).expect("two servers start");
    assert_eq!(pool.len(), 2);
    let urls = pool.urls();
    assert_ne!(urls[0], urls[1], "servers have distinct ports");

    for client in pool.clients() {
        let info = client.task_info(&tasks[0].task_id).expect("task_info");
        assert_eq!(info.instruction, tasks[0].instruction);
    }

    // One gold task per server, in parallel.
    let results: Vec<bool> = thread::scope(|scope| {
        let runs: Vec<_> = pool
            .clients()
            .iter()
            .zip(&tasks)
            .map(|(client, task)| scope.spawn(move || run_gold(client, task)))
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("episode thread"))
            .collect()
    });
    assert_eq!(results, [true, true]);

    // A restarted server answers on its new port and runs episodes again.
    let old_pid = pool.pid(1).expect("server 1");
    pool.restart(1).expect("restart");
    assert_ne!(pool.pid(1), Some(old_pid));
    assert!(!process_exists(old_pid), "the old server {old_pid} is gone");
    assert!(pool.is_alive(1));
    assert!(run_gold(&pool.clients()[1], tasks[1]));

    // Dropping the pool leaves no server running.
    let pids: Vec<u32> = (0..pool.len()).filter_map(|i| pool.pid(i)).collect();
    drop(pool);
    for pid in pids {
        assert!(!process_exists(pid), "server {pid} outlived the pool");
    }
}

/// Whether `pid` is a live process (a zombie does not count); without `/proc`, assume not.
fn process_exists(pid: u32) -> bool {
    let stat = Path::new("/proc").join(pid.to_string()).join("stat");
    std::fs::read_to_string(stat).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}
