//! Hostile and broken clients: oversized part headers, many parts, odd names,
//! planted symlinks, stalls, slow headers, connection limits, full disks.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

async fn send_raw_body(app: &TestApp, body: Vec<u8>) -> (u16, Value) {
    let resp = app.post_multipart(body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn part(headers: &str, content: &[u8]) -> Vec<u8> {
    let mut out = format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").into_bytes();
    out.extend_from_slice(content);
    out.extend_from_slice(b"\r\n");
    out
}

fn close() -> Vec<u8> {
    format!("--{BOUNDARY}--\r\n").into_bytes()
}

#[tokio::test]
async fn part_headers_over_8_kib_get_400() {
    let app = spawn_app().await;
    let mut body = part(
        &format!(
            "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nX-Padding: {}",
            "p".repeat(9000)
        ),
        b"data",
    );
    body.extend(close());
    let (status, answer) = send_raw_body(&app, body).await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("headers"),
        "{answer}"
    );
    assert!(app.stored_files().is_empty());
}

/// Sends `body` raw; the answer must be a 400 that closes the connection, with
/// `needle` in its message, and nothing stored.
async fn assert_refused_and_closed(app: &TestApp, body: &[u8], needle: &str) {
    let mut request = upload_head(app.server.address(), body.len(), "").into_bytes();
    request.extend_from_slice(body);
    let (status, head, answer) = raw_exchange(app.server.address(), &request).await.unwrap();
    assert_eq!(status, 400);
    assert_eq!(header(&head, "connection").as_deref(), Some("close"));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{answer}");
    assert!(app.stored_files().is_empty());
}

#[tokio::test]
async fn an_endless_part_header_is_cut_off_without_buffering_it() {
    let app = spawn_app().await;
    // 8 MiB of header line and never a blank line: the parser would buffer all of it.
    let mut body = format!("--{BOUNDARY}\r\nX-Endless: ").into_bytes();
    body.extend(std::iter::repeat_n(b'a', 8 << 20));
    assert_refused_and_closed(&app, &body, "Malformed multipart").await;
}

#[tokio::test]
async fn a_body_without_a_boundary_is_cut_off_after_1_mib() {
    let app = spawn_app().await;
    // 16 MiB that never contain the boundary: refused once 1 MiB has been read
    // (the rest is drained, bounded, so that the client can read the answer).
    let body = vec![b'x'; 16 << 20];
    assert_refused_and_closed(&app, &body, "no boundary in the first").await;
}

#[tokio::test]
async fn ten_thousand_parts_are_skipped_and_the_file_part_stored() {
    let app = spawn_app().await;
    let mut body = Vec::new();
    for i in 0..10_000 {
        body.extend(part(
            &format!("Content-Disposition: form-data; name=\"f{i}\""),
            b"v",
        ));
    }
    body.extend(part(
        "Content-Disposition: form-data; name=\"file\"; filename=\"last.bin\"",
        b"payload",
    ));
    body.extend(close());
    let (status, answer) = send_raw_body(&app, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        std::fs::read(answer["local_file_path"].as_str().unwrap()).unwrap(),
        b"payload"
    );
}

#[tokio::test]
async fn a_file_part_without_filename_is_stored_as_upload_bin() {
    let app = spawn_app().await;
    let mut body = part(
        "Content-Disposition: form-data; name=\"file\"",
        b"anonymous",
    );
    body.extend(close());
    let (status, answer) = send_raw_body(&app, body).await;
    assert_eq!(status, 200);
    assert!(answer["local_file_path"]
        .as_str()
        .unwrap()
        .ends_with("/upload.bin"));
    assert_eq!(answer["content_type"], "application/octet-stream");
}

#[tokio::test]
async fn of_two_file_parts_the_first_wins() {
    let app = spawn_app().await;
    let mut body = part(
        "Content-Disposition: form-data; name=\"file\"; filename=\"first.txt\"",
        b"one",
    );
    body.extend(part(
        "Content-Disposition: form-data; name=\"file\"; filename=\"second.txt\"",
        b"two",
    ));
    body.extend(close());
    let (status, answer) = send_raw_body(&app, body).await;
    assert_eq!(status, 200);
    assert!(answer["local_file_path"]
        .as_str()
        .unwrap()
        .ends_with("/first.txt"));
    assert_eq!(
        std::fs::read(answer["local_file_path"].as_str().unwrap()).unwrap(),
        b"one"
    );
    assert_eq!(app.server.uploads().await.len(), 1);
}

#[tokio::test]
async fn a_close_delimiter_look_alike_in_the_data_gets_400_not_a_cut_file() {
    let app = spawn_app().await;
    // The file's data holds `\r\n--BOUNDARY--garbage`: a close delimiter
    // followed by something RFC 2046 does not allow there.
    let data = format!("head\r\n--{BOUNDARY}--garbage\r\ntail");
    let mut body = part(
        "Content-Disposition: form-data; name=\"file\"; filename=\"cut.bin\"",
        data.as_bytes(),
    );
    body.extend(close());
    let (status, answer) = send_raw_body(&app, body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("closing boundary"),
        "{answer}"
    );
    assert!(app.stored_files().is_empty());
    assert!(app.server.uploads().await.is_empty());
}

#[tokio::test]
async fn of_two_content_dispositions_in_a_part_the_first_counts() {
    let app = spawn_app().await;
    let mut body = part(
        "Content-Disposition: form-data; name=\"file\"; filename=\"first.txt\"\r\n\
         Content-Disposition: form-data; name=\"other\"; filename=\"second.txt\"",
        b"one",
    );
    body.extend(close());
    let (status, answer) = send_raw_body(&app, body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["local_file_path"]
        .as_str()
        .unwrap()
        .ends_with("/first.txt"));
}

#[tokio::test]
async fn odd_filenames_are_stored_safely_and_reported_faithfully() {
    let app = spawn_app().await;
    let cases: [(&[u8], &str); 4] = [
        (b"caf\xe9.txt", "caf\u{fffd}.txt"),
        (b"a%2F..%2Fb.txt", "a%2F..%2Fb.txt"),
        ("日本語 ファイル.pdf".as_bytes(), "日本語 ファイル.pdf"),
        (b"emoji \xf0\x9f\x8e\xac.mp4", "emoji \u{1f3ac}.mp4"),
    ];
    for (raw, expected) in cases {
        let mut body =
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"")
                .into_bytes();
        body.extend_from_slice(raw);
        body.extend_from_slice(b"\"\r\n\r\nx\r\n");
        body.extend(close());
        let (status, answer) = send_raw_body(&app, body).await;
        assert_eq!(status, 200, "{expected}");
        let path = std::path::PathBuf::from(answer["local_file_path"].as_str().unwrap());
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), expected);
        assert_eq!(path.parent().unwrap().parent().unwrap(), app.dir());
        let url = answer["file_url"].as_str().unwrap();
        let served = app.client.get(url).send().await.unwrap();
        assert_eq!(served.status(), 200, "{url}");
    }
}

#[tokio::test]
async fn a_symlink_planted_in_storage_is_never_followed() {
    let app = spawn_app().await;
    let answer: Value = app
        .upload(b"mine".to_vec(), "a.txt")
        .await
        .json()
        .await
        .unwrap();
    let path = std::path::PathBuf::from(answer["local_file_path"].as_str().unwrap());
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), b"secret outside storage").unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(secret.path(), &path).unwrap();
    let resp = app
        .client
        .get(answer["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert!(!resp
        .text()
        .await
        .unwrap()
        .contains("secret outside storage"));
    // A symlink for a whole upload directory is refused too.
    let other: Value = app
        .upload(b"mine".to_vec(), "b.txt")
        .await
        .json()
        .await
        .unwrap();
    let dir = std::path::PathBuf::from(other["local_file_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_owned();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("b.txt"), b"secret outside storage").unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
    let resp = app
        .client
        .get(other["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_stalled_upload_is_aborted_after_the_body_timeout_and_cleaned_up() {
    let app = spawn_with(|b| b.body_timeout(Duration::from_millis(400))).await;
    let body = multipart_body("stall.bin", None, &data(2 << 20));
    let mut stream = TcpStream::connect(app.server.address()).await.unwrap();
    stream
        .write_all(upload_head(app.server.address(), body.len(), "").as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..1 << 20]).await.unwrap();
    let started = Instant::now();
    let (status, head, answer) = read_response(&mut stream).await.unwrap();
    assert_eq!(status, 408);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(header(&head, "connection").as_deref(), Some("close"));
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("body timeout"));
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

#[tokio::test]
async fn clients_trickling_headers_do_not_block_a_normal_upload() {
    let app = spawn_with(|b| b.header_read_timeout(Duration::from_secs(2))).await;
    let addr = app.server.address();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"P").await.unwrap();
        slow.push(s);
    }
    let trickle = tokio::spawn(async move {
        // One more byte a second on every connection until the server closes them.
        let mut closed = 0;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            closed = 0;
            for s in &mut slow {
                if s.write_all(b"O").await.is_err() {
                    closed += 1;
                    continue;
                }
                let mut buf = [0u8; 1];
                if let Ok(Ok(0)) =
                    tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await
                {
                    closed += 1;
                }
            }
            if closed == 500 {
                break;
            }
        }
        closed
    });
    let started = Instant::now();
    let resp = app.upload(b"normal".to_vec(), "n.txt").await;
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        trickle.await.unwrap(),
        500,
        "the header read timeout closes every trickling client"
    );
}

#[test]
fn the_connection_limit_holds_new_clients_and_says_so() {
    let bin = start_binary(&["--max-connections", "1"], &[]);
    let addr: std::net::SocketAddr = bin.url.trim_start_matches("http://").parse().unwrap();
    let held = std::net::TcpStream::connect(addr).unwrap();
    assert!(
        bin.wait_for_log("connection limit reached", Duration::from_secs(5)),
        "{}",
        bin.stderr_text()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{}/health", bin.url);
        // While the slot is taken the request is not answered…
        let waiting = client
            .get(&url)
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        assert!(waiting.is_err());
        // …and once it is free, it is.
        drop(held);
        let resp = client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    });
}

#[tokio::test]
async fn the_storage_quota_answers_500_saying_so_and_recovers() {
    let app = spawn_with(|b| b.max_storage(1024 * 1024u64)).await;
    assert_eq!(app.upload(data(600_000), "a.bin").await.status(), 200);
    let resp = app.upload(data(600_000), "b.bin").await;
    assert_eq!(resp.status(), 500);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "server.internal_error");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota is full"),
        "{answer}"
    );
    assert_eq!(app.stored_files().len(), 1, "{:?}", app.stored_files());
    app.server.clear_uploads().await;
    assert_eq!(app.upload(data(600_000), "c.bin").await.status(), 200);
}

#[tokio::test]
async fn a_full_disk_answers_500_and_the_next_upload_succeeds_once_space_is_back() {
    let mount = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(mount.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "skipped: cannot mount a tmpfs here (needs root); --max-storage covers the same path"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mount.path().to_owned());
    let app = spawn_with(|b| b.storage_dir(mount.path())).await;
    let resp = app.upload(data(5 << 20), "big.bin").await;
    assert_eq!(resp.status(), 500);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "server.internal_error");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("storage is full"),
        "{answer}"
    );
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert_eq!(app.upload(data(100_000), "small.bin").await.status(), 200);
    drop(app);
}

#[tokio::test]
async fn header_floods_are_refused_and_the_server_keeps_serving() {
    let app = spawn_app().await;
    let addr = app.server.address();
    let mut many = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let huge_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1 << 20));
    for request in [many, huge_line] {
        // An answer must be a 4xx; closing without one is also a refusal.
        if let Ok((status, _, _)) = raw_exchange(addr, request.as_bytes()).await {
            assert!((400..500).contains(&status), "{status}");
        }
    }
    let resp = app.call(reqwest::Method::GET, "/health").await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_chunked_upload_over_the_limit_gets_413_not_a_reset() {
    let app = spawn_with(|b| b.max_upload_size(1024 * 1024u64)).await;
    let body = multipart_body("big.bin", None, &data(8 << 20));
    let head = format!(
        "POST /v2/files/-/uploads HTTP/1.1\r\nHost: x\r\nx-api-key: k\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut request = head.into_bytes();
    for chunk in body.chunks(64 * 1024) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, head, _) = raw_exchange(app.server.address(), &request).await.unwrap();
    assert_eq!(status, 413);
    assert_eq!(header(&head, "connection").as_deref(), Some("close"));
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}

#[tokio::test]
async fn storage_dirs_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;
    let mode = std::fs::metadata(app.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "temp dir mode {mode:o}");
    let parent = tempfile::tempdir().unwrap();
    let chosen = parent.path().join("new/uploads");
    let app = spawn_with(|b| b.storage_dir(&chosen)).await;
    let mode = std::fs::metadata(app.dir()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "created dir mode {mode:o}");
}

#[test]
fn a_non_loopback_address_without_keys_logs_a_warning_and_credentials_are_never_logged() {
    let bin = start_binary(&["--host", "0.0.0.0"], &[]);
    assert!(
        bin.wait_for_log(
            "non-loopback address without --api-key",
            Duration::from_secs(5)
        ),
        "{}",
        bin.stderr_text()
    );
    let port = bin.url.rsplit(':').next().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1]).file_name("a"),
        );
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v2/files/-/uploads"))
            .header("x-api-key", "super-secret-key")
            .bearer_auth("super-secret-token")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    });
    assert!(bin.wait_for_log("path=/v2/files/-/uploads", Duration::from_secs(5)));
    let log = bin.stderr_text();
    assert!(!log.contains("super-secret"), "{log}");
    let bin = start_binary(&["--host", "0.0.0.0", "--api-key", "k"], &[]);
    assert!(bin.wait_for_log("aymara-mock started", Duration::from_secs(5)));
    // (The admin-token warning still shows: no --admin-token here.)
    assert!(!bin.stderr_text().contains("without --api-key"));
}

#[test]
fn a_non_loopback_address_without_an_admin_token_logs_that_the_admin_api_is_open() {
    let bin = start_binary(&["--host", "0.0.0.0", "--api-key", "k"], &[]);
    assert!(
        bin.wait_for_log("without --admin-token", Duration::from_secs(5)),
        "{}",
        bin.stderr_text()
    );
    let bin = start_binary(
        &["--host", "0.0.0.0", "--api-key", "k", "--admin-token", "t"],
        &[],
    );
    assert!(bin.wait_for_log("aymara-mock started", Duration::from_secs(5)));
    assert!(
        !bin.stderr_text().contains("--admin-token"),
        "{}",
        bin.stderr_text()
    );
    // On loopback, no warning either.
    let bin = start_binary(&["--api-key", "k"], &[]);
    assert!(bin.wait_for_log("aymara-mock started", Duration::from_secs(5)));
    assert!(!bin.stderr_text().contains("WARN"), "{}", bin.stderr_text());
}

#[tokio::test]
async fn uploaded_html_svg_and_scripts_are_served_sandboxed_as_attachments_byte_exact() {
    let app = spawn_app().await;
    let page = b"<html><script>fetch('/__admin/reset',{method:'POST'})</script></html>".to_vec();
    for (name, content_type, attachment) in [
        ("x.html", "text/html", true),
        ("x.svg", "image/svg+xml", true),
        ("x.xml", "application/xml", true),
        ("x.js", "text/javascript", true),
        ("x.xhtml", "application/xhtml+xml; charset=utf-8", true),
        ("x.png", "image/png", false),
        ("x.txt", "text/plain", false),
    ] {
        let resp = app
            .post_multipart(multipart_body(name, Some(content_type), &page))
            .await;
        assert_eq!(resp.status(), 200, "{name}");
        let answer: Value = resp.json().await.unwrap();
        let url = answer["file_url"].as_str().unwrap();
        for method in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let resp = app
                .client
                .request(method.clone(), url)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{method} {name}");
            let h = resp.headers().clone();
            assert_eq!(h["content-type"], content_type, "{method} {name}");
            assert_eq!(h["content-security-policy"], "sandbox", "{method} {name}");
            assert_eq!(h["x-content-type-options"], "nosniff", "{method} {name}");
            assert_eq!(
                h.get("content-disposition")
                    .map(|v| v.to_str().unwrap().to_owned()),
                attachment.then(|| "attachment".to_owned()),
                "{method} {name}"
            );
            if method == reqwest::Method::GET {
                let body = resp.bytes().await.unwrap();
                assert_eq!(sha256_hex(&body), sha256_hex(&page), "{name}");
            }
        }
    }
}

/// A `GET /health` whose head (request line to blank line) is exactly `len`
/// bytes, padded by one header.
fn health_head_of(len: usize) -> Vec<u8> {
    let start = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    let end = b"\r\n\r\n";
    let mut head = start.to_vec();
    head.resize(len - end.len(), b'a');
    head.extend_from_slice(end);
    head
}

/// The sizes README gives (measured with a bisection over these helpers):
/// hyper accepts a head of 128 KiB (`max_buf_size`), checks the limit only
/// between reads, so a head written in one burst passes up to 195,557 bytes
/// and a trickled one up to 131,072; beyond, 431. A request target over
/// 65,534 bytes gets 414, more than 100 header lines 431 (or a close).
#[tokio::test]
async fn heads_up_to_128_kib_are_served_and_larger_ones_refused_with_431() {
    let app = spawn_app().await;
    let addr = app.server.address();
    let (status, _, _) = raw_exchange(addr, &health_head_of(128 * 1024))
        .await
        .unwrap();
    assert_eq!(status, 200);
    for len in [195_558, 256 * 1024] {
        // An answer must be a 431; closing without one is also a refusal.
        if let Ok((status, _, _)) = raw_exchange(addr, &health_head_of(len)).await {
            assert_eq!(status, 431, "{len}");
        }
    }
    let target = |len: usize| {
        let path = format!("/health?{}", "a".repeat(len - "/health?".len()));
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
    };
    let (status, _, _) = raw_exchange(addr, &target(65_534)).await.unwrap();
    assert_eq!(status, 200);
    let (status, _, _) = raw_exchange(addr, &target(65_535)).await.unwrap();
    assert_eq!(status, 414);
    // 100 header lines, `Host` included; one more is refused.
    let headers = |count: usize| {
        let mut head = String::from("GET /health HTTP/1.1\r\nHost: x\r\n");
        for i in 1..count {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    };
    let (status, _, _) = raw_exchange(addr, &headers(100)).await.unwrap();
    assert_eq!(status, 200);
    if let Ok((status, _, _)) = raw_exchange(addr, &headers(101)).await {
        assert_eq!(status, 431);
    }
}

#[tokio::test]
async fn timeouts_beyond_what_a_deadline_holds_are_capped_not_a_panic() {
    // `now + Duration::MAX` overflows: every upload's answer once panicked away.
    let app = spawn_with(|b| {
        b.body_timeout(Duration::MAX)
            .header_read_timeout(Duration::MAX)
            .shutdown_timeout(Duration::MAX)
    })
    .await;
    let resp = app.upload(data(1000), "a.bin").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.server.uploads().await.len(), 1);
}

/// A field of `/proc/PID/status`, in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[tokio::test]
async fn a_truncate_fault_on_a_download_streams_half_the_file_without_holding_it() {
    const SIZE: usize = 96 << 20;
    let bin = start_binary(&[], &[]);
    let pid = bin.child.id();
    let client = reqwest::Client::new();
    let content = data(SIZE);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(content.clone()).file_name("big.bin"),
    );
    let stored: Value = client
        .post(format!("{}/v2/files/-/uploads", bin.url))
        .header("x-api-key", "k")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    drop(content);
    let resp = client
        .post(format!("{}/__admin/rules", bin.url))
        .json(&serde_json::json!({"match": {"method": "GET", "path": "/__files/*"}, "fault": {"kind": "truncate"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let peak_before = proc_kib(pid, "VmHWM:");

    let url = stored["file_url"].as_str().unwrap();
    let path = url.split_once("/__files/").map(|(_, p)| p).unwrap();
    let addr: std::net::SocketAddr = bin.url.trim_start_matches("http://").parse().unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /__files/{path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut got)).await;
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(head.contains(&format!("content-length: {SIZE}")), "{head}");
    assert_eq!(
        got.len() - head_end,
        SIZE / 2,
        "half the file, then the close"
    );
    assert_eq!(&got[head_end..], &data(SIZE)[..SIZE / 2]);

    let grown_mib = (proc_kib(pid, "VmHWM:") - peak_before) / 1024;
    assert!(
        grown_mib < 24,
        "the peak grew by {grown_mib} MiB while truncating a 96 MiB download"
    );
}

/// A line of `/proc/<pid>/status` (`Threads:`, `VmRSS:`), as a number.
#[cfg(target_os = "linux")]
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Sends each of `heads` on a connection of its own with the first `sent`
/// bytes of `body`, waits until the server has a partial file for each, and
/// asserts that its thread count is bounded. Then every other upload sends
/// the rest of `body` (their answers are returned) and the others are cut
/// off; returns once no partial file is left.
#[cfg(target_os = "linux")]
async fn hold_mid_body_then_finish_half(
    bin: &Binary,
    storage: &std::path::Path,
    heads: Vec<String>,
    body: &[u8],
    sent: usize,
) -> Vec<(u16, String, Vec<u8>)> {
    let addr: std::net::SocketAddr = bin.url.trim_start_matches("http://").parse().unwrap();
    let pid = bin.child.id();
    let idle_threads = proc_status(pid, "Threads:");
    let uploads = heads.len();
    let mut held = Vec::new();
    for head in heads {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..sent]).await.unwrap();
        held.push(stream);
    }
    // Every upload has reached storage once its partial file exists.
    let partial = storage.join(".partial");
    assert!(
        eventually(Duration::from_secs(30), || files_under(&partial).len()
            == uploads)
        .await,
        "{} of {uploads} partial files",
        files_under(&partial).len()
    );
    let threads = proc_status(pid, "Threads:");
    let rss_kib = proc_status(pid, "VmRSS:");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    eprintln!(
        "{uploads} uploads held: {threads} threads (idle: {idle_threads}), {rss_kib} KiB resident"
    );
    assert!(
        threads <= 2 * cores + 16,
        "{threads} threads with {uploads} uploads in flight (idle: {idle_threads}, cores: {cores})"
    );

    let mut finishing = Vec::new();
    for (i, mut stream) in held.into_iter().enumerate() {
        if i % 2 == 1 {
            drop(stream);
            continue;
        }
        let rest = body[sent..].to_vec();
        finishing.push(tokio::spawn(async move {
            stream.write_all(&rest).await.unwrap();
            read_response(&mut stream).await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for finished in finishing {
        answers.push(finished.await.unwrap());
    }
    assert!(
        eventually(Duration::from_secs(10), || files_under(&partial).is_empty()).await,
        "partial files left: {:?}",
        files_under(&partial)
    );
    answers
}

/// The sha256 of every upload the server lists.
#[cfg(target_os = "linux")]
async fn listed_sha256s(bin: &Binary) -> Vec<String> {
    let listed: Value = reqwest::get(format!("{}/__admin/uploads", bin.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["sha256"].as_str().unwrap().to_owned())
        .collect()
}

/// The binary with no API key, storing in a temp dir of its own, and the
/// address it listens on.
fn open_binary_with_storage() -> (tempfile::TempDir, Binary, std::net::SocketAddr) {
    let storage = tempfile::tempdir().unwrap();
    let bin = start_binary(
        &[
            "--storage-dir",
            storage.path().to_str().unwrap(),
            "--no-auth",
        ],
        &[],
    );
    let addr = bin.url.trim_start_matches("http://").parse().unwrap();
    (storage, bin, addr)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_stay_bounded_with_128_uploads_held_open_mid_body() {
    let (storage, bin, addr) = open_binary_with_storage();
    let content = data(1 << 20);
    let body = multipart_body("held.bin", None, &content);
    let heads = (0..128)
        .map(|_| upload_head(addr, body.len(), ""))
        .collect();
    // 256 KiB: past the 64 KiB kept in memory, every upload streams to storage.
    let answers =
        hold_mid_body_then_finish_half(&bin, storage.path(), heads, &body, 256 << 10).await;
    for (status, _, answer) in &answers {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(answer));
        let answer: Value = serde_json::from_slice(answer).unwrap();
        let stored = std::fs::read(answer["local_file_path"].as_str().unwrap()).unwrap();
        assert!(
            stored == content,
            "a stored file differs from what was sent"
        );
    }
    assert_eq!(files_under(storage.path()).len(), 64);
    assert_eq!(listed_sha256s(&bin).await, vec![sha256_hex(&content); 64]);
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_stay_bounded_with_64_presigned_puts_held_open_mid_body() {
    use base64::Engine as _;
    use md5::Digest as _;
    let (storage, bin, addr) = open_binary_with_storage();
    let content = data(1 << 20);
    let md5 = md5::Md5::digest(&content);
    // With a Content-MD5, whose MD5 is taken beside the SHA-256.
    let content_md5 = base64::engine::general_purpose::STANDARD.encode(md5);
    let entries: Vec<Value> = (0..64)
        .map(|i| serde_json::json!({"local_file_path": format!("put-{i}.bin")}))
        .collect();
    let created: Value = reqwest::Client::new()
        .post(format!("{}/v2/files", bin.url))
        .json(&serde_json::json!({ "files": entries }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let heads = created["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            let url = file["file_url"].as_str().unwrap();
            let path = url.strip_prefix(bin.url.as_str()).unwrap();
            format!(
                "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nContent-MD5: {content_md5}\r\n\r\n",
                content.len()
            )
        })
        .collect::<Vec<_>>();
    assert_eq!(heads.len(), 64);
    let answers =
        hold_mid_body_then_finish_half(&bin, storage.path(), heads, &content, 256 << 10).await;
    let etag: String = md5.iter().map(|b| format!("{b:02x}")).collect();
    for (status, head, answer) in &answers {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(answer));
        assert_eq!(header(head, "etag"), Some(format!("\"{etag}\"")));
    }
    // (The storage dir also keeps the announced files' records.)
    assert_eq!(listed_sha256s(&bin).await, vec![sha256_hex(&content); 32]);
}
