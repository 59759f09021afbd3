//! What every route handler builds and shares: the [`Answer`] it gives, how
//! a request [`Finish`]es, the [`Exchange`] it gathers for the journal, and
//! the helpers that turn `Prefer: code=` and `respond` rules into answers.
//! Routes import this module, never the dispatcher that calls them.

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::error::{default_error_code, default_error_message, json_response, ApiError};
use crate::files::ingest::Failure;
use crate::http_util::ResponseBody;
use crate::journal::FileSeen;
use crate::rules::model::{Action, Processing, Respond};
use crate::rules::Decision;
use crate::storage::StoredUpload;

/// The connection is closed without an answer (a fault, or the client left).
#[derive(Debug, thiserror::Error)]
#[error("connection closed without an answer ({0})")]
pub(crate) struct Abort(pub(crate) &'static str);

/// What a request handler gathers for the journal and the log.
#[derive(Debug, Default)]
pub(crate) struct Exchange {
    pub(crate) query: Vec<(String, String)>,
    pub(crate) rule: Option<String>,
    pub(crate) fault: Option<&'static str>,
    pub(crate) upload: Option<StoredUpload>,
    /// What was seen of the file, stored or not (see [`FileSeen`]).
    pub(crate) file_seen: Option<FileSeen>,
    pub(crate) body_bytes: u64,
    /// The client's body ended before its framing said it would.
    pub(crate) cut: bool,
    /// The read timeout the client announced (`x-stainless-read-timeout`), in ms.
    pub(crate) read_timeout_ms: Option<u64>,
    /// What the rules decided for this request.
    pub(crate) effects: Effects,
    /// What the rules saw, for the near misses.
    pub(crate) seen: crate::rules::near_miss::Seen,
    /// A web page's request (it sent `Origin`): its origin, whether it may
    /// call the API, and for a preflight what it asked for.
    pub(crate) cors: Option<crate::cors::CorsRecord>,
}

/// What the rules decided for a request, one value gathered as rules fire
/// at each phase (`super::apply::apply`) and kept in the request's `Exchange`: the route
/// reads it to shape its answer and to keep or discard a file, and
/// `server::carry_out` carries out the rest once the route has answered.
/// (A throttle and a `reset` after N bytes act on the body while it is
/// read, so they go to the body's `BodyControl` instead.)
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Whether rules are consulted (not for `Prefer: code=200`).
    pub(crate) rules_apply: bool,
    /// Wait this long before answering: the longest `delay_ms` of the rules
    /// that fired.
    pub(crate) delay_ms: u64,
    /// A respond rule whose answer is given once the route has answered.
    pub(crate) deferred: Option<Decision>,
    /// Send half the answer's body under its full length, then close.
    pub(crate) truncate: bool,
    /// Keep the file even though the client is not told it succeeded.
    pub(crate) keep_upload: bool,
    /// A fired rule's verdict on the processing of the file this request stores.
    pub(crate) processing: Option<Processing>,
}

impl Effects {
    /// The route's answer as the deferred `respond` rule, if any, shapes it;
    /// marked for truncation if a rule said so.
    pub(crate) fn shape(&self, normal: Answer) -> Answer {
        let mut answer = match self.deferred.as_ref().map(Decision::action) {
            Some(Action::Respond(respond)) => shape(respond, normal),
            _ => normal,
        };
        answer.truncate |= self.truncate;
        answer
    }
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

/// An error answer.
impl From<ApiError> for Finish {
    fn from(err: ApiError) -> Self {
        Finish::Answer(Answer::error(err))
    }
}

/// An answer given as it is.
impl From<Answer> for Finish {
    fn from(answer: Answer) -> Self {
        Finish::Answer(answer)
    }
}

/// A handler's outcome: its answer (`Ok`) or another ending (`Err`, which
/// may also be an error answer) alike.
impl From<Result<Answer, Finish>> for Finish {
    fn from(outcome: Result<Answer, Finish>) -> Self {
        match outcome {
            Ok(answer) => Finish::Answer(answer),
            Err(finish) => finish,
        }
    }
}

/// What the client gets when the storing pipeline produced no file.
impl From<Failure> for Finish {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused { error, close } => {
                let answer = Answer::error(error);
                Finish::Answer(if close { answer.closing() } else { answer })
            }
            Failure::Reset => Finish::Reset,
            Failure::ClientGone => Finish::ClientGone,
        }
    }
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant, reason = "one per request")]
enum Payload {
    Error(ApiError),
    Template(Template),
    Json(Value),
    Body(ResponseBody),
}

/// A `respond` rule's error answer: the envelope of the rule's status,
/// `code`, `message` and `details` (an [`ApiError`], which also carries the
/// rule's headers), which the rule's `body` replaces or its `merge` is
/// shallow-merged into. The emulator's own errors are plain `ApiError`s;
/// a rule's template is kept apart from them.
#[derive(Debug)]
struct Template {
    error: ApiError,
    /// Replaces the whole envelope.
    body: Option<Value>,
    /// Shallow-merged into the envelope.
    merge: Option<Map<String, Value>>,
}

impl Template {
    /// The JSON body for `request_id`.
    fn body(&self, request_id: &str) -> Value {
        if let Some(body) = &self.body {
            return body.clone();
        }
        let mut envelope = self.error.body(request_id);
        if let (Some(merge), Some(obj)) = (&self.merge, envelope.as_object_mut()) {
            for (k, v) in merge {
                obj.insert(k.clone(), v.clone());
            }
        }
        envelope
    }

    /// The `error.code` the client is sent (`body` or `merge` may replace it).
    fn error_code(&self) -> Option<String> {
        let code_of = |error: &Value| error.get("code")?.as_str().map(str::to_owned);
        if self.error.s3_xml {
            return Some(self.error.code.clone());
        }
        if let Some(body) = &self.body {
            return body.get("error").and_then(code_of);
        }
        match self.merge.as_ref().and_then(|merge| merge.get("error")) {
            Some(error) => code_of(error),
            None => Some(self.error.code.clone()),
        }
    }

    fn into_response(self, request_id: &str) -> Response<ResponseBody> {
        if self.error.s3_xml {
            // S3's XML has no place for a JSON body or merge.
            return self.error.into_response(request_id);
        }
        let mut response = json_response(self.error.status, &self.body(request_id));
        for (name, value) in &self.error.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
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

    /// An error answer rendered as S3's XML (the answers of presigned URLs).
    pub(crate) fn in_s3_xml(mut self) -> Self {
        self.payload = match self.payload {
            Payload::Error(err) => Payload::Error(err.in_s3_xml()),
            Payload::Template(mut template) => {
                template.error = template.error.in_s3_xml();
                Payload::Template(template)
            }
            other => other,
        };
        self
    }

    /// The `error.code` the client is sent: the envelope's (a rule's
    /// `body` or `merge` may replace it), S3's code for its XML; `None` for
    /// an answer that is not an error envelope.
    pub(crate) fn error_code(&self) -> Option<String> {
        match &self.payload {
            Payload::Error(err) => Some(err.code.clone()),
            Payload::Template(template) => template.error_code(),
            Payload::Json(_) | Payload::Body(_) => None,
        }
    }

    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub(crate) fn into_response(self, request_id: &str) -> Response<ResponseBody> {
        let mut response = match self.payload {
            Payload::Error(err) => err.into_response(request_id),
            Payload::Template(template) => template.into_response(request_id),
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
/// `documented` lists the route's error statuses; 200 is always allowed.
pub(crate) fn prefer_code(
    headers: &HeaderMap,
    documented: &[u16],
) -> Result<Option<u16>, ApiError> {
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
                Ok(c) if c == 200 || documented.contains(&c) => Ok(Some(c)),
                _ => Err(ApiError::bad_request(format!(
                    "Prefer: code={code} is not a documented status of this endpoint; use {} (or a fault rule for others).",
                    statuses_list(documented)
                ))
                .with_details(json!({"field": "prefer"}))),
            };
        }
    }
    Ok(None)
}

/// `200, 400, … or 503`.
fn statuses_list(documented: &[u16]) -> String {
    let mut all: Vec<String> = std::iter::once(200)
        .chain(documented.iter().copied())
        .map(|c| c.to_string())
        .collect();
    let last = all.pop().unwrap_or_default();
    if all.is_empty() {
        last
    } else {
        format!("{} or {last}", all.join(", "))
    }
}

/// The default envelope for a documented status, as `Prefer: code=` asks.
pub(crate) fn prefer_error(code: u16) -> ApiError {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    ApiError::new(status, default_error_message(code))
}

/// The error answer of a `respond` rule (its status is not a success).
pub(crate) fn rule_answer(respond: &Respond) -> Answer {
    let code = respond.status.code();
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut error = ApiError::new(
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
        error = error.with_details(details.clone());
    }
    for (name, value) in respond.headers.iter() {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name),
            HeaderValue::try_from(value),
        ) {
            error.headers.push((n, v));
        }
    }
    let template = Template {
        error,
        body: respond.body.clone(),
        merge: respond.merge.clone(),
    };
    Answer {
        status,
        headers: HeaderMap::new(),
        payload: Payload::Template(template),
        close: false,
        truncate: false,
    }
}

/// A `respond` rule applied to what the route would have answered
/// (`normal`), the same way on every route: an error status answers the
/// rule's envelope; a success status replaces the route's status, adds the
/// rule's headers, and `body` replaces the body while `merge` shallow-merges
/// into it (a body that is not a JSON object, such as a download's bytes, is
/// taken as `{}`).
pub(crate) fn shape(respond: &Respond, normal: Answer) -> Answer {
    if !respond.status.is_success() {
        return rule_answer(respond);
    }
    let status = StatusCode::from_u16(respond.status.code()).unwrap_or(StatusCode::OK);
    let Answer {
        headers,
        payload,
        close,
        truncate,
        ..
    } = normal;
    let payload = match (&respond.body, &respond.merge, payload) {
        (Some(body), _, _) => Payload::Json(body.clone()),
        (None, Some(merge), Payload::Error(mut error)) => {
            error.status = status;
            Payload::Template(Template {
                error,
                body: None,
                merge: Some(merge.clone()),
            })
        }
        (None, Some(merge), Payload::Template(mut template)) => {
            template.error.status = status;
            template
                .merge
                .get_or_insert_with(Map::new)
                .extend(merge.iter().map(|(k, v)| (k.clone(), v.clone())));
            Payload::Template(template)
        }
        (None, Some(merge), payload) => {
            let mut obj = match payload {
                Payload::Json(Value::Object(obj)) => obj,
                _ => serde_json::Map::new(),
            };
            for (k, v) in merge {
                obj.insert(k.clone(), v.clone());
            }
            Payload::Json(Value::Object(obj))
        }
        (None, None, Payload::Error(mut err)) => {
            err.status = status;
            Payload::Error(err)
        }
        (None, None, Payload::Template(mut template)) => {
            template.error.status = status;
            Payload::Template(template)
        }
        (None, None, payload) => payload,
    };
    // A replaced body has its own length: the route's framing headers go.
    let mut headers = headers;
    if matches!(payload, Payload::Json(_)) {
        headers.remove(http::header::CONTENT_LENGTH);
        headers.remove(http::header::CONTENT_RANGE);
        headers.remove(http::header::CONTENT_TYPE);
    }
    let mut answer = Answer {
        status,
        headers,
        payload,
        close,
        truncate,
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(json: Value) -> Respond {
        serde_json::from_value(json).expect("a respond")
    }

    fn body_of(answer: Answer) -> Value {
        let Payload::Template(template) = answer.payload else {
            panic!("a rule's error answer is a template");
        };
        template.body("r")
    }

    #[test]
    fn a_rules_merge_overrides_top_level_fields_only() {
        let answer = rule_answer(&respond(json!({"status": 400, "merge": {"extra": 1}})));
        assert_eq!(
            answer.error_code().as_deref(),
            Some("validation.invalid_request")
        );
        let body = body_of(answer);
        assert_eq!(body["extra"], 1);
        assert_eq!(body["error"]["code"], "validation.invalid_request");
        assert_eq!(body["request_id"], "r");
    }

    #[test]
    fn a_rules_body_replaces_the_envelope_and_names_the_code_sent() {
        let rule = respond(json!({"status": 429, "body": {"error": {"code": "slow.down"}}}));
        let answer = rule_answer(&rule);
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(answer.error_code().as_deref(), Some("slow.down"));
        assert_eq!(body_of(answer), json!({"error": {"code": "slow.down"}}));
        let merged = rule_answer(&respond(
            json!({"status": 503, "merge": {"error": {"code": "x"}}}),
        ));
        assert_eq!(merged.error_code().as_deref(), Some("x"));
    }

    #[test]
    fn an_emulator_error_is_its_own_envelope() {
        let answer = Answer::error(ApiError::internal("boom"));
        assert_eq!(
            answer.error_code().as_deref(),
            Some("server.internal_error")
        );
    }
}
