//! The state every handler shares: settings, storage, rules, journal, uploads.

use std::collections::HashMap;
use std::sync::Mutex;
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
        for upload in &removed {
            self.storage.remove(upload).await;
        }
        removed.len()
    }
}

/// Stored uploads, by `file_uuid`, in the order they were stored.
#[derive(Debug, Default)]
pub(crate) struct UploadIndex {
    inner: Mutex<(Vec<String>, HashMap<String, StoredUpload>)>,
}

impl UploadIndex {
    pub(crate) fn insert(&self, upload: StoredUpload) {
        let mut inner = lock(&self.inner);
        inner.0.push(upload.file_uuid.clone());
        inner.1.insert(upload.file_uuid.clone(), upload);
    }

    pub(crate) fn get(&self, file_uuid: &str) -> Option<StoredUpload> {
        lock(&self.inner).1.get(file_uuid).cloned()
    }

    pub(crate) fn list(&self) -> Vec<StoredUpload> {
        let inner = lock(&self.inner);
        inner
            .0
            .iter()
            .filter_map(|id| inner.1.get(id).cloned())
            .collect()
    }

    fn take_all(&self) -> Vec<StoredUpload> {
        let mut inner = lock(&self.inner);
        let order = std::mem::take(&mut inner.0);
        let mut map = std::mem::take(&mut inner.1);
        order.iter().filter_map(|id| map.remove(id)).collect()
    }
}
