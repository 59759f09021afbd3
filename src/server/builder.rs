//! [`MockServerBuilder`]: the settings of a [`MockServer`], then [`start`]
//! in steps, each its own function: bind the listener, load the rules, set
//! up the storage, build the shared state, spawn the tasks.
//!
//! [`start`]: MockServerBuilder::start

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{run, MockServer, StartError};
use crate::config::{AuthPolicy, ByteSize, Config};
use crate::files::catalog::Catalog;
use crate::files::Files;
use crate::journal::Journal;
use crate::rules::loading::FixtureSource;
use crate::rules::{FixtureError, RuleEngine};
use crate::same_origin::SameOrigin;
use crate::scenarios::{Scenario, UnknownScenario};
use crate::state::{AppState, Settings};
#[cfg(feature = "s3")]
use crate::storage::S3Config;
use crate::storage::{ObjectStorage, Storage};

/// Most `remote_uri` fetches of one `POST /v2/files` running at once: one
/// request with a thousand entries cannot take every global slot.
const FETCHES_PER_REQUEST: usize = 4;

/// The object store chosen on the builder.
enum ObjectStoreChoice {
    #[cfg(feature = "s3")]
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
            #[cfg(feature = "s3")]
            Self::S3(config) => config.fmt(f),
            Self::Store { store, .. } => write!(f, "{store}"),
        }
    }
}

/// Configures and starts a [`MockServer`].
///
/// Defaults: `127.0.0.1` on a free port, a fresh temp dir, any non-empty
/// credential accepted, 5 GiB upload limit, no fault rules.
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct MockServerBuilder {
    config: Config,
    listener: Option<std::net::TcpListener>,
    object_store: Option<ObjectStoreChoice>,
}

impl MockServerBuilder {
    /// The address to listen on (default `127.0.0.1`).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.host = host.into();
        self
    }

    /// The port (default 0: a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.config.port = port;
        self
    }

    /// Serves on an already bound listener (host and port are then ignored).
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Stores uploads in `dir` (created if missing, never removed) instead of a temp dir.
    pub fn storage_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.storage_dir = Some(dir.into());
        self
    }

    /// Stores uploads in an S3-compatible object store instead of a directory
    /// (`--storage s3://BUCKET/PREFIX`). `remote_uri` then names that bucket.
    /// Only with the `s3` feature (on by default).
    #[cfg(feature = "s3")]
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
        self.config.keep_files = keep;
        self
    }

    /// Adds a fixture file or directory; it is read and checked now.
    /// Fixtures and [scenarios](Self::scenario) are evaluated in the order
    /// they are added, after the rules added at run time.
    pub fn fixtures(mut self, path: impl AsRef<Path>) -> Result<Self, FixtureError> {
        let path = path.as_ref().to_owned();
        crate::rules::loading::load_paths(std::slice::from_ref(&path))?;
        self.config.fixtures.push(FixtureSource::Path(path));
        Ok(self)
    }

    /// Adds a shipped scenario by name (see [`Scenario::all`]): its rules
    /// are loaded as a fixture file's would be, in the order added among
    /// the [fixtures](Self::fixtures). No file is needed: the scenarios are
    /// compiled in.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = aymara_mock::MockServer::builder()
    ///     .scenario("retry-then-succeed")?
    ///     .start()
    ///     .await?;
    /// let rules = server.rules().await;
    /// assert_eq!(rules[0].id, "retry-then-succeed");
    /// assert_eq!(rules[0].source, "scenario:retry-then-succeed");
    ///
    /// // An unknown name is an error that lists the shipped ones.
    /// let err = aymara_mock::MockServer::builder().scenario("nope").unwrap_err();
    /// assert!(err.to_string().contains("retry-then-succeed"));
    /// # Ok(())
    /// # }
    /// ```
    pub fn scenario(mut self, name: &str) -> Result<Self, UnknownScenario> {
        let scenario = Scenario::named(name)?;
        self.config.fixtures.push(FixtureSource::Scenario(scenario));
        Ok(self)
    }

    /// Reloads fixtures when they change on disk.
    pub fn watch(mut self, watch: bool) -> Self {
        self.config.watch = watch;
        self
    }

    /// Accepts this `x-api-key` (repeatable). Once any key or token is set,
    /// only those are accepted.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_keys.push(key.into());
        self
    }

    /// Accepts this bearer token (repeatable).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.config.bearer_tokens.push(token.into());
        self
    }

    /// Checks no credentials at all.
    pub fn no_auth(mut self, no_auth: bool) -> Self {
        self.config.no_auth = no_auth;
        self
    }

    /// Largest file accepted (413 beyond it).
    pub fn max_upload_size(mut self, size: impl Into<ByteSize>) -> Self {
        self.config.max_upload_size = size.into();
        self
    }

    /// A quota over everything stored (500 `server.internal_error` beyond it).
    pub fn max_storage(mut self, size: impl Into<ByteSize>) -> Self {
        self.config.max_storage = Some(size.into());
        self
    }

    /// Seeds the RNG behind `probability` (default: random, and logged).
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// Base URL used in `file_url` (default: the URL the server listens on).
    /// Its host is also a name the admin API accepts in `Host`, and its
    /// origin one it accepts in `Origin` (see README, "Admin API").
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.config.public_url = Some(url.into());
        self
    }

    /// Bucket name in `remote_uri` (default `aymara-mock`; with an object
    /// store, its bucket is named instead).
    pub fn bucket(mut self, bucket: impl Into<String>) -> Self {
        self.config.bucket = bucket.into();
        self
    }

    /// How many requests the journal keeps (default 10 000).
    pub fn journal_size(mut self, size: usize) -> Self {
        self.config.journal_size = size;
        self
    }

    /// How many bytes the journal may hold, approximately (default 64 MiB):
    /// the oldest requests are dropped beyond it, and each journaled header
    /// value is cut at 8 KiB. The newest request is always kept.
    pub fn journal_bytes(mut self, size: impl Into<ByteSize>) -> Self {
        self.config.journal_bytes = size.into();
        self
    }

    /// Requires `Authorization: Bearer <token>` on the admin API. With a
    /// token, the admin API accepts any `Host` name (a web page cannot know
    /// the token), and no start-up warning is logged for a non-loopback host.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.config.admin_token = Some(token.into());
        self
    }

    /// How long shutdown waits for in-flight requests (default 10 s; at most
    /// [`MAX_DURATION`](crate::MAX_DURATION), longer is taken as that).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// How long a client may take to send its request headers (default 10 s;
    /// at most [`MAX_DURATION`](crate::MAX_DURATION), longer is taken as that).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_read_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// How long an upload body may stall before it is aborted (default 60 s;
    /// at most [`MAX_DURATION`](crate::MAX_DURATION), longer is taken as that).
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// How long the presigned upload URLs of `POST /v2/files` stay valid
    /// (default 30 minutes, as the real API's; S3's limit of 7 days at most).
    pub fn presign_expiry(mut self, expiry: Duration) -> Self {
        self.config.presign_expiry =
            expiry.clamp(Duration::from_secs(1), crate::files::presign::MAX_EXPIRY);
        self
    }

    /// Signs presigned upload URLs with this secret instead of a random key
    /// per process, so that replicas accept each other's URLs.
    pub fn presign_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.presign_secret = Some(secret.into());
        self
    }

    /// How long a video takes from stored to `completed` in the files API
    /// (default 3 s: `pending` for the first third, then `processing`;
    /// zero: `completed` at once).
    pub fn video_processing_time(mut self, time: Duration) -> Self {
        self.config.video_processing_time = time.min(crate::config::MAX_DURATION);
        self
    }

    /// `organization_uuid` and `uploaded_by_uuid` of every file in the files
    /// API (defaults: two fixed UUIDs).
    pub fn owner(
        mut self,
        organization_uuid: impl Into<String>,
        uploaded_by_uuid: impl Into<String>,
    ) -> Self {
        self.config.organization_uuid = organization_uuid.into();
        self.config.uploaded_by_uuid = uploaded_by_uuid.into();
        self
    }

    /// Lets `remote_uri` files of `POST /v2/files` be fetched from `host`
    /// too (by name or address, without port), besides loopback.
    pub fn allow_remote_host(mut self, host: impl Into<String>) -> Self {
        let host = host
            .into()
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        if !host.is_empty() && !self.config.remote_hosts.contains(&host) {
            self.config.remote_hosts.push(host);
        }
        self
    }

    /// At most this many `remote_uri` fetches run at once (default 16); the
    /// others wait their turn. One request runs at most 4 of its own at once.
    pub fn max_remote_fetches(mut self, max: usize) -> Self {
        self.config.max_remote_fetches = max.max(1);
        self
    }

    /// The longest one `remote_uri` fetch may take, from connecting to its
    /// last byte (default 2 minutes; at most
    /// [`MAX_DURATION`](crate::MAX_DURATION)); past it the file is `failed`.
    pub fn remote_fetch_timeout(mut self, timeout: Duration) -> Self {
        self.config.remote_fetch_timeout = timeout.min(crate::config::MAX_DURATION);
        self
    }

    /// At most this many files announced by `POST /v2/files` and not stored
    /// yet (default 10 000); a request that would pass it is answered 429.
    pub fn max_pending_files(mut self, max: usize) -> Self {
        self.config.max_pending_files = max;
        self
    }

    /// Lets web pages on `origin` call the emulated API, the presigned
    /// upload URLs and the download URLs from a browser (repeatable; the
    /// first call replaces the default). A value is an origin
    /// (`http://localhost:5173`: scheme, host and optional port), `*` (any
    /// origin), `loopback` (pages on `localhost`, `*.localhost` or a
    /// loopback address, any port: the default) or `none` (no page on
    /// another origin). The admin API never answers pages on other origins,
    /// whatever is allowed here. An invalid value fails [`start`](Self::start).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = aymara_mock::MockServer::builder()
    ///     .cors_origin("http://localhost:5173")
    ///     .start()
    ///     .await?;
    /// let answer = reqwest::Client::new()
    ///     .get(format!("{}/health", server.url()))
    ///     .header("origin", "http://localhost:5173")
    ///     .send()
    ///     .await?;
    /// assert_eq!(answer.headers()["access-control-allow-origin"], "http://localhost:5173");
    /// # Ok(())
    /// # }
    /// ```
    pub fn cors_origin(mut self, origin: impl Into<String>) -> Self {
        self.config
            .cors_origins
            .get_or_insert_with(Vec::new)
            .push(origin.into());
        self
    }

    /// At most this many connections at once; more wait to be accepted.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = Some(max);
        self
    }

    /// Shares the run-time rules, every rule's counters and the journal
    /// with the other replicas using the same Redis
    /// (`--state redis://HOST:PORT[/DB]`, or `rediss://` for TLS), under
    /// [`state_prefix`](Self::state_prefix). [`start`](Self::start) fails
    /// when the store cannot be reached. Only with the `redis` feature (on
    /// by default).
    ///
    /// ```no_run
    /// # async fn doc() -> Result<(), aymara_mock::StartError> {
    /// let replica = aymara_mock::MockServer::builder()
    ///     .state("redis://127.0.0.1:6379/0")
    ///     .state_prefix("staging-a")
    ///     .replica_id("replica-1")
    ///     .start()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    pub fn state(mut self, url: impl Into<String>) -> Self {
        self.config.state_url = Some(url.into());
        self
    }

    /// The prefix of every key in the shared state store (default
    /// `aymara-mock`): stagings with different prefixes share a Redis
    /// without seeing each other.
    #[cfg(feature = "redis")]
    pub fn state_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.state_prefix = prefix.into();
        self
    }

    /// This replica's name in the shared journal (default: the host name
    /// and the port, `HOST:PORT`).
    #[cfg(feature = "redis")]
    pub fn replica_id(mut self, id: impl Into<String>) -> Self {
        self.config.replica_id = Some(id.into());
        self
    }

    /// Binds, loads fixtures, prepares storage and starts serving on the
    /// current Tokio runtime.
    pub async fn start(self) -> Result<MockServer, StartError> {
        let Self {
            config,
            listener,
            object_store,
        } = self;
        if config.max_connections == Some(0) {
            return Err(StartError::Config(
                "--max-connections must be at least 1".into(),
            ));
        }
        let cors =
            crate::cors::Cors::new(config.cors_origins.as_deref()).map_err(StartError::Config)?;
        let (listener, addr) = bind(&config, listener).await?;
        let seed = config.seed.unwrap_or_else(rand::random);
        let rules = load_rules(&config, seed).await?;
        let storage = storage(&config, object_store)?;
        #[cfg(feature = "redis")]
        let cluster = connect_state(&config, addr, &rules).await?;
        let url = format!("http://{addr}");
        let state = shared_state(&config, addr, &url, storage, rules, cors);
        // Every replica signs presigned URLs alike: with --presign-secret,
        // or with the secret the first replica put in the store.
        #[cfg(feature = "redis")]
        let state = match &cluster {
            Some(shared) if config.presign_secret.is_none() => {
                let secret = shared
                    .presign_secret()
                    .await
                    .map_err(|e| StartError::Config(format!("--state: {e}")))?;
                crate::state::AppState {
                    signer: crate::files::presign::Signer::from_secret(secret.as_bytes()),
                    cluster,
                    ..state
                }
            }
            _ => crate::state::AppState { cluster, ..state },
        };
        let state = Arc::new(state);
        tracing::info!(
            %url,
            seed,
            storage = %state.storage.describe(),
            fixtures = state.rules.sources().len(),
            cors_origins = %state.settings.cors,
            "aymara-mock started"
        );
        let (stop, task) = spawn(&config, listener, &state);
        Ok(MockServer {
            addr,
            url,
            seed,
            state,
            stop,
            task: Some(task),
        })
    }
}

/// With `--state`: the shared state store, connected (an unreachable one
/// is an error naming it).
#[cfg(feature = "redis")]
async fn connect_state(
    config: &Config,
    addr: SocketAddr,
    rules: &RuleEngine,
) -> Result<Option<crate::cluster::Cluster>, StartError> {
    let Some(url) = &config.state_url else {
        return Ok(None);
    };
    let replica = config.replica_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        format!("{host}:{}", addr.port())
    });
    let cluster_config = crate::cluster::ClusterConfig {
        url: url.clone(),
        prefix: config.state_prefix.clone(),
        replica,
    };
    let cluster = crate::cluster::Cluster::connect(
        &cluster_config,
        config.seed,
        config.journal_size,
        config.journal_bytes.bytes(),
        rules.fixture_ids(),
    )
    .await
    .map_err(|e| StartError::Config(format!("--state: {e}")))?;
    tracing::info!(store = %cluster.url(), replica = %cluster.replica(), "sharing state");
    Ok(Some(cluster))
}

/// The fixtures' rules, read on a blocking thread, as every fixture load is.
async fn load_rules(config: &Config, seed: u64) -> Result<RuleEngine, StartError> {
    let fixtures = config.fixtures.clone();
    tokio::task::spawn_blocking(move || RuleEngine::new(fixtures, seed))
        .await
        .map_err(|e| StartError::Config(format!("loading the fixtures failed: {e}")))?
        .map_err(StartError::from)
}

/// What every connection shares: the settings fixed at start, the storage,
/// the rules, an empty journal and upload index. Warns first if the address
/// leaves the API or the admin API open.
fn shared_state(
    config: &Config,
    addr: SocketAddr,
    url: &str,
    storage: Storage,
    rules: RuleEngine,
    cors: crate::cors::Cors,
) -> AppState {
    let auth = config.auth_policy();
    warn_if_exposed(addr, &auth, config.admin_token.is_some());
    let (catalog, files) = restore_files(config, &storage);
    let public_url = config
        .public_url
        .as_deref()
        .map_or_else(|| url.to_owned(), |u| u.trim_end_matches('/').to_owned());
    AppState {
        settings: Settings {
            auth,
            max_upload_size: config.max_upload_size.bytes(),
            same_origin: SameOrigin::new(addr, &public_url, config.admin_token.is_some()),
            addr,
            cors,
            public_url,
            body_timeout: config.body_timeout,
            admin_token: config.admin_token.clone(),
            files: crate::state::FilesSettings {
                presign_expiry: config.presign_expiry,
                video_processing: config.video_processing_time,
                organization_uuid: config.organization_uuid.clone(),
                uploaded_by_uuid: config.uploaded_by_uuid.clone(),
                remote_hosts: config.remote_hosts.clone(),
                max_pending: config.max_pending_files,
            },
        },
        storage,
        rules: Arc::new(rules),
        journal: Journal::new(config.journal_size, config.journal_bytes.bytes()),
        files,
        catalog,
        signer: match &config.presign_secret {
            Some(secret) => crate::files::presign::Signer::from_secret(secret.as_bytes()),
            None => crate::files::presign::Signer::random(),
        },
        fetches: Arc::new(crate::files::fetches::Fetches::new(
            config.max_remote_fetches,
            FETCHES_PER_REQUEST,
            config.remote_fetch_timeout,
        )),
        file_locks: crate::files::fetches::FileLocks::default(),
        list_walks: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        ),
        metrics: crate::metrics::Metrics::default(),
        md5_threads: std::sync::Arc::new(tokio::sync::Semaphore::new(
            crate::routes::put::MD5_THREADS,
        )),
        #[cfg(feature = "redis")]
        cluster: None,
    }
}

/// The files API's catalog and the index of stored files: empty, or, in a
/// storage directory the user chose, what an earlier run saved there.
fn restore_files(config: &Config, storage: &Storage) -> (Catalog, Files) {
    let files = Files::default();
    let root = match (&config.storage_dir, storage.root()) {
        (Some(_), Some(root)) => root.to_owned(),
        _ => return (Catalog::default(), files),
    };
    let saved = match crate::files::persist::Saved::open(&root) {
        Ok(saved) => saved,
        Err(err) => {
            tracing::warn!(error = %err, "the files API's state will not survive a restart");
            return (Catalog::default(), files);
        }
    };
    let (catalog, entries) = Catalog::persistent(saved);
    let mut restored = 0;
    for entry in entries {
        if let Some((size, sha256)) = entry.bytes {
            storage.restored(size);
            let _ = files.insert(crate::storage::UploadRecord {
                stored_at: entry.stored_at.unwrap_or(entry.created_at),
                target: entry.target,
                size,
                sha256,
                duplicate_of: None,
            });
            restored += 1;
        }
    }
    let saved = catalog
        .saved()
        .map(|s| s.load_uploads())
        .unwrap_or_default();
    for record in saved {
        if files.get(&record.target.file_uuid).is_none() {
            storage.restored(record.size);
            let _ = files.insert(record);
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!(
            files = restored,
            "restored the files stored by an earlier run"
        );
    }
    (catalog, files)
}

/// The listener given, or one bound to the configured host and port.
async fn bind(
    config: &Config,
    listener: Option<std::net::TcpListener>,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = match listener {
        Some(std_listener) => {
            let _ = std_listener.set_nonblocking(true);
            TcpListener::from_std(std_listener).map_err(|source| StartError::Bind {
                addr: "the given listener".into(),
                source,
            })?
        }
        None => {
            let addr = format!("{}:{}", bracket_v6(&config.host), config.port);
            TcpListener::bind(&addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })?
        }
    };
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: "the listener".into(),
        source,
    })?;
    Ok((listener, addr))
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The storage chosen: an object store, or a directory (a temp dir unless
/// one is named).
fn storage(
    config: &Config,
    object_store: Option<ObjectStoreChoice>,
) -> Result<Storage, StartError> {
    let quota = config.max_storage.map(ByteSize::bytes);
    match object_store {
        Some(_) if config.storage_dir.is_some() => Err(StartError::Config(
            "choose one storage: --storage-dir or --storage s3://...".into(),
        )),
        #[cfg(feature = "s3")]
        Some(ObjectStoreChoice::S3(s3)) => {
            let store = s3.build().map_err(StartError::Config)?;
            Ok(Storage::object(
                ObjectStorage::new(store, s3.bucket(), s3.prefix()),
                quota,
            ))
        }
        Some(ObjectStoreChoice::Store {
            store,
            bucket,
            prefix,
        }) => Ok(Storage::object(
            ObjectStorage::new(store, &bucket, &prefix),
            quota,
        )),
        None => Storage::local(
            config.storage_dir.as_deref(),
            config.keep_files,
            config.bucket.clone(),
            quota,
        )
        .map_err(|source| StartError::Storage {
            path: config
                .storage_dir
                .as_deref()
                .map_or_else(|| "(temp dir)".to_owned(), |p| p.display().to_string()),
            source,
        }),
    }
}

/// Logs a warning for each door a non-loopback address leaves open.
fn warn_if_exposed(addr: SocketAddr, auth: &AuthPolicy, admin_token: bool) {
    if addr.ip().is_loopback() {
        return;
    }
    if matches!(auth, AuthPolicy::AnyCredential | AuthPolicy::Disabled) {
        tracing::warn!(
            %addr,
            "listening on a non-loopback address without --api-key/--bearer-token: anyone who can reach it can upload"
        );
    }
    if !admin_token {
        tracing::warn!(
            %addr,
            "listening on a non-loopback address without --admin-token: anyone who can reach it can use the admin API (/__admin: add rules, read the journal, delete uploads)"
        );
    }
    // Fetching is what `remote_uri` is for; from beyond loopback it also
    // lets a client read what other HTTP services on this machine serve.
    tracing::warn!(
        %addr,
        "listening on a non-loopback address: a POST /v2/files with a remote_uri makes aymara-mock GET that URL from the hosts it allows (loopback and --allow-remote-host), so anyone who can reach it can download what HTTP services on those hosts serve (never its own admin API or files)"
    );
}

/// Starts the server's tasks: the object store's reachability probe (told,
/// not waited for: the store may come up after the emulator), the fixture
/// watcher, and the accept loop. Returns the stop signal and the loop.
fn spawn(
    config: &Config,
    listener: TcpListener,
    state: &Arc<AppState>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    if state.storage.root().is_none() {
        let probe = Arc::clone(state);
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
    if config.watch {
        tokio::spawn(crate::rules::watch::watch(
            Arc::clone(&state.rules),
            stop_rx.clone(),
        ));
    }
    let task = tokio::spawn(run::serve(
        listener,
        Arc::clone(state),
        stop_rx,
        run::ConnSettings {
            header_read_timeout: config.header_read_timeout,
            shutdown_timeout: config.shutdown_timeout,
            max_connections: config.max_connections,
        },
    ));
    (stop_tx, task)
}
