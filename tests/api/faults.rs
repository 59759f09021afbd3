//! Fault rules, end to end: every shipped fixture does what its description
//! says; phases, counters, the seeded RNG and rule order; network faults as a
//! client sees them on the socket; `Prefer: code=`; `check` and `--watch`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aymara_mock::{Action, Phase, RequestRecord, Rule};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Absolute path of a shipped fixture.
macro_rules! fixture {
    ($rel:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/", $rel)
    };
}

const FIXTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// The real API's default `error.code` for each documented status, written out here
/// rather than taken from the crate, so that a wrong mapping fails.
const DOCUMENTED: [(u16, &str); 9] = [
    (400, "validation.invalid_request"),
    (401, "auth.invalid_key"),
    (403, "auth.insufficient_permissions"),
    (404, "resource.not_found"),
    (409, "resource.conflict"),
    (422, "validation.invalid_format"),
    (429, "quota.limit_exceeded"),
    (500, "server.internal_error"),
    (503, "server.unavailable"),
];

// ---------------------------------------------------------------- plumbing

async fn with_fixture(path: &str) -> TestApp {
    spawn_with(|b| b.seed(7).fixtures(path).expect("the fixture is valid")).await
}

fn rule(value: Value) -> Rule {
    serde_json::from_value(value).expect("a valid rule")
}

async fn with_rule(value: Value) -> TestApp {
    let app = spawn_app().await;
    app.server.add_rule(rule(value)).await.expect("rule added");
    app
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts an error answer in the envelope (status, request ids, a message)
/// and returns its body.
async fn envelope(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status, "status");
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id header");
    let body: Value = resp.json().await.expect("a JSON body");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert_eq!(body["error"]["request_id"], request_id.as_str(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// An upload whose connection may fail; `mime` is the part's Content-Type.
async fn try_upload(
    client: &reqwest::Client,
    app: &TestApp,
    bytes: Vec<u8>,
    filename: &str,
    mime: Option<&str>,
) -> reqwest::Result<reqwest::Response> {
    let mut part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned());
    if let Some(mime) = mime {
        part = part.mime_str(mime).expect("valid mime");
    }
    client
        .post(app.server.upload_url())
        .header("x-api-key", "k")
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
}

async fn upload_typed(
    app: &TestApp,
    bytes: Vec<u8>,
    filename: &str,
    mime: &str,
) -> reqwest::Response {
    try_upload(&app.client, app, bytes, filename, Some(mime))
        .await
        .expect("an answer")
}

/// A client that opens a new connection per request, so that a fault on one
/// connection cannot touch the next request.
fn fresh_connection_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// The journal once it holds `count` records (bounded wait: a hung request is
/// journaled only when its connection closes).
async fn journal(app: &TestApp, count: usize) -> Vec<RequestRecord> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = app.server.requests().await;
        if records.len() >= count || Instant::now() >= deadline {
            assert_eq!(records.len(), count, "journal: {records:#?}");
            return records;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts that nothing is left in the storage dir (`.partial/` included).
async fn assert_nothing_on_disk(app: &TestApp) {
    let empty = eventually(Duration::from_secs(2), || app.stored_files().is_empty()).await;
    assert!(empty, "files left behind: {:?}", app.stored_files());
    assert!(app.server.uploads().await.is_empty());
}

/// Reads until the server closes (or resets) the connection.
async fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Option<std::io::Error>) {
    let read_all = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return (buf, None),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return (buf, Some(e)),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read_all)
        .await
        .expect("the server closes the connection")
}

/// A whole upload request (head and multipart body) for a raw client.
fn raw_upload(addr: std::net::SocketAddr, filename: &str, content: &[u8]) -> Vec<u8> {
    let body = multipart_body(filename, Some("application/octet-stream"), content);
    let mut request = upload_head(addr, body.len(), "").into_bytes();
    request.extend_from_slice(&body);
    request
}

fn respond_status(rule: &Rule) -> Option<u16> {
    match &rule.action {
        Action::Respond(r) => Some(r.status.code()),
        _ => None,
    }
}

fn write_fixture(path: &Path, id: &str, status: u16, message: &str) {
    let text = json!({
        "rules": [{"id": id, "respond": {"status": status, "message": message}}]
    });
    std::fs::write(path, serde_json::to_string_pretty(&text).expect("json"))
        .expect("fixture written");
}

// ------------------------------------------------- shipped fixture files

#[test]
fn shipped_fixtures_carry_a_schema_and_descriptions() {
    let mut files = Vec::new();
    for dir in ["errors", "scenarios"] {
        for entry in std::fs::read_dir(Path::new(FIXTURES_DIR).join(dir)).expect("fixture dir") {
            files.push(entry.expect("entry").path());
        }
    }
    assert!(files.len() >= 20, "{files:?}");
    for path in files {
        let doc = read_json(&path);
        let name = path.display();
        assert_eq!(doc["$schema"], "../schema.json", "{name}");
        assert!(
            doc["description"].as_str().is_some_and(|d| d.len() > 20),
            "{name}: description"
        );
        let rules = doc["rules"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: rules"));
        assert!(!rules.is_empty(), "{name}");
        for rule in rules {
            assert!(rule["id"].as_str().is_some(), "{name}: id");
            assert!(
                rule["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}: rule description"
            );
        }
    }
}

#[test]
fn there_is_one_error_fixture_per_documented_status() {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(FIXTURES_DIR).join("errors"))
        .expect("fixtures/errors")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let statuses: Vec<u16> = names
        .iter()
        .map(|n| n[..3].parse().expect("NNN-name.json"))
        .collect();
    let documented: Vec<u16> = DOCUMENTED.iter().map(|(s, _)| *s).collect();
    assert_eq!(statuses, documented, "{names:?}");
}

#[test]
fn aymara_mock_check_accepts_every_shipped_fixture() {
    let out = Command::new(bin_path())
        .args(["check", FIXTURES_DIR])
        .output()
        .expect("check runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("all valid"), "{stdout}");
}

#[test]
fn the_committed_schema_is_what_aymara_mock_schema_prints() {
    let out = Command::new(bin_path())
        .arg("schema")
        .output()
        .expect("schema runs");
    assert_eq!(out.status.code(), Some(0));
    let committed = std::fs::read(fixture!("schema.json")).expect("fixtures/schema.json");
    assert!(
        committed == out.stdout,
        "`aymara-mock schema` must print fixtures/schema.json, which it compiles in"
    );
}

#[tokio::test]
async fn the_whole_fixtures_dir_loads_in_file_name_order() {
    let app = with_fixture(FIXTURES_DIR).await;
    let rules = app.server.rules().await;
    assert_eq!(rules.len(), 26);
    let sources: Vec<&str> = rules.iter().map(|r| r.source.as_str()).collect();
    let mut sorted = sources.clone();
    sorted.sort();
    assert_eq!(sources, sorted);
    assert!(
        sources[0].ends_with("errors/400-bad-request.json"),
        "{sources:?}"
    );
    assert!(
        sources[25].ends_with("scenarios/timeout.json"),
        "{sources:?}"
    );
    // The first rule (the 400 example) decides.
    let body = envelope(app.upload(data(10), "a.bin").await, 400).await;
    assert_eq!(body["error"]["code"], "validation.invalid_request");
}

/// Loads one `fixtures/errors/` file and checks it answers uploads (and only
/// uploads) with its status, the real API's code, and its own message.
async fn error_fixture_answers(path: &str, status: u16, code: &str) {
    let doc = read_json(Path::new(path));
    let respond = &doc["rules"][0]["respond"];
    let app = with_fixture(path).await;

    let resp = app.upload(data(1024), "report.pdf").await;
    let headers = resp.headers().clone();
    let body = envelope(resp, status).await;
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["message"], respond["message"], "{body}");
    if let Some(details) = respond.get("details") {
        assert_eq!(&body["error"]["details"], details, "{body}");
    }
    for (name, value) in respond["headers"].as_object().into_iter().flatten() {
        assert_eq!(
            headers.get(name).and_then(|v| v.to_str().ok()),
            value.as_str(),
            "header {name}"
        );
    }
    assert_nothing_on_disk(&app).await;
    let records = journal(&app, 1).await;
    assert_eq!(records[0].status, Some(status));
    assert_eq!(records[0].rule.as_deref(), doc["rules"][0]["id"].as_str());

    // Other routes are not affected.
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
}

macro_rules! error_fixture_tests {
    ($($name:ident: $file:literal => $status:literal $code:literal;)*) => {$(
        #[tokio::test]
        async fn $name() {
            error_fixture_answers(fixture!($file), $status, $code).await;
        }
    )*};
}

error_fixture_tests! {
    fixture_400_answers_uploads_with_validation_invalid_request:
        "errors/400-bad-request.json" => 400 "validation.invalid_request";
    fixture_401_answers_uploads_with_auth_invalid_key:
        "errors/401-invalid-key.json" => 401 "auth.invalid_key";
    fixture_403_answers_uploads_with_auth_insufficient_permissions:
        "errors/403-forbidden.json" => 403 "auth.insufficient_permissions";
    fixture_404_answers_uploads_with_resource_not_found:
        "errors/404-not-found.json" => 404 "resource.not_found";
    fixture_409_answers_uploads_with_resource_conflict:
        "errors/409-conflict.json" => 409 "resource.conflict";
    fixture_422_answers_uploads_with_validation_invalid_format:
        "errors/422-unprocessable.json" => 422 "validation.invalid_format";
    fixture_429_answers_uploads_with_quota_limit_exceeded_and_retry_after:
        "errors/429-rate-limited.json" => 429 "quota.limit_exceeded";
    fixture_500_answers_uploads_with_server_internal_error:
        "errors/500-internal-error.json" => 500 "server.internal_error";
    fixture_503_answers_uploads_with_server_unavailable:
        "errors/503-unavailable.json" => 503 "server.unavailable";
}

#[tokio::test]
async fn retry_then_succeed_fails_two_uploads_with_503_then_stores_the_third() {
    let app = with_fixture(fixture!("scenarios/retry-then-succeed.json")).await;
    let content = data(4096);
    for _ in 0..2 {
        let body = envelope(app.upload(content.clone(), "doc.pdf").await, 503).await;
        assert_eq!(body["error"]["code"], "server.unavailable");
    }
    assert!(app.server.uploads().await.is_empty());
    let resp = app.upload(content.clone(), "doc.pdf").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    let stored =
        std::fs::read(body["local_file_path"].as_str().expect("path")).expect("stored file");
    assert_eq!(sha256_hex(&stored), sha256_hex(&content));
    assert_eq!(app.server.uploads().await.len(), 1);

    let records = journal(&app, 3).await;
    let statuses: Vec<Option<u16>> = records.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(503), Some(200)]);
    let rules: Vec<Option<&str>> = records.iter().map(|r| r.rule.as_deref()).collect();
    assert_eq!(
        rules,
        [Some("retry-then-succeed"), Some("retry-then-succeed"), None]
    );
    let status = &app.server.rules().await[0];
    assert_eq!((status.matched, status.fired), (3, 2));
}

#[tokio::test]
async fn rate_limit_burst_answers_uploads_3_to_5_with_429_and_retry_after() {
    let app = with_fixture(fixture!("scenarios/rate-limit-burst.json")).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let resp = app.upload(data(100), &format!("f{i}.txt")).await;
        let status = resp.status().as_u16();
        statuses.push(status);
        if status == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
            let body = envelope(resp, 429).await;
            assert_eq!(body["error"]["code"], "quota.limit_exceeded");
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429, 200]);
    assert_eq!(app.server.uploads().await.len(), 3);
}

#[tokio::test]
async fn expired_key_refuses_expired_keys_and_tokens_with_auth_expired_key() {
    let app = with_fixture(fixture!("scenarios/expired-key.json")).await;
    let body = envelope(
        app.upload_with(data(10), "a.txt", "expired-2024-01", &[])
            .await,
        401,
    )
    .await;
    assert_eq!(body["error"]["code"], "auth.expired_key");

    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(data(10)).file_name("a.txt"),
    );
    let resp = app
        .client
        .post(app.server.upload_url())
        .bearer_auth("expired-token")
        .multipart(form)
        .send()
        .await
        .expect("an answer");
    let body = envelope(resp, 401).await;
    assert_eq!(body["error"]["code"], "auth.expired_key");
    assert!(app.server.uploads().await.is_empty());

    assert_eq!(
        app.upload_with(data(10), "a.txt", "live-key", &[])
            .await
            .status(),
        200
    );
    assert_eq!(app.server.uploads().await.len(), 1);
}

#[tokio::test]
async fn forbidden_key_refuses_readonly_keys_with_403() {
    let app = with_fixture(fixture!("scenarios/forbidden-key.json")).await;
    let body = envelope(
        app.upload_with(data(10), "a.txt", "readonly-ci", &[]).await,
        403,
    )
    .await;
    assert_eq!(body["error"]["code"], "auth.insufficient_permissions");
    assert_nothing_on_disk(&app).await;
    assert_eq!(
        app.upload_with(data(10), "a.txt", "writer-ci", &[])
            .await
            .status(),
        200
    );
    assert_eq!(app.server.uploads().await.len(), 1);
}

/// Runs 30 uploads against `flaky-network.json`: `true` where the connection
/// was reset. Checks each outcome against the journal and the disk.
async fn flaky_run(seed: u64) -> Vec<bool> {
    let app = spawn_with(|b| {
        b.seed(seed)
            .fixtures(fixture!("scenarios/flaky-network.json"))
            .expect("fixture")
    })
    .await;
    let client = fresh_connection_client();
    let mut reset = Vec::new();
    for i in 0..30 {
        match try_upload(&client, &app, data(2048), &format!("f{i}.bin"), None).await {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                reset.push(false);
            }
            Err(err) => {
                assert!(!err.is_timeout(), "{err}");
                reset.push(true);
            }
        }
    }
    let records = journal(&app, 30).await;
    let journaled: Vec<bool> = records
        .iter()
        .map(|r| r.fault.as_deref() == Some("reset"))
        .collect();
    assert_eq!(journaled, reset);
    for r in records.iter().filter(|r| r.fault.is_some()) {
        assert_eq!((r.status, r.upload.is_some()), (None, false));
        assert_eq!(r.rule.as_deref(), Some("flaky-network-reset"));
    }
    let ok = reset.iter().filter(|r| !**r).count();
    assert_eq!(app.server.uploads().await.len(), ok);
    let stored = eventually(Duration::from_secs(2), || app.stored_files().len() == ok).await;
    assert!(stored, "{:?}", app.stored_files());
    reset
}

#[tokio::test]
async fn flaky_network_resets_about_30_percent_of_uploads_replayably_by_seed() {
    let first = flaky_run(7).await;
    let resets = first.iter().filter(|r| **r).count();
    assert!(
        (3..=18).contains(&resets),
        "{resets} of 30 reset: {first:?}"
    );
    assert_eq!(flaky_run(7).await, first, "same seed, same failures");
}

#[tokio::test]
async fn cut_mid_upload_resets_mp4_uploads_and_stores_nothing() {
    let app = with_fixture(fixture!("scenarios/cut-mid-upload.json")).await;
    let client = fresh_connection_client();
    let err = try_upload(&client, &app, data(1 << 20), "clip.mp4", Some("video/mp4"))
        .await
        .expect_err("the connection is reset");
    assert!(!err.is_timeout(), "{err}");
    let records = journal(&app, 1).await;
    assert_eq!(records[0].fault.as_deref(), Some("reset"));
    assert_eq!(records[0].rule.as_deref(), Some("cut-mp4-mid-upload"));
    assert_eq!(records[0].status, None);
    assert_nothing_on_disk(&app).await;

    let resp = upload_typed(&app, data(1 << 20), "clip.mov", "video/quicktime").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.server.uploads().await.len(), 1);
}

#[tokio::test]
async fn cut_mid_upload_reads_exactly_64_kib_before_the_reset() {
    let app = with_fixture(fixture!("scenarios/cut-mid-upload.json")).await;
    assert_reset_after_exactly(&app, 65536, "clip.mp4").await;
}

/// A raw client sends `after - 1` body bytes: the connection stays open with
/// no answer. One more byte, and the server resets it without answering.
async fn assert_reset_after_exactly(app: &TestApp, after: usize, filename: &str) {
    let addr = app.server.address();
    let body = multipart_body(filename, Some("video/mp4"), &data(after * 2));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(upload_head(addr, body.len(), "").as_bytes())
        .await
        .expect("head");
    stream.write_all(&body[..after - 1]).await.expect("body");
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "the server answered or closed before {after} body bytes: {early:?}"
    );

    stream
        .write_all(&body[after - 1..after])
        .await
        .expect("one more byte");
    let (got, err) = read_to_close(&mut stream).await;
    assert!(
        got.is_empty(),
        "an answer was sent: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert_eq!(
        err.map(|e| e.kind()),
        Some(ErrorKind::ConnectionReset),
        "a TCP reset, not a FIN"
    );

    let records = journal(app, 1).await;
    assert_eq!(
        (records[0].status, records[0].fault.as_deref()),
        (None, Some("reset"))
    );
    assert!(records[0].upload.is_none());
    assert_nothing_on_disk(app).await;
}

#[tokio::test]
async fn slow_upload_reads_a_1mib_upload_at_256kib_per_s_in_at_least_3_5_s() {
    // Also the throttle test: the fixture is `pass` + `throttle_bytes_per_sec: 262144`.
    let app = with_fixture(fixture!("scenarios/slow-upload.json")).await;
    let content = data(1 << 20);
    let started = Instant::now();
    let resp = app.upload(content.clone(), "big.bin").await;
    let elapsed = started.elapsed();
    assert_eq!(resp.status(), 200);
    assert!(elapsed >= Duration::from_millis(3500), "took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let uploads = app.server.uploads().await;
    assert_eq!(uploads[0].sha256, sha256_hex(&content));
    let records = journal(&app, 1).await;
    assert_eq!(records[0].rule.as_deref(), Some("slow-upload"));
}

#[tokio::test]
async fn timeout_hangs_until_the_client_gives_up() {
    let app = with_fixture(fixture!("scenarios/timeout.json")).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let started = Instant::now();
    let err = try_upload(&client, &app, data(4096), "a.bin", None)
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(500));

    // The server itself is fine; only that connection hung.
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn reject_large_videos_refuses_videos_over_10_mib_once_received() {
    let app = with_fixture(fixture!("scenarios/reject-large-videos.json")).await;
    let limit = 10 << 20;
    let resp = upload_typed(&app, data(limit), "exact.mp4", "video/mp4").await;
    assert_eq!(resp.status(), 200);

    let resp = upload_typed(&app, data(limit + 1), "big.mp4", "video/mp4").await;
    let body = envelope(resp, 422).await;
    assert_eq!(body["error"]["code"], "validation.invalid_format");
    assert_eq!(body["error"]["details"]["max_size"], limit);

    let resp = upload_typed(&app, data(limit + 1), "big.bin", "application/octet-stream").await;
    assert_eq!(resp.status(), 200);

    let names: Vec<String> = app
        .server
        .uploads()
        .await
        .into_iter()
        .map(|u| u.filename)
        .collect();
    assert_eq!(names, ["exact.mp4", "big.bin"]);
    let on_disk = eventually(Duration::from_secs(2), || app.stored_files().len() == 2).await;
    assert!(on_disk, "{:?}", app.stored_files());
    let records = journal(&app, 3).await;
    assert_eq!(records[1].rule.as_deref(), Some("reject-large-videos"));
}

#[tokio::test]
async fn stored_but_500_stores_the_first_upload_yet_answers_500() {
    let app = with_fixture(fixture!("scenarios/stored-but-500.json")).await;
    let content = data(3000);
    let body = envelope(app.upload(content.clone(), "once.bin").await, 500).await;
    assert_eq!(body["error"]["code"], "server.internal_error");

    let uploads = app.server.uploads().await;
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        sha256_hex(
            &std::fs::read(uploads[0].local_file_path.as_ref().expect("local")).expect("on disk")
        ),
        sha256_hex(&content)
    );
    let records = journal(&app, 1).await;
    assert_eq!(records[0].status, Some(500));
    assert_eq!(records[0].rule.as_deref(), Some("stored-but-500"));
    assert_eq!(
        records[0].upload.as_ref().map(|u| u.sha256.clone()),
        Some(sha256_hex(&content))
    );

    // The retry succeeds: two copies now.
    assert_eq!(app.upload(content, "once.bin").await.status(), 200);
    assert_eq!(app.server.uploads().await.len(), 2);
}

#[tokio::test]
async fn null_fields_answers_200_with_null_urls_and_stores_the_file() {
    let app = with_fixture(fixture!("scenarios/null-fields.json")).await;
    let content = data(512);
    let resp = app.upload(content.clone(), "n.bin").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    for field in ["file_url", "remote_file_path", "remote_uri"] {
        assert!(
            body.get(field).is_some_and(Value::is_null),
            "{field}: {body}"
        );
    }
    assert!(body["file_uuid"].as_str().is_some(), "{body}");
    assert_eq!(body["processing_status"], "completed");
    let stored = std::fs::read(body["local_file_path"].as_str().expect("path")).expect("stored");
    assert_eq!(stored, content);
    assert_eq!(app.server.uploads().await.len(), 1);
}

// ------------------------------------------------------------------ phases

#[tokio::test]
async fn a_request_phase_rule_answers_before_any_body_byte_is_read() {
    let app = with_rule(json!({"id": "down", "respond": {"status": 503}})).await;
    assert_eq!(app.server.rules().await[0].rule.phase, Phase::Request);
    let addr = app.server.address();
    // 20 MiB announced, none sent: with `Expect: 100-continue` the server
    // must answer without asking for the body (no `100 Continue`).
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = upload_head(addr, 20 << 20, "Expect: 100-continue\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(3), read_response(&mut stream))
            .await
            .expect("answered without the body")
            .expect("an answer");
    assert_eq!(status, 503);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "server.unavailable");
    let records = journal(&app, 1).await;
    assert_eq!(
        (records[0].status, records[0].rule.as_deref()),
        (Some(503), Some("down"))
    );
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn a_request_phase_503_reaches_a_client_writing_20_mib_without_expect() {
    let app = with_rule(json!({"id": "down", "respond": {"status": 503}})).await;
    let request = raw_upload(app.server.address(), "big.bin", &data(20 << 20));
    let (status, _, body) = raw_exchange(app.server.address(), &request)
        .await
        .expect("an answer, not a reset");
    assert_eq!(status, 503);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], "server.unavailable");
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn an_upload_phase_rule_decides_on_the_filename() {
    let app = with_rule(json!({
        "id": "no-mp4", "match": {"filename": "*.mp4"},
        "respond": {"status": 422, "message": "No MP4 files, please."}
    }))
    .await;
    assert_eq!(app.server.rules().await[0].rule.phase, Phase::Upload);
    let body = envelope(app.upload(data(2000), "holiday.mp4").await, 422).await;
    assert_eq!(body["error"]["code"], "validation.invalid_format");
    assert_eq!(body["error"]["message"], "No MP4 files, please.");
    assert_nothing_on_disk(&app).await;
    assert_eq!(app.upload(data(2000), "holiday.mov").await.status(), 200);
    let records = journal(&app, 2).await;
    assert_eq!(records[0].rule.as_deref(), Some("no-mp4"));
    assert_eq!(records[1].rule, None);
}

#[tokio::test]
async fn an_upload_phase_rule_decides_on_the_content_type() {
    let app = with_rule(json!({
        "id": "no-video", "match": {"content_type": "video/*"}, "respond": {"status": 422}
    }))
    .await;
    let body = envelope(
        upload_typed(&app, data(2000), "a.bin", "video/quicktime").await,
        422,
    )
    .await;
    assert_eq!(body["error"]["code"], "validation.invalid_format");
    assert_nothing_on_disk(&app).await;
    assert_eq!(
        upload_typed(&app, data(2000), "a.bin", "image/png")
            .await
            .status(),
        200
    );
    assert_eq!(app.server.uploads().await[0].content_type, "image/png");
}

#[tokio::test]
async fn an_upload_phase_rule_answers_once_the_part_headers_are_in() {
    let app = with_rule(
        json!({"id": "no-mp4", "match": {"filename": "*.mp4"}, "respond": {"status": 422}}),
    )
    .await;
    let addr = app.server.address();
    // Announce a 20 MiB body, send only the part headers and 1 KiB of file.
    let body = multipart_body("clip.mp4", Some("video/mp4"), &data(20 << 20));
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = upload_head(addr, body.len(), "Expect: 100-continue\r\n");
    stream.write_all(head.as_bytes()).await.expect("head");
    let (status, _, _) = tokio::time::timeout(Duration::from_secs(3), read_response(&mut stream))
        .await
        .expect("100 Continue")
        .expect("an interim answer");
    assert_eq!(status, 100);
    stream
        .write_all(&body[..1024 + 200])
        .await
        .expect("part headers");
    let (status, _, answer) =
        tokio::time::timeout(Duration::from_secs(3), read_response(&mut stream))
            .await
            .expect("answered before the file is complete")
            .expect("an answer");
    assert_eq!(status, 422);
    let answer: Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(answer["error"]["code"], "validation.invalid_format");
    drop(stream);
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn a_complete_phase_rule_decides_on_the_size_and_discards_the_file() {
    let app = with_rule(json!({
        "id": "max-999", "match": {"size": {"min": 1000}}, "respond": {"status": 422}
    }))
    .await;
    assert_eq!(app.server.rules().await[0].rule.phase, Phase::Complete);
    assert_eq!(app.upload(data(999), "small.bin").await.status(), 200);
    let body = envelope(app.upload(data(1000), "large.bin").await, 422).await;
    assert_eq!(body["error"]["code"], "validation.invalid_format");
    let names: Vec<String> = app
        .server
        .uploads()
        .await
        .into_iter()
        .map(|u| u.filename)
        .collect();
    assert_eq!(names, ["small.bin"]);
    let one_file = eventually(Duration::from_secs(2), || app.stored_files().len() == 1).await;
    assert!(one_file, "{:?}", app.stored_files());
    let records = journal(&app, 2).await;
    assert_eq!(
        (records[1].status, records[1].rule.as_deref()),
        (Some(422), Some("max-999"))
    );
    assert!(records[1].upload.is_none());
}

// ---------------------------------------------------- counters, seed, order

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_10_fires_exactly_10_times_over_100_concurrent_uploads() {
    let app =
        with_rule(json!({"id": "ten", "when": {"times": 10}, "respond": {"status": 503}})).await;
    let names: Vec<String> = (0..100).map(|i| format!("f{i}.bin")).collect();
    let uploads = names.iter().map(|name| app.upload(data(1024), name));
    let statuses: Vec<u16> = futures_util::future::join_all(uploads)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        90,
        "{statuses:?}"
    );

    let records = journal(&app, 100).await;
    let fired: Vec<&RequestRecord> = records
        .iter()
        .filter(|r| r.rule.as_deref() == Some("ten"))
        .collect();
    assert_eq!(fired.len(), 10);
    assert!(fired.iter().all(|r| r.status == Some(503)));
    let status = &app.server.rules().await[0];
    assert_eq!((status.matched, status.fired), (100, 10));
    assert_eq!(app.server.uploads().await.len(), 90);
}

/// 50 sequential uploads against a `probability: 0.3` rule: which ones fired.
async fn coin_flips(seed: u64) -> Vec<bool> {
    let app = spawn_with(|b| b.seed(seed)).await;
    app.server
        .add_rule(rule(
            json!({"id": "coin", "when": {"probability": 0.3}, "respond": {"status": 503}}),
        ))
        .await
        .expect("rule");
    let mut fired = Vec::new();
    for _ in 0..50 {
        let status = app.upload(data(16), "x.bin").await.status().as_u16();
        assert!(status == 200 || status == 503, "{status}");
        fired.push(status == 503);
    }
    let records = journal(&app, 50).await;
    let journaled: Vec<bool> = records
        .iter()
        .map(|r| r.rule.as_deref() == Some("coin"))
        .collect();
    assert_eq!(journaled, fired);
    fired
}

#[tokio::test]
async fn the_same_seed_fires_the_same_sequence() {
    let (a, b) = tokio::join!(coin_flips(7), coin_flips(7));
    assert_eq!(a, b);
    let count = a.iter().filter(|f| **f).count();
    assert!((5..=30).contains(&count), "{count} of 50 fired");
    assert_ne!(coin_flips(8).await, a, "another seed, another sequence");
}

#[tokio::test]
async fn fixture_files_are_consulted_in_the_order_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    write_fixture(&a, "from-a", 500, "from a");
    write_fixture(&b, "from-b", 503, "from b");

    let app = spawn_with(|s| s.fixtures(&b).expect("b").fixtures(&a).expect("a")).await;
    let ids: Vec<String> = app.server.rules().await.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["from-b", "from-a"]);
    envelope(app.upload(data(10), "x.bin").await, 503).await;

    let app = spawn_with(|s| s.fixtures(&a).expect("a").fixtures(&b).expect("b")).await;
    envelope(app.upload(data(10), "x.bin").await, 500).await;
}

#[tokio::test]
async fn a_directory_is_read_in_file_name_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Written in the opposite order, to rule out creation order.
    write_fixture(&dir.path().join("20-second.json"), "second", 503, "second");
    write_fixture(&dir.path().join("10-first.json"), "first", 500, "first");
    std::fs::write(dir.path().join("notes.txt"), "not a fixture").expect("write");

    let app = spawn_with(|s| s.fixtures(dir.path()).expect("dir")).await;
    let rules = app.server.rules().await;
    let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["first", "second"]);
    assert!(
        rules[0].source.ends_with("10-first.json"),
        "{}",
        rules[0].source
    );
    let body = envelope(app.upload(data(10), "x.bin").await, 500).await;
    assert_eq!(body["error"]["message"], "first");
}

#[tokio::test]
async fn the_first_rule_decides_and_run_time_rules_come_first_newest_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("two.json");
    let text = json!({"rules": [
        {"id": "one", "respond": {"status": 500}},
        {"id": "two", "respond": {"status": 503}}
    ]});
    std::fs::write(&path, text.to_string()).expect("write");
    let app = spawn_with(|s| s.fixtures(&path).expect("fixture")).await;
    envelope(app.upload(data(10), "x.bin").await, 500).await;
    let rules = app.server.rules().await;
    assert_eq!(
        (rules[0].fired, rules[1].matched),
        (1, 0),
        "the second rule is never reached"
    );

    app.server
        .add_rule(Rule::respond(409).with_id("older"))
        .await
        .expect("rule");
    app.server
        .add_rule(Rule::respond(429).with_id("newer"))
        .await
        .expect("rule");
    let ids: Vec<String> = app.server.rules().await.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["newer", "older", "one", "two"]);
    envelope(app.upload(data(10), "x.bin").await, 429).await;
}

// ---------------------------------------------------------- network faults

#[tokio::test]
async fn reset_gives_the_client_a_connection_error_and_stores_nothing() {
    let app = with_rule(json!({"id": "rst", "fault": {"kind": "reset"}})).await;
    let err = try_upload(&fresh_connection_client(), &app, data(4096), "a.bin", None)
        .await
        .expect_err("no answer");
    assert!(!err.is_timeout() && err.status().is_none(), "{err}");

    // On the socket: a TCP reset, no byte of an answer.
    let mut stream = TcpStream::connect(app.server.address())
        .await
        .expect("connect");
    stream
        .write_all(&raw_upload(app.server.address(), "a.bin", &data(4096)))
        .await
        .expect("request");
    let (got, err) = read_to_close(&mut stream).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::ConnectionReset));

    let records = journal(&app, 2).await;
    for r in &records {
        assert_eq!(
            (r.status, r.fault.as_deref(), r.rule.as_deref()),
            (None, Some("reset"), Some("rst"))
        );
        assert!(r.upload.is_none());
    }
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn reset_after_bytes_reads_that_many_body_bytes_first() {
    let app =
        with_rule(json!({"id": "cut", "fault": {"kind": "reset", "after_bytes": 100000}})).await;
    assert_reset_after_exactly(&app, 100_000, "a.bin").await;
}

#[tokio::test]
async fn hang_for_ms_holds_the_connection_then_closes_it_unanswered() {
    let app = with_rule(json!({"id": "stall", "fault": {"kind": "hang", "for_ms": 400}})).await;
    let mut stream = TcpStream::connect(app.server.address())
        .await
        .expect("connect");
    let started = Instant::now();
    stream
        .write_all(&raw_upload(app.server.address(), "a.bin", &data(1024)))
        .await
        .expect("request");
    let (got, _) = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(
        got.is_empty(),
        "an answer was sent: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        elapsed >= Duration::from_millis(400),
        "closed after {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    let records = journal(&app, 1).await;
    assert_eq!(
        (records[0].status, records[0].fault.as_deref()),
        (None, Some("hang"))
    );
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn hang_without_for_ms_lasts_until_the_client_times_out() {
    let app = with_rule(json!({"id": "stall", "fault": {"kind": "hang"}})).await;
    let _held_open = send_unanswered(&app, data(1024), 1500).await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .expect("client");
    let started = Instant::now();
    let err = try_upload(&client, &app, data(1024), "a.bin", None)
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn a_hung_request_is_journaled_once_the_client_gives_up() {
    let app = with_rule(json!({"id": "stall", "fault": {"kind": "hang"}})).await;
    let stream = send_unanswered(&app, data(1024), 300).await;
    drop(stream); // the client gives up
    let records = journal(&app, 1).await;
    assert_eq!(
        (records[0].status, records[0].fault.as_deref()),
        (None, Some("hang"))
    );
    assert_eq!(records[0].rule.as_deref(), Some("stall"));
    assert!(records[0].upload.is_none());
}

#[tokio::test]
async fn a_hang_on_a_large_upload_also_ends_when_the_client_gives_up() {
    // 4 MiB is far more than the socket buffers hold: the close only gets
    // through because the hang keeps reading (and dropping) the body.
    let app = with_rule(json!({"id": "stall", "fault": {"kind": "hang"}})).await;
    let stream = send_unanswered(&app, data(4 << 20), 300).await;
    drop(stream);
    let records = journal(&app, 1).await;
    assert_eq!(
        (records[0].status, records[0].fault.as_deref()),
        (None, Some("hang"))
    );
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn truncate_gives_the_client_no_complete_answer_and_stores_nothing() {
    let app = with_rule(json!({"id": "half", "fault": {"kind": "truncate"}})).await;
    // The request or the body read fails: a complete answer never arrives.
    let outcome =
        match try_upload(&fresh_connection_client(), &app, data(1024), "a.bin", None).await {
            Ok(resp) => resp
                .bytes()
                .await
                .map(|body| String::from_utf8_lossy(&body).into_owned()),
            Err(err) => Err(err),
        };
    assert!(
        outcome.is_err(),
        "the client got a complete answer: {outcome:?}"
    );
    let records = journal(&app, 1).await;
    assert_eq!(records[0].fault.as_deref(), Some("truncate"));
    assert_eq!(records[0].rule.as_deref(), Some("half"));
    assert!(records[0].upload.is_none());
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn truncate_sends_the_full_content_length_then_half_the_body() {
    let app = with_rule(json!({"id": "half", "fault": {"kind": "truncate"}})).await;
    let mut stream = TcpStream::connect(app.server.address())
        .await
        .expect("connect");
    stream
        .write_all(&raw_upload(app.server.address(), "a.bin", &data(1024)))
        .await
        .expect("request");
    let (got, _) = read_to_close(&mut stream).await;
    let end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no status line and headers in {:?}",
                String::from_utf8_lossy(&got)
            )
        });
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = header(&head, "content-length")
        .expect("content-length")
        .parse()
        .expect("number");
    let body = &got[end + 4..];
    assert!(length > 100, "{head}");
    assert_eq!(body.len(), length / 2, "EOF after half the body");
}

// ------------------------------------------------------------------ Prefer

#[tokio::test]
async fn prefer_code_answers_every_documented_status_with_its_default_envelope() {
    let app = spawn_app().await;
    // Rules are not consulted for a request with `Prefer: code=`.
    app.server
        .add_rule(Rule::respond(418).with_id("teapot"))
        .await
        .expect("rule");
    for (status, code) in DOCUMENTED {
        let prefer = format!("code={status}");
        let resp = app
            .upload_with(data(100), "p.bin", "k", &[("prefer", &prefer)])
            .await;
        let body = envelope(resp, status).await;
        assert_eq!(body["error"]["code"], code, "Prefer: {prefer}");
    }
    assert!(app.server.uploads().await.is_empty());

    let resp = app
        .upload_with(data(100), "p.bin", "k", &[("prefer", "code=200")])
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["processing_status"], "completed");
    assert_eq!(app.server.uploads().await.len(), 1);

    let records = journal(&app, DOCUMENTED.len() + 1).await;
    assert!(records.iter().all(|r| r.rule.is_none()), "{records:#?}");
    assert_eq!(app.server.rules().await[0].matched, 0);
}

// ------------------------------------------------------------- check, watch

#[test]
fn check_reports_a_typo_with_its_position_and_a_hint_and_exits_2() {
    let out = Command::new(bin_path())
        .args(["check", "tests/data/typo-stauts.json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("check runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = r#"tests/data/typo-stauts.json:4:7: rules[0].respond: unknown field "stauts", did you mean "status"?"#;
    assert!(stderr.lines().any(|l| l == expected), "{stderr}");
}

#[test]
fn check_reports_a_phase_too_early_for_its_conditions_and_exits_2() {
    let out = Command::new(bin_path())
        .args(["check", "tests/data/phase-too-early.json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("check runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("tests/data/phase-too-early.json:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("phase \"request\" is too early: match.size"),
        "{stderr}"
    );
}

/// Polls the rules (library) until the first answers with `status`.
async fn first_rule_answers(app: &TestApp, status: u16, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let rules = app.server.rules().await;
        if rules.first().and_then(|r| respond_status(&r.rule)) == Some(status) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn watch_picks_up_an_edit_made_right_after_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.json");
    write_fixture(&path, "watched", 503, "v1");
    let app = spawn_with(|b| b.watch(true).fixtures(&path).expect("fixture")).await;
    write_fixture(&path, "watched", 429, "v2");
    assert!(
        first_rule_answers(&app, 429, Duration::from_secs(1)).await,
        "not reloaded within 1 s"
    );
    envelope(app.upload(data(10), "x.bin").await, 429).await;
}

#[tokio::test]
async fn watch_reloads_an_edit_of_the_same_size_and_mtime() {
    // `cp -p`, `rsync -t` or a coarse file-system clock keep the mtime; the
    // 503 → 429 edit keeps the size.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("rules.json");
    write_fixture(&path, "watched", 503, "v1");
    let mtime = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    let app = spawn_with(|b| b.watch(true).fixtures(&path).expect("fixture")).await;
    envelope(app.upload(data(10), "x.bin").await, 503).await;
    write_fixture(&path, "watched", 429, "v1");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .expect("mtime kept");
    assert!(
        first_rule_answers(&app, 429, Duration::from_secs(1)).await,
        "not reloaded within 1 s"
    );
}

/// `GET /__admin/rules` of the binary: the first rule's `respond.status`.
async fn admin_first_status(client: &reqwest::Client, url: &str) -> Option<u64> {
    let body: Value = client
        .get(format!("{url}/__admin/rules"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["rules"][0]["respond"]["status"].as_u64()
}

async fn admin_until(client: &reqwest::Client, url: &str, status: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if admin_first_status(client, url).await == Some(status) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn binary_upload_status(client: &reqwest::Client, url: &str) -> u16 {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(data(10)).file_name("x.bin"),
    );
    client
        .post(format!("{url}/v2/files/-/uploads"))
        .header("x-api-key", "k")
        .multipart(form)
        .send()
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

#[tokio::test]
async fn watch_reloads_a_changed_fixture_within_a_second_and_keeps_the_rules_on_a_broken_edit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path: PathBuf = dir.path().join("rules.json");
    write_fixture(&path, "watched", 503, "first version");
    let path_str = path.to_str().expect("utf-8 path");
    let mut bin = start_binary(&["--fixtures", path_str, "--watch"], &[]);
    let client = reqwest::Client::new();
    assert_eq!(admin_first_status(&client, &bin.url).await, Some(503));
    assert_eq!(binary_upload_status(&client, &bin.url).await, 503);

    write_fixture(&path, "watched", 429, "second version, a little longer");
    let started = Instant::now();
    let reloaded = admin_until(&client, &bin.url, 429, Duration::from_secs(1)).await;
    assert!(
        reloaded,
        "not reloaded within 1 s (after {:?})",
        started.elapsed()
    );
    assert_eq!(binary_upload_status(&client, &bin.url).await, 429);

    // A broken edit: reported on stderr, the rules in force stay.
    std::fs::write(
        &path,
        "{\n  \"rules\": [\n    {\"respond\": {\n      \"stauts\": 500\n    }}\n  ]\n}\n",
    )
    .expect("broken edit");
    let reported = eventually(Duration::from_secs(3), || {
        let text = bin.stderr_text();
        text.contains(&format!("{path_str}:4:7")) && text.contains("stauts")
    })
    .await;
    assert!(reported, "stderr: {}", bin.stderr_text());
    assert_eq!(admin_first_status(&client, &bin.url).await, Some(429));
    assert_eq!(binary_upload_status(&client, &bin.url).await, 429);

    // Fixed again: reloaded.
    write_fixture(&path, "watched", 409, "third version");
    assert!(
        admin_until(&client, &bin.url, 409, Duration::from_secs(1)).await,
        "not reloaded"
    );
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(10)), Some(0));
}

/// Sends a whole upload on a raw connection and checks that nothing comes
/// back (no answer, no close) for `wait_ms`; returns the still-open stream.
async fn send_unanswered(app: &TestApp, content: Vec<u8>, wait_ms: u64) -> TcpStream {
    let mut stream = TcpStream::connect(app.server.address())
        .await
        .expect("connect");
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.write_all(&raw_upload(app.server.address(), "a.bin", &content)),
    )
    .await
    .expect("the body is read while hanging")
    .expect("request");
    let mut buf = [0u8; 1024];
    let held = tokio::time::timeout(Duration::from_millis(wait_ms), stream.read(&mut buf)).await;
    assert!(
        held.is_err(),
        "the connection was answered or closed: {held:?}"
    );
    stream
}

// ------------------------------------------- waits relative to the client

/// `raw_upload` with an `x-stainless-read-timeout` header, as the SDK sends it.
fn raw_upload_announcing(addr: std::net::SocketAddr, read_timeout: &str) -> Vec<u8> {
    let request = raw_upload(addr, "a.bin", &data(1024));
    let at = request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let mut out = request[..at + 2].to_vec();
    out.extend_from_slice(format!("x-stainless-read-timeout: {read_timeout}\r\n").as_bytes());
    out.extend_from_slice(&request[at + 2..]);
    out
}

#[tokio::test]
async fn past_client_timeout_hangs_until_500_ms_past_the_announced_read_timeout() {
    let app = with_fixture(fixture!("scenarios/past-client-timeout.json")).await;
    let addr = app.server.address();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    stream
        .write_all(&raw_upload_announcing(addr, "0.2"))
        .await
        .expect("request");
    let (got, _) = read_to_close(&mut stream).await;
    let elapsed = started.elapsed();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(
        elapsed >= Duration::from_millis(700),
        "closed after {elapsed:?}, before 0.2 s + 500 ms"
    );
    assert!(elapsed < Duration::from_secs(5), "closed after {elapsed:?}");
    let records = journal(&app, 1).await;
    assert_eq!(
        (records[0].rule.as_deref(), records[0].fault.as_deref()),
        (Some("past-client-timeout"), Some("hang"))
    );
    assert_nothing_on_disk(&app).await;
}

#[tokio::test]
async fn a_relative_delay_follows_each_clients_timeout_or_the_sdk_default() {
    // 60 s (the SDK's default) minus 59.6 s: 400 ms for a client that says nothing.
    let app = with_rule(json!({
        "id": "late", "match": {"path": "*"}, "delay_ms": "read_timeout - 59600", "pass": {},
    }))
    .await;
    let addr = app.server.address();
    for (announced, at_least) in [(Some("1.0"), 0), (Some("60"), 400), (None, 400)] {
        let request = match announced {
            Some(secs) => raw_upload_announcing(addr, secs),
            None => raw_upload(addr, "a.bin", &data(1024)),
        };
        let started = Instant::now();
        let (status, _, _) = raw_exchange(addr, &request).await.expect("answered");
        let elapsed = started.elapsed();
        assert_eq!(status, 200, "{announced:?}");
        assert!(
            elapsed >= Duration::from_millis(at_least),
            "{announced:?}: answered after {elapsed:?}"
        );
        if at_least == 0 {
            // 1 s − 59.6 s is no wait at all, not an error or a huge one.
            assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
        }
    }
    // The same on a route other than the upload.
    let started = Instant::now();
    let resp = app.call(reqwest::Method::GET, "/health").await;
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

// ------------------------------------- fixture paths that are not plain files

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `aymara-mock ARGS` to its end, or kills it after `limit`:
/// (exit code, stderr); `None` as the code when it had to be killed.
fn run_bounded(args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let mut child = Command::new(bin_path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary starts");
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() >= deadline {
            terminate(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (code, stderr)
}

#[test]
fn a_fifo_among_the_fixtures_is_refused_by_check_and_at_start_not_waited_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_fixture(&dir.path().join("a.json"), "a", 503, "fine");
    let fifo = dir.path().join("z.json");
    mkfifo(&fifo);
    let dir_str = dir.path().to_str().expect("utf-8");
    for args in [
        vec!["check", dir_str],
        vec!["check", fifo.to_str().expect("utf-8")],
        vec!["--port", "0", "--fixtures", dir_str],
    ] {
        let (code, stderr) = run_bounded(&args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{args:?} (None: it hung): {stderr}");
        assert!(
            stderr.contains("z.json") && stderr.contains("a FIFO, not a regular file"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_symlink_loop_among_the_fixtures_is_an_error_not_an_endless_walk() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_fixture(&dir.path().join("a.json"), "a", 503, "fine");
    std::os::unix::fs::symlink(".", dir.path().join("loop")).expect("symlink");
    let dir_str = dir.path().to_str().expect("utf-8");
    for args in [
        vec!["check", dir_str],
        vec!["--port", "0", "--fixtures", dir_str],
    ] {
        let (code, stderr) = run_bounded(&args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{args:?} (None: it hung): {stderr}");
        assert!(
            stderr.contains("loop") && stderr.contains("symbolic link loop"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn watch_and_reset_refuse_a_fifo_added_later_and_keep_serving() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_fixture(&dir.path().join("a.json"), "watched", 503, "fine");
    let dir_str = dir.path().to_str().expect("utf-8").to_owned();
    let bin = start_binary(&["--fixtures", &dir_str, "--watch"], &[]);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    assert_eq!(binary_upload_status(&client, &bin.url).await, 503);

    mkfifo(&dir.path().join("z.json"));
    let reported = eventually(Duration::from_secs(5), || {
        bin.stderr_text().contains("a FIFO, not a regular file")
    })
    .await;
    assert!(reported, "stderr: {}", bin.stderr_text());
    // Requests are still served, by the rules in force.
    for _ in 0..3 {
        assert_eq!(binary_upload_status(&client, &bin.url).await, 503);
    }
    // A reset that cannot reload says why, promptly, and changes nothing.
    let resp = client
        .post(format!("{}/__admin/reset", bin.url))
        .send()
        .await
        .expect("reset answered");
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("z.json") && message.contains("FIFO"),
        "{body}"
    );
    assert_eq!(binary_upload_status(&client, &bin.url).await, 503);
}

// --------------------------------------- keep_upload with every action

#[tokio::test]
async fn keep_upload_stores_the_file_before_a_reset_or_a_hang_at_complete() {
    for fault in [
        json!({"kind": "reset"}),
        json!({"kind": "hang", "for_ms": 200}),
    ] {
        // No phase given: a fault that keeps the upload is decided at `complete`.
        let app = with_rule(json!({"id": "kept", "fault": fault, "keep_upload": true})).await;
        assert_eq!(app.server.rules().await[0].rule.phase, Phase::Complete);
        let content = data(300_000);
        let addr = app.server.address();
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(&raw_upload(addr, "kept.bin", &content))
            .await
            .expect("request");
        let (got, _) = read_to_close(&mut stream).await;
        assert!(got.is_empty(), "{fault}: answered");

        let records = journal(&app, 1).await;
        let upload = records[0].upload.as_ref().expect("journaled as stored");
        assert_eq!(upload.sha256, sha256_hex(&content), "{fault}");
        assert_eq!(records[0].status, None, "{fault}");
        assert_eq!(records[0].fault.as_deref(), fault["kind"].as_str());
        let stored = app.server.uploads().await;
        assert_eq!(stored.len(), 1, "{fault}");
        let on_disk = std::fs::read(stored[0].local_file_path.as_ref().expect("local")).unwrap();
        assert_eq!(on_disk, content, "{fault}");
    }
}

#[test]
fn keep_upload_where_no_whole_file_exists_is_refused_when_loaded() {
    for (json, expect) in [
        (
            r#"{"phase": "request", "fault": {"kind": "reset"}, "keep_upload": true}"#,
            "needs phase \"complete\"",
        ),
        (
            r#"{"phase": "upload", "fault": {"kind": "hang"}, "keep_upload": true}"#,
            "needs phase \"complete\"",
        ),
        (
            r#"{"fault": {"kind": "reset", "after_bytes": 10}, "keep_upload": true}"#,
            "cut before it is received whole",
        ),
    ] {
        let err = Rule::from_json(json).expect_err(json).to_string();
        assert!(err.contains(expect), "{json}: {err}");
    }
    // Truncate and respond keep what they can at any phase.
    for json in [
        r#"{"phase": "request", "fault": {"kind": "truncate"}, "keep_upload": true}"#,
        r#"{"phase": "request", "respond": {"status": 500}, "keep_upload": true}"#,
    ] {
        assert!(Rule::from_json(json).is_ok(), "{json}");
    }
}
