//! The request journal: a bounded record of what clients sent and what they got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::rules::near_miss::Pending;
use crate::rules::RuleEngine;
use crate::storage::StoredUpload;
use crate::sync::lock;

/// What a journal entry costs besides its strings: the struct, the queue
/// slot, the maps' nodes. An estimate; the byte bound is approximate.
const RECORD_OVERHEAD: usize = 512;
/// Per header or query parameter: its map node and `Value`.
const FIELD_OVERHEAD: usize = 64;

/// One request, as listed by `GET /__admin/requests`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// The request's `x-request-id` (the client's, or a generated one).
    pub id: String,
    /// Its place in the journal: 1 for the first request journaled, then
    /// one more per request; never reused, not even after a clear, so that
    /// `GET /__admin/requests?after=SEQ` lists only what came since.
    #[serde(default)]
    pub seq: u64,
    /// When the request arrived, RFC 3339 UTC.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query parameters (a repeated name keeps its last value).
    pub query: Map<String, Value>,
    /// Request headers, lowercase names; credentials redacted.
    pub headers: Map<String, Value>,
    /// The status answered, or `None` when no answer was sent.
    pub status: Option<u16>,
    /// The id of the rule that fired, if any.
    pub rule: Option<String>,
    /// The network fault carried out (`reset`, `hang`, `truncate`), if any.
    pub fault: Option<String>,
    /// The `error.code` of the error envelope answered (`quota.limit_exceeded`,
    /// or S3's code for a presigned URL), so that a report can show what the
    /// client was told without the body; `None` for any other answer.
    #[serde(default)]
    pub error_code: Option<String>,
    /// The client's connection ended before the request body was complete
    /// (its `Content-Length` or chunked terminator never came): no answer was
    /// sent and nothing was stored.
    pub cut: bool,
    /// The stored file, for an upload that was stored.
    pub upload: Option<StoredUpload>,
    /// For a request from a web page (it sent `Origin`): its origin, whether
    /// `--cors-origin` lets it read the answer, and for a CORS preflight what
    /// it asked for and what the grant left out; `None` for other clients.
    #[serde(default)]
    pub cors: Option<crate::cors::CorsRecord>,
    /// What was seen of the file the request carried, stored or not: for an
    /// upload a rule refused or cut, the only trace of which file it was.
    /// `None` when no file part was reached (e.g. refused at the `request`
    /// phase, before any body byte was read).
    #[serde(default)]
    pub file_seen: Option<FileSeen>,
    /// Request body bytes received (chunked transfer framing not counted).
    pub body_bytes: u64,
    /// Milliseconds from arrival to the end of the answer.
    pub duration_ms: u64,
    /// The client's `x-stainless-retry-count`: 0 for a first attempt, 1 for
    /// the first retry, … (`None` when not sent or not a number).
    #[serde(default)]
    pub retry_count: Option<u32>,
    /// The logical call this request is an attempt of: the `id` of its first
    /// attempt (its own id when it is one). Retries join the call of the
    /// attempt before them (see [`Journal`](crate::MockServer::requests)).
    #[serde(default)]
    pub call: String,
    /// Which attempt of its call this is: 1 for the first, 2 for the first retry, ….
    #[serde(default)]
    pub attempt: u32,
    /// The rules that came closest to deciding this request (none decided
    /// it), or the rules tried before the one that did that nearly matched;
    /// at most [`MAX_NEAR_MISSES`](crate::MAX_NEAR_MISSES), closest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub near_misses: Vec<crate::NearMiss>,
    /// With a shared state store (`--state`): the replica that served it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// What explains `near_misses` when the record is read (see
    /// `near_miss::Pending`); not serialized.
    #[serde(skip)]
    pub(crate) pending: Explainer,
}

/// What a request showed of its file (its multipart `file` part, or a
/// presigned PUT's body), whether or not it was stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSeen {
    /// The file name as the client sent it (at most [`MAX_SEEN_NAME`]
    /// bytes kept), before it is made safe for storage.
    pub filename: String,
    /// The part's content type (or the one guessed from the name).
    pub content_type: String,
    /// File bytes received, up to the refusal or the cut.
    pub bytes: u64,
    /// Whether the whole file was received.
    pub complete: bool,
}

/// Longest file name a journal entry keeps of [`FileSeen::filename`].
pub const MAX_SEEN_NAME: usize = 1024;

impl FileSeen {
    /// A file part whose headers were just read.
    pub(crate) fn new(filename: &str, content_type: &str) -> Self {
        let mut end = filename.len().min(MAX_SEEN_NAME);
        while !filename.is_char_boundary(end) {
            end -= 1;
        }
        FileSeen {
            filename: filename[..end].to_owned(),
            content_type: content_type.to_owned(),
            bytes: 0,
            complete: false,
        }
    }
}

/// A journal entry's [`Pending`] near misses, shared by its copies. Two
/// records compare equal whatever it holds: it is how the record's
/// `near_misses` are found, not part of what was journaled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Explainer(pub(crate) Option<Arc<Pending>>);

impl PartialEq for Explainer {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl RequestRecord {
    /// The record's near misses: those worked out when it was first read,
    /// or (a record not from the journal) its `near_misses` field.
    pub(crate) fn near_misses_with<'a>(&'a self, engine: &'a RuleEngine) -> &'a [crate::NearMiss] {
        match &self.pending.0 {
            Some(pending) => pending.get(engine),
            None => &self.near_misses,
        }
    }
}

/// A record as `GET /__admin/requests` lists it: its fields and its near
/// misses, worked out now if they were not yet.
#[derive(Serialize)]
pub(crate) struct Listed<'a> {
    #[serde(flatten)]
    record: &'a RequestRecord,
    near_misses: &'a [crate::NearMiss],
}

impl<'a> Listed<'a> {
    pub(crate) fn new(record: &'a RequestRecord, engine: &'a RuleEngine) -> Self {
        Self {
            record,
            near_misses: record.near_misses_with(engine),
        }
    }
}

/// The retry count a request announces (`x-stainless-retry-count`).
pub(crate) fn retry_count(headers: &http::HeaderMap) -> Option<u32> {
    headers
        .get("x-stainless-retry-count")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Records looked back over to find the attempt a retry follows.
const RETRY_LOOKBACK: usize = 1_000;

/// Whether `retry` is the attempt after `earlier`: the next retry count,
/// the same method, path, query and client (`user-agent`), and the same body
/// as far as both show it (the stored file's sha256, else the byte count).
fn follows(retry: &RequestRecord, earlier: &RequestRecord) -> bool {
    let (Some(n), Some(m)) = (retry.retry_count, earlier.retry_count) else {
        return false;
    };
    let same_body = match (&retry.upload, &earlier.upload) {
        (Some(a), Some(b)) => a.sha256 == b.sha256,
        _ => {
            retry.body_bytes == earlier.body_bytes
                || retry.body_bytes == 0
                || earlier.body_bytes == 0
        }
    };
    n == m + 1
        && retry.method == earlier.method
        && retry.path == earlier.path
        && retry.query == earlier.query
        && retry.headers.get("user-agent") == earlier.headers.get("user-agent")
        && same_body
}

/// Roughly how many bytes a record holds on to.
fn approximate_size(record: &RequestRecord) -> usize {
    let map = |m: &Map<String, Value>| {
        m.iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(16, str::len) + FIELD_OVERHEAD)
            .sum::<usize>()
    };
    let upload = record.upload.as_ref().map_or(0, |u| {
        u.file_uuid.len()
            + u.filename.len()
            + u.content_type.len()
            + u.sha256.len()
            + u.local_file_path
                .as_ref()
                .map_or(0, |p| p.as_os_str().len())
            + u.remote_file_path.len()
            + u.remote_uri.len()
            + u.file_url.len()
    });
    RECORD_OVERHEAD
        + record.id.len()
        + record.time.len()
        + record.method.len()
        + record.path.len()
        + map(&record.query)
        + map(&record.headers)
        + record.rule.as_ref().map_or(0, String::len)
        + record.fault.as_ref().map_or(0, String::len)
        + upload
        + record.cors.as_ref().map_or(0, |c| {
            c.origin.len()
                + c.preflight_method.as_ref().map_or(0, String::len)
                + c.preflight_headers
                    .iter()
                    .chain(&c.refused)
                    .map(|h| h.len() + FIELD_OVERHEAD)
                    .sum::<usize>()
        })
        + record
            .file_seen
            .as_ref()
            .map_or(0, |f| f.filename.len() + f.content_type.len())
        + record.call.len()
        + record
            .pending
            .0
            .as_ref()
            .map_or(0, |p| p.approximate_size())
        + record
            .near_misses
            .iter()
            .flat_map(|m| &m.failed)
            .map(|f| {
                let value = |v: &Value| v.as_str().map_or(16, str::len);
                f.condition.len()
                    + f.message.len()
                    + value(&f.expected)
                    + value(&f.actual)
                    + 4 * FIELD_OVERHEAD
            })
            .sum::<usize>()
}

/// Decodes `a=1&b=x%20y` into pairs, as a form: `+` is a space, and bytes
/// that are not UTF-8 become U+FFFD. form_urlencoded (already compiled for
/// object_store's `url`) replaces a hand-written splitter.
pub(crate) fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A journal bounded in entries and in bytes: the oldest records are dropped
/// first. Records are shared (`Arc`), so listing copies pointers, not records.
#[derive(Debug)]
pub(crate) struct Journal {
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    /// Each record with its approximate size.
    queue: VecDeque<(Arc<RequestRecord>, usize)>,
    bytes: usize,
    /// The `seq` of the last record journaled.
    last_seq: u64,
}

impl Journal {
    pub(crate) fn new(capacity: usize, max_bytes: u64) -> Self {
        Self {
            capacity,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            inner: Mutex::new(Records {
                queue: VecDeque::with_capacity(capacity.min(1024)),
                bytes: 0,
                last_seq: 0,
            }),
        }
    }

    /// Records a request; the oldest go while the journal is over either
    /// bound, but the newest record is always kept. Returns it as kept
    /// (numbered, joined to its call), unless the journal is off.
    pub(crate) fn push(&self, record: RequestRecord) -> Option<Arc<RequestRecord>> {
        if self.capacity == 0 {
            return None;
        }
        let mut record = record;
        let size = approximate_size(&record);
        let (evicted, kept) = {
            let mut inner = lock(&self.inner);
            // A retry joins the call of the attempt it follows, if that is
            // still journaled; anything else starts a call of its own.
            let earlier = match record.retry_count {
                Some(n) if n > 0 => inner
                    .queue
                    .iter()
                    .rev()
                    .take(RETRY_LOOKBACK)
                    .find(|(r, _)| follows(&record, r))
                    .map(|(r, _)| (r.call.clone(), r.attempt)),
                _ => None,
            };
            inner.last_seq += 1;
            record.seq = inner.last_seq;
            (record.call, record.attempt) = match earlier {
                Some((call, attempt)) => (call, attempt + 1),
                None => (record.id.clone(), 1),
            };
            let mut evicted = Vec::new();
            while !inner.queue.is_empty()
                && (inner.queue.len() >= self.capacity
                    || inner.bytes.saturating_add(size) > self.max_bytes)
            {
                if let Some((old, old_size)) = inner.queue.pop_front() {
                    inner.bytes -= old_size;
                    evicted.push(old);
                }
            }
            let kept = Arc::new(record);
            inner.queue.push_back((Arc::clone(&kept), size));
            inner.bytes += size;
            (evicted, kept)
        };
        // Freed after the lock is released.
        drop(evicted);
        Some(kept)
    }

    /// The records, oldest first, shared with the journal.
    pub(crate) fn snapshot(&self) -> Vec<Arc<RequestRecord>> {
        lock(&self.inner)
            .queue
            .iter()
            .map(|(r, _)| Arc::clone(r))
            .collect()
    }

    /// The records journaled after `seq`, oldest first, and the `seq` the
    /// oldest record still journaled has (one past the last when empty):
    /// a reader that holds older ones knows they are gone.
    pub(crate) fn since(&self, seq: u64) -> (Vec<Arc<RequestRecord>>, u64) {
        let inner = lock(&self.inner);
        let start = inner.queue.partition_point(|(r, _)| r.seq <= seq);
        let oldest = inner
            .queue
            .front()
            .map_or(inner.last_seq + 1, |(r, _)| r.seq);
        let records = inner
            .queue
            .range(start..)
            .map(|(r, _)| Arc::clone(r))
            .collect();
        (records, oldest)
    }

    /// Copies of the records, oldest first, each with its near misses.
    pub(crate) fn list(&self, engine: &RuleEngine) -> Vec<RequestRecord> {
        self.snapshot()
            .iter()
            .map(|r| {
                let mut record = (**r).clone();
                record.near_misses = r.near_misses_with(engine).to_vec();
                record
            })
            .collect()
    }

    /// Entries kept, and the bytes they take.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let inner = lock(&self.inner);
        (inner.queue.len(), inner.bytes)
    }

    /// The journal's approximate size in bytes.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        lock(&self.inner).bytes
    }

    pub(crate) fn clear(&self) {
        let old = {
            let mut inner = lock(&self.inner);
            let last_seq = inner.last_seq;
            std::mem::replace(
                &mut *inner,
                Records {
                    last_seq,
                    ..Records::default()
                },
            )
        };
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_rules() -> RuleEngine {
        RuleEngine::new(Vec::new(), 1).expect("an empty engine")
    }

    fn record(id: &str) -> RequestRecord {
        RequestRecord {
            id: id.into(),
            seq: 0,
            time: String::new(),
            method: "POST".into(),
            path: "/".into(),
            query: Map::new(),
            headers: Map::new(),
            status: Some(200),
            rule: None,
            fault: None,
            error_code: None,
            cut: false,
            upload: None,
            cors: None,
            file_seen: None,
            body_bytes: 0,
            duration_ms: 0,
            retry_count: None,
            call: String::new(),
            attempt: 0,
            near_misses: Vec::new(),
            replica: None,
            pending: crate::journal::Explainer::default(),
        }
    }

    #[test]
    fn drops_oldest_when_full() {
        let j = Journal::new(2, 1 << 20);
        for id in ["a", "b", "c"] {
            j.push(record(id));
        }
        let ids: Vec<_> = j.list(&no_rules()).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    #[test]
    fn since_lists_only_newer_records_and_seq_survives_a_clear() {
        let j = Journal::new(3, 1 << 20);
        for id in ["a", "b", "c", "d"] {
            j.push(record(id));
        }
        let (records, oldest) = j.since(0);
        let ids: Vec<_> = records.iter().map(|r| (r.id.as_str(), r.seq)).collect();
        assert_eq!(ids, [("b", 2), ("c", 3), ("d", 4)]);
        assert_eq!(oldest, 2);
        let (records, _) = j.since(3);
        assert_eq!(records.len(), 1);
        j.clear();
        assert_eq!(j.since(4), (Vec::new(), 5));
        j.push(record("e"));
        assert_eq!(j.since(4).0[0].seq, 5);
    }

    fn retry(id: &str, n: u32, ua: &str) -> RequestRecord {
        let mut r = record(id);
        r.retry_count = Some(n);
        r.headers
            .insert("user-agent".into(), Value::String(ua.into()));
        r
    }

    #[test]
    fn retries_join_the_call_of_the_attempt_before_them() {
        let j = Journal::new(100, 1 << 20);
        j.push(retry("a0", 0, "sdk"));
        j.push(retry("b0", 0, "other"));
        j.push(retry("a1", 1, "sdk"));
        j.push(retry("a2", 2, "sdk"));
        // A retry count with no attempt before it starts its own call.
        j.push(retry("c5", 5, "sdk"));
        j.push(record("plain"));
        let calls: Vec<_> = j
            .list(&no_rules())
            .into_iter()
            .map(|r| (r.id, r.call, r.attempt))
            .collect();
        let row = |id: &str, call: &str, attempt: u32| (id.to_owned(), call.to_owned(), attempt);
        assert_eq!(
            calls,
            [
                row("a0", "a0", 1),
                row("b0", "b0", 1),
                row("a1", "a0", 2),
                row("a2", "a0", 3),
                row("c5", "c5", 1),
                row("plain", "plain", 1),
            ]
        );
    }

    #[test]
    fn the_journal_is_bounded_in_bytes_and_keeps_the_newest() {
        let with_headers = |id: &str| {
            let mut r = record(id);
            r.headers
                .insert("x-h".into(), Value::String("a".repeat(10_000)));
            r
        };
        let j = Journal::new(1_000, 50_000);
        for i in 0..100 {
            j.push(with_headers(&i.to_string()));
        }
        let ids: Vec<_> = j.list(&no_rules()).into_iter().map(|r| r.id).collect();
        assert!((3..=5).contains(&ids.len()), "{ids:?}");
        assert_eq!(ids.last().map(String::as_str), Some("99"));
        assert!(j.bytes() <= 50_000, "{}", j.bytes());
        // One entry bigger than the whole budget is still kept, alone.
        let j = Journal::new(1_000, 1_000);
        j.push(with_headers("a"));
        j.push(with_headers("b"));
        let ids: Vec<_> = j.list(&no_rules()).into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b"]);
        j.clear();
        assert_eq!(j.bytes(), 0);
    }

    #[test]
    fn query_is_decoded() {
        let q = parse_query(Some("workspace_uuid=ws%201&x=a+b&flag"));
        assert_eq!(
            q,
            [
                ("workspace_uuid".into(), "ws 1".into()),
                ("x".into(), "a b".into()),
                ("flag".into(), String::new())
            ]
        );
    }
}
