//! Near misses: for a request that no rule decided, the rules that came
//! closest and every condition of theirs that failed, with the expected and
//! the actual value; for a request a rule decided, the rules tried before it
//! that nearly matched.
//!
//! The engine's fast path ([`Match::matches`](super::model::Match)) stays as
//! it is; this module re-checks the rules condition by condition, once per
//! request, after the answer (see [`explain`]). Each `match` condition is one
//! function in [`CHECKS`]: a new condition adds one function and one line
//! there (a test checks that the two agree).

use std::sync::OnceLock;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::glob::Glob;
use super::model::{Match, Phase, RouteName, Rule};
use super::{RequestFacts, RuleEngine, Snapshot};
use crate::redact::{header_value, is_credential_header, is_credential_param, MAX_HEADER_VALUE};

/// Most near misses listed per request.
pub const MAX_NEAR_MISSES: usize = 3;
/// Rules examined for near misses, in evaluation order: with more rules
/// loaded, those after the first 1,000 are not explained (a request must not
/// pay for 100k rules twice).
pub const NEAR_MISS_SCAN: usize = 1_000;

/// A rule that did not decide a request, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NearMiss {
    /// The rule's id.
    pub rule: String,
    /// Every condition of the rule that did not hold, in the rule's order.
    pub failed: Vec<FailedCondition>,
}

/// One condition of a rule that did not hold for a request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailedCondition {
    /// Which condition: `match.method`, `match.path`, `match.headers.NAME`,
    /// `match.query.NAME`, `match.filename`, `match.content_type`,
    /// `match.size.min`, `match.size.max`, `phase`, `when.after`,
    /// `when.times` or `when.probability`.
    pub condition: String,
    /// What the rule asks for (a glob, a number, a phase; `null`: absent).
    pub expected: Value,
    /// What the request had (`null`: absent, or not known when it ended).
    pub actual: Value,
    /// The same in one sentence, as the page and the debug log show it.
    pub message: String,
    /// For a credential (`x-api-key`, `authorization`, …), whose value is
    /// never repeated: enough about it to spot a typo. `actual` is then its
    /// masked form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialMiss>,
}

/// What a near miss says about a credential it does not repeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CredentialMiss {
    /// The value's length, in characters (a bearer token's, without its
    /// `Bearer ` scheme).
    pub length: usize,
    /// How many leading characters of the value as sent (scheme included)
    /// agree with the rule's pattern, up to its first `*`: where the typo is.
    pub matching_prefix: usize,
    /// The value masked: an `Authorization` scheme kept, then the first two
    /// characters (none for a value of 4 or fewer), `…`, and the length
    /// (`li…(12 chars)`, `Bearer sk…(40 chars)`).
    pub masked: String,
}

impl CredentialMiss {
    /// Describes `value` against the pattern `want`.
    pub(crate) fn new(value: &str, want: Option<&Glob>) -> Self {
        let (scheme, secret) = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
                (format!("{scheme} "), rest)
            }
            _ => (String::new(), value),
        };
        let length = secret.chars().count();
        let shown: String = if length > 4 {
            secret.chars().take(2).collect()
        } else {
            String::new()
        };
        CredentialMiss {
            length,
            matching_prefix: want.map_or(0, |g| g.matching_prefix(value)),
            masked: format!(
                "{scheme}{shown}…({length} char{})",
                if length == 1 { "" } else { "s" }
            ),
        }
    }
}

impl FailedCondition {
    fn new(condition: impl Into<String>, expected: Value, actual: Value, message: String) -> Self {
        Self {
            condition: condition.into(),
            expected,
            actual,
            message,
            credential: None,
        }
    }
}

/// What the rules saw of one request, gathered by the engine as it decides
/// each phase ([`RuleEngine::decide_with`]), and explained when the journal
/// entry is first read ([`Pending`]).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    /// The latest phase the rules were consulted at (`None`: never).
    phase: Option<Phase>,
    route: Option<RouteName>,
    method: String,
    path: String,
    /// Only the headers some rule names: a journal entry keeps every
    /// header already, and a near miss is about a rule's conditions.
    headers: HeaderMap,
    /// The rules loaded by the latest phase ([`super::Entry`]'s `added`):
    /// later ones are not near misses of this request, nor could its
    /// headers be judged by them.
    rules_upto: u64,
    query: Vec<(String, String)>,
    filename: Option<String>,
    content_type: Option<String>,
    size: Option<u64>,
    /// Rules whose `match` held but whose `when` let the request through.
    held_back: Vec<(String, FailedCondition)>,
}

impl Seen {
    /// Records the facts of a phase, decided with `rules` (the latest win:
    /// they only grow).
    pub(super) fn note(&mut self, phase: Phase, facts: &RequestFacts<'_>, rules: &Snapshot) {
        if self.phase.is_none() {
            self.route = Some(facts.route);
            self.method = facts.method.to_owned();
            self.path = facts.path.to_owned();
            self.query = facts.query.to_vec();
        }
        // The headers the rules name, as owned copies (a parsed value shares
        // hyper's read buffer, which the journal must not keep alive), each
        // cut at the journal's 8 KiB: a near miss judges a longer value by
        // its start. A rule added between two phases may name one more.
        if !rules.header_names.is_empty() {
            for name in facts.headers.keys() {
                if !rules.header_names.contains(name) || self.headers.contains_key(name) {
                    continue;
                }
                for value in facts.headers.get_all(name) {
                    let bytes = value.as_bytes();
                    let kept = &bytes[..bytes.len().min(MAX_HEADER_VALUE)];
                    if let Ok(copy) = http::HeaderValue::from_bytes(kept) {
                        self.headers.append(name.clone(), copy);
                    }
                }
            }
        }
        self.rules_upto = self.rules_upto.max(rules.newest);
        self.phase = self.phase.max(Some(phase));
        if let Some(f) = facts.filename {
            self.filename = Some(f.to_owned());
        }
        if let Some(c) = facts.content_type {
            self.content_type = Some(c.to_owned());
        }
        if facts.size.is_some() {
            self.size = facts.size;
        }
    }

    /// Roughly the bytes it holds, for the journal's bound.
    fn approximate_size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 64)
            .sum();
        let query: usize = self.query.iter().map(|(k, v)| k.len() + v.len() + 48).sum();
        let held: usize = self
            .held_back
            .iter()
            .map(|(id, f)| id.len() + f.message.len() + 128)
            .sum();
        256 + self.method.len()
            + self.path.len()
            + headers
            + query
            + held
            + self.filename.as_ref().map_or(0, String::len)
            + self.content_type.as_ref().map_or(0, String::len)
    }

    /// A rule whose match held was not fired because of its `when`.
    pub(super) fn held_back(&mut self, id: &str, why: FailedCondition) {
        self.held_back.push((id.to_owned(), why));
    }

    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            route: self.route.unwrap_or(RouteName::Upload),
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            query: &self.query,
            filename: self.filename.as_deref(),
            content_type: self.content_type.as_deref(),
            size: self.size,
        }
    }
}

/// A journal entry's near misses, worked out when the entry is first read
/// (`GET /__admin/requests`, `MockServer::requests`, a debug log line), not
/// while the request is served: with 1,000 rules loaded, scanning them for
/// every request halved the upload rate (W4 in BENCHMARKS.md), though most
/// entries are never read. Explained against the rules loaded when first
/// read; the answer is kept, so it does not change afterwards.
#[derive(Debug)]
pub(crate) struct Pending {
    seen: Seen,
    decided: Option<String>,
    done: OnceLock<Vec<NearMiss>>,
}

impl Pending {
    /// `None` when the rules were never consulted (nothing to explain).
    pub(crate) fn new(seen: Seen, decided: Option<String>) -> Option<Self> {
        seen.phase?;
        Some(Self {
            seen,
            decided,
            done: OnceLock::new(),
        })
    }

    /// The near misses, worked out on the first call.
    pub(crate) fn get(&self, engine: &RuleEngine) -> &[NearMiss] {
        self.done
            .get_or_init(|| explain(engine, &self.seen, self.decided.as_deref()))
    }

    /// Roughly the bytes it holds, for the journal's bound (the three near
    /// misses it may keep included).
    pub(crate) fn approximate_size(&self) -> usize {
        self.seen.approximate_size() + MAX_NEAR_MISSES * 512
    }
}

/// `when.after` held a matching request back: it was match `n`.
pub(super) fn after_miss(after: u64, n: u64) -> FailedCondition {
    FailedCondition::new(
        "when.after",
        json!(after),
        json!(n),
        format!(
            "when.after is {after}: the first {after} matching requests pass; this was match {n}"
        ),
    )
}

/// `when.times` was used up.
pub(super) fn times_miss(times: u64, fired: u64) -> FailedCondition {
    FailedCondition::new(
        "when.times",
        json!(times),
        json!(fired),
        format!("when.times is {times}: the rule has already fired {fired} times"),
    )
}

/// `when.probability` drew no.
pub(super) fn probability_miss(p: f64) -> FailedCondition {
    FailedCondition::new(
        "when.probability",
        json!(p),
        json!("not drawn"),
        format!("when.probability is {p}: the seeded draw said no for this request"),
    )
}

/// Where the checks report a condition that failed: counted, and spelled
/// out only when `list` is given. The scan over up to [`NEAR_MISS_SCAN`]
/// rules only counts; the closest few are then spelled out, so that a request
/// pays for formatting three near misses, not a thousand.
struct Out<'a> {
    count: usize,
    list: Option<&'a mut Vec<FailedCondition>>,
}

impl Out<'_> {
    fn fail(&mut self, condition: impl FnOnce() -> FailedCondition) {
        self.count += 1;
        if let Some(list) = self.list.as_deref_mut() {
            list.push(condition());
        }
    }
}

/// One check per `match` condition, in the order they are listed.
type Check = fn(&Match, &RequestFacts<'_>, &mut Out<'_>);

/// Every `match` condition's check. A new condition adds its function here.
const CHECKS: &[Check] = &[
    check_route,
    check_method,
    check_path,
    check_headers,
    check_query,
    check_filename,
    check_content_type,
    check_size,
];

/// Every `match` condition that fails for these facts (empty: it matches).
#[cfg(test)]
fn failed_conditions(m: &Match, facts: &RequestFacts<'_>) -> Vec<FailedCondition> {
    let mut list = Vec::new();
    let mut out = Out {
        count: 0,
        list: Some(&mut list),
    };
    check_all(m, facts, &mut out);
    assert_eq!(out.count, list.len(), "counted and listed alike");
    list
}

fn check_all(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    for check in CHECKS {
        check(m, facts, out);
    }
}

fn text(s: Option<&str>) -> Value {
    s.map_or(Value::Null, |s| Value::String(s.to_owned()))
}

/// A rule that names neither a route nor a path is for uploads.
fn check_route(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    let expected = match (m.route, &m.path) {
        (Some(route), _) => route,
        (None, None) => RouteName::Upload,
        (None, Some(_)) => return,
    };
    if facts.route != expected {
        out.fail(|| {
            let name = |r: RouteName| serde_json::to_value(r).unwrap_or(Value::Null);
            let (want, got) = (name(expected), name(facts.route));
            let message = format!("route: expected {want}, got {got}");
            FailedCondition::new("match.route", want, got, message)
        });
    }
}

fn check_method(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    let (expected, ok) = match (&m.method, m.route, &m.path) {
        (Some(glob), _, _) => (glob.as_str(), glob.matches_ignore_case(facts.method)),
        (None, None, None) => ("POST", facts.method.eq_ignore_ascii_case("POST")),
        (None, _, _) => return,
    };
    if !ok {
        out.fail(|| {
            FailedCondition::new(
                "match.method",
                json!(expected),
                json!(facts.method),
                format!("method: expected {expected}, got {}", facts.method),
            )
        });
    }
}

fn check_path(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    let Some(glob) = &m.path else {
        return;
    };
    let expected = glob.as_str();
    if !glob.matches(facts.path) {
        out.fail(|| {
            FailedCondition::new(
                "match.path",
                json!(expected),
                json!(facts.path),
                format!("path: expected {expected}, got {}", facts.path),
            )
        });
    }
}

fn check_headers(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    for (name, want) in &m.headers {
        let values: Vec<&str> = facts
            .headers
            .get_all(name.as_str())
            .iter()
            .filter_map(super::header_text)
            .collect();
        let ok = match want {
            None => values.is_empty(),
            Some(glob) => values.iter().any(|v| glob.matches(v)),
        };
        if ok {
            continue;
        }
        out.fail(|| {
            // A credential is never repeated, not even to say it was wrong:
            // its masked form, length and the prefix that agrees with the
            // pattern show a typo; a long value is cut as the journal cuts it.
            if !values.is_empty() && is_credential_header(&name.to_ascii_lowercase()) {
                return credential_miss("headers", "header", name, want.as_ref(), values[0]);
            }
            let shown =
                (!values.is_empty()).then(|| header_value(facts.headers.get_all(name.as_str())));
            value_miss("headers", "header", name, want.as_ref(), shown.as_deref())
        });
    }
}

/// A credential header or query parameter that was not as the rule wants.
fn credential_miss(
    field: &str,
    noun: &str,
    name: &str,
    want: Option<&Glob>,
    value: &str,
) -> FailedCondition {
    let credential = CredentialMiss::new(value, want);
    let expected = want.map_or("absent", |g| g.as_str());
    let message = format!(
        "{noun} {name}: expected {expected}, got {} (a credential, masked: {} characters, the first {} agree with the pattern)",
        credential.masked, credential.length, credential.matching_prefix
    );
    let mut failed = FailedCondition::new(
        format!("match.{field}.{name}"),
        text(want.map(|g| g.as_str())),
        json!(credential.masked),
        message,
    );
    failed.credential = Some(credential);
    failed
}

/// A named header or query parameter that was not as the rule wants
/// (`want` `None`: absent; `shown` `None`: the request had none).
fn value_miss(
    field: &str,
    noun: &str,
    name: &str,
    want: Option<&Glob>,
    shown: Option<&str>,
) -> FailedCondition {
    FailedCondition::new(
        format!("match.{field}.{name}"),
        text(want.map(|g| g.as_str())),
        text(shown),
        format!(
            "{noun} {name}: expected {}, got {}",
            want.map_or("absent", |g| g.as_str()),
            shown.unwrap_or("none")
        ),
    )
}

fn check_query(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    for (name, want) in &m.query {
        let values: Vec<&str> = facts
            .query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let ok = match want {
            None => values.is_empty(),
            Some(glob) => values.iter().any(|v| glob.matches(v)),
        };
        if !ok {
            out.fail(|| {
                if !values.is_empty() && is_credential_param(name) {
                    return credential_miss("query", "query", name, want.as_ref(), values[0]);
                }
                let shown = (!values.is_empty()).then(|| values.join(", "));
                value_miss("query", "query", name, want.as_ref(), shown.as_deref())
            });
        }
    }
}

fn check_filename(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    let Some(glob) = &m.filename else { return };
    if !facts.filename.is_some_and(|f| glob.matches(f)) {
        out.fail(|| part_miss("filename", "filename", glob, facts.filename));
    }
}

/// A file part's filename or content type that was not as the rule wants
/// (`actual` `None`: the request had no file part, or not yet).
fn part_miss(field: &str, noun: &str, glob: &Glob, actual: Option<&str>) -> FailedCondition {
    FailedCondition::new(
        format!("match.{field}"),
        json!(glob.as_str()),
        text(actual),
        format!(
            "{noun}: expected {glob}, got {}",
            actual.unwrap_or("no file part")
        ),
    )
}

fn check_content_type(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    let Some(glob) = &m.content_type else { return };
    if !facts
        .content_type
        .is_some_and(|c| glob.matches_ignore_case(c))
    {
        out.fail(|| part_miss("content_type", "content type", glob, facts.content_type));
    }
}

fn check_size(m: &Match, facts: &RequestFacts<'_>, out: &mut Out<'_>) {
    let Some(range) = &m.size else { return };
    let actual = facts.size.map_or(Value::Null, |s| json!(s));
    let got = facts
        .size
        .map_or_else(|| "no complete file".to_owned(), |s| format!("{s} bytes"));
    if let Some(min) = range.min {
        if facts.size.is_none_or(|s| s < min) {
            out.fail(|| {
                FailedCondition::new(
                    "match.size.min",
                    json!(min),
                    actual.clone(),
                    format!("size: expected at least {min} bytes, got {got}"),
                )
            });
        }
    }
    if let Some(max) = range.max {
        if facts.size.is_none_or(|s| s > max) {
            out.fail(|| {
                FailedCondition::new(
                    "match.size.max",
                    json!(max),
                    actual.clone(),
                    format!("size: expected at most {max} bytes, got {got}"),
                )
            });
        }
    }
    if range.min.is_none() && range.max.is_none() && facts.size.is_none() {
        out.fail(|| {
            FailedCondition::new(
                "match.size",
                json!({}),
                Value::Null,
                "size: the file never completed".to_owned(),
            )
        });
    }
}

/// How many of `rule`'s conditions failed for this request (its phase, its
/// `match`, or else the `when` that held it back), each spelled out into
/// `list` when given. 0: nothing is known against it (it matched, or was
/// never reached).
fn why_not(
    id: &str,
    rule: &Rule,
    seen: &Seen,
    reached: Phase,
    list: Option<&mut Vec<FailedCondition>>,
) -> usize {
    let mut out = Out { count: 0, list };
    if rule.phase > reached {
        out.fail(|| {
            FailedCondition::new(
                "phase",
                json!(rule.phase),
                json!(reached),
                format!(
                    "phase: the rule is decided at {}, the request ended at {reached}",
                    rule.phase
                ),
            )
        });
    }
    check_all(&rule.matcher, &seen.facts(), &mut out);
    if out.count == 0 {
        for (_, why) in seen.held_back.iter().filter(|(held, _)| held == id) {
            out.fail(|| why.clone());
        }
    }
    out.count
}

/// The near misses of one request: the closest rules (fewest failed
/// conditions, then evaluation order), at most [`MAX_NEAR_MISSES`]. With a
/// rule `decided`, only the rules tried before it (an earlier phase, or
/// earlier in the same phase).
pub(crate) fn explain(engine: &RuleEngine, seen: &Seen, decided: Option<&str>) -> Vec<NearMiss> {
    let Some(reached) = seen.phase else {
        return Vec::new();
    };
    let snapshot = engine.snapshot();
    let entries = snapshot.entries().take(NEAR_MISS_SCAN);
    let decider = decided.and_then(|id| {
        snapshot
            .entries()
            .take(NEAR_MISS_SCAN)
            .position(|e| e.id == id)
            .and_then(|p| snapshot.entries().nth(p).map(|e| (p, e.rule.phase)))
    });
    // Rules added since the request was decided were not there to match it.
    let loaded_then = |entry: &super::Entry| entry.added <= seen.rules_upto;
    if decided.is_some() && decider.is_none() {
        return Vec::new();
    }
    // (failed conditions, position) of the closest rules so far, best first.
    let mut closest: Vec<(usize, usize)> = Vec::with_capacity(MAX_NEAR_MISSES + 1);
    for (position, entry) in entries.enumerate() {
        if !loaded_then(entry) {
            continue;
        }
        if let Some((at, phase)) = decider {
            let tried_before =
                entry.rule.phase < phase || (entry.rule.phase == phase && position < at);
            if !tried_before {
                continue;
            }
        }
        let failed = why_not(&entry.id, &entry.rule, seen, reached, None);
        if failed == 0 {
            continue;
        }
        // Positions only grow: a tie with a listed rule ranks after it.
        let at = closest.partition_point(|&(f, _)| f <= failed);
        if at < MAX_NEAR_MISSES {
            closest.insert(at, (failed, position));
            closest.truncate(MAX_NEAR_MISSES);
        }
    }
    closest
        .into_iter()
        .filter_map(|(_, position)| {
            let entry = snapshot.at(position)?;
            let mut failed = Vec::new();
            why_not(&entry.id, &entry.rule, seen, reached, Some(&mut failed));
            Some(NearMiss {
                rule: entry.id.clone(),
                failed,
            })
        })
        .collect()
}

/// The near misses in one line, for the debug log.
pub(crate) fn summary(misses: &[NearMiss]) -> String {
    misses
        .iter()
        .map(|m| {
            let why: Vec<&str> = m.failed.iter().map(|f| f.message.as_str()).collect();
            format!("{}: {}", m.rule, why.join("; "))
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::loading::parse_rules;
    use crate::UPLOAD_PATH;

    fn rule(json: &str) -> Rule {
        parse_rules("<test>", json).expect("a valid rule").remove(0)
    }

    fn facts<'a>(
        method: &'a str,
        path: &'a str,
        headers: &'a HeaderMap,
        query: &'a [(String, String)],
        file: Option<(&'a str, &'a str, u64)>,
    ) -> RequestFacts<'a> {
        let route = if path == UPLOAD_PATH {
            RouteName::Upload
        } else {
            RouteName::Health
        };
        RequestFacts {
            route,
            method,
            path,
            headers,
            query,
            filename: file.map(|f| f.0),
            content_type: file.map(|f| f.1),
            size: file.map(|f| f.2),
        }
    }

    #[test]
    fn each_kind_of_condition_fails_with_expected_and_actual() {
        let r = rule(
            r#"{"match": {"method": "PUT", "path": "/v2/other", "headers": {"x-api-key": "limited-*", "x-mode": null},
                 "query": {"workspace_uuid": "ws-1"}, "filename": "*.mp4", "content_type": "video/mp4",
                 "size": {"min": 1048576, "max": 2097152}},
                "phase": "complete", "respond": {"status": 500}}"#,
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "secret-key".parse().unwrap());
        headers.insert("x-mode", "fast".parse().unwrap());
        let query = [("workspace_uuid".to_owned(), "ws-2".to_owned())];
        let f = facts(
            "POST",
            UPLOAD_PATH,
            &headers,
            &query,
            Some(("clip.mov", "video/quicktime", 5120)),
        );
        let failed = failed_conditions(&r.matcher, &f);
        let by_name = |c: &str| {
            failed
                .iter()
                .find(|f| f.condition == c)
                .unwrap_or_else(|| panic!("{c} missing from {failed:?}"))
        };
        assert_eq!(by_name("match.method").expected, "PUT");
        assert_eq!(by_name("match.method").actual, "POST");
        assert_eq!(by_name("match.path").actual, UPLOAD_PATH);
        // The credential's value is not repeated: masked, with its length
        // and how much of it agrees with the pattern.
        let key = by_name("match.headers.x-api-key");
        assert_eq!(key.actual, "se…(10 chars)");
        assert!(!key.message.contains("secret-key"), "{}", key.message);
        assert_eq!(
            key.credential,
            Some(CredentialMiss {
                length: 10,
                matching_prefix: 0,
                masked: "se…(10 chars)".into()
            })
        );
        assert_eq!(by_name("match.headers.x-mode").expected, Value::Null);
        assert_eq!(by_name("match.headers.x-mode").actual, "fast");
        assert_eq!(by_name("match.query.workspace_uuid").actual, "ws-2");
        assert_eq!(by_name("match.filename").expected, "*.mp4");
        assert_eq!(by_name("match.filename").actual, "clip.mov");
        assert_eq!(by_name("match.content_type").actual, "video/quicktime");
        assert_eq!(by_name("match.size.min").expected, 1048576);
        assert_eq!(by_name("match.size.min").actual, 5120);
        assert!(failed.iter().all(|f| f.condition != "match.size.max"));
        assert_eq!(failed.len(), 8, "{failed:?}");
        assert!(r.matcher.matches(&f) == failed.is_empty());
    }

    #[test]
    fn the_checks_agree_with_the_engine_on_every_combination() {
        let rules = [
            r#"{"respond": {"status": 500}}"#,
            r#"{"match": {"path": "/health"}, "respond": {"status": 500}}"#,
            r#"{"match": {"method": "get"}, "respond": {"status": 500}}"#,
            r#"{"match": {"route": "health"}, "respond": {"status": 500}}"#,
            r#"{"match": {"route": "upload", "method": "GET"}, "respond": {"status": 500}}"#,
            r#"{"match": {"route": "health", "path": "/health*"}, "respond": {"status": 500}}"#,
            r#"{"match": {"headers": {"x-a": "1"}}, "respond": {"status": 500}}"#,
            r#"{"match": {"headers": {"x-a": null}}, "respond": {"status": 500}}"#,
            r#"{"match": {"query": {"q": "v*"}}, "respond": {"status": 500}}"#,
            r#"{"match": {"query": {"q": null}}, "respond": {"status": 500}}"#,
            r#"{"match": {"filename": "*.txt"}, "phase": "upload", "respond": {"status": 500}}"#,
            r#"{"match": {"content_type": "TEXT/*"}, "phase": "upload", "respond": {"status": 500}}"#,
            r#"{"match": {"size": {"max": 10}}, "phase": "complete", "respond": {"status": 500}}"#,
            r#"{"match": {"size": {"min": 10}}, "phase": "complete", "respond": {"status": 500}}"#,
        ]
        .map(rule);
        let mut with = HeaderMap::new();
        with.insert("x-a", "1".parse().unwrap());
        let without = HeaderMap::new();
        let q = [("q".to_owned(), "value".to_owned())];
        for headers in [&with, &without] {
            for query in [&q[..], &[]] {
                for (method, path) in [("POST", UPLOAD_PATH), ("GET", "/health")] {
                    for file in [
                        None,
                        Some(("a.txt", "text/plain", 5)),
                        Some(("b.bin", "x/y", 50)),
                    ] {
                        let f = facts(method, path, headers, query, file);
                        for r in &rules {
                            let failed = failed_conditions(&r.matcher, &f);
                            assert_eq!(
                                r.matcher.matches(&f),
                                failed.is_empty(),
                                "{r:?} {f:?} {failed:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn unreached_phases_and_held_back_rules_are_explained_closest_first() {
        let engine = RuleEngine::new(Vec::new(), 1).unwrap();
        engine
            .add(vec![
                rule(r#"{"id": "far", "match": {"method": "GET", "path": "/x"}, "respond": {"status": 500}}"#),
                rule(r#"{"id": "late", "phase": "complete", "match": {"size": {"min": 1}}, "respond": {"status": 500}}"#),
                rule(r#"{"id": "second", "when": {"after": 2}, "respond": {"status": 503}}"#),
            ])
            .unwrap();
        let headers = HeaderMap::new();
        let mut seen = Seen::default();
        let f = facts("POST", UPLOAD_PATH, &headers, &[], None);
        assert!(engine
            .decide_seen(Phase::Request, &f, Some(&mut seen))
            .is_none());
        let misses = explain(&engine, &seen, None);
        let ids: Vec<&str> = misses.iter().map(|m| m.rule.as_str()).collect();
        assert_eq!(ids, ["second", "far", "late"]);
        assert_eq!(misses[0].failed[0].condition, "when.after");
        assert_eq!(misses[0].failed[0].expected, 2);
        assert_eq!(misses[0].failed[0].actual, 1);
        assert_eq!(misses[2].failed[0].condition, "phase");
        assert_eq!(misses[2].failed[0].expected, "complete");
        assert_eq!(misses[2].failed[0].actual, "request");
        assert_eq!(misses[2].failed[1].condition, "match.size.min");
        assert_eq!(misses[2].failed[1].actual, Value::Null);
        assert!(summary(&misses).contains("this was match 1"));
    }

    #[test]
    fn the_closest_three_of_many_are_listed_in_order_and_long_values_are_cut() {
        let engine = RuleEngine::new(Vec::new(), 1).unwrap();
        // One batch: tried in the order given.
        let mut rules = vec![rule(
            r#"{"id": "long", "match": {"headers": {"x-h": "b*"}}, "respond": {"status": 500}}"#,
        )];
        for i in 0..50 {
            rules.push(rule(&format!(
                r#"{{"id": "two-{i}", "match": {{"method": "GET", "path": "/x"}}, "respond": {{"status": 500}}}}"#
            )));
        }
        rules.push(rule(
            r#"{"id": "three", "match": {"method": "GET", "path": "/x", "query": {"q": "1"}}, "respond": {"status": 500}}"#,
        ));
        engine.add(rules).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-h", "a".repeat(100_000).parse().unwrap());
        let mut seen = Seen::default();
        let f = facts("POST", UPLOAD_PATH, &headers, &[], None);
        assert!(engine
            .decide_seen(Phase::Request, &f, Some(&mut seen))
            .is_none());
        let misses = explain(&engine, &seen, None);
        let ids: Vec<&str> = misses.iter().map(|m| m.rule.as_str()).collect();
        // One failed condition beats two; among equals, evaluation order.
        assert_eq!(ids, ["long", "two-0", "two-1"]);
        let actual = misses[0].failed[0].actual.as_str().unwrap();
        // Judged by, and shown as, its first 8 KiB.
        assert_eq!(actual.len(), MAX_HEADER_VALUE);
        assert!(actual.bytes().all(|b| b == b'a'));
        assert!(misses[0].failed[0].message.len() < 9_000);
    }

    #[test]
    fn only_headers_a_rule_names_are_kept_and_later_rules_are_not_near_misses() {
        let engine = RuleEngine::new(Vec::new(), 1).unwrap();
        engine
            .add(vec![rule(
                r#"{"id": "mode", "match": {"headers": {"X-Mode": "fast"}}, "respond": {"status": 500}}"#,
            )])
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-mode", "slow".parse().unwrap());
        headers.insert("x-big", "b".repeat(100_000).parse().unwrap());
        let mut seen = Seen::default();
        let f = facts("POST", UPLOAD_PATH, &headers, &[], None);
        assert!(engine
            .decide_seen(Phase::Request, &f, Some(&mut seen))
            .is_none());
        // x-mode is kept (a rule names it, in any case); the 100 KB x-big is
        // not: the journal entry has its own copy.
        assert_eq!(seen.headers.len(), 1);
        assert_eq!(seen.headers["x-mode"], "slow");
        assert!(
            seen.approximate_size() < 1_000,
            "{}",
            seen.approximate_size()
        );
        // A rule added afterwards, which would have matched, is not listed:
        // it was not there to decide the request.
        engine
            .add(vec![rule(
                r#"{"id": "later", "match": {"headers": {"x-big": "b*"}}, "respond": {"status": 500}}"#,
            )])
            .unwrap();
        let misses = explain(&engine, &seen, None);
        let ids: Vec<&str> = misses.iter().map(|m| m.rule.as_str()).collect();
        assert_eq!(ids, ["mode"]);
        assert_eq!(misses[0].failed[0].condition, "match.headers.X-Mode");
        assert_eq!(misses[0].failed[0].actual, "slow");
    }

    #[test]
    fn a_rule_for_another_route_fails_on_its_route() {
        let r = rule(r#"{"match": {"route": "health"}, "respond": {"status": 500}}"#);
        let headers = HeaderMap::new();
        let failed =
            failed_conditions(&r.matcher, &facts("POST", UPLOAD_PATH, &headers, &[], None));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].condition, "match.route");
        assert_eq!(failed[0].expected, "health");
        assert_eq!(failed[0].actual, "upload");
        // Neither route nor path: the upload endpoint, by route.
        let r = rule(r#"{"respond": {"status": 500}}"#);
        let failed = failed_conditions(&r.matcher, &facts("GET", "/health", &headers, &[], None));
        let names: Vec<&str> = failed.iter().map(|f| f.condition.as_str()).collect();
        assert_eq!(names, ["match.route", "match.method"]);
    }

    #[test]
    fn a_decided_request_lists_only_the_rules_tried_before() {
        let engine = RuleEngine::new(Vec::new(), 1).unwrap();
        engine
            .add(vec![
                rule(r#"{"id": "once", "when": {"times": 1}, "respond": {"status": 500}}"#),
                rule(r#"{"id": "fires", "respond": {"status": 503}}"#),
                rule(r#"{"id": "after", "match": {"method": "GET"}, "respond": {"status": 500}}"#),
            ])
            .unwrap();
        let headers = HeaderMap::new();
        let f = facts("POST", UPLOAD_PATH, &headers, &[], None);
        let first = engine.decide(Phase::Request, &f).map(|d| d.id);
        assert_eq!(first.as_deref(), Some("once"));
        let mut seen = Seen::default();
        let d = engine
            .decide_seen(Phase::Request, &f, Some(&mut seen))
            .map(|d| d.id);
        assert_eq!(d.as_deref(), Some("fires"));
        let misses = explain(&engine, &seen, d.as_deref());
        assert_eq!(misses.len(), 1, "{misses:?}");
        assert_eq!(misses[0].rule, "once");
        assert_eq!(misses[0].failed[0].condition, "when.times");
        assert_eq!(misses[0].failed[0].actual, 1);
    }
}
