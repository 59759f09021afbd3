//! `GET /openapi.json`: the OpenAPI document of the emulated API.

use http::StatusCode;

use super::answer::Answer;
use crate::error::ApiError;

/// The document, or a 500 if the shipped one does not parse.
pub(crate) fn answer() -> Answer {
    match crate::openapi_document() {
        Ok(doc) => Answer::json(StatusCode::OK, doc),
        Err(err) => Answer::error(ApiError::internal(format!(
            "the OpenAPI document is invalid: {err}"
        ))),
    }
}
