//! `--watch`: fixture files are polled for changes and reloaded. A broken edit
//! is reported and the rules in force stay.
//!
//! Polling (every 250 ms) rather than OS notifications: it needs no extra
//! dependency, works on every file system (including bind mounts and network
//! shares, where notifications are unreliable), and a fixture set is small.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::loading;
use crate::server::state::AppState;

const POLL: Duration = Duration::from_millis(250);

type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64)>;

fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    let mut out = Vec::new();
    for path in paths {
        let files = loading::expand(path).unwrap_or_else(|_| vec![path.clone()]);
        for file in files {
            let meta = std::fs::metadata(&file).ok();
            out.push((
                file,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
            ));
        }
    }
    out
}

pub(crate) async fn watch(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let paths = state.rules.fixture_paths().to_vec();
    let mut last = fingerprint(&paths);
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.changed() => return,
        }
        let now = fingerprint(&paths);
        if now == last {
            continue;
        }
        last = now;
        match loading::load_paths(&paths).and_then(|files| {
            let count: usize = files.iter().map(|f| f.rules.len()).sum();
            state.rules.replace_fixtures(files).map(|()| count)
        }) {
            Ok(count) => tracing::info!(rules = count, "fixtures reloaded"),
            Err(err) => {
                tracing::error!("fixture reload failed, previous rules stay in force: {err}")
            }
        }
    }
}
