//! `GET /health`: the server is up.

use http::StatusCode;

use super::answer::Answer;
use crate::state::AppState;

/// `{"status": "ok"}`, or with a shared state store that does not answer,
/// `{"status": "degraded", "reason": ...}` (still 200: the replica is up,
/// and restarting it would not bring the store back).
pub(crate) async fn answer(state: &AppState) -> Answer {
    Answer::json(StatusCode::OK, state.health().await)
}
