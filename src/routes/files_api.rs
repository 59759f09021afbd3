//! The SDK's `files` resource around the upload: `POST /v2/files`
//! (presigned upload URLs), `GET /v2/files` (a page), `GET
//! /v2/files/{file_uuid}` (`FileDetail`), `/status` (`FileStatus`), `/frames`
//! (`FileFrames`), `DELETE /v2/files/{file_uuid}`, and the frame images
//! themselves (`GET /__frames/{file_uuid}/{n}.png`). Field names and types
//! are the SDK's (`aymara-ai-sdk` 1.2.1). Files come from the catalog
//! (`files::catalog`); their bytes from the index and storage.

use std::sync::Arc;
use std::time::SystemTime;

use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use super::answer::Answer;
use super::remote_fetch;
use crate::error::ApiError;
use crate::files::catalog::NewEntry;
use crate::files::entry::{file_type, Entry};
use crate::files::{png, FileStatus};
use crate::http_util::rfc3339;
use crate::request::body::{BodyControl, BodyFailure, UploadBody};
use crate::request::name::SafeFileName;
use crate::state::AppState;
use crate::storage::Target;

/// Largest `POST /v2/files` body read.
const MAX_CREATE_BODY: usize = 1024 * 1024;
/// Most entries in one `POST /v2/files`.
const MAX_CREATE_FILES: usize = 1000;
/// `GET /v2/files`: `limit` is 1 to this; also its default.
pub(crate) const MAX_LIMIT: usize = 100;
/// Frames of every processed video.
pub(crate) const FRAMES_PER_VIDEO: usize = 4;

/// One entry of a `POST /v2/files` body.
struct NewFile {
    local_file_path: Option<String>,
    remote_uri: Option<String>,
    content_type: Option<String>,
}

/// Longest `workspace_uuid` taken (a UUID is 36 bytes): it is copied into
/// every file of the request.
pub(crate) const MAX_WORKSPACE_UUID: usize = 256;
/// Longest `local_file_path` or `remote_uri` of an entry (a URL longer than
/// this is refused by most servers anyway).
const MAX_SOURCE: usize = 8 * 1024;
/// Longest `content_type` (RFC 6838: 127 bytes each for type and subtype).
const MAX_CONTENT_TYPE: usize = 255;

/// `POST /v2/files`: each `local_file_path` entry becomes a `pending` file
/// with a presigned PUT URL as its `file_url`; each `remote_uri` entry a
/// `pending` file fetched in the background (`remote_fetch`), or `failed`
/// at once when its URL may not be fetched. All the entries are taken, or
/// none: 429 when they would make more files pending than
/// `--max-pending-files` allows.
pub(crate) async fn create(
    state: &Arc<AppState>,
    body: &mut UploadBody,
    ctl: &BodyControl,
) -> Answer {
    let bytes = match read_json_body(body, ctl).await {
        Ok(bytes) => bytes,
        Err(answer) => return answer,
    };
    // A thousand entries (parsed, signed, recorded, answered) take a few
    // milliseconds of CPU: on a blocking thread, so that a burst of such
    // requests does not hold up the async workers and every other request.
    let state = Arc::clone(state);
    tokio::task::spawn_blocking(move || create_from(&state, &bytes))
        .await
        .unwrap_or_else(|err| {
            Answer::error(ApiError::internal(format!(
                "Announcing the files failed: {err}."
            )))
        })
}

/// [`create`] once the body is read.
fn create_from(state: &Arc<AppState>, bytes: &[u8]) -> Answer {
    let (files, workspace_uuid) = match parse_create(bytes) {
        Ok(parsed) => parsed,
        Err(err) => return Answer::error(err),
    };
    let count = files.len();
    let mut answers = Vec::with_capacity(count);
    let mut entries = Vec::with_capacity(count);
    let mut fetches = Vec::new();
    let mut refused = Vec::new();
    for file in files {
        let announced = announce(state, file, workspace_uuid.as_deref());
        answers.push(announced.answer);
        match announced.fetch {
            Some(Ok(job)) => fetches.push(job),
            Some(Err(why)) => refused.push((announced.entry.target.file_uuid.clone(), why)),
            None => {}
        }
        entries.push(announced.entry);
    }
    let max = state.settings.files.max_pending;
    let created = state.catalog.create_all(entries, max);
    if let Ok(created) = &created {
        state.publish(|| crate::files::events::FileEvent::Announced {
            files: created
                .iter()
                .map(crate::files::events::Announced::of)
                .collect(),
        });
    }
    if let Err(full) = created {
        return Answer::error(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} files are announced and not stored yet, and these {count} would pass the limit of {} (--max-pending-files): upload or delete some first.",
                    full.pending, full.max
                ),
            )
            .with_details(json!({
                "limit": "max_pending_files",
                "max": full.max,
                "pending": full.pending,
                "requested": count,
            })),
        );
    }
    for (file_uuid, why) in refused {
        state.failed(file_uuid, why);
    }
    remote_fetch::spawn_all(state, fetches);
    Answer::json(
        StatusCode::OK,
        json!({"files": answers, "workspace_uuid": workspace_uuid}),
    )
}

/// One entry of a `POST /v2/files`, ready to be recorded.
struct Announced {
    entry: NewEntry,
    answer: Value,
    /// A `remote_uri` entry: its fetch, or why it is not fetched.
    fetch: Option<Result<remote_fetch::Job, String>>,
}

/// A new file for one entry, and its `FileUpload` answer.
fn announce(state: &Arc<AppState>, file: NewFile, workspace_uuid: Option<&str>) -> Announced {
    let file_uuid = crate::http_util::random_uuid();
    let source = file
        .local_file_path
        .as_deref()
        .or(file.remote_uri.as_deref())
        .unwrap_or_default();
    // The base name: a remote URI's last path segment, without its query.
    let base = source.split(['?', '#']).next().unwrap_or_default();
    let name = SafeFileName::parse(base).as_ref().to_owned();
    let content_type = file
        .content_type
        .clone()
        .unwrap_or_else(|| crate::http_util::guess_content_type(&name));
    let target = Target {
        file_uuid: file_uuid.to_string(),
        name: name.clone(),
        workspace: workspace_uuid.unwrap_or("default").to_owned(),
        content_type: content_type.clone(),
    };
    let location = state.storage.locate(&target);
    let file_url = match &file.remote_uri {
        None => {
            let path = state.signer.presign(
                &file_uuid,
                &name,
                file.content_type.as_deref(),
                SystemTime::now(),
                state.settings.files.presign_expiry,
            );
            Some(format!("{}{path}", state.settings.public_url))
        }
        Some(_) => None,
    };
    let fetch = file.remote_uri.as_ref().map(|uri| {
        remote_fetch::check(uri, &state.settings.files.remote_hosts).map(|url| remote_fetch::Job {
            url,
            uri: uri.clone(),
            target: target.clone(),
            typed: file.content_type.is_some(),
            ticket: state.fetches.register(&target.file_uuid),
        })
    });
    let answer = json!({
        "file_uuid": file_uuid.to_string(),
        "file_url": file_url,
        "local_file_path": file.local_file_path,
        "remote_file_path": location.remote_file_path,
        "remote_uri": file.remote_uri.clone().unwrap_or(location.remote_uri),
        "content_type": content_type,
        "processing_status": FileStatus::Pending.as_str(),
    });
    Announced {
        entry: NewEntry {
            target,
            workspace_uuid: workspace_uuid.map(str::to_owned),
            original: Some(source.to_owned()),
            remote: file.remote_uri.is_some(),
        },
        answer,
        fetch,
    }
}

/// The request body, at most [`MAX_CREATE_BODY`] bytes.
async fn read_json_body(body: &mut UploadBody, ctl: &BodyControl) -> Result<Vec<u8>, Answer> {
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                ctl.mark_progress();
                if bytes.len() + chunk.len() > MAX_CREATE_BODY {
                    return Err(Answer::error(
                        ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("The request body is larger than {MAX_CREATE_BODY} bytes: announce fewer files at once."),
                        )
                        .with_code("validation.invalid_request"),
                    )
                    .closing());
                }
                bytes.extend_from_slice(&chunk);
            }
            Err(_) => {
                let err = match ctl.failure() {
                    Some(BodyFailure::Timeout) => ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "The request body stalled: no data arrived within the body timeout (--body-timeout).",
                    )
                    .with_code("validation.invalid_request"),
                    _ => ApiError::bad_request("The request body ended before its declared length."),
                };
                return Err(Answer::error(err).closing());
            }
        }
    }
    Ok(bytes)
}

/// A `POST /v2/files` body: its entries and `workspace_uuid`, or the 422
/// that says what to fix.
fn parse_create(bytes: &[u8]) -> Result<(Vec<NewFile>, Option<String>), ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::unprocessable("body", format!("The body is not JSON ({e}): send {{\"files\": [{{\"local_file_path\": \"name.ext\"}}]}}."))
    })?;
    let Value::Object(body) = value else {
        return Err(ApiError::unprocessable(
            "body",
            "The body must be a JSON object: {\"files\": [...], \"workspace_uuid\": ...}.",
        ));
    };
    let workspace_uuid = match body.get("workspace_uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() > MAX_WORKSPACE_UUID => {
            return Err(too_long(
                "workspace_uuid",
                "max_workspace_uuid_bytes",
                MAX_WORKSPACE_UUID,
                s.len(),
            ))
        }
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "workspace_uuid",
                "workspace_uuid must be a non-empty string or null.",
            ))
        }
    };
    let entries =
        match body.get("files") {
            Some(Value::Array(entries)) if !entries.is_empty() => entries,
            Some(Value::Array(_)) => {
                return Err(ApiError::unprocessable(
                    "files",
                    "files is empty: list at least one file.",
                ))
            }
            Some(_) => {
                return Err(ApiError::unprocessable(
                    "files",
                    "files must be a list of {\"local_file_path\"} or {\"remote_uri\"} objects.",
                ))
            }
            None => return Err(ApiError::unprocessable(
                "files",
                "The body has no files: send {\"files\": [{\"local_file_path\": \"name.ext\"}]}.",
            )),
        };
    if entries.len() > MAX_CREATE_FILES {
        return Err(ApiError::unprocessable(
            "files",
            format!(
                "At most {MAX_CREATE_FILES} files at once, not {}.",
                entries.len()
            ),
        ));
    }
    let files = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| parse_entry(i, entry))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((files, workspace_uuid))
}

fn parse_entry(i: usize, entry: &Value) -> Result<NewFile, ApiError> {
    let Value::Object(entry) = entry else {
        return Err(ApiError::unprocessable(
            &format!("files[{i}]"),
            format!("files[{i}] must be an object with local_file_path or remote_uri."),
        ));
    };
    let field = |name: &str, (limit, max): (&str, usize)| -> Result<Option<String>, ApiError> {
        let path = format!("files[{i}].{name}");
        match entry.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() > max => Err(too_long(&path, limit, max, s.len())),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::unprocessable(
                &path,
                format!("{path} must be a non-empty string or null."),
            )),
        }
    };
    let source = ("max_source_bytes", MAX_SOURCE);
    // A content type is a header value: surrounding spaces are not part of
    // it (the PUT's `Content-Type` is compared without them), and what a
    // header cannot carry could never be matched by a PUT.
    let content_type = field("content_type", ("max_content_type_bytes", MAX_CONTENT_TYPE))?
        .map(|ct| ct.trim().to_owned())
        .filter(|ct| !ct.is_empty());
    if let Some(ct) = &content_type {
        if HeaderValue::from_str(ct).is_err() || !ct.is_ascii() {
            return Err(ApiError::unprocessable(
                &format!("files[{i}].content_type"),
                format!("files[{i}].content_type {ct:?} is not a valid Content-Type header value (printable ASCII, e.g. video/mp4)."),
            ));
        }
    }
    // Every field is optional, as in the SDK's `FileUploadParam` (its own
    // tests send `{}`, and all three fields at once): an entry without a
    // `remote_uri` gets an upload URL (named after `local_file_path`, else
    // `upload.bin`); one with a `remote_uri` is fetched, under `local_file_path`'s
    // base name when both are given.
    Ok(NewFile {
        local_file_path: field("local_file_path", source)?,
        remote_uri: field("remote_uri", source)?,
        content_type,
    })
}

/// A field longer than its limit: 422 naming the field and the limit.
fn too_long(field: &str, limit: &str, max: usize, len: usize) -> ApiError {
    ApiError::unprocessable(
        field,
        format!("{field} is {len} bytes long; at most {max} are taken."),
    )
    .with_details(json!({"field": field, "limit": limit, "max": max}))
}

/// `GET /v2/files`: `{"items": [FileDetail…], "count": N}`, oldest first;
/// `count` is the number of files that match the filters (all pages). The
/// walk over every file (`files::page`) runs on a blocking thread, half the
/// cores' worth at most: a large catalog must not hold up the async workers.
pub(crate) async fn list(state: &Arc<AppState>, query: &[(String, String)]) -> Answer {
    let param = |name: &str| {
        query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let number = |name: &str, min: usize, max: usize, default: usize| match param(name) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<i128>() {
            Ok(n) if n >= min as i128 && n <= max as i128 => Ok(n as usize),
            _ => Err(ApiError::unprocessable(
                name,
                format!("{name} must be an integer from {min} to {max}, not {text:?}."),
            )),
        },
    };
    let (limit, offset) = match (
        number("limit", 1, MAX_LIMIT, MAX_LIMIT),
        number("offset", 0, usize::MAX >> 1, 0),
    ) {
        (Ok(limit), Ok(offset)) => (limit, offset),
        (Err(err), _) | (_, Err(err)) => return Answer::error(err),
    };
    let wanted_type = param("file_type")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let wanted_workspace = param("workspace_uuid")
        .filter(|w| !w.is_empty())
        .map(str::to_owned);
    let Ok(_walking) = state.list_walks.acquire().await else {
        return Answer::error(ApiError::internal("The server is stopping."));
    };
    let state = Arc::clone(state);
    let listed = tokio::task::spawn_blocking(move || {
        let keep = |content_type: &str, workspace: Option<&str>| {
            wanted_type
                .as_deref()
                .is_none_or(|t| file_type(content_type) == t)
                && wanted_workspace
                    .as_deref()
                    .is_none_or(|w| workspace == Some(w))
        };
        let (count, entries) =
            crate::files::page(&state.catalog, &state.files, &keep, offset, limit);
        let now = SystemTime::now();
        let items: Vec<Value> = entries.iter().map(|e| detail(&state, e, now)).collect();
        json!({"items": items, "count": count})
    })
    .await;
    match listed {
        Ok(body) => Answer::json(StatusCode::OK, body),
        Err(err) => Answer::error(ApiError::internal(format!(
            "Listing the files failed: {err}."
        ))),
    }
}

/// The file, or the 404 every route of the files API gives for it. A file
/// this server does not know may have been stored by a replica sharing the
/// object store: found there, it joins this server's catalog and index.
async fn find(state: &AppState, file_uuid: &str) -> Result<Entry, ApiError> {
    if let Some(entry) = known(state, file_uuid) {
        return Ok(entry);
    }
    let not_found = || {
        ApiError::not_found(format!(
            "No file {file_uuid}: it was never created here, or has been deleted."
        ))
        .with_details(json!({"file_uuid": file_uuid}))
    };
    if state.catalog.is_deleted(file_uuid) {
        return Err(not_found());
    }
    let stored = match state.storage.lookup(file_uuid).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return Err(not_found()),
        Err(err) => return Err(ApiError::storage(&err)),
    };
    let workspace = crate::storage::workspace_of(&stored.remote_file_path, file_uuid);
    let target = Target {
        file_uuid: stored.file_uuid.clone(),
        name: stored.filename.clone(),
        workspace,
        content_type: stored.content_type.clone(),
    };
    let record = crate::storage::UploadRecord {
        target,
        size: stored.size,
        sha256: stored.sha256.as_str().into(),
        duplicate_of: None,
        stored_at: SystemTime::now(),
    };
    let entry = Entry::of_upload(&record);
    state.files.insert(record);
    Ok(entry)
}

/// A file the files API knows: announced (the catalog), or only uploaded
/// (the index of stored files; most multipart uploads never need more).
fn known(state: &AppState, file_uuid: &str) -> Option<Entry> {
    state
        .catalog
        .get(file_uuid)
        .or_else(|| state.files.get(file_uuid).map(|r| Entry::of_upload(&r)))
}

/// `GET /v2/files/{file_uuid}`.
pub(crate) async fn get(state: &AppState, file_uuid: &str) -> Answer {
    match find(state, file_uuid).await {
        Ok(entry) => Answer::json(StatusCode::OK, detail(state, &entry, SystemTime::now())),
        Err(err) => Answer::error(err),
    }
}

/// A `FileDetail`: the SDK's required fields always, `file_url` and
/// `file_size_bytes` once the bytes are stored, `video_metadata` for a
/// processed video; `processing_status` besides (the real API's docs name it).
fn detail(state: &AppState, entry: &Entry, now: SystemTime) -> Value {
    let target = &entry.target;
    let status = entry.status_at(now, state.settings.files.video_processing);
    let stored = state.files.get(&target.file_uuid);
    let location = state.storage.locate(target);
    let video_metadata = (entry.is_video() && status.status == FileStatus::Completed).then(|| {
        json!({"frame_count": FRAMES_PER_VIDEO, "fps": 1.0, "duration_seconds": FRAMES_PER_VIDEO as f64})
    });
    let updated = entry
        .stored_at
        .unwrap_or(entry.created_at)
        .max(status.since);
    json!({
        "file_uuid": target.file_uuid,
        "content_type": target.content_type,
        "file_type": file_type(&target.content_type),
        "organization_uuid": state.settings.files.organization_uuid,
        "uploaded_by_uuid": state.settings.files.uploaded_by_uuid,
        "workspace_uuid": entry.workspace_uuid,
        "remote_file_path": location.remote_file_path,
        "file_url": stored.as_ref().map(|r| crate::files::download_url(&state.settings.public_url, &r.target)),
        "file_size_bytes": stored.as_ref().map(|r| r.size),
        "original_file_url": entry.original,
        "video_metadata": video_metadata,
        "processing_status": status.status.as_str(),
        "created_at": rfc3339(entry.created_at),
        "updated_at": rfc3339(updated),
    })
}

/// `GET /v2/files/{file_uuid}/status`.
pub(crate) async fn status(state: &AppState, file_uuid: &str) -> Answer {
    let entry = match find(state, file_uuid).await {
        Ok(entry) => entry,
        Err(err) => return Answer::error(err),
    };
    let now = SystemTime::now();
    let status = entry.status_at(now, state.settings.files.video_processing);
    let completed = status.status == FileStatus::Completed;
    let remote_file_path = completed.then(|| state.storage.locate(&entry.target).remote_file_path);
    let updated = entry
        .stored_at
        .unwrap_or(entry.created_at)
        .max(status.since);
    Answer::json(
        StatusCode::OK,
        json!({
            "file_uuid": entry.target.file_uuid,
            "processing_status": status.status.as_str(),
            "error_message": status.error_message,
            "remote_file_path": remote_file_path,
            "created_at": rfc3339(entry.created_at),
            "updated_at": rfc3339(updated),
        }),
    )
}

/// `GET /v2/files/{file_uuid}/frames`: a completed video's frame URLs. A
/// file that is not a video → 400 (`validation.invalid_request`); a video
/// not (yet) completed → 409 (`resource.conflict`) naming its status, as the
/// SDK's docs say the API refuses both.
pub(crate) async fn frames(state: &AppState, file_uuid: &str) -> Answer {
    let entry = match find(state, file_uuid).await {
        Ok(entry) => entry,
        Err(err) => return Answer::error(err),
    };
    if !entry.is_video() {
        return Answer::error(
            ApiError::bad_request(format!(
                "File {file_uuid} is a {} file ({}), not a video: only videos have frames.",
                file_type(&entry.target.content_type),
                entry.target.content_type
            ))
            .with_details(
                json!({"file_uuid": file_uuid, "file_type": file_type(&entry.target.content_type)}),
            ),
        );
    }
    let status = entry.status_at(SystemTime::now(), state.settings.files.video_processing);
    if status.status != FileStatus::Completed {
        return Answer::error(
            ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Video {file_uuid} is {}, not completed: poll GET /v2/files/{file_uuid}/status until it is.",
                    status.status.as_str()
                ),
            )
            .with_details(json!({"file_uuid": file_uuid, "processing_status": status.status.as_str()})),
        );
    }
    let urls: Vec<String> = (0..FRAMES_PER_VIDEO)
        .map(|n| format!("{}/__frames/{file_uuid}/{n}.png", state.settings.public_url))
        .collect();
    Answer::json(
        StatusCode::OK,
        json!({"file_uuid": file_uuid, "frame_count": urls.len(), "frame_urls": urls}),
    )
}

/// `GET|HEAD /__frames/{file_uuid}/{n}.png`: a generated PNG for each frame
/// `frames` lists (while the video is there and completed).
pub(crate) fn frame(state: &AppState, file_uuid: &str, frame: &str, head: bool) -> Answer {
    let not_found = || {
        Answer::error(ApiError::not_found(format!(
            "No frame {frame:?} of file {file_uuid}: see GET /v2/files/{file_uuid}/frames."
        )))
    };
    let Some(n) = frame
        .strip_suffix(".png")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n < FRAMES_PER_VIDEO)
    else {
        return not_found();
    };
    let Some(entry) = known(state, file_uuid) else {
        return not_found();
    };
    let status = entry.status_at(SystemTime::now(), state.settings.files.video_processing);
    if !entry.is_video() || status.status != FileStatus::Completed {
        return not_found();
    }
    let seed = file_uuid.bytes().fold(n as u64, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    });
    let png = png::frame(seed);
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("image/png"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(png.len()));
    let body = if head {
        crate::http_util::empty()
    } else {
        crate::http_util::full(png)
    };
    Answer::body(StatusCode::OK, headers, body)
}

/// `DELETE /v2/files/{file_uuid}` → 204: gone from every route, its bytes
/// removed from storage; its presigned URL refused from now on.
///
/// Under the file's lock: a PUT or a fetch that stores its bytes at the same
/// moment does so wholly before (and the bytes are deleted) or wholly after
/// (and finds it deleted), and a second `DELETE` finds it gone (404).
pub(crate) async fn delete(state: &AppState, file_uuid: &str) -> Answer {
    let _one_at_a_time = state.file_locks.lock(file_uuid).await;
    if let Err(err) = find(state, file_uuid).await {
        return Answer::error(err);
    }
    state.fetches.cancel(file_uuid);
    state.catalog.remove(file_uuid);
    state.publish(|| crate::files::events::FileEvent::Removed {
        file_uuid: file_uuid.to_owned(),
    });
    if let Some(record) = state.files.remove(file_uuid) {
        state.storage.remove(&[record]).await;
    }
    Answer::body(
        StatusCode::NO_CONTENT,
        HeaderMap::new(),
        crate::http_util::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        match parse_create(body.as_bytes()) {
            Err(err) => err,
            Ok(_) => panic!("{body} was accepted"),
        }
    }

    #[test]
    fn a_create_body_is_checked_with_a_message_naming_the_field() {
        let (files, ws) = parse_create(
            br#"{"files":[{"local_file_path":"a.mp4","content_type":null}],"workspace_uuid":"w"}"#,
        )
        .unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].local_file_path.as_deref(), Some("a.mp4"));
        assert_eq!(ws.as_deref(), Some("w"));
        // Every field optional, as in the SDK's types.
        for body in [
            r#"{"files":[{}]}"#,
            r#"{"files":[{"local_file_path":"a","remote_uri":"b","content_type":"x/y"}]}"#,
        ] {
            assert!(parse_create(body.as_bytes()).is_ok(), "{body}");
        }
        for (body, field) in [
            ("not json", "body"),
            ("[]", "body"),
            ("{}", "files"),
            (r#"{"files":[]}"#, "files"),
            (r#"{"files":{}}"#, "files"),
            (r#"{"files":[7]}"#, "files[0]"),
            (
                r#"{"files":[{"local_file_path":"a"},{"local_file_path":3}]}"#,
                "files[1].local_file_path",
            ),
            (
                r#"{"files":[{"local_file_path":"a"}],"workspace_uuid":1}"#,
                "workspace_uuid",
            ),
        ] {
            let e = err(body);
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(e.details["field"], field, "{body}");
        }
    }
}
