//! The environment-server protocol end to end: rung's server on real loopback HTTP, driven by
//! `AppWorldClient`, plus ad-hoc servers that misbehave like real AppWorld.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{AdHoc, CounterWorld, TASK_A, TASK_B, closed_port, id};
use rung_env::{
    AppWorldClient, ClientOptions, EnvError, Environment, EpisodeOptions, Evaluation, ServerHandle,
    ServerOptions, TestFailure, TestPass, serve, serve_with,
};
use serde_json::{Value, json};

fn start_world() -> (Arc<CounterWorld>, ServerHandle, AppWorldClient) {
    let world = Arc::new(CounterWorld::default());
    let handle = serve(Arc::clone(&world), "127.0.0.1:0").expect("serve");
    let client = AppWorldClient::new(handle.url());
    (world, handle, client)
}

fn quick(retries: u32, timeout_ms: u64) -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(500),
        retries,
        retry_backoff: Duration::from_millis(10),
    }
}

/// Sends a raw request and returns status, `Allow` header and body as JSON.
fn raw(method: &str, url: &str, body: Option<&str>) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        (_, Some(body)) => agent.post(url).content_type("application/json").send(body),
        (_, None) => agent.post(url).send_empty(),
    };
    let mut response = response.expect("request");
    let status = response.status().as_u16();
    let allow = response
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let text = response.body_mut().read_to_string().expect("body");
    (
        status,
        allow,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn detail(value: &Value) -> &str {
    value["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail in {value}"))
}

#[test]
fn round_trip_of_every_endpoint() {
    let (world, handle, client) = start_world();
    let a = id(TASK_A);
    client.ping().expect("ping");
    let (status, _, root) = raw("GET", &format!("{}/", handle.url()), None);
    assert_eq!(
        (status, root),
        (200, json!({"status": "ok", "server": "rung"}))
    );

    assert_eq!(
        client.task_info(&a).expect("task info"),
        common::task_info(&a)
    );
    let options = EpisodeOptions {
        experiment_name: Some("exp-1".into()),
        max_interactions: Some(7),
        timeout_seconds: Some(30),
        random_seed: Some(42),
    };
    assert_eq!(
        client.initialize(&a, &options).expect("initialize"),
        common::task_info(&a)
    );
    assert_eq!(
        world.last_options.lock().expect("lock").clone(),
        Some(options)
    );

    assert_eq!(client.execute(&a, "x").expect("execute"), "x (cell 1)");
    assert_eq!(
        client.execute(&a, "print('é')").expect("execute"),
        "print('é') (cell 2)"
    );
    assert!(!client.task_completed(&a).expect("task_completed"));
    let pass = |requirement: &str, label: &str| TestPass {
        requirement: requirement.into(),
        label: label.into(),
    };
    assert_eq!(
        client.evaluate(&a).expect("evaluate"),
        Evaluation {
            success: false,
            difficulty: 2,
            num_tests: 3,
            passes: vec![
                pass("a cell ran", "no_op_fail"),
                pass("nothing was deleted", "no_op_pass")
            ],
            failures: vec![TestFailure {
                requirement: "the task was completed".into(),
                trace: "complete_task was not called".into(),
                label: "no_op_fail".into(),
            }],
        }
    );

    assert_eq!(
        client.execute(&a, "complete").expect("execute"),
        "Execution successful."
    );
    assert!(client.task_completed(&a).expect("task_completed"));
    let evaluation = client.evaluate(&a).expect("evaluate");
    assert!(evaluation.success);
    assert_eq!((evaluation.passes.len(), evaluation.failures.len()), (3, 0));

    assert_eq!(client.api_docs().expect("api docs"), common::api_docs());
    client.close(&a).expect("close");
    assert!(matches!(client.execute(&a, "x"), Err(EnvError::NoEpisode(t)) if t == a));
    handle.stop();
}

#[test]
fn unknown_task_is_reported_as_unknown_task() {
    let (_world, _handle, client) = start_world();
    let missing = id("fffffff_1");
    for result in [
        client.initialize(&missing, &EpisodeOptions::default()),
        client.task_info(&missing),
    ] {
        match result {
            Err(EnvError::UnknownTask { task_id, hint }) => {
                assert_eq!(task_id, missing);
                assert_eq!(hint, format!("known tasks: {TASK_A}, {TASK_B}"));
            }
            other => panic!("expected UnknownTask, got {other:?}"),
        }
    }
}

#[test]
fn calls_without_an_episode_are_no_episode() {
    let (_world, _handle, client) = start_world();
    let b = id(TASK_B);
    let no_episode = |result: Result<(), EnvError>| match result {
        Err(EnvError::NoEpisode(task)) => assert_eq!(task, b),
        other => panic!("expected NoEpisode, got {other:?}"),
    };
    no_episode(client.execute(&b, "x").map(drop));
    no_episode(client.task_completed(&b).map(drop));
    no_episode(client.evaluate(&b).map(drop));
    no_episode(client.close(&b));
}

#[test]
fn a_closed_port_is_server_not_running_with_the_url() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let client = AppWorldClient::with_options(&url, quick(2, 1000));
    let started = Instant::now();
    let err = client
        .initialize(&id(TASK_A), &EpisodeOptions::default())
        .expect_err("no server");
    assert!(
        matches!(&err, EnvError::ServerNotRunning { url: u, .. } if *u == url),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
    // Two retries with 10 ms and 20 ms of backoff happened, and nothing waited for a timeout.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(30) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[test]
fn a_stopped_server_no_longer_answers() {
    let (_world, handle, client) = start_world();
    client.ping().expect("ping while running");
    handle.stop();
    let client = AppWorldClient::with_options(client.base_url(), quick(0, 1000));
    assert!(matches!(
        client.ping(),
        Err(EnvError::ServerNotRunning { .. })
    ));
}

#[test]
fn malformed_requests_get_fastapi_style_errors() {
    let world = Arc::new(CounterWorld::default());
    let options = ServerOptions {
        workers: 2,
        max_body_bytes: 1024,
        ..ServerOptions::default()
    };
    let handle = serve_with(world, "127.0.0.1:0", options).expect("serve");
    let url = |path: &str| format!("{}{path}", handle.url());

    let (status, _, body) = raw("POST", &url("/execute"), Some("{bad"));
    assert_eq!(status, 422);
    assert!(detail(&body).starts_with("invalid request body"), "{body}");
    assert!(detail(&body).contains(r#""code": "<python>""#), "{body}");

    let (status, _, body) = raw(
        "POST",
        &url("/execute"),
        Some(r#"{"task_id": 5, "code": "x"}"#),
    );
    assert_eq!(status, 422, "{body}");
    let (status, _, body) = raw(
        "POST",
        &url("/execute"),
        Some(r#"{"task_id": "nope", "code": "x"}"#),
    );
    assert_eq!(status, 422);
    assert!(detail(&body).contains("`nope` is not a task id"), "{body}");
    let (status, _, body) = raw("GET", &url("/tasks/nope"), None);
    assert_eq!(status, 422);
    assert!(detail(&body).contains("`nope` is not a task id"), "{body}");

    let (status, _, body) = raw("GET", &url("/nowhere"), None);
    assert_eq!((status, detail(&body)), (404, "Not Found"));
    let (status, allow, body) = raw("GET", &url("/execute"), None);
    assert_eq!(
        (status, allow.as_deref(), detail(&body)),
        (405, Some("POST"), "Method Not Allowed")
    );
    let (status, allow, _) = raw("POST", &url("/api_docs"), None);
    assert_eq!((status, allow.as_deref()), (405, Some("GET")));

    let huge = json!({"task_id": TASK_A, "code": "x".repeat(2000)}).to_string();
    let (status, _, body) = raw("POST", &url("/execute"), Some(&huge));
    assert_eq!(status, 413);
    assert!(detail(&body).contains("1024 bytes"), "{body}");
}

#[test]
fn evaluate_accepts_appworld_flags_and_never_fails_a_failing_task() {
    let (_world, handle, client) = start_world();
    client
        .initialize(&id(TASK_A), &EpisodeOptions::default())
        .expect("initialize");
    let body = json!({"task_id": TASK_A, "suppress_errors": false, "report": true}).to_string();
    let (status, _, answer) = raw("POST", &format!("{}/evaluate", handle.url()), Some(&body));
    assert_eq!(status, 200);
    assert_eq!(answer["output"]["success"], json!(false));
    assert_eq!(
        answer["output"]["failures"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_panicking_environment_answers_500_and_the_worker_survives() {
    let world = Arc::new(CounterWorld::default());
    let options = ServerOptions {
        workers: 1,
        ..ServerOptions::default()
    };
    let handle = serve_with(world, "127.0.0.1:0", options).expect("serve");
    let client = AppWorldClient::new(handle.url());
    let a = id(TASK_A);
    client
        .initialize(&a, &EpisodeOptions::default())
        .expect("initialize");
    match client.execute(&a, "panic") {
        Err(EnvError::Http {
            method: "POST",
            status: 500,
            body,
            ..
        }) => {
            assert!(
                body.contains("panicked while handling POST /execute"),
                "{body}"
            );
            assert!(body.contains("asked to panic"), "{body}");
        }
        other => panic!("expected HTTP 500, got {other:?}"),
    }
    assert_eq!(
        client
            .execute(&a, "x")
            .expect("the only worker still answers"),
        "x (cell 1)"
    );
}

#[test]
fn a_wrong_shape_body_is_bad_response() {
    let server = AdHoc::start(|_, path| match path {
        "/api_docs" => (200, "not json".into()),
        _ => (200, r#"{"nope":1}"#.into()),
    });
    let client = AppWorldClient::with_options(&server.url, quick(0, 2000));
    match client.execute(&id(TASK_A), "x") {
        Err(EnvError::BadResponse { url, detail, body }) => {
            assert_eq!(url, format!("{}/execute", server.url));
            assert!(
                detail.starts_with(r#"expected {"output": a string}"#),
                "{detail}"
            );
            assert!(detail.contains("missing field `output`"), "{detail}");
            assert_eq!(body, r#"{"nope":1}"#);
        }
        other => panic!("expected BadResponse, got {other:?}"),
    }
    assert!(
        matches!(client.api_docs(), Err(EnvError::BadResponse { body, .. }) if body == "not json")
    );
}

#[test]
fn appworld_500_for_an_unknown_task_becomes_unknown_task() {
    let server = AdHoc::start(|_, _| (500, "Internal Server Error".into()));
    let client = AppWorldClient::with_options(&server.url, quick(3, 2000));
    let missing = id("fffffff_1");
    match client.initialize(&missing, &EpisodeOptions::default()) {
        Err(EnvError::UnknownTask { task_id, hint }) => {
            assert_eq!(task_id, missing);
            assert_eq!(
                hint,
                format!(
                    "the server at {} does not know this task; check the task id and the \
                     server's data folder (APPWORLD_ROOT)",
                    server.url
                )
            );
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    assert_eq!(
        server.hits(),
        [
            r#"POST /initialize {"task_id":"fffffff_1"}"#,
            "GET /tasks/fffffff_1"
        ],
        "one initialize (an HTTP 500 is not retried), one probe"
    );
    assert!(matches!(
        client.task_info(&missing),
        Err(EnvError::UnknownTask { .. })
    ));
}

#[test]
fn a_500_on_initialize_for_a_known_task_stays_an_http_error() {
    let info =
        serde_json::to_string(&json!({ "output": common::task_info(&id(TASK_A)) })).expect("json");
    let server = AdHoc::start(move |_, path| match path {
        "/initialize" => (500, "database is locked".into()),
        _ => (200, info.clone()),
    });
    let client = AppWorldClient::with_options(&server.url, quick(0, 2000));
    match client.initialize(&id(TASK_A), &EpisodeOptions::default()) {
        Err(EnvError::Http {
            method,
            url,
            status,
            body,
        }) => {
            assert_eq!(
                (method, status, body.as_str()),
                ("POST", 500, "database is locked")
            );
            assert_eq!(url, format!("{}/initialize", server.url));
        }
        other => panic!("expected Http, got {other:?}"),
    }
}

#[test]
fn evaluate_always_suppresses_errors_and_no_ground_truth_mode_is_sent() {
    let server = AdHoc::start(|_, path| match path {
        "/evaluate" => (
            200,
            r#"{"output":{"success":true,"difficulty":1,"num_tests":0,"passes":[],"failures":[]}}"#
                .into(),
        ),
        _ => (200, r#"{"output":null}"#.into()),
    });
    let client = AppWorldClient::with_options(&server.url, quick(0, 2000));
    let a = id(TASK_A);
    assert!(client.evaluate(&a).expect("evaluate").success);
    client.close(&a).expect("close");
    assert_eq!(
        server.hits(),
        [
            format!(
                r#"POST /evaluate {{"task_id":"{TASK_A}","suppress_errors":true,"report":false}}"#
            ),
            format!(r#"POST /close {{"task_id":"{TASK_A}"}}"#),
        ]
    );
}

#[test]
fn a_slow_execute_times_out_and_is_never_sent_twice() {
    let server = AdHoc::start(|_, _| {
        thread::sleep(Duration::from_millis(1500));
        (200, r#"{"output":"late"}"#.into())
    });
    let client = AppWorldClient::with_options(&server.url, quick(3, 300));
    match client.execute(&id(TASK_A), "x") {
        Err(EnvError::Timeout {
            method,
            url,
            seconds,
        }) => {
            assert_eq!((method, seconds), ("POST", 0.3));
            assert_eq!(url, format!("{}/execute", server.url));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    thread::sleep(Duration::from_millis(100));
    assert_eq!(server.hits().len(), 1, "{:?}", server.hits());
}

#[test]
fn a_slow_get_is_retried() {
    let server = AdHoc::start(|_, _| {
        thread::sleep(Duration::from_millis(1000));
        (200, "{}".into())
    });
    let client = AppWorldClient::with_options(&server.url, quick(2, 200));
    assert!(matches!(
        client.api_docs(),
        Err(EnvError::Timeout { method: "GET", .. })
    ));
    assert_eq!(server.hits(), ["GET /api_docs"; 3]);
}

#[test]
fn episodes_run_concurrently() {
    let (_world, _handle, client) = start_world();
    let (a, b) = (id(TASK_A), id(TASK_B));
    client
        .initialize(&a, &EpisodeOptions::default())
        .expect("initialize a");
    client
        .initialize(&b, &EpisodeOptions::default())
        .expect("initialize b");
    let slow_done = Arc::new(AtomicBool::new(false));
    let slow = {
        let (client, a, done) = (client.clone(), a.clone(), Arc::clone(&slow_done));
        thread::spawn(move || {
            let output = client.execute(&a, "sleep 1500");
            done.store(true, Ordering::SeqCst);
            output
        })
    };
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    for n in 1..=3 {
        assert_eq!(
            client.execute(&b, "x").expect("execute b"),
            format!("x (cell {n})")
        );
    }
    assert!(client.evaluate(&b).expect("evaluate b").failures.len() == 1);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !slow_done.load(Ordering::SeqCst),
        "episode b finished while a was still executing"
    );
    let output = slow.join().expect("thread").expect("execute a");
    assert_eq!(output, "slept 1500 ms");
}
