//! `ServerPool` with real processes: `python3 -m http.server` stands in for an environment server
//! (it answers `GET /`), and small shell commands fail in the ways real servers do.

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{TempDir, process_exists};
use rung_env::{
    AppWorldClient, ClientOptions, EnvError, Environment, EpisodeOptions, PoolOptions, ServerPool,
    TaskId,
};

fn http_server_options(size: usize) -> PoolOptions {
    PoolOptions {
        command: [
            "python3",
            "-m",
            "http.server",
            "{port}",
            "--bind",
            "127.0.0.1",
        ]
        .map(String::from)
        .to_vec(),
        size,
        startup_timeout: Duration::from_secs(30),
        experiment_prefix: "test".into(),
        ..PoolOptions::default()
    }
}

fn answers(url: &str) -> bool {
    let options = ClientOptions {
        retries: 0,
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    AppWorldClient::with_options(url, options).ping().is_ok()
}

fn refused(url: &str) -> bool {
    let options = ClientOptions {
        retries: 0,
        timeout: Duration::from_secs(2),
        ..ClientOptions::default()
    };
    matches!(
        AppWorldClient::with_options(url, options).ping(),
        Err(EnvError::ServerNotRunning { .. })
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn start_error(options: PoolOptions) -> String {
    match ServerPool::start(options) {
        Err(EnvError::Pool(message)) => message,
        Err(other) => panic!("expected a pool error, got {other:?}"),
        Ok(pool) => panic!("expected a failure, got a pool at {:?}", pool.urls()),
    }
}

#[test]
fn a_pool_starts_servers_restarts_one_and_leaves_no_process() {
    let mut pool = ServerPool::start(http_server_options(2)).expect("start");
    assert_eq!(pool.len(), 2);
    assert_eq!(pool.experiments(), ["test-0", "test-1"]);
    let urls = pool.urls();
    assert_ne!(urls[0], urls[1]);
    for (client, url) in pool.clients().iter().zip(&urls) {
        assert_eq!(client.base_url(), url);
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        client.ping().expect("a started server answers");
    }
    let log = pool.log_path(0).expect("log").to_path_buf();
    assert!(log.exists(), "{}", log.display());

    let old_pid = pool.pid(0).expect("pid");
    assert!(pool.is_alive(0));
    let status = Command::new("kill")
        .args(["-KILL", &old_pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_until("the killed server is seen dead", || !pool.is_alive(0));
    assert!(refused(&urls[0]));

    pool.restart(0).expect("restart");
    assert!(pool.is_alive(0));
    let new_url = pool.urls()[0].clone();
    assert_ne!(new_url, urls[0], "a restarted server gets a fresh port");
    pool.clients()[0]
        .ping()
        .expect("the restarted server answers");
    assert!(!process_exists(old_pid), "the killed server was reaped");

    let pids = [pool.pid(0).expect("pid"), pool.pid(1).expect("pid")];
    let log_dir = log.parent().expect("dir").to_path_buf();
    drop(pool);
    for pid in pids {
        assert!(!process_exists(pid), "process {pid} outlived the pool");
    }
    assert!(refused(&new_url) && refused(&urls[1]));
    assert!(!log_dir.exists(), "the temporary log folder is removed");
}

#[test]
fn restart_checks_its_index() {
    let mut pool = ServerPool::start(http_server_options(1)).expect("start");
    let message = pool.restart(5).expect_err("no server 5").to_string();
    assert!(
        message.contains("no server 5 to restart: the pool has 1"),
        "{message}"
    );
    assert!(!pool.is_alive(5));
    assert!(
        pool.is_alive(0),
        "a refused restart leaves the other servers alone"
    );
}

#[test]
fn dropping_the_pool_kills_the_children_of_a_wrapper_script() {
    let options = PoolOptions {
        // The shell forks python (another command follows), so python is a grandchild.
        command: [
            "sh",
            "-c",
            "python3 -m http.server {port} --bind 127.0.0.1; echo exited",
        ]
        .map(String::from)
        .to_vec(),
        ..http_server_options(1)
    };
    let pool = ServerPool::start(options).expect("start");
    let url = pool.urls()[0].clone();
    let pid = pool.pid(0).expect("pid");
    assert!(answers(&url));
    drop(pool);
    assert!(!process_exists(pid));
    assert!(
        refused(&url),
        "python, the wrapper's child, still listens at {url}"
    );
}

#[test]
fn a_command_that_exits_fails_with_its_status_and_log() {
    let logs = TempDir::new("exits");
    let options = PoolOptions {
        command: ["sh", "-c", "echo boom >&2; exit 3"]
            .map(String::from)
            .to_vec(),
        log_dir: Some(logs.path().to_path_buf()),
        ..http_server_options(2)
    };
    let message = start_error(options);
    assert!(message.contains("sh -c echo boom >&2; exit 3"), "{message}");
    assert!(message.contains("exited with exit status: 3"), "{message}");
    assert!(message.contains("port "), "{message}");
    assert!(message.ends_with("boom"), "{message}");
}

#[test]
fn a_command_that_never_answers_times_out_and_is_killed() {
    let dir = TempDir::new("silent");
    let pid_file = dir.path().join("pid");
    let script = format!(
        "echo $$ > {}; echo started; exec sleep 30",
        pid_file.display()
    );
    let options = PoolOptions {
        command: vec!["sh".into(), "-c".into(), script],
        startup_timeout: Duration::from_millis(500),
        log_dir: Some(dir.path().to_path_buf()),
        ..http_server_options(1)
    };
    let started = Instant::now();
    let message = start_error(options);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        message.contains("did not answer GET / in time"),
        "{message}"
    );
    assert!(message.ends_with("started"), "{message}");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(
        !process_exists(pid),
        "the silent server {pid} was left running"
    );
}

#[test]
fn a_missing_program_fails_to_start() {
    let logs = TempDir::new("missing");
    let options = PoolOptions {
        command: vec!["/nonexistent/rung-server".into(), "{port}".into()],
        log_dir: Some(logs.path().to_path_buf()),
        ..http_server_options(1)
    };
    let message = start_error(options);
    assert!(message.contains("`/nonexistent/rung-server "), "{message}");
    assert!(message.contains("could not be started"), "{message}");
}

/// Set for the child process of `a_killed_owner_leaves_no_server_behind`: where `pool_holder`
/// writes its servers' pids and URLs.
const HOLDER_ENV: &str = "RUNG_POOL_HOLDER_FILE";

/// Not a test of its own: the child process of `a_killed_owner_leaves_no_server_behind`, which
/// runs this test binary again with only this function. It starts a pool, says where its
/// servers are, and waits to be killed.
#[test]
#[ignore = "a helper process of a_killed_owner_leaves_no_server_behind"]
fn pool_holder() {
    let Some(path) = std::env::var_os(HOLDER_ENV) else {
        return;
    };
    let pool = ServerPool::start(http_server_options(2)).expect("start");
    let urls = pool.urls();
    let line = format!(
        "{} {} {} {}\n",
        pool.pid(0).expect("pid"),
        pool.pid(1).expect("pid"),
        urls[0],
        urls[1]
    );
    let tmp = std::path::PathBuf::from(&path).with_extension("tmp");
    std::fs::write(&tmp, line).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    loop {
        thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn a_killed_owner_leaves_no_server_behind() {
    let dir = TempDir::new("holder");
    let file = dir.path().join("servers");
    let mut holder = Command::new(std::env::current_exe().expect("test binary"))
        .args(["pool_holder", "--exact", "--ignored", "--test-threads=1"])
        .env(HOLDER_ENV, &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the holder");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !file.exists() {
        if let Ok(Some(status)) = holder.try_wait() {
            panic!("the pool holder exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the pool holder did not start its pool"
        );
        thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&file).expect("read");
    let fields: Vec<&str> = text.split_whitespace().collect();
    let pids: Vec<u32> = fields[..2]
        .iter()
        .map(|p| p.parse().expect("pid"))
        .collect();
    let urls = &fields[2..];
    for url in urls {
        assert!(answers(url), "{url} does not answer");
    }

    // SIGKILL: the holder runs no destructor, so only the watchdogs can stop its servers.
    holder.kill().expect("kill the holder");
    holder.wait().expect("reap the holder");

    wait_until("the orphaned servers are stopped", || {
        pids.iter().all(|&pid| !process_running(pid)) && urls.iter().all(|url| refused(url))
    });
}

#[test]
fn a_member_restarts_its_dead_server_at_the_next_episode() {
    let pool = ServerPool::start(http_server_options(1)).expect("start");
    let members = pool.into_members();
    let member = &members[0];
    let (old_pid, old_url) = {
        let pool = member.pool().lock().expect("lock");
        (pool.pid(0).expect("pid"), pool.urls()[0].clone())
    };
    let status = Command::new("kill")
        .args(["-KILL", &old_pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_until("the killed server is seen dead", || {
        !member.pool().lock().expect("lock").is_alive(0)
    });

    // python's http.server answers POST with 501: reaching it at all shows the restart.
    let task: TaskId = "abcdef0_1".parse().expect("id");
    match member.initialize(&task, &EpisodeOptions::default()) {
        Err(EnvError::Http {
            status: 501, url, ..
        }) => {
            assert!(
                !url.starts_with(&old_url),
                "{url} is the dead server's address"
            );
        }
        other => panic!("expected the restarted server's 501, got {other:?}"),
    }
    {
        let pool = member.pool().lock().expect("lock");
        assert!(pool.is_alive(0));
        assert_ne!(pool.pid(0), Some(old_pid));
        assert_eq!(member.client().base_url(), pool.urls()[0]);
    }
    assert!(
        !member.revive().expect("revive"),
        "a live server is left alone"
    );
}

/// Whether `pid` runs: it exists and is not a zombie (an orphan's zombie waits for init).
fn process_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}
