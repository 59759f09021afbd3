//! The files API under a hostile client (issue 28): remote fetches bounded
//! in number and time and cancelled by DELETE, reset and shutdown; no fetch
//! of the server itself or of an admin API; long fields and too many
//! pending files refused in the envelope; a DELETE racing a PUT to exactly
//! one outcome; saved records trusted no more than uploads; the routes that
//! serve stored files refusing a foreign `Host`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::helpers::*;

const KEY: &str = "k";

/// A loopback server that accepts connections and never answers: how many
/// are open now, and the most ever open at once.
struct Tarpit {
    port: u16,
    open: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Tarpit {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (o, m) = (Arc::clone(&open), Arc::clone(&most));
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let o = Arc::clone(&o);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            port,
            open,
            most,
            task,
        }
    }

    fn uri(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `check` until it holds, for at most `secs` seconds.
async fn eventually(secs: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Announces `entries`; their uuids.
async fn announce(app: &TestApp, entries: Vec<Value>) -> Vec<String> {
    let resp = app.create(json!({ "files": entries })).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_uuid"].as_str().unwrap().to_owned())
        .collect()
}

async fn remote(app: &TestApp, uris: &[String]) -> Vec<String> {
    announce(app, uris.iter().map(|u| json!({"remote_uri": u})).collect()).await
}

async fn status(app: &TestApp, uuid: &str) -> Value {
    let resp = app.get_api(&format!("/v2/files/{uuid}/status")).await;
    assert_eq!(resp.status(), 200, "{uuid}");
    resp.json().await.unwrap()
}

/// Polls until the file is no longer pending; its status.
async fn settled(app: &TestApp, uuid: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = status(app, uuid).await;
        if status["processing_status"] != "pending" {
            return status;
        }
        assert!(Instant::now() < deadline, "{uuid} still pending: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn error_message(status: &Value) -> &str {
    status["error_message"].as_str().unwrap_or_default()
}

async fn delete(app: &TestApp, uuid: &str) -> u16 {
    app.client
        .delete(app.url(&format!("/v2/files/{uuid}")))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

// ------------------------------------------------------ remote fetches

/// Waits until `tarpit` holds `n` connections, then checks for a moment
/// that no more come (a bound is what does not happen).
async fn holds_exactly(tarpit: &Tarpit, n: usize, what: &str) {
    eventually(10, what, || tarpit.open() == n).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((tarpit.open(), tarpit.most()), (n, n), "{what}");
}

#[tokio::test]
async fn remote_fetches_run_within_the_global_and_per_request_bounds_and_a_deadline() {
    let tarpit = Tarpit::start().await;
    let app = spawn_with(|b| {
        b.max_remote_fetches(3)
            .remote_fetch_timeout(Duration::from_millis(1500))
    })
    .await;
    let uris: Vec<String> = (0..6).map(|i| tarpit.uri(&format!("f{i}.bin"))).collect();
    let mut uuids = remote(&app, &uris).await;
    uuids.extend(remote(&app, &uris).await);
    holds_exactly(&tarpit, 3, "the global bound").await;
    // The first ones end at their deadline, the next ones take their places.
    let first = settled(&app, &uuids[0], 30).await;
    assert_eq!(first["processing_status"], "failed", "{first}");
    assert!(
        error_message(&first).contains("did not finish within 1s 500ms (--remote-fetch-timeout)"),
        "{first}"
    );
    app.server.reset().await.unwrap();
    eventually(10, "every fetch's socket closed", || tarpit.open() == 0).await;

    // One request alone runs at most 4 of its fetches at once.
    let tarpit = Tarpit::start().await;
    let app = spawn_app().await;
    let uris: Vec<String> = (0..10).map(|i| tarpit.uri(&format!("g{i}.bin"))).collect();
    let uuids = remote(&app, &uris).await;
    holds_exactly(&tarpit, 4, "the per-request bound").await;
    for uuid in &uuids {
        assert_eq!(status(&app, uuid).await["processing_status"], "pending");
    }
    app.server.reset().await.unwrap();
    eventually(10, "every fetch's socket closed", || tarpit.open() == 0).await;
}

#[tokio::test]
async fn a_fetch_is_cancelled_by_delete_reset_and_shutdown_which_marks_it_failed() {
    let dir = tempfile::tempdir().unwrap();
    let tarpit = Tarpit::start().await;
    let start = || {
        let path = dir.path().to_owned();
        spawn_with(move |b| b.storage_dir(path))
    };
    let app = start().await;
    let one = remote(&app, &[tarpit.uri("a.bin")]).await;
    eventually(10, "the fetch connected", || tarpit.open() == 1).await;
    assert_eq!(delete(&app, &one[0]).await, 204);
    eventually(10, "DELETE closed the fetch", || tarpit.open() == 0).await;
    assert_eq!(delete(&app, &one[0]).await, 404);

    remote(&app, &[tarpit.uri("b.bin"), tarpit.uri("c.bin")]).await;
    eventually(10, "both fetches connected", || tarpit.open() == 2).await;
    app.server.reset().await.unwrap();
    eventually(10, "reset closed the fetches", || tarpit.open() == 0).await;

    let cut = remote(&app, &[tarpit.uri("d.bin")]).await;
    eventually(10, "the fetch connected", || tarpit.open() == 1).await;
    app.server.shutdown().await;
    eventually(10, "shutdown closed the fetch", || tarpit.open() == 0).await;
    let app = start().await;
    let status = status(&app, &cut[0]).await;
    assert_eq!(status["processing_status"], "failed", "{status}");
    assert!(
        error_message(&status).contains("stopped before its fetch"),
        "{status}"
    );
}

/// Writes a files API record by hand, as an earlier run (or an attacker
/// with write access to the storage dir) would have.
fn plant_record(store: &std::path::Path, record: &Value) {
    let dir = store.join(".files-api");
    std::fs::create_dir_all(&dir).unwrap();
    let uuid = record["file_uuid"].as_str().unwrap();
    std::fs::write(dir.join(format!("{uuid}.json")), record.to_string()).unwrap();
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn pending_record(uuid: &str, name: &str, original: &str, created_at_ms: u64) -> Value {
    // The fields of a record as earlier versions wrote them (no `remote`).
    json!({
        "file_uuid": uuid, "name": name, "workspace": "default",
        "content_type": "application/octet-stream", "workspace_uuid": null,
        "original": original, "created_at_ms": created_at_ms,
        "stored_at_ms": null, "outcome": null, "size": null, "sha256": null,
    })
}

#[tokio::test]
async fn a_remote_file_left_pending_by_a_crash_is_failed_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let uuid = "6f1c1f3e-0000-4000-8000-000000000001";
    let record = pending_record(uuid, "x.bin", "http://127.0.0.1:9/x.bin", now_ms());
    plant_record(dir.path(), &record);
    let path = dir.path().to_owned();
    let app = spawn_with(move |b| b.storage_dir(path)).await;
    let status = status(&app, uuid).await;
    assert_eq!(status["processing_status"], "failed", "{status}");
    assert!(
        error_message(&status).contains("http://127.0.0.1:9/x.bin"),
        "{status}"
    );
}

#[tokio::test]
async fn the_server_never_fetches_its_own_urls_nor_an_admin_api() {
    let app = spawn_app().await;
    let other = spawn_app().await;
    let answer: Value = app
        .upload(data(100_000), "mine.bin")
        .await
        .json()
        .await
        .unwrap();
    let own_file = answer["file_url"].as_str().unwrap().to_owned();
    let own_admin = app.url("/__admin/requests");
    let localhost = own_file.replace("127.0.0.1", "localhost");
    let uuids = remote(&app, &[own_file, own_admin, localhost]).await;
    for uuid in &uuids {
        let status = settled(&app, uuid, 20).await;
        assert_eq!(status["processing_status"], "failed", "{status}");
        assert!(error_message(&status).contains("itself"), "{status}");
    }
    // Another aymara-mock's admin API refuses the fetch.
    let theirs = remote(&app, &[other.url("/__admin/requests")]).await;
    let status = settled(&app, &theirs[0], 20).await;
    assert_eq!(status["processing_status"], "failed", "{status}");
    assert!(error_message(&status).contains("answered 403"), "{status}");
    assert_eq!(app.server.uploads().await.len(), 1, "nothing was copied");
}

#[tokio::test]
async fn a_remote_uri_with_a_bad_port_or_credentials_fails_and_is_not_fetched_elsewhere() {
    let app = spawn_app().await;
    let tarpit = Tarpit::start().await;
    let cases = [
        (
            "http://127.0.0.1:99999/a.bin".to_owned(),
            "not a valid host",
        ),
        (
            "http://127.0.0.1:65536/a.bin".to_owned(),
            "not a valid host",
        ),
        (
            "http://[::1]evil.example/a.bin".to_owned(),
            "not a valid host",
        ),
        (
            format!("http://user:pw@127.0.0.1:{}/a.bin", tarpit.port),
            "credentials",
        ),
    ];
    let uris: Vec<String> = cases.iter().map(|(u, _)| u.clone()).collect();
    let uuids = remote(&app, &uris).await;
    for (uuid, (uri, says)) in uuids.iter().zip(&cases) {
        let status = settled(&app, uuid, 20).await;
        assert_eq!(status["processing_status"], "failed", "{uri}: {status}");
        assert!(error_message(&status).contains(says), "{uri}: {status}");
    }
    assert_eq!(tarpit.most(), 0, "no connection was made");
}

// --------------------------------------------------- announcement limits

async fn envelope(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().is_some(), "{body}");
    body
}

#[tokio::test]
async fn long_fields_are_refused_in_the_envelope_naming_the_limit() {
    let app = spawn_app().await;
    let long = |n: usize| "w".repeat(n);
    let ok = app
        .create(json!({"files": [{}], "workspace_uuid": long(256)}))
        .await;
    assert_eq!(ok.status(), 200);
    for (body, field, limit) in [
        (
            json!({"files": [{}, {}], "workspace_uuid": long(257)}),
            "workspace_uuid",
            "max_workspace_uuid_bytes",
        ),
        (
            json!({"files": [{"content_type": format!("video/{}", long(300))}]}),
            "files[0].content_type",
            "max_content_type_bytes",
        ),
        (
            json!({"files": [{}, {"remote_uri": format!("http://localhost/{}", long(9000))}]}),
            "files[1].remote_uri",
            "max_source_bytes",
        ),
        (
            json!({"files": [{"local_file_path": long(8193)}]}),
            "files[0].local_file_path",
            "max_source_bytes",
        ),
    ] {
        let body = envelope(app.create(body).await, 422).await;
        let details = &body["error"]["details"];
        assert_eq!(details["field"], field, "{body}");
        assert_eq!(details["limit"], limit, "{body}");
        assert!(details["max"].as_u64().is_some(), "{body}");
    }
    let listed: Value = app.get_api("/v2/files").await.json().await.unwrap();
    assert_eq!(listed["count"], 1, "only the first request was taken");
}

#[tokio::test]
async fn announcing_past_the_pending_limit_is_429_and_takes_nothing() {
    let app = spawn_with(|b| b.max_pending_files(5)).await;
    let first = announce(&app, vec![json!({"local_file_path": "a.txt"}); 3]).await;
    let body = envelope(app.create(json!({"files": vec![json!({}); 3]})).await, 429).await;
    assert_eq!(body["error"]["code"], "quota.limit_exceeded");
    let details = &body["error"]["details"];
    assert_eq!(details["limit"], "max_pending_files", "{body}");
    assert_eq!(
        (details["max"].as_u64(), details["pending"].as_u64()),
        (Some(5), Some(3))
    );
    let listed: Value = app.get_api("/v2/files").await.json().await.unwrap();
    assert_eq!(listed["count"], 3, "none of the refused request was taken");
    // A deleted file is no longer pending.
    let detail: Value = app
        .get_api(&format!("/v2/files/{}", first[0]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(detail["processing_status"], "pending");
    assert_eq!(delete(&app, &first[1]).await, 204);
    announce(&app, vec![json!({}); 3]).await;
}

#[tokio::test]
async fn a_content_type_with_spaces_gives_a_url_its_put_can_use() {
    let app = spawn_app().await;
    let resp = app
        .create(json!({"files": [{"local_file_path": "clip.mp4", "content_type": "  video/mp4 "}]}))
        .await;
    let body: Value = resp.json().await.unwrap();
    let upload = &body["files"][0];
    assert_eq!(upload["content_type"], "video/mp4");
    let put = app
        .client
        .put(upload["file_url"].as_str().unwrap())
        .header("content-type", "video/mp4")
        .body(b"mp4".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let bad = app
        .create(json!({"files": [{"content_type": "video/mp4\u{7f}"}]}))
        .await;
    let body = envelope(bad, 422).await;
    assert_eq!(body["error"]["details"]["field"], "files[0].content_type");
}

// ------------------------------------------------------- delete vs commit

#[tokio::test]
async fn a_delete_racing_a_put_has_exactly_one_outcome_and_a_second_delete_is_404() {
    let app = spawn_app().await;
    for round in 0..150 {
        let resp = app
            .create(json!({"files": [{"local_file_path": "race.bin"}]}))
            .await;
        let body: Value = resp.json().await.unwrap();
        let uuid = body["files"][0]["file_uuid"].as_str().unwrap().to_owned();
        let url = body["files"][0]["file_url"].as_str().unwrap().to_owned();
        let put = app.client.put(&url).body(vec![7u8; 2048]).send();
        let (put, deleted) = tokio::join!(put, delete(&app, &uuid));
        let put = put.unwrap().status().as_u16();
        assert_eq!(deleted, 204, "round {round}");
        // Whichever came first, the file is gone everywhere.
        assert_eq!(
            app.get_api(&format!("/v2/files/{uuid}")).await.status(),
            404
        );
        assert!(
            !app.dir().join(&uuid).exists(),
            "round {round}: PUT {put}, DELETE 204, bytes left on disk"
        );
        let listed: Value = app.get_api("/v2/files").await.json().await.unwrap();
        assert_eq!(listed["count"], 0, "round {round}: PUT {put}: {listed}");

        let ids = announce(&app, vec![json!({})]).await;
        let (a, b) = tokio::join!(delete(&app, &ids[0]), delete(&app, &ids[0]));
        let mut both = [a, b];
        both.sort_unstable();
        assert_eq!(both, [204, 404], "round {round}");
    }
}

// ------------------------------------------------------- saved records

#[tokio::test]
async fn saved_records_are_trusted_no_more_than_uploads() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"not for you").unwrap();
    // A record whose name climbs out of the storage dir.
    let climber = "6f1c1f3e-0000-4000-8000-00000000000a";
    std::fs::create_dir_all(store.join(climber)).unwrap();
    let mut record = pending_record(climber, "../../outside/secret.txt", "x", now_ms());
    record["stored_at_ms"] = json!(now_ms());
    record["size"] = json!(11);
    record["sha256"] = json!("00");
    plant_record(&store, &record);
    // A record dated past the year 9999.
    let far = "6f1c1f3e-0000-4000-8000-00000000000b";
    plant_record(
        &store,
        &pending_record(far, "f.bin", "f.bin", 300_000_000_000_000),
    );
    // And one good record.
    let good = "6f1c1f3e-0000-4000-8000-00000000000c";
    plant_record(&store, &pending_record(good, "g.bin", "g.bin", now_ms()));

    let path = store.clone();
    let app = spawn_with(move |b| b.storage_dir(path)).await;
    let leaked = app
        .client
        .get(app.url(&format!(
            "/__files/{climber}/..%2F..%2Foutside%2Fsecret.txt"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(leaked.status(), 404);
    let listed = app.get_api("/v2/files").await;
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["items"][0]["file_uuid"], good);
    assert_eq!(app.get_api(&format!("/v2/files/{far}")).await.status(), 404);
}

#[tokio::test]
async fn a_record_that_is_a_fifo_or_a_link_to_a_device_does_not_stop_the_start() {
    let store = tempfile::tempdir().unwrap();
    let records = store.path().join(".files-api");
    std::fs::create_dir_all(&records).unwrap();
    let fifo = records.join("6f1c1f3e-0000-4000-8000-00000000000d.json");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success());
    std::os::unix::fs::symlink(
        "/dev/zero",
        records.join("6f1c1f3e-0000-4000-8000-00000000000e.json"),
    )
    .unwrap();
    let path = store.path().to_owned();
    let started = tokio::time::timeout(
        Duration::from_secs(20),
        aymara_mock::MockServer::builder().storage_dir(path).start(),
    )
    .await;
    let server = started.expect("started, not hung").expect("started");
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v2/files", server.url()))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 0);
}

// ------------------------------------------------------------ Host check

/// `GET path` with `Host: host` (and an API key); the status.
async fn get_as(app: &TestApp, path: &str, host: &str) -> u16 {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {KEY}\r\nConnection: close\r\n\r\n"
    );
    let (status, _, _) = raw_exchange(app.server.address(), request.as_bytes())
        .await
        .unwrap();
    status
}

#[tokio::test]
async fn the_routes_that_serve_stored_files_refuse_a_foreign_host() {
    for token in [None, Some("t")] {
        let app = spawn_with(move |b| match token {
            Some(t) => b.admin_token(t),
            None => b,
        })
        .await;
        let answer: Value = app
            .upload(b"bytes".to_vec(), "a.txt")
            .await
            .json()
            .await
            .unwrap();
        let uuid = answer["file_uuid"].as_str().unwrap();
        let port = app.server.address().port();
        for path in [
            format!("/__files/{uuid}/a.txt"),
            "/v2/files".to_owned(),
            format!("/v2/files/{uuid}"),
            format!("/v2/files/{uuid}/status"),
        ] {
            assert_eq!(
                get_as(&app, &path, &format!("localhost:{port}")).await,
                200,
                "{path}"
            );
            let foreign = get_as(&app, &path, &format!("evil.example:{port}")).await;
            // With --admin-token any name is taken, as by the admin API.
            let want = if token.is_some() { 200 } else { 403 };
            assert_eq!(foreign, want, "{path} token {token:?}");
        }
        // The frames of a file that is not a video: 404 either way, never its bytes.
        let frame = get_as(&app, &format!("/__frames/{uuid}/0.png"), "evil.example").await;
        assert_eq!(frame, if token.is_some() { 404 } else { 403 });
    }
}
