//! Downloads, `GET|HEAD /__files/{file_uuid}/{name}`: stored bytes streamed back, with
//! single-range support. Only files this server stored are served (and, with
//! an object store, files any server sharing it stored), looked up by
//! `file_uuid`; the path is never built from the request.

use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;

use super::answer::Answer;
use crate::error::ApiError;
use crate::http_util::{empty, BoxError};
use crate::state::AppState;
use crate::storage::StorageError;

pub(crate) async fn serve(
    state: &AppState,
    file_uuid: &str,
    name: &str,
    range: Option<&str>,
    head: bool,
) -> Answer {
    let decoded = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    let found = match state.files.get(file_uuid) {
        Some(record) => Some(state.upload_of(&record)),
        // Stored by another server sharing the same object store?
        None => match state.storage.lookup(file_uuid).await {
            Ok(found) => found,
            Err(err) => return Answer::error(ApiError::storage(&err)),
        },
    };
    let Some(upload) = found.filter(|u| u.filename == decoded) else {
        return Answer::error(ApiError::not_found(format!(
            "No stored file {file_uuid}/{decoded}: it was never uploaded here, or has been deleted."
        )));
    };
    let len = upload.size;
    let (status, start, count) = match range.map(|r| parse_range(r, len)) {
        None | Some(RangeSpec::Ignore) => (StatusCode::OK, 0, len),
        Some(RangeSpec::Satisfiable(start, end)) => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Some(RangeSpec::Unsatisfiable) => {
            return Answer::error(
                ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    format!("The requested range is not satisfiable; the file has {len} bytes."),
                )
                .with_header(http::header::CONTENT_RANGE, &format!("bytes */{len}")),
            );
        }
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&upload.content_type) {
        headers.insert(http::header::CONTENT_TYPE, v);
    }
    confine(&mut headers, &upload.content_type);
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(count));
    headers.insert(
        http::header::ACCEPT_RANGES,
        HeaderValue::from_static("bytes"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", upload.sha256)) {
        headers.insert(http::header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
        {
            headers.insert(http::header::CONTENT_RANGE, v);
        }
    }
    if head {
        return Answer::body(status, headers, empty());
    }
    let stream = match state.storage.read(&upload, start, count).await {
        Ok(stream) => stream,
        Err(StorageError::Io(err)) => {
            return Answer::error(ApiError::not_found(format!(
                "The stored file {file_uuid} can no longer be read: {err}."
            )))
        }
        Err(err) => return Answer::error(ApiError::storage(&err)),
    };
    let frames = stream.map(|chunk| {
        chunk
            .map(http_body::Frame::data)
            .map_err(|err| Box::new(err) as BoxError)
    });
    Answer::body(
        status,
        headers,
        BodyExt::boxed(http_body_util::StreamBody::new(frames)),
    )
}

/// Keeps a stored file from acting as a page of this server's origin, the
/// admin API's: an uploaded HTML, SVG or script opened in a browser would
/// otherwise run with the right to call `/__admin`. `sandbox` gives the
/// document an opaque origin (no scripts, and its requests carry
/// `Origin: null`, which the admin API refuses); `nosniff` stops a browser
/// from guessing an active type from the bytes; types a browser would render
/// as a document are sent as attachments (downloaded, not opened) for
/// browsers that ignore the sandbox. The bytes and `Content-Type` are left
/// exactly as stored.
fn confine(headers: &mut HeaderMap, content_type: &str) {
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if is_active(content_type) {
        headers.insert(
            http::header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
}

/// Whether a browser would run or render this type as a document: HTML,
/// XML (SVG, XHTML, `+xml`), scripts, PDF.
fn is_active(content_type: &str) -> bool {
    let essence = crate::http_util::essence(content_type).to_ascii_lowercase();
    essence.contains("html")
        || essence.contains("xml")
        || essence.contains("javascript")
        || essence.contains("ecmascript")
        || essence == "application/pdf"
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Not a single byte range we understand: serve the whole file.
    Ignore,
    Satisfiable(u64, u64),
    Unsatisfiable,
}

/// Parses a single `bytes=` range (`a-b`, `a-`, `-n`) against a length.
fn parse_range(header: &str, len: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return RangeSpec::Ignore,
        (true, false) => match b.parse::<u64>() {
            Ok(0) => return RangeSpec::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => return RangeSpec::Ignore,
        },
        (false, _) => {
            let Ok(start) = a.parse::<u64>() else {
                return RangeSpec::Ignore;
            };
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                match b.parse::<u64>() {
                    Ok(e) if e >= start => e.min(len.saturating_sub(1)),
                    _ => return RangeSpec::Ignore,
                }
            };
            Some((start, end))
        }
    };
    match parsed {
        Some((start, end)) if len > 0 && start < len && start <= end => {
            RangeSpec::Satisfiable(start, end)
        }
        _ => RangeSpec::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_types_are_recognized() {
        for active in [
            "text/html",
            "Text/HTML; charset=utf-8",
            "image/svg+xml",
            "application/xhtml+xml",
            "text/xml",
            "application/javascript",
            "text/javascript",
            "application/pdf",
        ] {
            assert!(is_active(active), "{active}");
        }
        for passive in [
            "image/png",
            "text/plain",
            "video/mp4",
            "application/json",
            "",
        ] {
            assert!(!is_active(passive), "{passive}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Satisfiable(0, 9));
        assert_eq!(
            parse_range("bytes=90-", 100),
            RangeSpec::Satisfiable(90, 99)
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            RangeSpec::Satisfiable(90, 99)
        );
        assert_eq!(
            parse_range("bytes=50-500", 100),
            RangeSpec::Satisfiable(50, 99)
        );
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=5-2", 100), RangeSpec::Ignore);
    }
}
