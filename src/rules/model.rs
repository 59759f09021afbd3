//! The fault-rule model: the JSON of fixture files and of `POST /__admin/rules`,
//! as typed serde structs. Values are checked while they are parsed (newtypes
//! with `try_from`), so every error carries the file position of the value.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::glob::Glob;
use crate::config::ByteSize;

/// A fixture file: `{"$schema": …, "rules": […]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Where editors find the schema (ignored by the emulator).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Free text about the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The rules, in evaluation order.
    pub rules: Vec<Rule>,
}

/// When a rule is decided, from the earliest to the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Headers only: no body byte has been read.
    Request,
    /// The file part's headers are known (`filename`, `content_type`).
    Upload,
    /// The whole file has been received (`size`).
    Complete,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Request => "request",
            Phase::Upload => "upload",
            Phase::Complete => "complete",
        })
    }
}

/// What a request must look like for a rule to apply. Every condition given must hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// The route, by name. With neither `route` nor `path`: the upload endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteName>,
    /// HTTP method glob (case-insensitive). Omitted: `POST` when `path` and
    /// `route` are omitted too, else any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Glob>,
    /// Path glob. Omitted (and no `route`): the upload endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Glob>,
    /// Header name (case-insensitive) → value glob; `null` means "absent".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Option<Glob>>,
    /// Query parameter → value glob; `null` means "absent".
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, Option<Glob>>,
    /// Glob on the file part's `filename` (as sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<Glob>,
    /// Glob on the file part's content type (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Glob>,
    /// Bounds on the file's size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<SizeRange>,
}

/// The emulated routes a rule can name in `match.route` (the admin API
/// takes no rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteName {
    /// `POST /v2/files/-/uploads`.
    Upload,
    /// `GET /health`.
    Health,
    /// `GET /openapi.json`.
    Openapi,
    /// `GET|HEAD /__files/{file_uuid}/{name}`.
    Download,
    /// `POST /v2/files` (presigned upload URLs).
    Create,
    /// `GET /v2/files`.
    List,
    /// `GET /v2/files/{file_uuid}`.
    Get,
    /// `GET /v2/files/{file_uuid}/status`.
    Status,
    /// `GET /v2/files/{file_uuid}/frames`.
    Frames,
    /// `DELETE /v2/files/{file_uuid}`.
    Delete,
    /// `PUT /__uploads/{file_uuid}/{name}?X-Amz-…` (a presigned upload URL).
    Put,
    /// `GET|HEAD /__frames/{file_uuid}/{n}.png` (a video frame).
    Frame,
}

impl RouteName {
    /// Its name in `match.route` (and in `GET /metrics`' `route` label).
    pub fn as_str(self) -> &'static str {
        match self {
            RouteName::Upload => "upload",
            RouteName::Health => "health",
            RouteName::Openapi => "openapi",
            RouteName::Download => "download",
            RouteName::Create => "create",
            RouteName::List => "list",
            RouteName::Get => "get",
            RouteName::Status => "status",
            RouteName::Frames => "frames",
            RouteName::Delete => "delete",
            RouteName::Put => "put",
            RouteName::Frame => "frame",
        }
    }
}

/// What the files API reports for a stored file once a rule decided its
/// processing (`"processing"` on a rule): instead of the default (non-video
/// files `completed` at once, videos `pending` → `processing` → `completed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Processing {
    /// The status the file ends in.
    pub status: ProcessingStatus,
    /// `error_message` of a `failed` file (a default is given when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The outcome of a file's processing, as a rule decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessingStatus {
    /// Stuck in `processing`: it never completes.
    Processing,
    /// `completed` at once (a video too).
    Completed,
    /// `failed`, with an `error_message`.
    Failed,
}

impl Match {
    /// The earliest phase at which every condition can be checked.
    pub fn earliest_phase(&self) -> Phase {
        if self.size.is_some() {
            Phase::Complete
        } else if self.filename.is_some() || self.content_type.is_some() {
            Phase::Upload
        } else {
            Phase::Request
        }
    }

    /// The field that forces `earliest_phase`, for error messages.
    fn latest_condition(&self) -> &'static str {
        if self.size.is_some() {
            "match.size"
        } else if self.filename.is_some() {
            "match.filename"
        } else {
            "match.content_type"
        }
    }
}

/// Inclusive bounds on a size; numbers of bytes or human sizes (`"1MiB"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, try_from = "SizeRangeDef")]
pub struct SizeRange {
    /// At least this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_size")]
    pub min: Option<u64>,
    /// At most this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_size")]
    pub max: Option<u64>,
}

impl SizeRange {
    /// Is `size` within the bounds?
    pub fn contains(&self, size: u64) -> bool {
        self.min.is_none_or(|min| size >= min) && self.max.is_none_or(|max| size <= max)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeRangeDef {
    #[serde(default, with = "opt_size")]
    min: Option<u64>,
    #[serde(default, with = "opt_size")]
    max: Option<u64>,
}

impl TryFrom<SizeRangeDef> for SizeRange {
    type Error = String;
    fn try_from(def: SizeRangeDef) -> Result<Self, Self::Error> {
        if let (Some(min), Some(max)) = (def.min, def.max) {
            if min > max {
                return Err(format!("size.min ({min}) is greater than size.max ({max})"));
            }
        }
        Ok(Self {
            min: def.min,
            max: def.max,
        })
    }
}

/// `Option<u64>` that also reads human sizes such as `"64KiB"`.
mod opt_size {
    use super::ByteSize;
    use serde::{de, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size in bytes (a number, or a string such as \"64KiB\") or null")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse::<ByteSize>()
                    .map(|b| Some(b.bytes()))
                    .map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: de::Deserializer<'de>>(
                self,
                d: D2,
            ) -> Result<Self::Value, D2::Error> {
                d.deserialize_any(V)
            }
        }
        d.deserialize_option(V)
    }
}

/// When a matching rule fires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Let the first N matching requests through.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub after: u64,
    /// Fire at most M times (default: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Fire with this probability, from the server's seeded RNG.
    #[serde(default, skip_serializing_if = "Probability::is_one")]
    pub probability: Probability,
}

impl Default for When {
    fn default() -> Self {
        Self {
            after: 0,
            times: None,
            probability: Probability::ALWAYS,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The read timeout assumed for a client that announces none: the official
/// Python SDK's default (`DEFAULT_TIMEOUT`, 60 s).
pub const FALLBACK_READ_TIMEOUT_MS: u64 = 60_000;

/// Longest wait a rule may ask for: 7 days, in milliseconds.
pub const MAX_WAIT_MS: u64 = crate::config::MAX_DURATION.as_secs() * 1000;

/// A wait of a `delay_ms` or a `hang`'s `for_ms`: fixed milliseconds (a JSON
/// integer), or relative to the read timeout the client announced in its
/// `x-stainless-read-timeout` header, as the official SDK does on every
/// request (a JSON string: `"read_timeout"`, `"read_timeout+500"`,
/// `"read_timeout-500"`). A client that announces none is taken to have
/// [`FALLBACK_READ_TIMEOUT_MS`]; a relative wait below zero is no wait.
///
/// ```
/// use aymara_mock::Wait;
/// let past: Wait = serde_json::from_str(r#""read_timeout+500""#).unwrap();
/// assert_eq!(past, Wait::ReadTimeout { offset_ms: 500 });
/// assert_eq!(past.millis(Some(2_000)), 2_500);
/// assert_eq!(past.millis(None), 60_500);
/// assert_eq!(Wait::Fixed(40).millis(Some(2_000)), 40);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// This many milliseconds.
    Fixed(u64),
    /// The client's announced read timeout plus `offset_ms` (which may be negative).
    ReadTimeout {
        /// Milliseconds added to the read timeout.
        offset_ms: i64,
    },
}

impl Wait {
    /// No wait.
    pub const NONE: Wait = Wait::Fixed(0);

    /// The wait in milliseconds, for a client that announced `read_timeout_ms`.
    pub fn millis(self, read_timeout_ms: Option<u64>) -> u64 {
        match self {
            Wait::Fixed(ms) => ms,
            Wait::ReadTimeout { offset_ms } => {
                let base = read_timeout_ms.unwrap_or(FALLBACK_READ_TIMEOUT_MS);
                base.saturating_add_signed(offset_ms).min(MAX_WAIT_MS)
            }
        }
    }

    fn is_none(&self) -> bool {
        *self == Wait::NONE
    }
}

impl Default for Wait {
    fn default() -> Self {
        Wait::NONE
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wait::Fixed(ms) => write!(f, "{ms}"),
            Wait::ReadTimeout { offset_ms: 0 } => f.write_str("read_timeout"),
            Wait::ReadTimeout { offset_ms } => write!(f, "read_timeout{offset_ms:+}"),
        }
    }
}

impl Serialize for Wait {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Wait::Fixed(ms) => serializer.serialize_u64(*ms),
            relative => serializer.collect_str(relative),
        }
    }
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Wait;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "milliseconds (an integer), or \"read_timeout\", \"read_timeout+N\" or \"read_timeout-N\"",
                )
            }
            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Wait, E> {
                if ms > MAX_WAIT_MS {
                    return Err(E::custom(format!(
                        "{ms} ms is more than the longest wait, {MAX_WAIT_MS} ms (7 days)"
                    )));
                }
                Ok(Wait::Fixed(ms))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Wait, E> {
                parse_relative_wait(s).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn parse_relative_wait(s: &str) -> Result<Wait, String> {
    let Some(offset) = s.trim().strip_prefix("read_timeout").map(str::trim_start) else {
        return Err(format!(
            "{s:?} is not a wait: give milliseconds (an integer), or \"read_timeout\", \"read_timeout+N\" or \"read_timeout-N\" (N in milliseconds)"
        ));
    };
    if offset.is_empty() {
        return Ok(Wait::ReadTimeout { offset_ms: 0 });
    }
    let sign = match offset.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => {
            return Err(format!(
                "{s:?}: after \"read_timeout\" comes +N or -N (milliseconds)"
            ))
        }
    };
    let digits = offset[1..].trim_start();
    let n = digits
        .parse::<u64>()
        .ok()
        .filter(|n| digits.bytes().all(|b| b.is_ascii_digit()) && *n <= MAX_WAIT_MS)
        .ok_or_else(|| {
            format!("{s:?}: the offset must be whole milliseconds, at most {MAX_WAIT_MS}")
        })?;
    // n <= MAX_WAIT_MS fits in an i64.
    Ok(Wait::ReadTimeout {
        offset_ms: sign * n as i64,
    })
}

/// The read timeout a client announced in `x-stainless-read-timeout` (seconds,
/// as the official SDK sends it: `"2.0"`, `"60"`), in milliseconds; `None` when
/// absent or not a sane number of seconds.
pub(crate) fn announced_read_timeout_ms(headers: &http::HeaderMap) -> Option<u64> {
    let secs: f64 = headers
        .get("x-stainless-read-timeout")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0 && secs * 1000.0 <= MAX_WAIT_MS as f64)
        .then(|| (secs * 1000.0).round() as u64)
}

/// A probability in `0.0..=1.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Probability(f64);

impl Probability {
    /// Certainty.
    pub const ALWAYS: Probability = Probability(1.0);

    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }

    fn is_one(&self) -> bool {
        self.0 >= 1.0
    }
}

impl Default for Probability {
    fn default() -> Self {
        Self::ALWAYS
    }
}

impl TryFrom<f64> for Probability {
    type Error = String;
    fn try_from(p: f64) -> Result<Self, Self::Error> {
        if (0.0..=1.0).contains(&p) {
            Ok(Self(p))
        } else {
            Err(format!("probability must be between 0 and 1, got {p}"))
        }
    }
}

impl From<Probability> for f64 {
    fn from(p: Probability) -> f64 {
        p.0
    }
}

/// An HTTP status a rule may answer with: 200 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Status(u16);

impl Status {
    /// The numeric status.
    pub fn code(self) -> u16 {
        self.0
    }

    /// Is it a success (2xx)?
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
}

impl TryFrom<u16> for Status {
    type Error = String;
    fn try_from(code: u16) -> Result<Self, Self::Error> {
        if (200..=599).contains(&code) {
            Ok(Self(code))
        } else {
            Err(format!("status must be between 200 and 599, got {code}"))
        }
    }
}

impl From<Status> for u16 {
    fn from(s: Status) -> u16 {
        s.0
    }
}

/// Response headers a rule adds: names and values checked as HTTP allows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(
    try_from = "BTreeMap<String, String>",
    into = "BTreeMap<String, String>"
)]
pub struct Headers(BTreeMap<String, String>);

impl Headers {
    /// The headers, as name → value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for Headers {
    type Error = String;
    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        for (name, value) in &map {
            http::HeaderName::try_from(name.as_str())
                .map_err(|_| format!("{name:?} is not a valid header name"))?;
            http::HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("the value of header {name:?} is not a valid header value"))?;
        }
        Ok(Self(map))
    }
}

impl From<Headers> for BTreeMap<String, String> {
    fn from(h: Headers) -> Self {
        h.0
    }
}

/// Answer with a status and a body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// The status, 200–599.
    pub status: Status,
    /// Extra response headers.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// `error.code` (default: the real API's code for the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// `error.message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `error.details`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    /// Replaces the whole body with this JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Shallow-merged into the default body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Map<String, Value>>,
}

/// A network fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Fault {
    /// Close the connection with no answer, after reading `after_bytes` body bytes if given.
    Reset {
        /// Body bytes to read before closing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_bytes: Option<u64>,
    },
    /// Read nothing more and answer nothing for `for_ms` (default: until the client gives up), then close.
    Hang {
        /// How long to hang: milliseconds, or relative to the client's read timeout.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_ms: Option<Wait>,
    },
    /// Send the headers with the full `Content-Length`, then half the body, then close.
    Truncate,
}

impl Fault {
    /// The fault's name, as journaled.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Reset { .. } => "reset",
            Fault::Hang { .. } => "hang",
            Fault::Truncate => "truncate",
        }
    }
}

/// `"pass": {}`: handle normally.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pass {}

/// What a rule does when it fires.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per rule, built when rules load; boxing `Respond` would change the public API"
)]
pub enum Action {
    /// Answer with a status.
    Respond(Respond),
    /// Misbehave on the network.
    Fault(Fault),
    /// Handle normally (with the rule's modifiers).
    Pass,
}

/// One fault rule.
///
/// Build one from JSON (the fixture format) or with the helpers:
///
/// ```
/// use aymara_mock::Rule;
/// let from_json: Rule = serde_json::from_str(
///     r#"{"id": "once", "respond": {"status": 503}, "when": {"times": 1}}"#,
/// ).unwrap();
/// let built = Rule::respond(503).with_id("once").times(1);
/// assert_eq!(from_json, built);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleDef", into = "RuleDef")]
pub struct Rule {
    /// The rule's id (generated when omitted).
    pub id: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Conditions.
    pub matcher: Match,
    /// Counting and probability.
    pub when: When,
    /// When the rule is decided.
    pub phase: Phase,
    /// What it does.
    pub action: Action,
    /// How long to wait before answering: milliseconds, or relative to the
    /// client's read timeout.
    pub delay_ms: Wait,
    /// Read the upload at this rate.
    pub throttle_bytes_per_sec: Option<u64>,
    /// Keep the stored file even though the client sees an error.
    pub keep_upload: bool,
    /// How the files API reports the processing of the file this request
    /// stores (on the routes that store files).
    pub processing: Option<Processing>,
}

impl Rule {
    fn with_action(action: Action) -> Self {
        Self {
            id: None,
            description: None,
            matcher: Match::default(),
            when: When::default(),
            phase: Phase::Request,
            action,
            delay_ms: Wait::NONE,
            throttle_bytes_per_sec: None,
            keep_upload: false,
            processing: None,
        }
    }

    /// A rule answering every upload with `status` and the default envelope.
    ///
    /// A status outside 200–599 is clamped into that range.
    pub fn respond(status: u16) -> Self {
        let status = Status(status.clamp(200, 599));
        Self::with_action(Action::Respond(Respond {
            status,
            headers: Headers::default(),
            code: None,
            message: None,
            details: None,
            body: None,
            merge: None,
        }))
    }

    /// A rule carrying out a network fault on every upload.
    pub fn fault(fault: Fault) -> Self {
        Self::with_action(Action::Fault(fault))
    }

    /// A rule that lets every upload through (useful with modifiers).
    pub fn pass() -> Self {
        Self::with_action(Action::Pass)
    }

    /// Sets the id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Fires at most `n` times.
    pub fn times(mut self, n: u64) -> Self {
        self.when.times = Some(n);
        self
    }

    /// Lets the first `n` matching requests through.
    pub fn after(mut self, n: u64) -> Self {
        self.when.after = n;
        self
    }
}

/// The JSON shape of a rule, checked into a [`Rule`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(rename = "match", default)]
    matcher: Match,
    #[serde(default)]
    when: When,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<Phase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    respond: Option<Respond>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fault: Option<Fault>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pass: Option<Pass>,
    #[serde(default, skip_serializing_if = "Wait::is_none")]
    delay_ms: Wait,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    throttle_bytes_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    keep_upload: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    processing: Option<Processing>,
}

fn action_fault_name(action: &Action) -> &'static str {
    match action {
        Action::Fault(fault) => fault.name(),
        _ => "",
    }
}

/// Ids name rules in URLs (`DELETE /__admin/rules/<id>`): keep them plain.
fn check_id(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.is_empty() || id.len() > 128 || !id.chars().all(ok_char) {
        return Err(format!(
            "id {id:?} must be 1 to 128 characters of letters, digits, '-', '_', '.' or ':'"
        ));
    }
    Ok(())
}

impl TryFrom<RuleDef> for Rule {
    type Error = String;

    fn try_from(def: RuleDef) -> Result<Self, Self::Error> {
        if let Some(id) = &def.id {
            check_id(id)?;
        }
        let action = match (def.respond, def.fault, def.pass) {
            (Some(r), None, None) => Action::Respond(r),
            (None, Some(f), None) => Action::Fault(f),
            (None, None, Some(_)) => Action::Pass,
            (None, None, None) => {
                return Err(
                    "a rule needs one action: \"respond\", \"fault\" or \"pass\" (write \"pass\": {} to only delay or throttle)"
                        .into(),
                )
            }
            _ => {
                return Err(
                    "a rule takes exactly one action: \"respond\", \"fault\" or \"pass\", not several"
                        .into(),
                )
            }
        };
        if let Action::Respond(r) = &action {
            if r.body.is_some() && r.merge.is_some() {
                return Err("respond takes \"body\" or \"merge\", not both".into());
            }
        }
        // A reset or hang that keeps the upload keeps a whole one: it can
        // only be carried out once the file is received.
        let closes = matches!(
            action,
            Action::Fault(Fault::Reset { after_bytes: None } | Fault::Hang { .. })
        );
        if def.keep_upload {
            if let Action::Fault(Fault::Reset {
                after_bytes: Some(_),
            }) = action
            {
                return Err(
                    "keep_upload has no effect with fault.after_bytes: the upload is cut before it is received whole"
                        .into(),
                );
            }
        }
        if let Some(p) = &def.processing {
            if p.error_message.is_some() && p.status != ProcessingStatus::Failed {
                return Err(
                    "processing.error_message is only reported for status \"failed\"".into(),
                );
            }
        }
        let earliest = def.matcher.earliest_phase();
        let phase = match def.phase {
            Some(p) if p < earliest => {
                return Err(format!(
                    "phase \"{p}\" is too early: {} is known only at phase \"{earliest}\"",
                    def.matcher.latest_condition()
                ))
            }
            Some(p) if def.keep_upload && closes && p < Phase::Complete => {
                return Err(format!(
                    "keep_upload with a {} fault needs phase \"complete\": at phase \"{p}\" the file is not received yet (omit phase, or write \"complete\")",
                    action_fault_name(&action)
                ))
            }
            Some(p) => p,
            None if def.keep_upload && closes => Phase::Complete,
            None => earliest,
        };
        match def.throttle_bytes_per_sec {
            Some(0) => return Err("throttle_bytes_per_sec must be at least 1".into()),
            Some(_) if phase == Phase::Complete => {
                return Err(
                    "throttle_bytes_per_sec has no effect at phase \"complete\" (the upload has been read); decide the rule at phase \"request\" or \"upload\""
                        .into(),
                )
            }
            _ => {}
        }
        if let Action::Fault(Fault::Reset {
            after_bytes: Some(_),
        }) = action
        {
            if phase == Phase::Complete {
                return Err(
                    "fault.after_bytes has no effect at phase \"complete\" (the whole upload has been read)"
                        .into(),
                );
            }
        }
        Ok(Self {
            id: def.id,
            description: def.description,
            matcher: def.matcher,
            when: def.when,
            phase,
            action,
            delay_ms: def.delay_ms,
            throttle_bytes_per_sec: def.throttle_bytes_per_sec,
            keep_upload: def.keep_upload,
            processing: def.processing,
        })
    }
}

impl From<Rule> for RuleDef {
    fn from(rule: Rule) -> Self {
        let (respond, fault, pass) = match rule.action {
            Action::Respond(r) => (Some(r), None, None),
            Action::Fault(f) => (None, Some(f), None),
            Action::Pass => (None, None, Some(Pass {})),
        };
        Self {
            id: rule.id,
            description: rule.description,
            matcher: rule.matcher,
            when: rule.when,
            phase: Some(rule.phase),
            respond,
            fault,
            pass,
            delay_ms: rule.delay_ms,
            throttle_bytes_per_sec: rule.throttle_bytes_per_sec,
            keep_upload: rule.keep_upload,
            processing: rule.processing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Rule, String> {
        serde_json::from_str::<Rule>(json).map_err(|e| e.to_string())
    }

    /// `RouteName::as_str` (the metrics' `route` label, which must not
    /// allocate) spells each name as serde does, for every name the schema
    /// lists (another test keeps the schema and the serde model in step).
    #[test]
    fn each_route_names_label_is_its_serde_name() {
        let schema: Value = serde_json::from_str(crate::rules::schema::SCHEMA).unwrap();
        let names = schema
            .pointer("/$defs/match/properties/route/enum")
            .and_then(Value::as_array)
            .expect("the schema's route names");
        assert!(!names.is_empty());
        for name in names {
            let route: RouteName = serde_json::from_value(name.clone()).unwrap();
            assert_eq!(Some(route.as_str()), name.as_str());
            assert_eq!(serde_json::to_value(route).unwrap(), *name);
        }
    }

    #[test]
    fn waits_are_milliseconds_or_relative_to_the_read_timeout() {
        let wait = |json: &str| serde_json::from_str::<Wait>(json).map_err(|e| e.to_string());
        for (json, expect) in [
            ("0", Wait::NONE),
            ("1500", Wait::Fixed(1500)),
            (r#""read_timeout""#, Wait::ReadTimeout { offset_ms: 0 }),
            (
                r#""read_timeout+500""#,
                Wait::ReadTimeout { offset_ms: 500 },
            ),
            (
                r#"" read_timeout - 250 ""#,
                Wait::ReadTimeout { offset_ms: -250 },
            ),
        ] {
            assert_eq!(wait(json), Ok(expect), "{json}");
        }
        for bad in [
            "-1",
            "1.5",
            r#""500""#,
            r#""read_timeout*2""#,
            r#""read_timeout+""#,
            r#""read_timeout++5""#,
            r#""read_timeout+5s""#,
            r#""read_timeout+99999999999999""#,
            "null",
        ] {
            assert!(wait(bad).is_err(), "{bad} was accepted");
        }
        // Written back as read: the fixture format round-trips.
        for w in [Wait::Fixed(7), Wait::ReadTimeout { offset_ms: -500 }] {
            let json = serde_json::to_string(&w).unwrap();
            assert_eq!(wait(&json), Ok(w), "{json}");
        }
        assert_eq!(
            serde_json::to_string(&Wait::ReadTimeout { offset_ms: 0 }).unwrap(),
            r#""read_timeout""#
        );
    }

    #[test]
    fn a_relative_wait_resolves_against_the_announced_timeout_or_the_fallback() {
        let minus = Wait::ReadTimeout { offset_ms: -500 };
        assert_eq!(minus.millis(Some(2_000)), 1_500);
        assert_eq!(minus.millis(Some(100)), 0, "below zero is no wait");
        assert_eq!(minus.millis(None), FALLBACK_READ_TIMEOUT_MS - 500);
        let huge = Wait::ReadTimeout {
            offset_ms: MAX_WAIT_MS as i64,
        };
        assert_eq!(huge.millis(Some(MAX_WAIT_MS)), MAX_WAIT_MS, "capped");

        let announced = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-stainless-read-timeout", value.parse().unwrap());
            announced_read_timeout_ms(&headers)
        };
        assert_eq!(announced("2.0"), Some(2_000));
        assert_eq!(announced("60"), Some(60_000));
        assert_eq!(announced(" 0.25 "), Some(250));
        for bad in ["-1", "NaN", "inf", "1e300", "two"] {
            assert_eq!(announced(bad), None, "{bad}");
        }
        assert_eq!(announced_read_timeout_ms(&http::HeaderMap::new()), None);
    }

    #[test]
    fn a_hang_and_a_delay_take_relative_waits() {
        let rule = parse(
            r#"{"fault":{"kind":"hang","for_ms":"read_timeout+500"},"delay_ms":"read_timeout-100"}"#,
        )
        .unwrap();
        assert_eq!(
            rule.action,
            Action::Fault(Fault::Hang {
                for_ms: Some(Wait::ReadTimeout { offset_ms: 500 })
            })
        );
        assert_eq!(rule.delay_ms, Wait::ReadTimeout { offset_ms: -100 });
    }

    #[test]
    fn the_spec_example_parses() {
        let rule = parse(
            r#"{
              "id": "third-upload-rate-limited",
              "description": "free text",
              "match": {
                "method": "POST", "path": "/v2/files/-/uploads",
                "headers": {"x-api-key": "limited-*"},
                "query": {"workspace_uuid": "ws-*"},
                "filename": "*.mp4", "content_type": "video/*",
                "size": {"min": 1048576, "max": null}
              },
              "when": {"after": 2, "times": 1, "probability": 1.0},
              "phase": "complete",
              "respond": {"status": 429, "headers": {"retry-after": "1"},
                          "code": "quota.limit_exceeded", "message": "slow down", "details": {},
                          "body": null, "merge": null},
              "delay_ms": 0
            }"#,
        )
        .unwrap();
        assert_eq!(rule.phase, Phase::Complete);
        assert_eq!(rule.when.after, 2);
        assert_eq!(
            rule.matcher.size.as_ref().and_then(|s| s.min),
            Some(1_048_576)
        );
        let pass =
            parse(r#"{"id": "slow-but-fine", "pass": {}, "throttle_bytes_per_sec": 262144}"#)
                .unwrap();
        assert_eq!(pass.action, Action::Pass);
    }

    #[test]
    fn default_phase_is_the_earliest_possible() {
        assert_eq!(parse(r#"{"pass":{}}"#).unwrap().phase, Phase::Request);
        assert_eq!(
            parse(r#"{"pass":{},"match":{"filename":"*"}}"#)
                .unwrap()
                .phase,
            Phase::Upload
        );
        assert_eq!(
            parse(r#"{"pass":{},"match":{"size":{"min":"1KiB"}}}"#)
                .unwrap()
                .phase,
            Phase::Complete
        );
    }

    #[test]
    fn semantic_errors_are_reported() {
        let cases = [
            (
                r#"{"respond":{"status":700}}"#,
                "status must be between 200 and 599",
            ),
            (
                r#"{"respond":{"status":100}}"#,
                "status must be between 200 and 599",
            ),
            (
                r#"{"pass":{},"when":{"probability":1.5}}"#,
                "probability must be between 0 and 1",
            ),
            (r#"{"when":{}}"#, "a rule needs one action"),
            (
                r#"{"pass":{},"respond":{"status":500}}"#,
                "exactly one action",
            ),
            (
                r#"{"pass":{},"phase":"request","match":{"size":{"min":1}}}"#,
                "phase \"request\" is too early: match.size",
            ),
            (
                r#"{"pass":{},"phase":"upload","match":{"size":{"max":1}}}"#,
                "too early",
            ),
            (
                r#"{"pass":{},"match":{"size":{"min":5,"max":1}}}"#,
                "greater than",
            ),
            (r#"{"pass":{},"match":{"filename":"a\\"}}"#, "lone"),
            (
                r#"{"respond":{"status":200,"body":{},"merge":{}}}"#,
                "not both",
            ),
            (
                r#"{"respond":{"status":500,"headers":{"bad name":"x"}}}"#,
                "not a valid header name",
            ),
            (r#"{"fault":{"kind":"reset","for_ms":1}}"#, "unknown field"),
            (r#"{"fault":{"kind":"explode"}}"#, "unknown variant"),
            (r#"{"pass":{},"throttle_bytes_per_sec":0}"#, "at least 1"),
            (
                r#"{"pass":{},"match":{"size":{"min":1}},"throttle_bytes_per_sec":5}"#,
                "no effect",
            ),
            (r#"{"id":"has space","pass":{}}"#, "must be 1 to 128"),
        ];
        for (json, expected) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(expected), "{json}: {err}");
        }
    }

    #[test]
    fn rules_round_trip_through_json() {
        let json = r#"{"id":"x","match":{"headers":{"x-api-key":null}},"fault":{"kind":"reset","after_bytes":65536},"delay_ms":5}"#;
        let rule = parse(json).unwrap();
        let back: Rule = serde_json::from_value(serde_json::to_value(&rule).unwrap()).unwrap();
        assert_eq!(rule, back);
        assert_eq!(rule.matcher.headers.get("x-api-key"), Some(&None));
    }
}
