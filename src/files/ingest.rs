//! The streaming pipeline that turns arriving bytes into a stored file,
//! whatever carries them: a multipart file part (the upload endpoint) or a
//! whole request body (a raw-body `PUT`) alike, as a [`Source`]. The file is
//! written chunk by chunk (its SHA-256 computed as it goes, by storage),
//! never held whole; over `max` bytes, or on any failure, the partial file
//! is removed before the failure is returned.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::StatusCode;

use crate::error::ApiError;
use crate::request::body::{self, BodyControl, BodyError, BodyFailure, UploadBody};
use crate::request::multipart::{Multipart, MultipartError, MAX_PART_HEADERS};
use crate::storage::{FinishedFile, Storage, Target};

/// Where a file's bytes come from.
pub(crate) trait Source {
    /// The next chunk of the file, `None` at its end.
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, MultipartError>;
}

/// The multipart parser, positioned on the file part.
impl Source for Multipart<&mut UploadBody> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        self.chunk().await
    }
}

/// A whole request body as the file's bytes (e.g. an [`UploadBody`]).
#[derive(Debug)]
pub(crate) struct RawBody<S>(pub(crate) S);

impl<S> Source for RawBody<S>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        self.0
            .next()
            .await
            .transpose()
            .map_err(MultipartError::Body)
    }
}

/// Why no file came out of the pipeline.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Answer this error; `close`: then close the connection, the rest of the
    /// body unread.
    Refused { error: ApiError, close: bool },
    /// A `reset` fault fired while reading.
    Reset,
    /// The client went away.
    ClientGone,
}

impl Failure {
    fn refused(error: ApiError) -> Self {
        Failure::Refused {
            error,
            close: false,
        }
    }

    fn closing(error: ApiError) -> Self {
        Failure::Refused { error, close: true }
    }
}

/// Streams `source` to storage as `target`, at most `max` bytes. On any
/// failure the partial file is removed before returning. `seen` counts the
/// file bytes received, also those of a file that fails (for the journal).
pub(crate) async fn receive(
    storage: &Storage,
    source: &mut impl Source,
    target: Target,
    max: u64,
    ctl: &BodyControl,
    seen: &mut u64,
) -> Result<FinishedFile, Failure> {
    let mut partial = storage.begin(target);
    let failure = loop {
        match source.next_chunk().await {
            Ok(Some(chunk)) => {
                ctl.mark_progress();
                *seen = seen.saturating_add(chunk.len() as u64);
                if partial.size() + chunk.len() as u64 > max {
                    break Failure::closing(ApiError::payload_too_large(max));
                }
                if let Err(err) = partial.write(chunk).await {
                    break Failure::refused(ApiError::storage(&err));
                }
            }
            Ok(None) => {
                return partial
                    .finish()
                    .await
                    .map_err(|err| Failure::refused(ApiError::storage(&err)))
            }
            Err(err) => break body_failure(ctl, max, &err),
        }
    };
    partial.abort().await;
    Err(failure)
}

/// Reads what is left of the HTTP body (a multipart epilogue, usually
/// empty) to its end, under the same limits.
pub(crate) async fn read_to_end(
    body: &mut (impl Stream<Item = Result<Bytes, BodyError>> + Unpin),
    ctl: &BodyControl,
    max: u64,
) -> Result<(), Failure> {
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(_) => ctl.mark_progress(),
            Err(err) => return Err(body_failure(ctl, max, &MultipartError::Body(err))),
        }
    }
    Ok(())
}

/// What a failure while reading the body means for the client.
pub(crate) fn body_failure(ctl: &BodyControl, max: u64, err: &MultipartError) -> Failure {
    match ctl.failure() {
        Some(BodyFailure::TooLarge) => Failure::closing(ApiError::payload_too_large(max)),
        Some(BodyFailure::ResetFault) => Failure::Reset,
        Some(BodyFailure::Client) => Failure::ClientGone,
        Some(BodyFailure::Unparsed) => Failure::closing(
            ApiError::bad_request(format!(
                "Malformed multipart body: no boundary in the first {} bytes.",
                body::MAX_UNPARSED
            ))
            .with_details(serde_json::json!({"field": "body"})),
        ),
        Some(BodyFailure::Timeout) => Failure::closing(
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "The upload stalled: no data arrived within the body timeout (--body-timeout).",
            )
            .with_code("validation.invalid_request"),
        ),
        // An oversized header block is cut off unread: close the connection
        // rather than drain a body that may never end.
        None if matches!(err, MultipartError::HeadersTooLarge) => Failure::closing(
            ApiError::bad_request(format!(
                "Malformed multipart body: a part's headers are longer than {MAX_PART_HEADERS} bytes."
            ))
            .with_details(serde_json::json!({"field": "body"})),
        ),
        None => Failure::refused(
            ApiError::bad_request(format!("Malformed multipart body: {err}."))
                .with_details(serde_json::json!({"field": "body"})),
        ),
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn target() -> Target {
        Target {
            file_uuid: crate::http_util::random_uuid().to_string(),
            name: "raw.bin".into(),
            workspace: "default".into(),
            content_type: "application/octet-stream".into(),
        }
    }

    fn raw(chunks: &[&'static [u8]]) -> RawBody<impl Stream<Item = Result<Bytes, BodyError>>> {
        let chunks: Vec<Result<Bytes, BodyError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        RawBody(futures_util::stream::iter(chunks))
    }

    /// Every regular file under `dir`.
    fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[tokio::test]
    async fn a_raw_body_is_stored_whole_with_its_size_and_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(Some(dir.path()), false, "bucket".into(), None).unwrap();
        let ctl = BodyControl::new();
        let mut source = raw(&[b"hello ", b"raw ", b"body"]);
        let file = receive(&storage, &mut source, target(), 1024, &ctl, &mut 0)
            .await
            .unwrap();
        assert_eq!(file.size, 14);
        assert_eq!(
            file.record().sha256.as_ref(),
            format!("{:x}", Sha256::digest(b"hello raw body"))
        );
        let listed = storage.upload_of(&file.record(), String::new());
        storage.commit(file, &listed).await.unwrap();
        let path = listed.local_file_path.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"hello raw body");
    }

    #[tokio::test]
    async fn a_raw_body_over_the_limit_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(Some(dir.path()), false, "bucket".into(), None).unwrap();
        let ctl = BodyControl::new();
        let mut source = raw(&[b"0123456789", b"0123456789"]);
        match receive(&storage, &mut source, target(), 15, &ctl, &mut 0).await {
            Err(Failure::Refused { error, close }) => {
                assert_eq!(error.status, StatusCode::PAYLOAD_TOO_LARGE);
                assert!(close, "the rest of the body is not read");
            }
            other => panic!("expected a 413, got {other:?}"),
        }
        assert_eq!(files_under(dir.path()), Vec::<std::path::PathBuf>::new());
    }
}
