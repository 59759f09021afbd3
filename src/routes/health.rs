//! `GET /health`: the server is up.

use http::StatusCode;
use serde_json::json;

use super::answer::Answer;

/// `{"status": "ok"}`.
pub(crate) fn answer() -> Answer {
    Answer::json(StatusCode::OK, json!({"status": "ok"}))
}
