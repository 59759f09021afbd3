//! The admin API (`/__admin`) and the library's test-control methods.

use serde_json::{json, Value};

use crate::helpers::*;
use aymara_mock::{Rule, REDACTED};

async fn get(app: &TestApp, path: &str) -> Value {
    let resp = app.call(reqwest::Method::GET, path).await;
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn post_rules(app: &TestApp, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/__admin/rules"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn fixture(dir: &tempfile::TempDir, name: &str, json: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, json).unwrap();
    path
}

#[tokio::test]
async fn a_posted_rule_fires_once_and_comes_before_fixture_rules() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(
        &dir,
        "f.json",
        r#"{"rules":[{"id":"fixture-429","respond":{"status":429},"when":{"after":1}}]}"#,
    );
    let app = spawn_with(|b| b.fixtures(&f).unwrap()).await;
    let resp = post_rules(&app, r#"{"respond":{"status":503}, "when":{"times":1}}"#).await;
    assert_eq!(resp.status(), 201);
    let ids = resp.json::<Value>().await.unwrap()["ids"].clone();
    assert_eq!(ids.as_array().unwrap().len(), 1);
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(app.upload(b"x".to_vec(), "a.txt").await.status().as_u16());
        }
        v
    };
    // 503 from the admin rule, then the fixture rule lets one through, then 429.
    assert_eq!(statuses, [503, 200, 429]);
    let rules = get(&app, "/__admin/rules").await;
    let rules = rules["rules"].as_array().unwrap();
    assert_eq!(rules[0]["id"], ids[0]);
    assert_eq!(rules[0]["source"], "admin");
    assert_eq!(
        (rules[0]["matched"].as_u64(), rules[0]["fired"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(rules[1]["id"], "fixture-429");
    assert_eq!(rules[1]["source"], f.display().to_string());
    assert_eq!(
        (rules[1]["matched"].as_u64(), rules[1]["fired"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(rules[1]["respond"]["status"], 429);
}

#[tokio::test]
async fn newest_rules_come_first_and_a_batch_keeps_its_order() {
    let app = spawn_app().await;
    post_rules(&app, r#"{"id":"old","pass":{}}"#).await;
    let resp = post_rules(
        &app,
        r#"{"rules":[{"id":"a","pass":{}},{"id":"b","pass":{}}]}"#,
    )
    .await;
    assert_eq!(
        resp.json::<Value>().await.unwrap()["ids"],
        json!(["a", "b"])
    );
    let ids: Vec<String> = app.server.rules().await.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["a", "b", "old"]);
}

#[tokio::test]
async fn invalid_rules_get_400_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    post_rules(&app, r#"{"id":"keep","pass":{}}"#).await;
    let resp = post_rules(
        &app,
        "{\"rules\":[{\"pass\":{}},\n {\"respond\":{\"stauts\":503}}]}",
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation.invalid_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown field \"stauts\", did you mean \"status\"?"),
        "{message}"
    );
    assert_eq!(body["error"]["details"]["line"], 2);
    assert!(body["error"]["details"]["column"].is_number());
    let resp = post_rules(&app, r#"{"pass":{},"when":{"probability":3}}"#).await;
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("when.probability"),
        "{body}"
    );
    let ids: Vec<String> = app.server.rules().await.into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["keep"]);
}

#[tokio::test]
async fn duplicate_ids_get_409() {
    let app = spawn_app().await;
    assert_eq!(
        post_rules(&app, r#"{"id":"x","pass":{}}"#).await.status(),
        201
    );
    let resp = post_rules(&app, r#"{"id":"x","respond":{"status":500}}"#).await;
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "resource.conflict");
    assert_eq!(app.server.rules().await.len(), 1);
}

#[tokio::test]
async fn rules_are_deleted_one_by_one_or_all_at_once() {
    let app = spawn_app().await;
    post_rules(
        &app,
        r#"{"rules":[{"id":"a","pass":{}},{"id":"b","pass":{}}]}"#,
    )
    .await;
    let resp = app.call(reqwest::Method::DELETE, "/__admin/rules/a").await;
    assert_eq!(resp.status(), 200);
    let resp = app.call(reqwest::Method::DELETE, "/__admin/rules/a").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "resource.not_found"
    );
    assert_eq!(app.server.rules().await.len(), 1);
    app.call(reqwest::Method::DELETE, "/__admin/rules").await;
    assert!(get(&app, "/__admin/rules").await["rules"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_journal_shows_retries_rules_uploads_and_hides_credentials() {
    let app = spawn_app().await;
    app.server
        .add_rule(Rule::respond(503).with_id("outage").times(2))
        .await
        .unwrap();
    let content = data(12_345);
    for attempt in 0..3 {
        let n = attempt.to_string();
        app.upload_with(
            content.clone(),
            "clip.mp4",
            "secret-key",
            &[("x-stainless-retry-count", &n)],
        )
        .await;
    }
    // Admin calls are not journaled.
    get(&app, "/__admin/rules").await;
    let journal = get(&app, "/__admin/requests").await;
    let requests = journal["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r["method"], "POST");
        assert_eq!(r["path"], "/v2/files/-/uploads");
        assert_eq!(r["headers"]["x-stainless-retry-count"], i.to_string());
        assert_eq!(r["headers"]["x-api-key"], REDACTED);
        assert!(r["id"].as_str().unwrap().starts_with("req_"));
        assert!(r["time"].as_str().unwrap().ends_with('Z'));
        assert!(!r.to_string().contains("secret-key"));
    }
    assert_eq!(requests[0]["status"], 503);
    assert_eq!(requests[0]["rule"], "outage");
    assert_eq!(requests[1]["rule"], "outage");
    assert_eq!(requests[2]["status"], 200);
    assert_eq!(requests[2]["rule"], Value::Null);
    assert_eq!(requests[0]["upload"], Value::Null);
    let upload = &requests[2]["upload"];
    assert_eq!(upload["filename"], "clip.mp4");
    assert_eq!(upload["size"], 12_345);
    assert_eq!(upload["sha256"], sha256_hex(&content));
    assert_eq!(upload["content_type"], "video/mp4");
    let stored = app.server.uploads().await;
    assert_eq!(upload["file_uuid"], stored[0].file_uuid.as_str());
    assert_eq!(
        std::fs::read(stored[0].local_file_path.as_ref().unwrap()).unwrap(),
        content
    );
    // The typed view agrees.
    let typed = app.server.requests().await;
    assert_eq!(typed[2].upload.as_ref().map(|u| u.size), Some(12_345));
}

#[tokio::test]
async fn the_journal_is_bounded_and_can_be_cleared() {
    let app = spawn_with(|b| b.journal_size(3)).await;
    for i in 0..5 {
        app.client
            .get(app.url("/health"))
            .header("x-request-id", format!("r{i}"))
            .send()
            .await
            .unwrap();
    }
    let ids: Vec<String> = app
        .server
        .requests()
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["r2", "r3", "r4"]);
    let resp = app.call(reqwest::Method::DELETE, "/__admin/requests").await;
    assert_eq!(resp.status(), 200);
    assert!(app.server.requests().await.is_empty());
}

#[tokio::test]
async fn uploads_are_listed_and_deleted_from_disk() {
    let app = spawn_app().await;
    let a: Value = app
        .upload(b"aaa".to_vec(), "a.txt")
        .await
        .json()
        .await
        .unwrap();
    app.upload(b"bbbb".to_vec(), "b.txt").await;
    let listed = get(&app, "/__admin/uploads").await;
    let uploads = listed["uploads"].as_array().unwrap();
    assert_eq!(uploads.len(), 2);
    assert_eq!(uploads[0]["file_uuid"], a["file_uuid"]);
    assert_eq!(uploads[0]["file_url"], a["file_url"]);
    assert_eq!(uploads[0]["local_file_path"], a["local_file_path"]);
    assert_eq!(uploads[0]["sha256"], sha256_hex(b"aaa"));
    assert_eq!(uploads[1]["size"], 4);
    let resp = app.call(reqwest::Method::DELETE, "/__admin/uploads").await;
    assert_eq!(resp.json::<Value>().await.unwrap()["deleted"], 2);
    assert!(!std::path::Path::new(a["local_file_path"].as_str().unwrap()).exists());
    assert!(app.stored_files().is_empty());
    let gone = app
        .client
        .get(a["file_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn reset_restores_fixtures_and_clears_counters_journal_and_storage() {
    let dir = tempfile::tempdir().unwrap();
    let f = fixture(
        &dir,
        "f.json",
        r#"{"rules":[{"id":"first-fails","respond":{"status":500},"when":{"times":1}}]}"#,
    );
    let app = spawn_with(|b| b.fixtures(&f).unwrap()).await;
    assert_eq!(app.upload(b"x".to_vec(), "a").await.status(), 500);
    assert_eq!(app.upload(b"x".to_vec(), "a").await.status(), 200);
    post_rules(&app, r#"{"id":"extra","pass":{}}"#).await;
    let resp = app.call(reqwest::Method::POST, "/__admin/reset").await;
    assert_eq!(resp.status(), 200);
    let rules = app.server.rules().await;
    assert_eq!(rules.len(), 1);
    assert_eq!(
        (rules[0].id.as_str(), rules[0].matched, rules[0].fired),
        ("first-fails", 0, 0)
    );
    assert!(app.server.requests().await.is_empty());
    assert!(app.server.uploads().await.is_empty());
    assert!(app.stored_files().is_empty());
    // The fixture's counter starts again.
    assert_eq!(app.upload(b"x".to_vec(), "a").await.status(), 500);
}

#[tokio::test]
async fn an_admin_token_guards_the_admin_api_only() {
    let app = spawn_with(|b| b.admin_token("admin-secret").bearer_token("api-token")).await;
    let resp = app.call(reqwest::Method::GET, "/__admin/requests").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "auth.invalid_key"
    );
    let resp = app
        .client
        .get(app.url("/__admin/requests"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = app
        .client
        .get(app.url("/__admin/requests"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The API's own bearer auth is unaffected.
    let resp = app.upload_bearer(Some("api-token")).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn unknown_admin_routes_and_methods_are_refused() {
    let app = spawn_app().await;
    let resp = app.call(reqwest::Method::GET, "/__admin/nothing").await;
    assert_eq!(resp.status(), 404);
    let resp = app.call(reqwest::Method::PUT, "/__admin/rules").await;
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST, DELETE");
    let resp = app.call(reqwest::Method::GET, "/__admin/reset").await;
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn library_methods_and_the_admin_api_share_one_state() {
    let app = spawn_app().await;
    let id = app
        .server
        .add_rule(Rule::respond(409).with_id("lib-rule"))
        .await
        .unwrap();
    let listed = get(&app, "/__admin/rules").await;
    assert_eq!(listed["rules"][0]["id"], id.as_str());
    assert_eq!(app.upload(b"x".to_vec(), "a").await.status(), 409);
    app.server.clear_rules().await;
    assert_eq!(app.upload(b"y".to_vec(), "b").await.status(), 200);
    assert_eq!(
        get(&app, "/__admin/requests").await["requests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(app.server.uploads().await.len(), 1);
    app.server.reset().await.unwrap();
    assert!(get(&app, "/__admin/uploads").await["uploads"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(app.server.requests().await.is_empty());
}

#[tokio::test]
async fn journal_and_counters_stay_exact_under_100_concurrent_uploads() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.server
        .add_rule(Rule::pass().with_id("count-all"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..100usize {
        let app = std::sync::Arc::clone(&app);
        tasks.push(tokio::spawn(async move {
            let status = app
                .upload(data(i * 101), &format!("f{i}.bin"))
                .await
                .status();
            assert_eq!(status, 200);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let journal = app.server.requests().await;
    assert_eq!(journal.len(), 100);
    let mut uuids: Vec<String> = journal
        .iter()
        .map(|r| r.upload.as_ref().expect("stored").file_uuid.clone())
        .collect();
    uuids.sort();
    uuids.dedup();
    assert_eq!(uuids.len(), 100);
    assert!(journal
        .iter()
        .all(|r| r.rule.as_deref() == Some("count-all")));
    let rule = &app.server.rules().await[0];
    assert_eq!((rule.matched, rule.fired), (100, 100));
    assert_eq!(app.server.uploads().await.len(), 100);
}

// --- Browser-borne requests (CSRF, DNS rebinding) -------------------------

/// A raw admin request: `method path` with the given extra header lines and body.
async fn raw_admin(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, Value) {
    let addr = app.server.address();
    let port = addr.port();
    // A test's own `Host:` line replaces the default one.
    let host = if headers.to_ascii_lowercase().contains("host:") {
        String::new()
    } else {
        format!("Host: 127.0.0.1:{port}\r\n")
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\n{host}{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let (status, _, body) = raw_exchange(target, request.as_bytes()).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

const RULE: &str = r#"{"id":"from-a-web-page","respond":{"status":500}}"#;

#[tokio::test]
async fn a_cross_origin_text_plain_rule_post_is_refused_and_adds_nothing() {
    let app = spawn_app().await;
    let (status, body) = raw_admin(
        &app,
        "POST",
        "/__admin/rules",
        "Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
        RULE,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "auth.insufficient_permissions");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("http://evil.example"), "{message}");
    assert!(app.server.rules().await.is_empty());
}

#[tokio::test]
async fn a_rule_post_that_is_not_json_is_refused_even_without_an_origin() {
    let app = spawn_app().await;
    for content_type in [
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "",
    ] {
        let (status, body) = raw_admin(&app, "POST", "/__admin/rules", content_type, RULE).await;
        assert_eq!(status, 415, "{content_type:?}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("application/json"), "{message}");
    }
    assert!(app.server.rules().await.is_empty());
    // JSON with parameters is JSON.
    let (status, body) = raw_admin(
        &app,
        "POST",
        "/__admin/rules",
        "Content-Type: Application/JSON; charset=utf-8\r\n",
        RULE,
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn reset_and_deletes_from_a_foreign_origin_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.server
        .add_rule(Rule::pass().with_id("keep"))
        .await
        .unwrap();
    assert_eq!(app.upload(b"x".to_vec(), "a.txt").await.status(), 200);
    for origin in [
        "http://evil.example",
        // A page on another port of the same machine is another origin.
        "http://127.0.0.1:1",
        "http://localhost:1",
        // A sandboxed document (such as a served download) has an opaque origin.
        "null",
    ] {
        for (method, path) in [
            ("POST", "/__admin/reset"),
            ("DELETE", "/__admin/rules"),
            ("DELETE", "/__admin/uploads"),
            ("DELETE", "/__admin/requests"),
        ] {
            let (status, body) =
                raw_admin(&app, method, path, &format!("Origin: {origin}\r\n"), "").await;
            assert_eq!(status, 403, "{origin} {method} {path}: {body}");
            assert_eq!(body["error"]["code"], "auth.insufficient_permissions");
        }
    }
    assert_eq!(app.server.rules().await.len(), 1);
    assert_eq!(app.server.uploads().await.len(), 1);
    assert_eq!(app.server.requests().await.len(), 1);
}

#[tokio::test]
async fn a_foreign_host_is_refused_as_dns_rebinding() {
    let app = spawn_app().await;
    let port = app.server.address().port();
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("localhost.evil.example:{port}"),
    ] {
        let (status, body) = raw_admin(
            &app,
            "GET",
            "/__admin/requests",
            &format!("Host: {host}\r\n"),
            "",
        )
        .await;
        assert_eq!(status, 403, "{host}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("--public-url"), "{message}");
    }
}

#[tokio::test]
async fn same_origin_and_non_browser_admin_requests_keep_working() {
    let app = spawn_app().await;
    let port = app.server.address().port();
    for (host, origin) in [
        (format!("127.0.0.1:{port}"), None),
        (
            format!("127.0.0.1:{port}"),
            Some(format!("http://127.0.0.1:{port}")),
        ),
        (
            format!("localhost:{port}"),
            Some(format!("http://localhost:{port}")),
        ),
        (
            format!("[::1]:{port}"),
            Some(format!("http://[::1]:{port}")),
        ),
        // A loopback alias of the same server (page on localhost, calls 127.0.0.1).
        (
            format!("127.0.0.1:{port}"),
            Some(format!("http://localhost:{port}")),
        ),
        // Through a tunnel or a port mapping: the page and the call share the origin.
        (
            "localhost:9000".to_owned(),
            Some("http://localhost:9000".to_owned()),
        ),
        ("localhost".to_owned(), None),
    ] {
        let mut headers = format!("Host: {host}\r\n");
        if let Some(origin) = &origin {
            headers.push_str(&format!("Origin: {origin}\r\n"));
        }
        let (status, body) = raw_admin(&app, "GET", "/__admin/rules", &headers, "").await;
        assert_eq!(status, 200, "{host} {origin:?}: {body}");
        let with_json = format!("{headers}Content-Type: application/json\r\n");
        let (status, body) =
            raw_admin(&app, "POST", "/__admin/rules", &with_json, r#"{"pass":{}}"#).await;
        assert_eq!(status, 201, "{host} {origin:?}: {body}");
        // A body-less reset, as `httpx.post(url + "/__admin/reset")` sends it.
        let (status, body) = raw_admin(&app, "POST", "/__admin/reset", &headers, "").await;
        assert_eq!(status, 200, "{host} {origin:?}: {body}");
    }
}

#[tokio::test]
async fn the_public_url_host_is_accepted() {
    let app = spawn_with(|b| b.public_url("https://mock.example.test")).await;
    let (status, body) = raw_admin(
        &app,
        "GET",
        "/__admin/rules",
        "Host: mock.example.test\r\nOrigin: https://mock.example.test\r\n",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn on_a_wildcard_address_ip_literals_and_single_label_names_are_accepted() {
    let app = spawn_with(|b| b.host("0.0.0.0")).await;
    let port = app.server.address().port();
    for (host, expected) in [
        (format!("10.1.2.3:{port}"), 200),
        // A docker compose service name.
        (format!("mock:{port}"), 200),
        (format!("mock.evil.example:{port}"), 403),
    ] {
        let (status, body) = raw_admin(
            &app,
            "GET",
            "/__admin/rules",
            &format!("Host: {host}\r\n"),
            "",
        )
        .await;
        assert_eq!(status, expected, "{host}: {body}");
    }
}

#[tokio::test]
async fn with_an_admin_token_any_host_is_accepted_but_not_a_foreign_origin() {
    let app = spawn_with(|b| b.admin_token("t0k")).await;
    let (status, body) = raw_admin(
        &app,
        "GET",
        "/__admin/rules",
        "Host: mock.cluster.example\r\nAuthorization: Bearer t0k\r\n",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_admin(
        &app,
        "POST",
        "/__admin/reset",
        "Origin: http://evil.example\r\nAuthorization: Bearer t0k\r\n",
        "",
    )
    .await;
    assert_eq!(status, 403, "{body}");
}

#[tokio::test]
async fn credential_headers_of_every_kind_are_journaled_redacted() {
    let app = spawn_app().await;
    let credentials = [
        ("cookie", "session=secret-cookie"),
        ("proxy-authorization", "Basic secret-proxy"),
        ("x-admin-token", "secret-admin"),
        ("x-auth-token", "secret-auth"),
        ("x-access-token", "secret-access"),
        ("x-amz-security-token", "secret-amz"),
        ("x-csrf-token", "secret-csrf"),
        ("api-key", "secret-api-key"),
        ("x-goog-api-key", "secret-goog"),
        ("x-client-secret", "secret-client"),
    ];
    let mut headers: Vec<(&str, &str)> = credentials.to_vec();
    headers.push(("x-stainless-retry-count", "0"));
    let resp = app
        .upload_with(b"x".to_vec(), "a.txt", "secret-key", &headers)
        .await;
    assert_eq!(resp.status(), 200);
    let journal = app.server.requests().await;
    let recorded = &journal[0].headers;
    for (name, _) in credentials.iter().chain([("x-api-key", "")].iter()) {
        assert_eq!(recorded[*name], REDACTED, "{name}");
    }
    assert_eq!(recorded["x-stainless-retry-count"], "0");
    assert_eq!(
        recorded["content-type"]
            .as_str()
            .map(|c| c.starts_with("multipart/form-data")),
        Some(true)
    );
    let text = get(&app, "/__admin/requests").await.to_string();
    assert!(!text.contains("secret-"), "{text}");
}

#[tokio::test]
async fn the_journal_is_bounded_in_bytes_and_cuts_long_headers() {
    let app = spawn_with(|b| b.journal_bytes(200_000u64)).await;
    let long = "a".repeat(100_000);
    for _ in 0..50 {
        let resp = app
            .client
            .get(app.url("/health"))
            .header("x-h", &long)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let journal = get(&app, "/__admin/requests").await;
    let requests = journal["requests"].as_array().unwrap();
    // Each entry keeps 8 KiB of the header: about 9 KiB each, 200 kB in all.
    assert!((10..=25).contains(&requests.len()), "{}", requests.len());
    let value = requests[0]["headers"]["x-h"].as_str().unwrap();
    assert!(value.starts_with(&long[..8 * 1024]));
    assert!(
        value.ends_with("…[truncated: 100000 bytes]"),
        "{}",
        &value[8 * 1024..]
    );
}

#[tokio::test]
async fn a_rule_with_a_pattern_over_1_kib_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let body = format!(
        r#"{{"match":{{"headers":{{"x-h":"*{}"}}}},"respond":{{"status":500}}}}"#,
        "a".repeat(1_100)
    );
    let resp = post_rules(&app, &body).await;
    assert_eq!(resp.status(), 400);
    let answer: Value = resp.json().await.unwrap();
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
        + answer["error"]["details"]["message"]
            .as_str()
            .unwrap_or_default();
    assert!(message.contains("longer than 1024 bytes"), "{answer}");
    assert!(message.contains("x-h"), "{answer}");
}
