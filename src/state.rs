//! The state every handler shares: settings, storage, rules, journal, uploads.

use std::sync::Arc;
use std::time::Duration;

use crate::config::AuthPolicy;
use crate::files::catalog::Catalog;
use crate::files::Files;
use crate::journal::Journal;
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
    /// The address listened on (a `remote_uri` never fetches from it).
    pub(crate) addr: std::net::SocketAddr,
    /// Which web pages on other origins may call the emulated API.
    pub(crate) cors: crate::cors::Cors,
    /// The files API's settings.
    pub(crate) files: FilesSettings,
}

/// Settings of the files API (`/v2/files`).
#[derive(Debug, Clone)]
pub(crate) struct FilesSettings {
    /// How long a presigned upload URL stays valid.
    pub(crate) presign_expiry: Duration,
    /// How long a video takes from stored to `completed`.
    pub(crate) video_processing: Duration,
    /// `organization_uuid` of every file.
    pub(crate) organization_uuid: String,
    /// `uploaded_by_uuid` of every file.
    pub(crate) uploaded_by_uuid: String,
    /// Hosts `remote_uri` files are fetched from.
    pub(crate) remote_hosts: Vec<String>,
    /// Most files announced and not stored at once (`--max-pending-files`).
    pub(crate) max_pending: usize,
}

/// Shared by every connection.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) settings: Settings,
    pub(crate) storage: Storage,
    /// Shared with the fixture watcher.
    pub(crate) rules: Arc<RuleEngine>,
    pub(crate) journal: Journal,
    /// The stored files.
    pub(crate) files: Files,
    /// The files API's view of them, pending ones included.
    pub(crate) catalog: Catalog,
    /// Signs and checks presigned upload URLs.
    pub(crate) signer: crate::files::presign::Signer,
    /// The `remote_uri` fetches, queued or running.
    pub(crate) fetches: Arc<crate::files::fetches::Fetches>,
    /// One commit or delete of a file at a time.
    pub(crate) file_locks: crate::files::fetches::FileLocks,
    /// Lists walking the catalog at once: half the cores, so that clients
    /// listing a large catalog in a loop leave the others to every other
    /// request.
    pub(crate) list_walks: tokio::sync::Semaphore,
    /// Presigned PUTs taking their MD5 on a thread of their own
    /// ([`crate::routes::put::MD5_THREADS`]).
    pub(crate) md5_threads: Arc<tokio::sync::Semaphore>,
    /// What `GET /metrics` reports.
    pub(crate) metrics: crate::metrics::Metrics,
}

impl AppState {
    /// Removes every stored file; returns how many.
    pub(crate) async fn clear_uploads(&self) -> usize {
        // Their fetches first: none may store a file after the clear.
        self.fetches
            .cancel_all(crate::files::fetches::Cancelled::Removed);
        self.catalog.clear();
        let removed = self.files.take_all();
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

    /// At a graceful shutdown, in a chosen storage directory: saves the
    /// index of the stored uploads the catalog does not hold (it saves its
    /// own), for the next run.
    pub(crate) fn save_uploads(&self) {
        let Some(saved) = self.catalog.saved() else {
            return;
        };
        let uploads: Vec<_> = self
            .files
            .snapshot()
            .into_iter()
            .filter(|r| self.catalog.get(&r.target.file_uuid).is_none())
            .collect();
        saved.save_uploads(&uploads);
    }

    /// A stored upload spelled out, as answered and listed.
    pub(crate) fn upload_of(&self, record: &UploadRecord) -> StoredUpload {
        let url = crate::files::download_url(&self.settings.public_url, &record.target);
        self.storage.upload_of(record, url)
    }

    /// The stored uploads spelled out, oldest first.
    pub(crate) fn list_uploads(&self) -> Vec<StoredUpload> {
        let records = self.files.snapshot();
        records.iter().map(|r| self.upload_of(r)).collect()
    }
}
