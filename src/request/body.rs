//! `UploadBody`: the request body as a stream of chunks, with the limits and
//! faults that apply while it is read — the size cap, the body timeout, a
//! throttle, and `reset` after N bytes. The handler changes throttle and reset
//! through a shared [`BodyControl`] while the multipart parser owns the stream.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http_body::Body;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// Why reading the body stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFailure {
    /// More bytes than the limit.
    TooLarge = 1,
    /// A `reset` rule's `after_bytes` was reached.
    ResetFault = 2,
    /// No byte arrived for `--body-timeout`.
    Timeout = 3,
    /// The client went away or sent a broken body.
    Client = 4,
    /// The parser buffered too much without completing a part's headers
    /// (or finding the first boundary): a hostile or broken body.
    Unparsed = 5,
}

impl BodyFailure {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::TooLarge),
            2 => Some(Self::ResetFault),
            3 => Some(Self::Timeout),
            4 => Some(Self::Client),
            5 => Some(Self::Unparsed),
            _ => None,
        }
    }
}

/// The error the stream yields; the handler reads the cause from [`BodyControl`],
/// which also knows it after the parser has passed the error on.
#[derive(Debug, thiserror::Error)]
#[error("upload body: {0:?}")]
pub(crate) struct BodyError(pub(crate) BodyFailure);

const NO_LIMIT: u64 = u64::MAX;

/// How far reading may run ahead of the parser's progress: a body whose first
/// boundary does not come within this many bytes is cut off (the parser bounds
/// its own buffers; this bounds the time spent on a body that is not multipart).
/// It must exceed the largest body frame hyper hands over in one go (about 400 KiB).
pub(crate) const MAX_UNPARSED: u64 = 1024 * 1024;

/// Settings shared between the handler and the stream.
#[derive(Debug)]
pub(crate) struct BodyControl {
    /// Body bytes read so far.
    read: AtomicU64,
    /// Bytes per second; 0 = unthrottled.
    throttle: AtomicU64,
    /// Stop with `ResetFault` once this many bytes are read.
    reset_after: AtomicU64,
    /// `read` when the parser last made progress (a part began, a chunk came out).
    progress: AtomicU64,
    failure: AtomicU8,
}

impl BodyControl {
    /// Nothing read, no throttle, no reset, no failure.
    pub(crate) fn new() -> Self {
        BodyControl {
            read: AtomicU64::new(0),
            throttle: AtomicU64::new(0),
            reset_after: AtomicU64::new(NO_LIMIT),
            progress: AtomicU64::new(0),
            failure: AtomicU8::new(0),
        }
    }

    pub(crate) fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The parser made progress: everything read so far is accounted for.
    pub(crate) fn mark_progress(&self) {
        self.progress.store(self.read(), Ordering::Relaxed);
    }

    pub(crate) fn set_throttle(&self, bytes_per_sec: u64) {
        self.throttle.store(bytes_per_sec, Ordering::Relaxed);
    }

    pub(crate) fn set_reset_after(&self, bytes: u64) {
        self.reset_after.store(bytes, Ordering::Relaxed);
    }

    /// Whether a rule throttles the body.
    pub(crate) fn throttled(&self) -> bool {
        self.throttle.load(Ordering::Relaxed) > 0
    }

    pub(crate) fn reset_pending(&self) -> bool {
        self.reset_after.load(Ordering::Relaxed) != NO_LIMIT
    }

    pub(crate) fn failure(&self) -> Option<BodyFailure> {
        BodyFailure::from_u8(self.failure.load(Ordering::Relaxed))
    }

    fn fail(&self, failure: BodyFailure) -> BodyError {
        self.failure.store(failure as u8, Ordering::Relaxed);
        BodyError(failure)
    }
}

/// The upload body, read with limits.
pub(crate) struct UploadBody {
    inner: Incoming,
    ctl: Arc<BodyControl>,
    limit: u64,
    timeout: Duration,
    /// Body timeout, or the end of a throttle pause.
    timer: Pin<Box<Sleep>>,
    last_activity: Instant,
    /// A chunk held back by the throttle.
    held: Option<Bytes>,
    /// (when throttling began, bytes read then)
    throttle_origin: Option<(Instant, u64)>,
    finished: bool,
}

impl std::fmt::Debug for UploadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadBody")
            .field("ctl", &self.ctl)
            .finish()
    }
}

impl UploadBody {
    pub(crate) fn new(inner: Incoming, limit: u64, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            ctl: Arc::new(BodyControl::new()),
            limit,
            timeout,
            timer: Box::pin(tokio::time::sleep_until(now + timeout)),
            last_activity: now,
            held: None,
            throttle_origin: None,
            finished: false,
        }
    }

    pub(crate) fn control(&self) -> Arc<BodyControl> {
        Arc::clone(&self.ctl)
    }

    /// Has the whole body been read?
    pub(crate) fn is_finished(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    /// Reads and discards the rest of the body, at most `max_bytes` or for
    /// `max_time`, so that a client still sending can read our answer.
    /// Returns whether the body was read to its end.
    pub(crate) async fn drain(&mut self, max_bytes: u64, max_time: Duration) -> bool {
        if self.is_finished() {
            return true;
        }
        let deadline = Instant::now() + max_time;
        let mut drained = 0u64;
        loop {
            let frame =
                tokio::time::timeout_at(deadline, http_body_util::BodyExt::frame(&mut self.inner))
                    .await;
            match frame {
                Ok(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        drained += data.len() as u64;
                        self.ctl
                            .read
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                        if drained > max_bytes {
                            return false;
                        }
                    }
                }
                Ok(None) => {
                    self.finished = true;
                    return true;
                }
                Ok(Some(Err(_))) | Err(_) => return false,
            }
        }
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.timer.as_mut().poll(cx)
    }
}

impl Stream for UploadBody {
    type Item = Result<Bytes, BodyError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ctl.failure().is_some() {
            return Poll::Ready(None);
        }
        // A chunk held back by the throttle is released when its time comes.
        if this.held.is_some() {
            if this.poll_timer(cx).is_pending() {
                return Poll::Pending;
            }
            this.last_activity = Instant::now();
            return Poll::Ready(this.held.take().map(Ok));
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers carry nothing we store
                    };
                    if data.is_empty() {
                        continue;
                    }
                    let total = this
                        .ctl
                        .read
                        .fetch_add(data.len() as u64, Ordering::Relaxed)
                        + data.len() as u64;
                    this.last_activity = Instant::now();
                    if total >= this.ctl.reset_after.load(Ordering::Relaxed) {
                        return Poll::Ready(Some(Err(this.ctl.fail(BodyFailure::ResetFault))));
                    }
                    if total > this.limit {
                        return Poll::Ready(Some(Err(this.ctl.fail(BodyFailure::TooLarge))));
                    }
                    let behind = total - this.ctl.progress.load(Ordering::Relaxed);
                    if behind > MAX_UNPARSED + data.len() as u64 {
                        return Poll::Ready(Some(Err(this.ctl.fail(BodyFailure::Unparsed))));
                    }
                    let rate = this.ctl.throttle.load(Ordering::Relaxed);
                    if rate > 0 {
                        // Hold the chunk until the bytes read so far are due at
                        // `rate`; the socket is not read meanwhile, so TCP flow
                        // control slows the client down.
                        let before = total - data.len() as u64;
                        let (origin, base) = *this
                            .throttle_origin
                            .get_or_insert((this.last_activity, before));
                        let due =
                            origin + Duration::from_secs_f64((total - base) as f64 / rate as f64);
                        if due > Instant::now() {
                            this.timer.as_mut().reset(due);
                            this.held = Some(data);
                            if this.poll_timer(cx).is_pending() {
                                return Poll::Pending;
                            }
                            return Poll::Ready(this.held.take().map(Ok));
                        }
                    }
                    return Poll::Ready(Some(Ok(data)));
                }
                Poll::Ready(Some(Err(_))) => {
                    return Poll::Ready(Some(Err(this.ctl.fail(BodyFailure::Client))));
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => {
                    // Body timeout, re-armed lazily: the timer keeps an older
                    // (earlier) deadline and is moved only when it fires, so a
                    // steady upload does not touch the timer wheel per chunk.
                    let deadline = this.last_activity + this.timeout;
                    loop {
                        if this.poll_timer(cx).is_pending() {
                            return Poll::Pending;
                        }
                        if Instant::now() >= deadline {
                            return Poll::Ready(Some(Err(this.ctl.fail(BodyFailure::Timeout))));
                        }
                        this.timer.as_mut().reset(deadline);
                    }
                }
            }
        }
    }
}
