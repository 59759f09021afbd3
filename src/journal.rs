//! The request journal: a bounded record of what clients sent and what they got.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::storage::StoredUpload;

/// Headers whose values are never recorded, by name.
const REDACTED_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];
/// Headers whose values are never recorded, by a part of their name: this
/// catches `x-api-key`, `api-key`, `x-goog-api-key`, `x-admin-token`,
/// `x-auth-token`, `x-amz-security-token`, `x-csrf-token`, `x-client-secret`,
/// `x-session-id` and the like, which carry credentials whatever the vendor.
const REDACTED_NAME_PARTS: [&str; 8] = [
    "api-key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "session",
    "credential",
];

/// Whether a header's value is a credential (names are lowercase).
pub(crate) fn is_credential_header(name: &str) -> bool {
    REDACTED_HEADERS.contains(&name) || REDACTED_NAME_PARTS.iter().any(|part| name.contains(part))
}
/// What a redacted header value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// One request, as listed by `GET /__admin/requests`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// The request's `x-request-id` (the client's, or a generated one).
    pub id: String,
    /// When the request arrived, RFC 3339 UTC.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query parameters (a repeated name keeps its last value).
    pub query: Map<String, Value>,
    /// Request headers, lowercase names; credentials redacted.
    pub headers: Map<String, Value>,
    /// The status answered, or `None` when no answer was sent.
    pub status: Option<u16>,
    /// The id of the rule that fired, if any.
    pub rule: Option<String>,
    /// The network fault carried out (`reset`, `hang`, `truncate`), if any.
    pub fault: Option<String>,
    /// The client's connection ended before the request body was complete
    /// (its `Content-Length` or chunked terminator never came): no answer was
    /// sent and nothing was stored.
    pub cut: bool,
    /// The stored file, for an upload that was stored.
    pub upload: Option<StoredUpload>,
    /// Request body bytes received (chunked transfer framing not counted).
    pub body_bytes: u64,
    /// Milliseconds from arrival to the end of the answer.
    pub duration_ms: u64,
}

/// Records headers as a JSON object, with credential values redacted.
pub(crate) fn record_headers(headers: &http::HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        let key = name.as_str();
        let value = if is_credential_header(key) {
            REDACTED.to_owned()
        } else {
            headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.insert(key.to_owned(), Value::String(value));
    }
    out
}

/// Decodes `a=1&b=x%20y` into pairs.
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8_lossy()
        .into_owned()
}

/// A bounded journal: the oldest records are dropped first.
#[derive(Debug)]
pub(crate) struct Journal {
    capacity: usize,
    records: Mutex<VecDeque<RequestRecord>>,
}

impl Journal {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            records: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
        }
    }

    pub(crate) fn push(&self, record: RequestRecord) {
        if self.capacity == 0 {
            return;
        }
        let mut records = lock(&self.records);
        while records.len() >= self.capacity {
            records.pop_front();
        }
        records.push_back(record);
    }

    pub(crate) fn list(&self) -> Vec<RequestRecord> {
        lock(&self.records).iter().cloned().collect()
    }

    pub(crate) fn clear(&self) {
        lock(&self.records).clear();
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// structure guarded here stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            time: String::new(),
            method: "POST".into(),
            path: "/".into(),
            query: Map::new(),
            headers: Map::new(),
            status: Some(200),
            rule: None,
            fault: None,
            cut: false,
            upload: None,
            body_bytes: 0,
            duration_ms: 0,
        }
    }

    #[test]
    fn drops_oldest_when_full() {
        let j = Journal::new(2);
        for id in ["a", "b", "c"] {
            j.push(record(id));
        }
        let ids: Vec<_> = j.list().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn credentials_are_redacted_but_listed() {
        let mut h = http::HeaderMap::new();
        h.insert("x-api-key", http::HeaderValue::from_static("secret"));
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer secret"),
        );
        h.insert("x-other", http::HeaderValue::from_static("v"));
        h.insert("cookie", http::HeaderValue::from_static("a=secret"));
        h.insert("x-auth-token", http::HeaderValue::from_static("secret"));
        let rec = record_headers(&h);
        assert_eq!(rec["x-api-key"], REDACTED);
        assert_eq!(rec["authorization"], REDACTED);
        assert_eq!(rec["cookie"], REDACTED);
        assert_eq!(rec["x-auth-token"], REDACTED);
        assert_eq!(rec["x-other"], "v");
        for plain in [
            "content-type",
            "x-stainless-retry-count",
            "x-request-id",
            "user-agent",
        ] {
            assert!(!is_credential_header(plain), "{plain}");
        }
    }

    #[test]
    fn query_is_decoded() {
        let q = parse_query(Some("workspace_uuid=ws%201&x=a+b&flag"));
        assert_eq!(
            q,
            [
                ("workspace_uuid".into(), "ws 1".into()),
                ("x".into(), "a b".into()),
                ("flag".into(), String::new())
            ]
        );
    }
}
