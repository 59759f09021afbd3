//! The public face of the server: [`MockServer`], and its builder in
//! `builder` ([`MockServerBuilder`]).
//!
//! Plumbing, all private: `run` (accept loop and graceful shutdown), `conn`
//! (the shared socket, for resets and hang detection), `handler` (every
//! request: routed by `crate::routes`, then finished, logged and journaled).

mod builder;
pub(crate) mod carry_out;
pub(crate) mod conn;
pub(crate) mod handler;
pub(crate) mod run;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;

pub use builder::MockServerBuilder;

use crate::journal::RequestRecord;
use crate::rules::model::Rule;
use crate::rules::{AddRuleError, FixtureError, RuleStatus};
use crate::state::AppState;
use crate::storage::StoredUpload;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A fixture file is invalid.
    #[error("{0}")]
    Fixture(#[from] FixtureError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The storage directory could not be created or used.
    #[error("cannot use storage dir {path}: {source}")]
    Storage {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
}

/// A running emulator. Dropping it stops it and removes its temp dir.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = aymara_mock::MockServer::builder().api_key("test-key").start().await?;
/// assert!(server.url().starts_with("http://127.0.0.1:"));
/// assert_eq!(server.upload_url(), format!("{}/v2/files/-/uploads", server.url()));
/// let dir = server.storage_dir().expect("a temp dir by default").to_owned();
/// assert!(dir.exists());
/// server.shutdown().await;
/// assert!(!dir.exists());
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    url: String,
    seed: u64,
    state: Arc<AppState>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl MockServer {
    /// A builder with the defaults.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// Starts a server with the defaults.
    pub async fn start() -> Result<Self, StartError> {
        Self::builder().start().await
    }

    /// The base URL (`http://127.0.0.1:PORT`), for the client under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The upload endpoint's URL.
    pub fn upload_url(&self) -> String {
        format!("{}{}", self.url, crate::UPLOAD_PATH)
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The directory uploads are stored in; `None` with an object store.
    pub fn storage_dir(&self) -> Option<&Path> {
        self.state.storage.root()
    }

    /// Where uploads are stored: a directory, or `s3://BUCKET/PREFIX`.
    pub fn storage(&self) -> String {
        self.state.storage.describe()
    }

    /// The seed of the RNG behind `probability`.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Adds a rule before all others; returns its id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use aymara_mock::{MockServer, Rule};
    /// let server = MockServer::start().await?;
    /// let id = server.add_rule(Rule::respond(503).times(1)).await?;
    /// assert_eq!(server.rules().await[0].id, id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn add_rule(&self, rule: Rule) -> Result<String, AddRuleError> {
        let mut ids = self.state.rules.add(vec![rule])?;
        Ok(ids.remove(0))
    }

    /// Adds several rules, in their order, before all others. All or nothing.
    pub async fn add_rules(&self, rules: Vec<Rule>) -> Result<Vec<String>, AddRuleError> {
        self.state.rules.add(rules)
    }

    /// The rules in evaluation order, with their counters.
    pub async fn rules(&self) -> Vec<RuleStatus> {
        self.state.rules.list()
    }

    /// Removes one rule; `false` if no rule has this id.
    pub async fn remove_rule(&self, id: &str) -> bool {
        self.state.rules.remove(id)
    }

    /// Removes every rule, fixture rules included (until `reset`).
    pub async fn clear_rules(&self) {
        self.state.rules.clear();
    }

    /// The request journal, oldest first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = aymara_mock::MockServer::start().await?;
    /// assert!(server.requests().await.is_empty());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn requests(&self) -> Vec<RequestRecord> {
        self.state.journal.list(&self.state.rules)
    }

    /// The journaled requests that no rule decided, oldest first, each with
    /// its [`near_misses`](RequestRecord::near_misses): the closest rules
    /// and every condition of theirs that failed, expected against actual.
    /// Call it when a test expected a rule to fire and it did not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use aymara_mock::{MockServer, Rule};
    /// // Arrange: a rule for MP4 files only.
    /// let server = MockServer::start().await?;
    /// server
    ///     .add_rule(Rule::from_json(
    ///         r#"{"id": "videos", "phase": "upload", "match": {"filename": "*.mp4"}, "respond": {"status": 413}}"#,
    ///     )?)
    ///     .await?;
    /// // Act: upload a .mov.
    /// let part = reqwest::multipart::Part::bytes(vec![0; 16]).file_name("clip.mov");
    /// reqwest::Client::new()
    ///     .post(server.upload_url())
    ///     .header("x-api-key", "k")
    ///     .multipart(reqwest::multipart::Form::new().part("file", part))
    ///     .send()
    ///     .await?;
    /// // Assert: why "videos" did not fire.
    /// let unmatched = server.unmatched_requests().await;
    /// let miss = &unmatched[0].near_misses[0];
    /// assert_eq!(miss.rule, "videos");
    /// assert_eq!(miss.failed[0].condition, "match.filename");
    /// assert_eq!(miss.failed[0].expected, "*.mp4");
    /// assert_eq!(miss.failed[0].actual, "clip.mov");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unmatched_requests(&self) -> Vec<RequestRecord> {
        let mut records = self.state.journal.list(&self.state.rules);
        records.retain(|r| r.rule.is_none());
        records
    }

    /// Empties the journal.
    pub async fn clear_requests(&self) {
        self.state.journal.clear();
    }

    /// The stored uploads, oldest first.
    pub async fn uploads(&self) -> Vec<StoredUpload> {
        self.state.list_uploads()
    }

    /// Deletes every upload this server stored; returns how many.
    pub async fn clear_uploads(&self) -> usize {
        self.state.clear_uploads().await
    }

    /// Back to the start: run-time rules removed, fixtures reloaded, counters
    /// zeroed, RNG re-seeded, journal and storage cleared.
    pub async fn reset(&self) -> Result<(), FixtureError> {
        self.state.reset().await
    }

    /// Stops accepting, lets in-flight requests finish (bounded by the
    /// shutdown timeout), then removes the temp dir.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        crate::routes::remote_fetch::stop_all(&self.state);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        // File I/O, possibly a large index: on a blocking thread.
        let state = Arc::clone(&self.state);
        let _ = tokio::task::spawn_blocking(move || state.save_uploads()).await;
        self.state.storage.cleanup();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        crate::routes::remote_fetch::stop_all(&self.state);
        self.state.storage.cleanup();
    }
}
