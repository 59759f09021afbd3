//! The command line's raw flags, each with an `AYMARA_MOCK_*` twin: what
//! clap parses and checks value by value. `serve.rs` turns them into a
//! [`MockServerBuilder`](aymara_mock::MockServerBuilder), whose own
//! defaults ([`aymara_mock::defaults`]) the flags show as theirs.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "s3")]
use aymara_mock::S3Config;
use aymara_mock::{defaults, ByteSize, Scenario, MAX_DURATION};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// The port the command line listens on by default, unlike the library's
/// free one: the official SDK's `development` environment is
/// `http://localhost:8000`.
pub(crate) const PORT: u16 = 8000;

/// Stands in for [`S3Config`] in a binary built without the `s3` feature:
/// `--storage` is still a flag, and says why it cannot be used.
#[cfg(not(feature = "s3"))]
#[derive(Debug, Clone)]
pub(crate) enum S3Config {}

#[cfg(not(feature = "s3"))]
impl S3Config {
    fn parse(_: &str) -> Result<Self, String> {
        Err("this aymara-mock was built without the `s3` feature".into())
    }
}

/// `--state`: a Redis URL, in a binary built with the `redis` feature.
fn parse_state_url(url: &str) -> Result<String, String> {
    if !cfg!(feature = "redis") {
        return Err("this aymara-mock was built without the `redis` feature".into());
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        Ok(url.to_owned())
    } else {
        Err(format!(
            "{url:?} is not a Redis URL: use redis://HOST:PORT[/DB] or rediss://HOST:PORT[/DB]"
        ))
    }
}

/// A fast, faithful local emulator of the Aymara AI file-upload API.
#[derive(Debug, Parser)]
#[command(
    name = "aymara-mock",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
pub(crate) enum Command {
    /// Serve the emulated API (the default).
    Serve(ServeArgs),
    /// Validate fixture files or directories; exit 2 if any is invalid.
    Check {
        /// Fixture files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the JSON Schema of fixture files.
    Schema,
    /// List the shipped scenarios (for --scenario NAME), each with what it does.
    Scenarios,
    /// Ask a running emulator for GET /health: exit 0 if healthy, 1 if not
    /// (a health check that needs no shell or curl, as in the container image).
    Health(HealthArgs),
}

/// Options of `health`.
#[derive(Debug, Args)]
pub(crate) struct HealthArgs {
    /// The emulator's URL, as in its listening line (default: http://HOST:PORT
    /// from --host and --port, 0.0.0.0 asked on 127.0.0.1).
    pub(crate) url: Option<String>,
    /// Host of the default URL: where `serve` listens with the same environment.
    #[arg(long, env = "AYMARA_MOCK_HOST", default_value = defaults::HOST)]
    pub(crate) host: String,
    /// Port of the default URL.
    #[arg(long, env = "AYMARA_MOCK_PORT", default_value_t = PORT)]
    pub(crate) port: u16,
    /// Unhealthy if no answer within this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: humantime::Duration,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AYMARA_MOCK_HOST", default_value = defaults::HOST)]
    pub(crate) host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "AYMARA_MOCK_PORT", default_value_t = PORT)]
    pub(crate) port: u16,
    /// Store uploads here (created if missing, kept on exit) instead of a fresh temp dir.
    #[arg(long, env = "AYMARA_MOCK_STORAGE_DIR", value_name = "DIR")]
    pub(crate) storage_dir: Option<PathBuf>,
    /// Store uploads in an S3-compatible bucket instead: s3://BUCKET/PREFIX
    /// (credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    #[arg(
        long,
        env = "AYMARA_MOCK_STORAGE",
        value_name = "URL",
        value_parser = S3Config::parse,
        conflicts_with = "storage_dir"
    )]
    pub(crate) storage: Option<S3Config>,
    /// Endpoint of the S3-compatible store for --storage (MinIO, LocalStack, Ceph; default: AWS).
    #[arg(
        long,
        env = "AYMARA_MOCK_S3_ENDPOINT",
        value_name = "URL",
        requires = "storage"
    )]
    pub(crate) s3_endpoint: Option<String>,
    /// Keep the temp dir on exit.
    #[arg(long, env = "AYMARA_MOCK_KEEP_FILES")]
    pub(crate) keep_files: bool,
    /// Fixture file or directory of fault rules (repeatable; env: comma-separated).
    #[arg(
        long = "fixtures",
        env = "AYMARA_MOCK_FIXTURES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    pub(crate) fixtures: Vec<PathBuf>,
    /// Shipped scenario to load by name, after the --fixtures files
    /// (repeatable; env: comma-separated; list: `aymara-mock scenarios`).
    #[arg(
        long = "scenario",
        env = "AYMARA_MOCK_SCENARIO",
        value_name = "NAME",
        value_delimiter = ',',
        value_parser = parse_scenario
    )]
    pub(crate) scenarios: Vec<&'static Scenario>,
    /// Reload fixtures when they change.
    #[arg(long, env = "AYMARA_MOCK_WATCH")]
    pub(crate) watch: bool,
    /// Accept only these x-api-key values (repeatable; env: comma-separated).
    #[arg(
        long = "api-key",
        env = "AYMARA_MOCK_API_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub(crate) api_keys: Vec<String>,
    /// Accept only these bearer tokens (repeatable; env: comma-separated).
    #[arg(
        long = "bearer-token",
        env = "AYMARA_MOCK_BEARER_TOKENS",
        value_name = "TOKEN",
        value_delimiter = ','
    )]
    pub(crate) bearer_tokens: Vec<String>,
    /// Check no credentials.
    #[arg(long, env = "AYMARA_MOCK_NO_AUTH", conflicts_with_all = ["api_keys", "bearer_tokens"])]
    pub(crate) no_auth: bool,
    /// Largest file accepted, e.g. 512MiB (413 beyond it).
    #[arg(
        long,
        env = "AYMARA_MOCK_MAX_UPLOAD_SIZE",
        default_value_t = defaults::MAX_UPLOAD_SIZE,
        value_name = "SIZE"
    )]
    pub(crate) max_upload_size: ByteSize,
    /// Quota over all stored files, e.g. 1GiB (500 beyond it).
    #[arg(long, env = "AYMARA_MOCK_MAX_STORAGE", value_name = "SIZE")]
    pub(crate) max_storage: Option<ByteSize>,
    /// Seed of the RNG behind rule probabilities (default: random, logged at start).
    #[arg(long, env = "AYMARA_MOCK_SEED")]
    pub(crate) seed: Option<u64>,
    /// Base URL used in file_url (default: the URL listened on); its host is
    /// also accepted as `Host` by the admin API.
    #[arg(long, env = "AYMARA_MOCK_PUBLIC_URL", value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// Bucket name used in remote_uri (with --storage, its bucket is used).
    #[arg(
        long,
        env = "AYMARA_MOCK_BUCKET",
        default_value = defaults::BUCKET,
        conflicts_with = "storage"
    )]
    pub(crate) bucket: String,
    /// Requests kept in the journal (oldest dropped).
    #[arg(
        long,
        env = "AYMARA_MOCK_JOURNAL_SIZE",
        default_value_t = defaults::JOURNAL_SIZE,
        value_name = "N"
    )]
    pub(crate) journal_size: usize,
    /// Bytes the journal may hold, e.g. 64MiB (oldest dropped; each header value is cut at 8 KiB).
    #[arg(
        long,
        env = "AYMARA_MOCK_JOURNAL_BYTES",
        default_value_t = defaults::JOURNAL_BYTES,
        value_name = "SIZE",
        value_parser = parse_journal_bytes
    )]
    pub(crate) journal_bytes: ByteSize,
    /// Require `Authorization: Bearer TOKEN` on the admin API (which then
    /// accepts any `Host` name).
    #[arg(long, env = "AYMARA_MOCK_ADMIN_TOKEN", value_name = "TOKEN")]
    pub(crate) admin_token: Option<String>,
    /// Also write the listening URL to this file once ready.
    #[arg(long, env = "AYMARA_MOCK_READY_FILE", value_name = "PATH")]
    pub(crate) ready_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        env = "AYMARA_MOCK_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub(crate) log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(
        long,
        env = "AYMARA_MOCK_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub(crate) log_level: String,
    /// How long shutdown waits for in-flight requests, e.g. 10s, 500ms.
    #[arg(long, env = "AYMARA_MOCK_SHUTDOWN_TIMEOUT", default_value_t = defaults::SHUTDOWN_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) shutdown_timeout: humantime::Duration,
    /// How long a client may take to send its request headers.
    #[arg(long, env = "AYMARA_MOCK_HEADER_READ_TIMEOUT", default_value_t = defaults::HEADER_READ_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) header_read_timeout: humantime::Duration,
    /// How long an upload body may stall before it is aborted.
    #[arg(long, env = "AYMARA_MOCK_BODY_TIMEOUT", default_value_t = defaults::BODY_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) body_timeout: humantime::Duration,
    /// At most this many connections at once.
    #[arg(long, env = "AYMARA_MOCK_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_connections: Option<u64>,
    /// Share run-time rules, counters, the journal and the files catalog with every replica using
    /// this Redis:
    /// redis://HOST:PORT[/DB] (rediss:// for TLS; redis://:PASSWORD@HOST:PORT).
    #[arg(long, env = "AYMARA_MOCK_STATE", value_name = "URL", value_parser = parse_state_url)]
    pub(crate) state: Option<String>,
    /// Prefix of the keys in the --state store: stagings with different prefixes share a Redis
    /// without seeing each other.
    #[arg(long, env = "AYMARA_MOCK_STATE_PREFIX", value_name = "PREFIX", default_value = defaults::STATE_PREFIX)]
    pub(crate) state_prefix: String,
    /// This replica's name in the shared journal (default: HOSTNAME:PORT).
    #[arg(long, env = "AYMARA_MOCK_REPLICA_ID", value_name = "NAME")]
    pub(crate) replica_id: Option<String>,
    /// How long the presigned upload URLs of POST /v2/files stay valid (at most 7 days).
    #[arg(long, env = "AYMARA_MOCK_PRESIGN_EXPIRY", default_value_t = defaults::PRESIGN_EXPIRY.into(), value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) presign_expiry: humantime::Duration,
    /// Sign presigned upload URLs with this secret (default: a random key per
    /// process), so that replicas accept each other's URLs.
    #[arg(
        long,
        env = "AYMARA_MOCK_PRESIGN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub(crate) presign_secret: Option<String>,
    /// How long a video takes from stored to "completed" in the files API
    /// (pending for the first third, then processing; 0s: at once).
    #[arg(long, env = "AYMARA_MOCK_VIDEO_PROCESSING_TIME", default_value_t = defaults::VIDEO_PROCESSING_TIME.into(), value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) video_processing_time: humantime::Duration,
    /// organization_uuid of every file in the files API.
    #[arg(long, env = "AYMARA_MOCK_ORGANIZATION_UUID", default_value = defaults::ORGANIZATION_UUID, value_name = "UUID")]
    pub(crate) organization_uuid: String,
    /// uploaded_by_uuid of every file in the files API.
    #[arg(long, env = "AYMARA_MOCK_USER_UUID", default_value = defaults::USER_UUID, value_name = "UUID")]
    pub(crate) user_uuid: String,
    /// Fetch remote_uri files from this host too, besides loopback (repeatable).
    #[arg(
        long = "allow-remote-host",
        env = "AYMARA_MOCK_ALLOW_REMOTE_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub(crate) allow_remote_hosts: Vec<String>,
    /// Most remote_uri fetches running at once; the others wait their turn
    /// (one request runs at most 4 of its own at once).
    #[arg(long, env = "AYMARA_MOCK_MAX_REMOTE_FETCHES", default_value_t = defaults::MAX_REMOTE_FETCHES, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |n| usize::try_from(n).unwrap_or(usize::MAX)))]
    pub(crate) max_remote_fetches: usize,
    /// The longest one remote_uri fetch may take, connecting to its last
    /// byte; past it the file is "failed".
    #[arg(long, env = "AYMARA_MOCK_REMOTE_FETCH_TIMEOUT", default_value_t = defaults::REMOTE_FETCH_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) remote_fetch_timeout: humantime::Duration,
    /// Most files announced by POST /v2/files and not stored yet (429 past it).
    #[arg(long, env = "AYMARA_MOCK_MAX_PENDING_FILES", default_value_t = defaults::MAX_PENDING_FILES, value_name = "N")]
    pub(crate) max_pending_files: usize,
    /// Let web pages on this origin call the API, the presigned upload URLs
    /// and the downloads from a browser (CORS): an origin such as
    /// http://localhost:5173, `*` (any), `loopback` (localhost and loopback
    /// addresses, any port) or `none` (repeatable; env: comma-separated).
    /// Never the admin API.
    #[arg(
        long = "cors-origin",
        env = "AYMARA_MOCK_CORS_ORIGIN",
        value_delimiter = ',',
        value_name = "ORIGIN",
        default_value = defaults::CORS_ORIGIN,
        value_parser = aymara_mock::check_cors_origin
    )]
    pub(crate) cors_origins: Vec<String>,
}

/// A shipped scenario's name (clap exits 2 with the names there are).
fn parse_scenario(input: &str) -> Result<&'static Scenario, String> {
    Scenario::named(input.trim()).map_err(|e| e.to_string())
}

/// A journal size in bytes, at least one.
fn parse_journal_bytes(input: &str) -> Result<ByteSize, String> {
    let size: ByteSize = input.parse().map_err(|e| format!("{e}"))?;
    if size.bytes() == 0 {
        return Err(
            "the journal needs room for at least one request; use --journal-size 0 to keep none"
                .into(),
        );
    }
    Ok(size)
}

/// Parses a duration in humantime's forms (`250ms`, `10s`, `2m`, `1h 30m`),
/// or a plain number of seconds (`2`, `0.5`), up to [`MAX_DURATION`].
/// humantime (already compiled for object_store) replaces a hand-written
/// parser that knew only ms, s and m.
fn parse_duration(input: &str) -> Result<humantime::Duration, String> {
    let s = input.trim();
    let duration = match s.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("invalid duration {input:?}: expected e.g. 500ms, 10s, 2m"))?,
        Err(_) => humantime::parse_duration(s).map_err(|e| {
            format!("invalid duration {input:?} ({e}): expected e.g. 500ms, 10s, 2m")
        })?,
    };
    if duration > MAX_DURATION {
        return Err(format!(
            "{input:?} is longer than the longest duration accepted, 7 days ({}s)",
            MAX_DURATION.as_secs()
        ));
    }
    Ok(duration.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let parse = |s| parse_duration(s).map(Duration::from);
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["soon", "5 parsecs", "-1", "-1s", ""] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert_eq!(parse("10080m"), Ok(MAX_DURATION));
        assert_eq!(parse("7days"), Ok(MAX_DURATION));
        for too_long in ["10081m", "604801", "10000000000000000000s", "1e400"] {
            let err = parse(too_long).unwrap_err();
            assert!(err.contains(too_long), "{err}");
        }
    }

    /// Each default goes through clap as text (`--help` shows it) and is
    /// parsed back: it must come back as the library's own value. (That
    /// `defaults` is what `MockServerBuilder` starts from, and that
    /// `CORS_ORIGIN` means what no `cors_origin` means, the library's own
    /// tests check.)
    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["aymara-mock"]).unwrap();
        let args = cli.serve;
        assert_eq!(args.host, defaults::HOST);
        assert_eq!(args.port, PORT);
        assert_eq!(args.max_upload_size, defaults::MAX_UPLOAD_SIZE);
        assert_eq!(args.bucket, defaults::BUCKET);
        assert_eq!(args.journal_size, defaults::JOURNAL_SIZE);
        assert_eq!(args.journal_bytes, defaults::JOURNAL_BYTES);
        assert_eq!(
            Duration::from(args.shutdown_timeout),
            defaults::SHUTDOWN_TIMEOUT
        );
        assert_eq!(
            Duration::from(args.header_read_timeout),
            defaults::HEADER_READ_TIMEOUT
        );
        assert_eq!(Duration::from(args.body_timeout), defaults::BODY_TIMEOUT);
        assert_eq!(args.max_remote_fetches, defaults::MAX_REMOTE_FETCHES);
        assert_eq!(
            Duration::from(args.remote_fetch_timeout),
            defaults::REMOTE_FETCH_TIMEOUT
        );
        assert_eq!(args.max_pending_files, defaults::MAX_PENDING_FILES);
        assert_eq!(args.cors_origins, [defaults::CORS_ORIGIN]);
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
