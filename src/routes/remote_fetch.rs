//! `remote_uri` entries of `POST /v2/files`: the emulator GETs the URL in
//! the background and streams the answer to storage through the same
//! pipeline as an upload (`ingest`: limits, SHA-256, atomic visibility), so
//! the file goes `pending` → `completed`, or `failed` with an
//! `error_message` that says why. It fetches only plain `http://` URLs from
//! the allowed hosts (`--allow-remote-host`; default loopback only), follows
//! no redirects, never its own address, and so never becomes an open proxy.
//! Fetches are bounded (`files::fetches`): so many at once in all and per
//! request, the rest queued; each within a total deadline; each cancelled
//! by its file's `DELETE`, by a reset and by shutdown (which marks it
//! `failed`). Spawned by `files_api`'s create.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::Uri;
use http_body_util::BodyExt;

use crate::files::fetches::{Cancelled, Ticket};
use crate::files::ingest::{self, Failure, Source};
use crate::request::body::{BodyControl, BodyError, BodyFailure};
use crate::request::multipart::MultipartError;
use crate::state::AppState;
use crate::storage::Target;

/// How long connecting and the answer's head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The header every fetch carries, so that an aymara-mock's admin API (this
/// one's, or another's on the same machine) refuses to answer it: a fetch
/// must never copy the journal or the rules into a file anyone can download.
pub(crate) const FETCH_MARKER: &str = "x-aymara-mock-fetch";

/// A `remote_uri` as it will be fetched, checked when its file is announced.
#[derive(Debug, Clone)]
pub(crate) struct RemoteUrl {
    /// Lowercase, without brackets.
    host: String,
    port: u16,
    /// The `Host` header: the host as written (brackets kept) and the port
    /// if one was given; never a `user:password@`.
    authority: String,
    path_and_query: String,
}

/// The URL to fetch, or why it is not fetched at all.
pub(crate) fn check(uri: &str, allowed: &[String]) -> Result<RemoteUrl, String> {
    let not = |why: String| format!("aymara-mock did not fetch {uri}: {why}");
    let parsed: Uri = uri
        .parse()
        .map_err(|_| not("it is not a URL.".to_owned()))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some(scheme) => {
            return Err(not(format!(
                "it fetches plain http:// URLs only, not {scheme}:// (it works offline; serve the file locally, or upload it with a local_file_path entry)."
            )))
        }
        None => return Err(not("it is not an http:// URL.".to_owned())),
    }
    let written = parsed.authority().map(|a| a.as_str()).unwrap_or_default();
    if written.contains('@') {
        return Err(not(
            "it names credentials (user:password@), which aymara-mock never sends: remove them from the URL.".to_owned(),
        ));
    }
    let (host, port) = crate::same_origin::split_authority(written)
        .filter(|(host, _)| valid_host(host))
        .ok_or_else(|| not(format!("{written:?} is not a valid host[:port].")))?;
    let port = match port {
        None => 80,
        Some(0) => return Err(not("port 0 is not a port to connect to.".to_owned())),
        Some(port) => port,
    };
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        return Err(not(format!(
            "host {host:?} is not allowed (it fetches from {} only; allow more with --allow-remote-host). Offline, most remote files cannot be fetched anyway: upload the bytes with a local_file_path entry instead.",
            allowed.join(", ")
        )));
    }
    Ok(RemoteUrl {
        host,
        port,
        authority: written.to_owned(),
        path_and_query: parsed
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
    })
}

/// A host as it may be connected to: an IPv6 literal (it was bracketed), or
/// a name or IPv4 address of letters, digits, `-`, `_` and `.`.
fn valid_host(host: &str) -> bool {
    if host.contains(':') {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether a connection to `peer` (from `local`) reached this server itself
/// (listening on `bound`): a fetch of its own URLs would copy its own files
/// into new ones as fast as the disk allows, or its admin API's answers.
fn is_own_address(peer: SocketAddr, local: SocketAddr, bound: SocketAddr) -> bool {
    let peer_ip = peer.ip().to_canonical();
    let bound_ip = bound.ip().to_canonical();
    peer.port() == bound.port()
        && (peer_ip == bound_ip
            || (bound_ip.is_unspecified()
                && (peer_ip.is_loopback() || peer_ip == local.ip().to_canonical())))
}

/// One `remote_uri` file to fetch.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) url: RemoteUrl,
    /// As the client wrote it, for messages.
    pub(crate) uri: String,
    pub(crate) target: Target,
    /// Whether the client gave the content type (else the answer's is kept).
    pub(crate) typed: bool,
    pub(crate) ticket: Ticket,
}

/// Fetches the files of one request in the background: at most the
/// per-request number at once, each within the global bound
/// (`--max-remote-fetches`) and the fetch timeout; the rest wait in turn.
pub(crate) fn spawn_all(state: &Arc<AppState>, jobs: Vec<Job>) {
    if jobs.is_empty() {
        return;
    }
    let state = Arc::clone(state);
    tokio::spawn(async move {
        let per_request = state.fetches.per_request;
        futures_util::stream::iter(jobs)
            .for_each_concurrent(per_request, |job| run(&state, job))
            .await;
    });
}

/// Fetches one file, unless it is cancelled first, then marks it stored or
/// failed.
async fn run(state: &Arc<AppState>, job: Job) {
    let Job {
        url,
        uri,
        mut target,
        typed,
        ticket,
    } = job;
    let timeout = state.fetches.timeout;
    let work = async {
        let Some(_permit) = ticket.permit().await else {
            return Err("the server is stopping".to_owned());
        };
        match tokio::time::timeout(timeout, fetch_into(state, &url, &mut target, typed)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "it did not finish within {} (--remote-fetch-timeout)",
                humantime::format_duration(timeout)
            )),
        }
    };
    // A cancelled fetch stops where it is: its socket closed, its partial
    // file removed (dropping the pipeline removes it).
    let result = tokio::select! {
        result = work => result,
        _ = ticket.cancelled() => return,
    };
    settle(state, &uri, &target, result, &ticket).await;
    // Its outcome, for the other replicas (with a shared state store).
    state.flush_events().await;
}

/// Stores or fails the fetched file, under its lock, so that a `DELETE`
/// is wholly before (the file stays deleted) or wholly after (it deletes it).
async fn settle(
    state: &AppState,
    uri: &str,
    target: &Target,
    result: Result<crate::storage::FinishedFile, String>,
    ticket: &Ticket,
) {
    let _one_at_a_time = state.file_locks.lock(&target.file_uuid).await;
    let gone = ticket.is_cancelled().is_some()
        || state.catalog.is_deleted(&target.file_uuid)
        || state.catalog.get(&target.file_uuid).is_none();
    if gone {
        // Deleted (or reset) while it was fetched: keep nothing.
        if let Ok(file) = result {
            file.discard().await;
        }
        return;
    }
    match result {
        Ok(file) => match super::store::keep(state, file, true, None).await {
            Ok(stored) => {
                tracing::info!(%uri, file_uuid = %stored.file_uuid, bytes = stored.size, "fetched remote_uri");
            }
            Err(err) => state.failed(
                target.file_uuid.clone(),
                format!("aymara-mock fetched {uri} but could not store it: {err}."),
            ),
        },
        Err(why) => {
            tracing::info!(%uri, file_uuid = %target.file_uuid, %why, "remote_uri not fetched");
            state.failed(
                target.file_uuid.clone(),
                format!("aymara-mock could not fetch {uri}: {why}."),
            );
        }
    }
}

/// Ends every fetch for a shutdown: each is marked `failed`, saying so.
pub(crate) fn stop_all(state: &AppState) {
    for file_uuid in state.fetches.cancel_all(Cancelled::Shutdown) {
        let uri = state
            .catalog
            .get(&file_uuid)
            .and_then(|e| e.original)
            .unwrap_or_default();
        state
            .catalog
            .failed(&file_uuid, crate::files::fetches::cut_short(&uri));
    }
}

/// Aborts a spawned task when dropped: the connection of a fetch that is
/// cancelled or times out is closed with it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The answer's body as a file's bytes, each chunk within `timeout`.
struct Fetched<S> {
    inner: S,
    timeout: Duration,
    why: Option<String>,
}

impl<S> Source for Fetched<S>
where
    S: Stream<Item = Result<Bytes, hyper::Error>> + Unpin,
{
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        match tokio::time::timeout(self.timeout, self.inner.next()).await {
            Ok(None) => Ok(None),
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(Some(Err(err))) => {
                self.why = Some(format!("the answer's body broke off ({err})"));
                Err(MultipartError::Body(BodyError(BodyFailure::Client)))
            }
            Err(_) => {
                self.why = Some(format!(
                    "no data arrived for {} s (--body-timeout)",
                    self.timeout.as_secs()
                ));
                Err(MultipartError::Body(BodyError(BodyFailure::Timeout)))
            }
        }
    }
}

async fn fetch_into(
    state: &AppState,
    url: &RemoteUrl,
    target: &mut Target,
    typed: bool,
) -> Result<crate::storage::FinishedFile, String> {
    let RemoteUrl { host, port, .. } = url;
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), *port)),
    )
    .await
    .map_err(|_| format!("connecting to {host}:{port} timed out"))?
    .map_err(|err| format!("could not connect to {host}:{port} ({err})"))?;
    if let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) {
        if is_own_address(peer, local, state.settings.addr) {
            return Err(format!(
                "{host}:{port} is this aymara-mock itself, which never fetches its own URLs (a file of its own: use its file_url; a copy: upload the bytes)"
            ));
        }
    }
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|err| format!("the HTTP handshake failed ({err})"))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = http::Request::get(url.path_and_query.as_str())
        .header(http::header::HOST, url.authority.as_str())
        .header(http::header::USER_AGENT, "aymara-mock (remote_uri fetch)")
        .header(FETCH_MARKER, "1")
        .body(http_body_util::Empty::<Bytes>::new())
        .map_err(|err| format!("the request could not be built ({err})"))?;
    let response = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| "no answer arrived in time".to_owned())?
        .map_err(|err| format!("the request failed ({err})"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "it answered {}{}",
            status.as_u16(),
            if status.is_redirection() {
                " (redirects are not followed)"
            } else {
                ""
            }
        ));
    }
    if !typed {
        if let Some(ct) = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
        {
            target.content_type = ct.trim().to_owned();
        }
    }
    let mut source = Fetched {
        inner: response.into_body().into_data_stream(),
        timeout: state.settings.body_timeout,
        why: None,
    };
    let max = state.settings.max_upload_size;
    let ctl = BodyControl::new();
    match ingest::receive(
        &state.storage,
        &mut source,
        target.clone(),
        max,
        &ctl,
        &mut 0,
    )
    .await
    {
        Ok(file) => Ok(file),
        Err(failure) => Err(source.why.take().unwrap_or_else(|| match failure {
            Failure::Refused { error, .. } => error.message,
            Failure::Reset | Failure::ClientGone => "the connection was closed".to_owned(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_to_the_servers_own_address_is_recognized() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        let bound = at("127.0.0.1:8000");
        assert!(is_own_address(
            at("127.0.0.1:8000"),
            at("127.0.0.1:5000"),
            bound
        ));
        assert!(!is_own_address(
            at("127.0.0.1:8001"),
            at("127.0.0.1:5000"),
            bound
        ));
        let any = at("0.0.0.0:8000");
        assert!(is_own_address(
            at("127.0.0.1:8000"),
            at("127.0.0.1:5000"),
            any
        ));
        assert!(is_own_address(
            at("10.1.2.3:8000"),
            at("10.1.2.3:5000"),
            any
        ));
        assert!(!is_own_address(
            at("10.1.2.4:8000"),
            at("10.1.2.3:5000"),
            any
        ));
        let v6 = at("[::]:8000");
        assert!(is_own_address(
            at("[::ffff:127.0.0.1]:8000"),
            at("[::1]:1"),
            v6
        ));
    }

    fn loopback() -> Vec<String> {
        crate::config::Config::default().remote_hosts
    }

    #[test]
    fn only_plain_http_urls_of_allowed_hosts_are_fetched() {
        let allowed = loopback();
        for ok in [
            "http://127.0.0.1:8080/a.mp4",
            "http://localhost/x?y=1",
            "http://[::1]:9/f",
            "http://LOCALHOST/f",
        ] {
            assert_eq!(check(ok, &allowed).err(), None, "{ok}");
        }
        for (bad, says) in [
            ("https://127.0.0.1/a", "plain http://"),
            ("http://example.com/a.mp4", "not allowed"),
            ("http://10.0.0.1/a", "--allow-remote-host"),
            ("ftp://localhost/a", "not ftp://"),
            ("not a url at all", "not"),
            ("/relative/path", "not an http:// URL"),
        ] {
            let why = check(bad, &allowed)
                .err()
                .unwrap_or_else(|| panic!("{bad} allowed"));
            assert!(why.contains(says), "{bad}: {why}");
        }
        // Ports out of range, junk after a bracketed address, credentials:
        // refused, never fetched from port 80 or sent in `Host`.
        for (bad, says) in [
            ("http://127.0.0.1:99999/a", "not a valid host"),
            ("http://127.0.0.1:65536/a", "not a valid host"),
            ("http://127.0.0.1:0/a", "port 0"),
            ("http://[::1]evil.example/a", "not"),
            ("http://[::1]:80evil/a", "not"),
            ("http://user:pw@127.0.0.1:9/a", "credentials"),
            ("http://127.0.0.1@evil.example/a", "credentials"),
        ] {
            let why = check(bad, &allowed)
                .err()
                .unwrap_or_else(|| panic!("{bad} allowed"));
            assert!(why.contains(says), "{bad}: {why}");
        }
        let url = check("http://[::1]:8080/a?b=1", &allowed).unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert_eq!(url.authority, "[::1]:8080");
        assert_eq!(url.path_and_query, "/a?b=1");
        assert_eq!(check("http://localhost/x", &allowed).unwrap().port, 80);
        let more = vec!["files.internal".to_owned()];
        assert_eq!(check("http://files.internal/a", &more).err(), None);
    }
}
