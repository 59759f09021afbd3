//! The public face of the server: [`MockServer`] and its builder.
//!
//! Plumbing, all private: `run` (accept loop and graceful shutdown), `conn`
//! (the shared socket, for resets and hang detection), `router`, `handler`
//! (every non-admin request), `files` (`/__files`), `state` (what the
//! handlers share).

pub(crate) mod conn;
pub(crate) mod files;
pub(crate) mod handler;
pub(crate) mod router;
pub(crate) mod run;
pub(crate) mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{AuthPolicy, ByteSize};
use crate::journal::{Journal, RequestRecord};
use crate::rules::model::Rule;
use crate::rules::{AddRuleError, FixtureError, RuleEngine, RuleStatus};
use crate::same_origin::SameOrigin;
use crate::storage::{ObjectStorage, S3Config, Storage, StoredUpload};
use state::{AppState, Settings, UploadIndex};

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

/// The object store chosen on the builder.
enum ObjectStoreChoice {
    S3(S3Config),
    Store {
        store: Arc<dyn object_store::ObjectStore>,
        bucket: String,
        prefix: String,
    },
}

impl std::fmt::Debug for ObjectStoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::S3(config) => config.fmt(f),
            Self::Store { store, .. } => write!(f, "{store}"),
        }
    }
}

/// Configures and starts a [`MockServer`].
///
/// Defaults: `127.0.0.1` on a free port, a fresh temp dir, any non-empty
/// credential accepted, 5 GiB upload limit, no fault rules.
#[derive(Debug)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct MockServerBuilder {
    host: String,
    port: u16,
    listener: Option<std::net::TcpListener>,
    storage_dir: Option<PathBuf>,
    object_store: Option<ObjectStoreChoice>,
    keep_files: bool,
    fixtures: Vec<PathBuf>,
    watch: bool,
    api_keys: Vec<String>,
    bearer_tokens: Vec<String>,
    no_auth: bool,
    max_upload_size: ByteSize,
    max_storage: Option<ByteSize>,
    seed: Option<u64>,
    public_url: Option<String>,
    bucket: String,
    journal_size: usize,
    journal_bytes: ByteSize,
    admin_token: Option<String>,
    shutdown_timeout: Duration,
    header_read_timeout: Duration,
    body_timeout: Duration,
    max_connections: Option<usize>,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 0,
            listener: None,
            storage_dir: None,
            object_store: None,
            keep_files: false,
            fixtures: Vec::new(),
            watch: false,
            api_keys: Vec::new(),
            bearer_tokens: Vec::new(),
            no_auth: false,
            max_upload_size: ByteSize::new(5 << 30),
            max_storage: None,
            seed: None,
            public_url: None,
            bucket: "aymara-mock".to_owned(),
            journal_size: 10_000,
            journal_bytes: ByteSize::new(64 << 20),
            admin_token: None,
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

impl MockServerBuilder {
    /// The address to listen on (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The port (default 0: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Serves on an already bound listener (host and port are then ignored).
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Stores uploads in `dir` (created if missing, never removed) instead of a temp dir.
    pub fn storage_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage_dir = Some(dir.into());
        self
    }

    /// Stores uploads in an S3-compatible object store instead of a directory
    /// (`--storage s3://BUCKET/PREFIX`). `remote_uri` then names that bucket.
    pub fn s3(mut self, config: S3Config) -> Self {
        self.object_store = Some(ObjectStoreChoice::S3(config));
        self
    }

    /// Stores uploads in any [`object_store::ObjectStore`] (an in-memory one
    /// in tests, say), under `prefix`; `bucket` is what `remote_uri` names.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use aymara_mock::object_store::memory::InMemory;
    /// let server = aymara_mock::MockServer::builder()
    ///     .object_store(Arc::new(InMemory::new()), "test-bucket", "uploads-prefix")
    ///     .start()
    ///     .await?;
    /// assert_eq!(server.storage_dir(), None);
    /// assert_eq!(server.storage(), "s3://test-bucket/uploads-prefix");
    /// # Ok(())
    /// # }
    /// ```
    pub fn object_store(
        mut self,
        store: Arc<dyn object_store::ObjectStore>,
        bucket: impl Into<String>,
        prefix: impl Into<String>,
    ) -> Self {
        self.object_store = Some(ObjectStoreChoice::Store {
            store,
            bucket: bucket.into(),
            prefix: prefix.into(),
        });
        self
    }

    /// Leaves the temp dir behind on shutdown.
    pub fn keep_files(mut self, keep: bool) -> Self {
        self.keep_files = keep;
        self
    }

    /// Adds a fixture file or directory; it is read and checked now.
    pub fn fixtures(mut self, path: impl AsRef<Path>) -> Result<Self, FixtureError> {
        let path = path.as_ref().to_owned();
        crate::rules::loading::load_paths(std::slice::from_ref(&path))?;
        self.fixtures.push(path);
        Ok(self)
    }

    /// Reloads fixtures when they change on disk.
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Accepts this `x-api-key` (repeatable). Once any key or token is set,
    /// only those are accepted.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys.push(key.into());
        self
    }

    /// Accepts this bearer token (repeatable).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.bearer_tokens.push(token.into());
        self
    }

    /// Checks no credentials at all.
    pub fn no_auth(mut self, no_auth: bool) -> Self {
        self.no_auth = no_auth;
        self
    }

    /// Largest file accepted (413 beyond it).
    pub fn max_upload_size(mut self, size: impl Into<ByteSize>) -> Self {
        self.max_upload_size = size.into();
        self
    }

    /// A quota over everything stored (500 `server.internal_error` beyond it).
    pub fn max_storage(mut self, size: impl Into<ByteSize>) -> Self {
        self.max_storage = Some(size.into());
        self
    }

    /// Seeds the RNG behind `probability` (default: random, and logged).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Base URL used in `file_url` (default: the URL the server listens on).
    /// Its host is also a name the admin API accepts in `Host`, and its
    /// origin one it accepts in `Origin` (see README, "Admin API").
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Bucket name in `remote_uri` (default `aymara-mock`; with an object
    /// store, its bucket is named instead).
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = bucket.into();
        self
    }

    /// How many requests the journal keeps (default 10 000).
    pub fn journal_size(mut self, size: usize) -> Self {
        self.journal_size = size;
        self
    }

    /// How many bytes the journal may hold, approximately (default 64 MiB):
    /// the oldest requests are dropped beyond it, and each journaled header
    /// value is cut at 8 KiB. The newest request is always kept.
    pub fn journal_bytes(mut self, size: impl Into<ByteSize>) -> Self {
        self.journal_bytes = size.into();
        self
    }

    /// Requires `Authorization: Bearer <token>` on the admin API. With a
    /// token, the admin API accepts any `Host` name (a web page cannot know
    /// the token), and no start-up warning is logged for a non-loopback host.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// How long shutdown waits for in-flight requests (default 10 s; at most
    /// [`MAX_DURATION`](crate::MAX_DURATION), longer is taken as that).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// How long a client may take to send its request headers (default 10 s;
    /// at most [`MAX_DURATION`](crate::MAX_DURATION), longer is taken as that).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// How long an upload body may stall before it is aborted (default 60 s;
    /// at most [`MAX_DURATION`](crate::MAX_DURATION), longer is taken as that).
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// At most this many connections at once; more wait to be accepted.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max);
        self
    }

    /// Binds, loads fixtures, prepares storage and starts serving on the
    /// current Tokio runtime.
    pub async fn start(self) -> Result<MockServer, StartError> {
        if self.max_connections == Some(0) {
            return Err(StartError::Config(
                "--max-connections must be at least 1".into(),
            ));
        }
        let listener = match self.listener {
            Some(std_listener) => {
                let _ = std_listener.set_nonblocking(true);
                tokio::net::TcpListener::from_std(std_listener).map_err(|source| {
                    StartError::Bind {
                        addr: "the given listener".into(),
                        source,
                    }
                })?
            }
            None => {
                let addr = format!("{}:{}", bracket_v6(&self.host), self.port);
                tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?
            }
        };
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: "the listener".into(),
            source,
        })?;
        let url = format!("http://{addr}");
        let seed = self.seed.unwrap_or_else(rand::random);
        // File I/O on a blocking thread, as every fixture load is.
        let fixtures = self.fixtures;
        let rules = tokio::task::spawn_blocking(move || RuleEngine::new(fixtures, seed))
            .await
            .map_err(|e| StartError::Config(format!("loading the fixtures failed: {e}")))??;
        let quota = self.max_storage.map(ByteSize::bytes);
        let storage = match self.object_store {
            Some(_) if self.storage_dir.is_some() => {
                return Err(StartError::Config(
                    "choose one storage: --storage-dir or --storage s3://...".into(),
                ))
            }
            Some(ObjectStoreChoice::S3(config)) => {
                let store = config.build().map_err(StartError::Config)?;
                Storage::object(
                    ObjectStorage::new(store, config.bucket(), config.prefix()),
                    quota,
                )
            }
            Some(ObjectStoreChoice::Store {
                store,
                bucket,
                prefix,
            }) => Storage::object(ObjectStorage::new(store, &bucket, &prefix), quota),
            None => Storage::local(
                self.storage_dir.as_deref(),
                self.keep_files,
                self.bucket,
                quota,
            )
            .map_err(|source| StartError::Storage {
                path: self
                    .storage_dir
                    .as_deref()
                    .map_or_else(|| "(temp dir)".to_owned(), |p| p.display().to_string()),
                source,
            })?,
        };
        let auth = if self.no_auth {
            AuthPolicy::Disabled
        } else if self.api_keys.is_empty() && self.bearer_tokens.is_empty() {
            AuthPolicy::AnyCredential
        } else {
            AuthPolicy::Only {
                api_keys: self.api_keys,
                bearer_tokens: self.bearer_tokens,
            }
        };
        if !addr.ip().is_loopback()
            && matches!(auth, AuthPolicy::AnyCredential | AuthPolicy::Disabled)
        {
            tracing::warn!(
                %addr,
                "listening on a non-loopback address without --api-key/--bearer-token: anyone who can reach it can upload"
            );
        }
        if !addr.ip().is_loopback() && self.admin_token.is_none() {
            tracing::warn!(
                %addr,
                "listening on a non-loopback address without --admin-token: anyone who can reach it can use the admin API (/__admin: add rules, read the journal, delete uploads)"
            );
        }
        let public_url = self
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| url.clone());
        let state = Arc::new(AppState {
            settings: Settings {
                auth,
                max_upload_size: self.max_upload_size.bytes(),
                same_origin: SameOrigin::new(addr, &public_url, self.admin_token.is_some()),
                public_url,
                body_timeout: self.body_timeout,
                admin_token: self.admin_token,
            },
            storage,
            rules,
            journal: Journal::new(self.journal_size, self.journal_bytes.bytes()),
            uploads: UploadIndex::default(),
        });
        tracing::info!(
            %url,
            seed,
            storage = %state.storage.describe(),
            fixtures = state.rules.fixture_paths().len(),
            "aymara-mock started"
        );
        if state.storage.root().is_none() {
            // Told, not waited for: the store may come up after the emulator.
            let probe = Arc::clone(&state);
            tokio::spawn(async move {
                match probe.storage.probe().await {
                    Ok(()) => {
                        tracing::info!(storage = %probe.storage.describe(), "object store reachable")
                    }
                    Err(err) => tracing::warn!(
                        storage = %probe.storage.describe(),
                        error = %err,
                        "object store not usable yet: uploads get 503/500 until it is"
                    ),
                }
            });
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        if self.watch {
            tokio::spawn(crate::rules::watch::watch(
                Arc::clone(&state),
                stop_rx.clone(),
            ));
        }
        let task = tokio::spawn(run::serve(
            listener,
            Arc::clone(&state),
            stop_rx,
            run::ConnSettings {
                header_read_timeout: self.header_read_timeout,
                shutdown_timeout: self.shutdown_timeout,
                max_connections: self.max_connections,
            },
        ));
        Ok(MockServer {
            addr,
            url,
            seed,
            state,
            stop: stop_tx,
            task: Some(task),
        })
    }
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
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
        self.state.journal.list()
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
        let mut records = self.state.journal.list();
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
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.state.storage.cleanup();
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.state.storage.cleanup();
    }
}
