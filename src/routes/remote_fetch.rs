//! `remote_uri` entries of `POST /v2/files`: the emulator GETs the URL in
//! the background and streams the answer to storage through the same
//! pipeline as an upload (`ingest`: limits, SHA-256, atomic visibility), so
//! the file goes `pending` → `completed`, or `failed` with an
//! `error_message` that says why. It fetches only plain `http://` URLs from
//! the allowed hosts (`--allow-remote-host`; default loopback only), follows
//! no redirects, and so never becomes an open proxy. Spawned by
//! `files_api`'s create, as a request it serves itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::Uri;
use http_body_util::BodyExt;

use crate::files::ingest::{self, Failure, Source};
use crate::state::AppState;
use crate::storage::Target;
use crate::upload::body::{BodyControl, BodyError, BodyFailure};
use crate::upload::multipart::MultipartError;

/// How long connecting and the answer's head may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a URL is not fetched at all, checked when the file is created.
pub(crate) fn refuse(uri: &str, allowed: &[String]) -> Option<String> {
    let parsed: Uri = match uri.parse() {
        Ok(parsed) => parsed,
        Err(_) => return Some(format!("aymara-mock did not fetch {uri}: it is not a URL.")),
    };
    match parsed.scheme_str() {
        Some("http") => {}
        Some(scheme) => {
            return Some(format!(
                "aymara-mock did not fetch {uri}: it fetches plain http:// URLs only, not {scheme}:// (it works offline; serve the file locally, or upload it with a local_file_path entry)."
            ))
        }
        None => return Some(format!("aymara-mock did not fetch {uri}: it is not an http:// URL.")),
    }
    let host = parsed
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        return Some(format!(
            "aymara-mock did not fetch {uri}: host {host:?} is not allowed (it fetches from {} only; allow more with --allow-remote-host). Offline, most remote files cannot be fetched anyway: upload the bytes with a local_file_path entry instead.",
            allowed.join(", ")
        ));
    }
    None
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

/// Fetches `uri` (allowed by [`refuse`]) into storage as `target`, then
/// marks the file stored or failed. Runs as its own task.
pub(crate) async fn fetch(state: Arc<AppState>, uri: String, mut target: Target, typed: bool) {
    let result = fetch_into(&state, &uri, &mut target, typed).await;
    if state.catalog.is_deleted(&target.file_uuid) || state.catalog.get(&target.file_uuid).is_none()
    {
        // Deleted (or reset) while it was fetched: keep nothing.
        if let Ok(file) = result {
            file.discard().await;
        }
        return;
    }
    match result {
        Ok(file) => {
            let record = file.record();
            let mut stored = state.upload_of(&record);
            match state.storage.commit(file, &stored).await {
                Ok(()) => {
                    state.catalog.stored(&record, None);
                    stored.duplicate_of = state.files.insert(record);
                    tracing::info!(%uri, file_uuid = %stored.file_uuid, bytes = stored.size, "fetched remote_uri");
                }
                Err(err) => state.catalog.failed(
                    &target.file_uuid,
                    format!("aymara-mock fetched {uri} but could not store it: {err}."),
                ),
            }
        }
        Err(why) => {
            tracing::info!(%uri, file_uuid = %target.file_uuid, %why, "remote_uri not fetched");
            state.catalog.failed(
                &target.file_uuid,
                format!("aymara-mock could not fetch {uri}: {why}."),
            );
        }
    }
}

async fn fetch_into(
    state: &AppState,
    uri: &str,
    target: &mut Target,
    typed: bool,
) -> Result<crate::storage::FinishedFile, String> {
    let parsed: Uri = uri.parse().map_err(|_| "it is not a URL".to_owned())?;
    let host = parsed.host().unwrap_or_default().to_owned();
    let port = parsed.port_u16().unwrap_or(80);
    let connect_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((connect_host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("connecting to {host}:{port} timed out"))?
    .map_err(|err| format!("could not connect to {host}:{port} ({err})"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|err| format!("the HTTP handshake failed ({err})"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = parsed
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or(host);
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let request = http::Request::get(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "aymara-mock (remote_uri fetch)")
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
            assert_eq!(refuse(ok, &allowed), None, "{ok}");
        }
        for (bad, says) in [
            ("https://127.0.0.1/a", "plain http://"),
            ("http://example.com/a.mp4", "not allowed"),
            ("http://10.0.0.1/a", "--allow-remote-host"),
            ("ftp://localhost/a", "not ftp://"),
            ("not a url at all", "not"),
            ("/relative/path", "not an http:// URL"),
        ] {
            let why = refuse(bad, &allowed).unwrap_or_else(|| panic!("{bad} allowed"));
            assert!(why.contains(says), "{bad}: {why}");
        }
        let more = vec!["files.internal".to_owned()];
        assert_eq!(refuse("http://files.internal/a", &more), None);
    }
}
