//! What bounds and stops the background fetches of `remote_uri` files
//! ([`Fetches`]), and the per-file lock that makes a commit and a delete of
//! one file happen one after the other ([`FileLocks`]).
//!
//! Every fetch is registered (by file uuid) from the moment its file is
//! announced, queued or running, so that `DELETE`, reset and shutdown can
//! cancel it wherever it is; a running one holds one of a fixed number of
//! global permits (`--max-remote-fetches`), so a client cannot make the
//! server hold more sockets than that however many files it announces.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::sync::lock;

/// Why a fetch was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// Its file was deleted, or every file was (reset, clearing uploads).
    Removed,
    /// The server is shutting down.
    Shutdown,
}

/// What a fetch cut short by a shutdown (or found pending after a restart)
/// reports as its `error_message`.
pub(crate) fn cut_short(uri: &str) -> String {
    format!("aymara-mock stopped before its fetch of {uri} finished: announce the file again.")
}

/// Tells a fetch it is cancelled, and why.
type CancelSignal = watch::Sender<Option<Cancelled>>;

/// The fetches of one server.
#[derive(Debug)]
pub(crate) struct Fetches {
    permits: Arc<Semaphore>,
    /// Most fetches of one request running at once.
    pub(crate) per_request: usize,
    /// The longest a fetch may take, connecting to its last byte.
    pub(crate) timeout: Duration,
    /// file uuid → (registration number, cancel signal).
    registered: std::sync::Mutex<HashMap<String, (u64, CancelSignal)>>,
    next: std::sync::atomic::AtomicU64,
}

/// A registered fetch: its cancellation signal. Dropping it unregisters it.
#[derive(Debug)]
pub(crate) struct Ticket {
    fetches: Arc<Fetches>,
    file_uuid: String,
    number: u64,
    signal: watch::Receiver<Option<Cancelled>>,
}

impl Fetches {
    /// At most `max` fetches running at once, `per_request` of one request,
    /// each within `timeout`.
    pub(crate) fn new(max: usize, per_request: usize, timeout: Duration) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max.max(1))),
            per_request: per_request.max(1),
            timeout,
            registered: std::sync::Mutex::default(),
            next: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Registers the fetch of `file_uuid` (queued until it has a permit).
    pub(crate) fn register(self: &Arc<Self>, file_uuid: &str) -> Ticket {
        let (tx, rx) = watch::channel(None);
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&self.registered).insert(file_uuid.to_owned(), (number, tx));
        Ticket {
            fetches: Arc::clone(self),
            file_uuid: file_uuid.to_owned(),
            number,
            signal: rx,
        }
    }

    /// Fetches registered, queued or running.
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        lock(&self.registered).len()
    }

    /// Cancels the fetch of one file, if there is one.
    pub(crate) fn cancel(&self, file_uuid: &str) {
        if let Some((_, tx)) = lock(&self.registered).remove(file_uuid) {
            tx.send_replace(Some(Cancelled::Removed));
        }
    }

    /// Cancels every fetch; the uuids of their files.
    pub(crate) fn cancel_all(&self, why: Cancelled) -> Vec<String> {
        let all = std::mem::take(&mut *lock(&self.registered));
        all.into_iter()
            .map(|(file_uuid, (_, tx))| {
                tx.send_replace(Some(why));
                file_uuid
            })
            .collect()
    }
}

impl Ticket {
    /// Waits for a global permit to run.
    pub(crate) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.fetches.permits).acquire_owned().await.ok()
    }

    /// Resolves once the fetch is cancelled, with why.
    pub(crate) async fn cancelled(&self) -> Cancelled {
        let mut signal = self.signal.clone();
        let result = signal.wait_for(Option::is_some).await.map(|why| *why);
        match result {
            Ok(why) => why.unwrap_or(Cancelled::Removed),
            // Unregistered without a cancel: never cancelled from now on.
            Err(_) => std::future::pending().await,
        }
    }

    /// Whether it was cancelled already.
    pub(crate) fn is_cancelled(&self) -> Option<Cancelled> {
        *self.signal.borrow()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut registered = lock(&self.fetches.registered);
        // Only its own registration: a cancel may have removed it already.
        if registered
            .get(&self.file_uuid)
            .is_some_and(|(number, _)| *number == self.number)
        {
            registered.remove(&self.file_uuid);
        }
    }
}

/// Stripes of locks by file uuid: a commit of a file's bytes (a PUT, a
/// fetch) and its `DELETE` take the same stripe, so that one of them
/// happens wholly before the other, and exactly one outcome holds. A fixed
/// number of stripes keeps memory bounded; two files sharing one wait for
/// each other only for the length of a commit (a rename).
#[derive(Debug)]
pub(crate) struct FileLocks {
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for FileLocks {
    fn default() -> Self {
        Self {
            stripes: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl FileLocks {
    /// Holds the lock of `file_uuid`'s stripe until the guard is dropped.
    pub(crate) async fn lock(&self, file_uuid: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        file_uuid.hash(&mut hasher);
        let stripe = (hasher.finish() % self.stripes.len() as u64) as usize;
        self.stripes[stripe].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cancel_reaches_its_fetch_and_unregisters_it() {
        let fetches = Arc::new(Fetches::new(2, 1, Duration::from_secs(1)));
        let a = fetches.register("a");
        let b = fetches.register("b");
        assert_eq!(fetches.registered(), 2);
        fetches.cancel("a");
        assert_eq!(a.cancelled().await, Cancelled::Removed);
        assert_eq!(b.is_cancelled(), None);
        assert_eq!(fetches.registered(), 1);
        assert_eq!(
            fetches.cancel_all(Cancelled::Shutdown),
            vec!["b".to_owned()]
        );
        assert_eq!(b.cancelled().await, Cancelled::Shutdown);
        drop((a, b));
        assert_eq!(fetches.registered(), 0);
        let c = fetches.register("c");
        drop(c);
        assert_eq!(fetches.registered(), 0);
    }
}
