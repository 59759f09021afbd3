//! The real binary: the sidecar contract (ready line, ready file, signals),
//! flags and their environment twins, exit codes, request logs.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn upload_blocking(url: &str, key: &str, content: &[u8]) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(content.to_vec()).file_name("a.bin"),
        );
        let resp = reqwest::Client::new()
            .post(format!("{url}/v2/files/-/uploads"))
            .header("x-api-key", key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

fn storage_dir_of(answer: &Value) -> PathBuf {
    let path = PathBuf::from(answer["local_file_path"].as_str().unwrap());
    path.parent().unwrap().parent().unwrap().to_owned()
}

#[test]
fn prints_one_ready_line_and_removes_its_temp_dir_on_sigterm() {
    let mut bin = start_binary(&[], &[]);
    assert!(bin.url.starts_with("http://127.0.0.1:"), "{}", bin.url);
    let (status, answer) = upload_blocking(&bin.url, "k", b"hello");
    assert_eq!(status, 200);
    let dir = storage_dir_of(&answer);
    assert!(dir.exists());
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(!dir.exists(), "{dir:?} left behind");
    assert!(bin.wait_for_log("shutting down", Duration::from_secs(5)));
    let log = bin.stderr_text();
    // One log line per request: method, path, status, bytes, ms.
    let line = log
        .lines()
        .find(|l| l.contains("path=/v2/files/-/uploads"))
        .unwrap_or_else(|| panic!("no request line in {log}"));
    for field in ["method=POST", "status=200", "bytes=", "ms="] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

/// The temp dir a binary logged at start (`storage=/tmp/aymara-mock-…`).
fn logged_storage_dir(bin: &Binary) -> PathBuf {
    assert!(bin.wait_for_log("aymara-mock started", Duration::from_secs(10)));
    let log = bin.stderr_text();
    let dir = log
        .split_whitespace()
        .find_map(|w| w.strip_prefix("storage="))
        .unwrap_or_else(|| panic!("no storage= in {log}"));
    PathBuf::from(dir)
}

/// `cargo test` leaves no `/tmp/aymara-mock-*` folder behind: the helpers
/// stop a binary with SIGTERM (SIGKILL only as the fallback), and the
/// server removes its temp dir on SIGTERM and on SIGINT, having stored
/// something or not.
#[test]
fn a_stopped_binary_leaves_no_temp_dir_behind() {
    let bin = start_binary(&[], &[]);
    let dir = logged_storage_dir(&bin);
    assert!(dir.starts_with(std::env::temp_dir()), "{dir:?}");
    assert!(dir.exists(), "{dir:?}");
    drop(bin);
    assert!(!dir.exists(), "{dir:?} left behind by the helper's stop");

    let mut bin = start_binary(&[], &[]);
    let dir = logged_storage_dir(&bin);
    let (status, _) = upload_blocking(&bin.url, "k", b"stored");
    assert_eq!(status, 200);
    bin.signal("INT");
    assert_eq!(bin.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(!dir.exists(), "{dir:?} left behind after SIGINT");
}

#[test]
fn sigint_also_stops_it_and_keep_files_keeps_the_dir() {
    let mut bin = start_binary(&["--keep-files"], &[]);
    let (_, answer) = upload_blocking(&bin.url, "k", b"kept");
    let dir = storage_dir_of(&answer);
    bin.signal("INT");
    assert_eq!(bin.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(dir.exists());
    assert_eq!(
        std::fs::read(answer["local_file_path"].as_str().unwrap()).unwrap(),
        b"kept"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn writes_the_url_to_the_ready_file() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.txt");
    let bin = start_binary(&["--ready-file", ready.to_str().unwrap()], &[]);
    assert_eq!(std::fs::read_to_string(&ready).unwrap().trim(), bin.url);
}

#[test]
fn in_flight_uploads_finish_after_sigterm() {
    let mut bin = start_binary(&[], &[]);
    let addr: std::net::SocketAddr = bin.url.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let content = data(2 << 20);
        let body = multipart_body("slow.bin", None, &content);
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(upload_head(addr, body.len(), "").as_bytes())
            .await
            .unwrap();
        stream.write_all(&body[..body.len() / 2]).await.unwrap();
        stream.flush().await.unwrap();
        // The upload is in flight; ask the server to stop, then finish sending.
        bin.signal("TERM");
        assert!(bin.wait_for_log("shutting down", Duration::from_secs(5)));
        stream.write_all(&body[body.len() / 2..]).await.unwrap();
        let (status, _, answer) = read_response(&mut stream).await.unwrap();
        (status, answer)
    });
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(bin.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn bad_flags_exit_2_with_a_message_before_binding() {
    let cases: [&[&str]; 11] = [
        &["--journal-bytes", "0"],
        &["--journal-bytes", "lots"],
        &["--max-upload-size", "ten"],
        // Durations a deadline cannot hold: every upload panicked once.
        &["--body-timeout", "10000000000000000000s"],
        &["--header-read-timeout", "10000000000000000000s"],
        &["--shutdown-timeout", "10000000000000000000s"],
        &["--body-timeout", "8d"],
        &["--port", "http"],
        &["--no-such-flag"],
        &["--fixtures", "/no/such/fixture.json"],
        &["--log-format", "xml"],
    ];
    for args in cases {
        let out = Command::new(bin_path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed a ready line");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?}: no message");
        let subject = args[0].trim_start_matches("--");
        assert!(
            err.contains(subject) || err.contains(args.get(1).copied().unwrap_or_default()),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn help_lists_every_option_with_its_env_var() {
    let out = Command::new(bin_path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--host", "AYMARA_MOCK_HOST"),
        ("--port", "AYMARA_MOCK_PORT"),
        ("--storage-dir", "AYMARA_MOCK_STORAGE_DIR"),
        ("--keep-files", "AYMARA_MOCK_KEEP_FILES"),
        ("--fixtures", "AYMARA_MOCK_FIXTURES"),
        ("--scenario", "AYMARA_MOCK_SCENARIO"),
        ("--watch", "AYMARA_MOCK_WATCH"),
        ("--api-key", "AYMARA_MOCK_API_KEYS"),
        ("--bearer-token", "AYMARA_MOCK_BEARER_TOKENS"),
        ("--no-auth", "AYMARA_MOCK_NO_AUTH"),
        ("--max-upload-size", "AYMARA_MOCK_MAX_UPLOAD_SIZE"),
        ("--seed", "AYMARA_MOCK_SEED"),
        ("--public-url", "AYMARA_MOCK_PUBLIC_URL"),
        ("--bucket", "AYMARA_MOCK_BUCKET"),
        ("--journal-size", "AYMARA_MOCK_JOURNAL_SIZE"),
        ("--journal-bytes", "AYMARA_MOCK_JOURNAL_BYTES"),
        ("--admin-token", "AYMARA_MOCK_ADMIN_TOKEN"),
        ("--ready-file", "AYMARA_MOCK_READY_FILE"),
        ("--log-format", "AYMARA_MOCK_LOG_FORMAT"),
        ("--log-level", "AYMARA_MOCK_LOG_LEVEL"),
        ("--shutdown-timeout", "AYMARA_MOCK_SHUTDOWN_TIMEOUT"),
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
        assert!(help.contains(env), "{env} missing from --help");
    }
}

#[test]
fn api_keys_come_from_flags_or_the_env_var() {
    let bin = start_binary(&[], &[("AYMARA_MOCK_API_KEYS", "alpha,beta")]);
    assert_eq!(upload_blocking(&bin.url, "alpha", b"x").0, 200);
    assert_eq!(upload_blocking(&bin.url, "beta", b"x").0, 200);
    let (status, body) = upload_blocking(&bin.url, "gamma", b"x");
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "auth.invalid_key");

    let bin = start_binary(&["--api-key", "one", "--api-key", "two"], &[]);
    assert_eq!(upload_blocking(&bin.url, "two", b"x").0, 200);
    assert_eq!(upload_blocking(&bin.url, "three", b"x").0, 401);
}

#[test]
fn no_auth_and_bearer_tokens_from_the_command_line() {
    let bin = start_binary(&[], &[("AYMARA_MOCK_NO_AUTH", "true")]);
    assert_eq!(upload_blocking(&bin.url, "", b"x").0, 200);
    let bin = start_binary(&["--bearer-token", "tok"], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1]).file_name("a"),
        );
        reqwest::Client::new()
            .post(format!("{}/v2/files/-/uploads", bin.url))
            .bearer_auth("tok")
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
}

#[test]
fn size_bucket_public_url_and_storage_dir_flags_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let bin = start_binary(
        &[
            "--storage-dir",
            dir.path().to_str().unwrap(),
            "--bucket",
            "b1",
            "--public-url",
            "http://files.test",
        ],
        &[("AYMARA_MOCK_MAX_UPLOAD_SIZE", "1KiB")],
    );
    let (status, body) = upload_blocking(&bin.url, "k", &[7u8; 1024]);
    assert_eq!(status, 200);
    assert!(body["remote_uri"]
        .as_str()
        .unwrap()
        .starts_with("s3://b1/uploads/default/"));
    assert!(body["file_url"]
        .as_str()
        .unwrap()
        .starts_with("http://files.test/__files/"));
    let stored = PathBuf::from(body["local_file_path"].as_str().unwrap());
    assert!(stored.starts_with(std::fs::canonicalize(dir.path()).unwrap()));
    assert_eq!(upload_blocking(&bin.url, "k", &[7u8; 1025]).0, 413);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut bin = start_binary(&["--log-format", "json"], &[]);
    upload_blocking(&bin.url, "k", b"x");
    bin.signal("TERM");
    assert_eq!(bin.wait_exit(Duration::from_secs(15)), Some(0));
    assert!(bin.wait_for_log("shutting down", Duration::from_secs(5)));
    let log = bin.stderr_text();
    let request_line = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .find(|v| v["fields"]["path"] == "/v2/files/-/uploads")
        .expect("a request line");
    assert_eq!(request_line["fields"]["status"], "200");
    assert_eq!(request_line["fields"]["method"], "POST");
}

/// The binary sets two mimalloc options by their numbers in mimalloc.h
/// (src/bin/aymara-mock/main.rs); mimalloc's verbose start-up lists every option by name, so
/// a mimalloc whose numbering moved would show here as the wrong option set.
#[test]
fn the_binary_sets_the_allocator_options_it_documents() {
    let out = Command::new(bin_path())
        .arg("--version")
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in [
        "option 'arena_eager_commit': 0",
        "option 'purge_delay': 100",
    ] {
        assert!(
            stderr.lines().any(|l| l.trim_end() == line),
            "no line {line:?} in:\n{stderr}"
        );
    }
}

/// `check` reports every error of a file in one run, each with
/// file:line:col, the field's path and a hint; the exit code stays 2. A
/// wrong top-level shape says what a fixture is.
#[test]
fn check_reports_three_typos_in_one_run() {
    let out = Command::new(bin_path())
        .args(["check", "tests/data/three-typos.json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            r#"tests/data/three-typos.json:4:31: rules[0].respond: unknown field "stauts", did you mean "status"?"#,
            r#"tests/data/three-typos.json:5:19: rules[1]: unknown field "whne", did you mean "when"?"#,
            r#"tests/data/three-typos.json:6:44: rules[2].fault.kind: unknown value "rest", did you mean "reset"?"#,
        ],
        "{stderr}"
    );

    // At start-up too, before binding.
    let out = Command::new(bin_path())
        .args(["--port", "0", "--fixtures", "tests/data/three-typos.json"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for typo in ["stauts", "whne", "rest"] {
        assert!(stderr.contains(&format!("\"{typo}\"")), "{stderr}");
    }

    let dir = tempfile::tempdir().unwrap();
    let array = dir.path().join("array.json");
    std::fs::write(&array, r#"[{"respond": {"status": 503}}]"#).unwrap();
    let out = Command::new(bin_path())
        .args(["check", array.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#":1:1: a fixture is an object `{"rules": [...]}`, not an array"#),
        "{stderr}"
    );
}

#[test]
fn watch_logs_every_error_of_a_broken_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    std::fs::write(
        &path,
        r#"{"rules": [{"id": "fine", "respond": {"status": 503}}]}"#,
    )
    .unwrap();
    let bin = start_binary(&["--fixtures", path.to_str().unwrap(), "--watch"], &[]);
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/three-typos.json"),
        &path,
    )
    .unwrap();
    assert!(
        bin.wait_for_log("previous rules stay in force", Duration::from_secs(5)),
        "{}",
        bin.stderr_text()
    );
    let log = bin.stderr_text();
    for expected in [
        "rules.json:4:31: rules[0].respond: unknown field \"stauts\"",
        "rules.json:5:19: rules[1]: unknown field \"whne\"",
        "rules.json:6:44: rules[2].fault.kind: unknown value \"rest\"",
    ] {
        assert!(log.contains(expected), "{expected} not in {log}");
    }
    // The previous rule is still in force.
    assert_eq!(upload_blocking(&bin.url, "k", b"x").0, 503);
}

/// `aymara-mock health URL`, the container image's health check.
fn health(args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(bin_path());
    cmd.arg("health").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn health_exits_0_against_a_running_server_and_1_when_it_is_not_healthy() {
    let bin = start_binary(&[], &[]);
    let (code, out, _) = health(&[&bin.url], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("healthy"), "{out}");
    // The URL of /health itself is asked as given.
    assert_eq!(health(&[&format!("{}/health", bin.url)], &[]).0, Some(0));
    // Without a URL: where `serve` would listen with the same environment,
    // 0.0.0.0 asked on loopback (the image sets AYMARA_MOCK_HOST=0.0.0.0).
    let port = bin.url.rsplit(':').next().unwrap();
    let env = [("AYMARA_MOCK_HOST", "0.0.0.0"), ("AYMARA_MOCK_PORT", port)];
    assert_eq!(health(&[], &env).0, Some(0));

    // A server that answers, but not healthy: /prefix/health is a 404.
    let (code, _, err) = health(&[&format!("{}/prefix", bin.url)], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unhealthy") && err.contains("404"), "{err}");

    // A closed port: nothing listens there once the listener is dropped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, out, err) = health(&[&closed_url, "--timeout", "2s"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("cannot connect"), "{err}");

    // A URL that cannot be asked at all is a usage error.
    let (code, _, err) = health(&["https://127.0.0.1:1"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("only http://"), "{err}");
}

#[test]
fn health_gives_up_on_a_server_that_never_answers() {
    // Accepts (the kernel's backlog does) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let started = std::time::Instant::now();
    let (code, _, err) = health(&[&url, "--timeout", "300ms"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no answer within 300 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
