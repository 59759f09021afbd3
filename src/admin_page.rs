//! The live page at `/__admin/`: the journal as it happens, each request's
//! detail (headers, upload, rule, near misses), the rules with their
//! counters, and reset. Plain HTML, CSS and JavaScript compiled into the
//! binary (`include_str!`): no CDN, no build step, works offline.
//!
//! The files hold no data: the page reads the admin API (`/__admin/requests?after=SEQ`,
//! `/__admin/rules`, …) from the browser, sending the `--admin-token` it asks
//! for, so it is served to anyone the admin API's same-origin check lets in.

use http::{HeaderValue, Method, Response, StatusCode};

use crate::http_util::{full, ResponseBody};

const INDEX_HTML: &str = include_str!("admin_page/index.html");
const APP_JS: &str = include_str!("admin_page/app.js");
const STYLE_CSS: &str = include_str!("admin_page/style.css");

/// Only this page's own files, no inline script, no framing by other pages.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page's file for `GET`/`HEAD` of `path`, or `None` for any other admin route.
pub(crate) fn serve(method: &Method, path: &str) -> Option<Response<ResponseBody>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let (content_type, body) = match path {
        "/__admin" | "/__admin/" | "/__admin/index.html" => {
            ("text/html; charset=utf-8", INDEX_HTML)
        }
        "/__admin/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/__admin/style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        _ => return None,
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    headers.insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        http::header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_served_and_nothing_else() {
        for path in ["/__admin/", "/__admin/app.js", "/__admin/style.css"] {
            let r = serve(&Method::GET, path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!(r.status(), StatusCode::OK);
        }
        assert!(serve(&Method::POST, "/__admin/").is_none());
        assert!(serve(&Method::GET, "/__admin/requests").is_none());
        assert!(serve(&Method::GET, "/__admin/rules").is_none());
        // Nothing is fetched from elsewhere: the page works offline.
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }
}
