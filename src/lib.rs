//! # aymara-mock
//!
//! A fast, faithful local emulator of the Aymara AI file-upload API
//! (`POST /v2/files/-/uploads`), with fault injection.
//!
//! Uploads are streamed to a directory (a fresh temp dir by default), answered
//! exactly like the real API, and any documented error or network fault can be
//! injected through fault rules — from fixture files, the admin API
//! (`/__admin`), a `Prefer: code=NNN` header, or from Rust.
//!
//! ## Getting started
//!
//! ```
//! use aymara_mock::{MockServer, Rule};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Arrange: a server on a free port that accepts one key, and fails the
//! // first upload with 503.
//! let server = MockServer::builder().api_key("test-key").start().await?;
//! server.add_rule(Rule::respond(503).times(1)).await?;
//!
//! // Act: point the client under test at `server.url()`…
//! let upload_url = server.upload_url();
//! assert!(upload_url.ends_with("/v2/files/-/uploads"));
//!
//! // Assert: on what the server received.
//! assert!(server.requests().await.is_empty());
//! # Ok(())
//! # }
//! // Dropping the server stops it and removes its temp dir.
//! ```
//!
//! ## Test isolation
//!
//! Each `MockServer` listens on its own port with its own storage directory,
//! rules, counters and journal, so tests can run in parallel.

//!
//! ## Features
//!
//! - `cli` (default): the `aymara-mock` binary, its command line (clap),
//!   log output and allocator (mimalloc), all in the binary's own source
//!   (`src/bin/aymara-mock/`) over this crate's public API, such as
//!   [`MockServerBuilder`], [`defaults`] and [`check_fixtures`]. A library
//!   user does not need it.
//! - `s3` (default): storage in an S3-compatible bucket
//!   (`MockServerBuilder::s3`, `S3Config`), with object_store's AWS
//!   client and its HTTP and TLS stack. Without it, any
//!   [`object_store::ObjectStore`] can still be given to
//!   [`MockServerBuilder::object_store`].
//!
//! For tests, `default-features = false` compiles only the library:
//!
//! ```toml
//! [dev-dependencies]
//! aymara-mock = { version = "0.1", default-features = false }
//! ```

#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub(crate) mod admin_page;
pub(crate) mod auth;
#[cfg(feature = "redis")]
pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod cors;
pub(crate) mod error;
pub(crate) mod files;
// Not an API: the fuzz targets' and tests/differential's way in.
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod http_util;
pub(crate) mod journal;
pub(crate) mod metrics;
pub(crate) mod redact;
pub(crate) mod regular_file;
pub(crate) mod request;
pub(crate) mod routes;
pub(crate) mod rules;
pub(crate) mod same_origin;
pub(crate) mod scenarios;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod storage;
pub(crate) mod sync;

pub use config::{defaults, ByteSize, ByteSizeError, MAX_DURATION};
pub use cors::{check_cors_origin, CorsRecord};
pub use error::{default_error_code, DOCUMENTED_ERROR_STATUSES};
pub use journal::{FileSeen, RequestRecord, MAX_SEEN_NAME};
/// The object-store crate behind [`MockServerBuilder::object_store`], re-exported
/// so that the store you pass is of the same version.
pub use object_store;
pub use redact::REDACTED;
pub use rules::glob::{Glob, GlobError};
pub use rules::model::{
    Action, Fault, Fixture, Headers, Match, Pass, Phase, Probability, Processing, ProcessingStatus,
    Respond, RouteName, Rule, SizeRange, Status, Wait, When, FALLBACK_READ_TIMEOUT_MS, MAX_WAIT_MS,
};
pub use rules::near_miss::{
    CredentialMiss, FailedCondition, NearMiss, MAX_NEAR_MISSES, NEAR_MISS_SCAN,
};
pub use rules::schema::SCHEMA as FIXTURE_SCHEMA;
pub use rules::{check_fixtures, AddRuleError, FixtureCheck, FixtureError, RuleStatus};
pub use scenarios::{Scenario, UnknownScenario};
pub use server::{MockServer, MockServerBuilder, StartError};
#[cfg(feature = "s3")]
pub use storage::S3Config;
pub use storage::StoredUpload;

/// The OpenAPI 3.1 document of every route, without the fixture schemas.
const OPENAPI: &str = include_str!("openapi.json");

/// The OpenAPI 3.1 document served at `GET /openapi.json`: every route, with
/// the rule schemas of [`FIXTURE_SCHEMA`] included as `fixture_*` components
/// (one source for both documents).
///
/// ```
/// let doc = aymara_mock::openapi_document().unwrap();
/// assert_eq!(doc["openapi"], "3.1.0");
/// assert!(doc["components"]["schemas"]["fixture_rule"].is_object());
/// ```
pub fn openapi_document() -> Result<serde_json::Value, serde_json::Error> {
    let mut doc: serde_json::Value = serde_json::from_str(OPENAPI)?;
    let fixture_text = FIXTURE_SCHEMA.replace("#/$defs/", "#/components/schemas/fixture_");
    let mut fixture: serde_json::Value = serde_json::from_str(&fixture_text)?;
    let defs = fixture
        .as_object_mut()
        .and_then(|f| f.remove("$defs"))
        .unwrap_or_default();
    if let (Some(schemas), Some(defs), Some(root)) = (
        doc["components"]["schemas"].as_object_mut(),
        defs.as_object(),
        fixture.as_object_mut(),
    ) {
        for (name, schema) in defs {
            schemas.insert(format!("fixture_{name}"), schema.clone());
        }
        for key in ["$schema", "$id", "title"] {
            root.remove(key);
        }
        schemas.insert(
            "fixture_document".to_owned(),
            serde_json::Value::Object(root.clone()),
        );
    }
    Ok(doc)
}

/// The emulated endpoint's path.
pub const UPLOAD_PATH: &str = "/v2/files/-/uploads";
