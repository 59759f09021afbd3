//! The state every handler shares: settings, storage, rules, journal, uploads.

use std::sync::Arc;
use std::time::Duration;

use crate::config::AuthPolicy;
use crate::error::ApiError;
use crate::files::catalog::Catalog;
use crate::files::Files;
use crate::journal::Journal;
use crate::journal::RequestRecord;
use crate::rules::model::{Phase, Rule};
use crate::rules::near_miss::Seen;
use crate::rules::RuleEngine;
use crate::rules::{AddRuleError, Decision, RequestFacts, RuleStatus};
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
    /// With `--state redis://`: the state shared with the other replicas
    /// (run-time rules, every rule's counters, the journal).
    #[cfg(feature = "redis")]
    pub(crate) cluster: Option<crate::cluster::Cluster>,
}

/// A shared state store's error, as the client is answered.
#[cfg(feature = "redis")]
fn unavailable(err: crate::cluster::StoreError) -> ApiError {
    ApiError::state_store(&err)
}

impl AppState {
    /// Whether this replica shares its state through a store (`--state`).
    pub(crate) fn is_shared(&self) -> bool {
        #[cfg(feature = "redis")]
        if self.cluster.is_some() {
            return true;
        }
        false
    }

    /// Commands of the shared state store that failed (0 without one).
    pub(crate) fn store_errors(&self) -> u64 {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.errors();
        }
        0
    }

    /// The rule that fires at `phase`, counted where the counters live (this
    /// process, or the shared state store), noting in `seen` what the rules
    /// saw for the near misses.
    pub(crate) async fn decide(
        &self,
        phase: Phase,
        facts: &RequestFacts<'_>,
        seen: &mut Seen,
    ) -> Result<Option<Decision>, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster
                .decide(&self.rules, phase, facts, Some(seen))
                .await
                .map_err(unavailable);
        }
        let here = self.rules.here();
        let Ok(decision) = self
            .rules
            .decide_with(phase, facts, Some(seen), &here)
            .await;
        Ok(decision)
    }

    /// With a shared state store: brings this replica's rules up to the
    /// store's before a request is served (after another replica's reset,
    /// also clears this one's journal and files, as a reset does).
    pub(crate) async fn sync_rules(&self) -> Result<(), ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            let synced = cluster.sync(&self.rules).await.map_err(unavailable)?;
            if synced == crate::cluster::Synced::Reset {
                // The replica that reset deletes the stored bytes.
                self.journal.clear();
                self.forget_uploads();
            }
        }
        Ok(())
    }

    /// With a shared state store: makes here the other replicas' changes to
    /// the files since the last call (before a request that reads them).
    pub(crate) async fn sync_files(&self) -> Result<(), ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            cluster
                .read_files(|text| {
                    match serde_json::from_str::<crate::files::events::FileEvent>(text) {
                        Ok(event) => event.apply(&self.catalog, &self.files, &self.fetches),
                        Err(err) => tracing::warn!(
                            error = %err,
                            "a change to the files this version cannot read is left out"
                        ),
                    }
                })
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// With a shared state store: a change to the files just made here, for
    /// the other replicas (written by [`flush_events`](Self::flush_events)
    /// before the answer goes). `event` is only built then.
    pub(crate) fn publish(&self, event: impl FnOnce() -> crate::files::events::FileEvent) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            match serde_json::to_string(&event()) {
                Ok(text) => cluster.publish(text),
                Err(err) => {
                    tracing::warn!(error = %err, "a change to the files could not be written")
                }
            }
        }
        #[cfg(not(feature = "redis"))]
        drop(event);
    }

    /// Writes the changes to the files made here to the shared state store
    /// (none without one). A failure is counted and shown by `/health`; the
    /// changes are written by the next call.
    pub(crate) async fn flush_events(&self) {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            let _ = cluster.flush().await;
        }
    }

    /// Adds run-time rules (with `source`, `admin` or `scenario:NAME`),
    /// before all others: here, or on every replica.
    pub(crate) async fn add_rules(
        self: &Arc<Self>,
        rules: Vec<Rule>,
        source: String,
    ) -> Result<Result<Vec<String>, AddRuleError>, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return Ok(cluster
                .add_rules(&self.rules, rules, &source)
                .await
                .map_err(unavailable)?
                .map_err(AddRuleError::DuplicateId));
        }
        // Indexing a batch of 100k rules takes a few hundred ms: off the
        // async workers, so that the requests they serve do not wait.
        let state = Arc::clone(self);
        tokio::task::spawn_blocking(move || state.rules.add_from(rules, &source))
            .await
            .map_err(|e| ApiError::internal(format!("Adding the rules failed: {e}")))
    }

    /// Removes a rule by id (here, or on every replica).
    pub(crate) async fn remove_rule(&self, id: &str) -> Result<bool, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster
                .remove_rule(&self.rules, id)
                .await
                .map_err(unavailable);
        }
        Ok(self.rules.remove(id))
    }

    /// Removes every rule, fixture rules included; returns how many there were.
    pub(crate) async fn clear_rules(&self) -> Result<usize, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.clear_rules(&self.rules).await.map_err(unavailable);
        }
        Ok(self.rules.clear())
    }

    /// The rules in evaluation order, with their counters.
    pub(crate) async fn rule_statuses(&self) -> Result<Vec<RuleStatus>, ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.statuses(&self.rules).await.map_err(unavailable);
        }
        Ok(self.rules.list())
    }

    /// The journaled requests after `seq`, oldest first, and the seq of the
    /// oldest still journaled (every replica's, with a shared state store).
    pub(crate) async fn journal_since(
        &self,
        seq: u64,
    ) -> Result<(Vec<Arc<RequestRecord>>, u64), ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.journal_since(seq).await.map_err(unavailable);
        }
        Ok(self.journal.since(seq))
    }

    /// The shared journal's entries and bytes (none without a store).
    pub(crate) async fn shared_journal_usage(&self) -> Option<(u64, u64)> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.journal_usage().await.ok();
        }
        None
    }

    /// Empties the journal (every replica's, with a shared state store).
    pub(crate) async fn clear_journal(&self) -> Result<(), ApiError> {
        self.journal.clear();
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            return cluster.clear_journal().await.map_err(unavailable);
        }
        Ok(())
    }

    /// Journals a request whose answer is about to be sent. With a shared
    /// state store it is also written there, with its near misses and this
    /// replica's name, before the answer goes: a client that got its answer
    /// finds its request in the journal of every replica.
    pub(crate) async fn journal_now(&self, record: RequestRecord) {
        let _kept = self.journal.push(record);
        #[cfg(feature = "redis")]
        if let (Some(cluster), Some(kept)) = (&self.cluster, _kept) {
            let shared = self.shared_record(cluster, &kept);
            // A failure is counted and shown by /health; the answer still goes.
            let _ = cluster.journal(&shared).await;
        }
    }

    /// [`journal_now`](Self::journal_now) for a request whose future was
    /// dropped (the client went away): the store is written in the background.
    pub(crate) fn journal_later(self: &Arc<Self>, record: RequestRecord) {
        let _kept = self.journal.push(record);
        #[cfg(feature = "redis")]
        if self.cluster.is_some() {
            // Its changes to the files too (a file kept by `keep_upload`).
            let shared = _kept.and_then(|kept| {
                let cluster = self.cluster.as_ref()?;
                Some(self.shared_record(cluster, &kept))
            });
            let state = Arc::clone(self);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Some(cluster) = &state.cluster {
                        let _ = cluster.flush().await;
                        if let Some(shared) = shared {
                            let _ = cluster.journal(&shared).await;
                        }
                    }
                });
            }
        }
    }

    /// A journal record as the store keeps it: near misses worked out, the
    /// replica named.
    #[cfg(feature = "redis")]
    fn shared_record(
        &self,
        cluster: &crate::cluster::Cluster,
        kept: &RequestRecord,
    ) -> RequestRecord {
        let mut shared = kept.clone();
        shared.near_misses = kept.near_misses_with(&self.rules).to_vec();
        shared.pending = crate::journal::Explainer::default();
        shared.replica = Some(cluster.replica().to_owned());
        shared
    }

    /// What `GET /health` answers: `ok`, or `degraded` with the reason when
    /// the shared state store does not answer.
    pub(crate) async fn health(&self) -> serde_json::Value {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            if let Err(err) = cluster.check().await {
                return serde_json::json!({"status": "degraded", "reason": err.to_string()});
            }
        }
        serde_json::json!({"status": "ok"})
    }

    /// Removes every stored file (every replica's, with a shared state
    /// store); returns how many.
    pub(crate) async fn clear_uploads(&self) -> usize {
        let removed = self.forget_uploads();
        self.publish(|| crate::files::events::FileEvent::Cleared);
        self.storage.remove(&removed).await;
        removed.len()
    }

    /// A file whose bytes never came (a `remote_uri` not fetched): `failed`
    /// from now on, with `error_message`, on every replica.
    pub(crate) fn failed(&self, file_uuid: String, error_message: String) {
        self.catalog.failed(&file_uuid, error_message.clone());
        self.publish(|| crate::files::events::FileEvent::Failed {
            file_uuid,
            error_message,
        });
    }

    /// Forgets every file, leaving their bytes in storage; returns their
    /// records.
    fn forget_uploads(&self) -> Vec<Arc<crate::storage::UploadRecord>> {
        // Their fetches first: none may store a file after the clear.
        self.fetches
            .cancel_all(crate::files::fetches::Cancelled::Removed);
        self.catalog.clear();
        self.files.take_all()
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

    /// [`reset`](Self::reset), on every replica with a shared state store
    /// (each reloads its own fixtures when it next serves a request).
    pub(crate) async fn reset_all(self: &Arc<Self>) -> Result<(), ApiError> {
        #[cfg(feature = "redis")]
        if let Some(cluster) = &self.cluster {
            // Every replica's files in the index first: this replica deletes them.
            self.sync_files().await?;
            cluster.reset(&self.rules).await.map_err(unavailable)?;
            self.journal.clear();
            self.clear_uploads().await;
            return Ok(());
        }
        self.reset()
            .await
            .map_err(|e| ApiError::internal(format!("Could not reload the fixtures: {e}")))
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
