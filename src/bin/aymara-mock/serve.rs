//! `aymara-mock serve` (the default): log set-up, the server built from the
//! flags, the listening line and `--ready-file`, and shutdown on a signal.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use aymara_mock::{MockServer, StartError};

use crate::cli::{LogFormat, ServeArgs};

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

/// Serves until SIGTERM or SIGINT; exit 2 for bad flags or fixtures.
pub(crate) fn serve(args: ServeArgs) -> ExitCode {
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
    #[cfg(feature = "redis")]
    if let Some(url) = args.state {
        builder = builder.state(url).state_prefix(args.state_prefix);
        if let Some(id) = args.replica_id {
            builder = builder.replica_id(id);
        }
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
    // mimalloc gives freed memory back only when called: once a burst
    // ends, an idle server would keep it (crate::COLLECT_IDLE).
    let collector = tokio::spawn(async {
        let mut tick = tokio::time::interval(crate::COLLECT_IDLE);
        loop {
            tick.tick().await;
            crate::collect();
        }
    });
    let signal = wait_for_signal().await;
    collector.abort();
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
