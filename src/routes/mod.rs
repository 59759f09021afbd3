//! The route table: every endpoint the emulator serves, admin included, as
//! one [`Route`] variant with its typed path parameters. From the variant
//! come what a request to it needs (credentials, fault rules, `Prefer`), and
//! from the table the 404s and the 405s with their `Allow`. Handlers live in
//! one module per resource, named for what they serve.
//!
//! Adding a route is one variant (in [`Route`] or [`AdminRoute`], with a
//! line in [`Resource::route`]) and one handler; a client route also gets a
//! number and a request in the CORS walk (`cors_walk.rs`, which fails until
//! it has them). Pages on allowed origins (`--cors-origin`) may call every
//! client route, and their preflights are [`Route::Preflight`].

pub(crate) mod admin;
pub(crate) mod answer;
pub(crate) mod apply;
#[cfg(test)]
mod cors_walk;
pub(crate) mod downloads;
pub(crate) mod files_api;
pub(crate) mod health;
pub(crate) mod openapi;
pub(crate) mod preflight;
pub(crate) mod put;
pub(crate) mod remote_fetch;
pub(crate) mod store;
pub(crate) mod upload;

use http::Method;

use crate::admin_page::PageFile;
use crate::error::{ApiError, DOCUMENTED_ERROR_STATUSES};
use crate::rules::model::RouteName;
use crate::UPLOAD_PATH;

/// One endpoint, with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `POST /v2/files/-/uploads`.
    Upload,
    /// `GET /health`, `GET /health/`.
    Health,
    /// `GET /openapi.json`.
    OpenApi,
    /// `GET|HEAD /__files/{file_uuid}/{name}` (the name still percent-encoded).
    Download {
        file_uuid: String,
        name: String,
        head: bool,
    },
    /// `POST /v2/files`: presigned upload URLs for new files.
    CreateFiles,
    /// `GET /v2/files`.
    ListFiles,
    /// `GET /v2/files/{file_uuid}`.
    GetFile { file_uuid: String },
    /// `GET /v2/files/{file_uuid}/status`.
    FileStatus { file_uuid: String },
    /// `GET /v2/files/{file_uuid}/frames`.
    FileFrames { file_uuid: String },
    /// `DELETE /v2/files/{file_uuid}`.
    DeleteFile { file_uuid: String },
    /// `PUT /__uploads/{file_uuid}/{name}?X-Amz-…`: a presigned upload URL
    /// (the name still percent-encoded).
    Put { file_uuid: String, name: String },
    /// `GET|HEAD /__frames/{file_uuid}/{n}.png`: a frame of a processed video.
    Frame {
        file_uuid: String,
        frame: String,
        head: bool,
    },
    /// `OPTIONS` with `Origin` and `Access-Control-Request-Method` on a
    /// client route: a browser's CORS preflight, answered from `--cors-origin`
    /// and the resource's `methods`; `presigned`: a presigned upload URL
    /// (answered as S3 answers). Never on the admin API.
    Preflight {
        methods: Vec<Method>,
        presigned: bool,
    },
    /// Under `/__admin`.
    Admin(AdminRoute),
}

/// The admin API's endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminRoute {
    /// `GET /__admin/rules`.
    ListRules,
    /// `POST /__admin/rules`.
    AddRules,
    /// `DELETE /__admin/rules`.
    ClearRules,
    /// `DELETE /__admin/rules/{id}` (the id percent-decoded).
    DeleteRule { id: String },
    /// `GET /__admin/requests`.
    ListRequests,
    /// `DELETE /__admin/requests`.
    ClearRequests,
    /// `GET /__admin/uploads`.
    ListUploads,
    /// `DELETE /__admin/uploads`.
    ClearUploads,
    /// `POST /__admin/reset`.
    Reset,
    /// `GET /metrics`: the server's metrics for Prometheus (served as the
    /// admin API is: the admin token, no rules, not journaled).
    Metrics,
    /// `GET /__admin/scenarios`: the shipped scenarios.
    ListScenarios,
    /// `POST /__admin/scenarios/{name}`: a shipped scenario's rules added
    /// as run-time rules.
    AddScenario { name: String },
    /// `GET|HEAD /__admin/`, `/__admin/app.js`, `/__admin/style.css`: the
    /// live page, served before the token check (it holds no data and asks
    /// for the token itself).
    Page(crate::admin_page::PageFile),
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone.
    Open,
    /// An API key, as `--auth` says (checked after request-phase rules).
    ApiKey,
    /// The admin API's checks: same origin, then `--admin-token`.
    Admin,
}

impl Route {
    /// The route a request is for, or the 404 / 405 (with `Allow`) it gets.
    pub(crate) fn resolve(method: &Method, path: &str) -> Result<Route, ApiError> {
        let resource = Resource::of(path)?;
        resource.route(method).ok_or_else(|| {
            let methods = resource.methods();
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            ApiError::method_not_allowed(&allow.join(", "))
        })
    }

    /// The preflight a browser sends before calling `path` from a page on
    /// another origin (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or the 404 of an unknown path. The
    /// admin API has none: its paths resolve as [`Route::resolve`] does.
    pub(crate) fn preflight(path: &str) -> Result<Route, ApiError> {
        let resource = Resource::of(path)?;
        if resource.is_admin() {
            return Route::resolve(&Method::OPTIONS, path);
        }
        Ok(Route::Preflight {
            methods: resource.methods(),
            presigned: matches!(resource, Resource::PutUrl { .. }),
        })
    }

    /// Its name for a rule's `match.route`; `None`: fault rules do not
    /// apply (the admin API).
    pub(crate) fn rule_name(&self) -> Option<RouteName> {
        match self {
            Route::Upload => Some(RouteName::Upload),
            Route::Health => Some(RouteName::Health),
            Route::OpenApi => Some(RouteName::Openapi),
            Route::Download { .. } => Some(RouteName::Download),
            Route::CreateFiles => Some(RouteName::Create),
            Route::ListFiles => Some(RouteName::List),
            Route::GetFile { .. } => Some(RouteName::Get),
            Route::FileStatus { .. } => Some(RouteName::Status),
            Route::FileFrames { .. } => Some(RouteName::Frames),
            Route::DeleteFile { .. } => Some(RouteName::Delete),
            Route::Put { .. } => Some(RouteName::Put),
            Route::Frame { .. } => Some(RouteName::Frame),
            // A preflight is the browser's, not the client's: a rule that
            // failed it would hide the answer the rule meant to give.
            Route::Preflight { .. } | Route::Admin(_) => None,
        }
    }

    /// Whether a page on an origin `--cors-origin` allows may call it (its
    /// answers carry the CORS headers). Every route but the admin API's.
    pub(crate) fn cross_origin(&self) -> bool {
        match self {
            Route::Upload
            | Route::Health
            | Route::OpenApi
            | Route::Download { .. }
            | Route::CreateFiles
            | Route::ListFiles
            | Route::GetFile { .. }
            | Route::FileStatus { .. }
            | Route::FileFrames { .. }
            | Route::DeleteFile { .. }
            | Route::Put { .. }
            | Route::Frame { .. }
            | Route::Preflight { .. } => true,
            Route::Admin(_) => false,
        }
    }

    pub(crate) fn access(&self) -> Access {
        match self {
            Route::Upload
            | Route::CreateFiles
            | Route::ListFiles
            | Route::GetFile { .. }
            | Route::FileStatus { .. }
            | Route::FileFrames { .. }
            | Route::DeleteFile { .. } => Access::ApiKey,
            // A presigned URL carries its own authorization, as S3's do; a
            // frame URL is fetched as a bucket URL would be.
            Route::Health
            | Route::OpenApi
            | Route::Download { .. }
            | Route::Put { .. }
            | Route::Frame { .. }
            | Route::Preflight { .. } => Access::Open,
            Route::Admin(_) => Access::Admin,
        }
    }

    /// Whether it serves stored files or what is known of them (their
    /// bytes, frames, details, the list): such a route answers only a `Host`
    /// this server is known by, unless `--admin-token` is set (see
    /// `crate::same_origin`). The routes that write (upload, create, PUT,
    /// delete) hand nothing stored back to a page that rebinds a name.
    pub(crate) fn serves_stored(&self) -> bool {
        matches!(
            self,
            Route::Download { .. }
                | Route::Frame { .. }
                | Route::ListFiles
                | Route::GetFile { .. }
                | Route::FileStatus { .. }
                | Route::FileFrames { .. }
        )
    }

    /// Whether it reads the files (the catalog or the index): with a shared
    /// state store, the other replicas' changes are read first.
    pub(crate) fn reads_files(&self) -> bool {
        self.serves_stored()
            || matches!(
                self,
                Route::CreateFiles | Route::DeleteFile { .. } | Route::Put { .. }
            )
    }

    /// The error statuses a `Prefer: code=` may ask for; `None`: the route
    /// ignores `Prefer`.
    pub(crate) fn documented_statuses(&self) -> Option<&'static [u16]> {
        match self {
            Route::Upload
            | Route::Health
            | Route::CreateFiles
            | Route::ListFiles
            | Route::GetFile { .. }
            | Route::FileStatus { .. }
            | Route::FileFrames { .. }
            | Route::DeleteFile { .. } => Some(&DOCUMENTED_ERROR_STATUSES),
            Route::OpenApi
            | Route::Download { .. }
            | Route::Put { .. }
            | Route::Frame { .. }
            | Route::Preflight { .. }
            | Route::Admin(_) => None,
        }
    }
}

/// The methods tried when building `Allow`.
const CANDIDATE_METHODS: [Method; 5] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
];

/// A path the emulator serves, before its method is known.
#[derive(Debug, Clone)]
enum Resource {
    Uploads,
    Health,
    OpenApi,
    File { file_uuid: String, name: String },
    Files,
    FileItem { file_uuid: String },
    FileStatus { file_uuid: String },
    FileFrames { file_uuid: String },
    PutUrl { file_uuid: String, name: String },
    Frame { file_uuid: String, frame: String },
    AdminRules,
    AdminRule { id: String },
    AdminRequests,
    AdminUploads,
    AdminReset,
    AdminScenarios,
    Metrics,
    AdminScenario { name: String },
    AdminPage(crate::admin_page::PageFile),
}

impl Resource {
    /// The methods the table serves on this resource, in `Allow`'s order.
    fn methods(&self) -> Vec<Method> {
        CANDIDATE_METHODS
            .iter()
            .filter(|m| self.route(m).is_some())
            .cloned()
            .collect()
    }

    /// Whether the table serves it as the admin API (read from the table,
    /// so that a new admin resource cannot be left out).
    fn is_admin(&self) -> bool {
        CANDIDATE_METHODS
            .iter()
            .any(|m| matches!(self.route(m), Some(Route::Admin(_))))
    }

    fn of(path: &str) -> Result<Resource, ApiError> {
        if is_admin_path(path) {
            return Self::admin(path);
        }
        Ok(match path {
            UPLOAD_PATH => Resource::Uploads,
            "/health" | "/health/" => Resource::Health,
            "/openapi.json" => Resource::OpenApi,
            "/metrics" => Resource::Metrics,
            "/v2/files" => Resource::Files,
            _ => {
                if let Some(resource) = Self::files_api(path) {
                    return Ok(resource);
                }
                let file = path.strip_prefix("/__files/").and_then(|rest| {
                    let (id, name) = rest.split_once('/')?;
                    (!id.is_empty() && !name.is_empty() && !name.contains('/')).then(|| {
                        Resource::File {
                            file_uuid: id.to_owned(),
                            name: name.to_owned(),
                        }
                    })
                });
                file.ok_or_else(|| ApiError::not_found(format!(
                    "No route for {path:?}: this emulator serves POST {UPLOAD_PATH}, /v2/files (POST, GET), /v2/files/<file_uuid> (GET, DELETE) with /status and /frames, GET /health, GET /__files/<file_uuid>/<name>, GET /openapi.json, GET /metrics and /__admin."
                )))?
            }
        })
    }

    /// `/v2/files/{file_uuid}[/status|/frames]`, `/__uploads/{file_uuid}/{name}`
    /// and `/__frames/{file_uuid}/{frame}`: each segment non-empty.
    fn files_api(path: &str) -> Option<Resource> {
        let segments = |prefix: &str| -> Option<Vec<String>> {
            let rest = path.strip_prefix(prefix)?;
            let parts: Vec<String> = rest.split('/').map(str::to_owned).collect();
            parts.iter().all(|p| !p.is_empty()).then_some(parts)
        };
        if let Some(parts) = segments("/v2/files/") {
            let mut parts = parts.into_iter();
            let file_uuid = parts.next()?;
            return match (parts.next().as_deref(), parts.next()) {
                (None, _) => Some(Resource::FileItem { file_uuid }),
                (Some("status"), None) => Some(Resource::FileStatus { file_uuid }),
                (Some("frames"), None) => Some(Resource::FileFrames { file_uuid }),
                _ => None,
            };
        }
        let pair = |prefix| match segments(prefix)?.as_slice() {
            [a, b] => Some((a.clone(), b.clone())),
            _ => None,
        };
        if let Some((file_uuid, name)) = pair("/__uploads/") {
            return Some(Resource::PutUrl { file_uuid, name });
        }
        let (file_uuid, frame) = pair("/__frames/")?;
        Some(Resource::Frame { file_uuid, frame })
    }

    fn admin(path: &str) -> Result<Resource, ApiError> {
        let tail = path.trim_end_matches('/').strip_prefix("/__admin");
        Ok(match tail.unwrap_or_default() {
            "/rules" => Resource::AdminRules,
            "/requests" => Resource::AdminRequests,
            "/uploads" => Resource::AdminUploads,
            "/reset" => Resource::AdminReset,
            "/scenarios" => Resource::AdminScenarios,
            "" | "/index.html" => Resource::AdminPage(PageFile::Index),
            "/app.js" => Resource::AdminPage(PageFile::AppJs),
            "/style.css" => Resource::AdminPage(PageFile::StyleCss),
            t if t.starts_with("/rules/") => Resource::AdminRule {
                id: percent_encoding::percent_decode_str(&t["/rules/".len()..])
                    .decode_utf8_lossy()
                    .into_owned(),
            },
            t if t.starts_with("/scenarios/") => Resource::AdminScenario {
                name: percent_encoding::percent_decode_str(&t["/scenarios/".len()..])
                    .decode_utf8_lossy()
                    .into_owned(),
            },
            _ => return Err(ApiError::not_found(format!(
                "No admin route {:?}: see /__admin/ (the live page), /__admin/rules, /__admin/requests, /__admin/uploads, /__admin/reset, /__admin/scenarios.",
                path.trim_end_matches('/')
            ))),
        })
    }

    /// The route for `method` on this resource: the route table.
    fn route(&self, method: &Method) -> Option<Route> {
        use AdminRoute as A;
        let m = method.clone();
        let admin = |r| Some(Route::Admin(r));
        match (self, m) {
            (Resource::Uploads, Method::POST) => Some(Route::Upload),
            (Resource::Health, Method::GET | Method::HEAD) => Some(Route::Health),
            (Resource::OpenApi, Method::GET | Method::HEAD) => Some(Route::OpenApi),
            (Resource::File { file_uuid, name }, m @ (Method::GET | Method::HEAD)) => {
                Some(Route::Download {
                    file_uuid: file_uuid.clone(),
                    name: name.clone(),
                    head: m == Method::HEAD,
                })
            }
            (Resource::Files, Method::POST) => Some(Route::CreateFiles),
            (Resource::Files, Method::GET) => Some(Route::ListFiles),
            (Resource::FileItem { file_uuid }, Method::GET) => Some(Route::GetFile {
                file_uuid: file_uuid.clone(),
            }),
            (Resource::FileItem { file_uuid }, Method::DELETE) => Some(Route::DeleteFile {
                file_uuid: file_uuid.clone(),
            }),
            (Resource::FileStatus { file_uuid }, Method::GET) => Some(Route::FileStatus {
                file_uuid: file_uuid.clone(),
            }),
            (Resource::FileFrames { file_uuid }, Method::GET) => Some(Route::FileFrames {
                file_uuid: file_uuid.clone(),
            }),
            (Resource::PutUrl { file_uuid, name }, Method::PUT) => Some(Route::Put {
                file_uuid: file_uuid.clone(),
                name: name.clone(),
            }),
            (Resource::Frame { file_uuid, frame }, m @ (Method::GET | Method::HEAD)) => {
                Some(Route::Frame {
                    file_uuid: file_uuid.clone(),
                    frame: frame.clone(),
                    head: m == Method::HEAD,
                })
            }
            (Resource::AdminRules, Method::GET) => admin(A::ListRules),
            (Resource::AdminRules, Method::POST) => admin(A::AddRules),
            (Resource::AdminRules, Method::DELETE) => admin(A::ClearRules),
            (Resource::AdminRule { id }, Method::DELETE) => admin(A::DeleteRule { id: id.clone() }),
            (Resource::AdminRequests, Method::GET) => admin(A::ListRequests),
            (Resource::AdminRequests, Method::DELETE) => admin(A::ClearRequests),
            (Resource::AdminUploads, Method::GET) => admin(A::ListUploads),
            (Resource::AdminUploads, Method::DELETE) => admin(A::ClearUploads),
            (Resource::AdminReset, Method::POST) => admin(A::Reset),
            (Resource::AdminScenarios, Method::GET) => admin(A::ListScenarios),
            (Resource::Metrics, Method::GET) => admin(A::Metrics),
            (Resource::AdminScenario { name }, Method::POST) => {
                admin(A::AddScenario { name: name.clone() })
            }
            (Resource::AdminPage(file), Method::GET | Method::HEAD) => admin(A::Page(*file)),
            _ => None,
        }
    }
}

/// Whether a path is the admin API's (its checks come before its 404s and 405s).
pub(crate) fn is_admin_path(path: &str) -> bool {
    path == "/__admin" || path.starts_with("/__admin/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn allow(method: Method, path: &str) -> String {
        let err = Route::resolve(&method, path).unwrap_err();
        assert_eq!(
            err.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        err.header("allow").unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn every_endpoint_resolves_with_its_parameters() {
        assert_eq!(
            Route::resolve(&Method::POST, UPLOAD_PATH).unwrap(),
            Route::Upload
        );
        assert_eq!(
            Route::resolve(&Method::GET, "/health/").unwrap(),
            Route::Health
        );
        assert_eq!(
            Route::resolve(&Method::HEAD, "/__files/abc/a%20b.txt").unwrap(),
            Route::Download {
                file_uuid: "abc".into(),
                name: "a%20b.txt".into(),
                head: true,
            }
        );
        assert_eq!(
            Route::resolve(&Method::DELETE, "/__admin/rules/a%2Fb").unwrap(),
            Route::Admin(AdminRoute::DeleteRule { id: "a/b".into() })
        );
        assert_eq!(
            Route::resolve(&Method::GET, "/__admin/uploads/").unwrap(),
            Route::Admin(AdminRoute::ListUploads)
        );
        for (path, file) in [
            ("/__admin", PageFile::Index),
            ("/__admin/", PageFile::Index),
            ("/__admin/app.js", PageFile::AppJs),
            ("/__admin/style.css", PageFile::StyleCss),
        ] {
            assert_eq!(
                Route::resolve(&Method::GET, path).unwrap(),
                Route::Admin(AdminRoute::Page(file)),
                "{path}"
            );
        }
    }

    #[test]
    fn the_files_api_routes_resolve_with_their_uuids() {
        let id = || "f-1".to_owned();
        let get = |path| Route::resolve(&Method::GET, path).unwrap();
        assert_eq!(get("/v2/files"), Route::ListFiles);
        assert_eq!(
            Route::resolve(&Method::POST, "/v2/files").unwrap(),
            Route::CreateFiles
        );
        assert_eq!(get("/v2/files/f-1"), Route::GetFile { file_uuid: id() });
        assert_eq!(
            get("/v2/files/f-1/status"),
            Route::FileStatus { file_uuid: id() }
        );
        assert_eq!(
            get("/v2/files/f-1/frames"),
            Route::FileFrames { file_uuid: id() }
        );
        assert_eq!(
            Route::resolve(&Method::DELETE, "/v2/files/f-1").unwrap(),
            Route::DeleteFile { file_uuid: id() }
        );
        assert_eq!(
            Route::resolve(&Method::PUT, "/__uploads/f-1/a%20b.mp4").unwrap(),
            Route::Put {
                file_uuid: id(),
                name: "a%20b.mp4".into()
            }
        );
        assert_eq!(
            get("/__frames/f-1/0.png"),
            Route::Frame {
                file_uuid: id(),
                frame: "0.png".into(),
                head: false
            }
        );
        // The upload endpoint keeps its own route.
        assert_eq!(
            Route::resolve(&Method::POST, UPLOAD_PATH).unwrap(),
            Route::Upload
        );
        for path in [
            "/v2/files/",
            "/v2/files/a/b",
            "/v2/files/a/status/x",
            "/__uploads/a",
            "/__frames/a/b/c",
        ] {
            let err = Route::resolve(&Method::GET, path).unwrap_err();
            assert_eq!(err.status, StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(allow(Method::PUT, "/v2/files"), "GET, POST");
        assert_eq!(allow(Method::POST, "/v2/files/x"), "GET, DELETE");
        assert_eq!(allow(Method::GET, "/__uploads/x/y"), "PUT");
        assert_eq!(get("/v2/files/x/status").access(), Access::ApiKey);
        assert_eq!(
            Route::resolve(&Method::PUT, "/__uploads/x/y")
                .unwrap()
                .access(),
            Access::Open
        );
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
        for path in ["/nope", "/__files/abc/x/y", "/__files/abc", "/__admin/nope"] {
            let err = Route::resolve(&Method::GET, path).unwrap_err();
            assert_eq!(err.status, StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(allow(Method::GET, UPLOAD_PATH), "POST");
        assert_eq!(allow(Method::POST, "/health"), "GET, HEAD");
        assert_eq!(allow(Method::PUT, "/__files/a/b.txt"), "GET, HEAD");
        assert_eq!(allow(Method::PUT, "/__admin/rules"), "GET, POST, DELETE");
        assert_eq!(allow(Method::POST, "/__admin/requests"), "GET, DELETE");
        assert_eq!(allow(Method::GET, "/__admin/reset"), "POST");
        assert_eq!(allow(Method::GET, "/__admin/rules/x"), "DELETE");
        assert_eq!(allow(Method::POST, "/__admin/"), "GET, HEAD");
    }

    #[test]
    fn only_the_emulated_routes_take_rules_and_only_uploads_need_a_key() {
        let upload = Route::Upload;
        assert_eq!(upload.access(), Access::ApiKey);
        assert!(upload.rule_name().is_some());
        let admin = Route::Admin(AdminRoute::Reset);
        assert_eq!(admin.access(), Access::Admin);
        assert!(admin.rule_name().is_none());
        assert_eq!(Route::Health.access(), Access::Open);
        let download = Route::resolve(&Method::GET, "/__files/a/b").unwrap();
        assert_eq!(download.rule_name(), Some(RouteName::Download));
        assert_eq!(Route::OpenApi.rule_name(), Some(RouteName::Openapi));
    }

    /// One sample path per resource, and the path template the OpenAPI
    /// document names it by (`None`: not in the document, the live page's
    /// files). The match has no wildcard: a new resource fails to compile
    /// here until it has both.
    fn sample_and_template(resource: &Resource) -> (String, Option<&'static str>) {
        let (sample, template) = match resource {
            Resource::Uploads => (UPLOAD_PATH.to_owned(), Some(UPLOAD_PATH)),
            Resource::Health => ("/health".into(), Some("/health")),
            Resource::OpenApi => ("/openapi.json".into(), Some("/openapi.json")),
            Resource::File { .. } => ("/__files/u/n".into(), Some("/__files/{file_uuid}/{name}")),
            Resource::Files => ("/v2/files".into(), Some("/v2/files")),
            Resource::FileItem { .. } => ("/v2/files/u".into(), Some("/v2/files/{file_uuid}")),
            Resource::FileStatus { .. } => (
                "/v2/files/u/status".into(),
                Some("/v2/files/{file_uuid}/status"),
            ),
            Resource::FileFrames { .. } => (
                "/v2/files/u/frames".into(),
                Some("/v2/files/{file_uuid}/frames"),
            ),
            Resource::PutUrl { .. } => (
                "/__uploads/u/n".into(),
                Some("/__uploads/{file_uuid}/{name}"),
            ),
            Resource::Frame { .. } => (
                "/__frames/u/1.png".into(),
                Some("/__frames/{file_uuid}/{frame}"),
            ),
            Resource::AdminRules => ("/__admin/rules".into(), Some("/__admin/rules")),
            Resource::AdminRule { .. } => ("/__admin/rules/r".into(), Some("/__admin/rules/{id}")),
            Resource::AdminRequests => ("/__admin/requests".into(), Some("/__admin/requests")),
            Resource::AdminUploads => ("/__admin/uploads".into(), Some("/__admin/uploads")),
            Resource::AdminReset => ("/__admin/reset".into(), Some("/__admin/reset")),
            Resource::AdminScenarios => ("/__admin/scenarios".into(), Some("/__admin/scenarios")),
            Resource::Metrics => ("/metrics".into(), Some("/metrics")),
            Resource::AdminScenario { .. } => (
                "/__admin/scenarios/s".into(),
                Some("/__admin/scenarios/{name}"),
            ),
            Resource::AdminPage(file) => {
                let path = match file {
                    PageFile::Index => "/__admin/",
                    PageFile::AppJs => "/__admin/app.js",
                    PageFile::StyleCss => "/__admin/style.css",
                };
                (path.to_owned(), None)
            }
        };
        (sample, template)
    }

    /// Every resource, through a path of each variant of `Resource` (a new
    /// variant needs one here too).
    fn every_resource() -> Vec<Resource> {
        let samples = [
            UPLOAD_PATH,
            "/health",
            "/openapi.json",
            "/__files/u/n",
            "/v2/files",
            "/v2/files/u",
            "/v2/files/u/status",
            "/v2/files/u/frames",
            "/__uploads/u/n",
            "/__frames/u/1.png",
            "/__admin/rules",
            "/__admin/rules/r",
            "/__admin/requests",
            "/__admin/uploads",
            "/__admin/reset",
            "/__admin/scenarios",
            "/metrics",
            "/__admin/scenarios/s",
            "/__admin/",
            "/__admin/app.js",
            "/__admin/style.css",
        ];
        samples.iter().map(|p| Resource::of(p).unwrap()).collect()
    }

    #[test]
    fn the_openapi_document_has_every_route_of_the_table_and_no_other() {
        let doc = crate::openapi_document().unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut served = std::collections::BTreeSet::new();
        for resource in every_resource() {
            let (sample, template) = sample_and_template(&resource);
            let resolved = Resource::of(&sample).unwrap();
            assert_eq!(
                std::mem::discriminant(&resolved),
                std::mem::discriminant(&resource),
                "{sample} is not {resource:?}'s path"
            );
            let Some(template) = template else { continue };
            for method in resource.methods() {
                // HEAD is GET without the body: documented where it differs (files, frames).
                let documented = paths
                    .get(template)
                    .and_then(|item| item.get(method.as_str().to_lowercase()))
                    .is_some();
                if method == Method::HEAD && !documented {
                    assert!(resource.route(&Method::GET).is_some(), "{template}");
                    continue;
                }
                assert!(
                    documented,
                    "{method} {template} is served but not in openapi.json"
                );
                served.insert((template.to_owned(), method.as_str().to_lowercase()));
            }
        }
        for (template, item) in paths {
            for method in item
                .as_object()
                .unwrap()
                .keys()
                .filter(|m| *m != "parameters")
            {
                assert!(
                    served.contains(&(template.clone(), method.clone())),
                    "openapi.json documents {method} {template}, which the table does not serve"
                );
            }
        }
    }

    #[test]
    fn every_rule_route_name_has_a_route_and_the_admin_api_has_none() {
        let schema: serde_json::Value = serde_json::from_str(crate::rules::schema::SCHEMA).unwrap();
        let names: std::collections::BTreeSet<String> = schema
            .pointer("/$defs/match/properties/route/enum")
            .and_then(|v| v.as_array())
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let mut named = std::collections::BTreeSet::new();
        for resource in every_resource() {
            for method in resource.methods() {
                let route = resource.route(&method).unwrap();
                assert_eq!(
                    resource.is_admin(),
                    route.rule_name().is_none(),
                    "{route:?}: the admin API, and only it, takes no rules"
                );
                if let Some(name) = route.rule_name() {
                    named.insert(name.as_str().to_owned());
                }
            }
        }
        assert_eq!(
            named, names,
            "the schema's route names and the table's differ"
        );
    }
}
