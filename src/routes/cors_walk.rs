//! Every client route of the table answers a page on an allowed origin
//! with the CORS headers, and its preflight with a grant: one request per
//! [`Route`] variant, checked to cover them all, so that a route added to
//! the table without a request here fails this test (and one added to
//! [`Route`] without a line in `variant` fails to compile).

use http::Method;
use serde_json::{json, Value};

use super::Route;
use crate::MockServer;

const PAGE: &str = "http://localhost:5173";
const OTHER: &str = "http://localhost:5174";

/// Each client route's place in the walk; `None`: not a client route.
fn variant(route: &Route) -> Option<usize> {
    Some(match route {
        Route::Upload => 0,
        Route::Health => 1,
        Route::OpenApi => 2,
        Route::Download { .. } => 3,
        Route::CreateFiles => 4,
        Route::ListFiles => 5,
        Route::GetFile { .. } => 6,
        Route::FileStatus { .. } => 7,
        Route::FileFrames { .. } => 8,
        Route::DeleteFile { .. } => 9,
        Route::Put { .. } => 10,
        Route::Frame { .. } => 11,
        Route::Preflight { .. } => 12,
        Route::Admin(_) => return None,
    })
}

/// How many client routes `variant` numbers.
const CLIENT_ROUTES: usize = 13;

/// One request of the walk.
struct Call {
    method: Method,
    /// Path and query.
    target: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Call {
    fn new(method: Method, target: impl Into<String>) -> Self {
        Self {
            method,
            target: target.into(),
            content_type: None,
            body: Vec::new(),
        }
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    call: &Call,
    origin: &str,
) -> reqwest::Response {
    let mut req = client
        .request(call.method.clone(), format!("{base}{}", call.target))
        .header("origin", origin)
        .header("x-api-key", "k")
        .body(call.body.clone());
    if let Some(ct) = call.content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.expect("an answer")
}

async fn preflight(
    client: &reqwest::Client,
    base: &str,
    call: &Call,
    origin: &str,
) -> reqwest::Response {
    client
        .request(Method::OPTIONS, format!("{base}{}", call.target))
        .header("origin", origin)
        .header("access-control-request-method", call.method.as_str())
        .header(
            "access-control-request-headers",
            "x-api-key, content-type, x-request-id, x-stainless-retry-count",
        )
        .send()
        .await
        .expect("an answer")
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test]
async fn every_client_route_grants_an_allowed_page_and_its_preflight() {
    let server = MockServer::builder()
        .cors_origin(PAGE)
        .start()
        .await
        .expect("server starts");
    let base = server.url().to_owned();
    let client = reqwest::Client::new();

    // A stored file and an announced one give the routes real ids.
    let boundary = "cors-walk";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--{boundary}--\r\n"
    );
    let upload = Call {
        method: Method::POST,
        target: crate::UPLOAD_PATH.to_owned(),
        content_type: Some("multipart/form-data; boundary=cors-walk"),
        body: multipart.into_bytes(),
    };
    let stored: Value = send(&client, &base, &upload, PAGE)
        .await
        .json()
        .await
        .expect("upload answer");
    let uuid = stored["file_uuid"].as_str().expect("file_uuid").to_owned();
    let download = stored["file_url"].as_str().expect("file_url")[base.len()..].to_owned();
    let create = Call {
        method: Method::POST,
        target: "/v2/files".into(),
        content_type: Some("application/json"),
        body: json!({"files": [{"local_file_path": "b.txt"}]})
            .to_string()
            .into_bytes(),
    };
    let created: Value = send(&client, &base, &create, PAGE)
        .await
        .json()
        .await
        .expect("create answer");
    let presigned = created["files"][0]["file_url"]
        .as_str()
        .expect("a presigned URL")[base.len()..]
        .to_owned();
    let put = Call {
        method: Method::PUT,
        target: presigned,
        content_type: Some("text/plain"),
        body: b"put bytes".to_vec(),
    };

    let calls = vec![
        upload,
        Call::new(Method::GET, "/health"),
        Call::new(Method::GET, "/openapi.json"),
        Call::new(Method::GET, download),
        create,
        Call::new(Method::GET, "/v2/files"),
        Call::new(Method::GET, format!("/v2/files/{uuid}")),
        Call::new(Method::GET, format!("/v2/files/{uuid}/status")),
        Call::new(Method::GET, format!("/v2/files/{uuid}/frames")),
        put,
        Call::new(Method::GET, format!("/__frames/{uuid}/0.png")),
        // Last: it deletes the file the others read.
        Call::new(Method::DELETE, format!("/v2/files/{uuid}")),
    ];

    // The walk covers the table: every client route, preflights included.
    let mut seen = [false; CLIENT_ROUTES];
    for call in &calls {
        let route = Route::resolve(&call.method, call.path()).expect("a route");
        seen[variant(&route).expect("a client route")] = true;
        let pre = Route::preflight(call.path()).expect("a preflight route");
        seen[variant(&pre).expect("a client route")] = true;
    }
    let missing: Vec<usize> = (0..CLIENT_ROUTES).filter(|i| !seen[*i]).collect();
    assert!(
        missing.is_empty(),
        "client routes (see `variant`) with no request in the walk: {missing:?}"
    );

    for call in &calls {
        let what = format!("{} {}", call.method, call.path());

        let pre = preflight(&client, &base, call, PAGE).await;
        assert_eq!(pre.status(), 204, "preflight of {what}");
        assert_eq!(header(&pre, "access-control-allow-origin"), PAGE, "{what}");
        let methods = header(&pre, "access-control-allow-methods");
        assert!(
            methods.split(", ").any(|m| m == call.method.as_str()),
            "{what}: {methods}"
        );
        assert_eq!(
            header(&pre, "access-control-allow-headers"),
            "x-api-key, content-type, x-request-id, x-stainless-retry-count",
            "{what}"
        );
        assert_eq!(header(&pre, "access-control-max-age"), "600", "{what}");
        assert!(header(&pre, "vary").contains("Origin"), "{what}");

        // The refused page: no grant, whatever the route.
        let refused = preflight(&client, &base, call, OTHER).await;
        assert_eq!(refused.status(), 403, "preflight of {what} from {OTHER}");
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{what}"
        );

        let answer = send(&client, &base, call, PAGE).await;
        assert!(
            answer.status().as_u16() < 500,
            "{what}: {}",
            answer.status()
        );
        assert_eq!(
            header(&answer, "access-control-allow-origin"),
            PAGE,
            "{what}"
        );
        assert!(header(&answer, "vary").contains("Origin"), "{what}");
        let exposed = header(&answer, "access-control-expose-headers");
        for name in [
            "x-request-id",
            "etag",
            "retry-after",
            "retry-after-ms",
            "x-should-retry",
        ] {
            assert!(
                exposed.split(", ").any(|e| e == name),
                "{what}: {name} not in {exposed}"
            );
        }
        assert!(
            !header(&answer, "x-request-id").is_empty(),
            "{what}: no x-request-id"
        );
    }

    // The same calls from a page not allowed: answered, but not granted.
    for call in &calls[1..3] {
        let answer = send(&client, &base, call, OTHER).await;
        assert!(
            answer
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{} {}",
            call.method,
            call.path()
        );
    }
}
