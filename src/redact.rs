//! What the journal, the near misses and the logs may repeat of a
//! request's headers: credentials never (they are replaced with
//! [`REDACTED`]), and a long value only its first [`MAX_HEADER_VALUE`]
//! bytes. Its own module, so that the journal and the rules, which both
//! show headers, need not import each other for it.

use serde_json::{Map, Value};

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
/// Whether a query parameter's value is a credential: a name a credential
/// header would have, with `_` read as `-` (`api_key`, `access_token`,
/// `client_secret`, `password`), plain `key`, or a signature
/// (`X-Amz-Signature`, `sig`). Clients put keys in URLs too, and the journal
/// is listed by anyone who can reach it.
pub(crate) fn is_credential_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('_', "-");
    is_credential_header(&name)
        || matches!(name.as_str(), "key" | "sig" | "auth")
        || name.contains("signature")
}
/// What a redacted header value is replaced with.
pub const REDACTED: &str = "[redacted]";
/// Longest header value journaled, in bytes; a longer one keeps its first
/// 8 KiB and a marker with its full length. A request head may be ~400 KiB
/// (hyper's limit), and the journal is listed by anyone who can reach it.
pub(crate) const MAX_HEADER_VALUE: usize = 8 * 1024;
/// Records headers as a JSON object, with credential values redacted.
pub(crate) fn record_headers(headers: &http::HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        let key = name.as_str();
        let value = if is_credential_header(key) {
            REDACTED.to_owned()
        } else {
            header_value(headers.get_all(name))
        };
        out.insert(key.to_owned(), Value::String(value));
    }
    out
}

/// A header's values joined by `, `, of which at most [`MAX_HEADER_VALUE`]
/// bytes are kept, followed by a marker giving the full length when cut.
/// Only the kept bytes are copied: the record owns no more than it shows.
pub(crate) fn header_value(values: http::header::GetAll<'_, http::HeaderValue>) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut full = 0usize;
    for (i, value) in values.iter().enumerate() {
        let separator: &[u8] = if i > 0 { b", " } else { b"" };
        for piece in [separator, value.as_bytes()] {
            full += piece.len();
            let room = MAX_HEADER_VALUE.saturating_sub(kept.len());
            kept.extend_from_slice(&piece[..piece.len().min(room)]);
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if full > kept.len() {
        text.push_str(&format!("…[truncated: {full} bytes]"));
    }
    text.shrink_to_fit();
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_header_values_are_truncated_with_a_marker() {
        let mut h = http::HeaderMap::new();
        let long = "a".repeat(190_000);
        h.insert("x-h", http::HeaderValue::from_str(&long).unwrap());
        h.insert("x-short", http::HeaderValue::from_static("v"));
        let rec = record_headers(&h);
        let value = rec["x-h"].as_str().unwrap();
        assert!(value.len() < MAX_HEADER_VALUE + 64, "{} bytes", value.len());
        assert!(value.starts_with(&long[..MAX_HEADER_VALUE]));
        assert!(
            value.ends_with("…[truncated: 190000 bytes]"),
            "{}",
            &value[MAX_HEADER_VALUE..]
        );
        assert_eq!(rec["x-short"], "v");
    }

    #[test]
    fn query_credentials_are_known_by_their_names() {
        for name in [
            "api_key",
            "apiKey",
            "API-KEY",
            "access_token",
            "token",
            "password",
            "client_secret",
            "key",
            "sig",
            "X-Amz-Signature",
            "x-amz-security-token",
            "session_id",
        ] {
            assert!(is_credential_param(name), "{name}");
        }
        for name in [
            "workspace_uuid",
            "limit",
            "offset",
            "file_type",
            "X-Amz-Date",
            "X-Amz-Expires",
        ] {
            assert!(!is_credential_param(name), "{name}");
        }
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
}
