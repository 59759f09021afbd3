//! The emulated endpoint through the library: round trips, names, the error
//! envelope, limits, auth, keep-alive and concurrency.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// The 200 answer's fields, in the order the real API sends them: the
/// upstream page's four, then the three the SDK also reads.
const FIELDS: [&str; 7] = [
    "local_file_path",
    "file_uuid",
    "file_url",
    "remote_file_path",
    "content_type",
    "processing_status",
    "remote_uri",
];

async fn json(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Asserts the envelope of an error answer and returns its `error.code`.
async fn error_code(resp: reqwest::Response, status: u16) -> (String, Value) {
    assert_eq!(resp.status().as_u16(), status);
    let request_id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id header");
    let body = json(resp).await;
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert_eq!(body["error"]["request_id"], request_id.as_str(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body,
    )
}

#[tokio::test]
async fn round_trips_are_byte_exact_for_0_1_1mib_and_64mib() {
    let app = spawn_app().await;
    for size in [0usize, 1, 1 << 20, 64 << 20] {
        let content = data(size);
        let resp = app
            .client
            .post(app.server.upload_url() + "?workspace_uuid=ws1")
            .header("x-api-key", "k")
            .multipart(
                reqwest::multipart::Form::new().part(
                    "file",
                    reqwest::multipart::Part::bytes(content.clone())
                        .file_name("video.mp4")
                        .mime_str("video/mp4")
                        .unwrap(),
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "size {size}");
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        // serde_json keeps the keys in the order they came (preserve_order).
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, FIELDS, "{text}");
        let uuid = body["file_uuid"].as_str().unwrap();
        assert_eq!(uuid::Uuid::parse_str(uuid).unwrap().get_version_num(), 4);
        assert_eq!(body["processing_status"], "completed");
        assert_eq!(body["content_type"], "video/mp4");
        assert_eq!(
            body["remote_file_path"],
            format!("uploads/ws1/{uuid}/video.mp4")
        );
        assert_eq!(
            body["remote_uri"],
            format!("s3://aymara-mock/uploads/ws1/{uuid}/video.mp4")
        );
        assert_eq!(
            body["file_url"],
            format!("{}/__files/{uuid}/video.mp4", app.server.url())
        );
        let path = std::path::PathBuf::from(body["local_file_path"].as_str().unwrap());
        assert!(path.is_absolute());
        assert!(path.starts_with(app.dir()));
        assert_eq!(
            sha256_hex(&std::fs::read(&path).unwrap()),
            sha256_hex(&content),
            "size {size}"
        );
        let served = app
            .client
            .get(body["file_url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200);
        assert_eq!(served.headers()["content-type"], "video/mp4");
        assert_eq!(
            served.headers()["content-length"],
            size.to_string().as_str()
        );
        assert_eq!(
            sha256_hex(&served.bytes().await.unwrap()),
            sha256_hex(&content)
        );
    }
    let uploads = app.server.uploads().await;
    assert_eq!(uploads.len(), 4);
    assert_eq!(uploads[3].sha256, sha256_hex(&data(64 << 20)));
    // Nothing is left half-written.
    assert!(files_under(&app.dir().join(".partial")).is_empty());
}

#[tokio::test]
async fn file_url_answers_head_and_ranges() {
    let app = spawn_app().await;
    let content = data(1000);
    let body = json(app.upload(content.clone(), "notes.txt").await).await;
    assert_eq!(body["content_type"], "text/plain");
    let url = body["file_url"].as_str().unwrap();
    let head = app.client.head(url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "1000");
    assert_eq!(head.headers()["accept-ranges"], "bytes");
    let part = app
        .client
        .get(url)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &content[10..20]);
    let bad = app
        .client
        .get(url)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);
    assert_eq!(bad.headers()["content-range"], "bytes */1000");
    // Wrong name, unknown uuid, traversal attempts: 404, never a file outside storage.
    let uuid = body["file_uuid"].as_str().unwrap();
    for path in [
        format!("/__files/{uuid}/other.txt"),
        "/__files/00000000-0000-4000-8000-000000000000/notes.txt".to_owned(),
        "/__files/..%2F..%2Fetc%2Fpasswd/x".to_owned(),
        "/__files/%2E%2E/%2E%2E%2Fetc%2Fpasswd".to_owned(),
    ] {
        let resp = app.call(reqwest::Method::GET, &path).await;
        let (code, _) = error_code(resp, 404).await;
        assert_eq!(code, "resource.not_found", "{path}");
    }
}

#[tokio::test]
async fn content_type_is_guessed_from_the_extension_when_the_part_has_none() {
    let app = spawn_app().await;
    let raw = multipart_body("photo.png", None, b"png-bytes");
    let resp = app.post_multipart(raw).await;
    assert_eq!(json(resp).await["content_type"], "image/png");
}

async fn upload_raw_name(app: &TestApp, filename: &str) -> Value {
    let raw = multipart_body(filename, Some("text/plain"), b"secret");
    let resp = app.post_multipart(raw).await;
    assert_eq!(resp.status(), 200, "{filename:?}");
    json(resp).await
}

#[tokio::test]
async fn hostile_names_are_stored_inside_the_storage_dir_under_a_safe_base_name() {
    let app = spawn_app().await;
    let long = format!("{}.mp4", "a".repeat(1000));
    let cases: [(&str, &str); 5] = [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\win.ini", "win.ini"),
        ("bad\tname.txt", "badname.txt"),
        ("..", "upload.bin"),
        (&long, ""),
    ];
    for (raw, expected) in cases {
        let body = upload_raw_name(&app, raw).await;
        let path = std::path::PathBuf::from(body["local_file_path"].as_str().unwrap());
        let stored = std::fs::canonicalize(&path).unwrap();
        assert!(
            stored.starts_with(app.dir()),
            "{raw:?} escaped to {stored:?}"
        );
        assert_eq!(std::fs::read(&stored).unwrap(), b"secret");
        let name = path.file_name().unwrap().to_str().unwrap();
        if expected.is_empty() {
            assert_eq!(name.len(), 255);
            assert!(name.ends_with(".mp4"));
        } else {
            assert_eq!(name, expected, "{raw:?}");
        }
        assert!(body["remote_file_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{name}")));
    }
    assert!(!std::path::Path::new("/etc/passwd").starts_with(app.dir()));
}

#[tokio::test]
async fn c0_and_c1_controls_in_an_encoded_filename_are_removed() {
    let app = spawn_app().await;
    let mut raw = Vec::new();
    raw.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
    raw.extend_from_slice(
        b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''..%2F..%2Fa%01b%0Ac%C2%85d%7F.txt\r\n\r\nxyz",
    );
    raw.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let resp = app.post_multipart(raw).await;
    let body = json(resp).await;
    let path = std::path::PathBuf::from(body["local_file_path"].as_str().unwrap());
    assert_eq!(path.file_name().unwrap(), "abcd.txt");
    assert_eq!(path.parent().unwrap().parent().unwrap(), app.dir());
}

#[tokio::test]
async fn names_in_file_url_are_percent_encoded() {
    let app = spawn_app().await;
    let body = json(app.upload(b"x".to_vec(), "my vidéo #1.mp4").await).await;
    let url = body["file_url"].as_str().unwrap();
    assert!(url.ends_with("/my%20vid%C3%A9o%20%231.mp4"), "{url}");
    let served = app.client.get(url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), b"x");
}

#[tokio::test]
async fn missing_credentials_get_401_in_the_envelope() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.server.upload_url())
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1]).file_name("a"),
        ))
        .send()
        .await
        .unwrap();
    let (code, _) = error_code(resp, 401).await;
    assert_eq!(code, "auth.invalid_key");
    assert!(app.stored_files().is_empty());
}

#[tokio::test]
async fn configured_keys_and_tokens_are_the_only_ones_accepted() {
    let app = spawn_with(|b| b.api_key("good").bearer_token("tok")).await;
    assert_eq!(
        app.upload_with(vec![1], "a", "good", &[]).await.status(),
        200
    );
    let (code, _) = error_code(app.upload_with(vec![1], "a", "bad", &[]).await, 401).await;
    assert_eq!(code, "auth.invalid_key");
    let resp = app.upload_bearer(Some("tok")).await;
    assert_eq!(resp.status(), 200);
    let resp = app.upload_bearer(Some("nope")).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn no_auth_checks_nothing() {
    let app = spawn_with(|b| b.no_auth(true)).await;
    let resp = app.upload_bearer(None).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_client_request_id_is_echoed_in_header_and_envelope() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.server.upload_url())
        .header("x-request-id", "req_client_123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req_client_123");
    let (_, body) = error_code(resp, 401).await;
    assert_eq!(body["request_id"], "req_client_123");
    let health = app.call(reqwest::Method::GET, "/health").await;
    assert!(health.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
}

#[tokio::test]
async fn bodies_that_are_not_multipart_get_422_naming_the_field() {
    let app = spawn_app().await;
    let resp = app
        .client
        .post(app.server.upload_url())
        .header("x-api-key", "k")
        .json(&serde_json::json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    let (code, body) = error_code(resp, 422).await;
    assert_eq!(code, "validation.invalid_format");
    assert_eq!(body["error"]["details"]["field"], "content-type");
}

#[tokio::test]
async fn a_multipart_body_without_a_file_part_gets_422_naming_file() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new().text("other", "value");
    let resp = app
        .client
        .post(app.server.upload_url())
        .header("x-api-key", "k")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (code, body) = error_code(resp, 422).await;
    assert_eq!(code, "validation.invalid_format");
    assert_eq!(body["error"]["details"]["field"], "file");
    assert!(app.server.uploads().await.is_empty());
}

#[tokio::test]
async fn missing_or_invalid_boundaries_get_400() {
    let app = spawn_app().await;
    for content_type in ["multipart/form-data", "multipart/form-data; boundary="] {
        let resp = app
            .client
            .post(app.server.upload_url())
            .header("x-api-key", "k")
            .header("content-type", content_type)
            .body("--x\r\n")
            .send()
            .await
            .unwrap();
        let (code, _) = error_code(resp, 400).await;
        assert_eq!(code, "validation.invalid_request", "{content_type}");
    }
    // A boundary that never appears in the body.
    let resp = app
        .client
        .post(app.server.upload_url())
        .header("x-api-key", "k")
        .header("content-type", "multipart/form-data; boundary=other")
        .body(multipart_body("a.txt", None, b"abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(app.stored_files().is_empty());
}

#[tokio::test]
async fn a_body_ending_mid_part_leaves_no_file() {
    let app = spawn_app().await;
    let full = multipart_body("a.bin", None, &data(300_000));
    let cut = &full[..200_000];
    // Content-Length matches what is sent: the body ends cleanly mid-part.
    let mut request = upload_head(app.server.address(), cut.len(), "").into_bytes();
    request.extend_from_slice(cut);
    let (status, _, body) = raw_exchange(app.server.address(), &request).await.unwrap();
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "validation.invalid_request");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert!(app.server.uploads().await.is_empty());
}

#[tokio::test]
async fn a_client_that_disconnects_mid_upload_leaves_nothing_on_disk() {
    let app = spawn_app().await;
    let full = multipart_body("big.bin", None, &data(4 << 20));
    {
        let mut stream = tokio::net::TcpStream::connect(app.server.address())
            .await
            .unwrap();
        use tokio::io::AsyncWriteExt;
        stream
            .write_all(upload_head(app.server.address(), full.len(), "").as_bytes())
            .await
            .unwrap();
        stream.write_all(&full[..3 << 20]).await.unwrap();
        stream.flush().await.unwrap();
        // Wait until the server has begun storing the file, then hang up.
        assert!(eventually(Duration::from_secs(5), || !app.stored_files().is_empty()).await);
    }
    assert!(
        eventually(Duration::from_secs(5), || app.stored_files().is_empty()).await,
        "left behind: {:?}",
        app.stored_files()
    );
    // The journal entry is written once the handler has cleaned up.
    let mut journal = app.server.requests().await;
    for _ in 0..250 {
        if !journal.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        journal = app.server.requests().await;
    }
    assert_eq!(journal.len(), 1);
    assert_eq!(journal[0].status, None, "no answer was sent");
    assert!(app.server.uploads().await.is_empty());
}

#[tokio::test]
async fn uploads_over_the_limit_get_413_and_leave_nothing() {
    let app = spawn_with(|b| b.max_upload_size(1024 * 1024u64)).await;
    // Exactly the limit passes.
    assert_eq!(app.upload(data(1 << 20), "ok.bin").await.status(), 200);
    // One byte more does not.
    let resp = app.upload(data((1 << 20) + 1), "big.bin").await;
    assert_eq!(resp.headers()["connection"], "close");
    let (code, _) = error_code(resp, 413).await;
    assert_eq!(code, "validation.invalid_request");
    assert_eq!(app.server.uploads().await.len(), 1);
    assert_eq!(app.stored_files().len(), 1, "{:?}", app.stored_files());
}

#[tokio::test]
async fn an_oversized_stream_is_stopped_when_the_limit_is_crossed() {
    // 40 MiB sent in full by a raw client against a 1 MiB limit: the server
    // answers 413 and reads (discards) the rest so the client gets the answer.
    let app = spawn_with(|b| b.max_upload_size(1024 * 1024u64)).await;
    let body = multipart_body("huge.bin", None, &data(40 << 20));
    let mut request = upload_head(app.server.address(), body.len(), "").into_bytes();
    request.extend_from_slice(&body);
    let (status, head, _) = raw_exchange(app.server.address(), &request).await.unwrap();
    assert_eq!(status, 413);
    assert_eq!(header(&head, "connection").as_deref(), Some("close"));
    assert!(app.stored_files().is_empty());
    let journal = app.server.requests().await;
    assert_eq!(journal[0].status, Some(413));
}

#[tokio::test]
async fn a_refused_20mib_body_sent_without_expect_still_gets_its_401() {
    let app = spawn_with(|b| b.api_key("good")).await;
    let body = multipart_body("big.bin", None, &data(20 << 20));
    let head = format!(
        "POST /v2/files/-/uploads HTTP/1.1\r\nHost: x\r\nx-api-key: wrong\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let (status, _, body) = raw_exchange(app.server.address(), &request)
        .await
        .expect("an answer, not a reset");
    assert_eq!(status, 401);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "auth.invalid_key");
}

#[tokio::test]
async fn unknown_paths_get_404_and_wrong_methods_405_with_allow() {
    let app = spawn_app().await;
    let (code, _) = error_code(app.call(reqwest::Method::GET, "/v1/nothing").await, 404).await;
    assert_eq!(code, "resource.not_found");
    let resp = app
        .client
        .get(app.server.upload_url())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    error_code(resp, 405).await;
    let resp = app.call(reqwest::Method::DELETE, "/health").await;
    assert_eq!(resp.headers()["allow"], "GET, HEAD");
    error_code(resp, 405).await;
}

#[tokio::test]
async fn health_answers_ok_without_credentials() {
    let app = spawn_app().await;
    for path in ["/health", "/health/"] {
        let resp = app.call(reqwest::Method::GET, path).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(json(resp).await, serde_json::json!({"status": "ok"}));
    }
}

#[tokio::test]
async fn a_storage_failure_gets_500_and_leaves_no_partial_file() {
    let app = spawn_app().await;
    // Replace the partial-files directory by a plain file: every write fails,
    // even for root (a read-only mode would not stop root).
    let partial = app.dir().join(".partial");
    std::fs::remove_dir_all(&partial).unwrap();
    std::fs::write(&partial, b"").unwrap();
    for size in [10, 2 << 20] {
        let (code, body) = error_code(app.upload(data(size), "a.bin").await, 500).await;
        assert_eq!(code, "server.internal_error");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("store"),
            "{body}"
        );
    }
    assert!(app.server.uploads().await.is_empty());
}

#[tokio::test]
async fn many_uploads_share_one_keep_alive_connection() {
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(app.server.address())
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    for i in 0..20 {
        let body = multipart_body(
            &format!("f{i}.txt"),
            None,
            format!("content {i}").as_bytes(),
        );
        let mut request = upload_head(app.server.address(), body.len(), "").into_bytes();
        request.extend_from_slice(&body);
        stream.write_all(&request).await.unwrap();
        let (status, _, body) = read_response(&mut stream).await.unwrap();
        assert_eq!(status, 200, "upload {i}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        let stored = std::fs::read(body["local_file_path"].as_str().unwrap()).unwrap();
        assert_eq!(stored, format!("content {i}").as_bytes());
    }
    assert_eq!(app.server.uploads().await.len(), 20);
}

#[tokio::test]
async fn fifty_concurrent_uploads_are_all_stored_correctly() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut tasks = Vec::new();
    for i in 0..50usize {
        let app = std::sync::Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            let content = data(1000 + i * 7919);
            let body = json(app.upload(content.clone(), &format!("f{i}.bin")).await).await;
            let stored = std::fs::read(body["local_file_path"].as_str().unwrap()).unwrap();
            assert_eq!(sha256_hex(&stored), sha256_hex(&content));
            body["file_uuid"].as_str().unwrap().to_owned()
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 50);
    assert_eq!(app.server.uploads().await.len(), 50);
    assert_eq!(app.server.requests().await.len(), 50);
}

#[tokio::test]
async fn public_url_and_bucket_shape_the_answer() {
    let app = spawn_with(|b| {
        b.public_url("https://files.example.test/base/")
            .bucket("my-bucket")
    })
    .await;
    let body = json(app.upload(b"x".to_vec(), "a.txt").await).await;
    let uuid = body["file_uuid"].as_str().unwrap();
    assert_eq!(
        body["file_url"],
        format!("https://files.example.test/base/__files/{uuid}/a.txt")
    );
    assert_eq!(
        body["remote_uri"],
        format!("s3://my-bucket/uploads/default/{uuid}/a.txt")
    );
}

#[tokio::test]
async fn shutdown_and_drop_remove_the_temp_dir_but_not_a_chosen_dir() {
    let app = spawn_app().await;
    app.upload(b"x".to_vec(), "a.txt").await;
    let dir = app.dir().to_owned();
    app.server.shutdown().await;
    assert!(!dir.exists());

    let server = aymara_mock::MockServer::start().await.unwrap();
    let dir = server.storage_dir().unwrap().to_owned();
    drop(server);
    assert!(!dir.exists());

    let chosen = tempfile::tempdir().unwrap();
    let server = aymara_mock::MockServer::builder()
        .storage_dir(chosen.path())
        .start()
        .await
        .unwrap();
    server.shutdown().await;
    assert!(chosen.path().join(".partial").exists());
}
