//! Every non-admin request goes through [`handle`]: request id, routing, the
//! route's handler, then the answer is delayed, truncated or replaced by a
//! network fault as the rules decided, logged and journaled.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::conn::ConnHandle;
use super::router::{self, ReadOnly, Route};
use super::state::AppState;
use crate::error::{
    default_error_code, default_error_message, json_response, ApiError, DOCUMENTED_ERROR_STATUSES,
};
use crate::http_util::{new_request_id, rfc3339, ResponseBody};
use crate::journal::{parse_query, record_headers, RequestRecord};
use crate::rules::model::{Action, Fault, Phase, Respond};
use crate::rules::RequestFacts;
use crate::storage::StoredUpload;
use crate::upload::body::UploadBody;
use crate::upload::{DRAIN_MAX_BYTES, DRAIN_MAX_TIME};

/// The connection is closed without an answer (a fault, or the client left).
#[derive(Debug, thiserror::Error)]
#[error("connection closed without an answer ({0})")]
pub(crate) struct Abort(&'static str);

/// What a request handler gathers for the journal and the log.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    pub(crate) query: Vec<(String, String)>,
    pub(crate) rule: Option<String>,
    pub(crate) fault: Option<&'static str>,
    pub(crate) upload: Option<StoredUpload>,
    pub(crate) delay_ms: u64,
    pub(crate) body_bytes: u64,
    /// The client's body ended before its framing said it would.
    pub(crate) cut: bool,
    /// The read timeout the client announced (`x-stainless-read-timeout`), in ms.
    pub(crate) read_timeout_ms: Option<u64>,
    /// What the rules saw, for the near misses.
    pub(crate) seen: crate::rules::near_miss::Seen,
}

/// How a request ends.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per request and moved a few times; boxing buys nothing"
)]
pub(crate) enum Finish {
    Answer(Answer),
    /// Close with a TCP reset, no answer.
    Reset,
    /// Answer nothing for this long (or until the client leaves), then close.
    Hang(Option<u64>),
    /// The client went away mid-request: nothing to answer.
    ClientGone,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per request")]
enum Payload {
    Error(ApiError),
    Json(Value),
    Body(ResponseBody),
}

/// An answer to send.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    payload: Payload,
    /// Send `Connection: close`.
    pub(crate) close: bool,
    /// Send half the body under the full Content-Length, then close.
    pub(crate) truncate: bool,
}

impl Answer {
    pub(crate) fn error(err: ApiError) -> Self {
        Self {
            status: err.status,
            headers: HeaderMap::new(),
            payload: Payload::Error(err),
            close: false,
            truncate: false,
        }
    }

    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: HeaderMap::new(),
            payload: Payload::Json(body),
            close: false,
            truncate: false,
        }
    }

    pub(crate) fn body(status: StatusCode, headers: HeaderMap, body: ResponseBody) -> Self {
        Self {
            status,
            headers,
            payload: Payload::Body(body),
            close: false,
            truncate: false,
        }
    }

    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    fn into_response(self, request_id: &str) -> Response<ResponseBody> {
        let mut response = match self.payload {
            Payload::Error(err) => err.into_response(request_id),
            Payload::Json(value) => json_response(self.status, &value),
            Payload::Body(body) => {
                let mut r = Response::new(body);
                *r.status_mut() = self.status;
                r
            }
        };
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        if self.close {
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The `code=NNN` of a `Prefer` header, when there is one.
pub(crate) fn prefer_code(headers: &HeaderMap) -> Result<Option<u16>, ApiError> {
    for value in headers.get_all("prefer") {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split([',', ';']) {
            let Some((key, code)) = token.trim().split_once('=') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case("code") {
                continue;
            }
            let code = code.trim().trim_matches('"');
            return match code.parse::<u16>() {
                Ok(c) if c == 200 || DOCUMENTED_ERROR_STATUSES.contains(&c) => Ok(Some(c)),
                _ => Err(ApiError::bad_request(format!(
                    "Prefer: code={code} is not a documented status of this endpoint; use 200, 400, 401, 403, 404, 409, 422, 429, 500 or 503 (or a fault rule for others)."
                ))
                .with_details(json!({"field": "prefer"}))),
            };
        }
    }
    Ok(None)
}

/// The default envelope for a documented status, as `Prefer: code=` asks.
pub(crate) fn prefer_error(code: u16) -> ApiError {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, default_error_message(code))
}

/// The error a `respond` rule answers with.
pub(crate) fn rule_error(respond: &Respond) -> ApiError {
    let code = respond.status.code();
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut err = ApiError::new(
        status,
        respond
            .message
            .clone()
            .unwrap_or_else(|| default_error_message(code).to_owned()),
    )
    .with_code(
        respond
            .code
            .clone()
            .unwrap_or_else(|| default_error_code(code).to_owned()),
    );
    if let Some(details) = &respond.details {
        err = err.with_details(details.clone());
    }
    err.body_override = respond.body.clone().map(Box::new);
    err.merge = respond.merge.clone().map(Box::new);
    for (name, value) in respond.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            err.headers.push((n, v));
        }
    }
    err
}

/// A `respond` rule applied to what the route would have answered (`normal`).
pub(crate) fn shape(respond: &Respond, normal: Value) -> Answer {
    if !respond.status.is_success() {
        return Answer::error(rule_error(respond));
    }
    let body = match (&respond.body, &respond.merge, normal) {
        (Some(body), _, _) => body.clone(),
        (None, Some(merge), Value::Object(mut obj)) => {
            for (k, v) in merge {
                obj.insert(k.clone(), v.clone());
            }
            Value::Object(obj)
        }
        (None, _, normal) => normal,
    };
    let status = StatusCode::from_u16(respond.status.code()).unwrap_or(StatusCode::OK);
    let mut answer = Answer::json(status, body);
    for (name, value) in respond.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            answer.headers.insert(n, v);
        }
    }
    answer
}

/// The request id: the client's `x-request-id` when usable, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
        .unwrap_or_else(new_request_id)
}

/// Serves one request.
pub(crate) async fn handle(
    state: Arc<AppState>,
    conn: ConnHandle,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Abort> {
    let started = Instant::now();
    let arrived = SystemTime::now();
    let request_id = request_id(req.headers());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();

    if path == "/__admin" || path.starts_with("/__admin/") {
        let mut response = crate::admin::handle(&state, req, &request_id).await;
        set_request_id(&mut response, &request_id);
        log_line(
            &method,
            &path,
            Some(response.status().as_u16()),
            0,
            started,
            None,
            None,
        );
        return Ok(response);
    }

    let query = parse_query(req.uri().query());
    let record = RequestRecord {
        id: request_id.clone(),
        seq: 0,
        time: rfc3339(arrived),
        method: method.to_string(),
        path: path.clone(),
        query: query
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
        headers: record_headers(req.headers()),
        status: None,
        rule: None,
        fault: None,
        cut: false,
        upload: None,
        body_bytes: 0,
        duration_ms: 0,
        retry_count: crate::journal::retry_count(req.headers()),
        call: String::new(),
        attempt: 0,
        near_misses: Vec::new(),
    };
    let mut flight = InFlight {
        state: Arc::clone(&state),
        record: Some(record),
        ex: Exchange {
            query,
            read_timeout_ms: crate::rules::model::announced_read_timeout_ms(req.headers()),
            ..Exchange::default()
        },
        method: method.clone(),
        started,
    };
    let ex = &mut flight.ex;

    let finish = match router::route(&method, &path) {
        Ok(Route::Upload) => crate::upload::handle(&state, req, ex).await,
        Ok(Route::ReadOnly(route)) => other_route(&state, route, req, ex).await,
        Err(err) => with_drained(req, Finish::Answer(Answer::error(err)), ex).await,
    };

    if ex.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ex.delay_ms)).await;
    }
    match finish {
        Finish::Answer(answer) => {
            let truncate = answer.truncate;
            let mut response = answer.into_response(&request_id);
            set_request_id(&mut response, &request_id);
            flight.set_status(response.status().as_u16());
            if truncate {
                response = truncated(response).await;
            }
            Ok(response)
        }
        Finish::Reset => {
            conn.reset_on_close();
            Err(Abort("reset"))
        }
        Finish::Hang(for_ms) => {
            let wait = async {
                match for_ms {
                    Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait => {}
                () = conn.closed_by_peer() => {}
            }
            Err(Abort("hang"))
        }
        Finish::ClientGone => {
            flight.ex.cut = true;
            Err(Abort("client closed the connection"))
        }
    }
    // `flight` is dropped here, or earlier if hyper drops this future because
    // the client went away: either way the request is logged and journaled.
}

/// A request being served. Dropping it logs the request and journals it, so
/// that a request whose future hyper drops (the client closed mid-request)
/// is recorded too, with `status: null`.
struct InFlight {
    state: Arc<AppState>,
    record: Option<RequestRecord>,
    ex: Exchange,
    method: Method,
    started: Instant,
}

impl InFlight {
    fn set_status(&mut self, status: u16) {
        if let Some(record) = &mut self.record {
            record.status = Some(status);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        record.rule = self.ex.rule.clone();
        record.fault = self.ex.fault.map(str::to_owned);
        record.upload = self.ex.upload.take();
        record.cut = self.ex.cut;
        record.body_bytes = self.ex.body_bytes;
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        record.near_misses = crate::rules::near_miss::explain(
            &self.state.rules,
            &self.ex.seen,
            self.ex.rule.as_deref(),
        );
        if !record.near_misses.is_empty() {
            tracing::debug!(
                target: "aymara_mock::request",
                id = %record.id,
                path = %record.path,
                near_misses = %crate::rules::near_miss::summary(&record.near_misses),
                "near misses"
            );
        }
        log_line(
            &self.method,
            &record.path,
            record.status,
            self.ex.body_bytes,
            self.started,
            self.ex.rule.as_deref(),
            self.ex.fault,
        );
        self.state.journal.push(record);
    }
}

fn set_request_id(response: &mut Response<ResponseBody>, request_id: &str) {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
}

fn log_line(
    method: &Method,
    path: &str,
    status: Option<u16>,
    bytes: u64,
    started: Instant,
    rule: Option<&str>,
    fault: Option<&str>,
) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let status = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
    tracing::info!(
        target: "aymara_mock::request",
        %method,
        %path,
        status = %status,
        bytes,
        ms = format_args!("{ms:.1}"),
        rule = rule.unwrap_or("-"),
        fault = fault.unwrap_or("-"),
        "request"
    );
}

/// Sends the status and headers with the full Content-Length, then half the
/// body, then fails. The body streams through: a file's bytes are not held.
async fn truncated(response: Response<ResponseBody>) -> Response<ResponseBody> {
    use http_body::Body as _;
    let (mut parts, body) = response.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (total, body) = match declared.or_else(|| body.size_hint().exact()) {
        Some(total) => (total, body),
        // A body of unknown length (none of ours) is measured first.
        None => {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            (bytes.len() as u64, crate::http_util::full(bytes))
        }
    };
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(total));
    let half = futures_util::stream::unfold((body, total / 2), |(mut body, left)| async move {
        if left == 0 {
            return None;
        }
        let mut data = body.frame().await?.ok()?.into_data().ok()?;
        if data.len() as u64 > left {
            data.truncate(left as usize);
        }
        let left = left - data.len() as u64;
        Some((Ok(http_body::Frame::data(data)), (body, left)))
    });
    // hyper flushes what it has buffered only when the body is pending: wait
    // a moment between the half and the failure, or the half is dropped
    // unsent along with the head.
    let failure = futures_util::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Err::<http_body::Frame<Bytes>, crate::http_util::BoxError>(
            "truncated by a fault rule".into(),
        )
    });
    let body =
        http_body_util::StreamBody::new(futures_util::StreamExt::chain(half, failure)).boxed();
    Response::from_parts(parts, body)
}

/// Reads (bounded) and drops the body of a request answered without it.
async fn with_drained(req: Request<Incoming>, finish: Finish, ex: &mut Exchange) -> Finish {
    let mut body = UploadBody::new(req.into_body(), u64::MAX, DRAIN_MAX_TIME);
    let complete = body.drain(DRAIN_MAX_BYTES, DRAIN_MAX_TIME).await;
    ex.body_bytes = body.control().read();
    match finish {
        Finish::Answer(answer) if !complete => Finish::Answer(answer.closing()),
        other => other,
    }
}

/// Read-only routes (health, files, OpenAPI): request-phase rules, then the route.
async fn other_route(
    state: &AppState,
    route: ReadOnly,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Finish {
    let (parts, incoming) = req.into_parts();
    let prefer = if matches!(route, ReadOnly::Health) {
        prefer_code(&parts.headers)
    } else {
        Ok(None)
    };
    let mut deferred: Option<Respond> = None;
    let mut truncate = false;
    let early = match prefer {
        Err(err) => Some(Finish::Answer(Answer::error(err))),
        Ok(Some(code)) if code != 200 => Some(Finish::Answer(Answer::error(prefer_error(code)))),
        Ok(Some(_)) => None,
        Ok(None) => {
            let decision = state.rules.decide_seen(
                Phase::Request,
                &RequestFacts {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    headers: &parts.headers,
                    query: &ex.query,
                    filename: None,
                    content_type: None,
                    size: None,
                },
                Some(&mut ex.seen),
            );
            match decision {
                None => None,
                Some(decision) => {
                    ex.rule = Some(decision.id.clone());
                    ex.delay_ms = decision.rule.delay_ms.millis(ex.read_timeout_ms);
                    match decision.action() {
                        Action::Pass => None,
                        Action::Respond(r) if r.status.is_success() => {
                            deferred = Some(r.clone());
                            None
                        }
                        Action::Respond(r) => Some(Finish::Answer(Answer::error(rule_error(r)))),
                        Action::Fault(fault) => {
                            ex.fault = Some(fault.name());
                            match fault {
                                Fault::Reset { .. } => Some(Finish::Reset),
                                Fault::Hang { for_ms } => {
                                    Some(Finish::Hang(for_ms.map(|w| w.millis(ex.read_timeout_ms))))
                                }
                                Fault::Truncate => {
                                    truncate = true;
                                    None
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let req = Request::from_parts(parts, incoming);
    if let Some(finish) = early {
        return with_drained(req, finish, ex).await;
    }
    let answer = match route {
        ReadOnly::Health => {
            let normal = json!({"status": "ok"});
            match &deferred {
                Some(respond) => shape(respond, normal),
                None => Answer::json(StatusCode::OK, normal),
            }
        }
        ReadOnly::File { file_uuid, name } => {
            let head = req.method() == Method::HEAD;
            let range = req
                .headers()
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut answer =
                crate::server::files::serve(state, &file_uuid, &name, range.as_deref(), head).await;
            if let Some(respond) = &deferred {
                if let Some(body) = &respond.body {
                    answer = Answer::json(
                        StatusCode::from_u16(respond.status.code()).unwrap_or(StatusCode::OK),
                        body.clone(),
                    );
                }
            }
            answer
        }
        ReadOnly::OpenApi => match crate::openapi_document() {
            Ok(doc) => Answer::json(StatusCode::OK, doc),
            Err(err) => Answer::error(ApiError::internal(format!(
                "the OpenAPI document is invalid: {err}"
            ))),
        },
    };
    let mut answer = answer;
    answer.truncate = truncate;
    with_drained(req, Finish::Answer(answer), ex).await
}
