//! `(method, path)` → route, with 404 and 405 (+ `Allow`) in the envelope.

use http::Method;

use crate::error::ApiError;
use crate::UPLOAD_PATH;

/// The emulated routes (the admin API is routed in `admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /v2/files/-/uploads`.
    Upload,
    /// `GET /health`, `GET /health/`.
    Health,
    /// `GET|HEAD /__files/<file_uuid>/<name>` (the name still percent-encoded).
    File { file_uuid: String, name: String },
    /// `GET /openapi.json`.
    OpenApi,
}

pub(crate) fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let (route, allow) = if path == UPLOAD_PATH {
        (Route::Upload, "POST")
    } else if path == "/health" || path == "/health/" {
        (Route::Health, "GET, HEAD")
    } else if path == "/openapi.json" {
        (Route::OpenApi, "GET, HEAD")
    } else if let Some(rest) = path.strip_prefix("/__files/") {
        match rest.split_once('/') {
            Some((id, name)) if !id.is_empty() && !name.is_empty() && !name.contains('/') => (
                Route::File {
                    file_uuid: id.to_owned(),
                    name: name.to_owned(),
                },
                "GET, HEAD",
            ),
            _ => return Err(not_found(path)),
        }
    } else {
        return Err(not_found(path));
    };
    let allowed = match route {
        Route::Upload => method == Method::POST,
        Route::Health | Route::File { .. } | Route::OpenApi => {
            method == Method::GET || method == Method::HEAD
        }
    };
    if allowed {
        Ok(route)
    } else {
        Err(ApiError::method_not_allowed(allow))
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
        assert_eq!(route(&Method::GET, "/health/").unwrap(), Route::Health);
        assert_eq!(
            route(&Method::GET, "/nope").unwrap_err().status,
            http::StatusCode::NOT_FOUND
        );
        assert_eq!(
            route(&Method::HEAD, "/__files/abc/a%20b.txt").unwrap(),
            Route::File {
                file_uuid: "abc".into(),
                name: "a%20b.txt".into()
            }
        );
        assert!(route(&Method::GET, "/__files/abc/x/y").is_err());
    }
}
