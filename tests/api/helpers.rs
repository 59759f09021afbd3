//! Shared test plumbing. Every test starts its own server on port 0 with its
//! own storage dir, so tests run in parallel.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aymara_mock::{MockServer, MockServerBuilder};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const BOUNDARY: &str = "----aymara-mock-test-boundary";

/// A running server and a client for it.
pub struct TestApp {
    pub server: MockServer,
    pub client: reqwest::Client,
}

/// Logs for a test run with `TEST_LOG=1`.
pub fn init_test_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("debug")
            .try_init();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|b| b).await
}

pub async fn spawn_with(configure: impl FnOnce(MockServerBuilder) -> MockServerBuilder) -> TestApp {
    init_test_log();
    let server = configure(MockServer::builder())
        .start()
        .await
        .expect("server starts");
    TestApp {
        server,
        client: reqwest::Client::new(),
    }
}

impl TestApp {
    /// The server's storage directory (these servers store locally).
    pub fn dir(&self) -> &std::path::Path {
        self.server.storage_dir().expect("a local storage dir")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// Uploads `bytes` as the `file` part with an `x-api-key`.
    pub async fn upload(&self, bytes: Vec<u8>, filename: &str) -> reqwest::Response {
        self.upload_with(bytes, filename, "k", &[]).await
    }

    pub async fn upload_with(
        &self,
        bytes: Vec<u8>,
        filename: &str,
        key: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut req = self
            .client
            .post(self.server.upload_url())
            .header("x-api-key", key)
            .multipart(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.expect("request sent")
    }

    /// Posts a prebuilt multipart body (boundary [`BOUNDARY`]) to the upload endpoint.
    pub async fn post_multipart(&self, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.server.upload_url())
            .header("x-api-key", "k")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    /// Sends `method path` with no body and no credentials.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Uploads one byte with a bearer token (or, with `None`, no credentials at all).
    pub async fn upload_bearer(&self, token: Option<&str>) -> reqwest::Response {
        let part = reqwest::multipart::Part::bytes(vec![1]).file_name("a");
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut req = self.client.post(self.server.upload_url()).multipart(form);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("request sent")
    }

    /// Files under the storage dir (recursively), `.partial/` included.
    pub fn stored_files(&self) -> Vec<PathBuf> {
        files_under(self.dir())
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes.
pub fn data(size: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A multipart body with one `file` part.
pub fn multipart_body(filename: &str, content_type: Option<&str>, content: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
    body.extend_from_slice(
        format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n")
            .as_bytes(),
    );
    if let Some(ct) = content_type {
        body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// The head of an upload request with a multipart body of `len` bytes.
pub fn upload_head(addr: std::net::SocketAddr, len: usize, extra: &str) -> String {
    format!(
        "POST /v2/files/-/uploads HTTP/1.1\r\nHost: {addr}\r\nx-api-key: k\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

/// A raw HTTP/1.1 exchange: writes `request` whole, then reads until the
/// server closes or the answer is complete. Returns (status, head, body).
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    read_response(&mut stream).await
}

/// Reads one HTTP response (Content-Length framed) from a stream.
pub async fn read_response(stream: &mut TcpStream) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let len = header(&head, "content-length")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "body cut short",
                    ));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok((status, head, buf[end + 4..end + 4 + len].to_vec()));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before an answer",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The real binary, started with `--port 0`; the URL comes from its ready line.
pub struct Binary {
    pub child: Child,
    pub url: String,
    /// Everything the process wrote to stderr so far (read by a thread).
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

pub fn bin_path() -> &'static str {
    env!("CARGO_BIN_EXE_aymara-mock")
}

/// Starts the binary and waits (bounded) for its one stdout line.
pub fn start_binary(args: &[&str], envs: &[(&str, &str)]) -> Binary {
    start_binary_at(None, args, envs)
}

/// [`start_binary`] in the working directory `dir`.
pub fn start_binary_in(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Binary {
    start_binary_at(Some(dir), args, envs)
}

fn start_binary_at(dir: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Binary {
    let mut cmd = Command::new(bin_path());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("binary starts");
    let stdout = child.stdout.take().expect("stdout piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep draining so the child never blocks on a full pipe.
        let mut rest = Vec::new();
        let _ = reader.read_to_end(&mut rest);
    });
    let line = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(line) => line,
        Err(_) => {
            terminate(&mut child);
            panic!("no ready line within 20 s");
        }
    };
    let url = line
        .trim()
        .strip_prefix("aymara-mock listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    if let Some(pipe) = child.stderr.take() {
        let sink = std::sync::Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
    }
    Binary { child, url, stderr }
}

impl Binary {
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded, polling) until stderr contains `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.stderr_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

/// How long [`terminate`] waits after SIGTERM before it sends SIGKILL:
/// longer than the server's default `--shutdown-timeout` (10 s), which a
/// server with a request still in flight (a `hang` fault) waits out before
/// it exits and removes its temp dir.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(20);

/// Stops a child as a harness should: SIGTERM, so that the server removes
/// its temp dir (SIGKILL left one `/tmp/aymara-mock-*` folder per test
/// behind), then a bounded wait; SIGKILL only if it has not exited by then
/// (which is logged: it leaves the temp dir behind).
/// Returns its exit status, `None` if it had to be killed.
pub fn terminate(child: &mut Child) -> Option<std::process::ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success());
    if sent {
        let deadline = std::time::Instant::now() + TERMINATE_GRACE;
        while std::time::Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(_) => break,
            }
        }
    }
    eprintln!(
        "aymara-mock (pid {}) did not exit within {TERMINATE_GRACE:?} of SIGTERM: killed",
        child.id()
    );
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Binary {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// The key the files API helpers send.
pub const FILES_API_KEY: &str = "k";

/// The files API, as its tests call it (with the key `k`).
impl TestApp {
    /// `POST /v2/files` with `body`, with a key.
    pub async fn create(&self, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/v2/files"))
            .header("x-api-key", FILES_API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Announces one local file; its `FileUpload`.
    pub async fn announce(&self, entry: serde_json::Value) -> serde_json::Value {
        let resp = self.create(serde_json::json!({"files": [entry]})).await;
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        body["files"][0].clone()
    }

    pub async fn put(
        &self,
        url: &str,
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.client.put(url).body(bytes);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap()
    }

    pub async fn get_api(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("x-api-key", FILES_API_KEY)
            .send()
            .await
            .unwrap()
    }

    pub async fn json_at(&self, path: &str) -> serde_json::Value {
        let resp = self.get_api(path).await;
        assert_eq!(resp.status(), 200, "{path}");
        resp.json().await.unwrap()
    }

    pub async fn delete_file(&self, file_uuid: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/v2/files/{file_uuid}")))
            .header("x-api-key", FILES_API_KEY)
            .send()
            .await
            .unwrap()
    }

    /// The file's processing status.
    pub async fn status_of(&self, file_uuid: &str) -> String {
        let status = self.json_at(&format!("/v2/files/{file_uuid}/status")).await;
        status["processing_status"].as_str().unwrap().to_owned()
    }
}
