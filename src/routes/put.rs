//! `PUT <presigned URL>` (`/__uploads/{file_uuid}/{name}?X-Amz-…`): the
//! bytes of a file announced with `POST /v2/files`, the whole request body,
//! streamed to storage through the same pipeline as the multipart upload
//! (`files::ingest`, a `RawBody`): limits, SHA-256, atomic visibility, body
//! timeout, and rules decided at the same phases (request → upload, once
//! the URL checks out → complete, with the size). It answers as S3 answers
//! a presigned PUT: 200 with an `ETag` and no body (the quoted hex MD5 of
//! the bytes when the client sent a `Content-MD5`, which is then checked as
//! S3 checks it; else the first 32 hex digits of their SHA-256, see
//! [`etag_of`]); errors in S3's XML (rendered by `crate::error`). A second PUT
//! to the same URL overwrites the file, as S3 overwrites an object.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use md5::{Digest, Md5};

use super::answer::{Answer, Exchange, Finish};
use super::apply::{self, Step};
use super::store;
use crate::error::ApiError;
use crate::files::ingest::{RawBody, Source};
use crate::journal::FileSeen;
use crate::request::multipart::MultipartError;
use crate::request::name::SafeFileName;
use crate::rules::model::{Phase, RouteName};
use crate::state::AppState;
use crate::storage::{FinishedFile, Target};

/// Bodies up to this size are hashed inline; larger ones on a thread of
/// their own, beside the pipeline, while one of the server's
/// [`MD5_THREADS`] is free.
const INLINE_MD5: u64 = 256 * 1024;

/// Chunks the MD5 thread may lag behind (each at most a body frame).
const MD5_LAG: usize = 8;

/// PUTs of one server whose MD5 runs on a thread of its own, at most,
/// whatever the number of PUTs in flight: beyond them, the MD5 is taken
/// inline (on the async threads, as for small bodies), so threads do not grow
/// with concurrency (`AppState::md5_threads`, one budget per server).
pub(crate) const MD5_THREADS: usize = 2;

/// Where the MD5 of a PUT's bytes is taken (S3's `ETag`): MD5 runs at a
/// third of SHA-256's speed (about 600 vs 1,700 MiB/s here, release), so a
/// large body is hashed on a blocking thread while the pipeline writes and
/// takes its SHA-256, instead of in series; at most [`MD5_LAG`] chunks
/// (shared, not copied) wait for it.
enum Md5Sink {
    /// No `Content-MD5` to check: no MD5 taken.
    Off,
    Inline(Md5),
    Thread {
        tx: tokio::sync::mpsc::Sender<Bytes>,
        done: tokio::task::JoinHandle<[u8; 16]>,
    },
}

impl Md5Sink {
    fn new(wanted: bool, expected: Option<u64>, threads: &Arc<tokio::sync::Semaphore>) -> Self {
        if !wanted {
            return Md5Sink::Off;
        }
        if expected.is_some_and(|len| len <= INLINE_MD5) {
            return Md5Sink::Inline(Md5::new());
        }
        let Ok(permit) = Arc::clone(threads).try_acquire_owned() else {
            return Md5Sink::Inline(Md5::new());
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(MD5_LAG);
        let done = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut md5 = Md5::new();
            while let Some(chunk) = rx.blocking_recv() {
                md5.update(&chunk);
            }
            md5.finalize().into()
        });
        Md5Sink::Thread { tx, done }
    }

    async fn update(&mut self, chunk: &Bytes) {
        match self {
            Md5Sink::Off => {}
            Md5Sink::Inline(md5) => md5.update(chunk),
            Md5Sink::Thread { tx, .. } => {
                // The thread ends only when the channel closes.
                let _ = tx.send(chunk.clone()).await;
            }
        }
    }

    /// The MD5 of the bytes (`None` when off, or its thread failed).
    async fn digest(self) -> Option<[u8; 16]> {
        match self {
            Md5Sink::Off => None,
            Md5Sink::Inline(md5) => Some(md5.finalize().into()),
            Md5Sink::Thread { tx, done } => {
                drop(tx);
                done.await.ok()
            }
        }
    }
}

/// The `ETag` a stored PUT answers with, quoted as S3 quotes it: the hex
/// MD5 when one was taken (the client sent `Content-MD5`), else the first
/// 32 hex digits of the SHA-256 the pipeline takes anyway. MD5 on every PUT
/// cost 2 s of CPU per GiB (MD5 runs at ~600 MiB/s here), which halved a
/// 1 GiB PUT beside W1 on two cores (BENCHMARKS.md); S3 itself promises an
/// MD5 `ETag` only for unencrypted objects, and checks `Content-MD5`, which
/// is what a client that cares about integrity sends.
fn etag_of(md5: Option<[u8; 16]>, sha256: &str) -> String {
    match md5 {
        Some(digest) => format!("\"{}\"", crate::http_util::hex(&digest)),
        None => format!("\"{}\"", &sha256[..sha256.len().min(32)]),
    }
}

/// The `Content-MD5` a client sent: `Ok(None)` when none, `Err` (S3's 400
/// `InvalidDigest`) when it is not the base64 of 16 bytes.
fn content_md5(headers: &HeaderMap) -> Result<Option<[u8; 16]>, ApiError> {
    use base64::Engine as _;
    let Some(value) = headers.get("content-md5") else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::s3(
            StatusCode::BAD_REQUEST,
            "InvalidDigest",
            "The Content-MD5 you specified was invalid.",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes().trim_ascii())
        .map_err(|_| invalid())?;
    decoded.try_into().map(Some).map_err(|_| invalid())
}

/// A source that passes what it reads to the MD5 sink.
struct Md5Tap<S> {
    inner: S,
    md5: Md5Sink,
}

impl<S: Source> Source for Md5Tap<S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        let chunk = self.inner.next_chunk().await?;
        if let Some(bytes) = &chunk {
            self.md5.update(bytes).await;
        }
        Ok(chunk)
    }
}

/// Receives the body of a PUT to a presigned URL whose request phase has
/// passed. `file_uuid` and `name` are the URL's (the name percent-encoded).
pub(crate) async fn receive(request: store::Incoming<'_>) -> Result<Answer, Finish> {
    let (state, parts, body, ctl, ex) = request.into_parts();
    let headers = &parts.headers;
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let verified = state.signer.verify(
        parts.uri.path(),
        parts.uri.query().unwrap_or_default(),
        content_type,
        SystemTime::now(),
    );
    let file_uuid = verified.map_err(ApiError::from)?.to_string();
    if state.catalog.is_deleted(&file_uuid) {
        return Err(ApiError::s3(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            format!("The file {file_uuid} this URL was made for has been deleted."),
        )
        .into());
    }
    let max = state.settings.max_upload_size;
    let declared = crate::http_util::content_length(headers);
    if let Some(len) = declared {
        if len > max {
            return Err(Answer::error(ApiError::payload_too_large(max))
                .closing()
                .into());
        }
    }
    let target = target(state, parts, &file_uuid, content_type);

    // Journaled whatever happens next (see `FileSeen`).
    ex.file_seen = Some(FileSeen::new(&target.name, &target.content_type));
    if ex.effects.rules_apply {
        let query = ex.query.clone();
        let decision = decide(state, parts, Phase::Upload, &target, None, &query, ex).await?;
        if let Step::Stop(finish) = apply::apply(decision, ctl, ex, Phase::Upload) {
            return Err(finish);
        }
    }
    let sent_md5 = content_md5(headers).map_err(|err| Answer::error(err).closing())?;
    let mut source = Md5Tap {
        inner: RawBody(&mut *body),
        md5: Md5Sink::new(sent_md5.is_some(), declared, &state.md5_threads),
    };
    let file = store::receive(state, &mut source, target, ctl, ex).await?;
    let md5 = source.md5.digest().await;
    if let Some(sent) = sent_md5 {
        let error = match md5 {
            None => Some(ApiError::internal(
                "Could not compute the upload's MD5 (the hashing thread failed).",
            )),
            Some(got) if got != sent => Some(ApiError::s3(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            )),
            Some(_) => None,
        };
        if let Some(err) = error {
            file.discard().await;
            return Err(err.into());
        }
    }
    let etag = etag_of(md5, &file.record().sha256);

    let decision = if ex.effects.rules_apply {
        let target = file.target().clone();
        let query = ex.query.clone();
        let size = Some(file.size);
        match decide(state, parts, Phase::Complete, &target, size, &query, ex).await {
            Ok(decision) => decision,
            Err(err) => {
                file.discard().await;
                return Err(err.into());
            }
        }
    } else {
        None
    };
    let mut answer_headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        answer_headers.insert(http::header::ETAG, v);
    }
    let normal = Answer::body(StatusCode::OK, answer_headers, crate::http_util::empty());
    let keep = async |file: FinishedFile, ex: &mut Exchange| keep(state, file, ex).await;
    store::conclude(file, decision, normal, keep, ctl, ex).await
}

/// Where the bytes go: as announced by `POST /v2/files`, with the PUT's
/// `Content-Type` when it sent one (S3 keeps the PUT's). A URL the catalog
/// does not know (signed by a replica with the same `--presign-secret`, or
/// from before a reset) still works until it expires, as S3's do: the file
/// takes its name from the URL, in the `default` workspace.
fn target(state: &AppState, parts: &Parts, file_uuid: &str, content_type: Option<&str>) -> Target {
    let given = content_type.filter(|ct| !ct.is_empty()).map(str::to_owned);
    if let Some(entry) = state.catalog.get(file_uuid) {
        let mut target = entry.target;
        if let Some(ct) = given {
            target.content_type = ct;
        }
        return target;
    }
    let raw = parts.uri.path().rsplit('/').next().unwrap_or_default();
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let name = SafeFileName::parse(&decoded).as_ref().to_owned();
    let content_type = given.unwrap_or_else(|| crate::http_util::guess_content_type(&name));
    Target {
        file_uuid: file_uuid.to_owned(),
        name,
        workspace: crate::storage::DEFAULT_WORKSPACE.to_owned(),
        content_type,
    }
}

/// The rule that fires at `phase` for this PUT: the file's name and type
/// are known once the URL checks out, its size once the body is read.
async fn decide(
    state: &AppState,
    parts: &Parts,
    phase: Phase,
    target: &Target,
    size: Option<u64>,
    query: &[(String, String)],
    ex: &mut Exchange,
) -> Result<Option<crate::rules::Decision>, ApiError> {
    let mut facts = apply::facts(RouteName::Put, parts, query);
    facts.filename = Some(&target.name);
    facts.content_type = Some(&target.content_type);
    facts.size = size;
    state.decide(phase, &facts, &mut ex.seen).await
}

/// Makes the file visible: committed to storage (over the bytes of an
/// earlier PUT, if any), in the index, the catalog and the journal.
async fn keep(state: &AppState, file: FinishedFile, ex: &mut Exchange) -> Result<(), ApiError> {
    // Two PUTs to one URL at once: the bytes whose commit lands last must
    // be the ones indexed; and a DELETE of the file comes wholly before or
    // after. So a file's commits and deletes go one at a time (a commit is
    // a rename, or an object store's completion: short).
    let _one_at_a_time = state.file_locks.lock(&file.target().file_uuid).await;
    if state.catalog.is_deleted(&file.target().file_uuid) {
        // Deleted while its bytes were arriving: it stays deleted.
        file.discard().await;
        return Err(ApiError::s3(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "The file this URL was made for was deleted while it was being uploaded.",
        ));
    }
    let stored = store::keep(state, file, true, ex.effects.processing.take())
        .await
        .map_err(|err| ApiError::storage(&err))?;
    ex.upload = Some(stored);
    Ok(())
}
