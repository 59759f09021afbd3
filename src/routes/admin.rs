//! The admin API under `/__admin`: rules, the request journal, stored uploads
//! and reset. It reuses the fixture model for rules, and answers errors in the
//! API's envelope. Admin calls are not journaled.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::AdminRoute;
use crate::error::{json_body_response, json_response, ApiError};
use crate::http_util::{full, BoxError, ResponseBody};
use crate::journal::RequestRecord;
use crate::rules::{AddRuleError, Entry, RuleStatus};
use crate::scenarios::Scenario;
use crate::state::AppState;
use crate::storage::UploadRecord;

/// Largest admin request body accepted.
const MAX_ADMIN_BODY: usize = 4 * 1024 * 1024;

/// The JSON of one listed rule: the rule's own fields plus `source`, `matched`, `fired`.
pub(crate) fn rule_json(status: &RuleStatus) -> Value {
    let mut value = serde_json::to_value(&status.rule).unwrap_or_else(|_| json!({}));
    if let Value::Object(obj) = &mut value {
        obj.insert("id".into(), json!(status.id));
        obj.insert("source".into(), json!(status.source));
        obj.insert("matched".into(), json!(status.matched));
        obj.insert("fired".into(), json!(status.fired));
    }
    value
}

/// Answers an admin request; `resolved` is what the route table made of it.
pub(crate) async fn handle(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    resolved: Result<AdminRoute, ApiError>,
    request_id: &str,
) -> Response<ResponseBody> {
    match route(state, req, resolved).await {
        Ok(Reply::Json(status, body)) => json_response(status, &body),
        Ok(Reply::Uploads(uploads)) => {
            let state = Arc::clone(state);
            let body = JsonList::new("uploads", uploads, move |record: &UploadRecord, out| {
                serde_json::to_writer(out, &state.upload_of(record))
            });
            json_body_response(StatusCode::OK, body.boxed())
        }
        Ok(Reply::Rules(entries)) => {
            let body = JsonList::new("rules", entries, |entry: &Entry, out| {
                serde_json::to_writer(out, &rule_json(&entry.status()))
            });
            json_body_response(StatusCode::OK, body.boxed())
        }
        Ok(Reply::RuleStatuses(statuses)) => {
            let body = JsonList::new("rules", statuses, |status: &RuleStatus, out| {
                serde_json::to_writer(out, &rule_json(status))
            });
            json_body_response(StatusCode::OK, body.boxed())
        }
        Ok(Reply::Requests(records, oldest)) => {
            let rules = Arc::clone(&state.rules);
            let body = JsonList::new("requests", records, move |record: &RequestRecord, out| {
                serde_json::to_writer(out, &crate::journal::Listed::new(record, &rules))
            });
            let mut response = json_body_response(StatusCode::OK, body.boxed());
            response
                .headers_mut()
                .insert("x-journal-oldest-seq", http::HeaderValue::from(oldest));
            response
        }
        Ok(Reply::Page(response)) => response,
        Ok(Reply::Metrics(text)) => {
            let mut response = Response::new(full(Bytes::from(text)));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            response
        }
        Err(err) => err.into_response(request_id),
    }
}

/// What an admin route answers.
enum Reply {
    Json(StatusCode, Value),
    /// `GET /__admin/uploads`: streamed, see [`JsonList`].
    Uploads(Vec<Arc<UploadRecord>>),
    /// `GET /__admin/rules`: streamed, see [`JsonList`].
    Rules(Vec<Arc<Entry>>),
    /// `GET /__admin/rules` with a shared state store: the counters read
    /// from it.
    RuleStatuses(Vec<Arc<RuleStatus>>),
    /// `GET /__admin/requests[?after=SEQ]`: streamed, see [`JsonList`];
    /// with the `seq` of the oldest record still journaled.
    Requests(Vec<Arc<RequestRecord>>, u64),
    /// The live page's files (`GET /__admin/`), see [`crate::admin_page`].
    Page(Response<ResponseBody>),
    /// `GET /metrics`: the Prometheus text.
    Metrics(String),
}

/// Writes one item's JSON.
type WriteItem<T> = Box<dyn Fn(&T, &mut Vec<u8>) -> serde_json::Result<()> + Send + Sync>;

/// Items serialized per frame rather than in one go.
const ITEMS_PER_FRAME: usize = 256;

/// A streamed `{"<key>":[...]}` body, serialized a few hundred items per
/// frame as hyper asks for them, from a snapshot of `Arc`s. Built in one
/// piece, a list of 100k uploads took 1.3 s on an async worker (a `/health`
/// request waited 1.1 s behind it) and ~200 MB at once, and a journal of
/// 1,500 requests with 190 KB of headers peaked at 1.19 GB; now the worker is
/// free between frames and the socket's pace bounds the memory. The rules
/// list is streamed the same way: built in one piece, 100k rules kept
/// `/health` waiting 0.5 s and peaked at 567 MB.
struct JsonList<T> {
    key: &'static str,
    items: Vec<Arc<T>>,
    write: WriteItem<T>,
    next: usize,
    done: bool,
    /// Whether the last poll gave a frame (the next one yields).
    yield_next: bool,
}

impl<T> JsonList<T> {
    fn new(
        key: &'static str,
        items: Vec<Arc<T>>,
        write: impl Fn(&T, &mut Vec<u8>) -> serde_json::Result<()> + Send + Sync + 'static,
    ) -> Self {
        JsonList {
            key,
            items,
            write: Box::new(write),
            next: 0,
            done: false,
            yield_next: false,
        }
    }

    /// The next piece of the document, or `None` once it is complete.
    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let end = (self.next + ITEMS_PER_FRAME).min(self.items.len());
        let mut out = Vec::with_capacity(512 * (end - self.next) + 16);
        if self.next == 0 {
            out.extend_from_slice(format!("{{\"{}\":[", self.key).as_bytes());
        }
        for (i, item) in self.items[self.next..end].iter().enumerate() {
            if self.next + i > 0 {
                out.push(b',');
            }
            let mark = out.len();
            // Plain strings, numbers and maps with string keys: writing them
            // into a Vec cannot fail; should it, `null` keeps the JSON valid.
            if (self.write)(item, &mut out).is_err() {
                out.truncate(mark);
                out.extend_from_slice(b"null");
            }
        }
        self.next = end;
        if end == self.items.len() {
            out.extend_from_slice(b"]}");
            self.done = true;
        }
        Some(Bytes::from(out))
    }
}

impl<T> http_body::Body for JsonList<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        // Every other poll yields: hyper would otherwise ask for frame after
        // frame while the socket takes them, and the other connections on
        // this worker would wait for the whole list.
        this.yield_next = !this.yield_next;
        if !this.yield_next && !this.done {
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        let chunk = this.next_chunk();
        std::task::Poll::Ready(chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

fn authorized(state: &AppState, req: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(token) = &state.settings.admin_token else {
        return Ok(());
    };
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    if presented.is_some_and(|p| crate::auth::constant_time_eq(p.as_bytes(), token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "The admin API needs `Authorization: Bearer <admin token>` (--admin-token).",
        ))
    }
}

/// The request's authority: from an absolute-form target, else `Host`.
fn authority(req: &Request<Incoming>) -> Option<String> {
    crate::same_origin::authority_of(req.uri(), req.headers())
}

/// Serves an admin request: first the checks every admin route needs (same
/// origin, then the token), then the route, or the 404 / 405 the route
/// table gave.
async fn route(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    route: Result<AdminRoute, ApiError>,
) -> Result<Reply, ApiError> {
    // A `remote_uri` fetch (this server's or another's on this machine)
    // never reads the admin API: its answer would become a file anyone who
    // can reach `/__files` could download.
    if req
        .headers()
        .contains_key(super::remote_fetch::FETCH_MARKER)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "The admin API does not answer aymara-mock's remote_uri fetches.",
        ));
    }
    // Before the token: a browser's request is refused whatever it carries.
    state
        .settings
        .same_origin
        .check(authority(&req).as_deref(), req.headers())?;
    // The page holds no data and asks for the token itself.
    if let Ok(AdminRoute::Page(file)) = route {
        return Ok(Reply::Page(crate::admin_page::serve(file)));
    }
    authorized(state, &req)?;
    match route? {
        AdminRoute::ListRules if state.is_shared() => Ok(Reply::RuleStatuses(
            state
                .rule_statuses()
                .await?
                .into_iter()
                .map(Arc::new)
                .collect(),
        )),
        AdminRoute::ListRules => Ok(Reply::Rules(state.rules.entries())),
        AdminRoute::AddRules => {
            crate::same_origin::require_json(req.headers())?;
            let text = read_body(req).await?;
            // Parsing a batch of 100k rules (the body may be 4 MiB) takes a
            // few hundred ms: off the async workers, so that the requests
            // they serve do not wait.
            let rules = tokio::task::spawn_blocking(move || {
                crate::rules::loading::parse_rules("<admin>", &text).map_err(|e| {
                    let errors: Vec<Value> = e
                        .all()
                        .map(|e| json!({"line": e.line, "column": e.column, "message": e.message}))
                        .collect();
                    ApiError::bad_request(format!("Invalid rule: {e}")).with_details(json!({
                        "line": e.line,
                        "column": e.column,
                        "message": e.message,
                        "errors": errors,
                    }))
                })
            })
            .await
            .map_err(|e| ApiError::internal(format!("Adding the rules failed: {e}")))??;
            let added =
                state
                    .add_rules(rules, "admin".to_owned())
                    .await?
                    .map_err(|err| match err {
                        AddRuleError::DuplicateId(_) => {
                            ApiError::new(StatusCode::CONFLICT, err.to_string())
                        }
                        AddRuleError::Invalid(e) => ApiError::bad_request(e.to_string()),
                    });
            added.map(|ids| Reply::Json(StatusCode::CREATED, json!({ "ids": ids })))
        }
        AdminRoute::Metrics => {
            // With a shared state store, the rules' counters and the
            // journal's size are read from it; while it does not answer, the
            // scrape leaves them out (and counts the error) rather than fail.
            let shared = if state.is_shared() {
                Some((
                    state.rule_statuses().await.unwrap_or_default(),
                    state.shared_journal_usage().await.unwrap_or_default(),
                ))
            } else {
                None
            };
            // A scrape walks every rule and stored file: off the async
            // workers, as the lists are.
            let state = Arc::clone(state);
            let text = tokio::task::spawn_blocking(move || {
                let (rules, journal) = shared.unwrap_or_else(|| {
                    let (entries, bytes) = state.journal.usage();
                    (state.rules.list(), (entries as u64, bytes as u64))
                });
                state
                    .metrics
                    .render(rules, journal, &state.files, state.store_errors())
            })
            .await
            .map_err(|e| ApiError::internal(format!("Rendering the metrics failed: {e}")))?;
            Ok(Reply::Metrics(text))
        }
        AdminRoute::ListScenarios => {
            let list: Vec<Value> = Scenario::all()
                .iter()
                .map(|s| json!({"name": s.name(), "summary": s.summary(), "description": s.description(), "file": s.file()}))
                .collect();
            Ok(Reply::Json(StatusCode::OK, json!({ "scenarios": list })))
        }
        AdminRoute::AddScenario { name } => {
            let scenario = Scenario::named(&name).map_err(|e| {
                ApiError::not_found(format!("{e}"))
                    .with_details(json!({"field": "name", "known": e.known}))
            })?;
            let rules = scenario
                .rules()
                .map_err(|e| ApiError::internal(format!("The shipped scenario is invalid: {e}")))?;
            let ids = state
                .add_rules(rules, scenario.source())
                .await?
                .map_err(|err| match err {
                    AddRuleError::DuplicateId(_) => ApiError::new(
                        StatusCode::CONFLICT,
                        format!("{err}: the scenario {name:?} is switched on already (POST /__admin/reset, or DELETE /__admin/rules/ID, switches it off)"),
                    ),
                    AddRuleError::Invalid(e) => ApiError::bad_request(e.to_string()),
                })?;
            Ok(Reply::Json(StatusCode::CREATED, json!({ "ids": ids })))
        }
        AdminRoute::ClearRules => {
            let count = state.clear_rules().await?;
            Ok(Reply::Json(StatusCode::OK, json!({ "deleted": count })))
        }
        AdminRoute::DeleteRule { id } => {
            if state.remove_rule(&id).await? {
                Ok(Reply::Json(StatusCode::OK, json!({ "deleted": 1 })))
            } else {
                Err(ApiError::not_found(format!("No rule with id {id:?}.")))
            }
        }
        AdminRoute::ListRequests => {
            let after = crate::journal::parse_query(req.uri().query())
                .into_iter()
                .rfind(|(k, _)| k == "after")
                .map(|(_, v)| {
                    v.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "after={v:?} is not a journal seq (a whole number)."
                        ))
                        .with_details(json!({"field": "after"}))
                    })
                })
                .transpose()?;
            let (records, oldest) = state.journal_since(after.unwrap_or(0)).await?;
            // Near misses not worked out yet are worked out here, on the
            // blocking pool: each is a scan of up to 1,000 rules, and a full
            // journal's worth must not hold up the async workers (and the
            // requests they serve) while the list streams.
            let rules = Arc::clone(&state.rules);
            let records = tokio::task::spawn_blocking(move || {
                for record in &records {
                    record.near_misses_with(&rules);
                }
                records
            })
            .await
            .map_err(|e| ApiError::internal(format!("Listing the journal failed: {e}")))?;
            Ok(Reply::Requests(records, oldest))
        }
        AdminRoute::ClearRequests => {
            state.clear_journal().await?;
            Ok(Reply::Json(StatusCode::OK, json!({})))
        }
        AdminRoute::ListUploads => {
            state.sync_rules().await?;
            state.sync_files().await?;
            Ok(Reply::Uploads(state.files.snapshot()))
        }
        AdminRoute::ClearUploads => {
            state.sync_rules().await?;
            state.sync_files().await?;
            let deleted = state.clear_uploads().await;
            Ok(Reply::Json(StatusCode::OK, json!({ "deleted": deleted })))
        }
        AdminRoute::Page(file) => Ok(Reply::Page(crate::admin_page::serve(file))),
        AdminRoute::Reset => {
            state.reset_all().await?;
            Ok(Reply::Json(StatusCode::OK, json!({ "status": "reset" })))
        }
    }
}

async fn read_body(req: Request<Incoming>) -> Result<String, ApiError> {
    let collected = Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}.")))?;
    String::from_utf8(collected.to_bytes().to_vec())
        .map_err(|_| ApiError::bad_request("The request body is not UTF-8 JSON."))
}

#[cfg(test)]
mod tests {
    use http_body::Body as _;

    use crate::storage::StoredUpload;

    use super::*;

    fn record(i: usize) -> Arc<UploadRecord> {
        Arc::new(UploadRecord {
            target: crate::storage::Target {
                file_uuid: format!("00000000-0000-4000-8000-{i:012}"),
                name: format!("f\"{i}\".txt"),
                workspace: "default".into(),
                content_type: "text/plain".into(),
            },
            size: i as u64,
            sha256: "ab".repeat(32).into(),
            duplicate_of: None,
            stored_at: std::time::UNIX_EPOCH,
        })
    }

    /// Stands in for `AppState::upload_of`.
    fn describe(record: &UploadRecord) -> StoredUpload {
        let i = record.size;
        StoredUpload {
            file_uuid: record.target.file_uuid.clone(),
            filename: record.target.name.clone(),
            content_type: record.target.content_type.clone(),
            size: record.size,
            sha256: record.sha256.to_string(),
            local_file_path: (i % 2 == 0).then(|| format!("/tmp/s/{i}/f.txt").into()),
            remote_file_path: format!("uploads/default/{i}/f.txt"),
            remote_uri: format!("s3://aymara-mock/uploads/default/{i}/f.txt"),
            file_url: format!("http://127.0.0.1:1/__files/{i}/f.txt"),
            duplicate_of: None,
        }
    }

    fn uploads_json(records: Vec<Arc<UploadRecord>>) -> JsonList<UploadRecord> {
        JsonList::new("uploads", records, |r: &UploadRecord, out| {
            serde_json::to_writer(out, &describe(r))
        })
    }

    #[test]
    fn the_streamed_journal_is_one_json_document_in_order() {
        let journal = crate::journal::Journal::new(1_000, 64 << 20);
        for i in 0..ITEMS_PER_FRAME + 3 {
            journal.push(RequestRecord {
                id: format!("r{i}"),
                seq: 0,
                time: String::new(),
                method: "GET".into(),
                path: "/health".into(),
                query: serde_json::Map::new(),
                headers: serde_json::Map::new(),
                status: Some(200),
                rule: None,
                fault: None,
                error_code: None,
                cut: false,
                upload: None,
                cors: None,
                file_seen: None,
                body_bytes: 0,
                duration_ms: 1,
                retry_count: None,
                call: String::new(),
                attempt: 0,
                near_misses: Vec::new(),
                replica: None,
                pending: crate::journal::Explainer::default(),
            });
        }
        let mut body = JsonList::new("requests", journal.snapshot(), |r: &RequestRecord, out| {
            serde_json::to_writer(out, r)
        });
        let mut text = Vec::new();
        let mut frames = 0;
        while let Some(chunk) = body.next_chunk() {
            text.extend_from_slice(&chunk);
            frames += 1;
        }
        assert_eq!(frames, 2);
        let parsed: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            parsed,
            json!({ "requests": journal.list(&crate::rules::RuleEngine::new(Vec::new(), 1).unwrap()) })
        );
    }

    #[test]
    fn the_streamed_upload_list_is_one_json_document_in_order() {
        for count in [
            0,
            1,
            ITEMS_PER_FRAME,
            ITEMS_PER_FRAME + 1,
            3 * ITEMS_PER_FRAME + 7,
        ] {
            let records: Vec<_> = (0..count).map(record).collect();
            let mut body = uploads_json(records.clone());
            let mut text = Vec::new();
            let mut frames = 0;
            while let Some(chunk) = body.next_chunk() {
                text.extend_from_slice(&chunk);
                frames += 1;
            }
            assert!(body.is_end_stream());
            assert_eq!(
                frames,
                count.div_ceil(ITEMS_PER_FRAME).max(1),
                "{count} uploads"
            );
            let parsed: Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
                panic!(
                    "{count} uploads: not JSON ({e}): {}",
                    String::from_utf8_lossy(&text)
                )
            });
            let expected: Vec<StoredUpload> = records.iter().map(|r| describe(r)).collect();
            assert_eq!(parsed, json!({ "uploads": expected }), "{count} uploads");
        }
    }

    #[test]
    fn the_streamed_upload_list_yields_between_frames() {
        use std::task::{Context, Poll, Waker};
        let records = (0..2 * ITEMS_PER_FRAME + 1).map(record).collect();
        let mut body = uploads_json(records);
        let mut cx = Context::from_waker(Waker::noop());
        let mut polls = Vec::new();
        loop {
            match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(_))) => polls.push("frame"),
                Poll::Ready(Some(Err(e))) => panic!("{e}"),
                Poll::Ready(None) => break,
                Poll::Pending => polls.push("yield"),
            }
        }
        assert_eq!(polls, ["frame", "yield", "frame", "yield", "frame"]);
    }
}
