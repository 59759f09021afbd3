//! The upload endpoint, `POST /v2/files/-/uploads`: the multipart body is
//! streamed part by part to storage, and fault rules are decided at each phase
//! (request → upload → complete) as the facts they need become known.

pub(crate) mod body;
#[cfg(test)]
mod differential;
pub(crate) mod multipart;
pub(crate) mod name;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::{HeaderMap, Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::rules::model::{Action, Fault, Phase};
use crate::rules::{Decision, RequestFacts};
use crate::server::handler::{Answer, Exchange, Finish};
use crate::server::state::AppState;
use crate::storage::{FinishedFile, StoredUpload, Target};
use body::{BodyControl, BodyFailure, UploadBody};
use multipart::{Multipart, MultipartError, MAX_PART_HEADERS};
use name::SafeFileName;

/// Slack over `--max-upload-size` for the multipart framing and other parts.
const FRAMING_ALLOWANCE: u64 = 1024 * 1024;
/// Bounds on reading a body we will not use, so its client can read our answer.
pub(crate) const DRAIN_MAX_BYTES: u64 = 64 * 1024 * 1024;
pub(crate) const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

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

/// Handles one upload request; the exchange gathers what the journal records.
pub(crate) async fn handle(state: &AppState, req: Request<Incoming>, ex: &mut Exchange) -> Finish {
    let (parts, incoming) = req.into_parts();
    let max = state.settings.max_upload_size;
    let mut body = UploadBody::new(
        incoming,
        max.saturating_add(FRAMING_ALLOWANCE),
        state.settings.body_timeout,
    );
    let ctl = body.control();
    let finish = receive(state, &parts.headers, &mut body, &ctl, ex).await;
    ex.body_bytes = ctl.read();
    match finish {
        // An answer sent before the body was read to its end: read the rest
        // (bounded) so that a client still sending can read the answer.
        Finish::Answer(mut answer) if !body.is_finished() => {
            let expects_continue = parts
                .headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            // A client that is gone or stalled has nothing left to read.
            let drainable = !matches!(
                ctl.failure(),
                Some(BodyFailure::Client | BodyFailure::Timeout | BodyFailure::ResetFault)
            );
            let complete =
                !expects_continue && drainable && body.drain(DRAIN_MAX_BYTES, DRAIN_MAX_TIME).await;
            ex.body_bytes = ctl.read();
            if !complete {
                answer.close = true;
            }
            Finish::Answer(answer)
        }
        // A hang "until the client gives up" keeps reading (and dropping) the
        // body: a client whose unsent bytes fill our receive window could
        // otherwise never get its close through, and the hang would never end.
        Finish::Hang(None) if !body.is_finished() => {
            body.drain(u64::MAX, Duration::from_secs(24 * 3600)).await;
            ex.body_bytes = ctl.read();
            Finish::Hang(None)
        }
        other => other,
    }
}

/// What the rules decided so far for this request.
#[derive(Debug, Default)]
struct Plan {
    /// A respond rule whose answer is given after the upload is processed.
    deferred: Option<Decision>,
    truncate: bool,
    keep_upload: bool,
}

/// The next step after a rule fired.
#[allow(clippy::large_enum_variant, reason = "one per phase of a request")]
enum Step {
    Continue,
    Stop(Finish),
}

fn apply(
    decision: Option<Decision>,
    plan: &mut Plan,
    ctl: &BodyControl,
    ex: &mut Exchange,
    phase: Phase,
) -> Step {
    let Some(decision) = decision else {
        return Step::Continue;
    };
    let rule = Arc::clone(&decision.rule);
    ex.rule = Some(decision.id.clone());
    ex.delay_ms = ex.delay_ms.max(rule.delay_ms.millis(ex.read_timeout_ms));
    plan.keep_upload |= rule.keep_upload;
    if let Some(rate) = rule.throttle_bytes_per_sec {
        ctl.set_throttle(rate);
    }
    match decision.action() {
        Action::Pass => Step::Continue,
        Action::Respond(respond) => {
            if respond.status.is_success() || rule.keep_upload || phase == Phase::Complete {
                plan.deferred = Some(decision);
                Step::Continue
            } else {
                Step::Stop(Finish::Answer(Answer::error(
                    crate::server::handler::rule_error(respond),
                )))
            }
        }
        Action::Fault(fault) => {
            ex.fault = Some(fault.name());
            match *fault {
                Fault::Reset { after_bytes: None } => Step::Stop(Finish::Reset),
                Fault::Reset {
                    after_bytes: Some(n),
                } => {
                    if ctl.read() >= n {
                        Step::Stop(Finish::Reset)
                    } else {
                        ctl.set_reset_after(n);
                        Step::Continue
                    }
                }
                Fault::Hang { for_ms } => {
                    Step::Stop(Finish::Hang(for_ms.map(|w| w.millis(ex.read_timeout_ms))))
                }
                Fault::Truncate => {
                    plan.truncate = true;
                    Step::Continue
                }
            }
        }
    }
}

macro_rules! step {
    ($e:expr) => {
        match $e {
            Step::Continue => {}
            Step::Stop(finish) => return finish,
        }
    };
}

async fn receive(
    state: &AppState,
    headers: &HeaderMap,
    body: &mut UploadBody,
    ctl: &BodyControl,
    ex: &mut Exchange,
) -> Finish {
    let query = ex.query.clone();
    let mut plan = Plan::default();

    // Phase `request`: headers only. `Prefer: code=` and rules come before
    // authentication, so that a scenario can answer for any key.
    // A `Prefer: code=200` request is a plain upload: no rule is consulted.
    let rules_apply = match crate::server::handler::prefer_code(headers) {
        Ok(Some(200)) => false,
        Ok(Some(code)) => {
            return Finish::Answer(Answer::error(crate::server::handler::prefer_error(code)))
        }
        Ok(None) => {
            let decision = decide(state, Phase::Request, headers, &query, None, None, ex);
            step!(apply(decision, &mut plan, ctl, ex, Phase::Request));
            true
        }
        Err(err) => return Finish::Answer(Answer::error(err)),
    };

    if let Err(err) = crate::auth::check(&state.settings.auth, headers) {
        return Finish::Answer(Answer::error(err));
    }
    let boundary = match boundary(headers) {
        Ok(b) => b,
        Err(err) => return Finish::Answer(Answer::error(err)),
    };
    let max = state.settings.max_upload_size;
    if let Some(len) = content_length(headers) {
        if len > max.saturating_add(FRAMING_ALLOWANCE) {
            return Finish::Answer(Answer::error(ApiError::payload_too_large(max)).closing());
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
                Err(err) => return body_error(ctl, max, &err),
            };
            ctl.mark_progress();
            if received.is_some() || part.name().as_deref() != Some("file") {
                // Other parts, and a second `file` part, are read and dropped.
                loop {
                    match multipart.chunk().await {
                        Ok(Some(_)) => ctl.mark_progress(),
                        Ok(None) => break,
                        Err(err) => return body_error(ctl, max, &err),
                    }
                }
                continue;
            }
            let raw_filename = name::disposition_filename(&part.headers).unwrap_or_default();
            let filename = SafeFileName::parse(&raw_filename);
            let content_type = part_content_type(&part.headers, filename.as_ref());
            if rules_apply {
                let part = Some((raw_filename.as_str(), content_type.as_str()));
                let decision = decide(state, Phase::Upload, headers, &query, part, None, ex);
                step!(apply(decision, &mut plan, ctl, ex, Phase::Upload));
            }
            let target = Target {
                file_uuid: crate::http_util::random_uuid().to_string(),
                name: filename.as_ref().to_owned(),
                workspace: workspace(&query).to_owned(),
                content_type: content_type.clone(),
            };
            match receive_file(state, &mut multipart, target, max, ctl).await {
                Ok(file) => received = Some(Received { raw_filename, file }),
                Err(finish) => return finish,
            }
        }
        received
    };
    // The closing boundary is not the end of the request: until the body has
    // its declared length (or its chunked terminator), the client may still be
    // cut off, and a cut request is never stored nor decided at `complete`.
    if let Err(finish) = read_to_end(body, ctl, max).await {
        if let Some(received) = received {
            received.file.discard().await;
        }
        return finish;
    }
    let Some(received) = received else {
        return Finish::Answer(Answer::error(ApiError::unprocessable(
            "file",
            "The multipart body has no `file` part: send the file in a part named \"file\".",
        )));
    };

    if rules_apply {
        let part = Some((
            received.raw_filename.as_str(),
            received.file.target().content_type.as_str(),
        ));
        let decision = decide(
            state,
            Phase::Complete,
            headers,
            &query,
            part,
            Some(received.file.size),
            ex,
        );
        if let Step::Stop(finish) = apply(decision, &mut plan, ctl, ex, Phase::Complete) {
            // A reset or hang that keeps the upload: stored, then carried out.
            if plan.keep_upload && matches!(finish, Finish::Reset | Finish::Hang(_)) {
                let stored = state.upload_of(&received.file.record());
                if let Err(err) = keep(state, received.file, stored, ex).await {
                    return Finish::Answer(Answer::error(err));
                }
            }
            return finish;
        }
    }
    // `reset` with `after_bytes` larger than the whole body: close once it is read.
    if ctl.reset_pending() {
        return Finish::Reset;
    }
    store_and_answer(state, received, plan, ex).await
}

/// The rule that fires at `phase` for this upload, given what is known so far:
/// the file part's (name as sent, content type) and the file's size.
fn decide(
    state: &AppState,
    phase: Phase,
    headers: &HeaderMap,
    query: &[(String, String)],
    part: Option<(&str, &str)>,
    size: Option<u64>,
    ex: &mut Exchange,
) -> Option<Decision> {
    state.rules.decide_seen(
        phase,
        &RequestFacts {
            method: "POST",
            path: crate::UPLOAD_PATH,
            headers,
            query,
            filename: part.map(|(name, _)| name),
            content_type: part.map(|(_, ct)| ct),
            size,
        },
        Some(&mut ex.seen),
    )
}

/// Streams the file part to storage. On any failure the partial file is
/// removed before the answer goes out.
async fn receive_file(
    state: &AppState,
    multipart: &mut Multipart<&mut UploadBody>,
    target: Target,
    max: u64,
    ctl: &BodyControl,
) -> Result<FinishedFile, Finish> {
    let mut partial = state.storage.begin(target);
    let failure = loop {
        match multipart.chunk().await {
            Ok(Some(chunk)) => {
                ctl.mark_progress();
                if partial.size() + chunk.len() as u64 > max {
                    break Finish::Answer(
                        Answer::error(ApiError::payload_too_large(max)).closing(),
                    );
                }
                if let Err(err) = partial.write(chunk).await {
                    break Finish::Answer(Answer::error(ApiError::storage(&err)));
                }
            }
            Ok(None) => {
                return partial
                    .finish()
                    .await
                    .map_err(|err| Finish::Answer(Answer::error(ApiError::storage(&err))))
            }
            Err(err) => break body_error(ctl, max, &err),
        }
    };
    partial.abort().await;
    Err(failure)
}

/// Reads what follows the closing boundary (the epilogue, usually empty) to
/// the end of the HTTP body, under the same limits as the parts.
async fn read_to_end(body: &mut UploadBody, ctl: &BodyControl, max: u64) -> Result<(), Finish> {
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(_) => ctl.mark_progress(),
            Err(err) => return Err(body_error(ctl, max, &MultipartError::Body(err))),
        }
    }
    Ok(())
}

/// Builds the answer; stores the file when the client is told it succeeded
/// (or the rule says `keep_upload`).
async fn store_and_answer(
    state: &AppState,
    received: Received,
    plan: Plan,
    ex: &mut Exchange,
) -> Finish {
    let stored = state.upload_of(&received.file.record());
    let answer = UploadAnswer {
        local_file_path: stored
            .local_file_path
            .as_ref()
            .map(|p| p.display().to_string()),
        file_uuid: &stored.file_uuid,
        file_url: &stored.file_url,
        remote_file_path: &stored.remote_file_path,
        content_type: &stored.content_type,
        processing_status: "completed",
        remote_uri: &stored.remote_uri,
    };
    let normal = serde_json::to_value(&answer).unwrap_or(Value::Null);
    let mut reply = match &plan.deferred {
        Some(decision) => match decision.action() {
            Action::Respond(respond) => crate::server::handler::shape(respond, normal),
            _ => Answer::json(StatusCode::OK, normal),
        },
        None => Answer::json(StatusCode::OK, normal),
    };
    reply.truncate = plan.truncate;
    let client_sees_success = reply.status.is_success() && !plan.truncate;
    if !(client_sees_success || plan.keep_upload) {
        received.file.discard().await;
        return Finish::Answer(reply);
    }
    if let Err(err) = keep(state, received.file, stored, ex).await {
        return Finish::Answer(Answer::error(err));
    }
    Finish::Answer(reply)
}

/// Makes the file visible as `stored` (its [`AppState::upload_of`]):
/// committed to storage, in the index and the journal.
async fn keep(
    state: &AppState,
    file: FinishedFile,
    mut stored: StoredUpload,
    ex: &mut Exchange,
) -> Result<(), ApiError> {
    let record = file.record();
    state
        .storage
        .commit(file, &stored)
        .await
        .map_err(|err| ApiError::storage(&err))?;
    stored.duplicate_of = state.uploads.insert(record);
    ex.upload = Some(stored);
    Ok(())
}

/// `workspace_uuid` from the query (the last one given), or `default`.
fn workspace(query: &[(String, String)]) -> &str {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == "workspace_uuid")
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("default")
}

/// Maps a failure while reading the body to what the client gets.
fn body_error(ctl: &BodyControl, max: u64, err: &MultipartError) -> Finish {
    match ctl.failure() {
        Some(BodyFailure::TooLarge) => {
            Finish::Answer(Answer::error(ApiError::payload_too_large(max)).closing())
        }
        Some(BodyFailure::ResetFault) => Finish::Reset,
        Some(BodyFailure::Client) => Finish::ClientGone,
        Some(BodyFailure::Unparsed) => Finish::Answer(
            Answer::error(
                ApiError::bad_request(format!(
                    "Malformed multipart body: no boundary in the first {} bytes.",
                    body::MAX_UNPARSED
                ))
                .with_details(serde_json::json!({"field": "body"})),
            )
            .closing(),
        ),
        Some(BodyFailure::Timeout) => Finish::Answer(
            Answer::error(
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "The upload stalled: no data arrived within the body timeout (--body-timeout).",
                )
                .with_code("validation.invalid_request"),
            )
            .closing(),
        ),
        // An oversized header block is cut off unread: close the connection
        // rather than drain a body that may never end.
        None if matches!(err, MultipartError::HeadersTooLarge) => Finish::Answer(
            Answer::error(
                ApiError::bad_request(format!(
                    "Malformed multipart body: a part's headers are longer than {MAX_PART_HEADERS} bytes."
                ))
                .with_details(serde_json::json!({"field": "body"})),
            )
            .closing(),
        ),
        None => Finish::Answer(Answer::error(
            ApiError::bad_request(format!("Malformed multipart body: {err}."))
                .with_details(serde_json::json!({"field": "body"})),
        )),
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
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
    let essence = content_type.split(';').next().unwrap_or_default().trim();
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
        .unwrap_or_else(|| {
            mime_guess::from_path(filename)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_owned()
        })
}
