//! Entry points for the coverage-guided fuzz targets in `fuzz/` and the
//! differential test against multer in `tests/differential/`: compiled always
//! (so that plain `cargo test` builds that test) and hidden from the docs.
//! Not an API, and not covered by semver: `multipart` and `fixture`
//! take the fuzzer's bytes and panic when an invariant breaks, which is what
//! a fuzz target reports as a crash; `first_file` reads a body as the upload
//! handler does, for the differential test to compare.

use std::convert::Infallible;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::request::body::BodyError;
use crate::request::multipart::{self, Multipart};
use crate::request::name::{disposition_filename, disposition_name, SafeFileName};

/// Boundaries the first input byte chooses from: short, ordinary and the
/// longest RFC 2046 allows.
const BOUNDARIES: [&str; 4] = [
    "B",
    "XyZ",
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",
    "0123456789012345678901234567890123456789012345678901234567890123456789",
];

/// One part as read: name, file name, the headers as text, the data.
type ReadPart = (Option<String>, Option<String>, Vec<String>, Vec<u8>);

/// Parses `body` cut into `size`-byte chunks; the error is the message.
fn parse(body: &[u8], boundary: &str, size: usize) -> Result<Vec<ReadPart>, String> {
    let chunks: Vec<Result<Bytes, BodyError>> = body
        .chunks(size.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut parser = Multipart::new(futures_util::stream::iter(chunks), boundary);
    let run = async {
        let mut parts = Vec::new();
        while let Some(part) = parser.next_part().await.map_err(|e| e.to_string())? {
            let headers = part
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            let mut data = Vec::new();
            while let Some(chunk) = parser.chunk().await.map_err(|e| e.to_string())? {
                assert!(!chunk.is_empty(), "the parser handed out an empty chunk");
                data.extend_from_slice(&chunk);
            }
            parts.push((
                disposition_name(&part.headers),
                disposition_filename(&part.headers),
                headers,
                data,
            ));
        }
        Ok(parts)
    };
    match run.now_or_never() {
        Some(result) => result,
        None => panic!("the parser waited on a stream that never waits"),
    }
}

/// The multipart parser: input byte 0 picks the boundary, byte 1 the chunk
/// size, the rest is the body. The parts (or the error) must not depend on
/// how the body is cut, and every file name must come out safe.
pub fn multipart(input: &[u8]) {
    let [pick, size, body @ ..] = input else {
        return;
    };
    let boundary = BOUNDARIES[usize::from(*pick) % BOUNDARIES.len()];
    let whole = parse(body, boundary, body.len());
    let cut = parse(body, boundary, usize::from(*size % 64) + 1);
    assert_eq!(whole, cut, "the result depends on the chunking");
    for (_, filename, _, _) in whole.iter().flatten() {
        let safe = SafeFileName::parse(filename.as_deref().unwrap_or_default());
        let safe = safe.as_ref();
        assert!(!safe.is_empty() && safe.len() <= 255, "{safe:?}");
        assert!(!safe.contains(['/', '\\']), "{safe:?}");
        assert!(!safe.chars().any(char::is_control), "{safe:?}");
        assert!(safe.chars().any(|c| c != '.'), "{safe:?}");
    }
}

/// Why [`first_file`] refuses a body whose closing `--boundary--` is
/// followed by something other than padding and CRLF (multer stops there).
pub const CLOSE_NOT_CRLF: &str = multipart::CLOSE_NOT_CRLF;

/// Why [`first_file`] refuses a body with a part header line that ends in LF
/// alone (multer reads headers up to the next CRLFCRLF).
pub const LF_IN_HEADERS: &str = multipart::LF_IN_HEADERS;

/// What the upload handler takes from a multipart body.
#[derive(Debug)]
pub enum Upload {
    /// The body is refused (400); the parser's reason.
    Refused(String),
    /// A well-formed body without a part named `file` (422).
    NoFile,
    /// The first part named `file`.
    File {
        /// Its file name, from `Content-Disposition`.
        filename: Option<String>,
        /// Its data.
        data: Vec<u8>,
    },
}

/// A body as [`first_file`] reads it.
#[derive(Debug)]
pub struct FirstFile {
    /// What the upload handler takes from it.
    pub upload: Upload,
    /// Whether a part read before the end (or the refusal) had no header at
    /// all, which RFC 2046 allows and multer reads differently.
    pub headerless_part: bool,
}

/// Reads `body` with our multipart parser as the upload handler does: the
/// first part named `file` is read to its end, every other part is skipped.
pub async fn first_file<S>(body: S, boundary: &str) -> FirstFile
where
    S: Stream<Item = Result<Bytes, Infallible>> + Unpin,
{
    let body = body.map(|chunk| chunk.map_err(|never| -> BodyError { match never {} }));
    let mut parser = Multipart::new(body, boundary);
    let mut file = None;
    let mut headerless_part = false;
    let refused = |e: multipart::MultipartError, headerless_part| FirstFile {
        upload: Upload::Refused(e.to_string()),
        headerless_part,
    };
    loop {
        let part = match parser.next_part().await {
            Ok(Some(part)) => part,
            Ok(None) => break,
            Err(e) => return refused(e, headerless_part),
        };
        headerless_part |= part.headers.is_empty();
        if file.is_some() || part.name().as_deref() != Some("file") {
            continue; // `next_part` skips the data
        }
        let filename = disposition_filename(&part.headers);
        let mut data = Vec::new();
        loop {
            match parser.chunk().await {
                Ok(Some(chunk)) => data.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(e) => return refused(e, headerless_part),
            }
        }
        file = Some(Upload::File { filename, data });
    }
    FirstFile {
        upload: file.unwrap_or(Upload::NoFile),
        headerless_part,
    }
}

/// The fixture loader: input is fixture or admin-rule JSON. A refusal must
/// point inside the text; accepted rules must print back to JSON that loads
/// as the same rules.
pub fn fixture(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match crate::rules::loading::parse_rules("<fuzz>", text) {
        Ok(rules) => {
            let printed = match serde_json::to_string(&serde_json::json!({ "rules": rules })) {
                Ok(printed) => printed,
                Err(err) => panic!("accepted rules do not print as JSON: {err}"),
            };
            match crate::rules::loading::parse_fixture("<printed>", &printed) {
                Ok(again) => assert_eq!(rules, again, "{printed}"),
                Err(err) => panic!("printed rules do not load again: {err}\n{printed}"),
            }
        }
        Err(err) => {
            let lines = text.lines().count().max(1);
            if let Some(line) = err.line {
                assert!(line <= lines + 1, "line {line} of {lines}: {err}");
            }
            assert!(!err.message.is_empty());
            let _ = err.to_string();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_entry_points_accept_what_the_tests_send() {
        super::multipart(b"\x01\x03--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../a\"\r\n\r\nabc\r\n--XyZ--\r\n");
        super::fixture(br#"{"rules":[{"id":"a","respond":{"status":503},"when":{"times":1}}]}"#);
        super::fixture(br#"{"rules":[{"pass":{},"zzz":1}]}"#);
    }
}
