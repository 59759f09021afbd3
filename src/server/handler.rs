//! Every request goes through [`handle`]: request id, the route table
//! (`crate::routes`), the request phase and the route's handler, then the
//! answer is delayed, truncated or replaced by a network fault as the rules
//! decided ([`super::carry_out`]), granted to the web page that asked if `--cors-origin` allows it
//! (`crate::cors`), logged and journaled (admin requests are logged, not
//! journaled, and never granted).

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderMap, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::carry_out;
use super::conn::ConnHandle;
use crate::error::ApiError;
use crate::http_util::{new_request_id, rfc3339, ResponseBody};
use crate::journal::{parse_query, RequestRecord};
use crate::redact::record_headers;
use crate::request::body::UploadBody;
use crate::routes::answer::{Abort, Answer, Exchange, Finish};
use crate::routes::apply::{self, Step};
use crate::routes::{
    downloads, files_api, health, openapi, preflight, put, store, upload, AdminRoute, Route,
};
use crate::state::AppState;

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

    // A browser's CORS preflight is its own route; the admin API has none
    // (its paths resolve as usual, and `same_origin` refuses the page).
    let resolved = if crate::cors::is_preflight(&method, req.headers())
        && !crate::routes::is_admin_path(&path)
    {
        Route::preflight(&path)
    } else {
        Route::resolve(&method, &path)
    };
    let resolved = match resolved {
        Ok(Route::Admin(route)) => return Ok(admin(&state, req, Ok(route), &request_id).await),
        Err(err) if crate::routes::is_admin_path(&path) => {
            return Ok(admin(&state, req, Err(err), &request_id).await)
        }
        other => other,
    };

    // A page on an origin `--cors-origin` allows may read every answer of a
    // client route (errors, rule answers and the table's 404/405 included).
    let cors = state.settings.cors.visit(req.headers());
    let granted_origin = match &resolved {
        Ok(route) if !route.cross_origin() => None,
        _ => cors
            .as_ref()
            .filter(|c| c.allowed)
            .and_then(|_| req.headers().get(http::header::ORIGIN).cloned()),
    };
    let metric_route = match &resolved {
        Ok(Route::Preflight { .. }) => "preflight",
        Ok(route) => route.rule_name().map_or("unrouted", |name| name.as_str()),
        Err(_) => "unrouted",
    };
    let query = parse_query(req.uri().query());
    let record = RequestRecord {
        id: request_id.clone(),
        seq: 0,
        time: rfc3339(arrived),
        method: method.to_string(),
        path: path.clone(),
        query: query
            .iter()
            .map(|(k, v)| {
                // A key, token or password in the URL, or a presigned
                // URL's signature (a credential for its file).
                let v = if crate::redact::is_credential_param(k) {
                    crate::redact::REDACTED
                } else {
                    v
                };
                (k.clone(), Value::String(v.to_owned()))
            })
            .collect::<Map<_, _>>(),
        headers: record_headers(req.headers()),
        status: None,
        rule: None,
        fault: None,
        error_code: None,
        cut: false,
        upload: None,
        cors: None,
        file_seen: None,
        body_bytes: 0,
        duration_ms: 0,
        retry_count: crate::journal::retry_count(req.headers()),
        call: String::new(),
        attempt: 0,
        near_misses: Vec::new(),
        replica: None,
        pending: crate::journal::Explainer::default(),
    };
    let mut flight = InFlight {
        state: Arc::clone(&state),
        record: Some(record),
        ex: Exchange {
            query,
            read_timeout_ms: crate::rules::model::announced_read_timeout_ms(req.headers()),
            cors,
            ..Exchange::default()
        },
        method: method.clone(),
        started,
        metric_route,
    };
    let ex = &mut flight.ex;

    // A presigned URL answers its errors as S3 does.
    let s3 = matches!(
        resolved,
        Ok(Route::Put { .. }
            | Route::Preflight {
                presigned: true,
                ..
            })
    );
    let finish = match serve(&state, resolved, req, ex).await {
        Finish::Answer(answer) if s3 => Finish::Answer(answer.in_s3_xml()),
        finish => finish,
    };

    match carry_out::carry_out(finish, ex.effects.delay_ms, &conn).await {
        Ok(answer) => {
            let truncate = answer.truncate;
            let error_code = answer.error_code();
            if let Some(record) = &mut flight.record {
                record.error_code = error_code;
            }
            let mut response = answer.into_response(&request_id);
            set_request_id(&mut response, &request_id);
            if let Some(origin) = &granted_origin {
                crate::cors::grant(&mut response, origin);
            }
            flight.set_status(response.status().as_u16());
            if truncate {
                response = carry_out::truncated(response).await;
            }
            // The changes it made to the files and the request itself are
            // written to a shared state store before the answer goes: side
            // by side, so that the two commands share one round trip.
            let record = flight.close();
            let journaled = async {
                if let Some(record) = record {
                    state.journal_now(record).await;
                }
            };
            tokio::join!(state.flush_events(), journaled);
            Ok(response)
        }
        Err(ended) => {
            if ended == carry_out::Ended::ClientGone {
                flight.ex.cut = true;
            }
            Err(ended.abort())
        }
    }
    // `flight` is dropped here, or earlier if hyper drops this future because
    // the client went away: either way the request is logged and journaled.
}

/// An admin request: answered, logged, not journaled.
async fn admin(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    route: Result<AdminRoute, ApiError>,
    request_id: &str,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut response = crate::routes::admin::handle(state, req, route, request_id).await;
    state.flush_events().await;
    set_request_id(&mut response, request_id);
    state.metrics.ended(&crate::metrics::Ended {
        route: "admin",
        method: &method,
        status: Some(response.status().as_u16()),
        elapsed: started.elapsed(),
        fault: None,
        stored_bytes: None,
    });
    log_line(
        &method,
        &path,
        Some(response.status().as_u16()),
        0,
        started,
        None,
        None,
    );
    response
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
    /// Its route's name in `GET /metrics`.
    metric_route: &'static str,
}

impl InFlight {
    fn set_status(&mut self, status: u16) {
        if let Some(record) = &mut self.record {
            record.status = Some(status);
        }
    }
}

impl InFlight {
    /// Logs the request and counts it in the metrics; returns its journal
    /// record, once.
    fn close(&mut self) -> Option<RequestRecord> {
        let mut record = self.record.take()?;
        record.rule = self.ex.rule.clone();
        record.fault = self.ex.fault.map(str::to_owned);
        record.upload = self.ex.upload.take();
        record.cors = self.ex.cors.take();
        record.file_seen = self.ex.file_seen.take();
        record.cut = self.ex.cut;
        record.body_bytes = self.ex.body_bytes;
        record.duration_ms = self.started.elapsed().as_millis() as u64;
        let seen = std::mem::take(&mut self.ex.seen);
        let pending = crate::rules::near_miss::Pending::new(seen, self.ex.rule.clone());
        record.pending = crate::journal::Explainer(pending.map(Arc::new));
        // Worked out now only for the debug log; else when first read.
        if tracing::enabled!(target: "aymara_mock::request", tracing::Level::DEBUG) {
            let misses = record.near_misses_with(&self.state.rules);
            if !misses.is_empty() {
                tracing::debug!(
                    target: "aymara_mock::request",
                    id = %record.id,
                    path = %record.path,
                    near_misses = %crate::rules::near_miss::summary(misses),
                    "near misses"
                );
            }
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
        self.state.metrics.ended(&crate::metrics::Ended {
            route: self.metric_route,
            method: &self.method,
            status: record.status,
            elapsed: self.started.elapsed(),
            fault: self.ex.fault,
            stored_bytes: record.upload.as_ref().map(|upload| upload.size),
        });
        Some(record)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(record) = self.close() {
            self.state.journal_later(record);
        }
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

/// A request for an emulated route (or the 404 / 405 the table gave it):
/// the request phase, then the route's handler; the body is read to its end
/// or the connection closed after the answer.
async fn serve(
    state: &Arc<AppState>,
    resolved: Result<Route, ApiError>,
    req: Request<Incoming>,
    ex: &mut Exchange,
) -> Finish {
    let (parts, incoming) = req.into_parts();
    let limit = match resolved {
        Ok(Route::Upload) => state
            .settings
            .max_upload_size
            .saturating_add(upload::FRAMING_ALLOWANCE),
        _ => u64::MAX,
    };
    let mut body = UploadBody::new(incoming, limit, state.settings.body_timeout);
    let ctl = body.control();
    let route = match resolved {
        Ok(route) => route,
        Err(err) => {
            let finish = Finish::from(err);
            return apply::finish_body(&parts, &mut body, &ctl, finish, ex).await;
        }
    };
    if route.serves_stored() {
        let authority = crate::same_origin::authority_of(&parts.uri, &parts.headers);
        if let Err(err) = state.settings.same_origin.check_host(authority.as_deref()) {
            let finish = Finish::from(err);
            return apply::finish_body(&parts, &mut body, &ctl, finish, ex).await;
        }
    }
    if let Step::Stop(finish) = apply::request_phase(state, &route, &parts, &ctl, ex).await {
        return apply::finish_body(&parts, &mut body, &ctl, finish, ex).await;
    }
    let normal = match &route {
        Route::Upload | Route::Put { .. } => {
            let request = store::Incoming {
                state,
                parts: &parts,
                body: &mut body,
                ctl: &ctl,
                ex,
            };
            let finish = Finish::from(if route == Route::Upload {
                upload::receive(request).await
            } else {
                put::receive(request).await
            });
            return apply::finish_body(&parts, &mut body, &ctl, finish, ex).await;
        }
        Route::CreateFiles => {
            let answer = ex
                .effects
                .shape(files_api::create(state, &mut body, &ctl).await);
            return apply::finish_body(&parts, &mut body, &ctl, Finish::Answer(answer), ex).await;
        }
        Route::ListFiles => files_api::list(state, &ex.query).await,
        Route::GetFile { file_uuid } => files_api::get(state, file_uuid).await,
        Route::FileStatus { file_uuid } => files_api::status(state, file_uuid).await,
        Route::FileFrames { file_uuid } => files_api::frames(state, file_uuid).await,
        Route::DeleteFile { file_uuid } => files_api::delete(state, file_uuid).await,
        Route::Frame {
            file_uuid,
            frame,
            head,
        } => files_api::frame(state, file_uuid, frame, *head),
        Route::Preflight { methods, presigned } => preflight::answer(
            &state.settings.cors,
            &parts.headers,
            methods,
            *presigned,
            ex,
        ),
        Route::Health => health::answer(state).await,
        Route::OpenApi => openapi::answer(),
        Route::Download {
            file_uuid,
            name,
            head,
        } => {
            let range = parts
                .headers
                .get(http::header::RANGE)
                .and_then(|v| v.to_str().ok());
            downloads::serve(state, file_uuid, name, range, *head).await
        }
        Route::Admin(_) => Answer::error(ApiError::internal("the admin API is served apart")),
    };
    let answer = ex.effects.shape(normal);
    apply::after_body(&parts, &mut body, &ctl, answer, ex).await
}
