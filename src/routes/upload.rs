//! The upload endpoint, `POST /v2/files/-/uploads`: the multipart body is
//! streamed part by part to storage (`files::ingest`), and fault rules are
//! decided at each phase (request → upload → complete) as the facts they
//! need become known, and carried out by the one applier (`super::apply`).

use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::answer::{Answer, Exchange, Finish};
use super::apply::{self, Step};
use super::store;
use crate::error::ApiError;
use crate::files::ingest;
use crate::files::FileStatus;
use crate::journal::FileSeen;
use crate::request::multipart::{self, Multipart};
use crate::request::name::{self, SafeFileName};
use crate::rules::model::{Phase, RouteName};
use crate::rules::Decision;
use crate::state::AppState;
use crate::storage::{FinishedFile, StoredUpload, Target};

/// Slack over `--max-upload-size` for the multipart framing and other parts.
pub(crate) const FRAMING_ALLOWANCE: u64 = 1024 * 1024;

/// The 200 answer, its fields in the real API's order: the upstream page's
/// four (`local_file_path`, `file_uuid`, `file_url`, `remote_file_path`), then
/// the three the SDK also reads.
#[derive(Debug, Serialize)]
struct UploadAnswer<'a> {
    local_file_path: Option<String>,
    file_uuid: &'a str,
    file_url: &'a str,
    remote_file_path: &'a str,
    content_type: &'a str,
    processing_status: &'static str,
    remote_uri: &'a str,
}

/// The file part being (or having been) received.
struct Received {
    /// The name exactly as sent, for rule matching.
    raw_filename: String,
    /// Stored under the safe name, with the part's content type.
    file: FinishedFile,
}

/// Receives one upload whose request phase has passed; the exchange holds
/// what the rules decided so far (`ex.effects`) and gathers what the
/// journal records.
pub(crate) async fn receive(request: store::Incoming<'_>) -> Result<Answer, Finish> {
    let (state, parts, body, ctl, ex) = request.into_parts();
    let query = ex.query.clone();
    let headers = &parts.headers;
    let rules_apply = ex.effects.rules_apply;
    let boundary = boundary(headers)?;
    let max = state.settings.max_upload_size;
    if let Some(len) = crate::http_util::content_length(headers) {
        if len > max.saturating_add(FRAMING_ALLOWANCE) {
            return Err(Answer::error(ApiError::payload_too_large(max))
                .closing()
                .into());
        }
    }

    // Phases `upload` and `complete`: stream the parts.
    let received = {
        let mut multipart = Multipart::new(&mut *body, &boundary);
        let mut received: Option<Received> = None;
        loop {
            let part = match multipart.next_part().await {
                Ok(Some(part)) => part,
                Ok(None) => break,
                Err(err) => return Err(ingest::body_failure(ctl, max, &err).into()),
            };
            ctl.mark_progress();
            if received.is_some() || part.name().as_deref() != Some("file") {
                // Other parts, and a second `file` part, are read and dropped.
                loop {
                    match multipart.chunk().await {
                        Ok(Some(_)) => ctl.mark_progress(),
                        Ok(None) => break,
                        Err(err) => return Err(ingest::body_failure(ctl, max, &err).into()),
                    }
                }
                continue;
            }
            let raw_filename = name::disposition_filename(&part.headers).unwrap_or_default();
            let filename = SafeFileName::parse(&raw_filename);
            let content_type = part_content_type(&part.headers, filename.as_ref());
            // Journaled whatever happens next: a refused or cut upload's
            // only trace of which file it was.
            ex.file_seen = Some(FileSeen::new(&raw_filename, &content_type));
            if rules_apply {
                let part = Some((raw_filename.as_str(), content_type.as_str()));
                let decision = decide(state, parts, Phase::Upload, &query, part, None, ex).await?;
                if let Step::Stop(finish) = apply::apply(decision, ctl, ex, Phase::Upload) {
                    return Err(finish);
                }
            }
            let target = Target {
                file_uuid: crate::http_util::random_uuid().to_string(),
                name: filename.as_ref().to_owned(),
                workspace: workspace(&query).to_owned(),
                content_type: content_type.clone(),
            };
            let file = store::receive(state, &mut multipart, target, ctl, ex).await?;
            received = Some(Received { raw_filename, file });
        }
        received
    };
    // The closing boundary is not the end of the request: until the body has
    // its declared length (or its chunked terminator), the client may still be
    // cut off, and a cut request is never stored nor decided at `complete`.
    if let Err(failure) = ingest::read_to_end(body, ctl, max).await {
        if let Some(received) = received {
            received.file.discard().await;
        }
        return Err(failure.into());
    }
    let Some(received) = received else {
        return Err(ApiError::unprocessable(
            "file",
            "The multipart body has no `file` part: send the file in a part named \"file\".",
        )
        .into());
    };

    let decision = if rules_apply {
        let part = Some((
            received.raw_filename.as_str(),
            received.file.target().content_type.as_str(),
        ));
        let size = Some(received.file.size);
        match decide(state, parts, Phase::Complete, &query, part, size, ex).await {
            Ok(decision) => decision,
            Err(err) => {
                received.file.discard().await;
                return Err(err.into());
            }
        }
    } else {
        None
    };
    // Spelled out once, for the answer and the index alike.
    let record = received.file.record();
    let stored = state.upload_of(&record);
    let normal = answer(&stored);
    let keep = async |file: FinishedFile, ex: &mut Exchange| {
        let verdict = ex.effects.processing.take();
        let stored = store::keep_as(state, file, record, stored, false, verdict)
            .await
            .map_err(|err| ApiError::storage(&err))?;
        ex.upload = Some(stored);
        Ok(())
    };
    store::conclude(received.file, decision, normal, keep, ctl, ex).await
}

/// The rule that fires at `phase` for this upload, given what is known so far:
/// the file part's (name as sent, content type) and the file's size.
async fn decide(
    state: &AppState,
    parts: &Parts,
    phase: Phase,
    query: &[(String, String)],
    part: Option<(&str, &str)>,
    size: Option<u64>,
    ex: &mut Exchange,
) -> Result<Option<Decision>, ApiError> {
    let mut facts = apply::facts(RouteName::Upload, parts, query);
    facts.filename = part.map(|(name, _)| name);
    facts.content_type = part.map(|(_, ct)| ct);
    facts.size = size;
    state.decide(phase, &facts, &mut ex.seen).await
}

/// The 200 answer for the file stored as `stored`.
fn answer(stored: &StoredUpload) -> Answer {
    let answer = UploadAnswer {
        local_file_path: stored
            .local_file_path
            .as_ref()
            .map(|p| p.display().to_string()),
        file_uuid: &stored.file_uuid,
        file_url: &stored.file_url,
        remote_file_path: &stored.remote_file_path,
        content_type: &stored.content_type,
        processing_status: FileStatus::Completed.as_str(),
        remote_uri: &stored.remote_uri,
    };
    Answer::json(
        StatusCode::OK,
        serde_json::to_value(&answer).unwrap_or(Value::Null),
    )
}

/// `workspace_uuid` from the query (the last one given), or `default`.
fn workspace(query: &[(String, String)]) -> &str {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == "workspace_uuid")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or(crate::storage::DEFAULT_WORKSPACE)
}

/// The multipart boundary, or the error for a body that is not one.
fn boundary(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(content_type) = headers.get(http::header::CONTENT_TYPE) else {
        return Err(ApiError::unprocessable(
            "content-type",
            "The request has no Content-Type: send the file as multipart/form-data with a part named \"file\".",
        ));
    };
    let content_type = content_type.to_str().unwrap_or_default();
    let essence = crate::http_util::essence(content_type);
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return Err(ApiError::unprocessable(
            "content-type",
            format!(
                "Content-Type must be multipart/form-data, not {essence:?}: send the file in a part named \"file\"."
            ),
        ));
    }
    multipart::parse_boundary(content_type).ok_or_else(|| {
        ApiError::bad_request(
            "The multipart/form-data Content-Type has no valid boundary parameter.",
        )
        .with_details(serde_json::json!({"field": "content-type"}))
    })
}

/// The part's own Content-Type, else a guess from the extension, else octet-stream.
fn part_content_type(headers: &HeaderMap, filename: &str) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| crate::http_util::guess_content_type(filename))
}
