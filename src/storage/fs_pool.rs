//! Small pools of threads for the file-system work: the short jobs of
//! commits (write a small file, create its directory, rename it into place),
//! and the writing and hashing of every upload's bytes
//! ([`super::local`]'s lanes), each on a pool of its own.
//!
//! Tokio's blocking pool would do, but it grows a thread per concurrent job:
//! with 32 connections committing 4 KiB uploads it ran ~37 threads, and every
//! commit woke one of them and was woken back (W2's profile: a fifth of the
//! server's time in futex calls, context switches and the pool's lock). Here
//! at most a fixed number of threads ([`MAX_THREADS`] for commits) take jobs
//! from one queue; a busy thread
//! goes straight on to the next job without sleeping, so under load a wake-up
//! serves several commits. Idle threads exit after [`IDLE_EXIT`], and all of
//! them once the pool is dropped.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::sync::lock;

/// Threads at most: enough that one slow file-system call (a disk's journal
/// commit) does not hold up every other upload's commit.
const MAX_THREADS: usize = 4;
/// An idle thread exits after this long without work.
const IDLE_EXIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug)]
pub(crate) struct FsPool {
    shared: Arc<Shared>,
    /// Threads at most.
    max_threads: usize,
    /// The threads' name (in `top -H`, `perf`, a debugger).
    name: &'static str,
}

impl Default for FsPool {
    /// The commits' pool: [`MAX_THREADS`] threads at most.
    fn default() -> Self {
        Self::new(MAX_THREADS, "aymara-mock-fs")
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    work: Condvar,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    threads: usize,
    idle: usize,
    closed: bool,
}

impl FsPool {
    /// A pool of at most `max_threads` threads (at least one) named `name`,
    /// started on demand.
    pub(crate) fn new(max_threads: usize, name: &'static str) -> Self {
        Self {
            shared: Arc::default(),
            max_threads: max_threads.max(1),
            name,
        }
    }

    /// Queues `job` for a pool thread without waiting for it. Fails only
    /// when the pool has no thread and none can be started: then nothing
    /// will ever run the job, which is dropped.
    pub(crate) fn spawn(&self, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
        self.submit(Box::new(job))
    }

    /// Runs `job` on a pool thread and waits (asynchronously) for its result.
    pub(crate) async fn run<T, F>(&self, job: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(Box::new(move || {
            // The receiver is gone only if the request was cancelled.
            let _ = tx.send(job());
        }))?;
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("a file-system job failed")))
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        let mut state = lock(&self.shared.state);
        state.jobs.push_back(job);
        if state.idle > 0 {
            self.shared.work.notify_one();
        } else if state.threads < self.max_threads {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || work(&shared));
            match spawned {
                Ok(_) => state.threads += 1,
                // With no thread at all, nobody would ever run the job.
                Err(err) if state.threads == 0 => {
                    state.jobs.pop_back();
                    return Err(err);
                }
                Err(_) => {}
            }
        }
        // Otherwise every thread is busy and one takes the job when done.
        Ok(())
    }
}

impl Drop for FsPool {
    fn drop(&mut self) {
        lock(&self.shared.state).closed = true;
        self.shared.work.notify_all();
    }
}

/// A pool thread: runs queued jobs until the pool is dropped or it has been
/// idle for [`IDLE_EXIT`].
fn work(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // A panicking job drops its result sender (its caller gets an
            // error); the thread carries on with the next job.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            state = lock(&shared.state);
            continue;
        }
        if state.closed {
            break;
        }
        state.idle += 1;
        let (next, timeout) = match shared.work.wait_timeout(state, IDLE_EXIT) {
            Ok(woken) => woken,
            Err(poisoned) => poisoned.into_inner(),
        };
        state = next;
        state.idle -= 1;
        if timeout.timed_out() && state.jobs.is_empty() {
            break;
        }
    }
    state.threads -= 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_many_jobs_on_few_threads_and_reports_errors() {
        let pool = FsPool::default();
        let jobs = (0..64u64).map(|i| {
            pool.run(move || {
                std::thread::sleep(Duration::from_millis(1));
                Ok((i, std::thread::current().id()))
            })
        });
        let results = futures_util::future::try_join_all(jobs).await.unwrap();
        assert_eq!(
            results.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            (0..64).collect::<Vec<_>>()
        );
        let threads: std::collections::HashSet<_> = results.iter().map(|(_, t)| *t).collect();
        assert!(threads.len() <= MAX_THREADS, "{} threads", threads.len());

        let err = pool
            .run(|| -> io::Result<()> { Err(io::Error::other("disk full")) })
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        let panicked = pool.run(|| -> io::Result<()> { panic!("bug") }).await;
        assert!(panicked.is_err());
        // The pool still works after a job panicked.
        assert_eq!(pool.run(|| Ok(7)).await.unwrap(), 7);
    }
}
