//! Hostile and broken clients against rung's environment server, on the raw wire: every bad
//! request gets a clear HTTP error with a JSON `detail` saying what to fix, none of them costs a
//! worker for longer than its own deadline, and a normal episode runs afterwards.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{CounterWorld, TASK_A, TASK_B, id};
use rung_env::{
    AppWorldClient, EnvError, Environment, EpisodeOptions, ServerHandle, ServerOptions, serve_with,
};
use serde_json::{Value, json};

const LIMIT: usize = 1024;

/// A server with a small body limit, a one-second request deadline and two workers, so that
/// a worker held by a bad client would show at once.
fn start() -> (ServerHandle, AppWorldClient) {
    start_with(Duration::from_secs(1))
}

fn start_with(read_timeout: Duration) -> (ServerHandle, AppWorldClient) {
    let options = ServerOptions {
        workers: 2,
        max_body_bytes: LIMIT,
        read_timeout,
        ..ServerOptions::default()
    };
    let handle =
        serve_with(Arc::new(CounterWorld::default()), "127.0.0.1:0", options).expect("serve");
    let client = AppWorldClient::new(handle.url());
    (handle, client)
}

/// What came back on a raw connection: status and body (JSON where it parses).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    head: String,
}

impl Answer {
    fn detail(&self) -> &str {
        self.body["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {self:?}"))
    }
}

/// Sends `bytes` on a fresh connection, optionally half-closes, and reads the whole answer.
fn send(handle: &ServerHandle, bytes: &[u8], half_close: bool) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", handle.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may refuse before the whole request is written; its answer still comes.
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    read_answer(&mut stream)
}

fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("the server answers");
    let text = String::from_utf8_lossy(&raw).into_owned();
    // Skip interim answers (100 Continue).
    let mut rest = text.as_str();
    while rest.starts_with("HTTP/1.1 1") {
        rest = rest.split_once("\r\n\r\n").map_or("", |(_, r)| r);
    }
    let (head, body) = rest
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer in {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    Answer {
        status,
        body: serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
        head: head.to_owned(),
    }
}

fn post(path: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes =
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn post_json(path: &str, body: &[u8]) -> Vec<u8> {
    post(
        path,
        &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        body,
    )
}

/// `body` as one chunk per `piece` bytes.
fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A whole episode through the real client: the server still serves after the abuse.
fn normal_episode(client: &AppWorldClient, task: &str) {
    let task = id(task);
    client
        .initialize(&task, &EpisodeOptions::default())
        .expect("initialize after the abuse");
    assert_eq!(client.execute(&task, "x").expect("execute"), "x (cell 1)");
    assert_eq!(
        client.execute(&task, "complete").expect("execute"),
        "Execution successful."
    );
    assert!(client.evaluate(&task).expect("evaluate").success);
    client.close(&task).expect("close");
}

#[test]
fn bodies_of_the_wrong_shape_or_encoding_are_422_with_the_expected_shape() {
    let (handle, client) = start();
    client
        .initialize(&id(TASK_A), &EpisodeOptions::default())
        .expect("initialize");
    let shape = r#""code": "<python>""#;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not UTF-8",
            b"{\"task_id\": \"aaaaaaa_1\", \"code\": \"\xff\xfe\"}".to_vec(),
            "not UTF-8 (invalid byte at offset 34)",
        ),
        (
            "Latin-1",
            b"{\"task_id\": \"aaaaaaa_1\", \"code\": \"caf\xe9\"}".to_vec(),
            "not UTF-8",
        ),
        (
            "malformed JSON",
            b"{\"task_id\": ".to_vec(),
            "invalid request body",
        ),
        ("a JSON array", b"[1, 2]".to_vec(), "invalid request body"),
        (
            "a JSON string",
            b"\"print(1)\"".to_vec(),
            "invalid request body",
        ),
        (
            "no code",
            br#"{"task_id": "aaaaaaa_1"}"#.to_vec(),
            "missing field `code`",
        ),
        (
            "code not a string",
            br#"{"task_id": "aaaaaaa_1", "code": 7}"#.to_vec(),
            "invalid type",
        ),
        ("an empty body", Vec::new(), "the request has no body"),
    ];
    for (what, body, needle) in &cases {
        let answer = send(&handle, &post_json("/execute", body), false);
        assert_eq!(answer.status, 422, "{what}: {answer:?}");
        assert!(answer.detail().contains(needle), "{what}: {answer:?}");
        assert!(answer.detail().contains(shape), "{what}: {answer:?}");
        assert!(
            answer.head.contains("application/json"),
            "{what}: {answer:?}"
        );
    }
    // A body sent without any length header is no body at all (RFC 9112), said as much.
    let answer = send(
        &handle,
        &post("/execute", "", br#"{"task_id": "aaaaaaa_1", "code": "x"}"#),
        true,
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    assert!(answer.detail().contains("no body"), "{answer:?}");
    // None of these ran a cell: the episode's first cell is still cell 1.
    assert_eq!(
        client.execute(&id(TASK_A), "x").expect("execute"),
        "x (cell 1)"
    );
    client.close(&id(TASK_A)).expect("close");
    normal_episode(&client, TASK_A);
}

#[test]
fn huge_bodies_are_413_before_they_are_read_whatever_the_framing() {
    let (handle, client) = start();
    let big = json!({"task_id": TASK_A, "code": "x".repeat(4 * LIMIT)}).to_string();

    // An honest Content-Length over the limit, through the real client (which writes the whole
    // body before it reads): it gets the 413, not a reset connection.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let huge = json!({"task_id": TASK_A, "code": "x".repeat(4 << 20)}).to_string();
    let mut response = agent
        .post(format!("{}/execute", handle.url()))
        .content_type("application/json")
        .send(&huge)
        .expect("an answer, not a broken connection");
    assert_eq!(response.status().as_u16(), 413);
    let text = response.body_mut().read_to_string().expect("body");
    assert!(text.contains("larger than 1024 bytes"), "{text}");

    // A Content-Length far beyond memory is refused before any body is read (tiny_http
    // allocated the announced size and aborted the process); waiting for the body would have
    // been a 408.
    for length in ["100000000000", "18446744073709551615"] {
        let headers = format!("Content-Length: {length}\r\n");
        let answer = send(&handle, &post("/execute", &headers, b"{}"), false);
        assert_eq!(answer.status, 413, "{length}: {answer:?}");
        assert!(answer.detail().contains("1024 bytes"), "{answer:?}");
    }
    // One beyond u64 is not a length at all.
    let answer = send(
        &handle,
        &post(
            "/execute",
            "Content-Length: 99999999999999999999999\r\n",
            b"{}",
        ),
        true,
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.detail().contains("invalid Content-Length"),
        "{answer:?}"
    );

    // Chunked: refused as soon as the decoded body outgrows the limit.
    let answer = send(
        &handle,
        &post(
            "/execute",
            "Transfer-Encoding: chunked\r\n",
            &chunked(big.as_bytes(), 100),
        ),
        false,
    );
    assert_eq!(answer.status, 413, "{answer:?}");
    let one_huge_chunk = b"ffffffffff\r\nxx";
    let answer = send(
        &handle,
        &post("/execute", "Transfer-Encoding: chunked\r\n", one_huge_chunk),
        false,
    );
    assert_eq!(answer.status, 413, "{answer:?}");
    normal_episode(&client, TASK_A);
}

#[test]
fn chunked_and_expect_continue_bodies_work_and_bad_framing_is_named() {
    let (handle, client) = start();
    client
        .initialize(&id(TASK_A), &EpisodeOptions::default())
        .expect("initialize");
    let body = json!({"task_id": TASK_A, "code": "chunky"}).to_string();
    let answer = send(
        &handle,
        &post(
            "/execute",
            "Transfer-Encoding: chunked\r\n",
            &chunked(body.as_bytes(), 7),
        ),
        false,
    );
    assert_eq!(
        (answer.status, answer.body.clone()),
        (200, json!({"output": "chunky (cell 1)"}))
    );
    let headers = format!("Expect: 100-continue\r\nContent-Length: {}\r\n", body.len());
    let answer = send(&handle, &post("/execute", &headers, body.as_bytes()), false);
    assert_eq!(
        (answer.status, answer.body.clone()),
        (200, json!({"output": "chunky (cell 2)"}))
    );

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a bad chunk size",
            post(
                "/execute",
                "Transfer-Encoding: chunked\r\n",
                b"zz\r\n{}\r\n0\r\n\r\n",
            ),
            400,
            "not a hex chunk size",
        ),
        (
            "a chunk longer than its size",
            post(
                "/execute",
                "Transfer-Encoding: chunked\r\n",
                b"2\r\n{}}\r\n0\r\n\r\n",
            ),
            400,
            "longer than its size",
        ),
        (
            "both framings",
            post(
                "/execute",
                "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
                b"{}",
            ),
            400,
            "send only one",
        ),
        (
            "gzip",
            post("/execute", "Transfer-Encoding: gzip\r\n", b"{}"),
            501,
            "not supported",
        ),
        (
            "two lengths",
            post(
                "/execute",
                "Content-Length: 2\r\nContent-Length: 3\r\n",
                b"{}",
            ),
            400,
            "conflicting Content-Length",
        ),
        (
            "a garbage request line",
            b"HELLO\r\n\r\n".to_vec(),
            400,
            "malformed request line",
        ),
        (
            "HTTP/2",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            505,
            "send HTTP/1.1",
        ),
        (
            "a header without a colon",
            b"GET / HTTP/1.1\r\nHost localhost\r\n\r\n".to_vec(),
            400,
            "malformed header line",
        ),
        (
            "headers over 64 KiB",
            format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(70_000)).into_bytes(),
            431,
            "longer than 65536 bytes",
        ),
        (
            "an unknown Expect",
            post("/execute", "Expect: magic\r\nContent-Length: 2\r\n", b"{}"),
            417,
            "unsupported Expect",
        ),
    ];
    for (what, bytes, status, needle) in &cases {
        let answer = send(&handle, bytes, false);
        assert_eq!(answer.status, *status, "{what}: {answer:?}");
        assert!(answer.detail().contains(needle), "{what}: {answer:?}");
    }
    client.close(&id(TASK_A)).expect("close");
    normal_episode(&client, TASK_A);
}

#[test]
fn unknown_routes_and_methods_are_404_and_405() {
    let (handle, client) = start();
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\n\r\n").into_bytes();
    let answer = send(&handle, &get("/nowhere"), false);
    assert_eq!((answer.status, answer.detail()), (404, "Not Found"));
    let answer = send(&handle, &get("/tasks/a/b"), false);
    assert_eq!(answer.status, 404);
    for method in ["BREW", "DELETE", "PUT", "HEAD"] {
        let answer = send(
            &handle,
            format!("{method} /execute HTTP/1.1\r\n\r\n").as_bytes(),
            false,
        );
        assert_eq!(
            (answer.status, answer.detail()),
            (405, "Method Not Allowed"),
            "{method}"
        );
        assert!(answer.head.contains("Allow: POST"), "{method}: {answer:?}");
    }
    let answer = send(&handle, &post_json("/api_docs", b"{}"), false);
    assert_eq!(answer.status, 405);
    assert!(answer.head.contains("Allow: GET"), "{answer:?}");
    // The query string is not part of the route.
    let answer = send(&handle, &get("/?probe=1"), false);
    assert_eq!(answer.body, json!({"status": "ok", "server": "rung"}));
    normal_episode(&client, TASK_A);
}

#[test]
fn slow_lying_and_dropped_connections_hold_no_worker() {
    // Stalled connections are answered after 3 s; an episode held up by them would take that.
    let (handle, client) = start_with(Duration::from_secs(3));
    let started = Instant::now();
    // More stalled connections than workers: some never send a byte, some stop mid-header,
    // some announce a longer body than they send. None of them is a request a worker sees.
    let mut stalled = Vec::new();
    for prefix in [
        &b""[..],
        b"POST /execute HTTP/1.1\r\nContent-Le",
        b"POST /execute HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"task_id\"",
        b"GET / HTTP/1.1\r\n",
    ] {
        for _ in 0..2 {
            let mut stream = TcpStream::connect(("127.0.0.1", handle.port())).expect("connect");
            stream.write_all(prefix).expect("write");
            stalled.push(stream);
        }
    }
    // Clients that drop the connection mid-request cost nothing either.
    for prefix in [
        &b"POST /execute HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"[..],
        b"GET /",
    ] {
        let mut stream = TcpStream::connect(("127.0.0.1", handle.port())).expect("connect");
        stream.write_all(prefix).expect("write");
        drop(stream);
    }
    // Meanwhile the two workers serve a whole episode at once.
    normal_episode(&client, TASK_B);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "stalled connections delayed other clients: {:?}",
        started.elapsed()
    );
    // After the deadline each stalled connection is told why.
    for (index, stream) in stalled.iter_mut().enumerate() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let answer = read_answer(stream);
        assert_eq!(answer.status, 408, "connection {index}: {answer:?}");
        let needle = if index / 2 == 2 {
            "10 of the 100 bytes announced by Content-Length"
        } else {
            "did not arrive within 3 s"
        };
        assert!(
            answer.detail().contains(needle),
            "connection {index}: {answer:?}"
        );
    }
    // A body that ends (the client half-closed) short of its Content-Length is named as such.
    let answer = send(
        &handle,
        &post(
            "/execute",
            "Content-Length: 100\r\n",
            br#"{"task_id": "aaaaaaa_1"}"#,
        ),
        true,
    );
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.detail().contains("ended after 24 of the 100 bytes"),
        "{answer:?}"
    );
    // A Content-Length shorter than the body cuts the JSON; the rest is never a second request.
    let body = br#"{"task_id": "aaaaaaa_1", "code": "x"}"#;
    let answer = send(
        &handle,
        &post("/execute", "Content-Length: 10\r\n", body),
        false,
    );
    assert_eq!(answer.status, 422, "{answer:?}");
    assert!(
        answer.detail().contains("invalid request body"),
        "{answer:?}"
    );
    normal_episode(&client, TASK_A);
}

#[test]
fn an_execute_after_close_is_404_and_says_to_initialize() {
    let (_handle, client) = start();
    let a = id(TASK_A);
    client
        .initialize(&a, &EpisodeOptions::default())
        .expect("initialize");
    client.close(&a).expect("close");
    for result in [
        client.execute(&a, "x").map(drop),
        client.evaluate(&a).map(drop),
        client.close(&a),
    ] {
        match result {
            Err(EnvError::NoEpisode(task)) => assert_eq!(task, a),
            other => panic!("expected NoEpisode, got {other:?}"),
        }
    }
    let err = client.execute(&a, "x").expect_err("closed");
    assert!(err.to_string().contains("call initialize first"), "{err}");
    normal_episode(&client, TASK_A);
}

#[test]
fn concurrent_initialize_of_one_task_lets_one_client_in_and_tells_the_others_why() {
    let (_handle, client) = start();
    let a = id(TASK_A);
    let clients = 8;
    let barrier = Arc::new(Barrier::new(clients));
    let results: Vec<Result<(), EnvError>> = (0..clients)
        .map(|_| {
            let (client, barrier, a) = (client.clone(), Arc::clone(&barrier), a.clone());
            thread::spawn(move || {
                barrier.wait();
                client.initialize(&a, &EpisodeOptions::default()).map(drop)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    let started = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(started, 1, "{results:?}");
    for result in results.iter().filter_map(|r| r.as_ref().err()) {
        match result {
            EnvError::Http {
                status: 409, body, ..
            } => assert!(
                body.contains("separate servers") && body.contains(TASK_A),
                "{body}"
            ),
            other => panic!("expected HTTP 409, got {other:?}"),
        }
    }
    // The one episode is intact, and a later initialize is refused until it is closed.
    assert_eq!(client.execute(&a, "x").expect("execute"), "x (cell 1)");
    match client.initialize(&a, &EpisodeOptions::default()) {
        Err(EnvError::Http {
            status: 409, body, ..
        }) => {
            assert!(body.contains("close it first"), "{body}");
        }
        other => panic!("expected HTTP 409, got {other:?}"),
    }
    client.close(&a).expect("close");
    normal_episode(&client, TASK_A);
    // An episode the environment dropped by itself does not block a new one.
    let world = Arc::new(CounterWorld::default());
    let handle =
        serve_with(Arc::clone(&world), "127.0.0.1:0", ServerOptions::default()).expect("serve");
    let other = AppWorldClient::new(handle.url());
    other
        .initialize(&a, &EpisodeOptions::default())
        .expect("initialize");
    world
        .close(&a)
        .expect("the environment ends the episode itself");
    normal_episode(&other, TASK_A);
}

#[test]
fn a_flood_of_connections_over_the_cap_is_503_and_the_server_recovers() {
    let options = ServerOptions {
        workers: 1,
        max_connections: 4,
        read_timeout: Duration::from_secs(2),
        ..ServerOptions::default()
    };
    let handle =
        serve_with(Arc::new(CounterWorld::default()), "127.0.0.1:0", options).expect("serve");
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(("127.0.0.1", handle.port())).expect("connect"))
        .collect();
    thread::sleep(Duration::from_millis(100));
    let answer = send(&handle, b"GET / HTTP/1.1\r\n\r\n", false);
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.detail().contains("max_connections"), "{answer:?}");
    drop(idle);
    // Closed idle connections give their slots back as soon as their threads see the close.
    let client = AppWorldClient::new(handle.url());
    let deadline = Instant::now() + Duration::from_secs(5);
    while client.ping().is_err() {
        assert!(Instant::now() < deadline, "the server did not recover");
        thread::sleep(Duration::from_millis(20));
    }
    normal_episode(&client, TASK_A);
}
