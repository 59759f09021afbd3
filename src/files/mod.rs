//! The home of stored files: their lifecycle ([`FileStatus`]), the index
//! of what this server stored ([`Files`]), and the one place their URLs are
//! built ([`download_url`]). How the bytes arrive is [`ingest`]'s; where they
//! are kept is `storage`'s.

pub(crate) mod catalog;
pub(crate) mod entry;
pub(crate) mod events;
pub(crate) mod fetches;
pub(crate) mod ingest;
pub(crate) mod persist;
pub(crate) mod png;
pub(crate) mod presign;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::storage::{Target, UploadRecord};
use crate::sync::lock;

/// Where a file is in its life. An upload today goes `Pending` (bytes
/// arriving) → `Stored` (committed) → `Completed` (what the upload answer
/// reports as `processing_status`) at once; a failed or cut upload ends
/// `Failed` and leaves nothing; a removed file is `Deleted`. `Processing` is
/// the state the real API reports while it works on a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    dead_code,
    reason = "`Stored` and `Deleted` name states no answer reports: the files API says `completed` (or a video's processing state) and 404"
)]
pub(crate) enum FileStatus {
    Pending,
    Stored,
    Processing,
    Completed,
    Failed,
    Deleted,
}

impl FileStatus {
    /// As the API spells it (`processing_status`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FileStatus::Pending => "pending",
            FileStatus::Stored => "stored",
            FileStatus::Processing => "processing",
            FileStatus::Completed => "completed",
            FileStatus::Failed => "failed",
            FileStatus::Deleted => "deleted",
        }
    }

    /// Whether a file in this state may move to `next`.
    #[allow(
        dead_code,
        reason = "the lifecycle as documented; the catalog derives a file's state from its timestamps instead"
    )]
    pub(crate) fn may_become(self, next: FileStatus) -> bool {
        use FileStatus as S;
        matches!(
            (self, next),
            (S::Pending, S::Stored | S::Failed)
                | (
                    S::Stored,
                    S::Processing | S::Completed | S::Failed | S::Deleted
                )
                | (S::Processing, S::Completed | S::Failed | S::Deleted)
                | (S::Completed | S::Failed, S::Deleted)
        )
    }
}

/// `GET` URL of a stored file: `{public_url}/__files/{file_uuid}/{name}`,
/// the name percent-encoded. The only place a file URL is built.
pub(crate) fn download_url(public_url: &str, target: &Target) -> String {
    format!(
        "{public_url}/__files/{}/{}",
        target.file_uuid,
        crate::http_util::encode_segment(&target.name)
    )
}

/// How many entries a list takes under a lock at a time.
const LIST_CHUNK: usize = 1024;

/// One page of every file the files API knows (the catalog's, and the
/// uploads only the index holds), oldest first: how many `keep` accepts
/// (given a content type and a `workspace_uuid`), and those from `offset`,
/// at most `limit`. The two are walked side by side, a chunk at a time,
/// keeping only the page: memory does not grow with the catalog, and no
/// lock is held for more than a chunk. A file added or removed during the
/// walk may be counted or not.
pub(crate) fn page(
    catalog: &catalog::Catalog,
    files: &Files,
    keep: &dyn Fn(&str, Option<&str>) -> bool,
    offset: usize,
    limit: usize,
) -> (usize, Vec<entry::Entry>) {
    use std::collections::VecDeque;

    enum Item {
        Announced(u64),
        Upload(Arc<UploadRecord>),
    }
    let keep_entry = |e: &entry::Entry| keep(&e.target.content_type, e.workspace_uuid.as_deref());
    let keep_upload = |r: &UploadRecord| {
        let workspace = (r.target.workspace != crate::storage::DEFAULT_WORKSPACE)
            .then_some(r.target.workspace.as_str());
        keep(&r.target.content_type, workspace)
    };
    let (mut announced, mut next_seq) = (VecDeque::new(), Some(0u64));
    let (mut uploads, mut next_pos) = (VecDeque::new(), Some(0usize));
    let (mut count, mut items) = (0, Vec::new());
    loop {
        while announced.is_empty() {
            let Some(from) = next_seq else { break };
            next_seq = catalog.scan(from, LIST_CHUNK, &keep_entry, &mut announced);
        }
        while uploads.is_empty() {
            let Some(from) = next_pos else { break };
            let mut chunk = files.chunk(from, LIST_CHUNK);
            next_pos = (chunk.len() == LIST_CHUNK).then_some(from + LIST_CHUNK);
            catalog.retain_unknown(&mut chunk);
            uploads.extend(chunk.into_iter().filter(|r| keep_upload(r)));
        }
        let item = match (announced.front(), uploads.front()) {
            (None, None) => break,
            (Some((created, _)), Some(upload)) if *created > upload.stored_at => {
                uploads.pop_front().map(Item::Upload)
            }
            (Some(_), _) => announced.pop_front().map(|(_, seq)| Item::Announced(seq)),
            (None, Some(_)) => uploads.pop_front().map(Item::Upload),
        };
        let Some(item) = item else { break };
        if count >= offset && items.len() < limit {
            items.push(item);
        }
        count += 1;
    }
    let entries = items
        .into_iter()
        .filter_map(|item| match item {
            Item::Announced(seq) => catalog.at(seq),
            Item::Upload(record) => Some(entry::Entry::of_upload(&record)),
        })
        .collect();
    (count, entries)
}

/// Stored uploads, by `file_uuid`, in the order they were stored. It keeps
/// [`UploadRecord`]s, which `AppState::upload_of` spells out when asked.
#[derive(Debug, Default)]
pub(crate) struct Files {
    inner: Mutex<Uploads>,
}

/// The index's two views of the same records. The lookup is a `BTreeMap`,
/// which grows a node at a time: a hash map moved every record, under the
/// lock, each time it doubled — past ~100k uploads a single insert stalled
/// every request for tens of milliseconds (W2 p99 in BENCHMARKS.md).
#[derive(Debug, Default)]
struct Uploads {
    order: Vec<Arc<UploadRecord>>,
    by_id: BTreeMap<String, Arc<UploadRecord>>,
    /// sha256 → the `file_uuid` of the first upload stored with it.
    by_sha256: BTreeMap<Box<str>, Box<str>>,
    /// The sum of `order`'s sizes, kept as records come and go, so that a
    /// metrics scrape does not walk every record under the lock.
    bytes: u64,
}

impl Files {
    /// Indexes a stored upload; returns the `file_uuid` of the earlier
    /// stored upload it duplicates (same sha256), if any.
    pub(crate) fn insert(&self, mut record: UploadRecord) -> Option<String> {
        let mut inner = lock(&self.inner);
        let first = inner
            .by_sha256
            .entry(record.sha256.clone())
            .or_insert_with(|| record.target.file_uuid.as_str().into());
        if **first != *record.target.file_uuid {
            record.duplicate_of = Some(first.clone());
        }
        let duplicate_of = record.duplicate_of.as_deref().map(str::to_owned);
        let record = Arc::new(record);
        inner.bytes = inner.bytes.saturating_add(record.size);
        inner.order.push(Arc::clone(&record));
        inner.by_id.insert(record.target.file_uuid.clone(), record);
        duplicate_of
    }

    /// How many files are stored, and their bytes.
    pub(crate) fn totals(&self) -> (usize, u64) {
        let uploads = lock(&self.inner);
        (uploads.order.len(), uploads.bytes)
    }

    pub(crate) fn get(&self, file_uuid: &str) -> Option<Arc<UploadRecord>> {
        lock(&self.inner).by_id.get(file_uuid).cloned()
    }

    /// The stored uploads in storage order, shared rather than copied.
    pub(crate) fn snapshot(&self) -> Vec<Arc<UploadRecord>> {
        lock(&self.inner).order.clone()
    }

    /// Takes a file out of the index (deleted, or replaced by a new PUT).
    pub(crate) fn remove(&self, file_uuid: &str) -> Option<Arc<UploadRecord>> {
        let mut inner = lock(&self.inner);
        let record = inner.by_id.remove(file_uuid)?;
        inner.order.retain(|r| !Arc::ptr_eq(r, &record));
        inner.bytes = inner.bytes.saturating_sub(record.size);
        // A later upload of the same bytes is no duplicate of a removed file.
        if inner
            .by_sha256
            .get(&record.sha256)
            .is_some_and(|first| **first == *file_uuid)
        {
            inner.by_sha256.remove(&record.sha256);
        }
        Some(record)
    }

    /// At most `max` records in storage order from position `from`.
    pub(crate) fn chunk(&self, from: usize, max: usize) -> Vec<Arc<UploadRecord>> {
        let inner = lock(&self.inner);
        inner.order.iter().skip(from).take(max).cloned().collect()
    }

    pub(crate) fn take_all(&self) -> Vec<Arc<UploadRecord>> {
        // Out of the lock first: freeing a large index takes a while.
        let Uploads {
            order,
            by_id,
            by_sha256,
            bytes: _,
        } = std::mem::take(&mut *lock(&self.inner));
        drop((by_id, by_sha256));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(file_uuid: String) -> UploadRecord {
        UploadRecord {
            target: Target {
                file_uuid,
                name: "a.txt".into(),
                workspace: "default".into(),
                content_type: "text/plain".into(),
            },
            size: 1,
            sha256: "".into(),
            duplicate_of: None,
            stored_at: std::time::UNIX_EPOCH,
        }
    }

    fn ids(records: &[Arc<UploadRecord>]) -> Vec<String> {
        records.iter().map(|r| r.target.file_uuid.clone()).collect()
    }

    #[test]
    fn a_file_moves_forward_through_its_lifecycle_only() {
        use FileStatus as S;
        assert!(S::Pending.may_become(S::Stored));
        assert!(S::Stored.may_become(S::Completed));
        assert!(S::Completed.may_become(S::Deleted));
        assert!(!S::Completed.may_become(S::Pending));
        assert!(!S::Deleted.may_become(S::Stored));
        assert!(!S::Failed.may_become(S::Completed));
        assert_eq!(S::Completed.as_str(), "completed");
    }

    #[test]
    fn a_download_url_encodes_the_name_once() {
        let target = Target {
            file_uuid: "u".into(),
            name: "a b#.txt".into(),
            workspace: "w".into(),
            content_type: "text/plain".into(),
        };
        assert_eq!(
            download_url("http://h:1", &target),
            "http://h:1/__files/u/a%20b%23.txt"
        );
    }

    #[test]
    fn the_index_lists_in_storage_order_finds_by_id_and_empties() {
        let index = Files::default();
        // Ids that sort differently from the order they are stored in.
        let stored: Vec<String> = (0..1000)
            .map(|i| format!("{:04}", (i * 7919) % 1000))
            .collect();
        for id in &stored {
            index.insert(record(id.clone()));
        }
        assert_eq!(ids(&index.snapshot()), stored);
        let found = index.get(&stored[10]).unwrap();
        assert_eq!(found.target.file_uuid, stored[10]);
        assert!(index.get("missing").is_none());

        assert_eq!(ids(&index.take_all()), stored);
        assert!(index.snapshot().is_empty());
        assert!(index.get(&stored[10]).is_none());
    }

    #[test]
    fn the_totals_follow_inserts_removes_and_take_all() {
        let index = Files::default();
        for (i, size) in [10u64, 200, 3000].into_iter().enumerate() {
            let mut r = record(format!("f{i}"));
            r.size = size;
            index.insert(r);
        }
        assert_eq!(index.totals(), (3, 3210));
        assert!(index.remove("f1").is_some());
        assert_eq!(index.totals(), (2, 3010));
        assert!(index.remove("f1").is_none());
        assert_eq!(index.totals(), (2, 3010));
        index.take_all();
        assert_eq!(index.totals(), (0, 0));
        let mut r = record("again".into());
        r.size = 7;
        index.insert(r);
        assert_eq!(index.totals(), (1, 7));
    }
}
