//! Helpers shared by the integration tests: an in-memory environment, ad-hoc HTTP servers that
//! misbehave the way real servers do, and temporary folders.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rung_env::protocol::ApiDocs;
use rung_env::{
    EnvError, Environment, EpisodeOptions, Evaluation, Supervisor, TaskId, TaskInfo, TestFailure,
    TestPass,
};
use serde_json::json;

/// Tasks the counter world knows.
pub const TASK_A: &str = "aaaaaaa_1";
pub const TASK_B: &str = "bbbbbbb_2";

pub fn id(text: &str) -> TaskId {
    text.parse().expect("valid task id")
}

/// A world where a cell is echoed with its number, `complete` completes the task, `sleep N`
/// sleeps N milliseconds and `panic` panics. Its tests: a cell ran, the task was completed, and
/// one that always passes.
#[derive(Default)]
pub struct CounterWorld {
    episodes: Mutex<HashMap<TaskId, Episode>>,
    /// The options of the latest `initialize`.
    pub last_options: Mutex<Option<EpisodeOptions>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Episode {
    cells: u32,
    completed: bool,
}

pub fn task_info(task: &TaskId) -> TaskInfo {
    TaskInfo {
        task_id: task.clone(),
        instruction: format!("Count to one in {task}."),
        supervisor: Supervisor {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            phone_number: "+15550100".into(),
        },
        datetime: "2023-05-18T10:00:00".into(),
    }
}

pub fn api_docs() -> ApiDocs {
    json!({ "counter": [{ "name": "echo", "description": "Echoes a cell." }] })
}

impl CounterWorld {
    fn check_known(&self, task: &TaskId) -> Result<(), EnvError> {
        if [TASK_A, TASK_B].contains(&task.as_str()) {
            Ok(())
        } else {
            Err(EnvError::UnknownTask {
                task_id: task.clone(),
                hint: format!("known tasks: {TASK_A}, {TASK_B}"),
            })
        }
    }

    fn with_episode<T>(
        &self,
        task: &TaskId,
        f: impl FnOnce(&mut Episode) -> T,
    ) -> Result<T, EnvError> {
        let mut episodes = self.episodes.lock().expect("lock");
        let episode = episodes
            .get_mut(task)
            .ok_or_else(|| EnvError::NoEpisode(task.clone()))?;
        Ok(f(episode))
    }
}

impl Environment for CounterWorld {
    fn initialize(&self, task: &TaskId, options: &EpisodeOptions) -> Result<TaskInfo, EnvError> {
        self.check_known(task)?;
        self.episodes
            .lock()
            .expect("lock")
            .insert(task.clone(), Episode::default());
        *self.last_options.lock().expect("lock") = Some(options.clone());
        Ok(task_info(task))
    }

    fn execute(&self, task: &TaskId, code: &str) -> Result<String, EnvError> {
        self.with_episode(task, |_| ())?;
        if let Some(ms) = code.strip_prefix("sleep ") {
            let ms: u64 = ms.parse().expect("sleep N");
            thread::sleep(Duration::from_millis(ms));
            return Ok(format!("slept {ms} ms"));
        }
        if code == "panic" {
            panic!("the counter world was asked to panic");
        }
        self.with_episode(task, |episode| {
            if code == "complete" {
                episode.completed = true;
                "Execution successful.".to_owned()
            } else {
                episode.cells += 1;
                format!("{code} (cell {})", episode.cells)
            }
        })
    }

    fn task_completed(&self, task: &TaskId) -> Result<bool, EnvError> {
        self.with_episode(task, |episode| episode.completed)
    }

    fn evaluate(&self, task: &TaskId) -> Result<Evaluation, EnvError> {
        let episode = self.with_episode(task, |episode| *episode)?;
        let mut passes = Vec::new();
        let mut failures = Vec::new();
        let mut check = |ok: bool, requirement: &str, trace: &str, label: &str| {
            if ok {
                passes.push(TestPass {
                    requirement: requirement.into(),
                    label: label.into(),
                });
            } else {
                failures.push(TestFailure {
                    requirement: requirement.into(),
                    trace: trace.into(),
                    label: label.into(),
                });
            }
        };
        check(
            episode.cells >= 1,
            "a cell ran",
            "no cell ran",
            "no_op_fail",
        );
        check(
            episode.completed,
            "the task was completed",
            "complete_task was not called",
            "no_op_fail",
        );
        check(true, "nothing was deleted", "", "no_op_pass");
        Ok(Evaluation {
            success: failures.is_empty(),
            difficulty: 2,
            num_tests: 3,
            passes,
            failures,
        })
    }

    fn close(&self, task: &TaskId) -> Result<(), EnvError> {
        let removed = self.episodes.lock().expect("lock").remove(task);
        removed
            .map(drop)
            .ok_or_else(|| EnvError::NoEpisode(task.clone()))
    }

    fn task_info(&self, task: &TaskId) -> Result<TaskInfo, EnvError> {
        self.check_known(task)?;
        Ok(task_info(task))
    }

    fn api_docs(&self) -> Result<ApiDocs, EnvError> {
        Ok(api_docs())
    }
}

/// What an ad-hoc server answers to `(method, path)`: status and body.
pub type Handler = dyn Fn(&str, &str) -> (u16, String) + Send + Sync;

/// A throwaway HTTP server that records every request (`METHOD path body`) as it arrives and
/// answers each from its own thread, so a slow answer does not delay the recording of the next.
pub struct AdHoc {
    pub url: String,
    pub hits: Arc<Mutex<Vec<String>>>,
    server: Arc<tiny_http::Server>,
}

impl AdHoc {
    pub fn start(handler: impl Fn(&str, &str) -> (u16, String) + Send + Sync + 'static) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind"));
        let port = server.server_addr().to_ip().expect("ip").port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (accepting, recorded) = (Arc::clone(&server), Arc::clone(&hits));
        thread::spawn(move || {
            while let Ok(mut request) = accepting.recv() {
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let method = request.method().to_string();
                let path = request.url().to_owned();
                recorded
                    .lock()
                    .expect("lock")
                    .push(format!("{method} {path} {body}").trim_end().to_owned());
                let handler = Arc::clone(&handler);
                thread::spawn(move || {
                    let (status, body) = handler(&method, &path);
                    let _ = request
                        .respond(tiny_http::Response::from_string(body).with_status_code(status));
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}"),
            hits,
            server,
        }
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().expect("lock").clone()
    }
}

impl Drop for AdHoc {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// A folder under the system's temporary folder, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("rung-env-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Whether a process with this id exists (a reaped child does not).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
