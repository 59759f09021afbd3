//! Uploads kept in an object store, through the library with an in-memory
//! store (`MockServerBuilder::object_store`): what lands in the store, what
//! is served back, what is cleaned up. The same backend against a real
//! S3-compatible server (moto) is tested by `tests/s3/`.

use std::sync::Arc;
use std::time::Duration;

use aymara_mock::object_store::memory::InMemory;
use aymara_mock::object_store::path::Path;
use aymara_mock::object_store::{Attribute, ObjectStore, ObjectStoreExt};
use aymara_mock::{MockServer, Rule, S3Config};
use futures_util::TryStreamExt;
use serde_json::Value;

use crate::helpers::*;

async fn spawn_on(store: &Arc<InMemory>, prefix: &str) -> TestApp {
    let store: Arc<dyn ObjectStore> = store.clone();
    spawn_with(|b| b.object_store(store, "team-bucket", prefix)).await
}

async fn keys(store: &InMemory) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn object(store: &InMemory, key: &str) -> (Vec<u8>, Option<String>) {
    let got = store.get(&Path::parse(key).unwrap()).await.unwrap();
    let content_type = got
        .attributes
        .get(&Attribute::ContentType)
        .map(|v| v.to_string());
    (got.bytes().await.unwrap().to_vec(), content_type)
}

async fn upload_typed(app: &TestApp, data: &[u8], name: &str, content_type: &str) -> Value {
    let resp = app
        .post_multipart(multipart_body(name, Some(content_type), data))
        .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn uploads_land_at_their_key_with_their_content_type() {
    let store = Arc::new(InMemory::new());
    let app = spawn_on(&store, "staging/run-1").await;
    assert_eq!(app.server.storage_dir(), None);
    // One PUT below a part (8 MiB), a multipart upload above.
    for (size, content_type) in [
        (3_000, "text/csv"),
        (20 * 1024 * 1024 + 5, "application/pdf"),
    ] {
        let content = data(size);
        let body = upload_typed(&app, &content, "q3 report.bin", content_type).await;
        let uuid = body["file_uuid"].as_str().unwrap();
        let key = format!("staging/run-1/uploads/default/{uuid}/q3 report.bin");
        assert_eq!(body["remote_file_path"], key);
        assert_eq!(body["remote_uri"], format!("s3://team-bucket/{key}"));
        assert_eq!(body["local_file_path"], Value::Null);
        assert_eq!(body["content_type"], content_type);
        let (bytes, stored_type) = object(&store, &key).await;
        assert!(
            bytes == content,
            "stored bytes differ ({} bytes)",
            bytes.len()
        );
        assert_eq!(stored_type.as_deref(), Some(content_type));

        // file_url streams the object back, ranges included.
        let url = body["file_url"].as_str().unwrap();
        let got = app.client.get(url).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.headers()["content-type"], content_type);
        assert!(got.bytes().await.unwrap() == content);
        let part = app
            .client
            .get(url)
            .header("range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206);
        assert_eq!(part.bytes().await.unwrap(), content[100..200]);
    }
    // The journal and the admin API record the sha256 of what was stored.
    let uploads: Value = app
        .call(reqwest::Method::GET, "/__admin/uploads")
        .await
        .json()
        .await
        .unwrap();
    let uploads = uploads["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 2);
    assert_eq!(
        uploads[1]["sha256"],
        sha256_hex(&data(20 * 1024 * 1024 + 5))
    );
    assert_eq!(uploads[1]["local_file_path"], Value::Null);
    let journal = app.server.requests().await;
    assert_eq!(
        journal[0].upload.as_ref().unwrap().sha256,
        sha256_hex(&data(3_000))
    );
    // Two objects and their two records; nothing else.
    assert_eq!(keys(&store).await.len(), 4, "{:?}", keys(&store).await);
}

#[tokio::test]
async fn workspace_and_odd_names_make_the_key() {
    let store = Arc::new(InMemory::new());
    let app = spawn_on(&store, "").await;
    let resp = app
        .client
        .post(format!("{}?workspace_uuid=ws-7", app.server.upload_url()))
        .header("x-api-key", "k")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body(
            "a#b [1] 100%.txt",
            Some("text/plain"),
            b"odd",
        ))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let uuid = body["file_uuid"].as_str().unwrap();
    let key = format!("uploads/ws-7/{uuid}/a#b [1] 100%.txt");
    assert_eq!(body["remote_file_path"], key);
    assert_eq!(object(&store, &key).await.0, b"odd");
    let got = app
        .client
        .get(body["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap(), "odd");
}

#[tokio::test]
async fn rejected_uploads_leave_nothing_in_the_store() {
    let store = Arc::new(InMemory::new());
    let app = spawn_on(&store, "p").await;
    let rule = Rule::from_json(r#"{"phase": "complete", "respond": {"status": 500}}"#).unwrap();
    app.server.add_rule(rule).await.unwrap();
    for size in [10, 9 * 1024 * 1024] {
        let resp = app.upload(data(size), "big.bin").await;
        assert_eq!(resp.status(), 500);
    }
    assert!(keys(&store).await.is_empty(), "{:?}", keys(&store).await);
    assert!(app.server.uploads().await.is_empty());
}

#[tokio::test]
async fn servers_sharing_a_store_serve_each_others_files_and_delete_only_their_own() {
    let store = Arc::new(InMemory::new());
    let unrelated = Path::parse("shared/uploads/theirs.txt").unwrap();
    store.put(&unrelated, "keep me".into()).await.unwrap();
    let a = spawn_on(&store, "shared").await;
    let b = spawn_on(&store, "shared").await;
    let from_a = upload_typed(&a, b"from a", "a.txt", "text/plain").await;
    let from_b = upload_typed(&b, b"from b", "b.txt", "text/plain").await;
    for (body, content) in [(&from_a, "from a"), (&from_b, "from b")] {
        let path = format!(
            "/__files/{}/{}",
            body["file_uuid"].as_str().unwrap(),
            body["file_url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
        );
        for server in [&a, &b] {
            let got = server.call(reqwest::Method::GET, &path).await;
            assert_eq!(got.status(), 200, "{path} on {}", server.server.url());
            assert_eq!(got.text().await.unwrap(), content);
        }
    }
    let deleted: Value = a
        .call(reqwest::Method::DELETE, "/__admin/uploads")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], 1);
    let left = keys(&store).await;
    assert!(
        !left
            .iter()
            .any(|k| k.contains(from_a["file_uuid"].as_str().unwrap())),
        "{left:?}"
    );
    assert!(
        left.contains(&from_b["remote_file_path"].as_str().unwrap().to_owned()),
        "{left:?}"
    );
    assert!(left.contains(&unrelated.to_string()), "{left:?}");
    assert_eq!(left.len(), 3, "{left:?}");
    // Gone for both servers now.
    let path = format!("/__files/{}/a.txt", from_a["file_uuid"].as_str().unwrap());
    assert_eq!(b.call(reqwest::Method::GET, &path).await.status(), 404);
}

/// A server storing in `bucket` (an `s3://` URL) at `endpoint`, with fixed credentials.
async fn s3_app(bucket: &str, endpoint: &str) -> TestApp {
    let config = S3Config::parse(bucket)
        .unwrap()
        .endpoint(endpoint)
        .credentials("key", "secret");
    TestApp {
        server: MockServer::builder().s3(config).start().await.unwrap(),
        client: reqwest::Client::new(),
    }
}

/// An upload answers the store's 503 `server.unavailable`.
async fn assert_upload_unavailable(app: &TestApp) {
    let resp = app.upload(b"hello".to_vec(), "a.txt").await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server.unavailable");
}

#[tokio::test]
async fn an_unreachable_store_answers_503_and_the_server_stays_up() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = s3_app("s3://nowhere-bucket/p", &format!("http://127.0.0.1:{port}")).await;
    assert_eq!(app.server.storage(), "s3://nowhere-bucket/p");
    assert_upload_unavailable(&app).await;
    // A file_url lookup needs the store too.
    let uuid = uuid::Uuid::new_v4();
    let resp = app
        .call(reqwest::Method::GET, &format!("/__files/{uuid}/a.txt"))
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        app.call(reqwest::Method::GET, "/health").await.status(),
        200
    );
    assert!(app.server.uploads().await.is_empty());
}

/// An `https://` endpoint goes through the TLS stack (rustls on ring, set up
/// by the server): a peer that does not speak TLS fails the handshake, and
/// the upload gets the store's 503 rather than a panic or a dropped socket.
#[tokio::test]
async fn an_https_store_that_does_not_speak_tls_answers_503() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hellos = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&hellos);
    let peer = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut record = [0u8; 5];
            // A TLS record starts with its type, 22: a handshake (the ClientHello).
            if tokio::io::AsyncReadExt::read_exact(&mut socket, &mut record)
                .await
                .is_ok()
                && record[0] == 22
            {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut socket,
                b"HTTP/1.1 400 Bad Request\r\n\r\n",
            )
            .await;
        }
    });
    let app = s3_app("s3://tls-bucket/p", &format!("https://127.0.0.1:{port}")).await;
    assert_upload_unavailable(&app).await;
    assert_eq!(
        app.call(reqwest::Method::GET, "/health").await.status(),
        200
    );
    peer.abort();
    assert!(
        hellos.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "no TLS ClientHello reached the https endpoint"
    );
}

#[test]
fn storage_flags_are_checked_before_binding() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--storage", "s3://good-bucket", "--bucket", "other"],
            "--bucket",
        ),
        (&["--storage", "/tmp/x"], "s3://"),
        (&["--storage", "s3://UPPER"], "bucket"),
        (
            &["--storage", "s3://good-bucket", "--storage-dir", "/tmp/x"],
            "--storage-dir",
        ),
        (&["--s3-endpoint", "http://127.0.0.1:9000"], "--storage"),
    ];
    for (args, needle) in cases {
        let out = std::process::Command::new(bin_path())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[tokio::test]
async fn the_binary_stores_in_s3_from_its_flags() {
    // Nothing listens there: the flags are taken, the start-up log names the
    // store, and an upload gets 503 rather than a crash.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut bin = start_binary(
        &["--storage", "s3://flag-bucket/pre/fix"],
        &[
            ("AYMARA_MOCK_S3_ENDPOINT", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_REGION", "eu-west-1"),
        ],
    );
    assert!(bin.wait_for_log("storage=s3://flag-bucket/pre/fix", Duration::from_secs(10)));
    assert!(
        bin.wait_for_log("object store not usable yet", Duration::from_secs(20)),
        "{}",
        bin.stderr_text()
    );
    let resp = reqwest::Client::new()
        .post(format!("{}/v2/files/-/uploads", bin.url))
        .header("x-api-key", "k")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(multipart_body("a.txt", None, b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(15)), Some(0));
}
