//! The files API's view of files (`/v2/files`): every file it knows, in the
//! order it learnt of them, with what the index of stored bytes
//! ([`super::Files`]) does not keep: when it was created and stored, the
//! workspace the client named, what the client said it would upload, and a
//! rule's verdict on its processing. A file created with `POST /v2/files` is
//! here from the start (`pending` until its PUT lands); an upload through
//! the multipart endpoint joins once stored. A deleted file leaves a
//! tombstone, so that its presigned URL cannot bring it back (kept across a
//! restart in a chosen storage directory).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::FileStatus;
use crate::rules::model::{Processing, ProcessingStatus};
use crate::storage::{Target, UploadRecord};
use crate::sync::lock;

/// What a failed file reports when its rule gave no `error_message`.
const DEFAULT_FAILURE: &str = "Processing failed (decided by an aymara-mock rule).";

/// One file as the files API knows it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Where its bytes are (or will be) stored.
    pub(crate) target: Target,
    /// The `workspace_uuid` the client gave, if any.
    pub(crate) workspace_uuid: Option<String>,
    /// What the client named as its source (`local_file_path` or `remote_uri`).
    pub(crate) original: Option<String>,
    pub(crate) created_at: SystemTime,
    /// When its bytes were stored (last stored, after an overwrite).
    pub(crate) stored_at: Option<SystemTime>,
    /// A rule's verdict on its processing.
    pub(crate) outcome: Option<Processing>,
    /// Size and SHA-256 of its stored bytes (kept so that a restart can
    /// index them again without reading them).
    pub(crate) bytes: Option<(u64, Box<str>)>,
    seq: u64,
}

/// A file's processing status at some instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusNow {
    pub(crate) status: FileStatus,
    /// When it entered that status.
    pub(crate) since: SystemTime,
    pub(crate) error_message: Option<String>,
}

impl Entry {
    /// An upload the catalog does not hold (through the multipart endpoint),
    /// seen as the files API sees it: created when stored, no verdict.
    pub(crate) fn of_upload(record: &UploadRecord) -> Self {
        let target = record.target.clone();
        let workspace_uuid = (target.workspace != "default").then(|| target.workspace.clone());
        Self {
            target,
            workspace_uuid,
            original: None,
            created_at: record.stored_at,
            stored_at: Some(record.stored_at),
            outcome: None,
            bytes: Some((record.size, record.sha256.clone())),
            seq: 0,
        }
    }

    /// An entry saved by an earlier run (`super::persist`).
    pub(crate) fn restored(
        target: Target,
        workspace_uuid: Option<String>,
        original: Option<String>,
        created_at: SystemTime,
        stored_at: Option<SystemTime>,
        outcome: Option<Processing>,
        bytes: Option<(u64, Box<str>)>,
    ) -> Self {
        Self {
            target,
            workspace_uuid,
            original,
            created_at,
            stored_at,
            outcome,
            bytes,
            seq: 0,
        }
    }

    /// Whether its content type is a video's.
    pub(crate) fn is_video(&self) -> bool {
        file_type(&self.target.content_type) == "video"
    }

    /// Its status at `now`. Without bytes: `pending`. A rule's verdict,
    /// when there is one, holds from the moment the bytes were stored.
    /// Otherwise a non-video is `completed` at once, and a video is
    /// `pending` for the first third of `video_time`, then `processing`,
    /// then `completed`.
    pub(crate) fn status_at(&self, now: SystemTime, video_time: Duration) -> StatusNow {
        let at = |status, since| StatusNow {
            status,
            since,
            error_message: None,
        };
        let Some(stored) = self.stored_at else {
            return at(FileStatus::Pending, self.created_at);
        };
        if let Some(outcome) = &self.outcome {
            return match outcome.status {
                ProcessingStatus::Processing => at(FileStatus::Processing, stored),
                ProcessingStatus::Completed => at(FileStatus::Completed, stored),
                ProcessingStatus::Failed => StatusNow {
                    status: FileStatus::Failed,
                    since: stored,
                    error_message: Some(
                        outcome
                            .error_message
                            .clone()
                            .unwrap_or_else(|| DEFAULT_FAILURE.to_owned()),
                    ),
                },
            };
        }
        if !self.is_video() || video_time.is_zero() {
            return at(FileStatus::Completed, stored);
        }
        let elapsed = now.duration_since(stored).unwrap_or_default();
        let processing_from = video_time / 3;
        if elapsed < processing_from {
            at(FileStatus::Pending, stored)
        } else if elapsed < video_time {
            at(FileStatus::Processing, stored + processing_from)
        } else {
            at(FileStatus::Completed, stored + video_time)
        }
    }
}

/// `file_type` from a content type: `image`, `video`, `text` (text/*, JSON,
/// XML, CSV) or `document` (anything else).
pub(crate) fn file_type(content_type: &str) -> &'static str {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("image", _)) => "image",
        Some(("video", _)) => "video",
        Some(("text", _)) => "text",
        Some(("application", sub))
            if matches!(sub, "json" | "xml" | "csv" | "x-ndjson" | "yaml")
                || sub.ends_with("+json")
                || sub.ends_with("+xml") =>
        {
            "text"
        }
        _ => "document",
    }
}

/// Every file the files API knows.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    inner: Mutex<Inner>,
    /// Where entries are saved, when they survive a restart.
    saved: Option<super::persist::Saved>,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    by_id: BTreeMap<String, Entry>,
    /// `seq` → file uuid: the order files were created in.
    order: BTreeMap<u64, String>,
    deleted: BTreeSet<String>,
}

impl Inner {
    fn add(&mut self, mut entry: Entry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(entry.seq, entry.target.file_uuid.clone());
        if let Some(old) = self.by_id.insert(entry.target.file_uuid.clone(), entry) {
            self.order.remove(&old.seq);
        }
    }
}

impl Catalog {
    /// A file announced with `POST /v2/files`, its bytes still to come.
    pub(crate) fn create(
        &self,
        target: Target,
        workspace_uuid: Option<String>,
        original: Option<String>,
        outcome: Option<Processing>,
    ) {
        let entry = Entry {
            target,
            workspace_uuid,
            original,
            created_at: SystemTime::now(),
            stored_at: None,
            outcome,
            bytes: None,
            seq: 0,
        };
        self.save(&entry);
        lock(&self.inner).add(entry);
    }

    /// A file's bytes are stored (`target` as stored). A file the catalog
    /// does not know yet (a multipart upload) joins it now; `outcome`, when
    /// a rule gave one, replaces the file's.
    pub(crate) fn stored(&self, record: &UploadRecord, outcome: Option<Processing>) {
        let now = SystemTime::now();
        let target = &record.target;
        let bytes = Some((record.size, record.sha256.clone()));
        let mut inner = lock(&self.inner);
        let entry = match inner.by_id.get_mut(&target.file_uuid) {
            Some(entry) => {
                entry.target = target.clone();
                entry.stored_at = Some(now);
                entry.bytes = bytes;
                if outcome.is_some() {
                    entry.outcome = outcome;
                }
                entry.clone()
            }
            None => {
                let workspace_uuid =
                    (target.workspace != "default").then(|| target.workspace.clone());
                let entry = Entry {
                    target: target.clone(),
                    workspace_uuid,
                    original: None,
                    created_at: now,
                    stored_at: Some(now),
                    outcome,
                    bytes,
                    seq: 0,
                };
                inner.add(entry.clone());
                entry
            }
        };
        drop(inner);
        self.save(&entry);
    }

    /// A file whose bytes never came (a `remote_uri` that could not be
    /// fetched): `failed` from now on, with `error_message`.
    pub(crate) fn failed(&self, file_uuid: &str, error_message: String) {
        let mut inner = lock(&self.inner);
        let Some(entry) = inner.by_id.get_mut(file_uuid) else {
            return;
        };
        entry.stored_at = Some(SystemTime::now());
        entry.outcome = Some(Processing {
            status: ProcessingStatus::Failed,
            error_message: Some(error_message),
        });
        let entry = entry.clone();
        drop(inner);
        self.save(&entry);
    }

    pub(crate) fn get(&self, file_uuid: &str) -> Option<Entry> {
        lock(&self.inner).by_id.get(file_uuid).cloned()
    }

    /// Whether the file was deleted through the files API.
    pub(crate) fn is_deleted(&self, file_uuid: &str) -> bool {
        lock(&self.inner).deleted.contains(file_uuid)
    }

    /// Removes a file, leaving a tombstone; its entry if it had one.
    pub(crate) fn remove(&self, file_uuid: &str) -> Option<Entry> {
        let mut inner = lock(&self.inner);
        let buried = inner.deleted.insert(file_uuid.to_owned());
        let entry = inner.by_id.remove(file_uuid);
        if let Some(entry) = &entry {
            inner.order.remove(&entry.seq);
        }
        drop(inner);
        if let Some(saved) = &self.saved {
            if buried {
                saved.bury(file_uuid);
            }
            if entry.is_some() {
                saved.forget(file_uuid);
            }
        }
        entry
    }

    /// Every entry, oldest first.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let inner = lock(&self.inner);
        inner
            .order
            .values()
            .filter_map(|id| inner.by_id.get(id).cloned())
            .collect()
    }

    /// The files for which `keep` holds, oldest first: how many, and those
    /// from `offset`, at most `limit`.
    #[cfg(test)]
    pub(crate) fn page(
        &self,
        keep: impl Fn(&Entry) -> bool,
        offset: usize,
        limit: usize,
    ) -> (usize, Vec<Entry>) {
        let inner = lock(&self.inner);
        let mut count = 0;
        let mut items = Vec::new();
        for file_uuid in inner.order.values() {
            let Some(entry) = inner.by_id.get(file_uuid) else {
                continue;
            };
            if !keep(entry) {
                continue;
            }
            if count >= offset && items.len() < limit {
                items.push(entry.clone());
            }
            count += 1;
        }
        (count, items)
    }

    /// Forgets every file and tombstone (`POST /__admin/reset`, `DELETE /__admin/uploads`).
    pub(crate) fn clear(&self) {
        let old = std::mem::take(&mut *lock(&self.inner));
        if let Some(saved) = &self.saved {
            for file_uuid in old.by_id.keys() {
                saved.forget(file_uuid);
            }
            saved.clear_deleted();
        }
        drop(old);
    }

    /// A catalog that saves its entries under `dir` and starts with the
    /// ones saved there by an earlier run (`--storage-dir`): those whose
    /// bytes are stored come back with them, for the index to take again.
    pub(crate) fn persistent(saved: super::persist::Saved) -> (Self, Vec<Entry>) {
        let mut inner = Inner {
            deleted: saved.load_deleted(),
            ..Inner::default()
        };
        let mut entries = saved.load();
        entries.sort_by_key(|e| e.created_at);
        for entry in &entries {
            inner.add(entry.clone());
        }
        let catalog = Self {
            inner: Mutex::new(inner),
            saved: Some(saved),
        };
        (catalog, entries)
    }

    /// Where entries are saved, if they are.
    pub(crate) fn saved(&self) -> Option<&super::persist::Saved> {
        self.saved.as_ref()
    }

    fn save(&self, entry: &Entry) {
        if let Some(saved) = &self.saved {
            saved.save(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(id: &str, content_type: &str) -> Target {
        Target {
            file_uuid: id.into(),
            name: "f".into(),
            workspace: "default".into(),
            content_type: content_type.into(),
        }
    }

    fn record(id: &str, content_type: &str) -> UploadRecord {
        UploadRecord {
            target: target(id, content_type),
            size: 1,
            sha256: "00".into(),
            duplicate_of: None,
            stored_at: SystemTime::now(),
        }
    }

    #[test]
    fn file_types_follow_the_content_type() {
        assert_eq!(file_type("image/png"), "image");
        assert_eq!(file_type("Video/MP4; codecs=avc1"), "video");
        assert_eq!(file_type("text/csv"), "text");
        assert_eq!(file_type("application/json"), "text");
        assert_eq!(file_type("application/ld+json"), "text");
        assert_eq!(file_type("application/pdf"), "document");
        assert_eq!(file_type("application/octet-stream"), "document");
        assert_eq!(file_type(""), "document");
    }

    #[test]
    fn a_video_goes_pending_processing_completed_and_others_complete_at_once() {
        let catalog = Catalog::default();
        catalog.create(target("v", "video/mp4"), None, None, None);
        catalog.stored(&record("t", "text/plain"), None);
        let video = catalog.get("v").unwrap();
        let t = Duration::from_secs(3);
        assert_eq!(
            video.status_at(SystemTime::now(), t).status,
            FileStatus::Pending
        );
        catalog.stored(&record("v", "video/mp4"), None);
        let video = catalog.get("v").unwrap();
        let stored = video.stored_at.unwrap();
        let at = |s| video.status_at(stored + Duration::from_millis(s), t);
        assert_eq!(at(0).status, FileStatus::Pending);
        assert_eq!(at(1000).status, FileStatus::Processing);
        assert_eq!(at(1000).since, stored + Duration::from_secs(1));
        assert_eq!(at(2999).status, FileStatus::Processing);
        assert_eq!(at(3000).status, FileStatus::Completed);
        assert_eq!(at(3000).since, stored + t);
        assert_eq!(
            video.status_at(stored, Duration::ZERO).status,
            FileStatus::Completed
        );
        let text = catalog.get("t").unwrap();
        assert_eq!(text.status_at(stored, t).status, FileStatus::Completed);
    }

    #[test]
    fn a_rules_verdict_decides_once_the_bytes_are_stored() {
        let catalog = Catalog::default();
        let failed = Processing {
            status: ProcessingStatus::Failed,
            error_message: None,
        };
        catalog.create(target("a", "video/mp4"), None, None, Some(failed));
        let now = SystemTime::now();
        let t = Duration::from_secs(1);
        assert_eq!(
            catalog.get("a").unwrap().status_at(now, t).status,
            FileStatus::Pending
        );
        catalog.stored(&record("a", "video/mp4"), None);
        let status = catalog.get("a").unwrap().status_at(now, t);
        assert_eq!(status.status, FileStatus::Failed);
        assert_eq!(status.error_message.as_deref(), Some(DEFAULT_FAILURE));
        let stuck = Processing {
            status: ProcessingStatus::Processing,
            error_message: None,
        };
        catalog.stored(&record("b", "text/plain"), Some(stuck));
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            catalog.get("b").unwrap().status_at(later, t).status,
            FileStatus::Processing
        );
    }

    #[test]
    fn pages_count_every_match_and_deleted_files_leave_tombstones() {
        let catalog = Catalog::default();
        for i in 0..10 {
            let ct = if i % 2 == 0 {
                "image/png"
            } else {
                "text/plain"
            };
            catalog.stored(&record(&format!("f{i}"), ct), None);
        }
        let images = |e: &Entry| file_type(&e.target.content_type) == "image";
        let (count, items) = catalog.page(images, 1, 2);
        assert_eq!(count, 5);
        let ids: Vec<_> = items.iter().map(|e| e.target.file_uuid.as_str()).collect();
        assert_eq!(ids, ["f2", "f4"]);
        assert!(catalog.remove("f2").is_some());
        assert!(catalog.is_deleted("f2"));
        assert!(catalog.get("f2").is_none());
        assert!(catalog.remove("f2").is_none());
        assert_eq!(catalog.page(images, 0, 100).0, 4);
        catalog.clear();
        assert!(!catalog.is_deleted("f2"));
        assert_eq!(catalog.page(|_| true, 0, 100).0, 0);
    }
}
