//! CORS for web apps (`--cors-origin`), over real sockets: what a browser
//! reads of errors, rule answers, faults that answer and S3's XML errors;
//! the default (loopback pages), `*` and `none`; preflights journaled; the
//! flag and its env var on the binary; and the admin API, which no page on
//! another origin reaches whatever is allowed. (Every header on every
//! client route: the route-table walk in `src/routes/cors_walk.rs`.)

use std::net::SocketAddr;
use std::time::Duration;

use aymara_mock::{RequestRecord, Rule};
use serde_json::{json, Value};

use crate::helpers::*;

const PAGE: &str = "http://localhost:5173";

/// A raw request with `Origin: origin`; (status, head, body).
async fn raw(addr: SocketAddr, head: &str, origin: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut request = head.replace("\r\n\r\n", &format!("\r\nOrigin: {origin}\r\n\r\n"));
    if !request.contains("Host:") {
        request = request.replacen("\r\n", &format!("\r\nHost: {addr}\r\n"), 1);
    }
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    raw_exchange(addr, &bytes).await.expect("an answer")
}

/// A preflight for `method path` asking to send `headers`.
async fn preflight(
    addr: SocketAddr,
    path: &str,
    method: &str,
    headers: &str,
    origin: &str,
) -> (u16, String, Vec<u8>) {
    let head = format!(
        "OPTIONS {path} HTTP/1.1\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\nContent-Length: 0\r\n\r\n"
    );
    raw(addr, &head, origin, b"").await
}

/// The page on `origin` may read this answer: its origin echoed, `Vary:
/// Origin`, and the headers a client reads exposed.
fn assert_granted(head: &str, origin: &str) {
    assert_eq!(
        header(head, "access-control-allow-origin").as_deref(),
        Some(origin),
        "{head}"
    );
    assert!(
        head.lines()
            .any(|l| l.to_ascii_lowercase().starts_with("vary:") && l.contains("Origin")),
        "{head}"
    );
    let exposed = header(head, "access-control-expose-headers").unwrap_or_default();
    for name in [
        "x-request-id",
        "etag",
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
    ] {
        assert!(exposed.split(", ").any(|e| e == name), "{name}: {head}");
    }
}

fn assert_not_granted(head: &str) {
    assert_eq!(header(head, "access-control-allow-origin"), None, "{head}");
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nx-api-key: k\r\nContent-Length: 0\r\n\r\n")
}

fn upload_request(addr: SocketAddr, filename: &str) -> (String, Vec<u8>) {
    let body = multipart_body(filename, Some("text/plain"), b"from a web page");
    (upload_head(addr, body.len(), ""), body)
}

async fn with_page_and_rule(rule: Value) -> TestApp {
    let app = spawn_with(|b| b.cors_origin(PAGE)).await;
    let rule: Rule = serde_json::from_value(rule).expect("a valid rule");
    app.server.add_rule(rule).await.expect("rule added");
    app
}

#[tokio::test]
async fn a_429_rules_status_and_retry_hints_are_readable_by_the_page() {
    let app = with_page_and_rule(json!({
        "respond": {"status": 429, "headers": {
            "retry-after": "2", "retry-after-ms": "1500", "x-should-retry": "true", "x-rule-tag": "burst"
        }}
    }))
    .await;
    let addr = app.server.address();
    let (head, body) = upload_request(addr, "a.txt");
    let (status, head, body) = raw(addr, &head, PAGE, &body).await;
    assert_eq!(status, 429, "{head}");
    assert_granted(&head, PAGE);
    assert_eq!(header(&head, "retry-after").as_deref(), Some("2"));
    assert_eq!(header(&head, "retry-after-ms").as_deref(), Some("1500"));
    // A rule's own header is exposed too.
    let exposed = header(&head, "access-control-expose-headers").unwrap_or_default();
    assert!(exposed.contains("x-rule-tag"), "{exposed}");
    let envelope: Value = serde_json::from_slice(&body).expect("the envelope");
    assert_eq!(envelope["error"]["code"], "quota.limit_exceeded");
}

#[tokio::test]
async fn errors_of_the_api_and_of_the_route_table_are_readable_by_the_page() {
    let app = spawn_with(|b| b.cors_origin(PAGE).api_key("right")).await;
    let addr = app.server.address();
    let cases = [
        // 401: a wrong key.
        (
            "GET /v2/files HTTP/1.1\r\nx-api-key: wrong\r\nContent-Length: 0\r\n\r\n".to_owned(),
            401,
        ),
        // 404 from the handler, and from the table.
        (
            get("/v2/files/no-such-file").replace("k\r\n", "right\r\n"),
            404,
        ),
        (get("/v2/nowhere"), 404),
        // 405 from the table.
        (
            "PATCH /v2/files HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_owned(),
            405,
        ),
        // Prefer: code=503.
        (
            "GET /health HTTP/1.1\r\nPrefer: code=503\r\nContent-Length: 0\r\n\r\n".to_owned(),
            503,
        ),
    ];
    for (head, want) in cases {
        let (status, answer, _) = raw(addr, &head, PAGE, b"").await;
        assert_eq!(status, want, "{head}: {answer}");
        assert_granted(&answer, PAGE);
    }
}

#[tokio::test]
async fn a_503_rule_and_a_truncated_answer_carry_the_grant() {
    let app =
        with_page_and_rule(json!({"match": {"route": "health"}, "respond": {"status": 503}})).await;
    let addr = app.server.address();
    let (status, head, _) = raw(addr, &get("/health"), PAGE, b"").await;
    assert_eq!(status, 503);
    assert_granted(&head, PAGE);

    // A truncated answer: the head (with the grant) arrives before the cut.
    let app =
        with_page_and_rule(json!({"match": {"route": "health"}, "fault": {"kind": "truncate"}}))
            .await;
    let addr = app.server.address();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = get("/health").replace(
        "\r\n\r\n",
        &format!("\r\nHost: {addr}\r\nOrigin: {PAGE}\r\n\r\n"),
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("sent");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut got),
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    assert_granted(head, PAGE);
}

#[tokio::test]
async fn a_presigned_put_answers_its_etag_and_its_s3_errors_to_the_page() {
    let app = spawn_with(|b| b.cors_origin(PAGE)).await;
    let addr = app.server.address();
    let create = "POST /v2/files HTTP/1.1\r\nx-api-key: k\r\nContent-Type: application/json\r\nContent-Length: LEN\r\n\r\n";
    let body = json!({"files": [{"local_file_path": "clip.txt"}]}).to_string();
    let (status, head, answer) = raw(
        addr,
        &create.replace("LEN", &body.len().to_string()),
        PAGE,
        body.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    let answer: Value = serde_json::from_slice(&answer).expect("JSON");
    let url = answer["files"][0]["file_url"]
        .as_str()
        .expect("a presigned URL");
    let target = &url[url.find("/__uploads/").expect("a presigned path")..];

    // The preflight grants the signed Content-Type and S3's own headers.
    let (status, head, _) = preflight(
        addr,
        target,
        "PUT",
        "content-type, x-amz-checksum-sha256",
        PAGE,
    )
    .await;
    assert_eq!(status, 204, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-headers").as_deref(),
        Some("content-type, x-amz-checksum-sha256")
    );
    assert_eq!(
        header(&head, "access-control-allow-methods").as_deref(),
        Some("PUT")
    );

    let put = |path: &str| {
        format!("PUT {path} HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n")
    };
    let (status, head, _) = raw(addr, &put(target), PAGE, b"hello").await;
    assert_eq!(status, 200, "{head}");
    assert_granted(&head, PAGE);
    assert!(
        header(&head, "etag").is_some_and(|e| e.starts_with('"')),
        "{head}"
    );

    // A tampered signature: S3's XML error, readable by the page.
    let tampered = target.replace("X-Amz-Signature=", "X-Amz-Signature=0");
    let (status, head, body) = raw(addr, &put(&tampered), PAGE, b"hello").await;
    assert_eq!(status, 403, "{head}");
    assert!(String::from_utf8_lossy(&body).contains("<Error>"), "{head}");
    assert_granted(&head, PAGE);

    // A page not allowed: S3's own CORS refusal, no grant.
    let (status, head, body) =
        preflight(addr, target, "PUT", "content-type", "http://evil.test").await;
    assert_eq!(status, 403, "{head}");
    assert_not_granted(&head);
    assert!(
        String::from_utf8_lossy(&body).contains("<Code>AccessForbidden</Code>"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}

#[tokio::test]
async fn a_preflight_is_journaled_with_what_it_asked_and_what_was_refused() {
    let app = spawn_with(|b| b.cors_origin(PAGE)).await;
    let addr = app.server.address();
    let (status, head, _) = preflight(
        addr,
        "/v2/files/-/uploads",
        "POST",
        "X-Api-Key, x-custom-trace",
        PAGE,
    )
    .await;
    assert_eq!(status, 204);
    // Only what the API accepts is granted: the browser then refuses the rest.
    assert_eq!(
        header(&head, "access-control-allow-headers").as_deref(),
        Some("x-api-key")
    );
    let (status, _, body) = preflight(
        addr,
        "/v2/files/-/uploads",
        "POST",
        "x-api-key",
        "http://evil.test",
    )
    .await;
    assert_eq!(status, 403);
    let message: Value = serde_json::from_slice(&body).expect("the envelope");
    let text = message["error"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("--cors-origin http://evil.test"), "{text}");

    let records: Vec<RequestRecord> = app.server.requests().await;
    let shown: Vec<_> = records
        .iter()
        .map(|r| (r.method.as_str(), r.status, r.cors.clone()))
        .collect();
    assert_eq!(records.len(), 2, "{shown:#?}");
    let granted = records[0].cors.as_ref().expect("a CORS record");
    assert_eq!(
        (records[0].method.as_str(), records[0].status),
        ("OPTIONS", Some(204))
    );
    assert_eq!(granted.origin, PAGE);
    assert!(granted.allowed);
    assert_eq!(granted.preflight_method.as_deref(), Some("POST"));
    assert_eq!(granted.preflight_headers, ["x-api-key", "x-custom-trace"]);
    assert_eq!(granted.refused, ["header x-custom-trace"]);
    let refused = records[1].cors.as_ref().expect("a CORS record");
    assert_eq!(records[1].status, Some(403));
    assert!(!refused.allowed);
    // Nothing was uploaded: the browser sends nothing after a failed preflight.
    assert!(app.server.uploads().await.is_empty());

    // Through the admin API as well, with `cors: null` for other clients.
    app.call(reqwest::Method::GET, "/health").await;
    let journal: Value = app
        .call(reqwest::Method::GET, "/__admin/requests")
        .await
        .json()
        .await
        .expect("JSON");
    let listed = journal["requests"].as_array().expect("requests");
    assert_eq!(
        listed[0]["cors"]["refused"],
        json!(["header x-custom-trace"])
    );
    assert_eq!(listed[2]["cors"], Value::Null);
}

#[tokio::test]
async fn by_default_loopback_pages_are_granted_and_others_are_not() {
    let app = spawn_app().await;
    let addr = app.server.address();
    for page in [
        "http://localhost:3000",
        "http://127.0.0.1:5173",
        "https://app.localhost",
    ] {
        let (status, head, _) =
            preflight(addr, "/v2/files", "POST", "x-api-key, content-type", page).await;
        assert_eq!(status, 204, "{page}: {head}");
        let (_, head, _) = raw(addr, &get("/health"), page, b"").await;
        assert_granted(&head, page);
    }
    for page in [
        "http://evil.test",
        "http://localhost.evil.test:5173",
        "null",
    ] {
        let (status, head, _) = preflight(addr, "/v2/files", "POST", "x-api-key", page).await;
        assert_eq!(status, 403, "{page}: {head}");
        assert_not_granted(&head);
        let (status, head, _) = raw(addr, &get("/health"), page, b"").await;
        assert_eq!(status, 200);
        assert_not_granted(&head);
    }
    // Clients that are not browsers send no Origin, and see no CORS headers.
    let (_, head, _) = raw_exchange(
        addr,
        get("/health")
            .replace("\r\n\r\n", &format!("\r\nHost: {addr}\r\n\r\n"))
            .as_bytes(),
    )
    .await
    .expect("an answer");
    assert_not_granted(&head);
    assert_eq!(header(&head, "vary"), None);
}

#[tokio::test]
async fn star_grants_any_page_and_none_grants_none() {
    let app = spawn_with(|b| b.cors_origin("*")).await;
    let addr = app.server.address();
    let (status, head, _) = preflight(
        addr,
        "/v2/files",
        "GET",
        "x-api-key",
        "https://app.example.test",
    )
    .await;
    assert_eq!(status, 204);
    assert_granted(&head, "https://app.example.test");
    assert_eq!(header(&head, "access-control-allow-private-network"), None);
    // A public page calling a loopback server asks first (Chrome's Private Network Access).
    let head = "OPTIONS /v2/files HTTP/1.1\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Private-Network: true\r\nContent-Length: 0\r\n\r\n";
    let (status, head, _) = raw(addr, head, "https://app.example.test", b"").await;
    assert_eq!(status, 204, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-private-network").as_deref(),
        Some("true")
    );

    let app = spawn_with(|b| b.cors_origin("none")).await;
    let addr = app.server.address();
    let (status, head, body) = preflight(
        addr,
        "/v2/files",
        "GET",
        "x-api-key",
        "http://localhost:5173",
    )
    .await;
    assert_eq!(status, 403, "{head}");
    assert_not_granted(&head);
    assert!(String::from_utf8_lossy(&body).contains("--cors-origin none"));

    let err = aymara_mock::MockServer::builder()
        .cors_origin("localhost:5173")
        .start()
        .await
        .expect_err("not an origin");
    assert!(err.to_string().contains("--cors-origin"), "{err}");
}

#[tokio::test]
async fn the_admin_api_refuses_pages_even_with_cors_origin_star() {
    let app = spawn_with(|b| b.cors_origin("*")).await;
    let addr = app.server.address();
    let page = format!("http://localhost:{}", addr.port() + 1);
    for path in [
        "/__admin/requests",
        "/__admin/rules",
        "/__admin/rules/x",
        "/__admin/uploads",
        "/__admin/reset",
        "/__admin/",
    ] {
        let (status, head, _) = preflight(addr, path, "DELETE", "content-type", &page).await;
        assert_eq!(status, 403, "{path}: {head}");
        assert_not_granted(&head);
        assert_eq!(
            header(&head, "access-control-allow-methods"),
            None,
            "{path}"
        );
        let (status, head, _) = raw(addr, &get(path), &page, b"").await;
        assert_eq!(status, 403, "{path}: {head}");
        assert_not_granted(&head);
    }
    // Admin requests are not journaled, preflights included.
    assert!(app.server.requests().await.is_empty());
}

#[test]
fn the_flag_and_its_env_var_set_the_allowed_origins() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let check = |url: &str, page: &str| -> u16 {
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        rt.block_on(preflight(addr, "/v2/files", "POST", "x-api-key", page))
            .0
    };
    let bin = start_binary(
        &[
            "--cors-origin",
            "http://a.test:1",
            "--cors-origin",
            "http://b.test",
        ],
        &[],
    );
    assert_eq!(check(&bin.url, "http://a.test:1"), 204);
    assert_eq!(check(&bin.url, "http://b.test"), 204);
    assert_eq!(check(&bin.url, "http://localhost:5173"), 403);
    let bin = start_binary(
        &[],
        &[(
            "AYMARA_MOCK_CORS_ORIGIN",
            "http://c.test,http://d.test:8080",
        )],
    );
    assert_eq!(check(&bin.url, "http://d.test:8080"), 204);
    assert_eq!(check(&bin.url, "http://e.test"), 403);
    assert!(
        bin.wait_for_log(
            "cors_origins=http://c.test, http://d.test:8080",
            Duration::from_secs(5)
        ),
        "{}",
        bin.stderr_text()
    );

    let out = std::process::Command::new(bin_path())
        .args(["--cors-origin", "localhost:5173"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cors-origin"));
}
