//! The files API around the upload (`POST /v2/files`, the presigned PUT,
//! list, get, status, frames, delete), through real sockets: what the SDK's
//! `upload_file` helper and a polling client see, and the hostile cases
//! (expired, tampered, wrong-type, oversized and cut PUTs; unknown uuids; bad
//! pages).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::Digest as _;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::helpers::*;

const KEY: &str = "k";

/// An S3 XML error's status and `<Code>`.
async fn s3_error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/xml");
    assert!(resp.headers().contains_key("x-amz-request-id"));
    let body = resp.text().await.unwrap();
    assert!(
        body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"),
        "{body}"
    );
    let code = body
        .split("<Code>")
        .nth(1)
        .and_then(|rest| rest.split("</Code>").next())
        .unwrap()
        .to_owned();
    assert!(
        body.contains("<Message>") && body.contains("<RequestId>"),
        "{body}"
    );
    (status, code)
}

async fn envelope_code(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body
}

/// Every file stored under the storage dir, apart from in-flight parts.
fn stored(app: &TestApp) -> Vec<std::path::PathBuf> {
    app.stored_files()
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == ".partial"))
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ------------------------------------------------------------ the workflow

#[tokio::test]
async fn the_sdk_upload_helper_flow_creates_puts_and_stores_the_bytes() {
    let app = spawn_app().await;
    let upload = app
        .announce(json!({"local_file_path": "/home/me/data.csv"}))
        .await;
    // Every FileUpload field, as the SDK reads them.
    let keys: Vec<&str> = upload
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for key in [
        "file_uuid",
        "file_url",
        "local_file_path",
        "remote_file_path",
        "remote_uri",
        "content_type",
        "processing_status",
    ] {
        assert!(keys.contains(&key), "{key} in {upload}");
    }
    assert_eq!(upload["processing_status"], "pending");
    assert_eq!(upload["content_type"], "text/csv");
    assert_eq!(upload["local_file_path"], "/home/me/data.csv");
    let uuid = upload["file_uuid"].as_str().unwrap().to_owned();
    assert_eq!(
        upload["remote_file_path"],
        format!("uploads/default/{uuid}/data.csv")
    );
    let url = upload["file_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/__uploads/{uuid}/data.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256&",
            app.server.url()
        )),
        "{url}"
    );
    assert!(url.contains("X-Amz-Expires=1800&"), "{url}");
    assert_eq!(app.status_of(&uuid).await, "pending");

    // The helper PUTs with a Content-Type of its own guess: not signed, so accepted.
    let bytes = data(300_000);
    let resp = app.put(url, bytes.clone(), Some("text/csv")).await;
    assert_eq!(resp.status(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", &sha256_hex(&bytes)[..32]));
    assert!(resp.bytes().await.unwrap().is_empty());

    let uploads = app.server.uploads().await;
    assert_eq!(uploads.len(), 1, "GET /__admin/uploads lists the PUT");
    assert_eq!(uploads[0].file_uuid, uuid);
    assert_eq!(uploads[0].sha256, sha256_hex(&bytes));
    let on_disk = std::fs::read(uploads[0].local_file_path.as_ref().unwrap()).unwrap();
    assert_eq!(Sha256::digest(&on_disk), Sha256::digest(&bytes));
    assert_eq!(app.status_of(&uuid).await, "completed");

    let detail = app.json_at(&format!("/v2/files/{uuid}")).await;
    assert_eq!(detail["file_type"], "text");
    assert_eq!(detail["file_size_bytes"], 300_000);
    assert_eq!(
        detail["organization_uuid"],
        "00000000-0000-4000-8000-0000000000a1"
    );
    assert_eq!(
        detail["uploaded_by_uuid"],
        "00000000-0000-4000-8000-0000000000b1"
    );
    assert_eq!(detail["original_file_url"], "/home/me/data.csv");
    assert!(detail["workspace_uuid"].is_null());
    for field in ["created_at", "updated_at"] {
        let text = detail[field].as_str().unwrap();
        assert!(text.ends_with('Z') && text.contains('T'), "{field}: {text}");
    }
    let file_url = detail["file_url"].as_str().unwrap();
    let back = app.client.get(file_url).send().await.unwrap();
    assert_eq!(back.status(), 200);
    assert_eq!(back.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // The journal records the PUT with what it stored.
    let put = app
        .server
        .requests()
        .await
        .into_iter()
        .find(|r| r.method == "PUT")
        .unwrap();
    assert_eq!(put.status, Some(200));
    assert_eq!(put.upload.unwrap().sha256, sha256_hex(&bytes));
    // Its signature is a credential: redacted, the rest of the query kept.
    assert_eq!(put.query["X-Amz-Signature"], aymara_mock::REDACTED);
    assert_eq!(put.query["X-Amz-Expires"], "1800");
}

#[tokio::test]
async fn a_create_answers_each_entry_and_keeps_the_workspace() {
    let app = spawn_app().await;
    let resp = app
        .create(json!({
            "workspace_uuid": "ws-1",
            "files": [
                {"local_file_path": "a.png"},
                {"local_file_path": "b.bin", "content_type": "video/mp4"},
                {"remote_uri": "https://example.com/c.mp4"}
            ]
        }))
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["workspace_uuid"], "ws-1");
    let files = body["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[0]["content_type"], "image/png");
    assert!(files[0]["remote_file_path"]
        .as_str()
        .unwrap()
        .starts_with("uploads/ws-1/"));
    assert_eq!(files[1]["content_type"], "video/mp4");
    // A signed Content-Type is in the URL's signed headers.
    assert!(files[1]["file_url"]
        .as_str()
        .unwrap()
        .contains("X-Amz-SignedHeaders=content-type%3Bhost"));
    assert!(files[0]["file_url"]
        .as_str()
        .unwrap()
        .contains("X-Amz-SignedHeaders=host&"));
    // A remote URI is not fetched (offline): it fails, saying so.
    assert_eq!(files[2]["remote_uri"], "https://example.com/c.mp4");
    assert!(files[2]["file_url"].is_null());
    let remote = files[2]["file_uuid"].as_str().unwrap();
    let status = app.json_at(&format!("/v2/files/{remote}/status")).await;
    assert_eq!(status["processing_status"], "failed");
    assert!(status["error_message"]
        .as_str()
        .unwrap()
        .contains("https://example.com/c.mp4"));

    let listed = app.json_at("/v2/files?workspace_uuid=ws-1").await;
    assert_eq!(listed["count"], 3);
    let listed = app.json_at("/v2/files?workspace_uuid=other").await;
    assert_eq!(listed["count"], 0);
    assert_eq!(listed["items"], json!([]));
}

#[tokio::test]
async fn entries_with_neither_or_both_sources_are_taken_as_the_sdks_types_allow() {
    let app = spawn_app().await;
    // Neither: an upload URL for a file named `upload.bin`, and the PUT stores it.
    let upload = app.announce(json!({})).await;
    let url = upload["file_url"].as_str().unwrap();
    assert!(url.contains("/upload.bin?"), "{url}");
    assert_eq!(upload["processing_status"], "pending");
    let resp = app.put(url, b"bytes".to_vec(), None).await;
    assert_eq!(resp.status(), 200);
    let uuid = upload["file_uuid"].as_str().unwrap();
    let detail = app.json_at(&format!("/v2/files/{uuid}")).await;
    assert_eq!(detail["file_size_bytes"], 5);
    // Both: fetched from remote_uri (not loopback here: failed at once, saying
    // why), under local_file_path's base name; no upload URL.
    let both = app
        .announce(json!({"local_file_path": "dir/clip.mp4", "remote_uri": "https://example.com/x"}))
        .await;
    assert_eq!(both["file_url"], Value::Null);
    assert_eq!(both["content_type"], "video/mp4");
    let uuid = both["file_uuid"].as_str().unwrap();
    assert_eq!(app.status_of(uuid).await, "failed");
}

#[tokio::test]
async fn bad_create_bodies_are_422_in_the_envelope() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({}), "files"),
        (json!({"files": []}), "files"),
        (json!({"files": [7]}), "files[0]"),
        (
            json!({"files": [{"remote_uri": ""}]}),
            "files[0].remote_uri",
        ),
        (
            json!({"files": [{"local_file_path": 1}]}),
            "files[0].local_file_path",
        ),
    ] {
        let body = envelope_code(app.create(body).await, 422).await;
        assert_eq!(body["error"]["code"], "validation.invalid_format");
        assert_eq!(body["error"]["details"]["field"], field);
    }
    let resp = app
        .client
        .post(app.url("/v2/files"))
        .header("x-api-key", KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body = envelope_code(resp, 422).await;
    assert_eq!(body["error"]["details"]["field"], "body");
    assert!(app.json_at("/v2/files").await["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_files_api_needs_a_key_and_takes_prefer_and_rules() {
    let app = spawn_with(|b| b.api_key("good")).await;
    for (method, path) in [
        (Method::GET, "/v2/files"),
        (Method::POST, "/v2/files"),
        (Method::GET, "/v2/files/x"),
        (Method::GET, "/v2/files/x/status"),
        (Method::GET, "/v2/files/x/frames"),
        (Method::DELETE, "/v2/files/x"),
    ] {
        let resp = app.call(method.clone(), path).await;
        let body = envelope_code(resp, 401).await;
        assert_eq!(body["error"]["code"], "auth.invalid_key", "{method} {path}");
    }
    let resp = app
        .client
        .get(app.url("/v2/files/x/status"))
        .header("x-api-key", "good")
        .header("prefer", "code=503")
        .send()
        .await
        .unwrap();
    envelope_code(resp, 503).await;
    app.server
        .add_rule(
            serde_json::from_value(json!({
                "id": "status-down", "match": {"method": "GET", "path": "/v2/files/*/status"},
                "respond": {"status": 500}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let resp = app
        .client
        .get(app.url("/v2/files/abc/status"))
        .header("x-api-key", "good")
        .send()
        .await
        .unwrap();
    envelope_code(resp, 500).await;
    let journal = app.server.requests().await;
    let last = journal.last().unwrap();
    assert_eq!(last.path, "/v2/files/abc/status");
    assert_eq!(last.rule.as_deref(), Some("status-down"));
}

// ------------------------------------------------------- hostile PUTs

/// HMAC-SHA256, as the emulator signs with a `presign_secret`.
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// A PUT URL for `path`, signed with `secret` as if at `unix` (a replica's
/// URL, from the past): the test's own signer, to make an expired URL
/// without waiting.
fn forge(base: &str, secret: &str, path: &str, unix: u64, expires: u64) -> String {
    let date = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix))
        .to_string()
        .replace(['-', ':'], "");
    let message = format!("AWS4-HMAC-SHA256\nPUT\n{path}\n{date}\n{expires}\n");
    let key = Sha256::digest(secret.as_bytes());
    let signature: String = hmac(&key, message.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{base}{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}")
}

#[tokio::test]
async fn an_expired_url_is_access_denied_and_stores_nothing() {
    let app = spawn_with(|b| b.presign_secret("shared")).await;
    let upload = app.announce(json!({"local_file_path": "a.txt"})).await;
    let uuid = upload["file_uuid"].as_str().unwrap();
    let path = format!("/__uploads/{uuid}/a.txt");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Signed two hours ago, valid for one: expired.
    let expired = forge(app.server.url(), "shared", &path, now - 7200, 3600);
    let (status, code) = s3_error(app.put(&expired, b"late".to_vec(), None).await).await;
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    let resp = app.put(&expired, b"late".to_vec(), None).await;
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("<Message>Request has expired</Message>"));
    // The same forgery, still valid: the shared secret is accepted (replicas).
    let fresh = forge(app.server.url(), "shared", &path, now - 60, 3600);
    assert_eq!(app.put(&fresh, b"ok".to_vec(), None).await.status(), 200);
    assert_eq!(app.server.uploads().await.len(), 1);
}

#[tokio::test]
async fn a_tampered_url_does_not_match_the_signature_and_stores_nothing() {
    let app = spawn_app().await;
    let upload = app.announce(json!({"local_file_path": "a.txt"})).await;
    let url = upload["file_url"].as_str().unwrap().to_owned();
    let uuid = upload["file_uuid"].as_str().unwrap();
    let other = app.announce(json!({"local_file_path": "a.txt"})).await;
    let other_uuid = other["file_uuid"].as_str().unwrap();
    let flipped = {
        let last = url.chars().last().unwrap();
        let swap = if last == '0' { '1' } else { '0' };
        format!("{}{swap}", &url[..url.len() - 1])
    };
    for tampered in [
        flipped,
        url.replace(uuid, other_uuid),
        url.replace("/a.txt?", "/b.txt?"),
        url.replace("X-Amz-Expires=1800", "X-Amz-Expires=99999"),
    ] {
        let (status, code) = s3_error(app.put(&tampered, b"evil".to_vec(), None).await).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "SignatureDoesNotMatch"),
            "{tampered}"
        );
    }
    let (status, code) = s3_error(
        app.put(&url.replace("X-Amz-Signature", "X-Nope"), vec![1], None)
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (400, "AuthorizationQueryParametersError")
    );
    assert!(app.server.uploads().await.is_empty());
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));
    assert_eq!(app.status_of(uuid).await, "pending");
}

#[tokio::test]
async fn a_content_type_other_than_the_signed_one_is_refused() {
    let app = spawn_app().await;
    let upload = app
        .announce(json!({"local_file_path": "v.mp4", "content_type": "video/mp4"}))
        .await;
    let url = upload["file_url"].as_str().unwrap();
    for wrong in [Some("video/webm"), None] {
        let (status, code) = s3_error(app.put(url, b"v".to_vec(), wrong).await).await;
        assert_eq!(
            (status, code.as_str()),
            (403, "SignatureDoesNotMatch"),
            "{wrong:?}"
        );
    }
    assert!(app.server.uploads().await.is_empty());
    assert_eq!(
        app.put(url, b"v".to_vec(), Some("video/mp4"))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_put_over_the_size_limit_is_413_and_stores_nothing() {
    let app = spawn_with(|b| b.max_upload_size(1000u64)).await;
    let upload = app.announce(json!({"local_file_path": "big.bin"})).await;
    let url = upload["file_url"].as_str().unwrap();
    let (status, code) = s3_error(app.put(url, data(5000), None).await).await;
    assert_eq!((status, code.as_str()), (413, "EntityTooLarge"));
    // Chunked, with no Content-Length to refuse it early: cut at the limit.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..10).map(|_| Ok(data(500))).collect();
    let resp = app
        .client
        .put(url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let (status, code) = s3_error(resp).await;
    assert_eq!((status, code.as_str()), (413, "EntityTooLarge"));
    assert!(app.server.uploads().await.is_empty());
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));
    assert_eq!(app.put(url, data(1000), None).await.status(), 200);
}

#[tokio::test]
async fn a_put_cut_mid_body_stores_nothing() {
    // (framing header, what is sent before the client goes away): a large
    // and a small Content-Length body (the small one would be kept in memory
    // until it is written), a chunked body without its last chunk, and one
    // cut inside a chunk.
    let small = data(500);
    let cases: [(&str, Vec<u8>); 4] = [
        ("Content-Length: 100000", data(40_000)),
        ("Content-Length: 1000", small),
        (
            "Transfer-Encoding: chunked",
            [b"10\r\n".as_slice(), &[b'y'; 16], b"\r\n"].concat(),
        ),
        (
            "Transfer-Encoding: chunked",
            [b"100\r\n".as_slice(), &[b'z'; 50]].concat(),
        ),
    ];
    let app = spawn_app().await;
    for (n, (framing, sent)) in cases.into_iter().enumerate() {
        let upload = app
            .announce(json!({"local_file_path": format!("cut-{n}.bin")}))
            .await;
        let url = upload["file_url"].as_str().unwrap();
        let uuid = upload["file_uuid"].as_str().unwrap();
        let target = url.strip_prefix(app.server.url()).unwrap();
        let mut stream = tokio::net::TcpStream::connect(app.server.address())
            .await
            .unwrap();
        let head = format!(
            "PUT {target} HTTP/1.1\r\nHost: {}\r\n{framing}\r\n\r\n",
            app.server.address()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&sent).await.unwrap();
        stream.shutdown().await.unwrap();
        drop(stream);
        // The cut request is journaled once the server gave up on it.
        let path = target.split('?').next().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let put = loop {
            let found = app
                .server
                .requests()
                .await
                .into_iter()
                .find(|r| r.method == "PUT" && r.path == path);
            match found {
                Some(put) => break put,
                None if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                None => panic!("case {n} ({framing}): the cut PUT was never journaled"),
            }
        };
        assert!(put.upload.is_none(), "case {n} ({framing})");
        assert!(
            app.server.uploads().await.is_empty(),
            "case {n} ({framing})"
        );
        assert!(stored(&app).is_empty(), "case {n}: {:?}", stored(&app));
        assert_eq!(app.status_of(uuid).await, "pending", "case {n} ({framing})");
    }
}

#[tokio::test]
async fn a_second_put_to_the_same_url_overwrites_as_s3_does() {
    // Room for the stored file and one in flight: the overwritten bytes stop counting.
    let app = spawn_with(|b| b.max_storage(12u64)).await;
    let upload = app.announce(json!({"local_file_path": "o.txt"})).await;
    let url = upload["file_url"].as_str().unwrap();
    let uuid = upload["file_uuid"].as_str().unwrap();
    for bytes in [b"first!", b"again!", b"second"] {
        assert_eq!(app.put(url, bytes.to_vec(), None).await.status(), 200);
    }
    let uploads = app.server.uploads().await;
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].sha256, sha256_hex(b"second"));
    let detail = app.json_at(&format!("/v2/files/{uuid}")).await;
    let back = app
        .client
        .get(detail["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().as_ref(), b"second");
    assert_eq!(app.json_at("/v2/files").await["count"], 1);
    assert_eq!(stored(&app).len(), 1);
}

#[tokio::test]
async fn rules_apply_to_the_put_and_answer_in_s3_xml() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/files-put-slow-down.json"
    );
    let app = spawn_with(|b| b.fixtures(fixture).unwrap()).await;
    let upload = app.announce(json!({"local_file_path": "s.txt"})).await;
    let url = upload["file_url"].as_str().unwrap();
    let (status, code) = s3_error(app.put(url, b"x".to_vec(), None).await).await;
    assert_eq!((status, code.as_str()), (503, "SlowDown"));
    assert!(app.server.uploads().await.is_empty());
    assert_eq!(app.put(url, b"x".to_vec(), None).await.status(), 200);
}

// ------------------------------------------------ status, frames, delete

async fn wait_for_status(app: &TestApp, uuid: &str, want: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let status = app.status_of(uuid).await;
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == want {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{uuid} never became {want}: {seen:?}");
}

#[tokio::test]
async fn a_video_goes_pending_processing_completed_then_has_frames() {
    // Pending for the first second, processing for two more.
    let app = spawn_with(|b| b.video_processing_time(Duration::from_secs(3))).await;
    let upload = app.announce(json!({"local_file_path": "clip.mp4"})).await;
    let uuid = upload["file_uuid"].as_str().unwrap();
    let url = upload["file_url"].as_str().unwrap();
    let put = app.put(url, data(2048), Some("video/mp4")).await;
    assert_eq!(put.status(), 200);
    let stored_at = Instant::now();
    let resp = app.get_api(&format!("/v2/files/{uuid}/frames")).await;
    let body = envelope_code(resp, 409).await;
    assert_eq!(body["error"]["code"], "resource.conflict");
    let seen = wait_for_status(&app, uuid, "completed").await;
    // The status only moves forward; on a machine too busy to poll within
    // the first second, "pending" may be over before it is seen.
    let expected = ["pending", "processing", "completed"];
    let first = expected.iter().position(|s| *s == seen[0]).unwrap();
    assert!(first <= 1, "{seen:?}");
    assert_eq!(seen, expected[first..], "{seen:?}");
    assert!(
        stored_at.elapsed() >= Duration::from_secs(2),
        "completed early"
    );
    let status = app.json_at(&format!("/v2/files/{uuid}/status")).await;
    assert_eq!(
        status["remote_file_path"],
        format!("uploads/default/{uuid}/clip.mp4")
    );
    assert!(status["error_message"].is_null());

    let detail = app.json_at(&format!("/v2/files/{uuid}")).await;
    assert_eq!(detail["file_type"], "video");
    assert_eq!(detail["video_metadata"]["frame_count"], 4);
    let frames = app.json_at(&format!("/v2/files/{uuid}/frames")).await;
    assert_eq!(frames["file_uuid"], uuid);
    assert_eq!(frames["frame_count"], 4);
    let urls = frames["frame_urls"].as_array().unwrap();
    assert_eq!(urls.len(), 4);
    let mut images = Vec::new();
    for url in urls {
        let resp = app.client.get(url.as_str().unwrap()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/png");
        let png = resp.bytes().await.unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        images.push(png);
    }
    assert_ne!(images[0], images[1], "each frame is its own picture");
    let beyond = format!("{}/__frames/{uuid}/4.png", app.server.url());
    assert_eq!(app.client.get(beyond).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_non_video_has_no_frames_and_completes_at_once() {
    let app = spawn_app().await;
    let answer: Value = app
        .upload(b"hello".to_vec(), "h.txt")
        .await
        .json()
        .await
        .unwrap();
    let uuid = answer["file_uuid"].as_str().unwrap();
    // A multipart upload is in the files API too.
    assert_eq!(app.status_of(uuid).await, "completed");
    let listed = app.json_at("/v2/files").await;
    assert_eq!(listed["items"][0]["file_uuid"], uuid);
    assert_eq!(listed["items"][0]["file_size_bytes"], 5);
    let body = envelope_code(app.get_api(&format!("/v2/files/{uuid}/frames")).await, 400).await;
    assert_eq!(body["error"]["details"]["file_type"], "text");
}

#[tokio::test]
async fn a_rule_decides_a_videos_processing_outcome() {
    let fails = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/files-video-fails.json"
    );
    let stuck = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/files-video-stuck.json"
    );
    let app = spawn_with(|b| {
        b.fixtures(fails)
            .unwrap()
            .video_processing_time(Duration::ZERO)
    })
    .await;
    let upload = app.announce(json!({"local_file_path": "bad.mp4"})).await;
    let uuid = upload["file_uuid"].as_str().unwrap();
    assert_eq!(
        app.status_of(uuid).await,
        "pending",
        "no verdict before the bytes"
    );
    app.put(
        upload["file_url"].as_str().unwrap(),
        vec![0; 10],
        Some("video/mp4"),
    )
    .await;
    let status = app.json_at(&format!("/v2/files/{uuid}/status")).await;
    assert_eq!(status["processing_status"], "failed");
    assert_eq!(
        status["error_message"],
        "Video processing failed: the file is not a decodable video."
    );
    assert!(status["remote_file_path"].is_null());
    envelope_code(app.get_api(&format!("/v2/files/{uuid}/frames")).await, 409).await;
    // The multipart upload of a video too.
    let part = reqwest::multipart::Part::bytes(vec![1, 2])
        .file_name("m.mp4")
        .mime_str("video/mp4")
        .unwrap();
    let resp = app
        .client
        .post(app.server.upload_url())
        .header("x-api-key", KEY)
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(
        app.status_of(answer["file_uuid"].as_str().unwrap()).await,
        "failed"
    );
    // A text file is not matched: completed.
    let text = app.announce(json!({"local_file_path": "t.txt"})).await;
    app.put(text["file_url"].as_str().unwrap(), vec![1], None)
        .await;
    assert_eq!(
        app.status_of(text["file_uuid"].as_str().unwrap()).await,
        "completed"
    );

    let app = spawn_with(|b| {
        b.fixtures(stuck)
            .unwrap()
            .video_processing_time(Duration::ZERO)
    })
    .await;
    let upload = app.announce(json!({"local_file_path": "slow.mp4"})).await;
    let uuid = upload["file_uuid"].as_str().unwrap();
    app.put(
        upload["file_url"].as_str().unwrap(),
        vec![0; 10],
        Some("video/mp4"),
    )
    .await;
    assert_eq!(app.status_of(uuid).await, "processing");
}

#[tokio::test]
async fn a_deleted_file_is_gone_from_every_route_and_from_storage() {
    let app = spawn_with(|b| b.video_processing_time(Duration::ZERO)).await;
    let upload = app.announce(json!({"local_file_path": "gone.mp4"})).await;
    let uuid = upload["file_uuid"].as_str().unwrap().to_owned();
    let url = upload["file_url"].as_str().unwrap().to_owned();
    app.put(&url, data(100), Some("video/mp4")).await;
    let detail = app.json_at(&format!("/v2/files/{uuid}")).await;
    let file_url = detail["file_url"].as_str().unwrap().to_owned();
    let frames = app.json_at(&format!("/v2/files/{uuid}/frames")).await;
    let frame_url = frames["frame_urls"][0].as_str().unwrap().to_owned();
    assert_eq!(stored(&app).len(), 1);

    let resp = app.delete_file(&uuid).await;
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    for path in [
        format!("/v2/files/{uuid}"),
        format!("/v2/files/{uuid}/status"),
        format!("/v2/files/{uuid}/frames"),
    ] {
        let body = envelope_code(app.get_api(&path).await, 404).await;
        assert_eq!(body["error"]["code"], "resource.not_found", "{path}");
    }
    assert_eq!(app.json_at("/v2/files").await["count"], 0);
    assert_eq!(
        app.client.get(&file_url).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        app.client.get(&frame_url).send().await.unwrap().status(),
        404
    );
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));
    assert!(app.server.uploads().await.is_empty());
    envelope_code(app.delete_file(&uuid).await, 404).await;
    // Its URL cannot bring it back.
    let (status, code) = s3_error(app.put(&url, data(100), Some("video/mp4")).await).await;
    assert_eq!((status, code.as_str()), (403, "AccessDenied"));
    assert!(stored(&app).is_empty());
}

#[tokio::test]
async fn unknown_uuids_are_404_on_every_route() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/v2/files/nope"),
        (Method::GET, "/v2/files/nope/status"),
        (Method::GET, "/v2/files/nope/frames"),
        (Method::DELETE, "/v2/files/nope"),
        (Method::GET, "/__frames/nope/0.png"),
    ] {
        let resp = app
            .client
            .request(method.clone(), app.url(path))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        let body = envelope_code(resp, 404).await;
        assert_eq!(
            body["error"]["code"], "resource.not_found",
            "{method} {path}"
        );
    }
}

// ------------------------------------------------------------- the list

#[tokio::test]
async fn the_list_pages_filters_and_refuses_bad_parameters() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["a.png", "b.txt", "c.png", "d.pdf", "e.png"] {
        let upload = app.announce(json!({"local_file_path": name})).await;
        ids.push(upload["file_uuid"].as_str().unwrap().to_owned());
    }
    let page = app.json_at("/v2/files?limit=2&offset=1").await;
    assert_eq!(page["count"], 5, "count: every match, all pages");
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["file_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[1].as_str(), ids[2].as_str()]);
    let images = app.json_at("/v2/files?file_type=image").await;
    assert_eq!(images["count"], 3);
    assert_eq!(
        app.json_at("/v2/files?file_type=document").await["count"],
        1
    );
    // A pending file lists without bytes.
    let item = &images["items"][0];
    assert!(item["file_url"].is_null() && item["file_size_bytes"].is_null());
    assert_eq!(item["processing_status"], "pending");
    assert_eq!(app.json_at("/v2/files?offset=99").await["items"], json!([]));
    assert_eq!(app.json_at("/v2/files?limit=100").await["count"], 5);
    for query in [
        "limit=-1",
        "limit=0",
        "limit=100000",
        "limit=abc",
        "offset=abc",
        "offset=-1",
    ] {
        let body = envelope_code(app.get_api(&format!("/v2/files?{query}")).await, 422).await;
        let field = query.split('=').next().unwrap();
        assert_eq!(body["error"]["details"]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn reset_and_clearing_uploads_empty_the_files_api() {
    let app = spawn_app().await;
    let upload = app.announce(json!({"local_file_path": "r.txt"})).await;
    app.put(upload["file_url"].as_str().unwrap(), b"r".to_vec(), None)
        .await;
    app.announce(json!({"local_file_path": "pending.txt"}))
        .await;
    assert_eq!(app.json_at("/v2/files").await["count"], 2);
    assert_eq!(app.server.clear_uploads().await, 1);
    assert_eq!(app.json_at("/v2/files").await["count"], 0);
    app.announce(json!({"local_file_path": "again.txt"})).await;
    app.server.reset().await.unwrap();
    assert_eq!(app.json_at("/v2/files").await["count"], 0);
    assert!(stored(&app).is_empty());
}

// ------------------------------------------------------------ the flags

#[tokio::test]
async fn the_binarys_files_api_flags_and_env_twins_take_effect() {
    let bin = start_binary(
        &[
            "--presign-expiry",
            "2m",
            "--video-processing-time",
            "0s",
            "--organization-uuid",
            "org-1",
            "--user-uuid",
            "user-1",
        ],
        &[("AYMARA_MOCK_PRESIGN_SECRET", "from-env")],
    );
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/v2/files", bin.url))
        .header("x-api-key", KEY)
        .json(&json!({"files": [{"local_file_path": "v.mp4"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upload = &created["files"][0];
    let uuid = upload["file_uuid"].as_str().unwrap();
    assert!(upload["file_url"]
        .as_str()
        .unwrap()
        .contains("X-Amz-Expires=120&"));
    // A URL signed with the secret from the environment is accepted.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = forge(
        &bin.url,
        "from-env",
        &format!("/__uploads/{uuid}/v.mp4"),
        now,
        60,
    );
    let put = client
        .put(url)
        .body(vec![0u8; 10])
        .header("content-type", "video/mp4")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let detail: Value = client
        .get(format!("{}/v2/files/{uuid}", bin.url))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["organization_uuid"], "org-1");
    assert_eq!(detail["uploaded_by_uuid"], "user-1");
    // --video-processing-time 0s: completed at once.
    assert_eq!(detail["processing_status"], "completed");
}

// ------------------------------------------------------------ remote_uri

/// Announces `uri` as a remote file; its uuid.
async fn announce_remote(app: &TestApp, uri: &str) -> String {
    let upload = app.announce(json!({"remote_uri": uri})).await;
    assert_eq!(upload["processing_status"], "pending");
    assert_eq!(upload["remote_uri"], uri);
    upload["file_uuid"].as_str().unwrap().to_owned()
}

/// Polls until the file is no longer pending; its status.
async fn settled(app: &TestApp, uuid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.json_at(&format!("/v2/files/{uuid}/status")).await;
        if status["processing_status"] != "pending" || Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_remote_uri_on_loopback_is_fetched_and_stored_like_an_upload() {
    let source = spawn_app().await;
    let bytes = data(200_000);
    let answer: Value = source
        .upload(bytes.clone(), "remote.txt")
        .await
        .json()
        .await
        .unwrap();
    let uri = answer["file_url"].as_str().unwrap();

    let app = spawn_app().await;
    let uuid = announce_remote(&app, uri).await;
    let status = settled(&app, &uuid).await;
    assert_eq!(status["processing_status"], "completed", "{status}");
    let uploads = app.server.uploads().await;
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].file_uuid, uuid);
    assert_eq!(uploads[0].sha256, sha256_hex(&bytes));
    let detail = app.json_at(&format!("/v2/files/{uuid}")).await;
    assert_eq!(detail["file_size_bytes"], 200_000);
    assert_eq!(detail["original_file_url"], uri);
    assert!(
        detail["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_remote_uri_that_cannot_be_fetched_fails_with_a_clear_message() {
    let app = spawn_with(|b| b.max_upload_size(1000u64)).await;
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = announce_remote(&app, &format!("http://127.0.0.1:{port}/f.bin")).await;
    let source = spawn_app().await;
    let missing = announce_remote(&app, &source.url("/__files/nope/f.bin")).await;
    let big: Value = source
        .upload(data(5000), "big.bin")
        .await
        .json()
        .await
        .unwrap();
    let too_big = announce_remote(&app, big["file_url"].as_str().unwrap()).await;
    for (uuid, says) in [
        (refused, "could not connect"),
        (missing, "answered 404"),
        (too_big, "maximum upload size"),
    ] {
        let status = settled(&app, &uuid).await;
        assert_eq!(status["processing_status"], "failed", "{status}");
        let message = status["error_message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    assert!(app.server.uploads().await.is_empty());
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));
}

#[tokio::test]
async fn only_allowed_hosts_are_fetched() {
    let app = spawn_with(|b| b.allow_remote_host("files.example")).await;
    let upload = app
        .announce(json!({"remote_uri": "http://elsewhere.example/a.mp4"}))
        .await;
    let status = app
        .json_at(&format!(
            "/v2/files/{}/status",
            upload["file_uuid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status["processing_status"], "failed");
    let message = status["error_message"].as_str().unwrap();
    assert!(
        message.contains("not allowed") && message.contains("files.example"),
        "{message}"
    );
}

// ------------------------------------------------------- object storage

#[tokio::test]
async fn a_presigned_put_lands_in_an_object_store_overwrites_and_is_deleted() {
    use aymara_mock::object_store::memory::InMemory;
    use aymara_mock::object_store::path::Path;
    use aymara_mock::object_store::{ObjectStore, ObjectStoreExt};
    use futures_util::TryStreamExt;

    let memory = std::sync::Arc::new(InMemory::new());
    let store: std::sync::Arc<dyn ObjectStore> = memory.clone();
    let app = spawn_with(|b| b.object_store(store, "team-bucket", "run-1")).await;
    let upload = app
        .announce(json!({"local_file_path": "v.mp4", "content_type": "video/mp4"}))
        .await;
    let uuid = upload["file_uuid"].as_str().unwrap().to_owned();
    let key = upload["remote_file_path"].as_str().unwrap().to_owned();
    assert!(key.starts_with("run-1/uploads/default/"), "{key}");
    let url = upload["file_url"].as_str().unwrap();
    // Large enough for the store's multipart upload.
    let first = data(9 * 1024 * 1024);
    assert_eq!(app.put(url, first, Some("video/mp4")).await.status(), 200);
    assert_eq!(
        app.put(url, b"small now".to_vec(), Some("video/mp4"))
            .await
            .status(),
        200
    );
    let got = memory.get(&Path::parse(&key).unwrap()).await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"small now");
    assert_eq!(app.server.uploads().await.len(), 1);

    assert_eq!(app.delete_file(&uuid).await.status(), 204);
    let keys: Vec<String> = memory
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert!(!keys.contains(&key), "{keys:?}");
}

#[tokio::test]
async fn replicas_sharing_an_object_store_see_each_others_files() {
    use aymara_mock::object_store::memory::InMemory;
    use aymara_mock::object_store::ObjectStore;

    let memory = std::sync::Arc::new(InMemory::new());
    let store = || -> std::sync::Arc<dyn ObjectStore> { memory.clone() };
    let a = spawn_with(|b| {
        b.object_store(store(), "bucket", "shared")
            .presign_secret("s")
    })
    .await;
    let b = spawn_with(|b| {
        b.object_store(store(), "bucket", "shared")
            .presign_secret("s")
    })
    .await;
    let created = a
        .create(json!({"files": [{"local_file_path": "r.png"}], "workspace_uuid": "ws"}))
        .await;
    let upload = created.json::<Value>().await.unwrap()["files"][0].clone();
    let uuid = upload["file_uuid"].as_str().unwrap();
    assert_eq!(
        a.put(upload["file_url"].as_str().unwrap(), b"png!".to_vec(), None)
            .await
            .status(),
        200
    );

    let detail = b.json_at(&format!("/v2/files/{uuid}")).await;
    assert_eq!(detail["file_size_bytes"], 4);
    assert_eq!(detail["file_type"], "image");
    assert_eq!(
        detail["remote_file_path"],
        format!("shared/uploads/ws/{uuid}/r.png")
    );
    assert_eq!(b.status_of(uuid).await, "completed");
    let back = b
        .client
        .get(detail["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().as_ref(), b"png!");
    envelope_code(
        b.get_api("/v2/files/00000000-0000-4000-8000-000000000000")
            .await,
        404,
    )
    .await;
}

// ------------------------------------------------------------ restarts

#[tokio::test]
async fn the_files_api_survives_a_restart_in_a_chosen_storage_dir() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let path = dir.path().to_owned();
        spawn_with(move |b| b.storage_dir(path).presign_secret("laptop"))
    };
    let app = start().await;
    let stored_one = app.announce(json!({"local_file_path": "kept.txt"})).await;
    let kept = stored_one["file_uuid"].as_str().unwrap().to_owned();
    let kept_url = stored_one["file_url"]
        .as_str()
        .unwrap()
        .replace(app.server.url(), "");
    app.put(
        stored_one["file_url"].as_str().unwrap(),
        b"kept bytes".to_vec(),
        None,
    )
    .await;
    let pending = app.announce(json!({"local_file_path": "later.png"})).await;
    let later_url = pending["file_url"]
        .as_str()
        .unwrap()
        .replace(app.server.url(), "");
    let answer: Value = app
        .upload(b"multipart".to_vec(), "m.txt")
        .await
        .json()
        .await
        .unwrap();
    let multipart = answer["file_uuid"].as_str().unwrap().to_owned();
    let before = app.json_at(&format!("/v2/files/{kept}")).await;
    app.server.shutdown().await;

    let app = start().await;
    let listed = app.json_at("/v2/files").await;
    assert_eq!(listed["count"], 3, "{listed}");
    let after = app.json_at(&format!("/v2/files/{kept}")).await;
    assert_eq!(after["created_at"], before["created_at"]);
    assert_eq!(after["file_size_bytes"], 10);
    let back = app
        .client
        .get(after["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().as_ref(), b"kept bytes");
    assert_eq!(app.status_of(&multipart).await, "completed");
    assert_eq!(app.server.uploads().await.len(), 2);
    // The pending file's URL (same secret) still takes its bytes.
    let later = pending["file_uuid"].as_str().unwrap();
    assert_eq!(app.status_of(later).await, "pending");
    let url = format!("{}{later_url}", app.server.url());
    assert_eq!(app.put(&url, b"png".to_vec(), None).await.status(), 200);
    assert_eq!(app.delete_file(&kept).await.status(), 204);
    app.server.shutdown().await;

    let app = start().await;
    assert_eq!(app.json_at("/v2/files").await["count"], 2);
    assert_eq!(app.status_of(later).await, "completed");
    envelope_code(app.get_api(&format!("/v2/files/{kept}")).await, 404).await;
    // The deleted file's URL verifies (same secret), but its tombstone came
    // back too: it cannot bring the file back.
    let url = format!("{}{kept_url}", app.server.url());
    let refused = app.put(&url, b"again".to_vec(), None).await;
    assert_eq!(s3_error(refused).await, (403, "AccessDenied".to_owned()));
    assert_eq!(app.server.uploads().await.len(), 2);
    envelope_code(app.get_api(&format!("/v2/files/{kept}")).await, 404).await;
    app.server.reset().await.unwrap();
    app.server.shutdown().await;
    let app = start().await;
    assert_eq!(app.json_at("/v2/files").await["count"], 0);
    // Reset cleared the tombstones too: the URL is now one of a file this
    // process does not know, which it takes as S3 would.
    let url = format!("{}{kept_url}", app.server.url());
    assert_eq!(app.put(&url, b"anew".to_vec(), None).await.status(), 200);
    assert_eq!(app.server.uploads().await.len(), 1);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `Content-MD5`: the base64 of the MD5.
fn content_md5(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(bytes))
}

/// `bytes` as a body of 1,000-byte chunks, sent without a length.
fn chunked_body(bytes: &[u8]) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(1000).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn with_content_md5_the_etag_is_the_md5_checked_as_s3_checks_it() {
    let app = spawn_app().await;
    // Inline (small), on the MD5 thread (large), and chunked (no length).
    for (bytes, as_chunks) in [
        (b"hello".to_vec(), false),
        (data(2_000_000), false),
        (data(5_000), true),
    ] {
        let upload = app.announce(json!({"local_file_path": "e.bin"})).await;
        let url = upload["file_url"].as_str().unwrap();
        let body = if as_chunks {
            chunked_body(&bytes)
        } else {
            reqwest::Body::from(bytes.clone())
        };
        let resp = app
            .client
            .put(url)
            .header("content-md5", content_md5(&bytes))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["etag"].to_str().unwrap(),
            format!("\"{}\"", md5_hex(&bytes)),
            "{} bytes, chunked: {as_chunks}",
            bytes.len()
        );
    }
    // A Content-MD5 that does not match: 400 BadDigest, nothing stored;
    // one that is no MD5 at all: 400 InvalidDigest.
    let before = stored(&app).len();
    for (md5, code) in [
        (content_md5(b"other"), "BadDigest"),
        ("nope".into(), "InvalidDigest"),
    ] {
        let upload = app.announce(json!({"local_file_path": "bad.bin"})).await;
        let url = upload["file_url"].as_str().unwrap();
        let resp = app
            .client
            .put(url)
            .header("content-md5", md5)
            .body(data(300_000))
            .send()
            .await
            .unwrap();
        assert_eq!(s3_error(resp).await, (400, code.to_owned()));
        let uuid = upload["file_uuid"].as_str().unwrap();
        assert_eq!(app.status_of(uuid).await, "pending");
    }
    assert_eq!(stored(&app).len(), before);
}

#[tokio::test]
async fn without_content_md5_the_etag_is_the_start_of_the_sha256() {
    let app = spawn_app().await;
    for (bytes, as_chunks) in [
        (b"hello".to_vec(), false),
        (Vec::new(), false),
        (data(2_000_000), false),
        (data(5_000), true),
    ] {
        let upload = app.announce(json!({"local_file_path": "e.bin"})).await;
        let url = upload["file_url"].as_str().unwrap();
        let body = if as_chunks {
            chunked_body(&bytes)
        } else {
            reqwest::Body::from(bytes.clone())
        };
        let resp = app.client.put(url).body(body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["etag"].to_str().unwrap(),
            format!("\"{}\"", &sha256_hex(&bytes)[..32]),
            "{} bytes, chunked: {as_chunks}",
            bytes.len()
        );
    }
    assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
}

#[tokio::test]
async fn network_faults_apply_to_the_put_at_their_phases() {
    let app = spawn_app().await;
    let rule = |v: Value| serde_json::from_value::<aymara_mock::Rule>(v).unwrap();
    app.server
        .add_rules(vec![
            rule(
                json!({"id": "cut", "match": {"route": "put", "filename": "cut.bin"},
                        "fault": {"kind": "reset", "after_bytes": 1000}}),
            ),
            rule(
                json!({"id": "kept-then-reset", "match": {"route": "put", "filename": "kept.bin"},
                        "phase": "complete", "keep_upload": true, "fault": {"kind": "reset"}}),
            ),
        ])
        .await
        .unwrap();
    let cut = app.announce(json!({"local_file_path": "cut.bin"})).await;
    let sent = app
        .client
        .put(cut["file_url"].as_str().unwrap())
        .body(data(100_000))
        .send()
        .await;
    assert!(sent.is_err(), "reset, no answer: {sent:?}");
    assert!(app.server.uploads().await.is_empty());
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));

    let kept = app.announce(json!({"local_file_path": "kept.bin"})).await;
    let bytes = data(3000);
    let sent = app
        .client
        .put(kept["file_url"].as_str().unwrap())
        .body(bytes.clone())
        .send()
        .await;
    assert!(sent.is_err(), "reset after storing: {sent:?}");
    let uploads = app.server.uploads().await;
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].sha256, sha256_hex(&bytes));
    assert_eq!(
        app.status_of(kept["file_uuid"].as_str().unwrap()).await,
        "completed"
    );
    let rules: Vec<_> = app
        .server
        .requests()
        .await
        .into_iter()
        .filter_map(|r| r.rule)
        .collect();
    assert_eq!(rules, ["cut", "kept-then-reset"]);
}

#[tokio::test]
async fn a_file_deleted_while_its_put_streams_stays_deleted() {
    let app = spawn_app().await;
    let upload = app.announce(json!({"local_file_path": "racing.bin"})).await;
    let uuid = upload["file_uuid"].as_str().unwrap();
    let target = upload["file_url"]
        .as_str()
        .unwrap()
        .strip_prefix(app.server.url())
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.server.address())
        .await
        .unwrap();
    let total = 4 * 1024 * 1024;
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {total}\r\n\r\n",
        app.server.address()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&data(2 * 1024 * 1024)).await.unwrap();
    // The bytes are arriving once a partial file exists.
    let partial = app.dir().join(".partial");
    let deadline = Instant::now() + Duration::from_secs(5);
    while files_under(&partial).is_empty() {
        assert!(Instant::now() < deadline, "no partial file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.delete_file(uuid).await.status(), 204);
    stream
        .write_all(&data(total - 2 * 1024 * 1024))
        .await
        .unwrap();
    let (status, _head, body) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("<Code>AccessDenied</Code>"));
    assert!(app.server.uploads().await.is_empty());
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));
    envelope_code(app.get_api(&format!("/v2/files/{uuid}")).await, 404).await;
}

#[tokio::test]
async fn a_stalled_put_times_out_in_s3_xml_and_a_full_quota_stores_nothing() {
    let app = spawn_with(|b| {
        b.body_timeout(Duration::from_millis(300))
            .max_storage(100u64)
    })
    .await;
    let upload = app.announce(json!({"local_file_path": "slow.bin"})).await;
    let target = upload["file_url"]
        .as_str()
        .unwrap()
        .strip_prefix(app.server.url())
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.server.address())
        .await
        .unwrap();
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: 50\r\n\r\n",
        app.server.address()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[1u8; 10]).await.unwrap();
    // Then nothing: the server gives up after --body-timeout.
    let (status, head, body) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 408, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("<Code>RequestTimeout</Code>"));
    assert!(app.server.uploads().await.is_empty());

    let (status, code) = s3_error(
        app.put(upload["file_url"].as_str().unwrap(), data(500), None)
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (500, "InternalError"));
    assert!(app.server.uploads().await.is_empty());
    assert!(stored(&app).is_empty(), "{:?}", stored(&app));
}
