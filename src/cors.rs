//! Cross-origin access for web apps (`--cors-origin`): which page origins
//! may call the emulated API, the presigned upload URLs and the download
//! URLs from a browser; what a preflight is told; and the headers every
//! answer to such a page carries, errors and rule answers included.
//!
//! The admin API takes no part: its requests are answered before any of
//! this is consulted, and `crate::same_origin` refuses every request a page
//! on another origin sends it, whatever `--cors-origin` says.
//!
//! The default is `loopback`: pages served from `localhost`, `*.localhost`
//! or a loopback address (any port, http or https) — the dev servers of
//! Vite, webpack or Next.js on the developer's own machine — may call the
//! API, as Prism and Mockoon let any page do by default; a page on any other
//! origin gets no grant until it is named.

use std::fmt;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response};
use serde::{Deserialize, Serialize};

use crate::http_util::ResponseBody;

/// How long (seconds) a browser may reuse a granted preflight. Short, so
/// that a restart with other `--cors-origin` values is seen soon.
pub(crate) const MAX_AGE_SECS: u32 = 600;

/// Response headers a page's script may read besides the CORS-safelisted
/// ones: what the SDKs and an S3 upload read (the request id, a PUT's ETag,
/// the retry hints of a 429 or 503) and a ranged download's `Content-Range`.
/// Any other header an answer carries (a rule's own) is exposed too.
pub(crate) const EXPOSED: [&str; 6] = [
    "x-request-id",
    "etag",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "content-range",
];

/// Request headers a page may send to the API: its credentials, the body's
/// type, the client's request id, `Prefer: code=`, what the Stainless SDKs
/// send (`x-stainless-*`, `idempotency-key`), `Accept` and `Range` with
/// values beyond the safelisted ones, and the trace context that front-end
/// instrumentation (OpenTelemetry, Sentry) adds to every call.
const ACCEPTED: [&str; 12] = [
    "x-api-key",
    "authorization",
    "content-type",
    "x-request-id",
    "prefer",
    "idempotency-key",
    "accept",
    "range",
    "traceparent",
    "tracestate",
    "baggage",
    "sentry-trace",
];

/// Prefixes of accepted request headers (the Stainless SDKs' own).
const ACCEPTED_PREFIXES: [&str; 1] = ["x-stainless-"];

/// What a presigned upload URL accepts besides: S3's own request headers.
const PRESIGNED_ACCEPTED: [&str; 1] = ["content-md5"];
const PRESIGNED_PREFIXES: [&str; 1] = ["x-amz-"];

/// Response headers a script may always read (the fetch standard's
/// CORS-safelisted response headers), and those that are about the
/// connection or CORS itself: never listed in `Access-Control-Expose-Headers`.
const NOT_EXPOSED: [&str; 10] = [
    "cache-control",
    "content-language",
    "content-length",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
    "connection",
    "vary",
    "transfer-encoding",
];

/// One `--cors-origin` value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// `*`: every origin.
    Any,
    /// `loopback`: http(s) pages on `localhost`, `*.localhost` or a loopback
    /// address, on any port.
    Loopback,
    /// One origin, normalized (`http://localhost:5173`).
    Exact(String),
}

/// Which page origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cors {
    /// Empty: cross-origin calls are off (`--cors-origin none`).
    allowed: Vec<Allowed>,
}

impl Default for Cors {
    fn default() -> Self {
        Self {
            allowed: vec![Allowed::Loopback],
        }
    }
}

impl fmt::Display for Cors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allowed.is_empty() {
            return f.write_str("none");
        }
        let values: Vec<&str> = self
            .allowed
            .iter()
            .map(|a| match a {
                Allowed::Any => "*",
                Allowed::Loopback => "loopback",
                Allowed::Exact(origin) => origin,
            })
            .collect();
        f.write_str(&values.join(", "))
    }
}

impl Cors {
    /// From `--cors-origin` values; `None`: the default, `loopback`.
    pub(crate) fn new(values: Option<&[String]>) -> Result<Self, String> {
        let Some(values) = values else {
            return Ok(Self::default());
        };
        let mut allowed = Vec::new();
        let mut none = false;
        for value in values {
            match parse_value(value)? {
                Some(a) if !allowed.contains(&a) => allowed.push(a),
                Some(_) => {}
                None => none = true,
            }
        }
        if none && !allowed.is_empty() {
            return Err(format!(
                "--cors-origin none turns cross-origin access off: it cannot be combined with other origins ({})",
                Self { allowed }
            ));
        }
        if !none && allowed.is_empty() {
            return Err("--cors-origin needs a value: an origin such as http://localhost:5173, `*`, `loopback` or `none`".into());
        }
        Ok(Self { allowed })
    }

    /// Whether a page on `origin` (an `Origin` header's value) may call the API.
    fn allows(&self, origin: &HeaderValue) -> bool {
        let normalized = origin.to_str().ok().and_then(normalize_origin);
        self.allowed.iter().any(|a| match a {
            Allowed::Any => true,
            Allowed::Loopback => normalized.as_deref().is_some_and(is_loopback_origin),
            Allowed::Exact(want) => normalized.as_deref() == Some(want.as_str()),
        })
    }

    /// What the journal records of a request that carries `Origin` (sent by
    /// a browser), before its answer; `None` without one.
    pub(crate) fn visit(&self, headers: &HeaderMap) -> Option<CorsRecord> {
        let origin = headers.get(header::ORIGIN)?;
        Some(CorsRecord {
            origin: String::from_utf8_lossy(origin.as_bytes()).into_owned(),
            allowed: self.allows(origin),
            preflight_method: None,
            preflight_headers: Vec::new(),
            refused: Vec::new(),
        })
    }

    /// Why a page on `origin` gets no grant, and what to change.
    pub(crate) fn refusal(&self, origin: &str) -> String {
        if self.allowed.is_empty() {
            format!("Cross-origin calls are off (--cors-origin none): start aymara-mock with --cors-origin {origin} to let pages on {origin} call the API.")
        } else {
            format!("Pages on {origin} may not call the API: it is not among --cors-origin ({self}). Start aymara-mock with --cors-origin {origin} (repeatable) to let them.")
        }
    }
}

/// Checks one value for [`MockServerBuilder::cors_origin`](crate::MockServerBuilder::cors_origin)
/// (`--cors-origin`): an origin such as `http://localhost:5173`, `*`,
/// `loopback` or `none`. Returns it trimmed, or what is wrong with it, so
/// that a command line can refuse it before [`start`](crate::MockServerBuilder::start)
/// would. (`none` together with another origin is refused only by `start`.)
///
/// ```
/// use aymara_mock::check_cors_origin;
/// assert_eq!(check_cors_origin(" http://localhost:5173 ").unwrap(), "http://localhost:5173");
/// assert!(check_cors_origin("localhost:5173").unwrap_err().contains("--cors-origin"));
/// ```
pub fn check_cors_origin(value: &str) -> Result<String, String> {
    parse_value(value).map(|_| value.trim().to_owned())
}

/// `Some(allowed)`, or `None` for `none`.
fn parse_value(value: &str) -> Result<Option<Allowed>, String> {
    let value = value.trim();
    match value {
        "*" => Ok(Some(Allowed::Any)),
        "loopback" => Ok(Some(Allowed::Loopback)),
        "none" => Ok(None),
        _ => normalize_origin(value).map(|o| Some(Allowed::Exact(o))).ok_or_else(|| {
            format!("invalid --cors-origin {value:?}: expected an origin such as http://localhost:5173 (scheme, host and optional port, no path), `*` (any), `loopback` or `none`")
        }),
    }
}

/// `scheme://host[:port]` as browsers send it in `Origin`: lowercase, the
/// scheme's default port left out; a trailing `/` is tolerated, a path,
/// query or user info is not.
fn normalize_origin(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_suffix('/').unwrap_or(text);
    let uri = http::Uri::try_from(text).ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || uri.query().is_some() {
        return None;
    }
    if !matches!(uri.path(), "" | "/") || text.ends_with('/') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let default_port = match scheme.as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    Some(match authority.port_u16() {
        Some(port) if Some(port) != default_port => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// An http(s) origin on `localhost`, `*.localhost` or a loopback address.
fn is_loopback_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if scheme != "http" && scheme != "https" {
        return false;
    }
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.rsplit_once(':').map_or(rest, |(host, _)| host),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method` (a plain `OPTIONS` is not one).
pub(crate) fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// Whether a page may send request header `name` (lowercase) to a route;
/// `presigned`: a presigned upload URL, which takes S3's headers too.
pub(crate) fn accepts_header(name: &str, presigned: bool) -> bool {
    ACCEPTED.contains(&name)
        || ACCEPTED_PREFIXES.iter().any(|p| name.starts_with(p))
        || (presigned
            && (PRESIGNED_ACCEPTED.contains(&name)
                || PRESIGNED_PREFIXES.iter().any(|p| name.starts_with(p))))
}

/// Adds what lets the page on `origin` read an answer: the origin itself,
/// `Vary: Origin`, and the headers it may read.
pub(crate) fn grant(response: &mut Response<ResponseBody>, origin: &HeaderValue) {
    let mut exposed: Vec<&str> = EXPOSED.to_vec();
    let own: Vec<HeaderName> = response
        .headers()
        .keys()
        .filter(|name| {
            let name = name.as_str();
            !NOT_EXPOSED.contains(&name)
                && !name.starts_with("access-control-")
                && !EXPOSED.contains(&name)
        })
        .cloned()
        .collect();
    exposed.extend(own.iter().map(HeaderName::as_str));
    let exposed = HeaderValue::from_str(&exposed.join(", "))
        .unwrap_or_else(|_| HeaderValue::from_static("x-request-id"));
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// A request from a web page (it sent `Origin`), as journaled: whether its
/// origin may call the API, and for a preflight what the page asked for and
/// what the grant left out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CorsRecord {
    /// The page's origin, as sent (`Origin`).
    pub origin: String,
    /// Whether `--cors-origin` lets pages on that origin call the API: the
    /// answer carried `Access-Control-Allow-Origin`, and the page could read it.
    pub allowed: bool,
    /// For a preflight: the method the page asked to use
    /// (`Access-Control-Request-Method`).
    pub preflight_method: Option<String>,
    /// For a preflight: the request headers the page asked to send
    /// (`Access-Control-Request-Headers`), lowercase.
    pub preflight_headers: Vec<String>,
    /// What a preflight's grant left out (`method PATCH`, `header x-custom`):
    /// the browser then refuses to send the request. Empty when all was granted.
    pub refused: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(values: &[&str]) -> Result<Cors, String> {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        Cors::new(Some(&values))
    }

    fn allows(cors: &Cors, origin: &str) -> bool {
        cors.allows(&HeaderValue::from_str(origin).unwrap())
    }

    /// The command line shows `defaults::CORS_ORIGIN` as its default and
    /// passes it on: it must mean what no value means to the builder.
    #[test]
    fn the_default_origin_is_what_no_value_means() {
        assert_eq!(
            cors(&[crate::defaults::CORS_ORIGIN]),
            Cors::new(crate::config::Config::default().cors_origins.as_deref())
        );
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        let n = |s| normalize_origin(s);
        assert_eq!(
            n("HTTP://LocalHost:5173/").as_deref(),
            Some("http://localhost:5173")
        );
        assert_eq!(n("https://a.test:443").as_deref(), Some("https://a.test"));
        assert_eq!(n("http://[::1]:8080").as_deref(), Some("http://[::1]:8080"));
        for bad in [
            "localhost:5173",
            "http://a.test/app",
            "http://u@a.test",
            "http://a.test?x=1",
            "null",
            "",
        ] {
            assert_eq!(n(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_default_lets_in_loopback_pages_only() {
        let cors = Cors::default();
        for ok in [
            "http://localhost:5173",
            "https://localhost",
            "http://app.localhost:3000",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:5173",
        ] {
            assert!(allows(&cors, ok), "{ok}");
        }
        for refused in [
            "http://localhost.evil.test",
            "http://evil.test",
            "http://10.0.0.1:5173",
            "null",
            "file://",
            "chrome-extension://abc",
        ] {
            assert!(!allows(&cors, refused), "{refused}");
        }
    }

    #[test]
    fn named_origins_match_exactly_and_star_matches_all() {
        let cors = cors(&["http://localhost:5173"]).unwrap();
        assert!(allows(&cors, "http://localhost:5173"));
        assert!(!allows(&cors, "http://localhost:5174"));
        assert!(!allows(&cors, "https://localhost:5173"));
        assert!(!allows(&cors, "http://127.0.0.1:5173"));
        let any = self::cors(&["*"]).unwrap();
        assert!(allows(&any, "https://anything.example"));
        assert!(allows(&any, "null"));
        assert_eq!(any.to_string(), "*");
    }

    #[test]
    fn none_turns_it_off_and_bad_values_are_refused() {
        let off = cors(&["none"]).unwrap();
        assert!(!allows(&off, "http://localhost:5173"));
        assert!(off.refusal("http://x.test").contains("--cors-origin none"));
        assert!(cors(&["none", "*"])
            .unwrap_err()
            .contains("cannot be combined"));
        assert!(cors(&["localhost:5173"])
            .unwrap_err()
            .contains("http://localhost:5173"));
        assert!(cors(&[]).is_err());
        assert_eq!(
            cors(&["http://a.test", "http://a.test/", "loopback"])
                .unwrap()
                .to_string(),
            "http://a.test, loopback"
        );
    }

    #[test]
    fn accepted_headers_are_the_apis_and_s3s_on_presigned_urls() {
        for name in ["x-api-key", "content-type", "x-stainless-retry-count"] {
            assert!(accepts_header(name, false), "{name}");
        }
        assert!(!accepts_header("x-custom", false));
        assert!(!accepts_header("x-amz-checksum-sha256", false));
        assert!(accepts_header("x-amz-checksum-sha256", true));
        assert!(accepts_header("content-md5", true));
    }
}
