//! `(method, path)` → route, with 404 and 405 (+ `Allow`) in the envelope.

use http::Method;

use crate::error::ApiError;
use crate::UPLOAD_PATH;

/// The emulated routes (the admin API is routed in `admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /v2/files/-/uploads`.
    Upload,
    /// Everything else: read-only routes answered after request-phase rules.
    ReadOnly(ReadOnly),
}

/// The read-only routes (`GET`/`HEAD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadOnly {
    /// `GET /health`, `GET /health/`.
    Health,
    /// `GET|HEAD /__files/<file_uuid>/<name>` (the name still percent-encoded).
    File { file_uuid: String, name: String },
    /// `GET /openapi.json`.
    OpenApi,
}

pub(crate) fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    if path == UPLOAD_PATH {
        return if method == Method::POST {
            Ok(Route::Upload)
        } else {
            Err(ApiError::method_not_allowed("POST"))
        };
    }
    let route = if path == "/health" || path == "/health/" {
        ReadOnly::Health
    } else if path == "/openapi.json" {
        ReadOnly::OpenApi
    } else if let Some(rest) = path.strip_prefix("/__files/") {
        match rest.split_once('/') {
            Some((id, name)) if !id.is_empty() && !name.is_empty() && !name.contains('/') => {
                ReadOnly::File {
                    file_uuid: id.to_owned(),
                    name: name.to_owned(),
                }
            }
            _ => return Err(not_found(path)),
        }
    } else {
        return Err(not_found(path));
    };
    if method == Method::GET || method == Method::HEAD {
        Ok(Route::ReadOnly(route))
    } else {
        Err(ApiError::method_not_allowed("GET, HEAD"))
    }
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!(
        "No route for {path:?}: this emulator serves POST {UPLOAD_PATH}, GET /health, GET /__files/<file_uuid>/<name>, GET /openapi.json and /__admin."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_method_checks() {
        assert_eq!(route(&Method::POST, UPLOAD_PATH).unwrap(), Route::Upload);
        let err = route(&Method::GET, UPLOAD_PATH).unwrap_err();
        assert_eq!(err.status, http::StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(err.header("allow").unwrap(), "POST");
        assert_eq!(
            route(&Method::GET, "/health/").unwrap(),
            Route::ReadOnly(ReadOnly::Health)
        );
        assert_eq!(
            route(&Method::GET, "/nope").unwrap_err().status,
            http::StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::HEAD, "/__files/abc/a%20b.txt").unwrap(),
            Route::ReadOnly(ReadOnly::File {
                file_uuid: "abc".into(),
                name: "a%20b.txt".into()
            })
        );
        assert!(route(&Method::GET, "/__files/abc/x/y").is_err());
    }
}
