//! The local backend: a directory (a fresh temp dir by default), written
//! through a `.partial/` file that is renamed into place only once complete.
//!
//! Layout: `<root>/<file_uuid>/<safe name>` for stored files, and
//! `<root>/.partial/<random>.part` while a file is being received. A file is
//! never visible at its final path before it is complete, and a partial file
//! is removed whenever its upload does not complete.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use futures_util::stream::BoxStream;

use super::fs_pool::FsPool;
use super::{Digest32, StorageError, Target};

/// Files up to this size are written in one go when complete; larger ones are
/// streamed to the writer pool as they arrive, so disk I/O and hashing never
/// run on the async threads.
pub(super) const INLINE_LIMIT: usize = 64 * 1024;
/// The largest piece of the body handed to the pool as one step (a larger
/// chunk is split, without copying).
pub(super) const STEP_BYTES: usize = 1024 * 1024;
/// Bytes of one upload handed to the pool and not yet both written and
/// hashed: enough that a lone upload keeps its writer and its hasher busy
/// at once, small enough that one upload never holds much. (The chunks are
/// the parser's, shared: they can keep a larger buffer alive, so with 4 MiB
/// a 1 GiB upload peaked at 27-33 MiB resident instead of ~20.)
const UPLOAD_IN_FLIGHT: usize = 2 * 1024 * 1024;
/// Bytes of all uploads together handed to the pool and not yet written and
/// hashed. When it is reached, uploads wait before taking their next chunk
/// from the socket: a slow disk slows the clients instead of filling memory.
pub(super) const TOTAL_IN_FLIGHT: usize = 16 * 1024 * 1024;
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
    /// Threads that write and hash the bytes of every upload.
    writers: Arc<FsPool>,
    /// [`TOTAL_IN_FLIGHT`] bytes, taken by each step handed to `writers`.
    in_flight: Arc<Semaphore>,
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
            writers: Arc::new(FsPool::new(writer_threads(), "aymara-mock-write")),
            in_flight: Arc::new(Semaphore::new(TOTAL_IN_FLIGHT)),
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
            writers: Arc::clone(&self.writers),
            in_flight: Arc::clone(&self.in_flight),
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

/// Threads that write and hash uploads: one per core (at least two, so that
/// a lone upload is written and hashed at once), whatever the number of
/// uploads in flight.
fn writer_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

enum Mode {
    /// Small so far: chunks kept in memory (bounded by `INLINE_LIMIT`).
    Buffer(Vec<Bytes>, usize),
    /// Streaming to the writer pool.
    Streaming {
        lanes: Arc<Lanes>,
        /// [`UPLOAD_IN_FLIGHT`] bytes, taken by each step of this upload.
        own: Arc<Semaphore>,
    },
    Done,
}

/// A file being received into `.partial/`. Dropping it before
/// [`Partial::finish`] removes whatever was written.
pub(crate) struct Partial {
    temp_path: PathBuf,
    mode: Mode,
    writers: Arc<FsPool>,
    in_flight: Arc<Semaphore>,
}

impl std::fmt::Debug for Partial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partial")
            .field("temp_path", &self.temp_path)
            .finish()
    }
}

impl Partial {
    /// Appends a chunk. Waits (without holding the chunk's successors: the
    /// socket is not read meanwhile) while the writer pool has as many bytes
    /// in flight as it takes.
    pub(crate) async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        match &mut self.mode {
            Mode::Buffer(chunks, len) => {
                *len += chunk.len();
                chunks.push(chunk);
                if *len > INLINE_LIMIT {
                    let chunks = std::mem::take(chunks);
                    self.start_streaming();
                    for chunk in chunks {
                        self.send(chunk).await?;
                    }
                }
                Ok(())
            }
            Mode::Streaming { .. } => self.send(chunk).await,
            Mode::Done => Err(io::Error::other("write after finish").into()),
        }
    }

    fn start_streaming(&mut self) {
        let lanes = Arc::new(Lanes {
            path: self.temp_path.clone(),
            queues: [Mutex::default(), Mutex::default()],
            file: Mutex::new(None),
            hasher: Mutex::new(Sha256::new()),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
        });
        self.mode = Mode::Streaming {
            lanes,
            own: Arc::new(Semaphore::new(UPLOAD_IN_FLIGHT)),
        };
    }

    /// Hands `chunk` to both lanes, in steps of at most [`STEP_BYTES`],
    /// each once its bytes fit in this upload's and in the pool's budget.
    async fn send(&mut self, mut chunk: Bytes) -> Result<(), StorageError> {
        let Mode::Streaming { lanes, own } = &self.mode else {
            return Err(io::Error::other("not streaming").into());
        };
        while !chunk.is_empty() {
            if lanes.failed.load(Ordering::Acquire) {
                return Err(lanes.error().into());
            }
            let piece = chunk.split_to(chunk.len().min(STEP_BYTES));
            // At most STEP_BYTES (1 MiB): fits in a u32 and in both budgets.
            let n = u32::try_from(piece.len()).unwrap_or(u32::MAX);
            let closed = |_| io::Error::other("the writer pool is closed");
            let upload = Arc::clone(own)
                .acquire_many_owned(n)
                .await
                .map_err(closed)?;
            let total = Arc::clone(&self.in_flight)
                .acquire_many_owned(n)
                .await
                .map_err(closed)?;
            let held = Arc::new((upload, total));
            lanes.push(
                &self.writers,
                Lane::Write,
                Step::Data(piece.clone(), Arc::clone(&held)),
            );
            lanes.push(&self.writers, Lane::Hash, Step::Data(piece, held));
        }
        Ok(())
    }

    /// Gives up on the file and waits until whatever was written is removed,
    /// so that no partial file outlives the answer.
    pub(crate) async fn abort(mut self) {
        if let Mode::Streaming { lanes, .. } = std::mem::replace(&mut self.mode, Mode::Done) {
            lanes.abandoned.store(true, Ordering::Release);
            let (tx, rx) = oneshot::channel();
            lanes.push(&self.writers, Lane::Write, Step::End(tx));
            let _ = rx.await;
        }
        let _ = std::fs::remove_file(&self.temp_path);
        self.temp_path = PathBuf::new();
    }

    /// Completes the file: everything is on disk under the temp name, hashed.
    pub(crate) async fn finish(mut self) -> Result<(Finished, Digest32), StorageError> {
        let mut in_memory = None;
        let digest = match &self.mode {
            Mode::Buffer(chunks, _) => {
                // Small enough to stay in memory until the commit writes it.
                let mut hasher = Sha256::new();
                for chunk in chunks {
                    hasher.update(chunk);
                }
                if let Mode::Buffer(chunks, _) = std::mem::replace(&mut self.mode, Mode::Done) {
                    in_memory = Some(chunks);
                }
                hasher.finalize().into()
            }
            Mode::Streaming { lanes, .. } => {
                // The mode stays `Streaming` while waiting: if this future is
                // dropped, `Drop` has the write lane remove the file once
                // it is done with it.
                let lanes = Arc::clone(lanes);
                let (written, write_done) = oneshot::channel();
                let (hashed, hash_done) = oneshot::channel();
                lanes.push(&self.writers, Lane::Write, Step::End(written));
                lanes.push(&self.writers, Lane::Hash, Step::End(hashed));
                let (written, hashed) = (write_done.await, hash_done.await);
                self.mode = Mode::Done;
                if lanes.failed.load(Ordering::Acquire) {
                    return Err(lanes.error().into());
                }
                if written.is_err() || hashed.is_err() {
                    return Err(io::Error::other("the writer pool stopped").into());
                }
                let hasher = std::mem::take(&mut *crate::sync::lock(&lanes.hasher));
                hasher.finalize().into()
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
        match &self.mode {
            // The write lane removes the file after its last write.
            Mode::Streaming { lanes, .. } => {
                lanes.abandoned.store(true, Ordering::Release);
                let (tx, _) = oneshot::channel();
                lanes.push(&self.writers, Lane::Write, Step::End(tx));
            }
            Mode::Done if !self.temp_path.as_os_str().is_empty() => {
                let _ = std::fs::remove_file(&self.temp_path);
            }
            // In buffer mode nothing was written yet.
            _ => {}
        }
    }
}

/// One upload's work on the writer pool, in two lanes: its writes, and its
/// hashing. Each lane runs its steps in order, on one pool thread at a time
/// (whichever is free); the two lanes of an upload run at once when two
/// threads are free, so a lone upload moves at the pace of the slower of
/// writing and hashing rather than of both added up. The bytes are shared by
/// the lanes, not copied.
struct Lanes {
    path: PathBuf,
    /// Steps waiting, by [`Lane`].
    queues: [Mutex<Queue>; 2],
    /// The partial file, opened by the first write (only the write lane's
    /// thread takes this lock).
    file: Mutex<Option<std::fs::File>>,
    /// Only the hash lane's thread takes this lock, and `finish` once it is done.
    hasher: Mutex<Sha256>,
    /// Why the file could not be written.
    error: Mutex<Option<io::Error>>,
    failed: AtomicBool,
    /// The upload will not complete: skip its remaining steps, remove the file.
    abandoned: AtomicBool,
}

#[derive(Clone, Copy)]
enum Lane {
    Write = 0,
    Hash = 1,
}

#[derive(Default)]
struct Queue {
    steps: VecDeque<Step>,
    /// A pool job is queued or running for this lane.
    scheduled: bool,
}

enum Step {
    /// Bytes to write (or hash), holding their share of the budgets until
    /// both lanes are done with them.
    Data(Bytes, Arc<(OwnedSemaphorePermit, OwnedSemaphorePermit)>),
    /// Every step before this one is done: for the write lane, the file is
    /// closed (and removed if the upload failed or was abandoned).
    End(oneshot::Sender<()>),
}

impl Lanes {
    /// Queues `step` on `lane`, and the lane on the pool unless it is there.
    fn push(self: &Arc<Self>, pool: &Arc<FsPool>, lane: Lane, step: Step) {
        let mut queue = crate::sync::lock(&self.queues[lane as usize]);
        queue.steps.push_back(step);
        if queue.scheduled {
            return;
        }
        queue.scheduled = true;
        drop(queue);
        self.schedule(pool, lane);
    }

    fn schedule(self: &Arc<Self>, pool: &Arc<FsPool>, lane: Lane) {
        let (lanes, again) = (Arc::clone(self), Arc::clone(pool));
        if let Err(err) = pool.spawn(move || lanes.run(&again, lane)) {
            // No thread to run the lane: its steps are dropped (their
            // waiters see the error).
            self.fail(err);
            let mut queue = crate::sync::lock(&self.queues[lane as usize]);
            queue.steps.clear();
            queue.scheduled = false;
        }
    }

    /// A pool job: runs the steps queued on `lane` now, then puts the lane
    /// back at the end of the pool's queue if more came meanwhile, so that
    /// every upload in flight gets its turn.
    fn run(self: Arc<Self>, pool: &Arc<FsPool>, lane: Lane) {
        let steps = std::mem::take(&mut crate::sync::lock(&self.queues[lane as usize]).steps);
        let guard = Unschedule { lanes: &self, lane };
        // The data steps since the last `End`, written with one call.
        let mut unwritten = Vec::new();
        for step in steps {
            match (lane, step) {
                (_, Step::Data(..)) if self.skip() => {}
                (Lane::Write, data @ Step::Data(..)) => unwritten.push(data),
                (Lane::Hash, Step::Data(bytes, _held)) => {
                    crate::sync::lock(&self.hasher).update(&bytes);
                }
                (Lane::Write, Step::End(done)) => {
                    self.write_out(&mut unwritten);
                    drop(crate::sync::lock(&self.file).take());
                    if self.skip() {
                        let _ = std::fs::remove_file(&self.path);
                    }
                    let _ = done.send(());
                }
                (Lane::Hash, Step::End(done)) => {
                    let _ = done.send(());
                }
            }
        }
        self.write_out(&mut unwritten);
        std::mem::forget(guard);
        let mut queue = crate::sync::lock(&self.queues[lane as usize]);
        if queue.steps.is_empty() {
            queue.scheduled = false;
        } else {
            drop(queue);
            self.schedule(pool, lane);
        }
    }

    /// Writes the data of `steps` (one `writev` for all: under load a lane
    /// finds several steps queued when its turn comes), then drops them,
    /// which gives their bytes back to the budgets once hashed too.
    fn write_out(&self, steps: &mut Vec<Step>) {
        if !steps.is_empty() && !self.skip() {
            let mut slices: Vec<io::IoSlice<'_>> = steps
                .iter()
                .filter_map(|step| match step {
                    Step::Data(bytes, _) => Some(io::IoSlice::new(bytes)),
                    Step::End(_) => None,
                })
                .collect();
            if let Err(err) = self.write(&mut slices) {
                self.fail(err);
            }
        }
        steps.clear();
    }

    fn write(&self, mut slices: &mut [io::IoSlice<'_>]) -> io::Result<()> {
        let mut file = crate::sync::lock(&self.file);
        let file = match &mut *file {
            Some(file) => file,
            None => file.insert(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&self.path)?,
            ),
        };
        while !slices.is_empty() {
            match file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// Whether the remaining data is of no use (the upload failed or was abandoned).
    fn skip(&self) -> bool {
        self.failed.load(Ordering::Acquire) || self.abandoned.load(Ordering::Acquire)
    }

    fn fail(&self, err: io::Error) {
        let mut error = crate::sync::lock(&self.error);
        if error.is_none() {
            *error = Some(err);
        }
        self.failed.store(true, Ordering::Release);
    }

    /// The error the upload failed with (a copy: later callers see it too).
    fn error(&self) -> io::Error {
        match &*crate::sync::lock(&self.error) {
            Some(err) => io::Error::new(err.kind(), err.to_string()),
            None => io::Error::other("the upload failed"),
        }
    }
}

/// Dropped only if a lane's step panicked: fails the upload and unschedules
/// the lane with its steps dropped, so that later steps (the `End` that
/// removes the file, the waiters of `finish`) are still run or answered
/// instead of waiting forever on a lane no thread will run.
struct Unschedule<'a> {
    lanes: &'a Lanes,
    lane: Lane,
}

impl Drop for Unschedule<'_> {
    fn drop(&mut self) {
        self.lanes
            .fail(io::Error::other("writing the upload failed unexpectedly"));
        let mut queue = crate::sync::lock(&self.lanes.queues[self.lane as usize]);
        queue.steps.clear();
        queue.scheduled = false;
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
