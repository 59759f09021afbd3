//! The local backend: a directory (a fresh temp dir by default), written
//! through a `.partial/` file that is renamed into place only once complete.
//!
//! Layout: `<root>/<file_uuid>/<safe name>` for stored files, and
//! `<root>/.partial/<random>.part` while a file is being received. A file is
//! never visible at its final path before it is complete, and a partial file
//! is removed whenever its upload does not complete.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use futures_util::stream::BoxStream;

use super::fs_pool::FsPool;
use super::{Digest32, StorageError, Target};

/// Files up to this size are written in one go when complete; larger ones are
/// handed to a blocking writer thread as they arrive, so disk I/O and hashing
/// never run on the async threads for long.
pub(super) const INLINE_LIMIT: usize = 64 * 1024;
/// The body is copied into batches of this many bytes, handed to the writer
/// and then to the hasher: one wake-up and one `write` per batch rather than
/// per chunk of the body.
pub(super) const BATCH_BYTES: usize = 1024 * 1024;
/// Batches queued for each of the writer and hasher threads. With the one
/// being filled and the one each thread works on, an upload holds at most 7
/// batches (7 MiB), reused from one batch to the next.
const WRITER_QUEUE: usize = 2;
/// The directory, under the storage root, for files being received.
pub(crate) const PARTIAL_DIR: &str = ".partial";

/// The storage directory.
#[derive(Debug)]
pub(crate) struct LocalStorage {
    root: PathBuf,
    partial_dir: PathBuf,
    /// The temp dir, removed by [`LocalStorage::cleanup`] or when dropped.
    temp: std::sync::Mutex<Option<tempfile::TempDir>>,
    /// Threads for the file-system work of commits.
    pool: FsPool,
}

impl LocalStorage {
    /// Opens `dir` (created if missing), or a fresh temp dir when `None`.
    /// With `keep`, a temp dir is left behind on exit.
    pub(crate) fn open(dir: Option<&Path>, keep: bool) -> io::Result<Self> {
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
            pool: FsPool::default(),
        })
    }

    /// Removes the temp dir now (a no-op for a directory the user chose, or
    /// with `--keep-files`).
    pub(crate) fn cleanup(&self) {
        let temp = crate::sync::lock(&self.temp).take();
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

    /// Where `target` is stored once committed.
    pub(crate) fn path_of(&self, target: &Target) -> PathBuf {
        self.root.join(&target.file_uuid).join(&target.name)
    }

    /// Starts receiving a file.
    pub(crate) fn begin(&self) -> Partial {
        let temp_path = self
            .partial_dir
            .join(format!("{}.part", crate::http_util::random_uuid().simple()));
        Partial {
            temp_path,
            mode: Mode::Buffer(Vec::new(), 0),
        }
    }

    /// Moves a finished file to `<root>/<file_uuid>/<name>`.
    pub(crate) async fn commit(&self, mut file: Finished, target: &Target) -> io::Result<()> {
        if !one_component(&target.file_uuid) || !one_component(&target.name) {
            return Err(io::Error::other(format!(
                "refusing to store {:?}/{:?}: not a file name under the storage directory",
                target.file_uuid, target.name
            )));
        }
        let dir = self.root.join(&target.file_uuid);
        let path = dir.join(&target.name);
        let temp_path = file.temp_path.clone();
        let small = std::mem::take(&mut file.in_memory);
        // One hop to a pool thread for all the file-system work of a commit:
        // a slow file-system call must not stall the async workers (and every
        // connection queued on them).
        self.pool
            .run(move || {
                if let Some(chunks) = small {
                    write_all_new(&temp_path, &chunks)?;
                }
                // The directory exists when a PUT overwrites its file: the
                // rename then replaces the old bytes in one step.
                match std::fs::create_dir(&dir) {
                    Err(err) if err.kind() != io::ErrorKind::AlreadyExists => return Err(err),
                    _ => {}
                }
                if let Err(err) = std::fs::rename(&temp_path, &path) {
                    let _ = std::fs::remove_dir(&dir);
                    return Err(err);
                }
                Ok(())
            })
            .await?;
        file.temp_path = PathBuf::new();
        Ok(())
    }

    /// Removes stored files and their directories, as one job on the pool:
    /// clearing 100k uploads takes seconds, which must not stall the async
    /// workers (a `/health` check waited 2.5 s behind 74k when it did).
    pub(crate) async fn remove(&self, file_uuids: Vec<String>) {
        let root = self.root.clone();
        let removed = self.pool.run(move || {
            for file_uuid in file_uuids {
                let dir = root.join(&file_uuid);
                if !file_uuid.is_empty() && dir.parent() == Some(root.as_path()) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            Ok(())
        });
        // Fails only if the job panicked: the files stay, nothing else breaks.
        let _ = removed.await;
    }
}

/// Whether `name` is one ordinary path component (no `/`, not `.` or `..`).
fn one_component(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(std::path::Component::Normal(n)) if n == name)
        && components.next().is_none()
}

/// Whether `path` is inside `root` once every link on the way is resolved
/// (`Path::starts_with` alone is lexical: `root/../x` starts with `root`).
pub(crate) fn inside(root: &Path, path: &Path) -> bool {
    match (std::fs::canonicalize(root), std::fs::canonicalize(path)) {
        (Ok(root), Ok(path)) => path.starts_with(root),
        _ => false,
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
    Data(Vec<u8>),
    Finish,
}

enum Mode {
    /// Small so far: chunks kept in memory (bounded by `INLINE_LIMIT`).
    Buffer(Vec<Bytes>, usize),
    /// Streaming to a writer thread; `batch` is filled before it is sent.
    Thread {
        tx: mpsc::Sender<Msg>,
        done: tokio::task::JoinHandle<io::Result<Digest32>>,
        /// The batch being filled (capacity `BATCH_BYTES`).
        batch: Vec<u8>,
        /// Batches the hasher is done with, to be filled again.
        spare: std::sync::mpsc::Receiver<Vec<u8>>,
    },
    Done,
}

/// A file being received into `.partial/`. Dropping it before
/// [`Partial::finish`] removes whatever was written.
pub(crate) struct Partial {
    temp_path: PathBuf,
    mode: Mode,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial")
            .field("temp_path", &self.temp_path)
            .finish()
    }
}

impl Partial {
    /// Appends a chunk.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        match &mut self.mode {
            Mode::Buffer(chunks, len) => {
                *len += chunk.len();
                chunks.push(chunk);
                if *len > INLINE_LIMIT {
                    let chunks = std::mem::take(chunks);
                    self.start_thread(&chunks);
                }
                Ok(())
            }
            Mode::Thread {
                tx, batch, spare, ..
            } => {
                // The chunk is copied into a batch of our own rather than
                // kept: hyper then reuses its read buffer for the next read
                // instead of allocating (and faulting in) a fresh one, and
                // the batches themselves circulate writer → hasher → here.
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    if batch.len() >= BATCH_BYTES {
                        let next = spare
                            .try_recv()
                            .unwrap_or_else(|_| Vec::with_capacity(BATCH_BYTES));
                        let full = std::mem::replace(batch, next);
                        if tx.send(Msg::Data(full)).await.is_err() {
                            return Err(self.thread_error().await.into());
                        }
                    }
                    let take = rest.len().min(BATCH_BYTES - batch.len());
                    batch.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
                Ok(())
            }
            Mode::Done => Err(io::Error::other("write after finish").into()),
        }
    }

    /// Hands the file to a writer thread; `chunks` begin its first batch.
    fn start_thread(&mut self, chunks: &[Bytes]) {
        let (tx, mut rx) = mpsc::channel::<Msg>(WRITER_QUEUE);
        let (spare_tx, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let path = self.temp_path.clone();
        let done = tokio::task::spawn_blocking(move || {
            let result = (|| {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                // Hashing runs on its own thread, one batch behind the
                // writes: each is about half of the work per byte, so a large
                // upload moves at the pace of the slower one rather than of
                // both added up.
                let (hash_tx, hash_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(WRITER_QUEUE);
                let hasher = std::thread::Builder::new()
                    .name("upload-sha256".into())
                    .spawn(move || {
                        let mut hasher = Sha256::new();
                        for mut batch in hash_rx.iter() {
                            hasher.update(&batch);
                            batch.clear();
                            // Fails only once the upload is over: then it is freed.
                            let _ = spare_tx.send(batch);
                        }
                        Digest32::from(hasher.finalize())
                    })?;
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Data(batch) => {
                            file.write_all(&batch)?;
                            // A send fails only if the hasher died; the join below reports it.
                            let _ = hash_tx.send(batch);
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
        let mut batch = Vec::with_capacity(BATCH_BYTES);
        for chunk in chunks {
            batch.extend_from_slice(chunk);
        }
        self.mode = Mode::Thread {
            tx,
            done,
            batch,
            spare,
        };
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
        if let Mode::Thread { tx, done, .. } = std::mem::replace(&mut self.mode, Mode::Done) {
            drop(tx);
            let _ = done.await;
        }
        let _ = std::fs::remove_file(&self.temp_path);
        self.temp_path = PathBuf::new();
    }

    /// Completes the file: everything is on disk under the temp name, hashed.
    pub(crate) async fn finish(mut self) -> Result<(Finished, Digest32), StorageError> {
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
            Mode::Thread {
                tx, done, batch, ..
            } => {
                // If a send fails the thread has already stopped with an error,
                // which `done` returns.
                if !batch.is_empty() {
                    let _ = tx.send(Msg::Data(batch)).await;
                }
                let _ = tx.send(Msg::Finish).await;
                match done.await {
                    Ok(result) => result?,
                    Err(join) => return Err(io::Error::other(join).into()),
                }
            }
            Mode::Done => return Err(io::Error::other("finished twice").into()),
        };
        let finished = Finished {
            temp_path: std::mem::take(&mut self.temp_path),
            in_memory,
        };
        Ok((finished, digest))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
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

/// A complete file under its temp name (or, when small, still in memory).
/// Dropping it without committing removes it.
#[derive(Debug)]
pub(crate) struct Finished {
    temp_path: PathBuf,
    /// A small file's bytes, written by the commit; `None` once on disk.
    in_memory: Option<Vec<Bytes>>,
}

impl Drop for Finished {
    fn drop(&mut self) {
        if self.in_memory.is_none() && !self.temp_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Chunk size for reading a stored file back.
const READ_CHUNK: usize = 256 * 1024;

/// `count` bytes of the file at `path` from `start`, as a stream.
pub(crate) async fn read(
    path: &Path,
    start: u64,
    count: u64,
) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    let mut file = open_no_follow(path).await?;
    if start > 0 {
        file.seek(io::SeekFrom::Start(start)).await?;
    }
    let stream = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let want = READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK));
        let mut buf = bytes::BytesMut::with_capacity(want);
        match (&mut file).take(want as u64).read_buf(&mut buf).await {
            Ok(0) => Some((
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stored file is shorter than recorded",
                )),
                (file, 0),
            )),
            Ok(n) => Some((Ok(buf.freeze()), (file, left - n as u64))),
            Err(err) => Some((Err(err), (file, 0))),
        }
    });
    Ok(stream.boxed())
}

/// Opens a stored file without following a symlink planted in its place
/// (or in place of its directory): only what the emulator wrote is served.
async fn open_no_follow(path: &Path) -> io::Result<tokio::fs::File> {
    if let Some(dir) = path.parent() {
        if tokio::fs::symlink_metadata(dir)
            .await?
            .file_type()
            .is_symlink()
        {
            return Err(io::Error::other(
                "the upload's directory was replaced by a symlink",
            ));
        }
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NOFOLLOW);
    options.open(path).await
}
