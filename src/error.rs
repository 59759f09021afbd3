//! The API's error envelope, and the only place that turns an error into an HTTP answer.

use crate::storage::{is_storage_full, StorageError};
use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::http_util::{full, ResponseBody};

/// The real API's default error `code` for an HTTP status.
///
/// ```
/// assert_eq!(aymara_mock::default_error_code(429), "quota.limit_exceeded");
/// assert_eq!(aymara_mock::default_error_code(418), "validation.invalid_request");
/// assert_eq!(aymara_mock::default_error_code(502), "server.internal_error");
/// ```
pub fn default_error_code(status: u16) -> &'static str {
    match status {
        400 => "validation.invalid_request",
        401 => "auth.invalid_key",
        403 => "auth.insufficient_permissions",
        404 => "resource.not_found",
        409 => "resource.conflict",
        422 => "validation.invalid_format",
        429 => "quota.limit_exceeded",
        500 => "server.internal_error",
        503 => "server.unavailable",
        s if s >= 500 => "server.internal_error",
        _ => "validation.invalid_request",
    }
}

/// A realistic default message for a documented status, used when a rule or a
/// `Prefer: code=` header does not give one.
pub(crate) fn default_error_message(status: u16) -> &'static str {
    match status {
        400 => "The request is invalid.",
        401 => "Invalid API key.",
        403 => "This API key does not have permission to perform this action.",
        404 => "The requested resource was not found.",
        409 => "The request conflicts with the current state of the resource.",
        422 => "The request could not be processed.",
        429 => "Rate limit exceeded. Please retry later.",
        500 => "An internal server error occurred.",
        503 => "The service is temporarily unavailable. Please retry later.",
        s if s >= 500 => "An internal server error occurred.",
        _ => "The request is invalid.",
    }
}

/// Statuses the real API documents for the upload endpoint (besides 200).
pub const DOCUMENTED_ERROR_STATUSES: [u16; 9] = [400, 401, 403, 404, 409, 422, 429, 500, 503];

/// An error answer: status, envelope parts and extra headers.
///
/// Everything that ends a request with an error (validation, auth, routing,
/// storage, an injected status) is an `ApiError`; its `into_response` is
/// the one place that renders it.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.code` in the envelope.
    pub code: String,
    /// `error.message` in the envelope: says what to fix.
    pub message: String,
    /// `error.details`.
    pub details: Box<Value>,
    /// Extra response headers (`Allow`, `Retry-After`, `Connection`, …).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Rendered as S3 renders its errors (an XML `<Error>`), not as the
    /// envelope: the answers of presigned upload URLs.
    pub(crate) s3_xml: bool,
}

impl ApiError {
    /// An error with the default code for `status` and the given message.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code: default_error_code(status.as_u16()).to_owned(),
            message: message.into(),
            details: Box::new(json!({})),
            headers: Vec::new(),
            s3_xml: false,
        }
    }

    /// An error as S3 answers it (`code`: S3's, e.g. `AccessDenied`).
    pub(crate) fn s3(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let mut err = Self::new(status, message).with_code(code);
        err.s3_xml = true;
        err
    }

    /// This error rendered as S3's XML. An API code (`server.unavailable`)
    /// becomes S3's for the status; a code without a dot (a rule's
    /// `"code": "SlowDown"`) is kept.
    pub(crate) fn in_s3_xml(mut self) -> Self {
        if self.code.contains('.') {
            self.code = s3_code(self.status.as_u16()).to_owned();
        }
        self.s3_xml = true;
        self
    }

    /// Replaces `error.code`.
    pub(crate) fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }

    /// Replaces `error.details`.
    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = Box::new(details);
        self
    }

    /// Adds a response header (invalid values are skipped).
    pub(crate) fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((name, v));
        }
        self
    }

    /// The value of an extra header, if set.
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message).with_details(json!({ "field": field }))
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn method_not_allowed(allow: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method not allowed on this path; allowed: {allow}."),
        )
        .with_header(http::header::ALLOW, allow)
    }

    pub(crate) fn payload_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "The upload is larger than the maximum upload size of {} bytes (--max-upload-size).",
                limit
            ),
        )
        .with_details(json!({ "field": "file", "max_upload_size": limit }))
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// A storage failure: 503 while an object store cannot be reached, 500
    /// otherwise. The cause is logged here, once.
    pub(crate) fn storage(err: &StorageError) -> Self {
        tracing::error!(error = %err, "storage failure");
        match err {
            StorageError::QuotaFull => Self::internal(
                "The storage quota is full (--max-storage): delete uploads (DELETE /__admin/uploads) or raise the quota.",
            ),
            StorageError::Io(io) if is_storage_full(io) => Self::internal(
                "The storage is full: the disk under the storage directory has no space left.",
            ),
            StorageError::Io(io) => Self::internal(format!("Could not store the upload: {io}.")),
            StorageError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The object store behind the emulator cannot be reached. Please retry later.",
            ),
            StorageError::Store(cause) => {
                Self::internal(format!("The object store refused the operation: {cause}"))
            }
        }
    }

    /// The shared state store (`--state redis://`) could not be used: 503,
    /// naming the store. Never answered from this replica's own state
    /// instead, which would make the replicas disagree.
    #[cfg(feature = "redis")]
    pub(crate) fn state_store(err: &crate::cluster::StoreError) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "The state store behind the emulator ({}) cannot be reached: {}. Please retry later.",
                err.url, err.reason
            ),
        )
    }

    /// The JSON body this error renders to, for `request_id`.
    pub(crate) fn body(&self, request_id: &str) -> Value {
        json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "request_id": request_id,
                "details": self.details,
            },
            "request_id": request_id,
        })
    }

    /// Renders the envelope (or S3's XML) as an HTTP response.
    pub(crate) fn into_response(self, request_id: &str) -> Response<ResponseBody> {
        let mut response = if self.s3_xml {
            s3_xml_response(self.status, &self.code, &self.message, request_id)
        } else {
            json_response(self.status, &self.body(request_id))
        };
        for (name, value) in &self.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
        response
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// S3's error code for a status.
fn s3_code(status: u16) -> &'static str {
    match status {
        400 => "InvalidRequest",
        403 => "AccessDenied",
        404 => "NoSuchKey",
        405 => "MethodNotAllowed",
        408 => "RequestTimeout",
        411 => "MissingContentLength",
        413 => "EntityTooLarge",
        429 | 503 => "SlowDown",
        501 => "NotImplemented",
        s if s >= 500 => "InternalError",
        _ => "InvalidRequest",
    }
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// An error as S3 answers it: `application/xml`, `<Error>` with `Code`,
/// `Message` and `RequestId` (also sent as `x-amz-request-id`).
fn s3_xml_response(
    status: StatusCode,
    code: &str,
    message: &str,
    request_id: &str,
) -> Response<ResponseBody> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId><HostId>aymara-mock</HostId></Error>",
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id)
    );
    let mut response = Response::new(full(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", id);
    }
    response
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<ResponseBody> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    json_body_response(status, full(Bytes::from(bytes)))
}

/// A response whose body, already JSON (possibly streamed), is sent as is.
pub(crate) fn json_body_response(status: StatusCode, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_carries_request_id_twice_and_default_code() {
        let err = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "down");
        let body = err.body("req_1");
        assert_eq!(body["request_id"], "req_1");
        assert_eq!(body["error"]["request_id"], "req_1");
        assert_eq!(body["error"]["code"], "server.unavailable");
        assert_eq!(body["error"]["message"], "down");
        assert_eq!(body["error"]["details"], json!({}));
    }

    #[test]
    fn s3_errors_render_as_s3_xml_with_s3_codes() {
        let err = ApiError::payload_too_large(10).in_s3_xml();
        let response = err.into_response("req_<1>");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(response.headers()["content-type"], "application/xml");
        assert_eq!(response.headers()["x-amz-request-id"], "req_<1>");
        let err = ApiError::s3(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired");
        assert_eq!(err.code, "AccessDenied");
        assert!(err.s3_xml);
        let kept = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "x")
            .with_code("SlowDown")
            .in_s3_xml();
        assert_eq!(kept.code, "SlowDown");
        assert_eq!(ApiError::internal("x").in_s3_xml().code, "InternalError");
        assert_eq!(xml_escape("a<b&'\""), "a&lt;b&amp;&apos;&quot;");
    }
}
