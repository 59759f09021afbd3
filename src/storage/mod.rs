//! Where uploads land, behind one interface: a local directory (the default,
//! a fresh temp dir) or an S3-compatible object store. The upload handler
//! calls [`Storage::begin`], writes chunks, finishes, then commits or drops
//! the file; it never learns which backend holds the bytes.

mod fs_pool;
mod layout;
mod local;
mod object;
#[cfg(feature = "s3")]
mod s3;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::Serialize;

pub(crate) use layout::{workspace_of, DEFAULT_WORKSPACE};
pub(crate) use local::LocalStorage;
pub(crate) use object::ObjectStorage;
#[cfg(feature = "s3")]
pub use s3::S3Config;

type Digest32 = [u8; 32];

/// Object-store deletes in flight at once when clearing uploads.
const REMOVE_CONCURRENCY: usize = 16;

/// A stored upload, as listed by `GET /__admin/uploads` and recorded in the journal.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StoredUpload {
    /// The `file_uuid` the upload was answered with.
    pub file_uuid: String,
    /// The stored (safe) file name.
    pub filename: String,
    /// The content type the upload was answered with.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// Absolute path of the stored file; `None` when stored in an object store.
    pub local_file_path: Option<PathBuf>,
    /// The object key the upload was answered with (in an object store: its real key).
    pub remote_file_path: String,
    /// `s3://BUCKET/KEY`, as answered.
    pub remote_uri: String,
    /// Where `GET` serves the file back.
    pub file_url: String,
    /// The `file_uuid` of the earliest stored upload with the same sha256
    /// (still stored), when this one repeats it: a retry that stored the
    /// file twice shows here.
    #[serde(default)]
    pub duplicate_of: Option<String>,
}

/// A stored upload as the server keeps it in memory: the fields that the
/// rest of a [`StoredUpload`] is built from ([`Storage::upload_of`]). The paths
/// and URLs spelled out took ~1 KiB per upload in the index; this takes about
/// a quarter of that.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct UploadRecord {
    pub(crate) target: Target,
    /// Size in bytes.
    pub(crate) size: u64,
    /// SHA-256, lowercase hex.
    pub(crate) sha256: Box<str>,
    /// The earliest stored upload with the same sha256, set when indexed.
    pub(crate) duplicate_of: Option<Box<str>>,
    /// When its bytes were complete (the files API's `created_at` of an
    /// upload it did not announce).
    pub(crate) stored_at: std::time::SystemTime,
}

/// What a file is stored as: fixed before its first byte arrives, so that an
/// object store can start its multipart upload at once.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Target {
    pub(crate) file_uuid: String,
    /// The safe file name.
    pub(crate) name: String,
    /// `workspace_uuid` from the query, or `default`.
    pub(crate) workspace: String,
    pub(crate) content_type: String,
}

/// Where a file is (or would be) stored, as the answer reports it.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub(crate) local_file_path: Option<PathBuf>,
    pub(crate) remote_file_path: String,
    pub(crate) remote_uri: String,
}

/// Why a storage operation failed. `error::storage` turns it into the answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    #[error("the storage quota (--max-storage) is full")]
    QuotaFull,
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The object store could not be reached (connection refused, timeout).
    #[error("the object store is unavailable: {0}")]
    #[cfg_attr(
        not(feature = "s3"),
        allow(
            dead_code,
            reason = "only the S3 client tells an unreachable store apart"
        )
    )]
    Unavailable(String),
    /// The object store answered with an error.
    #[error("the object store answered an error: {0}")]
    Store(String),
}

/// A stream of a stored file's bytes. `Sync` (as response bodies must be)
/// though the streams inside need not be: it is only ever polled through
/// `&mut`, so the mutex is never contended.
pub(crate) struct ByteStream(std::sync::Mutex<BoxStream<'static, io::Result<Bytes>>>);

impl ByteStream {
    fn new(stream: BoxStream<'static, io::Result<Bytes>>) -> Self {
        Self(std::sync::Mutex::new(stream))
    }
}

impl futures_util::Stream for ByteStream {
    type Item = io::Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut().0.get_mut() {
            Ok(stream) => stream.as_mut().poll_next(cx),
            Err(_) => std::task::Poll::Ready(None),
        }
    }
}

/// The storage backend.
#[derive(Debug)]
pub(crate) struct Storage {
    backend: Backend,
    quota: Quota,
}

#[derive(Debug)]
enum Backend {
    Local {
        dir: LocalStorage,
        /// The bucket named in `remote_uri` (nothing is written there).
        bucket: String,
    },
    Object(ObjectStorage),
}

impl Storage {
    /// A local directory (`None`: a fresh temp dir, removed on exit unless `keep`).
    pub(crate) fn local(
        dir: Option<&Path>,
        keep: bool,
        bucket: String,
        quota: Option<u64>,
    ) -> io::Result<Self> {
        Ok(Self {
            backend: Backend::Local {
                dir: LocalStorage::open(dir, keep)?,
                bucket,
            },
            quota: Quota::new(quota),
        })
    }

    /// An object store.
    pub(crate) fn object(store: ObjectStorage, quota: Option<u64>) -> Self {
        Self {
            backend: Backend::Object(store),
            quota: Quota::new(quota),
        }
    }

    /// The storage directory, for the local backend.
    pub(crate) fn root(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Local { dir, .. } => Some(dir.root()),
            Backend::Object(_) => None,
        }
    }

    /// Where uploads go, for the start-up log line.
    pub(crate) fn describe(&self) -> String {
        match &self.backend {
            Backend::Local { dir, .. } => dir.root().display().to_string(),
            Backend::Object(store) => store.describe(),
        }
    }

    /// Checks that the store answers; for the start-up log.
    pub(crate) async fn probe(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Local { .. } => Ok(()),
            Backend::Object(store) => store.probe().await,
        }
    }

    /// Removes the temp dir now (a no-op for a directory the user chose, for
    /// `--keep-files`, and for an object store).
    pub(crate) fn cleanup(&self) {
        if let Backend::Local { dir, .. } = &self.backend {
            dir.cleanup();
        }
    }

    /// Where `target` is stored once committed.
    pub(crate) fn locate(&self, target: &Target) -> Location {
        match &self.backend {
            Backend::Local { dir, bucket } => {
                let key = layout::upload_key(target).join("/");
                Location {
                    local_file_path: Some(dir.path_of(target)),
                    remote_uri: format!("s3://{bucket}/{key}"),
                    remote_file_path: key,
                }
            }
            Backend::Object(store) => {
                let key = store.key(target);
                Location {
                    local_file_path: None,
                    remote_uri: format!("s3://{}/{key}", store.bucket()),
                    remote_file_path: key.to_string(),
                }
            }
        }
    }

    /// The upload `record` describes, as answered and listed, with the
    /// `file_url` the caller built (`files::download_url`).
    pub(crate) fn upload_of(&self, record: &UploadRecord, file_url: String) -> StoredUpload {
        let target = &record.target;
        let location = self.locate(target);
        StoredUpload {
            file_uuid: target.file_uuid.clone(),
            filename: target.name.clone(),
            content_type: target.content_type.clone(),
            size: record.size,
            sha256: record.sha256.to_string(),
            local_file_path: location.local_file_path,
            remote_file_path: location.remote_file_path,
            remote_uri: location.remote_uri,
            file_url,
            duplicate_of: record.duplicate_of.as_deref().map(str::to_owned),
        }
    }

    /// Starts receiving a file.
    pub(crate) fn begin(&self, target: Target) -> PartialFile {
        let inner = match &self.backend {
            Backend::Local { dir, .. } => PartialInner::Local(dir.begin()),
            Backend::Object(store) => PartialInner::Object(store.begin(&target)),
        };
        PartialFile {
            target,
            size: 0,
            reservation: self.quota.reservation(),
            inner,
        }
    }

    /// Makes a finished file visible at its final place. `record` is what
    /// the server will list for it.
    pub(crate) async fn commit(
        &self,
        file: FinishedFile,
        record: &StoredUpload,
    ) -> Result<(), StorageError> {
        let FinishedFile {
            target,
            inner,
            reservation,
            ..
        } = file;
        match (&self.backend, inner) {
            (Backend::Local { dir, .. }, FinishedInner::Local(file)) => {
                dir.commit(file, &target).await?
            }
            (Backend::Object(store), FinishedInner::Object(file)) => {
                store.commit(file, record).await?
            }
            _ => return Err(io::Error::other("the file belongs to another storage").into()),
        }
        // The bytes now belong to a stored file: they stay counted until removed.
        reservation.keep();
        Ok(())
    }

    /// Forgets the bytes of a stored file that a commit under the same name
    /// replaced (a second PUT to one presigned URL overwrites, as S3 does).
    pub(crate) fn replaced(&self, old: &UploadRecord) {
        self.quota.release(old.size);
    }

    /// Counts the bytes of a file stored by an earlier run against
    /// `--max-storage` (its record restored at start).
    pub(crate) fn restored(&self, size: u64) {
        self.quota.used.fetch_add(size, Ordering::Relaxed);
    }

    /// Deletes stored uploads (what this server stored, nothing else).
    pub(crate) async fn remove(&self, uploads: &[Arc<UploadRecord>]) {
        match &self.backend {
            Backend::Local { dir, .. } => {
                dir.remove(uploads.iter().map(|u| u.target.file_uuid.clone()).collect())
                    .await;
            }
            Backend::Object(store) => {
                // A request per object: a few at a time, not one by one.
                use futures_util::StreamExt;
                futures_util::stream::iter(uploads)
                    .for_each_concurrent(REMOVE_CONCURRENCY, |upload| store.remove(&upload.target))
                    .await;
            }
        }
        for upload in uploads {
            self.quota.release(upload.size);
        }
    }

    /// A file stored by another server sharing the same store (object
    /// stores only; a directory is never shared).
    pub(crate) async fn lookup(
        &self,
        file_uuid: &str,
    ) -> Result<Option<StoredUpload>, StorageError> {
        match &self.backend {
            Backend::Local { .. } => Ok(None),
            Backend::Object(store) => store.lookup(file_uuid).await,
        }
    }

    /// `count` bytes of a stored file from `start`.
    pub(crate) async fn read(
        &self,
        upload: &StoredUpload,
        start: u64,
        count: u64,
    ) -> Result<ByteStream, StorageError> {
        match &self.backend {
            Backend::Local { dir, .. } => {
                let path = upload
                    .local_file_path
                    .clone()
                    .ok_or_else(|| io::Error::other("the upload has no local path"))?;
                let root = dir.root().to_owned();
                let checked = path.clone();
                let inside = tokio::task::spawn_blocking(move || local::inside(&root, &checked))
                    .await
                    .unwrap_or(false);
                if !inside {
                    return Err(io::Error::other(
                        "the upload's path leads outside the storage directory",
                    )
                    .into());
                }
                let path = path.as_path();
                Ok(ByteStream::new(local::read(path, start, count).await?))
            }
            Backend::Object(store) => Ok(ByteStream::new(store.read(upload, start, count).await?)),
        }
    }
}

/// `--max-storage`: bytes held by stored and in-flight files.
#[derive(Debug, Clone)]
struct Quota {
    limit: Option<u64>,
    used: Arc<AtomicU64>,
}

impl Quota {
    fn new(limit: Option<u64>) -> Self {
        Self {
            limit,
            used: Arc::new(AtomicU64::new(0)),
        }
    }

    fn reservation(&self) -> Reservation {
        Reservation {
            quota: self.clone(),
            bytes: 0,
        }
    }

    fn release(&self, n: u64) {
        // Never below zero, even if a file was counted before a reset.
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// Bytes of the quota one file holds; given back when dropped, unless kept.
#[derive(Debug)]
struct Reservation {
    quota: Quota,
    bytes: u64,
}

impl Reservation {
    fn grow(&mut self, n: u64) -> Result<(), StorageError> {
        if let Some(limit) = self.quota.limit {
            let prev = self.quota.used.fetch_add(n, Ordering::Relaxed);
            if prev.saturating_add(n) > limit {
                self.quota.release(n);
                return Err(StorageError::QuotaFull);
            }
            self.bytes += n;
        }
        Ok(())
    }

    fn keep(mut self) {
        self.bytes = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.quota.release(self.bytes);
        }
    }
}

#[derive(Debug)]
enum PartialInner {
    Local(local::Partial),
    Object(object::Partial),
}

/// A file being received. Dropping it (or [`PartialFile::abort`]) removes
/// whatever was written: a partial file, or an object store's multipart upload.
#[derive(Debug)]
pub(crate) struct PartialFile {
    target: Target,
    size: u64,
    reservation: Reservation,
    inner: PartialInner,
}

impl PartialFile {
    /// Bytes received so far.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends a chunk.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if chunk.is_empty() {
            return Ok(());
        }
        self.reservation.grow(chunk.len() as u64)?;
        self.size += chunk.len() as u64;
        match &mut self.inner {
            PartialInner::Local(file) => file.write(chunk).await,
            PartialInner::Object(file) => file.write(chunk).await,
        }
    }

    /// Gives up on the file and waits until whatever was written is gone.
    pub(crate) async fn abort(self) {
        match self.inner {
            PartialInner::Local(file) => file.abort().await,
            PartialInner::Object(file) => file.abort().await,
        }
    }

    /// Completes the file: every byte is written (not yet visible) and hashed.
    pub(crate) async fn finish(self) -> Result<FinishedFile, StorageError> {
        let (inner, digest) = match self.inner {
            PartialInner::Local(file) => {
                let (file, digest) = file.finish().await?;
                (FinishedInner::Local(file), digest)
            }
            PartialInner::Object(file) => {
                let (file, digest) = file.finish().await?;
                (FinishedInner::Object(file), digest)
            }
        };
        Ok(FinishedFile {
            target: self.target,
            size: self.size,
            sha256: crate::http_util::hex(&digest),
            finished_at: std::time::SystemTime::now(),
            reservation: self.reservation,
            inner,
        })
    }
}

#[derive(Debug)]
enum FinishedInner {
    Local(local::Finished),
    Object(object::Finished),
}

/// A complete file, not yet visible. Dropping it (or
/// [`FinishedFile::discard`]) removes it.
#[derive(Debug)]
pub(crate) struct FinishedFile {
    target: Target,
    /// Size in bytes.
    pub(crate) size: u64,
    /// SHA-256, lowercase hex.
    pub(crate) sha256: String,
    /// When its last byte was written.
    finished_at: std::time::SystemTime,
    reservation: Reservation,
    inner: FinishedInner,
}

impl FinishedFile {
    /// What the file is stored as.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// What the server keeps of the file once it is stored.
    pub(crate) fn record(&self) -> UploadRecord {
        UploadRecord {
            target: self.target.clone(),
            size: self.size,
            sha256: self.sha256.as_str().into(),
            duplicate_of: None,
            stored_at: self.finished_at,
        }
    }

    /// Removes the file and waits until it is gone.
    pub(crate) async fn discard(self) {
        match self.inner {
            FinishedInner::Local(file) => drop(file),
            FinishedInner::Object(file) => file.discard().await,
        }
    }
}

/// Is this error the disk being full?
pub(crate) fn is_storage_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::StorageFull || err.raw_os_error() == Some(28)
}

#[cfg(test)]
mod tests;
