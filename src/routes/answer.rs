//! What every route handler builds and shares: the [`Answer`] it gives, how
//! a request [`Finish`]es, the [`Exchange`] it gathers for the journal, and
//! the helpers that turn `Prefer: code=` and `respond` rules into answers.
//! Routes import this module, never the dispatcher that calls them.

use http::{HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::error::{default_error_code, default_error_message, json_response, ApiError};
use crate::files::ingest::Failure;
use crate::http_util::ResponseBody;
use crate::journal::FileSeen;
use crate::rules::model::Respond;
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
    pub(crate) effects: super::apply::Effects,
    /// What the rules saw, for the near misses.
    pub(crate) seen: crate::rules::near_miss::Seen,
    /// A web page's request (it sent `Origin`): its origin, whether it may
    /// call the API, and for a preflight what it asked for.
    pub(crate) cors: Option<crate::cors::CorsRecord>,
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

    /// An error answer rendered as S3's XML (the answers of presigned URLs).
    pub(crate) fn in_s3_xml(mut self) -> Self {
        if let Payload::Error(err) = self.payload {
            self.payload = Payload::Error(err.in_s3_xml());
        }
        self
    }

    /// The `error.code` the client is sent: the envelope's (a rule's
    /// `body` or `merge` may replace it), S3's code for its XML; `None` for
    /// an answer that is not an error envelope.
    pub(crate) fn error_code(&self) -> Option<String> {
        let Payload::Error(err) = &self.payload else {
            return None;
        };
        if err.s3_xml {
            return Some(err.code.clone());
        }
        let code_of = |error: &Value| error.get("code")?.as_str().map(str::to_owned);
        if let Some(body) = err.body_override.as_deref() {
            return body.get("error").and_then(code_of);
        }
        match err.merge.as_deref().and_then(|merge| merge.get("error")) {
            Some(error) => code_of(error),
            None => Some(err.code.clone()),
        }
    }

    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    pub(crate) fn into_response(self, request_id: &str) -> Response<ResponseBody> {
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

/// A `respond` rule applied to what the route would have answered
/// (`normal`), the same way on every route: an error status answers the
/// rule's envelope; a success status replaces the route's status, adds the
/// rule's headers, and `body` replaces the body while `merge` shallow-merges
/// into it (a body that is not a JSON object, such as a download's bytes, is
/// taken as `{}`).
pub(crate) fn shape(respond: &Respond, normal: Answer) -> Answer {
    if !respond.status.is_success() {
        return Answer::error(rule_error(respond));
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
        (None, Some(merge), Payload::Error(mut err)) => {
            err.status = status;
            err.merge = Some(Box::new(merge.clone()));
            Payload::Error(err)
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
