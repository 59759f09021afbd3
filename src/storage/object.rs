//! The object-store backend: uploads streamed to an S3-compatible store (or
//! any [`object_store::ObjectStore`]) with a multipart upload, parts sent as
//! the body arrives.
//!
//! The keys under the prefix are [`super::layout`]'s: the bytes (stored with
//! the upload's Content-Type) and the upload's record, so that any server
//! sharing the bucket can serve `/__files/<file_uuid>/<name>`.
//!
//! A file smaller than one part is sent with one PUT when committed; a larger
//! one starts a multipart upload once its first part is full, keeps at most
//! [`PARTS_IN_FLIGHT`] parts in flight (and all uploads together at most
//! [`TOTAL_PARTS_IN_FLIGHT`]), and is completed only when committed.
//! Every other end aborts the multipart upload, so no parts are left behind.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::path::{Path, PathPart};
use object_store::{
    Attribute, Attributes, GetOptions, MultipartUpload, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload,
};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Digest32, StorageError, StoredUpload, Target};
use futures_util::stream::BoxStream;

/// Size of a multipart upload's parts (S3 wants at least 5 MiB but for the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one upload being sent at once: with the part being filled, this
/// bounds an upload's memory to `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
const PARTS_IN_FLIGHT: usize = 2;
/// Parts of all uploads together being sent at once (64 MiB): an upload
/// whose next part would pass it waits (and so does its client) until one
/// is stored, so parts in flight do not grow with the number of uploads.
const TOTAL_PARTS_IN_FLIGHT: usize = 8;
/// Largest upload record read back from the store.
const MAX_RECORD: usize = 64 * 1024;

/// Uploads kept in an object store.
#[derive(Debug)]
pub(crate) struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    /// [`TOTAL_PARTS_IN_FLIGHT`] permits, one held by each part being sent.
    parts_in_flight: Arc<Semaphore>,
}

impl ObjectStorage {
    /// Keeps uploads in `store` under `prefix` (`bucket` names it in `remote_uri`).
    pub(crate) fn new(store: Arc<dyn ObjectStore>, bucket: &str, prefix: &str) -> Self {
        Self {
            store,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            parts_in_flight: Arc::new(Semaphore::new(TOTAL_PARTS_IN_FLIGHT)),
        }
    }

    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(crate) fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// A path under the prefix: each segment kept as is when the store
    /// allows it, percent-encoded otherwise (a `/` in a workspace, say).
    fn path(&self, segments: &[&str]) -> Path {
        self.prefix
            .split('/')
            .filter(|s| !s.is_empty())
            .chain(segments.iter().copied())
            .map(|s| PathPart::parse(s).unwrap_or_else(|_| PathPart::from(s)))
            .collect()
    }

    /// The object key of an upload's bytes.
    pub(crate) fn key(&self, target: &Target) -> Path {
        self.path(&super::layout::upload_key(target))
    }

    /// The object key of an upload's record.
    fn record_key(&self, file_uuid: &str) -> Path {
        let segments = super::layout::record_key(file_uuid);
        self.path(&segments.each_ref().map(String::as_str))
    }

    /// Lists the prefix once, to tell at start whether the store answers.
    pub(crate) async fn probe(&self) -> Result<(), StorageError> {
        let prefix = self.path(&[]);
        self.store
            .list_with_delimiter(Some(&prefix))
            .await
            .map(drop)
            .map_err(classify)
    }

    pub(crate) fn begin(&self, target: &Target) -> Partial {
        Partial {
            store: Arc::clone(&self.store),
            key: self.key(target),
            content_type: target.content_type.clone(),
            buffered: BytesMut::new(),
            upload: None,
            parts: JoinSet::new(),
            parts_in_flight: Arc::clone(&self.parts_in_flight),
            hasher: Sha256::new(),
        }
    }

    /// Makes the object visible (completes its multipart upload, or PUTs a
    /// small one), then writes its record; undoes the object if that fails.
    pub(crate) async fn commit(
        &self,
        mut file: Finished,
        record: &StoredUpload,
    ) -> Result<(), StorageError> {
        let attributes = content_type_attributes(&file.content_type);
        match file.body.take() {
            Some(Body::Small(bytes)) => {
                let payload = PutPayload::from(bytes);
                self.store
                    .put_opts(&file.key, payload, PutOptions::from(attributes))
                    .await
                    .map_err(classify)?;
            }
            Some(Body::Multipart(mut upload)) => {
                if let Err(err) = upload.complete().await {
                    abort_upload(upload, &file.key).await;
                    return Err(classify(err));
                }
            }
            None => return Err(io::Error::other("committed twice").into()),
        }
        let json = serde_json::to_vec(record).map_err(io::Error::other)?;
        let record_key = self.record_key(&record.file_uuid);
        let attributes = content_type_attributes("application/json");
        if let Err(err) = self
            .store
            .put_opts(&record_key, json.into(), PutOptions::from(attributes))
            .await
        {
            if let Err(undo) = self.store.delete(&file.key).await {
                tracing::warn!(key = %file.key, error = %undo, "could not delete an object whose record failed");
            }
            return Err(classify(err));
        }
        Ok(())
    }

    /// Deletes an upload's object and its record.
    pub(crate) async fn remove(&self, target: &Target) {
        let keys = [self.key(target), self.record_key(&target.file_uuid)];
        for key in keys {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => {
                    tracing::warn!(%key, error = %err, "could not delete an uploaded object")
                }
            }
        }
    }

    /// The record of an upload stored by any server sharing this prefix.
    pub(crate) async fn lookup(
        &self,
        file_uuid: &str,
    ) -> Result<Option<StoredUpload>, StorageError> {
        if uuid::Uuid::try_parse(file_uuid).is_err() {
            return Ok(None);
        }
        let got = match self.store.get(&self.record_key(file_uuid)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(err) => return Err(classify(err)),
        };
        if got.meta.size > MAX_RECORD as u64 {
            return Err(StorageError::Store(format!(
                "the record of upload {file_uuid} is {} bytes, more than a record can be",
                got.meta.size
            )));
        }
        let bytes = got.bytes().await.map_err(classify)?;
        let record: StoredUpload = serde_json::from_slice(&bytes).map_err(|err| {
            StorageError::Store(format!(
                "the record of upload {file_uuid} is not valid: {err}"
            ))
        })?;
        Ok(Some(record).filter(|r| r.file_uuid == file_uuid))
    }

    /// `count` bytes of an upload's object from `start`.
    pub(crate) async fn read(
        &self,
        upload: &StoredUpload,
        start: u64,
        count: u64,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, StorageError> {
        if count == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let key = Path::parse(&upload.remote_file_path)
            .map_err(|err| StorageError::Store(format!("bad object key: {err}")))?;
        let options = GetOptions {
            range: Some((start..start + count).into()),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&key, options).await.map_err(classify)?;
        Ok(got
            .into_stream()
            .map(|r| r.map_err(io::Error::other))
            .boxed())
    }
}

fn content_type_attributes(content_type: &str) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type.to_owned().into());
    attributes
}

/// Unavailable (503) when the store could not be reached, a store error
/// (500) when it answered with one. Without the `s3` feature object_store
/// has no HTTP client (nor its error type): every error is a store error.
fn classify(err: object_store::Error) -> StorageError {
    #[cfg(feature = "s3")]
    if let Some(unreachable) = unreachable(&err) {
        return StorageError::Unavailable(unreachable);
    }
    StorageError::Store(err.to_string())
}

/// The error spelled out when its cause is that the store could not be
/// reached (connect, request, timeout, interrupted).
#[cfg(feature = "s3")]
fn unreachable(err: &object_store::Error) -> Option<String> {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            if matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            ) {
                return Some(err.to_string());
            }
        }
        source = e.source();
    }
    None
}

async fn abort_upload(mut upload: Box<dyn MultipartUpload>, key: &Path) {
    if let Err(err) = upload.abort().await {
        tracing::warn!(%key, error = %err, "could not abort a multipart upload");
    }
}

/// Aborts a multipart upload from a destructor: on the runtime, in the background.
fn abort_later(upload: Box<dyn MultipartUpload>, key: Path) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move { abort_upload(upload, &key).await });
    }
}

/// An object being received.
pub(crate) struct Partial {
    store: Arc<dyn ObjectStore>,
    key: Path,
    content_type: String,
    /// The part being filled, one contiguous buffer. A chunk is copied in,
    /// never kept: a client that sends a body in tiny chunks (the SDK's
    /// `upload_file_async` sends a file line by line) would otherwise make a
    /// part of tens of thousands of pieces, each sent as a write of its own
    /// and each pinning the whole read buffer it was cut from.
    buffered: BytesMut,
    /// Started once the first part is full.
    upload: Option<Box<dyn MultipartUpload>>,
    parts: JoinSet<object_store::Result<()>>,
    /// The storage's budget of parts in flight, all uploads together.
    parts_in_flight: Arc<Semaphore>,
    hasher: Sha256,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial")
            .field("key", &self.key)
            .field("multipart", &self.upload.is_some())
            .finish()
    }
}

impl Partial {
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        self.hasher.update(&chunk);
        if self.buffered.is_empty() && self.upload.is_some() {
            // A part after the first is filled whole: no growing by doubling.
            self.buffered.reserve(PART_SIZE);
        }
        self.buffered.extend_from_slice(&chunk);
        if self.buffered.len() >= PART_SIZE {
            self.send_part().await?;
        }
        Ok(())
    }

    /// Sends what is buffered as the next part, once fewer than
    /// `PARTS_IN_FLIGHT` of this upload and `TOTAL_PARTS_IN_FLIGHT` of all
    /// are in flight.
    async fn send_part(&mut self) -> Result<(), StorageError> {
        let upload = match &mut self.upload {
            Some(upload) => upload,
            None => {
                let options =
                    PutMultipartOptions::from(content_type_attributes(&self.content_type));
                let upload = self
                    .store
                    .put_multipart_opts(&self.key, options)
                    .await
                    .map_err(classify)?;
                self.upload.insert(upload)
            }
        };
        while self.parts.len() >= PARTS_IN_FLIGHT {
            join_one(&mut self.parts).await?;
        }
        // Taken only once this upload has room, and held by the part's task
        // until it is stored: waiting for it never holds up another upload.
        let permit = Arc::clone(&self.parts_in_flight)
            .acquire_owned()
            .await
            .map_err(|_| io::Error::other("the object storage is closed"))?;
        let payload = PutPayload::from(self.buffered.split().freeze());
        let part = upload.put_part(payload);
        self.parts.spawn(async move {
            let _permit = permit;
            part.await
        });
        Ok(())
    }

    /// Stops sending parts and aborts the multipart upload, waiting for the store.
    pub(crate) async fn abort(mut self) {
        self.parts.abort_all();
        while self.parts.join_next().await.is_some() {}
        if let Some(upload) = self.upload.take() {
            abort_upload(upload, &self.key).await;
        }
    }

    /// Sends the last part and waits for every part to be stored.
    pub(crate) async fn finish(mut self) -> Result<(Finished, Digest32), StorageError> {
        let sent = async {
            if self.upload.is_some() {
                if !self.buffered.is_empty() {
                    self.send_part().await?;
                }
                while !self.parts.is_empty() {
                    join_one(&mut self.parts).await?;
                }
            }
            Ok::<_, StorageError>(())
        }
        .await;
        if let Err(err) = sent {
            self.abort().await;
            return Err(err);
        }
        let digest = std::mem::take(&mut self.hasher).finalize().into();
        let body = match self.upload.take() {
            Some(upload) => Body::Multipart(upload),
            None => Body::Small(std::mem::take(&mut self.buffered).freeze()),
        };
        let finished = Finished {
            key: self.key.clone(),
            content_type: std::mem::take(&mut self.content_type),
            body: Some(body),
        };
        Ok((finished, digest))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        // The part tasks stop with the JoinSet; the upload is aborted in the background.
        if let Some(upload) = self.upload.take() {
            abort_later(upload, self.key.clone());
        }
    }
}

async fn join_one(parts: &mut JoinSet<object_store::Result<()>>) -> Result<(), StorageError> {
    match parts.join_next().await {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(err))) => Err(classify(err)),
        Some(Err(join)) => Err(io::Error::other(join).into()),
    }
}

enum Body {
    /// Smaller than a part: sent with one PUT when committed.
    Small(Bytes),
    /// Every part stored; completed when committed.
    Multipart(Box<dyn MultipartUpload>),
}

/// A received object, not yet visible.
pub(crate) struct Finished {
    key: Path,
    content_type: String,
    body: Option<Body>,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finished").field("key", &self.key).finish()
    }
}

impl Finished {
    /// Aborts the multipart upload (if any), waiting for the store.
    pub(crate) async fn discard(mut self) {
        if let Some(Body::Multipart(upload)) = self.body.take() {
            abort_upload(upload, &self.key).await;
        }
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        if let Some(Body::Multipart(upload)) = self.body.take() {
            abort_later(upload, self.key.clone());
        }
    }
}
