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
use std::time::SystemTime;

use super::entry::Entry;
use crate::rules::model::{Processing, ProcessingStatus};
use crate::storage::{Target, UploadRecord};
use crate::sync::lock;

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
    /// How many entries have no bytes yet (`pending`).
    pending: usize,
}

impl Inner {
    fn add(&mut self, mut entry: Entry) {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(entry.seq, entry.target.file_uuid.clone());
        self.pending += usize::from(entry.stored_at.is_none());
        if let Some(old) = self.by_id.insert(entry.target.file_uuid.clone(), entry) {
            self.order.remove(&old.seq);
            self.pending -= usize::from(old.stored_at.is_none());
        }
    }

    /// Marks an entry's bytes as settled (stored or failed) at `at`.
    fn settle(entry: &mut Entry, pending: &mut usize, at: SystemTime) {
        if entry.stored_at.is_none() {
            *pending -= 1;
        }
        entry.stored_at = Some(at);
    }
}

/// A new file for [`Catalog::create_all`].
#[derive(Debug)]
pub(crate) struct NewEntry {
    pub(crate) target: Target,
    pub(crate) workspace_uuid: Option<String>,
    /// `local_file_path` or `remote_uri`, as the client gave it.
    pub(crate) original: Option<String>,
    /// Whether its bytes are fetched from `original` (a `remote_uri`).
    pub(crate) remote: bool,
}

/// Too many files are announced and not stored (`--max-pending-files`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyPending {
    pub(crate) pending: usize,
    pub(crate) max: usize,
}

impl Catalog {
    /// A file announced with `POST /v2/files`, its bytes still to come.
    #[cfg(test)]
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
            remote: false,
            created_at: SystemTime::now(),
            stored_at: None,
            outcome,
            bytes: None,
            seq: 0,
        };
        self.save(&entry);
        lock(&self.inner).add(entry);
    }

    /// Files announced together with `POST /v2/files`, their bytes still to
    /// come: all of them, or none when they would make more than `max`
    /// files pending at once. Returns their entries.
    pub(crate) fn create_all(
        &self,
        new: Vec<NewEntry>,
        max: usize,
    ) -> Result<Vec<Entry>, TooManyPending> {
        let now = SystemTime::now();
        let entries: Vec<Entry> = new
            .into_iter()
            .map(|n| Entry {
                target: n.target,
                workspace_uuid: n.workspace_uuid,
                original: n.original,
                remote: n.remote,
                created_at: now,
                stored_at: None,
                outcome: None,
                bytes: None,
                seq: 0,
            })
            .collect();
        {
            let mut inner = lock(&self.inner);
            if inner.pending.saturating_add(entries.len()) > max {
                return Err(TooManyPending {
                    pending: inner.pending,
                    max,
                });
            }
            for entry in &entries {
                inner.add(entry.clone());
            }
        }
        for entry in &entries {
            self.save(entry);
        }
        Ok(entries)
    }

    /// Files another replica announced (`super::events`), with their
    /// creation times; no limit applies.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn add_announced(&self, entries: impl Iterator<Item = Entry>) {
        let entries: Vec<Entry> = entries.collect();
        {
            let mut inner = lock(&self.inner);
            for entry in &entries {
                inner.add(entry.clone());
            }
        }
        for entry in &entries {
            self.save(entry);
        }
    }

    /// How many files are announced and not stored yet.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        lock(&self.inner).pending
    }

    /// A file's bytes are stored (`target` as stored). A file the catalog
    /// does not know yet (a multipart upload) joins it now; `outcome`, when
    /// a rule gave one, replaces the file's.
    pub(crate) fn stored(&self, record: &UploadRecord, outcome: Option<Processing>) {
        let now = SystemTime::now();
        let target = &record.target;
        let bytes = Some((record.size, record.sha256.clone()));
        let mut inner = lock(&self.inner);
        let known = inner.by_id.contains_key(&target.file_uuid);
        let entry = match known {
            true => {
                let Inner { by_id, pending, .. } = &mut *inner;
                let Some(entry) = by_id.get_mut(&target.file_uuid) else {
                    return;
                };
                entry.target = target.clone();
                Inner::settle(entry, pending, now);
                entry.bytes = bytes;
                if outcome.is_some() {
                    entry.outcome = outcome;
                }
                entry.clone()
            }
            false => {
                let workspace_uuid = (target.workspace != crate::storage::DEFAULT_WORKSPACE)
                    .then(|| target.workspace.clone());
                let entry = Entry {
                    target: target.clone(),
                    workspace_uuid,
                    original: None,
                    remote: false,
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
        let Inner { by_id, pending, .. } = &mut *inner;
        let Some(entry) = by_id.get_mut(file_uuid) else {
            return;
        };
        Inner::settle(entry, pending, SystemTime::now());
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
            inner.pending -= usize::from(entry.stored_at.is_none());
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

    /// Scans at most `max` entries in the catalog's order from `from` (a
    /// place in it), under the lock once: the places and creation times of
    /// those `keep` accepts go to `out`. The place to go on from, or `None`
    /// at the end. A list walks the catalog this way, chunk by chunk,
    /// holding the lock for one chunk at a time and copying no entry.
    pub(crate) fn scan(
        &self,
        from: u64,
        max: usize,
        keep: &dyn Fn(&Entry) -> bool,
        out: &mut std::collections::VecDeque<(SystemTime, u64)>,
    ) -> Option<u64> {
        let inner = lock(&self.inner);
        for (n, (seq, file_uuid)) in inner.order.range(from..).enumerate() {
            if n == max {
                return Some(*seq);
            }
            if let Some(entry) = inner.by_id.get(file_uuid).filter(|e| keep(e)) {
                out.push_back((entry.created_at, *seq));
            }
        }
        None
    }

    /// The entry at a place in the catalog's order, if it is still there.
    pub(crate) fn at(&self, seq: u64) -> Option<Entry> {
        let inner = lock(&self.inner);
        let file_uuid = inner.order.get(&seq)?;
        inner.by_id.get(file_uuid).cloned()
    }

    /// Drops the records of files the catalog holds (under the lock once).
    pub(crate) fn retain_unknown(&self, records: &mut Vec<std::sync::Arc<UploadRecord>>) {
        let inner = lock(&self.inner);
        records.retain(|r| !inner.by_id.contains_key(&r.target.file_uuid));
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
    use std::time::Duration;

    use super::*;
    use crate::files::entry::{file_type, DEFAULT_FAILURE};
    use crate::files::FileStatus;

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

    fn new_entry(id: &str) -> NewEntry {
        NewEntry {
            target: target(id, "text/plain"),
            workspace_uuid: None,
            original: None,
            remote: false,
        }
    }

    #[test]
    fn announced_files_are_taken_all_or_none_within_the_pending_limit() {
        let catalog = Catalog::default();
        let three = || ["a", "b", "c"].map(new_entry).into_iter().collect();
        let created = catalog.create_all(three(), 3).map(|e| e.len());
        assert_eq!(created, Ok(3));
        assert_eq!(catalog.pending(), 3);
        let more = vec![new_entry("d")];
        assert_eq!(
            catalog.create_all(more, 3).map(|e| e.len()),
            Err(TooManyPending { pending: 3, max: 3 })
        );
        assert!(catalog.get("d").is_none());
        // Stored, failed or deleted: no longer pending.
        catalog.stored(&record("a", "text/plain"), None);
        catalog.failed("b", "no".into());
        catalog.remove("c");
        catalog.failed("b", "twice".into());
        assert_eq!(catalog.pending(), 0);
        let created = catalog.create_all(vec![new_entry("d")], 1).map(|e| e.len());
        assert_eq!(created, Ok(1));
        catalog.clear();
        assert_eq!(catalog.pending(), 0);
    }

    #[test]
    fn a_page_merges_the_catalog_and_the_index_oldest_first() {
        let catalog = Catalog::default();
        let files = crate::files::Files::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        // Index-only uploads at even seconds, announced files at odd ones,
        // more than a chunk of each.
        for i in 0..1500u64 {
            let mut r = record(
                &format!("u{i}"),
                if i % 3 == 0 {
                    "image/png"
                } else {
                    "text/plain"
                },
            );
            r.stored_at = t0 + Duration::from_secs(2 * i);
            files.insert(r);
        }
        {
            let mut inner = lock(&catalog.inner);
            for i in 0..1500u64 {
                let mut entry = Entry::of_upload(&record(&format!("c{i}"), "text/plain"));
                entry.created_at = t0 + Duration::from_secs(2 * i + 1);
                inner.add(entry);
            }
        }
        let all = |_: &str, _: Option<&str>| true;
        let (count, page) = crate::files::page(&catalog, &files, &all, 1999, 3);
        assert_eq!(count, 3000);
        let ids: Vec<_> = page.iter().map(|e| e.target.file_uuid.as_str()).collect();
        assert_eq!(ids, ["c999", "u1000", "c1000"]);
        let images = |ct: &str, _: Option<&str>| ct == "image/png";
        let (count, page) = crate::files::page(&catalog, &files, &images, 10, 2);
        assert_eq!(count, 500);
        let ids: Vec<_> = page.iter().map(|e| e.target.file_uuid.as_str()).collect();
        assert_eq!(ids, ["u30", "u33"]);
        // A file in both (announced, then stored) is listed once.
        files.insert(record("c5", "text/plain"));
        assert_eq!(crate::files::page(&catalog, &files, &all, 0, 1).0, 3000);
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
