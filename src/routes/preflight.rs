//! A browser's CORS preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) on a client route: 204 with the
//! resource's methods, the requested headers the route accepts and
//! `Access-Control-Max-Age` for an origin `--cors-origin` allows; 403 with
//! no grant for any other (S3's `AccessForbidden` on a presigned URL). What
//! the page asked for and what the grant left out go to the journal.
//!
//! `Access-Control-Allow-Origin` itself is added by the dispatcher, as on
//! every answer to an allowed page (`crate::cors::grant`).

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use super::answer::{Answer, Exchange};
use crate::cors::{accepts_header, Cors, MAX_AGE_SECS};
use crate::error::ApiError;

/// Answers a preflight for a resource serving `methods`.
pub(crate) fn answer(
    cors: &Cors,
    headers: &HeaderMap,
    methods: &[Method],
    presigned: bool,
    ex: &mut Exchange,
) -> Answer {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
            .unwrap_or_default()
    };
    let asked_method = text(header::ACCESS_CONTROL_REQUEST_METHOD);
    let asked_headers: Vec<String> = headers
        .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    let Some(record) = ex.cors.as_mut() else {
        // Not a preflight after all (no `Origin`): nothing to grant.
        return Answer::error(ApiError::bad_request(
            "A CORS preflight needs an Origin header.",
        ));
    };
    record.preflight_method = Some(asked_method.clone());
    record.preflight_headers = asked_headers.clone();
    if !record.allowed {
        let message = cors.refusal(&record.origin);
        let err = if presigned {
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!("CORSResponse: This CORS request is not allowed. {message}"),
            )
            .with_code("AccessForbidden")
        } else {
            ApiError::new(StatusCode::FORBIDDEN, message)
        };
        return Answer::error(err.with_details(serde_json::json!({"origin": record.origin})));
    }

    let mut refused = Vec::new();
    if !methods.iter().any(|m| m.as_str() == asked_method) {
        refused.push(format!("method {asked_method}"));
    }
    let (granted, denied): (Vec<&String>, Vec<&String>) = asked_headers
        .iter()
        .partition(|h| accepts_header(h, presigned));
    refused.extend(denied.iter().map(|h| format!("header {h}")));
    record.refused = refused;

    let mut out = HeaderMap::new();
    let list = |items: Vec<&str>| HeaderValue::from_str(&items.join(", ")).ok();
    if let Some(v) = list(methods.iter().map(Method::as_str).collect()) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !granted.is_empty() {
        if let Some(v) = list(granted.iter().map(|h| h.as_str()).collect()) {
            out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    // Chrome's Private Network Access: a page on a public origin (a deployed
    // front end named in --cors-origin) asks before it calls a loopback server.
    let private_network = headers
        .get("access-control-request-private-network")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    if private_network {
        out.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    out.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(MAX_AGE_SECS),
    );
    out.insert(
        header::VARY,
        HeaderValue::from_static("Access-Control-Request-Method, Access-Control-Request-Headers"),
    );
    Answer::body(StatusCode::NO_CONTENT, out, crate::http_util::empty())
}
