//! `--watch`: fixture files are polled for changes and reloaded. A broken edit
//! is reported and the rules in force stay.
//!
//! Polling (every 250 ms) rather than OS notifications: it needs no extra
//! dependency, works on every file system (including bind mounts and network
//! shares, where notifications are unreliable), and a fixture set is small.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::loading;

const POLL: Duration = Duration::from_millis(250);

/// What a fixture file looks like on disk: (path, mtime, size, hash of the
/// content). The content hash catches an edit that keeps both the size and the
/// mtime (`cp -p`, `rsync -t`, or two writes within one tick of a coarse
/// file-system clock); fixture files are small, so reading them is cheap.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64, Option<u64>)>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for path in paths {
        let files = loading::expand(path).unwrap_or_else(|_| vec![path.clone()]);
        for file in files {
            let meta = std::fs::metadata(&file).ok();
            let content = loading::read_fixture_bytes(&file).ok().map(|bytes| {
                let mut hasher = DefaultHasher::new();
                bytes.hash(&mut hasher);
                hasher.finish()
            });
            out.push((
                file,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
                content,
            ));
        }
    }
    out
}

/// Polls the fixtures until `stop` changes.
///
/// The first fingerprint is taken now, when the watch is set up, not when the
/// returned task first runs: an edit made right after the server started
/// (before the runtime got round to the task) would otherwise be taken as the
/// starting point and never reloaded.
pub(crate) fn watch(
    rules: Arc<super::RuleEngine>,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    let paths = rules.fixture_paths();
    let sources = rules.sources().to_vec();
    let mut last = fingerprint(&paths);
    async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
            // File I/O on a blocking thread: a slow disk (or a file that
            // never ends) must not hold an async worker, which serves requests.
            let (paths_now, previous) = (paths.clone(), last.clone());
            let sources_now = sources.clone();
            let rules_now = Arc::clone(&rules);
            let polled = tokio::task::spawn_blocking(move || {
                let now = fingerprint(&paths_now);
                if now == previous {
                    return (now, None);
                }
                // Every source again, the scenarios in their place.
                let reloaded = loading::load_sources(&sources_now).and_then(|files| {
                    let count: usize = files.iter().map(|f| f.rules.len()).sum();
                    rules_now.replace_fixtures(files).map(|()| count)
                });
                (now, Some(reloaded))
            });
            let Ok((now, reloaded)) = polled.await else {
                continue;
            };
            last = now;
            match reloaded {
                None => {}
                Some(Ok(count)) => tracing::info!(rules = count, "fixtures reloaded"),
                Some(Err(err)) => {
                    tracing::error!("fixture reload failed, previous rules stay in force: {err}")
                }
            }
        }
    }
}
