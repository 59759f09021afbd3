//! `aymara-mock health [URL]`: asks a running emulator for `GET /health`
//! and exits 0 if it answers healthy, 1 otherwise. It is the container
//! image's health check, which has no shell and no curl to run one with.
//! Plain blocking std I/O: one request, no runtime to start.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use http::Uri;

use crate::cli::HealthArgs;

/// Most of an answer read: `/health` answers a few dozen bytes.
const MAX_ANSWER: u64 = 64 * 1024;

/// `health`: one line saying healthy (stdout, exit 0) or why not (stderr,
/// exit 1); a URL that cannot be asked at all is a usage error (exit 2).
pub(crate) fn check_health(args: &HealthArgs) -> ExitCode {
    let given = args
        .url
        .clone()
        .unwrap_or_else(|| default_url(&args.host, args.port));
    let url = match health_url(&given) {
        Ok(url) => url,
        Err(err) => {
            eprintln!("aymara-mock health: {err}");
            return ExitCode::from(2);
        }
    };
    match probe(&url, args.timeout.into()) {
        Ok(()) => {
            println!("aymara-mock at {url}: healthy");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("aymara-mock health: {url}: unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

/// The `/health` URL to ask, from the emulator's URL: its base URL as in
/// the listening line (`http://127.0.0.1:8000`, a path prefix kept), or a
/// URL that already ends in `/health`.
fn health_url(url: &str) -> Result<Uri, String> {
    let parsed: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e}); expected e.g. http://127.0.0.1:8000"))?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{url}: only http:// URLs (the emulator serves plain HTTP), not {other}://"
            ))
        }
        None => {
            return Err(format!(
                "{url:?} has no scheme; expected e.g. http://127.0.0.1:8000"
            ))
        }
    }
    let authority = parsed
        .authority()
        .ok_or_else(|| format!("{url:?} has no host; expected e.g. http://127.0.0.1:8000"))?;
    let path = parsed.path().trim_end_matches('/');
    let path = if path.ends_with("/health") {
        path.to_owned()
    } else {
        format!("{path}/health")
    };
    Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query(path)
        .build()
        .map_err(|e| format!("{url}: {e}"))
}

/// The default URL: where `serve` listens with the same `AYMARA_MOCK_HOST`
/// and `AYMARA_MOCK_PORT`, an unspecified address (`0.0.0.0`, `::`) asked
/// on loopback.
fn default_url(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "::" => "[::1]",
        other => other,
    };
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Asks `url` (a `/health` URL from [`health_url`]) within `timeout`;
/// `Ok` if it answered 200 `{"status": "ok"}`, else why not.
fn probe(url: &Uri, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {} ms", timeout.as_millis()))
    };
    let host = url.host().unwrap_or_default();
    let port = url.port_u16().unwrap_or(80);
    // An IP address is used as is; a name is resolved (getaddrinfo).
    let addrs: Vec<SocketAddr> = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host} ({e})"))?
        .collect();
    let mut last_error = format!("{host} resolves to no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("cannot connect to {addr} ({e})"),
        }
    }
    let mut stream = stream.ok_or(last_error)?;
    let authority = url.authority().map_or(host, |a| a.as_str());
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: aymara-mock-health\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        url.path()
    );
    let io = |e: std::io::Error| format!("the connection failed ({e})");
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut answer = Vec::new();
    let mut limited = (&mut stream).take(MAX_ANSWER);
    let mut chunk = [0u8; 4096];
    loop {
        limited
            .get_ref()
            .set_read_timeout(Some(left()?))
            .map_err(io)?;
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer within {} ms", timeout.as_millis()))
            }
            Err(e) => return Err(io(e)),
        }
    }
    judge(&answer)
}

/// Healthy: a complete HTTP answer, 200, whose JSON body has `"status": "ok"`.
fn judge(answer: &[u8]) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(answer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if answer.is_empty() => {
            return Err("the connection was closed without an answer".into())
        }
        Ok(httparse::Status::Partial) => return Err("the answer broke off".into()),
        Err(e) => return Err(format!("the answer is not HTTP ({e})")),
    };
    let status = response.code.unwrap_or_default();
    let body = answer.get(head_len..).unwrap_or_default();
    let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
    if status != 200 {
        return Err(format!("it answered {status}: {shown}"));
    }
    let status_field = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned));
    match status_field.as_deref() {
        Some("ok") => Ok(()),
        _ => Err(format!(
            "it answered 200 but not {{\"status\":\"ok\"}}: {shown}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls_from_base_urls() {
        for (given, want) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000/health"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/health"),
            (
                "http://localhost:8000/health",
                "http://localhost:8000/health",
            ),
            (
                "http://localhost:8000/health/",
                "http://localhost:8000/health",
            ),
            ("http://mock/prefix/", "http://mock/prefix/health"),
            ("http://[::1]:9/", "http://[::1]:9/health"),
        ] {
            assert_eq!(health_url(given).unwrap().to_string(), want, "{given}");
        }
        for (bad, why) in [
            ("https://127.0.0.1:8000", "only http://"),
            ("127.0.0.1:8000", "no scheme"),
            ("http://", "not a URL"),
            ("not a url", "not a URL"),
        ] {
            let err = health_url(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn default_urls_ask_loopback_for_unspecified_hosts() {
        assert_eq!(default_url("0.0.0.0", 8000), "http://127.0.0.1:8000");
        assert_eq!(default_url("::", 8000), "http://[::1]:8000");
        assert_eq!(default_url("[::]", 1), "http://[::1]:1");
        assert_eq!(default_url("127.0.0.1", 80), "http://127.0.0.1:80");
        assert_eq!(default_url("fd00::1", 80), "http://[fd00::1]:80");
        assert_eq!(default_url("mock.local", 8000), "http://mock.local:8000");
    }

    #[test]
    fn only_200_with_status_ok_is_healthy() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{\"status\":\"ok\"}";
        assert_eq!(judge(ok), Ok(()));
        for (answer, why) in [
            (&b""[..], "closed without an answer"),
            (b"HTTP/1.1 200 OK\r\ncontent-le", "broke off"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", "not HTTP"),
            (
                b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}",
                "answered 503",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\n<html>", "but not"),
            (b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"down\"}", "but not"),
        ] {
            let err = judge(answer).unwrap_err();
            assert!(err.contains(why), "{answer:?}: {err}");
        }
    }
}
