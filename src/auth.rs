//! Credential checking for the emulated API (`x-api-key` or `Authorization: Bearer`).

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::config::AuthPolicy;
use crate::error::ApiError;

/// The credential a request presented.
enum Credential<'a> {
    ApiKey(&'a str),
    Bearer(&'a str),
}

fn credentials(headers: &HeaderMap) -> Vec<Credential<'_>> {
    let mut found = Vec::new();
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        let key = key.trim();
        if !key.is_empty() {
            found.push(Credential::ApiKey(key));
        }
    }
    if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let mut parts = auth.trim().splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
            found.push(Credential::Bearer(token));
        }
    }
    found
}

/// Checks a request's credentials against the policy.
pub(crate) fn check(policy: &AuthPolicy, headers: &HeaderMap) -> Result<(), ApiError> {
    match policy {
        AuthPolicy::Disabled => Ok(()),
        AuthPolicy::AnyCredential => {
            if credentials(headers).is_empty() {
                Err(missing())
            } else {
                Ok(())
            }
        }
        AuthPolicy::Only {
            api_keys,
            bearer_tokens,
        } => {
            let presented = credentials(headers);
            if presented.is_empty() {
                return Err(missing());
            }
            // Every accepted value is compared, so the time taken does not
            // tell which one (or how much of one) matched.
            let accepted = presented.iter().fold(false, |found, c| {
                found
                    | match c {
                        Credential::ApiKey(k) => any_equal(api_keys, k),
                        Credential::Bearer(t) => any_equal(bearer_tokens, t),
                    }
            });
            if accepted {
                Ok(())
            } else {
                Err(ApiError::unauthorized(
                    "Invalid API key: the x-api-key or bearer token is not one this server accepts (see --api-key / --bearer-token).",
                ))
            }
        }
    }
}

/// Whether `presented` is one of `accepted`, comparing with every one.
fn any_equal(accepted: &[String], presented: &str) -> bool {
    accepted.iter().fold(false, |found, a| {
        found | constant_time_eq(a.as_bytes(), presented.as_bytes())
    })
}

/// Compares two secrets in a time that depends on neither their contents nor
/// their lengths: both are hashed (SHA-256, already a dependency for uploads),
/// then the digests are compared without stopping at the first difference.
/// A plain `==` returns at the first differing byte, which lets a client on
/// the network guess a key byte by byte from the answer times.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    let diff = a
        .iter()
        .zip(b.iter())
        // black_box keeps the compiler from turning the fold into an early exit.
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

fn missing() -> ApiError {
    ApiError::unauthorized(
        "Missing credentials: send an `x-api-key` header or `Authorization: Bearer <token>`.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn default_policy_accepts_any_nonempty_credential() {
        let p = AuthPolicy::AnyCredential;
        assert!(check(&p, &headers(&[("x-api-key", "k")])).is_ok());
        assert!(check(&p, &headers(&[("authorization", "Bearer t")])).is_ok());
        assert!(check(&p, &headers(&[("authorization", "bearer t")])).is_ok());
        assert!(check(&p, &headers(&[])).is_err());
        assert!(check(&p, &headers(&[("x-api-key", " ")])).is_err());
        assert!(check(&p, &headers(&[("authorization", "Basic abc")])).is_err());
        assert!(check(&p, &headers(&[("authorization", "Bearer ")])).is_err());
    }

    #[test]
    fn configured_policy_accepts_only_listed_credentials() {
        let p = AuthPolicy::Only {
            api_keys: vec!["good".into()],
            bearer_tokens: vec!["tok".into()],
        };
        assert!(check(&p, &headers(&[("x-api-key", "good")])).is_ok());
        assert!(check(&p, &headers(&[("authorization", "Bearer tok")])).is_ok());
        assert!(check(&p, &headers(&[("x-api-key", "bad")])).is_err());
        // A key is not accepted as a bearer token, nor the reverse.
        assert!(check(&p, &headers(&[("authorization", "Bearer good")])).is_err());
        assert!(check(&p, &headers(&[("x-api-key", "tok")])).is_err());
        let err = check(&p, &headers(&[])).err().map(|e| e.code);
        assert_eq!(err.as_deref(), Some("auth.invalid_key"));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret "));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(any_equal(&["a".into(), "b".into()], "b"));
        assert!(!any_equal(&["a".into(), "b".into()], "c"));
        assert!(!any_equal(&[], "c"));
    }

    #[test]
    fn disabled_policy_checks_nothing() {
        assert!(check(&AuthPolicy::Disabled, &headers(&[])).is_ok());
    }
}
