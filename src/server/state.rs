//! The state every handler shares: settings, storage, rules, journal, uploads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::AuthPolicy;
use crate::journal::{lock, Journal};
use crate::rules::RuleEngine;
use crate::storage::{Storage, StoredUpload, UploadRecord};

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) auth: AuthPolicy,
    pub(crate) max_upload_size: u64,
    /// Base of `file_url`, without a trailing slash.
    pub(crate) public_url: String,
    pub(crate) body_timeout: Duration,
    pub(crate) admin_token: Option<String>,
    /// What an admin request must look like to be this server's own.
    pub(crate) same_origin: crate::same_origin::SameOrigin,
}

/// Shared by every connection.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    pub(crate) storage: Storage,
    pub(crate) rules: RuleEngine,
    pub(crate) journal: Journal,
    pub(crate) uploads: UploadIndex,
}

impl AppState {
    /// Removes every stored file; returns how many.
    pub(crate) async fn clear_uploads(&self) -> usize {
        let removed = self.uploads.take_all();
        self.storage.remove(&removed).await;
        removed.len()
    }

    /// Back to the start: run-time rules removed, fixtures reloaded from disk
    /// (on a blocking thread: file I/O must not hold an async worker),
    /// counters zeroed, RNG re-seeded, journal and storage cleared. When the
    /// fixtures cannot be reloaded nothing changes.
    pub(crate) async fn reset(self: &Arc<Self>) -> Result<(), crate::rules::FixtureError> {
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || state.rules.reset())
            .await
            .map_err(|e| {
                crate::rules::FixtureError::whole("<fixtures>", format!("reload failed: {e}"))
            })??;
        self.journal.clear();
        self.clear_uploads().await;
        Ok(())
    }

    /// A stored upload spelled out, as answered and listed.
    pub(crate) fn upload_of(&self, record: &UploadRecord) -> StoredUpload {
        self.storage.upload_of(record, &self.settings.public_url)
    }

    /// The stored uploads spelled out, oldest first.
    pub(crate) fn list_uploads(&self) -> Vec<StoredUpload> {
        let records = self.uploads.snapshot();
        records.iter().map(|r| self.upload_of(r)).collect()
    }
}

/// Stored uploads, by `file_uuid`, in the order they were stored. It keeps
/// [`UploadRecord`]s, which [`AppState::upload_of`] spells out when asked.
#[derive(Debug, Default)]
pub(crate) struct UploadIndex {
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
}

impl UploadIndex {
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
        inner.order.push(Arc::clone(&record));
        inner.by_id.insert(record.target.file_uuid.clone(), record);
        duplicate_of
    }

    pub(crate) fn get(&self, file_uuid: &str) -> Option<Arc<UploadRecord>> {
        lock(&self.inner).by_id.get(file_uuid).cloned()
    }

    /// The stored uploads in storage order, shared rather than copied.
    pub(crate) fn snapshot(&self) -> Vec<Arc<UploadRecord>> {
        lock(&self.inner).order.clone()
    }

    fn take_all(&self) -> Vec<Arc<UploadRecord>> {
        // Out of the lock first: freeing a large index takes a while.
        let Uploads {
            order,
            by_id,
            by_sha256,
        } = std::mem::take(&mut *lock(&self.inner));
        drop((by_id, by_sha256));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Target;

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
        }
    }

    fn ids(records: &[Arc<UploadRecord>]) -> Vec<String> {
        records.iter().map(|r| r.target.file_uuid.clone()).collect()
    }

    #[test]
    fn the_index_lists_in_storage_order_finds_by_id_and_empties() {
        let index = UploadIndex::default();
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
}
