//! The state every handler shares: settings, storage, rules, journal, uploads.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::AuthPolicy;
use crate::journal::{lock, Journal};
use crate::rules::RuleEngine;
use crate::storage::{Storage, StoredUpload};

/// Settings fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) auth: AuthPolicy,
    pub(crate) max_upload_size: u64,
    /// Base of `file_url`, without a trailing slash.
    pub(crate) public_url: String,
    pub(crate) body_timeout: Duration,
    pub(crate) admin_token: Option<String>,
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
}

/// Stored uploads, by `file_uuid`, in the order they were stored.
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
    order: Vec<Arc<StoredUpload>>,
    by_id: BTreeMap<String, Arc<StoredUpload>>,
}

impl UploadIndex {
    pub(crate) fn insert(&self, upload: StoredUpload) {
        let upload = Arc::new(upload);
        let mut inner = lock(&self.inner);
        inner.order.push(Arc::clone(&upload));
        inner.by_id.insert(upload.file_uuid.clone(), upload);
    }

    pub(crate) fn get(&self, file_uuid: &str) -> Option<StoredUpload> {
        let found = lock(&self.inner).by_id.get(file_uuid).cloned();
        found.map(Arc::unwrap_or_clone)
    }

    pub(crate) fn list(&self) -> Vec<StoredUpload> {
        self.snapshot()
            .into_iter()
            .map(Arc::unwrap_or_clone)
            .collect()
    }

    /// The stored uploads in storage order, shared rather than copied.
    pub(crate) fn snapshot(&self) -> Vec<Arc<StoredUpload>> {
        lock(&self.inner).order.clone()
    }

    fn take_all(&self) -> Vec<StoredUpload> {
        // Out of the lock first: freeing a large index takes a while.
        let Uploads { order, by_id } = std::mem::take(&mut *lock(&self.inner));
        drop(by_id);
        order.into_iter().map(Arc::unwrap_or_clone).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(file_uuid: String) -> StoredUpload {
        StoredUpload {
            filename: "a.txt".into(),
            content_type: "text/plain".into(),
            size: 1,
            sha256: String::new(),
            local_file_path: None,
            remote_file_path: format!("uploads/default/{file_uuid}/a.txt"),
            remote_uri: String::new(),
            file_url: String::new(),
            file_uuid,
        }
    }

    #[test]
    fn the_index_lists_in_storage_order_finds_by_id_and_empties() {
        let index = UploadIndex::default();
        // Ids that sort differently from the order they are stored in.
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("{:04}", (i * 7919) % 1000))
            .collect();
        for id in &ids {
            index.insert(upload(id.clone()));
        }
        let listed: Vec<String> = index.list().into_iter().map(|u| u.file_uuid).collect();
        assert_eq!(listed, ids);
        let found = index.get(&ids[10]).unwrap();
        assert_eq!(
            found.remote_file_path,
            format!("uploads/default/{}/a.txt", ids[10])
        );
        assert!(index.get("missing").is_none());

        let taken: Vec<String> = index.take_all().into_iter().map(|u| u.file_uuid).collect();
        assert_eq!(taken, ids);
        assert!(index.list().is_empty());
        assert!(index.get(&ids[10]).is_none());
    }
}
