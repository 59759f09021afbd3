//! The one rule applier, used by every route that takes rules: the request
//! phase (`Prefer: code=`, request-phase rules, then the route's credentials)
//! runs the same way everywhere, and a rule that fires means the same on
//! every route: its `delay_ms` (the longest of a request's rules), its
//! `throttle_bytes_per_sec` and `reset.after_bytes` (on the request body, as
//! it is read), `keep_upload`, its faults, and a `respond` (see
//! [`super::answer::shape`] for how a 2xx one reshapes the route's answer).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::request::Parts;

use super::answer::{prefer_code, prefer_error, rule_answer, Answer, Exchange, Finish};
use super::{Access, Route};
use crate::request::body::{BodyControl, BodyFailure, UploadBody};
use crate::request::{DRAIN_MAX_BYTES, DRAIN_MAX_TIME};
use crate::rules::model::{Action, Fault, Phase, RouteName};
use crate::rules::{Decision, RequestFacts};
use crate::state::AppState;

/// The next step after a rule fired.
#[allow(clippy::large_enum_variant, reason = "one per phase of a request")]
pub(crate) enum Step {
    Continue,
    Stop(Finish),
}

/// What a rule can see of this request before its body: the route, method,
/// path, headers and query.
pub(crate) fn facts<'a>(
    route: RouteName,
    parts: &'a Parts,
    query: &'a [(String, String)],
) -> RequestFacts<'a> {
    RequestFacts {
        route,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        headers: &parts.headers,
        query,
        filename: None,
        content_type: None,
        size: None,
    }
}

/// The request phase, the same on every route that takes rules: `Prefer:
/// code=` (where the route documents statuses) and rules come before
/// authentication, so that a scenario can answer for any key; a `Prefer:
/// code=200` request is served plainly, no rule consulted. With a shared
/// state store, the rules are first brought up to the store's; when it
/// cannot be reached the request is answered 503, but for `/health`, which
/// is then served without rules (and says `degraded`).
pub(crate) async fn request_phase(
    state: &AppState,
    route: &Route,
    parts: &Parts,
    ctl: &BodyControl,
    ex: &mut Exchange,
) -> Step {
    // The rules first: another replica's reset, found there, forgets the
    // files that the files' changes read next would otherwise keep.
    if route.rule_name().is_some() {
        if let Err(err) = state.sync_rules().await {
            if *route == Route::Health {
                return Step::Continue;
            }
            return Step::Stop(err.into());
        }
    }
    if route.reads_files() {
        if let Err(err) = state.sync_files().await {
            return Step::Stop(err.into());
        }
    }
    let prefer = match route.documented_statuses() {
        Some(documented) => prefer_code(&parts.headers, documented),
        None => Ok(None),
    };
    match prefer {
        Err(err) => return Step::Stop(err.into()),
        Ok(Some(200)) => ex.effects.rules_apply = false,
        Ok(Some(code)) => return Step::Stop(prefer_error(code).into()),
        Ok(None) => {
            // The admin API takes no rules.
            let Some(name) = route.rule_name() else {
                return Step::Continue;
            };
            ex.effects.rules_apply = true;
            let facts = facts(name, parts, &ex.query);
            let decision = match state.decide(Phase::Request, &facts, &mut ex.seen).await {
                Ok(decision) => decision,
                Err(err) => return Step::Stop(err.into()),
            };
            if let Step::Stop(finish) = apply(decision, ctl, ex, Phase::Request) {
                return Step::Stop(finish);
            }
        }
    }
    if route.access() == Access::ApiKey {
        if let Err(err) = crate::auth::check(&state.settings.auth, &parts.headers) {
            return Step::Stop(err.into());
        }
    }
    Step::Continue
}

/// Carries out the rule that fired at `phase`, if one did.
pub(crate) fn apply(
    decision: Option<Decision>,
    ctl: &BodyControl,
    ex: &mut Exchange,
    phase: Phase,
) -> Step {
    let Some(decision) = decision else {
        return Step::Continue;
    };
    let rule = Arc::clone(&decision.rule);
    ex.rule = Some(decision.id.clone());
    let effects = &mut ex.effects;
    effects.delay_ms = effects
        .delay_ms
        .max(rule.delay_ms.millis(ex.read_timeout_ms));
    effects.keep_upload |= rule.keep_upload;
    if rule.processing.is_some() {
        effects.processing = rule.processing.clone();
    }
    if let Some(rate) = rule.throttle_bytes_per_sec {
        ctl.set_throttle(rate);
    }
    match decision.action() {
        Action::Pass => Step::Continue,
        Action::Respond(respond) => {
            if respond.status.is_success() || rule.keep_upload || phase == Phase::Complete {
                ex.effects.deferred = Some(decision);
                Step::Continue
            } else {
                Step::Stop(Finish::Answer(rule_answer(respond)))
            }
        }
        Action::Fault(fault) => {
            ex.fault = Some(fault.name());
            match *fault {
                Fault::Reset { after_bytes: None } => Step::Stop(Finish::Reset),
                Fault::Reset {
                    after_bytes: Some(n),
                } => {
                    if ctl.read() >= n {
                        Step::Stop(Finish::Reset)
                    } else {
                        ctl.set_reset_after(n);
                        Step::Continue
                    }
                }
                Fault::Hang { for_ms } => {
                    Step::Stop(Finish::Hang(for_ms.map(|w| w.millis(ex.read_timeout_ms))))
                }
                Fault::Truncate => {
                    ex.effects.truncate = true;
                    Step::Continue
                }
            }
        }
    }
}

/// After a route's answer: what is left of the request body is read
/// (bounded) so that a client still sending can read the answer, or the
/// connection is closed after it.
pub(crate) async fn finish_body(
    parts: &Parts,
    body: &mut UploadBody,
    ctl: &BodyControl,
    finish: Finish,
    ex: &mut Exchange,
) -> Finish {
    ex.body_bytes = ctl.read();
    match finish {
        Finish::Answer(mut answer) if !body.is_finished() => {
            let expects_continue = parts
                .headers
                .get(http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            // A client that is gone or stalled has nothing left to read.
            let drainable = !matches!(
                ctl.failure(),
                Some(BodyFailure::Client | BodyFailure::Timeout | BodyFailure::ResetFault)
            );
            let complete =
                !expects_continue && drainable && body.drain(DRAIN_MAX_BYTES, DRAIN_MAX_TIME).await;
            ex.body_bytes = ctl.read();
            if !complete {
                answer.close = true;
            }
            Finish::Answer(answer)
        }
        // A hang "until the client gives up" keeps reading (and dropping) the
        // body: a client whose unsent bytes fill our receive window could
        // otherwise never get its close through, and the hang would never end.
        Finish::Hang(None) if !body.is_finished() => {
            body.drain(u64::MAX, Duration::from_secs(24 * 3600)).await;
            ex.body_bytes = ctl.read();
            Finish::Hang(None)
        }
        other => other,
    }
}

/// A route that answers without reading the request body: when a rule
/// throttles the body or resets after some of its bytes, the body is read
/// first as the upload endpoint reads it (at the rule's rate; cut after
/// `after_bytes`, or at its end if it is shorter), then the answer is given;
/// otherwise it is read (bounded) after the answer.
pub(crate) async fn after_body(
    parts: &Parts,
    body: &mut UploadBody,
    ctl: &BodyControl,
    answer: Answer,
    ex: &mut Exchange,
) -> Finish {
    if ctl.reset_pending() || ctl.throttled() {
        let mut read = 0u64;
        while read <= DRAIN_MAX_BYTES {
            match body.next().await {
                Some(Ok(chunk)) => read += chunk.len() as u64,
                Some(Err(_)) => break,
                None => break,
            }
        }
        ex.body_bytes = ctl.read();
        match ctl.failure() {
            Some(BodyFailure::ResetFault) => return Finish::Reset,
            Some(BodyFailure::Client) => return Finish::ClientGone,
            _ if ctl.reset_pending() && body.is_finished() => return Finish::Reset,
            _ => {}
        }
    }
    finish_body(parts, body, ctl, Finish::Answer(answer), ex).await
}
