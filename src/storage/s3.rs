//! The S3 client behind `--storage s3://BUCKET/PREFIX` (the `s3` feature):
//! parses the URL and builds object_store's AWS client, which
//! [`ObjectStorage`](super::ObjectStorage) then streams uploads to.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use object_store::ObjectStore;

/// An S3-compatible store to keep uploads in: `s3://BUCKET/PREFIX`, an
/// optional endpoint (MinIO, LocalStack, Ceph, moto; AWS when absent), and
/// credentials from the standard AWS environment variables. Only with the
/// `s3` feature (on by default).
///
/// ```
/// use aymara_mock::S3Config;
/// let config = S3Config::parse("s3://staging-uploads/aymara")?
///     .endpoint("http://127.0.0.1:9000");
/// assert_eq!(config.bucket(), "staging-uploads");
/// assert_eq!(config.prefix(), "aymara");
/// # Ok::<(), String>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    bucket: String,
    prefix: String,
    endpoint: Option<String>,
    credentials: Option<(String, String)>,
}

impl S3Config {
    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{url:?} is not an s3://BUCKET/PREFIX URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!(
                "{bucket:?} is not a valid bucket name (3 to 63 characters: lowercase letters, digits, '-' and '.')"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if let Err(err) = Path::parse(prefix) {
            return Err(format!("{prefix:?} is not a valid key prefix: {err}"));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: None,
            credentials: None,
        })
    }

    /// The endpoint to talk to instead of AWS (e.g. `http://minio:9000`).
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Credentials to sign with, instead of those in the environment.
    #[must_use]
    pub fn credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.credentials = Some((access_key_id.into(), secret_access_key.into()));
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix, without leading or trailing `/` (may be empty).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Builds the S3 client: credentials and region from the AWS environment
    /// variables, requests retried briefly so that an unreachable store is
    /// reported within seconds.
    pub(crate) fn build(&self) -> Result<Arc<dyn ObjectStore>, String> {
        install_crypto_provider();
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(1),
                    base: 2.0,
                },
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
            })
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(3))
                    .with_timeout(Duration::from_secs(120)),
            );
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some((key, secret)) = &self.credentials {
            builder = builder
                .with_access_key_id(key)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = &self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder
            .build()
            .map_err(|err| format!("cannot use s3://{}: {err}", self.bucket))?;
        Ok(Arc::new(store))
    }
}

/// Makes ring rustls' process-wide cryptography provider, which the S3
/// client's TLS (reqwest built without a provider of its own) takes. Once per
/// process; an application that installed a provider before keeps its own.
fn install_crypto_provider() {
    // An error only says that a provider is installed already: either serves.
    let _already = rustls::crypto::ring::default_provider().install_default();
}
