//! "Why did my test fail?": near misses in the journal JSON, retries grouped
//! into calls, `duplicate_of` on repeated uploads, and the live page's files.

use serde_json::{json, Value};

use crate::helpers::*;

const STORED_BUT_500: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/scenarios/stored-but-500.json"
);

async fn add_rule(app: &TestApp, rule: Value) {
    let resp = app
        .client
        .post(app.url("/__admin/rules"))
        .json(&rule)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 201, "{rule}");
}

async fn journal_json(app: &TestApp) -> Vec<Value> {
    let body: Value = serde_json::from_str(&journal_text(app).await).expect("json");
    body["requests"].as_array().expect("a list").clone()
}

/// The journal as sent, to check that a secret is repeated nowhere in it.
async fn journal_text(app: &TestApp) -> String {
    app.client
        .get(app.url("/__admin/requests"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text")
}

/// Uploads 8 bytes as `a.bin` with the request `build` makes; its status.
async fn upload_a_bin(build: reqwest::RequestBuilder) -> u16 {
    build
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(vec![1; 8]).file_name("a.bin"),
        ))
        .send()
        .await
        .expect("sent")
        .status()
        .as_u16()
}

/// Sends a 5120-byte `clip.mov` (`video/quicktime`) upload.
async fn upload_clip(app: &TestApp, key: Option<&str>) -> u16 {
    let part = reqwest::multipart::Part::bytes(vec![7u8; 5120])
        .file_name("clip.mov")
        .mime_str("video/quicktime")
        .expect("mime");
    let mut req = app
        .client
        .post(app.server.upload_url())
        .multipart(reqwest::multipart::Form::new().part("file", part));
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    req.send().await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn each_kind_of_failed_condition_is_a_near_miss_with_expected_and_actual() {
    let app = spawn_app().await;
    // (rule, condition, expected, actual) for a 5120-byte clip.mov upload.
    let cases = [
        (
            json!({"phase": "upload", "match": {"filename": "*.mp4"}}),
            "match.filename",
            json!("*.mp4"),
            json!("clip.mov"),
        ),
        (
            json!({"phase": "upload", "match": {"content_type": "video/mp4"}}),
            "match.content_type",
            json!("video/mp4"),
            json!("video/quicktime"),
        ),
        (
            json!({"phase": "complete", "match": {"size": {"min": 1048576}}}),
            "match.size.min",
            json!(1048576),
            json!(5120),
        ),
        (
            json!({"phase": "complete", "match": {"size": {"max": "1KiB"}}}),
            "match.size.max",
            json!(1024),
            json!(5120),
        ),
        (
            json!({"match": {"method": "PUT", "path": "/v2/files/-/uploads"}}),
            "match.method",
            json!("PUT"),
            json!("POST"),
        ),
        (
            json!({"match": {"path": "/v2/files/*/other"}}),
            "match.path",
            json!("/v2/files/*/other"),
            json!("/v2/files/-/uploads"),
        ),
        (
            json!({"match": {"headers": {"x-mode": "fast"}}}),
            "match.headers.x-mode",
            json!("fast"),
            Value::Null,
        ),
        (
            json!({"match": {"headers": {"x-api-key": "limited-*"}}}),
            "match.headers.x-api-key",
            json!("limited-*"),
            json!("…(1 char)"),
        ),
        (
            json!({"match": {"query": {"workspace_uuid": "ws-1"}}}),
            "match.query.workspace_uuid",
            json!("ws-1"),
            Value::Null,
        ),
        (
            json!({"when": {"after": 2}}),
            "when.after",
            json!(2),
            json!(1),
        ),
    ];
    for (i, (mut rule, condition, expected, actual)) in cases.into_iter().enumerate() {
        app.server.clear_rules().await;
        app.server.clear_requests().await;
        let id = format!("case-{i}");
        rule["id"] = json!(id);
        rule["respond"] = json!({"status": 500});
        add_rule(&app, rule).await;
        assert_eq!(upload_clip(&app, Some("k")).await, 200, "{condition}");
        let records = journal_json(&app).await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0]["rule"], Value::Null);
        let misses = records[0]["near_misses"].as_array().expect("near_misses");
        assert_eq!(misses.len(), 1, "{condition}: {misses:?}");
        assert_eq!(misses[0]["rule"], json!(id));
        let failed = &misses[0]["failed"];
        assert_eq!(
            failed.as_array().map(Vec::len),
            Some(1),
            "{condition}: {failed}"
        );
        assert_eq!(failed[0]["condition"], condition);
        assert_eq!(failed[0]["expected"], expected, "{condition}");
        assert_eq!(failed[0]["actual"], actual, "{condition}");
        assert!(failed[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // `phase`: rejected at the request phase (no key), the upload rule was never reached.
    app.server.clear_rules().await;
    app.server.clear_requests().await;
    add_rule(&app, json!({"id": "late", "phase": "upload", "match": {"filename": "*.mov"}, "respond": {"status": 500}})).await;
    assert_eq!(upload_clip(&app, None).await, 401);
    let records = app.server.unmatched_requests().await;
    let failed = &records[0].near_misses[0].failed;
    assert_eq!(failed[0].condition, "phase");
    assert_eq!(failed[0].expected, "upload");
    assert_eq!(failed[0].actual, "request");
    assert_eq!(failed[1].condition, "match.filename");
    assert_eq!(
        failed[1].actual,
        Value::Null,
        "the file part was never read"
    );

    // `when.times`, and a decided request lists the earlier rule that nearly matched.
    app.server.clear_rules().await;
    app.server.clear_requests().await;
    add_rule(&app, json!({"id": "fallback", "respond": {"status": 503}})).await;
    add_rule(
        &app,
        json!({"id": "once", "when": {"times": 1}, "respond": {"status": 500}}),
    )
    .await;
    assert_eq!(upload_clip(&app, Some("k")).await, 500);
    assert_eq!(upload_clip(&app, Some("k")).await, 503);
    let records = journal_json(&app).await;
    assert_eq!(records[1]["rule"], "fallback");
    let miss = &records[1]["near_misses"][0];
    assert_eq!(miss["rule"], "once");
    assert_eq!(miss["failed"][0]["condition"], "when.times");
    assert_eq!(miss["failed"][0]["expected"], 1);
    assert_eq!(miss["failed"][0]["actual"], 1);
}

#[tokio::test]
async fn at_most_three_near_misses_closest_first() {
    let app = spawn_app().await;
    add_rule(&app, json!({"id": "two-off", "match": {"method": "GET", "path": "/x"}, "respond": {"status": 500}})).await;
    for i in 0..4 {
        add_rule(&app, json!({"id": format!("one-off-{i}"), "match": {"headers": {"x-n": format!("{i}")}}, "respond": {"status": 500}})).await;
    }
    assert_eq!(upload_clip(&app, Some("k")).await, 200);
    let records = app.server.unmatched_requests().await;
    let ids: Vec<&str> = records[0]
        .near_misses
        .iter()
        .map(|m| m.rule.as_str())
        .collect();
    // Run-time rules are tried newest first.
    assert_eq!(ids, ["one-off-3", "one-off-2", "one-off-1"]);
}

#[tokio::test]
async fn a_retried_stored_but_500_upload_is_one_call_and_a_duplicate() {
    let app = spawn_with(|b| b.fixtures(STORED_BUT_500).expect("fixture")).await;
    let content = data(3000);
    let attempt = |n: &'static str| {
        let part = reqwest::multipart::Part::bytes(content.clone()).file_name("once.bin");
        app.client
            .post(app.server.upload_url())
            .header("x-api-key", "k")
            .header("user-agent", "AymaraAI/Python test")
            .header("x-stainless-retry-count", n)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
    };
    assert_eq!(attempt("0").await.expect("sent").status(), 500);
    assert_eq!(attempt("1").await.expect("sent").status(), 200);
    // Another call, not a retry.
    assert_eq!(attempt("0").await.expect("sent").status(), 200);

    let records = journal_json(&app).await;
    let first = records[0]["id"].as_str().expect("id");
    let calls: Vec<(&Value, &Value, &Value)> = records
        .iter()
        .map(|r| (&r["call"], &r["attempt"], &r["retry_count"]))
        .collect();
    assert_eq!(calls[0], (&json!(first), &json!(1), &json!(0)));
    assert_eq!(calls[1], (&json!(first), &json!(2), &json!(1)));
    assert_eq!(calls[2], (&records[2]["id"], &json!(1), &json!(0)));
    let seqs: Vec<&Value> = records.iter().map(|r| &r["seq"]).collect();
    assert_eq!(seqs, [&json!(1), &json!(2), &json!(3)]);

    let uploads: Value = app
        .client
        .get(app.url("/__admin/uploads"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let uploads = uploads["uploads"].as_array().expect("uploads");
    assert_eq!(uploads.len(), 3);
    let original = &uploads[0]["file_uuid"];
    assert_eq!(uploads[0]["duplicate_of"], Value::Null);
    assert_eq!(&uploads[1]["duplicate_of"], original);
    assert_eq!(&uploads[2]["duplicate_of"], original);
    assert_eq!(&records[1]["upload"]["duplicate_of"], original);
    assert_eq!(records[0]["upload"]["duplicate_of"], Value::Null);
    assert_eq!(uploads[0]["sha256"], sha256_hex(&content));
}

#[tokio::test]
async fn requests_after_a_seq_lists_only_newer_ones_with_the_oldest_kept() {
    let app = spawn_app().await;
    for _ in 0..3 {
        app.call(reqwest::Method::GET, "/health").await;
    }
    let resp = app
        .client
        .get(app.url("/__admin/requests?after=2"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["x-journal-oldest-seq"], "1");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["requests"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["requests"][0]["seq"], 3);
    app.server.reset().await.expect("reset");
    let resp = app
        .client
        .get(app.url("/__admin/requests?after=3"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["x-journal-oldest-seq"], "4");
    let resp = app
        .client
        .get(app.url("/__admin/requests?after=x"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"]["details"]["field"], "after");
}

#[tokio::test]
async fn the_live_page_is_served_without_the_token_but_its_data_is_not() {
    let app = spawn_with(|b| b.admin_token("s3cret")).await;
    for (path, kind) in [
        ("/__admin/", "text/html"),
        ("/__admin", "text/html"),
        ("/__admin/app.js", "text/javascript"),
        ("/__admin/style.css", "text/css"),
    ] {
        let resp = app.call(reqwest::Method::GET, path).await;
        assert_eq!(resp.status(), 200, "{path}");
        let content_type = resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(resp.headers().contains_key("content-security-policy"));
        let text = resp.text().await.expect("text");
        assert!(
            !text.contains("https://"),
            "{path} fetches nothing from elsewhere"
        );
    }
    let page = app
        .call(reqwest::Method::GET, "/__admin/")
        .await
        .text()
        .await
        .expect("html");
    assert!(page.contains(r#"src="/__admin/app.js""#));
    assert_eq!(
        app.call(reqwest::Method::GET, "/__admin/requests")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.call(reqwest::Method::POST, "/__admin/").await.status(),
        401
    );
}

#[tokio::test]
async fn the_journal_records_the_error_code_each_answer_sent() {
    let app = spawn_app().await;
    add_rule(
        &app,
        json!({"rules": [
            {"id": "custom", "match": {"headers": {"x-api-key": "custom"}},
             "respond": {"status": 429, "code": "quota.custom"}},
            {"id": "replaced", "match": {"headers": {"x-api-key": "replaced"}},
             "respond": {"status": 500, "body": {"error": {"code": "my.own"}}}},
            {"id": "no-envelope", "match": {"headers": {"x-api-key": "bare"}},
             "respond": {"status": 503, "body": ["not", "an", "envelope"]}}
        ]}),
    )
    .await;
    for key in [
        Some("custom"),
        Some("replaced"),
        Some("bare"),
        None,
        Some("fine"),
    ] {
        upload_clip(&app, key).await;
    }
    let codes: Vec<_> = journal_json(&app)
        .await
        .iter()
        .map(|r| (r["status"].clone(), r["error_code"].clone()))
        .collect();
    assert_eq!(
        codes,
        [
            (json!(429), json!("quota.custom")),
            (json!(500), json!("my.own")),
            (json!(503), Value::Null),
            (json!(401), json!("auth.invalid_key")),
            (json!(200), Value::Null),
        ]
    );
}

/// A credential near miss says why without repeating the credential: its
/// masked form, its length, and how much of it agrees with the pattern.
#[tokio::test]
async fn a_credential_near_miss_shows_the_typo_not_the_key() {
    let app = spawn_app().await;
    add_rule(
        &app,
        json!({"id": "limited", "match": {"headers": {"x-api-key": "limited-*"}}, "respond": {"status": 429}}),
    )
    .await;
    add_rule(
        &app,
        json!({"id": "bearer", "match": {"headers": {"authorization": "Bearer sk-live-*"}}, "respond": {"status": 429}}),
    )
    .await;
    let sent = upload_a_bin(
        app.client
            .post(app.server.upload_url())
            .header("x-api-key", "limted-key-1")
            .bearer_auth("sk-lvie-0123456789"),
    )
    .await;
    assert_eq!(sent, 200);
    let body = journal_text(&app).await;
    for secret in ["limted-key-1", "sk-lvie-0123456789", "0123456789"] {
        assert!(!body.contains(secret), "{secret} repeated in {body}");
    }
    let journal: Value = serde_json::from_str(&body).expect("json");
    let misses = journal["requests"][0]["near_misses"]
        .as_array()
        .expect("near misses");
    let failed = |rule: &str| {
        let miss = misses
            .iter()
            .find(|m| m["rule"] == rule)
            .unwrap_or_else(|| panic!("no near miss of {rule}: {misses:?}"));
        miss["failed"][0].clone()
    };
    let key = failed("limited");
    assert_eq!(key["condition"], "match.headers.x-api-key");
    assert_eq!(key["expected"], "limited-*");
    assert_eq!(key["actual"], "li…(12 chars)");
    assert_eq!(
        key["credential"],
        json!({"length": 12, "matching_prefix": 3, "masked": "li…(12 chars)"})
    );
    assert!(
        key["message"]
            .as_str()
            .is_some_and(|m| m.contains("the first 3 agree")),
        "{key}"
    );
    let token = failed("bearer");
    assert_eq!(
        token["credential"],
        json!({"length": 18, "matching_prefix": 11, "masked": "Bearer sk…(18 chars)"})
    );
}

/// An upload refused or cut by a rule is journaled with what was seen of
/// its file (name as sent, content type, bytes so far), not just
/// `"upload": null`.
#[tokio::test]
async fn a_refused_or_cut_upload_is_journaled_with_its_file() {
    let app = spawn_with(|b| {
        b.scenario("cut-mid-upload")
            .expect("shipped")
            .max_upload_size(aymara_mock::ByteSize::new(1 << 20))
    })
    .await;
    add_rule(
        &app,
        json!({"id": "no-mov", "phase": "upload", "match": {"filename": "*.mov"}, "respond": {"status": 415}}),
    )
    .await;
    add_rule(
        &app,
        json!({"id": "no-big-txt", "match": {"filename": "*.txt", "size": {"min": 1000}}, "respond": {"status": 422}}),
    )
    .await;
    // Refused at the `upload` phase: no file byte read.
    assert_eq!(upload_clip(&app, Some("k")).await, 415);
    // Cut by the scenario after 64 KiB of body.
    let cut = app
        .client
        .post(app.server.upload_url())
        .header("x-api-key", "k")
        .multipart(
            reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(data(300_000))
                    .file_name("movie.mp4")
                    .mime_str("video/mp4")
                    .expect("mime"),
            ),
        )
        .send()
        .await;
    assert!(cut.is_err(), "the connection is reset");
    // Refused at `complete`: received whole, then discarded.
    assert_eq!(app.upload(data(5000), "notes.txt").await.status(), 422);
    // Stored: seen and stored.
    assert_eq!(app.upload(data(10), "ok.bin").await.status(), 200);

    let records = journal_json(&app).await;
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(records[0]["rule"], "no-mov");
    assert_eq!(records[0]["upload"], Value::Null);
    assert_eq!(
        records[0]["file_seen"],
        json!({"filename": "clip.mov", "content_type": "video/quicktime", "bytes": 0, "complete": false})
    );
    assert_eq!(records[1]["rule"], "cut-mp4-mid-upload");
    assert_eq!(records[1]["upload"], Value::Null);
    let seen = &records[1]["file_seen"];
    assert_eq!(seen["filename"], "movie.mp4");
    assert_eq!(seen["content_type"], "video/mp4");
    assert_eq!(seen["complete"], false);
    let bytes = seen["bytes"].as_u64().expect("bytes");
    // The 64 KiB of body the rule lets through, less the multipart framing
    // and what the parser holds back while it looks for a boundary.
    assert!(bytes > 32_768 && bytes <= 65_536, "{seen}");
    assert_eq!(records[2]["rule"], "no-big-txt");
    assert_eq!(records[2]["upload"], Value::Null);
    assert_eq!(records[2]["file_seen"]["bytes"], 5000);
    assert_eq!(records[2]["file_seen"]["complete"], true);
    assert_eq!(records[3]["upload"]["filename"], "ok.bin");
    assert_eq!(records[3]["file_seen"]["bytes"], 10);
    assert!(app.stored_files().iter().all(|p| !p.ends_with("movie.mp4")));
}

/// A key, token or password in the URL is a credential like one in a
/// header: the journal lists the parameter but never its value, and a near
/// miss on it shows the masked form. Other parameters stay as sent.
#[tokio::test]
async fn query_credentials_are_redacted_in_the_journal() {
    let app = spawn_app().await;
    add_rule(
        &app,
        json!({"id": "by-key", "match": {"query": {"api_key": "limited-*"}}, "respond": {"status": 429}}),
    )
    .await;
    let sent = upload_a_bin(
        app.client
            .post(app.url(
                "/v2/files/-/uploads?workspace_uuid=ws1&api_key=limted-key-1&access_token=tok-secret&password=hunter2",
            ))
            .header("x-api-key", "k"),
    )
    .await;
    assert_eq!(sent, 200);
    let body = journal_text(&app).await;
    for secret in ["limted-key-1", "tok-secret", "hunter2"] {
        assert!(!body.contains(secret), "{secret} repeated in {body}");
    }
    let journal: Value = serde_json::from_str(&body).expect("json");
    let entry = &journal["requests"][0];
    assert_eq!(entry["query"]["workspace_uuid"], "ws1");
    for name in ["api_key", "access_token", "password"] {
        assert_eq!(entry["query"][name], aymara_mock::REDACTED, "{name}");
    }
    let miss = &entry["near_misses"][0]["failed"][0];
    assert_eq!(miss["condition"], "match.query.api_key");
    assert_eq!(miss["actual"], "li…(12 chars)");
}
