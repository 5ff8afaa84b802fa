//! End to end: the embedded world served over real loopback HTTP and driven by `AppWorldClient`,
//! the same client that drives real AppWorld.
//!
//! Training and evaluation talk to the world through HTTP (one server per worker pool), so the
//! served world must behave exactly like the in-process one: same cell outputs, same evaluations,
//! isolated concurrent episodes, and bad agent code answered with a clear failed-execution output
//! rather than a broken episode or a dead server.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier, LazyLock};
use std::thread;

use rung::env::{
    AppWorldClient, EnvError, Environment, EpisodeOptions, ServerHandle, Split, TaskId, serve,
};
use rung::world::sandbox::{FAILED, Limits};
use rung::world::{EmbeddedWorld, Suite, SuiteOptions, Task};
use serde_json::Value;

static SUITE: LazyLock<Arc<Suite>> =
    LazyLock::new(|| Arc::new(Suite::generate(SuiteOptions::default())));

/// A served world over the shared suite, with a client of it.
fn served() -> (ServerHandle, AppWorldClient) {
    let world = Arc::new(EmbeddedWorld::with_suite(
        Arc::clone(&SUITE),
        Limits::default(),
    ));
    let handle = serve(world, "127.0.0.1:0").expect("the server binds a free loopback port");
    let client = AppWorldClient::new(handle.url());
    (handle, client)
}

/// An in-process world over the same suite, the reference the served one must match.
fn local() -> EmbeddedWorld {
    EmbeddedWorld::with_suite(Arc::clone(&SUITE), Limits::default())
}

/// A handful of tasks of `split`: the first of each of three templates, plus the longest plan.
fn sample(split: Split) -> Vec<&'static Task> {
    let mut templates = BTreeSet::new();
    let mut picked: Vec<&Task> = SUITE
        .split(split)
        .filter(|t| templates.insert(t.template.as_str()))
        .take(3)
        .collect();
    let longest = SUITE
        .split(split)
        .max_by_key(|t| t.plan.len())
        .expect("every split has tasks");
    if !picked.iter().any(|t| t.task_id == longest.task_id) {
        picked.push(longest);
    }
    picked
}

fn id(text: &str) -> TaskId {
    text.parse().expect("a well-formed task id")
}

#[test]
fn gold_cells_over_http_equal_in_process_and_succeed() {
    let (_server, client) = served();
    let world = local();
    let options = EpisodeOptions::default();
    for split in Split::ALL {
        for task in sample(split) {
            let tid = &task.task_id;
            let info = client
                .initialize(tid, &options)
                .expect("initialize over HTTP");
            assert_eq!(info, world.initialize(tid, &options).expect("initialize"));
            assert_eq!(
                client.task_info(tid).expect("GET /tasks/{id}"),
                info,
                "GET /tasks/{tid} equals initialize's info"
            );
            assert_eq!(info.instruction, task.instruction);
            assert_eq!(info.supervisor, task.supervisor);
            assert!(!client.task_completed(tid).expect("task_completed"));
            for (index, cell) in task.gold_cells().into_iter().enumerate() {
                let remote = client.execute(tid, cell).expect("execute over HTTP");
                let here = world.execute(tid, cell).expect("execute");
                assert_eq!(remote, here, "{tid} cell {index} differs:\n{cell}");
                assert!(
                    !remote.starts_with(FAILED),
                    "{tid} gold cell failed: {remote}"
                );
            }
            assert!(client.task_completed(tid).expect("task_completed"));
            let remote = client.evaluate(tid).expect("evaluate over HTTP");
            assert_eq!(remote, world.evaluate(tid).expect("evaluate"), "{tid}");
            assert!(remote.success, "{tid} ({split}) fails: {remote:?}");
            assert_eq!(remote.difficulty, task.difficulty);
            assert_eq!(remote.num_tests, remote.passes.len());
            client.close(tid).expect("close");
            world.close(tid).expect("close");
            assert!(matches!(
                client.execute(tid, "print(1)"),
                Err(EnvError::NoEpisode(_))
            ));
        }
    }
}

#[test]
fn api_docs_cover_every_app() {
    let (_server, client) = served();
    let docs = client.api_docs().expect("GET /api_docs");
    let apps = docs.as_object().expect("docs are {app: {api: doc}}");
    for required in ["api_docs", "supervisor"] {
        assert!(apps.contains_key(required), "docs lack {required}");
    }
    let others: Vec<&String> = apps
        .keys()
        .filter(|app| !matches!(app.as_str(), "api_docs" | "supervisor"))
        .collect();
    assert!(others.len() >= 8, "only {} apps: {others:?}", others.len());
    let mut app_apis = 0;
    for (app, apis) in apps {
        let apis = apis.as_object().expect("an app's docs are {api: doc}");
        assert!(!apis.is_empty(), "{app} documents no API");
        for (name, doc) in apis {
            assert_eq!(doc["app_name"], Value::from(app.as_str()));
            assert_eq!(doc["api_name"], Value::from(name.as_str()));
            assert!(
                doc["parameters"].is_array(),
                "{app}.{name} has no parameters list"
            );
        }
        if !matches!(app.as_str(), "api_docs" | "supervisor") {
            app_apis += apis.len();
        }
    }
    assert!(app_apis >= 80, "only {app_apis} app APIs");
}

#[test]
fn unknown_task_ids_are_unknown_task_errors() {
    let (_server, client) = served();
    let unknown = id("0000000_1");
    for result in [
        client.initialize(&unknown, &EpisodeOptions::default()),
        client.task_info(&unknown),
    ] {
        match result {
            Err(EnvError::UnknownTask { task_id, hint }) => {
                assert_eq!(task_id, unknown);
                assert!(hint.contains("tasks"), "hint: {hint}");
            }
            other => panic!("expected UnknownTask, got {other:?}"),
        }
    }
    assert!(matches!(
        client.execute(&unknown, "print(1)"),
        Err(EnvError::NoEpisode(_))
    ));
    client.ping().expect("the server still answers");
}

/// Code that logs the supervisor in to mail and phone (tokens `mail_token`, `phone_token`).
const LOGIN: &str = r#"passwords = {a["account_name"]: a["password"] for a in apis.supervisor.show_account_passwords()}
me = apis.supervisor.show_profile()
mail_token = apis.mail.login(username=me["email"], password=passwords["mail"])["access_token"]
phone_token = apis.phone.login(username=me["phone_number"], password=passwords["phone"])["access_token"]"#;

#[test]
fn two_concurrent_episodes_have_isolated_state() {
    let (_server, client) = served();
    // The victim runs its gold plan; the vandal, in the same start world (if possible for the
    // same supervisor), deletes mails and contacts and sends a mail to the victim's supervisor.
    let victim = SUITE
        .split(Split::Dev)
        .find(|t| t.plan.len() >= 2)
        .expect("a dev task with two sub-tasks");
    let vandal = SUITE
        .tasks
        .iter()
        .filter(|t| t.task_id != victim.task_id && t.world_seed == victim.world_seed)
        .max_by_key(|t| t.supervisor_id == victim.supervisor_id)
        .expect("another task in the same world");
    let vandal_cells = [
        LOGIN.to_owned(),
        "for m in apis.mail.show_inbox(access_token=mail_token, page_limit=20):\n    \
         apis.mail.delete_mail(access_token=mail_token, mail_id=m[\"mail_id\"])"
            .to_owned(),
        format!(
            "apis.mail.send_mail(access_token=mail_token, recipient_emails=[\"{}\"], \
             subject=\"isolation probe\", body=\"from another episode\")",
            victim.supervisor.email
        ),
        "for c in apis.phone.search_contacts(access_token=phone_token, page_limit=20):\n    \
         apis.phone.delete_contact(access_token=phone_token, contact_id=c[\"contact_id\"])"
            .to_owned(),
    ];
    let options = EpisodeOptions::default();
    client
        .initialize(&victim.task_id, &options)
        .expect("initialize victim");
    client
        .initialize(&vandal.task_id, &options)
        .expect("initialize vandal");
    let victim_cells: Vec<String> = victim.gold_cells().into_iter().map(str::to_owned).collect();
    let rounds = victim_cells.len().max(vandal_cells.len());
    let barrier = Arc::new(Barrier::new(2));
    let run = |task_id: TaskId, cells: Vec<String>| {
        let client = client.clone();
        let barrier = Arc::clone(&barrier);
        thread::spawn(move || {
            let mut outputs = Vec::new();
            for round in 0..rounds {
                barrier.wait();
                if let Some(cell) = cells.get(round) {
                    outputs.push(client.execute(&task_id, cell).expect("execute"));
                }
            }
            outputs
        })
    };
    let victim_thread = run(victim.task_id.clone(), victim_cells.clone());
    let vandal_thread = run(vandal.task_id.clone(), vandal_cells.to_vec());
    let victim_outputs = victim_thread.join().expect("victim thread");
    let vandal_outputs = vandal_thread.join().expect("vandal thread");
    for output in &vandal_outputs {
        assert!(!output.starts_with(FAILED), "vandal cell failed: {output}");
    }

    // The victim's outputs and evaluation equal a run alone, in process.
    let world = local();
    world
        .initialize(&victim.task_id, &options)
        .expect("initialize");
    for (cell, remote) in victim_cells.iter().zip(&victim_outputs) {
        assert_eq!(
            &world.execute(&victim.task_id, cell).expect("execute"),
            remote
        );
    }
    let evaluation = client.evaluate(&victim.task_id).expect("evaluate victim");
    assert!(evaluation.success, "victim fails: {evaluation:?}");
    assert_eq!(
        evaluation,
        world.evaluate(&victim.task_id).expect("evaluate")
    );
    // The probe mail reached only the vandal's world.
    let probe = client
        .execute(
            &victim.task_id,
            &format!(
                "{LOGIN}\nprint(len(apis.mail.show_inbox(access_token=mail_token, query=\"isolation probe\")))"
            ),
        )
        .expect("probe");
    assert_eq!(probe, "0");
    // The vandal did collateral damage in its own world.
    let vandal_evaluation = client.evaluate(&vandal.task_id).expect("evaluate vandal");
    assert!(!vandal_evaluation.success);
    client.close(&victim.task_id).expect("close");
    client.close(&vandal.task_id).expect("close");
}

/// A mail of the start world that belongs to someone other than the task's supervisor.
fn foreign_mail(task: &Task) -> u32 {
    let start = SUITE.world_of(task);
    start
        .0
        .mails
        .iter()
        .find(|m| m.owner_id != task.supervisor_id)
        .map(|m| m.id)
        .expect("the world has other people's mails")
}

#[test]
fn bad_inputs_fail_clearly_and_the_episode_goes_on() {
    let (_server, client) = served();
    let task = SUITE.split(Split::Dev).next().expect("dev has tasks");
    let tid = &task.task_id;
    client
        .initialize(tid, &EpisodeOptions::default())
        .expect("initialize");
    let login = client.execute(tid, LOGIN).expect("login cell");
    assert!(!login.starts_with(FAILED), "{login}");
    let untouched = client.evaluate(tid).expect("evaluate");

    let foreign = foreign_mail(task);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "code that does not parse",
            "def broken(:\n    pass".into(),
            vec!["SyntaxError", "line 1"],
        ),
        (
            "an unknown app",
            "apis.no_such_app.do_it()".into(),
            vec!["no_such_app", "mail"],
        ),
        (
            "an unknown API",
            "apis.mail.no_such_api(access_token=mail_token)".into(),
            vec!["no_such_api"],
        ),
        (
            "an argument of the wrong type",
            "apis.mail.show_mail(access_token=mail_token, mail_id=\"the first one\")".into(),
            vec!["422", "mail_id"],
        ),
        (
            "a missing access token",
            "apis.mail.show_inbox()".into(),
            vec!["401", "access_token"],
        ),
        (
            "a logged-out token",
            "old = apis.mail.login(username=me[\"email\"], password=passwords[\"mail\"])[\"access_token\"]\n\
             apis.mail.logout(access_token=old)\n\
             apis.mail.show_inbox(access_token=old)"
                .into(),
            vec!["401", "expired"],
        ),
        (
            "an infinite loop",
            "for i in range(1000000000):\n    pass".into(),
            vec!["limit", "exceeded"],
        ),
        (
            "a huge print",
            "print(\"x\" * 10000000)".into(),
            vec!["output limit"],
        ),
        (
            "a huge print in a loop",
            "for i in range(100000):\n    print(\"line\", i)".into(),
            vec!["output limit"],
        ),
        (
            "an exception inside a list comprehension",
            "[10 // (i - i) for i in range(3)]".into(),
            vec!["line 1", "zero"],
        ),
        (
            "an API error inside a list comprehension",
            "[apis.mail.show_mail(access_token=mail_token, mail_id=i) for i in [0, 999999999]]"
                .into(),
            vec!["404", "No mail with id"],
        ),
        (
            "deleting another user's mail",
            format!("apis.mail.delete_mail(access_token=mail_token, mail_id={foreign})"),
            vec!["401", "another user"],
        ),
    ];
    // Every case is checked before failing, so one run lists every unclear output.
    let mut problems = Vec::new();
    for (what, code, expected) in &cases {
        let output = client.execute(tid, code).expect("execute answers");
        if !output.starts_with(FAILED) {
            problems.push(format!(
                "{what}: expected a failed execution, got:\n{output}"
            ));
        }
        for needle in expected {
            if !output.contains(needle) {
                problems.push(format!(
                    "{what}: the output does not name the problem ({needle:?}):\n{output}"
                ));
            }
        }
        if output.len() > 5_000 {
            problems.push(format!(
                "{what}: the failure output is {} characters long",
                output.len()
            ));
        }
        // The episode goes on, with its namespace intact, and the server still answers.
        let after = client
            .execute(tid, "print(\"still here\", len(mail_token) > 0)")
            .expect("execute after a failure");
        assert_eq!(after, "still here True", "after {what}");
        assert_eq!(
            client.task_info(tid).expect("task_info after a failure"),
            suite_info(tid)
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // Nothing the bad cells did changed the world: the evaluation is the untouched one.
    assert_eq!(client.evaluate(tid).expect("evaluate"), untouched);
    client.close(tid).expect("close");
}

/// The info the suite says a task has, to check `GET /tasks/{id}` against mid-episode.
fn suite_info(tid: &TaskId) -> rung::env::TaskInfo {
    let task = SUITE.task(tid).expect("a suite task");
    rung::env::TaskInfo {
        task_id: task.task_id.clone(),
        instruction: task.instruction.clone(),
        supervisor: task.supervisor.clone(),
        datetime: task.datetime.clone(),
    }
}

/// Sends raw bytes on a fresh connection and returns the answer's status and JSON body.
fn raw_request(port: u16, bytes: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn hostile_requests_leave_a_concurrent_gold_episode_untouched() {
    let world = Arc::new(EmbeddedWorld::with_suite(
        Arc::clone(&SUITE),
        Limits::default(),
    ));
    let server = serve(world, "127.0.0.1:0").expect("serve");
    let client = AppWorldClient::new(server.url());
    let port = server.port();
    let task = SUITE
        .split(Split::Dev)
        .max_by_key(|t| t.plan.len())
        .expect("a dev task");
    let tid = task.task_id.to_string();
    client
        .initialize(&task.task_id, &EpisodeOptions::default())
        .expect("initialize");
    // Between every two gold cells, a round of abuse: another client's initialize of the same
    // task (AppWorld would reset the victim's world), broken JSON, a body that is not UTF-8, a
    // huge announced body, and a cell for a task nobody started.
    let post = |path: &str, body: &[u8]| {
        let mut bytes = format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    };
    let abuse: Vec<(Vec<u8>, u16)> = vec![
        (
            post(
                "/initialize",
                format!(r#"{{"task_id": "{tid}"}}"#).as_bytes(),
            ),
            409,
        ),
        (post("/execute", b"{\"task_id\": "), 422),
        (post("/execute", b"{\"task_id\": \"x\xff\"}"), 422),
        (
            b"POST /execute HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n{}".to_vec(),
            413,
        ),
        (
            post(
                "/execute",
                br#"{"task_id": "0000000_1", "code": "print(1)"}"#,
            ),
            404,
        ),
    ];
    let here = local();
    here.initialize(&task.task_id, &EpisodeOptions::default())
        .expect("initialize");
    for cell in task.gold_cells() {
        for (bytes, status) in &abuse {
            let (got, body) = raw_request(port, bytes);
            assert_eq!(got, *status, "{body}");
            assert!(body["detail"].is_string(), "{body}");
        }
        let remote = client.execute(&task.task_id, cell).expect("execute");
        assert_eq!(remote, here.execute(&task.task_id, cell).expect("execute"));
    }
    let evaluation = client.evaluate(&task.task_id).expect("evaluate");
    assert!(evaluation.success, "{evaluation:?}");
    assert_eq!(evaluation, here.evaluate(&task.task_id).expect("evaluate"));
    client.close(&task.task_id).expect("close");
    // Once closed, the task is free for the next client.
    let (status, _) = raw_request(port, &abuse[0].0);
    assert_eq!(status, 200);
}
