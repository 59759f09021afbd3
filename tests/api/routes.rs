//! One rule, every route: a rule's `respond` headers and `merge`, its
//! `delay_ms`, `throttle_bytes_per_sec` and `reset.after_bytes` mean the
//! same on the upload endpoint, on a `/__files` download and on `/health`
//! (each named by `match.route`), over real sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use aymara_mock::Rule;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{data, multipart_body, read_response, spawn_app, upload_head, TestApp};

/// The routes under test, as `match.route` names them.
const ROUTES: [&str; 3] = ["upload", "download", "health"];

/// A server with one stored file (so that a download has something to
/// serve), then `rule` for `route`; returns the download's path.
async fn app_with(route: &str, mut rule: Value) -> (TestApp, String) {
    let app = spawn_app().await;
    let stored: Value = app
        .upload(b"stored bytes".to_vec(), "a.txt")
        .await
        .json()
        .await
        .expect("upload answer");
    let url = stored["file_url"].as_str().expect("file_url");
    let path = url[url.find("/__files/").expect("a /__files URL")..].to_owned();
    rule["match"] = json!({ "route": route });
    let rule: Rule = serde_json::from_value(rule).expect("a valid rule");
    app.server.add_rule(rule).await.expect("rule added");
    (app, path)
}

/// A raw request to `route` carrying `body` (a GET's body is read and
/// dropped; the upload's is a multipart body around it).
fn request(addr: SocketAddr, route: &str, download: &str, body: &[u8]) -> Vec<u8> {
    let (head, body) = match route {
        "upload" => {
            let body = multipart_body("b.bin", Some("application/octet-stream"), body);
            (upload_head(addr, body.len(), ""), body)
        }
        _ => {
            let path = if route == "health" {
                "/health"
            } else {
                download
            };
            let head = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            (head, body.to_vec())
        }
    };
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Sends `request` and reads one answer; the time it took.
async fn exchange(addr: SocketAddr, request: &[u8]) -> ((u16, String, Vec<u8>), Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("request sent");
    let answer = read_response(&mut stream).await.expect("an answer");
    (answer, started.elapsed())
}

#[tokio::test]
async fn a_respond_rules_headers_and_merge_apply_on_every_route() {
    for route in ROUTES {
        let (app, download) = app_with(
            route,
            json!({"respond": {"status": 200, "headers": {"x-rule": "yes"}, "merge": {"rule": "merged"}}}),
        )
        .await;
        let addr = app.server.address();
        let ((status, head, body), _) = exchange(addr, &request(addr, route, &download, b"")).await;
        assert_eq!(status, 200, "{route}: {head}");
        assert_eq!(
            crate::helpers::header(&head, "x-rule").as_deref(),
            Some("yes"),
            "{route}: {head}"
        );
        let body: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{route}: not JSON ({e}): {body:?}"));
        assert_eq!(body["rule"], "merged", "{route}: {body}");
    }
}

#[tokio::test]
async fn a_rules_delay_applies_on_every_route() {
    for route in ROUTES {
        let (app, download) = app_with(route, json!({"pass": {}, "delay_ms": 300})).await;
        let addr = app.server.address();
        let ((status, _, _), took) = exchange(addr, &request(addr, route, &download, b"")).await;
        assert_eq!(status, 200, "{route}");
        assert!(took >= Duration::from_millis(300), "{route}: {took:?}");
        assert!(took < Duration::from_secs(5), "{route}: {took:?}");
    }
}

#[tokio::test]
async fn a_rules_throttle_slows_the_request_body_on_every_route() {
    // 256 KiB at 128 KiB/s: about 2 s whatever route reads it.
    let body = data(256 << 10);
    for route in ROUTES {
        let (app, download) =
            app_with(route, json!({"pass": {}, "throttle_bytes_per_sec": 131072})).await;
        let addr = app.server.address();
        let ((status, _, _), took) = exchange(addr, &request(addr, route, &download, &body)).await;
        assert_eq!(status, 200, "{route}");
        assert!(took >= Duration::from_millis(1000), "{route}: {took:?}");
        assert!(took < Duration::from_secs(15), "{route}: {took:?}");
    }
}

/// Sends `request` and reads until the server closes: what it sent.
async fn unanswered(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may reset while the request is still being written.
    let _ = stream.write_all(request).await;
    let read_all = async {
        let mut got = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return got,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the server closes the connection")
}

#[tokio::test]
async fn a_reset_after_n_bytes_cuts_every_route_after_n_body_bytes_or_at_a_shorter_end() {
    for route in ROUTES {
        let (app, download) = app_with(
            route,
            json!({"fault": {"kind": "reset", "after_bytes": 1000}}),
        )
        .await;
        let addr = app.server.address();
        // A longer body: cut once 1000 bytes are read.
        let got = unanswered(addr, &request(addr, route, &download, &data(64 << 10))).await;
        assert!(
            got.is_empty(),
            "{route}: {:?}",
            String::from_utf8_lossy(&got)
        );
        // A shorter one: cut once it is read whole, as uploads always were.
        let got = unanswered(addr, &request(addr, route, &download, &data(10))).await;
        assert!(
            got.is_empty(),
            "{route}: {:?}",
            String::from_utf8_lossy(&got)
        );

        // The first upload, then the two cut requests.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut records = app.server.requests().await;
        while records.len() < 3 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            records = app.server.requests().await;
        }
        let long = &records[records.len().saturating_sub(2)];
        assert!(
            long.body_bytes < 64 << 10,
            "{route}: the whole body was read: {long:#?}"
        );
        let tail: Vec<_> = records
            .iter()
            .skip(records.len().saturating_sub(2))
            .map(|r| (r.status, r.fault.clone()))
            .collect();
        assert_eq!(
            tail,
            [
                (None, Some("reset".to_owned())),
                (None, Some("reset".to_owned()))
            ],
            "{route}: {records:#?}"
        );
    }
}

/// The README's rule reference names every route a rule can take, and no
/// other: its `match.route` list (between `<!-- routes:begin -->` and
/// `<!-- routes:end -->`) against the `match.route` enum of the committed
/// schema. It once named 4 of 12.
#[test]
fn the_readme_lists_the_routes_the_schema_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let list = readme
        .split_once("<!-- routes:begin -->")
        .and_then(|(_, rest)| rest.split_once("<!-- routes:end -->"))
        .map(|(list, _)| list)
        .expect("README.md has <!-- routes:begin --> … <!-- routes:end --> around the route list");
    // The names are the backquoted lowercase words; methods and paths are not.
    let mut in_readme: Vec<&str> = list
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
        .collect();
    in_readme.sort_unstable();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("fixtures/schema.json")).unwrap())
            .unwrap();
    let mut in_schema: Vec<&str> = schema["$defs"]["match"]["properties"]["route"]["enum"]
        .as_array()
        .expect("the schema's match.route enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    in_schema.sort_unstable();
    assert_eq!(
        in_readme, in_schema,
        "README.md's match.route list differs from fixtures/schema.json"
    );
}
