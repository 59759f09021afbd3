//! The command line: raw flags (each with an `AYMARA_MOCK_*` twin), turned
//! into a [`MockServerBuilder`](crate::MockServerBuilder) — the CLI is a thin
//! layer over the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{defaults, ByteSize};
use crate::scenarios::Scenario;
use crate::server::{MockServer, StartError};
#[cfg(feature = "s3")]
use crate::storage::S3Config;

mod health;

/// The port the command line listens on by default, unlike the library's
/// free one: the official SDK's `development` environment is
/// `http://localhost:8000`.
const PORT: u16 = 8000;

/// Stands in for [`S3Config`] in a binary built without the `s3` feature:
/// `--storage` is still a flag, and says why it cannot be used.
#[cfg(not(feature = "s3"))]
#[derive(Debug, Clone)]
enum S3Config {}

#[cfg(not(feature = "s3"))]
impl S3Config {
    fn parse(_: &str) -> Result<Self, String> {
        Err("this aymara-mock was built without the `s3` feature".into())
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
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
enum Command {
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
struct HealthArgs {
    /// The emulator's URL, as in its listening line (default: http://HOST:PORT
    /// from --host and --port, 0.0.0.0 asked on 127.0.0.1).
    url: Option<String>,
    /// Host of the default URL: where `serve` listens with the same environment.
    #[arg(long, env = "AYMARA_MOCK_HOST", default_value = defaults::HOST)]
    host: String,
    /// Port of the default URL.
    #[arg(long, env = "AYMARA_MOCK_PORT", default_value_t = PORT)]
    port: u16,
    /// Unhealthy if no answer within this long.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: humantime::Duration,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Options of `serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "AYMARA_MOCK_HOST", default_value = defaults::HOST)]
    host: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "AYMARA_MOCK_PORT", default_value_t = PORT)]
    port: u16,
    /// Store uploads here (created if missing, kept on exit) instead of a fresh temp dir.
    #[arg(long, env = "AYMARA_MOCK_STORAGE_DIR", value_name = "DIR")]
    storage_dir: Option<PathBuf>,
    /// Store uploads in an S3-compatible bucket instead: s3://BUCKET/PREFIX
    /// (credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    #[arg(
        long,
        env = "AYMARA_MOCK_STORAGE",
        value_name = "URL",
        value_parser = S3Config::parse,
        conflicts_with = "storage_dir"
    )]
    storage: Option<S3Config>,
    /// Endpoint of the S3-compatible store for --storage (MinIO, LocalStack, Ceph; default: AWS).
    #[arg(
        long,
        env = "AYMARA_MOCK_S3_ENDPOINT",
        value_name = "URL",
        requires = "storage"
    )]
    s3_endpoint: Option<String>,
    /// Keep the temp dir on exit.
    #[arg(long, env = "AYMARA_MOCK_KEEP_FILES")]
    keep_files: bool,
    /// Fixture file or directory of fault rules (repeatable; env: comma-separated).
    #[arg(
        long = "fixtures",
        env = "AYMARA_MOCK_FIXTURES",
        value_name = "PATH",
        value_delimiter = ','
    )]
    fixtures: Vec<PathBuf>,
    /// Shipped scenario to load by name, after the --fixtures files
    /// (repeatable; env: comma-separated; list: `aymara-mock scenarios`).
    #[arg(
        long = "scenario",
        env = "AYMARA_MOCK_SCENARIO",
        value_name = "NAME",
        value_delimiter = ',',
        value_parser = parse_scenario
    )]
    scenarios: Vec<&'static Scenario>,
    /// Reload fixtures when they change.
    #[arg(long, env = "AYMARA_MOCK_WATCH")]
    watch: bool,
    /// Accept only these x-api-key values (repeatable; env: comma-separated).
    #[arg(
        long = "api-key",
        env = "AYMARA_MOCK_API_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    api_keys: Vec<String>,
    /// Accept only these bearer tokens (repeatable; env: comma-separated).
    #[arg(
        long = "bearer-token",
        env = "AYMARA_MOCK_BEARER_TOKENS",
        value_name = "TOKEN",
        value_delimiter = ','
    )]
    bearer_tokens: Vec<String>,
    /// Check no credentials.
    #[arg(long, env = "AYMARA_MOCK_NO_AUTH", conflicts_with_all = ["api_keys", "bearer_tokens"])]
    no_auth: bool,
    /// Largest file accepted, e.g. 512MiB (413 beyond it).
    #[arg(
        long,
        env = "AYMARA_MOCK_MAX_UPLOAD_SIZE",
        default_value_t = defaults::MAX_UPLOAD_SIZE,
        value_name = "SIZE"
    )]
    max_upload_size: ByteSize,
    /// Quota over all stored files, e.g. 1GiB (500 beyond it).
    #[arg(long, env = "AYMARA_MOCK_MAX_STORAGE", value_name = "SIZE")]
    max_storage: Option<ByteSize>,
    /// Seed of the RNG behind rule probabilities (default: random, logged at start).
    #[arg(long, env = "AYMARA_MOCK_SEED")]
    seed: Option<u64>,
    /// Base URL used in file_url (default: the URL listened on); its host is
    /// also accepted as `Host` by the admin API.
    #[arg(long, env = "AYMARA_MOCK_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Bucket name used in remote_uri (with --storage, its bucket is used).
    #[arg(
        long,
        env = "AYMARA_MOCK_BUCKET",
        default_value = defaults::BUCKET,
        conflicts_with = "storage"
    )]
    bucket: String,
    /// Requests kept in the journal (oldest dropped).
    #[arg(
        long,
        env = "AYMARA_MOCK_JOURNAL_SIZE",
        default_value_t = defaults::JOURNAL_SIZE,
        value_name = "N"
    )]
    journal_size: usize,
    /// Bytes the journal may hold, e.g. 64MiB (oldest dropped; each header value is cut at 8 KiB).
    #[arg(
        long,
        env = "AYMARA_MOCK_JOURNAL_BYTES",
        default_value_t = defaults::JOURNAL_BYTES,
        value_name = "SIZE",
        value_parser = parse_journal_bytes
    )]
    journal_bytes: ByteSize,
    /// Require `Authorization: Bearer TOKEN` on the admin API (which then
    /// accepts any `Host` name).
    #[arg(long, env = "AYMARA_MOCK_ADMIN_TOKEN", value_name = "TOKEN")]
    admin_token: Option<String>,
    /// Also write the listening URL to this file once ready.
    #[arg(long, env = "AYMARA_MOCK_READY_FILE", value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        env = "AYMARA_MOCK_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(
        long,
        env = "AYMARA_MOCK_LOG_LEVEL",
        default_value = "info",
        value_name = "LEVEL"
    )]
    log_level: String,
    /// How long shutdown waits for in-flight requests, e.g. 10s, 500ms.
    #[arg(long, env = "AYMARA_MOCK_SHUTDOWN_TIMEOUT", default_value_t = defaults::SHUTDOWN_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    shutdown_timeout: humantime::Duration,
    /// How long a client may take to send its request headers.
    #[arg(long, env = "AYMARA_MOCK_HEADER_READ_TIMEOUT", default_value_t = defaults::HEADER_READ_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    header_read_timeout: humantime::Duration,
    /// How long an upload body may stall before it is aborted.
    #[arg(long, env = "AYMARA_MOCK_BODY_TIMEOUT", default_value_t = defaults::BODY_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    body_timeout: humantime::Duration,
    /// At most this many connections at once.
    #[arg(long, env = "AYMARA_MOCK_MAX_CONNECTIONS", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// How long the presigned upload URLs of POST /v2/files stay valid (at most 7 days).
    #[arg(long, env = "AYMARA_MOCK_PRESIGN_EXPIRY", default_value_t = defaults::PRESIGN_EXPIRY.into(), value_parser = parse_duration, value_name = "DURATION")]
    presign_expiry: humantime::Duration,
    /// Sign presigned upload URLs with this secret (default: a random key per
    /// process), so that replicas accept each other's URLs.
    #[arg(
        long,
        env = "AYMARA_MOCK_PRESIGN_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    presign_secret: Option<String>,
    /// How long a video takes from stored to "completed" in the files API
    /// (pending for the first third, then processing; 0s: at once).
    #[arg(long, env = "AYMARA_MOCK_VIDEO_PROCESSING_TIME", default_value_t = defaults::VIDEO_PROCESSING_TIME.into(), value_parser = parse_duration, value_name = "DURATION")]
    video_processing_time: humantime::Duration,
    /// organization_uuid of every file in the files API.
    #[arg(long, env = "AYMARA_MOCK_ORGANIZATION_UUID", default_value = defaults::ORGANIZATION_UUID, value_name = "UUID")]
    organization_uuid: String,
    /// uploaded_by_uuid of every file in the files API.
    #[arg(long, env = "AYMARA_MOCK_USER_UUID", default_value = defaults::USER_UUID, value_name = "UUID")]
    user_uuid: String,
    /// Fetch remote_uri files from this host too, besides loopback (repeatable).
    #[arg(
        long = "allow-remote-host",
        env = "AYMARA_MOCK_ALLOW_REMOTE_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    allow_remote_hosts: Vec<String>,
    /// Most remote_uri fetches running at once; the others wait their turn
    /// (one request runs at most 4 of its own at once).
    #[arg(long, env = "AYMARA_MOCK_MAX_REMOTE_FETCHES", default_value_t = defaults::MAX_REMOTE_FETCHES, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u64).range(1..), |n| usize::try_from(n).unwrap_or(usize::MAX)))]
    max_remote_fetches: usize,
    /// The longest one remote_uri fetch may take, connecting to its last
    /// byte; past it the file is "failed".
    #[arg(long, env = "AYMARA_MOCK_REMOTE_FETCH_TIMEOUT", default_value_t = defaults::REMOTE_FETCH_TIMEOUT.into(), value_parser = parse_duration, value_name = "DURATION")]
    remote_fetch_timeout: humantime::Duration,
    /// Most files announced by POST /v2/files and not stored yet (429 past it).
    #[arg(long, env = "AYMARA_MOCK_MAX_PENDING_FILES", default_value_t = defaults::MAX_PENDING_FILES, value_name = "N")]
    max_pending_files: usize,
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
        value_parser = crate::check_cors_origin
    )]
    cors_origins: Vec<String>,
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
/// or a plain number of seconds (`2`, `0.5`), up to [`MAX_DURATION`](crate::MAX_DURATION).
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
    if duration > crate::config::MAX_DURATION {
        return Err(format!(
            "{input:?} is longer than the longest duration accepted, 7 days ({}s)",
            crate::config::MAX_DURATION.as_secs()
        ));
    }
    Ok(duration.into())
}

/// Runs the command line; the exit code is 2 for bad flags or fixtures.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Check { paths }) => check(&paths),
        Some(Command::Schema) => {
            println!("{}", crate::FIXTURE_SCHEMA.trim_end());
            ExitCode::SUCCESS
        }
        Some(Command::Scenarios) => {
            list_scenarios();
            ExitCode::SUCCESS
        }
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Health(args)) => check_health(&args),
        None => serve(cli.serve),
    }
}

/// `aymara-mock scenarios`: one line each, name then what it does.
fn list_scenarios() {
    let width = Scenario::all()
        .iter()
        .map(|s| s.name().len())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for scenario in Scenario::all() {
        let _ = writeln!(out, "{:width$}  {}", scenario.name(), scenario.summary());
    }
    let _ = out.flush();
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let check = crate::check_fixtures(paths);
    for err in &check.path_errors {
        eprintln!("{err}");
    }
    for (file, result) in &check.files {
        match result {
            Ok(rules) => println!("{}: ok ({rules} rules)", file.display()),
            Err(err) => eprintln!("{err}"),
        }
    }
    if let Some(err) = &check.across_files {
        eprintln!("{err}");
    }
    if check.is_valid() {
        println!(
            "{} files, {} rules: all valid",
            check.files.len(),
            check.rule_count()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `health`: one line saying healthy (stdout, exit 0) or why not (stderr,
/// exit 1); a URL that cannot be asked at all is a usage error (exit 2).
fn check_health(args: &HealthArgs) -> ExitCode {
    let given = args
        .url
        .clone()
        .unwrap_or_else(|| health::default_url(&args.host, args.port));
    let url = match health::health_url(&given) {
        Ok(url) => url,
        Err(err) => {
            eprintln!("aymara-mock health: {err}");
            return ExitCode::from(2);
        }
    };
    match health::probe(&url, args.timeout.into()) {
        Ok(()) => {
            println!("aymara-mock at {url}: healthy");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("aymara-mock health: {url}: unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => {
            EnvFilter::try_new(env).map_err(|e| format!("invalid RUST_LOG: {e}"))?
        }
        _ => {
            EnvFilter::try_new(level).map_err(|e| format!("invalid --log-level {level:?}: {e}"))?
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| e.to_string())
}

fn serve(args: ServeArgs) -> ExitCode {
    if let Err(err) = init_logging(args.log_format, &args.log_level) {
        eprintln!("aymara-mock: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("aymara-mock: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve_async(args))
}

async fn serve_async(args: ServeArgs) -> ExitCode {
    let mut builder = MockServer::builder()
        .host(args.host)
        .port(args.port)
        .keep_files(args.keep_files)
        .watch(args.watch)
        .no_auth(args.no_auth)
        .max_upload_size(args.max_upload_size)
        .bucket(args.bucket)
        .journal_size(args.journal_size)
        .journal_bytes(args.journal_bytes)
        .shutdown_timeout(args.shutdown_timeout.into())
        .header_read_timeout(args.header_read_timeout.into())
        .body_timeout(args.body_timeout.into())
        .presign_expiry(args.presign_expiry.into())
        .video_processing_time(args.video_processing_time.into())
        .max_remote_fetches(args.max_remote_fetches)
        .remote_fetch_timeout(args.remote_fetch_timeout.into())
        .max_pending_files(args.max_pending_files)
        .owner(args.organization_uuid, args.user_uuid);
    for host in args.allow_remote_hosts {
        builder = builder.allow_remote_host(host);
    }
    for origin in args.cors_origins {
        builder = builder.cors_origin(origin);
    }
    if let Some(secret) = args.presign_secret {
        builder = builder.presign_secret(secret);
    }
    if let Some(dir) = args.storage_dir {
        builder = builder.storage_dir(dir);
    }
    #[cfg(feature = "s3")]
    if let Some(mut config) = args.storage {
        if let Some(endpoint) = args.s3_endpoint {
            config = config.endpoint(endpoint);
        }
        builder = builder.s3(config);
    }
    #[cfg(not(feature = "s3"))]
    if let Some(config) = args.storage {
        match config {}
    }
    for path in &args.fixtures {
        builder = match builder.fixtures(path) {
            Ok(b) => b,
            Err(err) => {
                eprintln!("aymara-mock: {err}");
                return ExitCode::from(2);
            }
        };
    }
    // After the files: a user's own rules are more specific than a
    // shipped scenario, and the first rule that holds decides.
    for scenario in args.scenarios {
        builder = match builder.scenario(scenario.name()) {
            Ok(b) => b,
            Err(err) => {
                eprintln!("aymara-mock: {err}");
                return ExitCode::from(2);
            }
        };
    }
    for key in args.api_keys.into_iter().filter(|k| !k.is_empty()) {
        builder = builder.api_key(key);
    }
    for token in args.bearer_tokens.into_iter().filter(|t| !t.is_empty()) {
        builder = builder.bearer_token(token);
    }
    if let Some(size) = args.max_storage {
        builder = builder.max_storage(size);
    }
    if let Some(seed) = args.seed {
        builder = builder.seed(seed);
    }
    if let Some(url) = args.public_url {
        builder = builder.public_url(url);
    }
    if let Some(token) = args.admin_token {
        builder = builder.admin_token(token);
    }
    if let Some(max) = args.max_connections {
        builder = builder.max_connections(usize::try_from(max).unwrap_or(usize::MAX));
    }
    let server = match builder.start().await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("aymara-mock: {err}");
            return match err {
                StartError::Fixture(_) | StartError::Config(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            };
        }
    };
    // The ready file first, so that it exists by the time the line is read.
    if let Some(path) = &args.ready_file {
        if let Err(err) = write_ready_file(path, server.url()) {
            eprintln!(
                "aymara-mock: cannot write --ready-file {}: {err}",
                path.display()
            );
            server.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    // The sidecar contract: exactly one line on stdout, once listening.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "aymara-mock listening on {}", server.url());
    let _ = stdout.flush();
    drop(stdout);
    let signal = wait_for_signal().await;
    tracing::info!(signal, "shutting down");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Writes the URL to a temp file beside `path`, then renames it into place,
/// so a harness polling for the file never reads it half-written.
fn write_ready_file(path: &Path, url: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{url}")?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
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
        assert_eq!(parse("10080m"), Ok(crate::config::MAX_DURATION));
        assert_eq!(parse("7days"), Ok(crate::config::MAX_DURATION));
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
