//! Small HTTP helpers shared by the handlers: the response body type, request
//! ids, timestamps, percent-encoding, hex digests and content types.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Error type of response bodies (file streams can fail mid-way).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the server sends.
pub(crate) type ResponseBody = BoxBody<Bytes, BoxError>;

/// A complete in-memory body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(crate) fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Characters kept as they are in a path segment: RFC 3986 unreserved.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (every byte but the unreserved ones).
pub(crate) fn encode_segment(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, PATH_SEGMENT).to_string()
}

/// The content type a file's name suggests by its extension, else
/// `application/octet-stream`: what a file gets when the client gave none.
pub(crate) fn guess_content_type(name: &str) -> String {
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// The media type of a `Content-Type` value without its parameters: what
/// comes before the first `;`, trimmed. Its case is kept (compare it
/// ignoring case, or lowercase it).
pub(crate) fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// The request's `Content-Length`, when it is a number (spaces around it
/// allowed).
pub(crate) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Lowercase hex of `bytes`, two digits a byte: how digests are written
/// (SHA-256 of stored files, presigned-URL signatures, `ETag`s).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A fresh request id in the real API's style (`req_` + 32 hex digits).
pub(crate) fn new_request_id() -> String {
    format!("req_{}", random_uuid().simple())
}

/// A UUID v4 from the thread-local RNG: no system call per id, unlike
/// `Uuid::new_v4` (three ids per upload add up at thousands of uploads a second).
pub(crate) fn random_uuid() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}

/// Formats a time as RFC 3339 UTC with milliseconds, e.g. `2026-11-25T17:50:41.123Z`.
/// humantime (already compiled for object_store) replaces a hand-written
/// civil-from-days conversion.
///
/// Total: RFC 3339 has four-digit years, and humantime panics past 9999, so
/// a later time is written as the last millisecond of 9999.
pub(crate) fn rfc3339(time: std::time::SystemTime) -> String {
    let last = std::time::UNIX_EPOCH + std::time::Duration::from_millis(253_402_300_799_999);
    humantime::format_rfc3339_millis(time.min(last)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_629_041_123);
        assert_eq!(rfc3339(t), "2026-11-25T17:50:41.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        let far = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
    }

    #[test]
    fn content_types_are_guessed_from_the_extension() {
        assert_eq!(guess_content_type("clip.mp4"), "video/mp4");
        assert_eq!(
            guess_content_type("no-extension"),
            "application/octet-stream"
        );
    }

    #[test]
    fn the_essence_drops_parameters_and_spaces() {
        assert_eq!(essence(" Text/HTML ; charset=utf-8"), "Text/HTML");
        assert_eq!(essence("application/json"), "application/json");
        assert_eq!(essence(""), "");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c.mp4"), "a%20b%2Fc.mp4");
        assert_eq!(encode_segment("é"), "%C3%A9");
    }
}
