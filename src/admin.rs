//! The admin API under `/__admin`: rules, the request journal, stored uploads
//! and reset. It reuses the fixture model for rules, and answers errors in the
//! API's envelope. Admin calls are not journaled.

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::error::{json_response, ApiError};
use crate::http_util::ResponseBody;
use crate::rules::{AddRuleError, RuleStatus};
use crate::server::state::AppState;

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

pub(crate) async fn handle(
    state: &AppState,
    req: Request<Incoming>,
    request_id: &str,
) -> Response<ResponseBody> {
    match route(state, req).await {
        Ok((status, body)) => json_response(status, &body),
        Err(err) => err.into_response(request_id),
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
    if presented == Some(token.as_str()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "The admin API needs `Authorization: Bearer <admin token>` (--admin-token).",
        ))
    }
}

async fn route(state: &AppState, req: Request<Incoming>) -> Result<(StatusCode, Value), ApiError> {
    authorized(state, &req)?;
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().clone();
    let tail = path.strip_prefix("/__admin").unwrap_or_default();
    match (tail, &method) {
        ("/rules", &Method::GET) => {
            let rules: Vec<Value> = state.rules.list().iter().map(rule_json).collect();
            Ok((StatusCode::OK, json!({ "rules": rules })))
        }
        ("/rules", &Method::POST) => {
            let text = read_body(req).await?;
            let rules = crate::rules::loading::parse_rules("<admin>", &text).map_err(|e| {
                ApiError::bad_request(format!("Invalid rule: {e}"))
                    .with_details(json!({"line": e.line, "column": e.column, "message": e.message}))
            })?;
            match state.rules.add(rules) {
                Ok(ids) => Ok((StatusCode::CREATED, json!({ "ids": ids }))),
                Err(err @ AddRuleError::DuplicateId(_)) => Err(ApiError::new(StatusCode::CONFLICT, err.to_string())),
                Err(AddRuleError::Invalid(e)) => Err(ApiError::bad_request(e.to_string())),
            }
        }
        ("/rules", &Method::DELETE) => {
            let count = state.rules.list().len();
            state.rules.clear();
            Ok((StatusCode::OK, json!({ "deleted": count })))
        }
        (t, &Method::DELETE) if t.starts_with("/rules/") => {
            let id = percent_encoding::percent_decode_str(&t["/rules/".len()..]).decode_utf8_lossy();
            if state.rules.remove(&id) {
                Ok((StatusCode::OK, json!({ "deleted": 1 })))
            } else {
                Err(ApiError::not_found(format!("No rule with id {id:?}.")))
            }
        }
        ("/requests", &Method::GET) => Ok((StatusCode::OK, json!({ "requests": state.journal.list() }))),
        ("/requests", &Method::DELETE) => {
            state.journal.clear();
            Ok((StatusCode::OK, json!({})))
        }
        ("/uploads", &Method::GET) => Ok((StatusCode::OK, json!({ "uploads": state.uploads.list() }))),
        ("/uploads", &Method::DELETE) => {
            let deleted = state.clear_uploads().await;
            Ok((StatusCode::OK, json!({ "deleted": deleted })))
        }
        ("/reset", &Method::POST) => {
            state
                .rules
                .reset()
                .map_err(|e| ApiError::internal(format!("Could not reload the fixtures: {e}")))?;
            state.journal.clear();
            state.clear_uploads().await;
            Ok((StatusCode::OK, json!({ "status": "reset" })))
        }
        ("/rules" | "/requests" | "/uploads", _) => Err(ApiError::method_not_allowed(match tail {
            "/rules" => "GET, POST, DELETE",
            _ => "GET, DELETE",
        })),
        ("/reset", _) => Err(ApiError::method_not_allowed("POST")),
        (t, _) if t.starts_with("/rules/") => Err(ApiError::method_not_allowed("DELETE")),
        _ => Err(ApiError::not_found(format!(
            "No admin route {path:?}: see /__admin/rules, /__admin/requests, /__admin/uploads, /__admin/reset."
        ))),
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
