//! Where uploads land: a directory (a fresh temp dir by default), written
//! through a `.partial/` file that is renamed into place only once complete.
//!
//! Layout: `<root>/<file_uuid>/<safe name>` for stored files, and
//! `<root>/.partial/<random>.part` while a file is being received. A file is
//! never visible at its final path before it is complete, and a partial file
//! is removed whenever its upload does not complete.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Files up to this size are written in one go when complete; larger ones are
/// handed to a blocking writer thread as they arrive, so disk I/O and hashing
/// never run on the async threads for long.
const INLINE_LIMIT: usize = 64 * 1024;
/// Chunks in flight to the writer thread: bounds memory per upload.
const WRITER_QUEUE: usize = 4;
/// The directory, under the storage root, for files being received.
pub(crate) const PARTIAL_DIR: &str = ".partial";

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
    /// Absolute path of the stored file.
    pub local_file_path: PathBuf,
    /// Where `GET` serves the file back.
    pub file_url: String,
}

/// The storage directory.
#[derive(Debug)]
pub(crate) struct Storage {
    root: PathBuf,
    partial_dir: PathBuf,
    /// The temp dir, removed by [`Storage::cleanup`] or when dropped.
    temp: std::sync::Mutex<Option<tempfile::TempDir>>,
    quota: Option<u64>,
    used: Arc<AtomicU64>,
}

impl Storage {
    /// Opens `dir` (created if missing), or a fresh temp dir when `None`.
    /// With `keep`, a temp dir is left behind on exit.
    pub(crate) fn open(dir: Option<&Path>, keep: bool, quota: Option<u64>) -> io::Result<Self> {
        let (root, temp) = match dir {
            Some(dir) => {
                create_private_dir_all(dir)?;
                (std::fs::canonicalize(dir)?, None)
            }
            None => {
                let temp = tempfile::Builder::new().prefix("aymara-mock-").tempdir()?;
                // Uploads are the users' data: only the owner may list or read them.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o700))?;
                }
                let root = std::fs::canonicalize(temp.path())?;
                if keep {
                    let _kept = temp.keep();
                    (root, None)
                } else {
                    (root, Some(temp))
                }
            }
        };
        let partial_dir = root.join(PARTIAL_DIR);
        create_private_dir_all(&partial_dir)?;
        Ok(Self {
            root,
            partial_dir,
            temp: std::sync::Mutex::new(temp),
            quota,
            used: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Removes the temp dir now (a no-op for a directory the user chose, or
    /// with `--keep-files`).
    pub(crate) fn cleanup(&self) {
        let temp = crate::journal::lock(&self.temp).take();
        if let Some(temp) = temp {
            let path = temp.path().to_owned();
            if let Err(err) = temp.close() {
                tracing::warn!(path = %path.display(), error = %err, "could not remove the storage dir");
            }
        }
    }

    /// The storage root (absolute).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Starts receiving a file.
    pub(crate) fn begin(&self) -> PartialFile {
        let temp_path = self
            .partial_dir
            .join(format!("{}.part", crate::http_util::random_uuid().simple()));
        PartialFile {
            temp_path,
            size: 0,
            mode: Mode::Buffer(Vec::new(), 0),
            quota: self.quota,
            used: Arc::clone(&self.used),
            reserved: 0,
        }
    }

    /// Moves a finished file to `<root>/<file_uuid>/<name>`; returns its path.
    pub(crate) async fn commit(
        &self,
        mut file: FinishedFile,
        file_uuid: &str,
        name: &str,
    ) -> io::Result<PathBuf> {
        let dir = self.root.join(file_uuid);
        let path = dir.join(name);
        let temp_path = file.temp_path.clone();
        let small = std::mem::take(&mut file.in_memory);
        let target = path.clone();
        // One hop to a blocking thread for all the file-system work of a
        // commit: a slow file-system call must not stall the async workers
        // (and every connection queued on them).
        let moved = tokio::task::spawn_blocking(move || {
            if let Some(chunks) = small {
                write_all_new(&temp_path, &chunks)?;
            }
            std::fs::create_dir(&dir)?;
            if let Err(err) = std::fs::rename(&temp_path, &target) {
                let _ = std::fs::remove_dir(&dir);
                return Err(err);
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|join| Err(io::Error::other(join)));
        moved?;
        file.committed();
        Ok(path)
    }

    /// Removes a stored file and its directory.
    pub(crate) fn remove(&self, upload: &StoredUpload) {
        if let Some(dir) = upload.local_file_path.parent() {
            if dir.starts_with(&self.root) && dir != self.root {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        self.used.fetch_sub(
            upload.size.min(self.used.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }
}

fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Message to the writer thread.
enum Msg {
    Data(Bytes),
    Finish,
}

type Digest32 = [u8; 32];

enum Mode {
    /// Small so far: chunks kept in memory (bounded by `INLINE_LIMIT`).
    Buffer(Vec<Bytes>, usize),
    /// Streaming to a writer thread.
    Thread {
        tx: mpsc::Sender<Msg>,
        done: tokio::task::JoinHandle<io::Result<Digest32>>,
    },
    Done,
}

/// A file being received. Dropping it before [`PartialFile::finish`] removes
/// whatever was written.
pub(crate) struct PartialFile {
    temp_path: PathBuf,
    size: u64,
    mode: Mode,
    quota: Option<u64>,
    used: Arc<AtomicU64>,
    /// Bytes of the quota this file holds.
    reserved: u64,
}

impl std::fmt::Debug for PartialFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialFile")
            .field("temp_path", &self.temp_path)
            .field("size", &self.size)
            .finish()
    }
}

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StorageError {
    #[error("the storage quota (--max-storage) is full")]
    QuotaFull,
    #[error("{0}")]
    Io(#[from] io::Error),
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
        self.reserve(chunk.len() as u64)?;
        self.size += chunk.len() as u64;
        match &mut self.mode {
            Mode::Buffer(chunks, len) => {
                *len += chunk.len();
                chunks.push(chunk);
                if *len > INLINE_LIMIT {
                    let chunks = std::mem::take(chunks);
                    self.start_thread(chunks).await?;
                }
                Ok(())
            }
            Mode::Thread { tx, .. } => {
                if tx.send(Msg::Data(chunk)).await.is_err() {
                    return Err(self.thread_error().await.into());
                }
                Ok(())
            }
            Mode::Done => Err(io::Error::other("write after finish").into()),
        }
    }

    fn reserve(&mut self, n: u64) -> Result<(), StorageError> {
        if let Some(quota) = self.quota {
            let prev = self.used.fetch_add(n, Ordering::Relaxed);
            if prev + n > quota {
                self.used.fetch_sub(n, Ordering::Relaxed);
                return Err(StorageError::QuotaFull);
            }
        }
        self.reserved += n;
        Ok(())
    }

    async fn start_thread(&mut self, chunks: Vec<Bytes>) -> io::Result<()> {
        let (tx, mut rx) = mpsc::channel::<Msg>(WRITER_QUEUE);
        let path = self.temp_path.clone();
        let done = tokio::task::spawn_blocking(move || {
            let result = (|| {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                // Hashing runs on its own thread, beside the writes: each is
                // about half of the work per byte, so a large upload moves
                // at the pace of the slower one rather than of both added up.
                let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<Bytes>(WRITER_QUEUE);
                let hasher = std::thread::Builder::new()
                    .name("upload-sha256".into())
                    .spawn(move || {
                        let mut hasher = Sha256::new();
                        for chunk in hash_rx {
                            hasher.update(&chunk);
                        }
                        Digest32::from(hasher.finalize())
                    })?;
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Data(chunk) => {
                            // A send fails only if the hasher died; the join below reports it.
                            let _ = hash_tx.send(chunk.clone());
                            file.write_all(&chunk)?;
                        }
                        Msg::Finish => {
                            file.flush()?;
                            drop(hash_tx);
                            return hasher
                                .join()
                                .map_err(|_| io::Error::other("the sha256 thread panicked"));
                        }
                    }
                }
                Err(io::Error::new(
                    io::ErrorKind::Interrupted,
                    "upload abandoned",
                ))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&path);
            }
            result
        });
        self.mode = Mode::Thread { tx, done };
        for chunk in chunks {
            if let Mode::Thread { tx, .. } = &self.mode {
                if tx.send(Msg::Data(chunk)).await.is_err() {
                    return Err(self.thread_error().await);
                }
            }
        }
        Ok(())
    }

    /// The writer thread stopped early: fetch its error.
    async fn thread_error(&mut self) -> io::Error {
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Thread { done, .. } => match done.await {
                Ok(Err(err)) => err,
                Ok(Ok(_)) => io::Error::other("writer finished early"),
                Err(join) => io::Error::other(join),
            },
            _ => io::Error::other("writer not running"),
        }
    }

    /// Gives up on the file and waits until whatever was written is removed,
    /// so that no partial file outlives the answer.
    pub(crate) async fn abort(mut self) {
        if let Mode::Thread { tx, done } = std::mem::replace(&mut self.mode, Mode::Done) {
            drop(tx);
            let _ = done.await;
        }
        let _ = std::fs::remove_file(&self.temp_path);
        self.temp_path = PathBuf::new();
    }

    /// Completes the file: everything is on disk under the temp name, hashed.
    pub(crate) async fn finish(mut self) -> Result<FinishedFile, StorageError> {
        let mut in_memory = None;
        let digest = match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Buffer(chunks, _) => {
                // Small enough to stay in memory until the commit writes it.
                let mut hasher = Sha256::new();
                for chunk in &chunks {
                    hasher.update(chunk);
                }
                in_memory = Some(chunks);
                hasher.finalize().into()
            }
            Mode::Thread { tx, done } => {
                // If the send fails the thread has already stopped with an error,
                // which `done` returns.
                let _ = tx.send(Msg::Finish).await;
                match done.await {
                    Ok(result) => result?,
                    Err(join) => return Err(io::Error::other(join).into()),
                }
            }
            Mode::Done => return Err(io::Error::other("finished twice").into()),
        };
        let reserved = std::mem::take(&mut self.reserved);
        Ok(FinishedFile {
            temp_path: std::mem::take(&mut self.temp_path),
            in_memory,
            size: self.size,
            sha256: hex(&digest),
            used: Arc::clone(&self.used),
            reserved,
        })
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        self.used.fetch_sub(self.reserved, Ordering::Relaxed);
        // In thread mode, dropping the sender makes the thread remove the file;
        // in buffer mode nothing was written yet.
        if matches!(self.mode, Mode::Done) && !self.temp_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Writes a small file in one go at `path` (which must not exist yet);
/// removes it again if the write fails.
fn write_all_new(path: &Path, chunks: &[Bytes]) -> io::Result<()> {
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        for chunk in chunks {
            file.write_all(chunk)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// A complete file under its temp name. Dropping it without committing removes it.
#[derive(Debug)]
pub(crate) struct FinishedFile {
    temp_path: PathBuf,
    /// A small file's bytes, written by the commit; `None` once on disk.
    in_memory: Option<Vec<Bytes>>,
    /// Size in bytes.
    pub(crate) size: u64,
    /// SHA-256, lowercase hex.
    pub(crate) sha256: String,
    used: Arc<AtomicU64>,
    reserved: u64,
}

impl FinishedFile {
    fn committed(mut self) {
        // The bytes now belong to a stored file: keep them counted.
        self.reserved = 0;
        self.temp_path = PathBuf::new();
    }
}

impl Drop for FinishedFile {
    fn drop(&mut self) {
        self.used.fetch_sub(self.reserved, Ordering::Relaxed);
        if self.in_memory.is_none() && !self.temp_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Is this error the disk being full?
pub(crate) fn is_storage_full(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::StorageFull || err.raw_os_error() == Some(28)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in walk(dir) {
            found.push(entry);
        }
        found
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(walk(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn small_and_large_files_hash_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(Some(dir.path()), false, None).unwrap();
        for size in [
            0usize,
            1,
            INLINE_LIMIT,
            INLINE_LIMIT + 1,
            3 * INLINE_LIMIT + 7,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut file = storage.begin();
            for chunk in data.chunks(10_000) {
                file.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            }
            let done = file.finish().await.unwrap();
            assert_eq!(done.size, size as u64);
            assert_eq!(done.sha256, hex(&Sha256::digest(&data)));
            let id = uuid::Uuid::new_v4().to_string();
            let path = storage.commit(done, &id, "f.bin").await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), data);
        }
        assert!(walk(&dir.path().join(PARTIAL_DIR)).is_empty());
    }

    #[tokio::test]
    async fn dropped_partial_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(Some(dir.path()), false, None).unwrap();
        let mut file = storage.begin();
        file.write(Bytes::from(vec![1u8; 3 * INLINE_LIMIT]))
            .await
            .unwrap();
        drop(file);
        let finished = {
            let mut f = storage.begin();
            f.write(Bytes::from_static(b"abc")).await.unwrap();
            f.finish().await.unwrap()
        };
        drop(finished);
        // The writer thread removes its file when the sender is dropped; wait for it
        // by polling (bounded) rather than sleeping a fixed time.
        for _ in 0..200 {
            if entries(dir.path()).is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    }

    #[tokio::test]
    async fn quota_refuses_writes_past_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(Some(dir.path()), false, Some(10)).unwrap();
        let mut file = storage.begin();
        file.write(Bytes::from_static(b"12345")).await.unwrap();
        let err = file.write(Bytes::from_static(b"123456")).await.unwrap_err();
        assert!(matches!(err, StorageError::QuotaFull));
        drop(file);
        // The quota is released by the dropped file.
        let mut file = storage.begin();
        file.write(Bytes::from_static(b"1234567890")).await.unwrap();
    }
}
