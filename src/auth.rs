//! Credential checking for the emulated API (`x-api-key` or `Authorization: Bearer`).

use http::HeaderMap;

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
            let accepted = presented.iter().any(|c| match c {
                Credential::ApiKey(k) => api_keys.iter().any(|a| a == k),
                Credential::Bearer(t) => bearer_tokens.iter().any(|b| b == t),
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
    fn disabled_policy_checks_nothing() {
        assert!(check(&AuthPolicy::Disabled, &headers(&[])).is_ok());
    }
}
