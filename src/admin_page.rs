//! The live page at `/__admin/`: the journal as it happens, each request's
//! detail (headers, upload, rule, near misses), the rules with their
//! counters, and reset. Plain HTML, CSS and JavaScript compiled into the
//! binary (`include_str!`): no CDN, no build step, works offline.
//!
//! The files hold no data: the page reads the admin API (`/__admin/requests?after=SEQ`,
//! `/__admin/rules`, …) from the browser, sending the `--admin-token` it asks
//! for, so it is served to anyone the admin API's same-origin check lets in.

use http::{HeaderValue, Response, StatusCode};

use crate::http_util::{full, ResponseBody};

const INDEX_HTML: &str = include_str!("admin_page/index.html");
const APP_JS: &str = include_str!("admin_page/app.js");
const STYLE_CSS: &str = include_str!("admin_page/style.css");

/// Only this page's own files, no inline script, no framing by other pages.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PageFile {
    /// `/__admin/` (also `/__admin`, `/__admin/index.html`).
    Index,
    /// `/__admin/app.js`.
    AppJs,
    /// `/__admin/style.css`.
    StyleCss,
}

/// The answer for one of the page's files.
pub(crate) fn serve(file: PageFile) -> Response<ResponseBody> {
    let (content_type, body) = match file {
        PageFile::Index => ("text/html; charset=utf-8", INDEX_HTML),
        PageFile::AppJs => ("text/javascript; charset=utf-8", APP_JS),
        PageFile::StyleCss => ("text/css; charset=utf-8", STYLE_CSS),
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_files_are_served_with_their_types_and_fetch_nothing_from_elsewhere() {
        for (file, content_type) in [
            (PageFile::Index, "text/html; charset=utf-8"),
            (PageFile::AppJs, "text/javascript; charset=utf-8"),
            (PageFile::StyleCss, "text/css; charset=utf-8"),
        ] {
            let r = serve(file);
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()[http::header::CONTENT_TYPE], content_type);
        }
        // Nothing is fetched from elsewhere: the page works offline.
        for text in [INDEX_HTML, APP_JS, STYLE_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }
}
