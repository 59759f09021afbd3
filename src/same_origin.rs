//! Refuses admin requests that a web page on another origin could have sent.
//!
//! The admin API changes state (rules, reset, deletes) and has no credentials
//! by default, so any page a developer opens could drive it through their
//! browser. Three checks close that, each one alone being how browsers differ
//! from the clients the admin API is meant for (curl, httpx, reqwest, SDKs):
//!
//! - **Host** (DNS rebinding): a page on `evil.example` whose name is made to
//!   resolve to 127.0.0.1 reaches this server with `Host: evil.example`. Only
//!   names this server is known by are accepted: `localhost` and
//!   `*.localhost`, IP literals (a rebinding needs a name the attacker
//!   controls, so an IP literal is never one), the `--public-url` host, and,
//!   when listening beyond loopback, single-label names (docker compose
//!   service names such as `mock`). With `--admin-token` any name is
//!   accepted: a page cannot know the token. The port is not compared: ssh
//!   tunnels and port mappings change it, and a rebinding is defeated by the
//!   name alone.
//! - **Origin** (CSRF): browsers send `Origin` on every cross-origin request
//!   other than a plain navigation, and on every POST, so an `Origin` that is
//!   not this server's own is refused: the request's own `Host`, the
//!   `--public-url` origin, or a loopback alias on the port served (a page on
//!   `localhost:PORT` calling `127.0.0.1:PORT`). `Origin: null` (sandboxed
//!   documents, such as the downloads served under `/__files`) is refused.
//!   Non-browser clients send no `Origin`, and are accepted.
//! - **Content type**: a body must be `application/json` (checked by the
//!   route that reads one); a web page can send only form and `text/plain`
//!   bodies cross-origin without a CORS preflight, which this server never
//!   grants.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;

use crate::error::ApiError;

/// What a request must look like to be this server's own.
#[derive(Debug, Clone)]
pub(crate) struct SameOrigin {
    bound: SocketAddr,
    /// `--public-url` (or the URL listened on) as scheme, host, port.
    public: Option<Origin>,
    any_host: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl SameOrigin {
    /// `bound` is the address listened on, `public_url` the base of
    /// `file_url`; `admin_token` whether `--admin-token` is set.
    pub(crate) fn new(bound: SocketAddr, public_url: &str, admin_token: bool) -> Self {
        Self {
            bound,
            public: parse_origin(public_url.trim_end_matches('/')),
            any_host: admin_token,
        }
    }

    /// `Ok` when the request (its `authority`, from the request target or
    /// `Host`, and its headers) comes from this server's own origin or from a
    /// client that is not a browser.
    pub(crate) fn check(
        &self,
        authority: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        let host = match authority {
            Some(authority) => {
                let parsed = split_authority(authority)
                    .filter(|(name, _)| self.known_name(name))
                    .ok_or_else(|| foreign_host(authority))?;
                Some(parsed)
            }
            None => None,
        };
        let Some(origin) = headers.get(http::header::ORIGIN) else {
            return Ok(());
        };
        let text = String::from_utf8_lossy(origin.as_bytes());
        match parse_origin(text.trim()) {
            Some(origin) if self.own_origin(&origin, host.as_ref()) => Ok(()),
            _ => Err(foreign_origin(&text)),
        }
    }

    /// `Ok` when the request's `Host` is a name this server is known by (or
    /// none was sent): the check that keeps a DNS-rebinding page from
    /// reading what the routes that serve stored files and their listing
    /// answer, without the `Origin` check (a page on another origin cannot
    /// read their answers anyway, and `--cors-origin` lets some do).
    pub(crate) fn check_host(&self, authority: Option<&str>) -> Result<(), ApiError> {
        match authority {
            Some(authority)
                if split_authority(authority).is_none_or(|(n, _)| !self.known_name(&n)) =>
            {
                Err(foreign_host_for_files(authority))
            }
            _ => Ok(()),
        }
    }

    fn known_name(&self, name: &str) -> bool {
        self.any_host
            || is_loopback_name(name)
            || name.parse::<IpAddr>().is_ok()
            || self.public.as_ref().is_some_and(|p| p.host == name)
            || (!self.bound.ip().is_loopback() && !name.contains('.'))
    }

    fn own_origin(&self, origin: &Origin, host: Option<&(String, Option<u16>)>) -> bool {
        if origin.scheme != "http" && origin.scheme != "https" {
            return false;
        }
        let same_as_host = host.is_some_and(|(name, port)| {
            origin.scheme == "http" && *name == origin.host && port.unwrap_or(80) == origin.port
        });
        let serves_loopback = self.bound.ip().is_loopback() || self.bound.ip().is_unspecified();
        let loopback_alias = serves_loopback
            && origin.scheme == "http"
            && is_loopback_name(&origin.host)
            && origin.port == self.bound.port();
        same_as_host || loopback_alias || self.public.as_ref() == Some(origin)
    }
}

/// `localhost`, `*.localhost` (which browsers resolve to loopback
/// themselves), and loopback IP literals.
fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` → (lowercase host without brackets or a trailing dot, port).
pub(crate) fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            Some(_) => return None,
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host, port))
}

/// `scheme://host[:port]` (a path is tolerated, for `--public-url`).
fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = split_authority(authority)?;
    let default = match scheme.as_str() {
        "https" => 443,
        _ => 80,
    };
    Some(Origin {
        scheme,
        host,
        port: port.unwrap_or(default),
    })
}

fn foreign_host(host: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::FORBIDDEN,
        format!(
            "The admin API refuses `Host: {host}`: it is not a name this server is known by, and a web page could reach it by DNS rebinding. Call it as localhost or by IP address, or start the server with --public-url http://{host} (the name it is reached by) or --admin-token."
        ),
    )
}

fn foreign_host_for_files(host: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::FORBIDDEN,
        format!(
            "This server does not serve its files to `Host: {host}`: it is not a name this server is known by, and a web page could reach it by DNS rebinding. Call it as localhost or by IP address, or start the server with --public-url http://{host} (the name it is reached by) or --admin-token."
        ),
    )
    .with_details(serde_json::json!({"host": host}))
}

/// The authority a request was sent to: from its target (`GET http://h/…`)
/// or its `Host` header.
pub(crate) fn authority_of(uri: &http::Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(authority) = uri.authority() {
        return Some(authority.as_str().to_owned());
    }
    headers
        .get(http::header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn foreign_origin(origin: &str) -> ApiError {
    ApiError::new(
        http::StatusCode::FORBIDDEN,
        format!(
            "The admin API refuses requests from web pages on other origins (`Origin: {origin}`). Call it from a script or a test (no Origin header), or from a page this server serves."
        ),
    )
}

/// `Ok` when a request body is declared JSON (`application/json`, with any
/// parameters): a web page cannot send that cross-origin without a preflight.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = crate::http_util::essence(&content_type);
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        let sent = if essence.is_empty() {
            "no Content-Type".to_owned()
        } else {
            format!("Content-Type: {essence}")
        };
        Err(ApiError::new(
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "The admin API takes JSON bodies: send `Content-Type: application/json` (curl: -H 'content-type: application/json'); got {sent}. Other types are refused because a web page could send them from another origin."
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_are_split_and_normalized() {
        assert_eq!(
            split_authority("LocalHost.:80"),
            Some(("localhost".into(), Some(80)))
        );
        assert_eq!(split_authority("[::1]:9"), Some(("::1".into(), Some(9))));
        assert_eq!(split_authority("[::1]"), Some(("::1".into(), None)));
        assert_eq!(split_authority("mock"), Some(("mock".into(), None)));
        assert_eq!(split_authority("a:b"), None);
        assert_eq!(split_authority("::1"), None);
        assert_eq!(split_authority("[::1]x"), None);
        assert_eq!(split_authority(""), None);
        assert_eq!(split_authority("a@b:1"), None);
    }

    #[test]
    fn origins_get_their_default_port() {
        let o = parse_origin("https://Mock.Example").unwrap();
        assert_eq!(
            (o.scheme.as_str(), o.host.as_str(), o.port),
            ("https", "mock.example", 443)
        );
        assert_eq!(parse_origin("null"), None);
        assert_eq!(parse_origin("http://h:1/path").map(|o| o.port), Some(1));
    }

    #[test]
    fn json_with_parameters_is_json() {
        let mut h = HeaderMap::new();
        assert!(require_json(&h).is_err());
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(require_json(&h).is_ok());
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; x=application/json"),
        );
        assert!(require_json(&h).is_err());
    }
}
