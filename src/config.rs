//! A server's settings, [`Config`], with every default written once, and the
//! validated values they are made of: sizes, durations and the
//! authentication policy.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Longest duration any setting or rule may give (7 days): far beyond any
/// test, and far below what a deadline (`now + duration`) can hold.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Every setting of a server. [`MockServerBuilder`](crate::MockServerBuilder)
/// starts from [`Config::default`], made of the constants of [`defaults`],
/// which the command line shows as its flags' defaults: each default is
/// written once.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The address to listen on.
    pub(crate) host: String,
    /// The port; 0 picks a free one (the command line's default is 8000).
    pub(crate) port: u16,
    /// Store uploads here instead of a fresh temp dir.
    pub(crate) storage_dir: Option<PathBuf>,
    /// Leave the temp dir behind on shutdown.
    pub(crate) keep_files: bool,
    /// Fixture files or directories and shipped scenarios, in the order
    /// added; each checked when added.
    pub(crate) fixtures: Vec<FixtureSource>,
    /// Reload the fixtures when they change.
    pub(crate) watch: bool,
    /// Accepted `x-api-key` values (none: any credential).
    pub(crate) api_keys: Vec<String>,
    /// Accepted bearer tokens (none: any credential).
    pub(crate) bearer_tokens: Vec<String>,
    /// Check no credentials at all.
    pub(crate) no_auth: bool,
    /// Largest file accepted (413 beyond it).
    pub(crate) max_upload_size: ByteSize,
    /// A quota over everything stored.
    pub(crate) max_storage: Option<ByteSize>,
    /// Seed of the RNG behind rule probabilities (none: random).
    pub(crate) seed: Option<u64>,
    /// Base URL of `file_url` (none: the URL listened on).
    pub(crate) public_url: Option<String>,
    /// Bucket name in `remote_uri` with local storage.
    pub(crate) bucket: String,
    /// Requests the journal keeps.
    pub(crate) journal_size: usize,
    /// Bytes the journal may hold.
    pub(crate) journal_bytes: ByteSize,
    /// Token the admin API requires (none: loopback and same origin only).
    pub(crate) admin_token: Option<String>,
    /// How long shutdown waits for in-flight requests.
    pub(crate) shutdown_timeout: Duration,
    /// How long a client may take to send its request headers.
    pub(crate) header_read_timeout: Duration,
    /// How long an upload body may stall.
    pub(crate) body_timeout: Duration,
    /// Connections served at once (none: no limit).
    pub(crate) max_connections: Option<usize>,
    /// How long a presigned upload URL (`POST /v2/files`) stays valid.
    pub(crate) presign_expiry: Duration,
    /// The key presigned URLs are signed with (none: a random one per process).
    pub(crate) presign_secret: Option<String>,
    /// How long a video takes from stored to `completed` (`pending` for the
    /// first third, then `processing`).
    pub(crate) video_processing_time: Duration,
    /// `organization_uuid` of every file in the files API.
    pub(crate) organization_uuid: String,
    /// `uploaded_by_uuid` of every file in the files API.
    pub(crate) uploaded_by_uuid: String,
    /// Hosts `remote_uri` files may be fetched from (loopback always).
    pub(crate) remote_hosts: Vec<String>,
    /// Most `remote_uri` fetches running at once (the rest wait their turn).
    pub(crate) max_remote_fetches: usize,
    /// The longest one `remote_uri` fetch may take, connect to last byte.
    pub(crate) remote_fetch_timeout: Duration,
    /// Most files announced by `POST /v2/files` and not stored at once.
    pub(crate) max_pending_files: usize,
    /// `--cors-origin` values (none given: `loopback`, see `crate::cors`).
    pub(crate) cors_origins: Option<Vec<String>>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// `--state redis://...`: state shared with other replicas.
    pub(crate) state_url: Option<String>,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// `--state-prefix`: the shared keys' prefix.
    pub(crate) state_prefix: String,
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    /// `--replica-id`: this replica's name in the shared journal (none:
    /// the host name and port).
    pub(crate) replica_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: defaults::HOST.to_owned(),
            port: 0,
            storage_dir: None,
            keep_files: false,
            fixtures: Vec::new(),
            watch: false,
            api_keys: Vec::new(),
            bearer_tokens: Vec::new(),
            no_auth: false,
            max_upload_size: defaults::MAX_UPLOAD_SIZE,
            max_storage: None,
            seed: None,
            public_url: None,
            bucket: defaults::BUCKET.to_owned(),
            journal_size: defaults::JOURNAL_SIZE,
            journal_bytes: defaults::JOURNAL_BYTES,
            admin_token: None,
            shutdown_timeout: defaults::SHUTDOWN_TIMEOUT,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            body_timeout: defaults::BODY_TIMEOUT,
            max_connections: None,
            state_url: None,
            state_prefix: defaults::STATE_PREFIX.to_owned(),
            replica_id: None,
            presign_expiry: defaults::PRESIGN_EXPIRY,
            presign_secret: None,
            video_processing_time: defaults::VIDEO_PROCESSING_TIME,
            organization_uuid: defaults::ORGANIZATION_UUID.to_owned(),
            uploaded_by_uuid: defaults::USER_UUID.to_owned(),
            // Loopback only: `remote_uri` never makes it an open proxy.
            remote_hosts: ["localhost", "127.0.0.1", "::1"]
                .map(str::to_owned)
                .to_vec(),
            max_remote_fetches: defaults::MAX_REMOTE_FETCHES,
            remote_fetch_timeout: defaults::REMOTE_FETCH_TIMEOUT,
            max_pending_files: defaults::MAX_PENDING_FILES,
            // `None` is `defaults::CORS_ORIGIN` (see `crate::cors::Cors::new`).
            cors_origins: None,
        }
    }
}

/// The settings a [`MockServerBuilder`](crate::MockServerBuilder) starts
/// from, each a constant so that the `aymara-mock` binary can show it as
/// its flag's default (`--help`). Each builder method's documentation gives
/// the same value.
///
/// ```
/// use aymara_mock::defaults;
/// assert_eq!(defaults::HOST, "127.0.0.1");
/// assert_eq!(defaults::MAX_UPLOAD_SIZE.bytes(), 5 << 30);
/// ```
pub mod defaults {
    use std::time::Duration;

    use super::ByteSize;

    /// The address to listen on ([`host`](crate::MockServerBuilder::host)).
    pub const HOST: &str = "127.0.0.1";
    /// The largest file accepted, 5 GiB
    /// ([`max_upload_size`](crate::MockServerBuilder::max_upload_size)).
    pub const MAX_UPLOAD_SIZE: ByteSize = ByteSize::new(5 << 30);
    /// The bucket name in `remote_uri` ([`bucket`](crate::MockServerBuilder::bucket)).
    pub const BUCKET: &str = "aymara-mock";
    /// Requests the journal keeps
    /// ([`journal_size`](crate::MockServerBuilder::journal_size)).
    pub const JOURNAL_SIZE: usize = 10_000;
    /// Bytes the journal may hold, 64 MiB
    /// ([`journal_bytes`](crate::MockServerBuilder::journal_bytes)).
    pub const JOURNAL_BYTES: ByteSize = ByteSize::new(64 << 20);
    /// How long shutdown waits for in-flight requests
    /// ([`shutdown_timeout`](crate::MockServerBuilder::shutdown_timeout)).
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long a client may take to send its request headers
    /// ([`header_read_timeout`](crate::MockServerBuilder::header_read_timeout)).
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long an upload body may stall
    /// ([`body_timeout`](crate::MockServerBuilder::body_timeout)).
    pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long presigned upload URLs stay valid, 30 minutes as the real
    /// API's ([`presign_expiry`](crate::MockServerBuilder::presign_expiry)).
    pub const PRESIGN_EXPIRY: Duration = Duration::from_secs(30 * 60);
    /// How long a video takes from stored to `completed`
    /// ([`video_processing_time`](crate::MockServerBuilder::video_processing_time)).
    pub const VIDEO_PROCESSING_TIME: Duration = Duration::from_secs(3);
    /// `organization_uuid` of every file ([`owner`](crate::MockServerBuilder::owner)).
    pub const ORGANIZATION_UUID: &str = "00000000-0000-4000-8000-0000000000a1";
    /// `uploaded_by_uuid` of every file ([`owner`](crate::MockServerBuilder::owner)).
    pub const USER_UUID: &str = "00000000-0000-4000-8000-0000000000b1";
    /// `remote_uri` fetches running at once: a handful of sockets, as
    /// loopback fetches finish in moments and a test suite rarely has more
    /// than a few in flight
    /// ([`max_remote_fetches`](crate::MockServerBuilder::max_remote_fetches)).
    pub const MAX_REMOTE_FETCHES: usize = 16;
    /// The longest one `remote_uri` fetch may take: room for a 5 GiB file on
    /// loopback, not for a dripping origin
    /// ([`remote_fetch_timeout`](crate::MockServerBuilder::remote_fetch_timeout)).
    pub const REMOTE_FETCH_TIMEOUT: Duration = Duration::from_secs(120);
    /// Files announced and not stored yet: far beyond a test suite's needs,
    /// about 10 MB of catalog
    /// ([`max_pending_files`](crate::MockServerBuilder::max_pending_files)).
    pub const MAX_PENDING_FILES: usize = 10_000;
    /// The page origins that may call the API from a browser when no
    /// [`cors_origin`](crate::MockServerBuilder::cors_origin) is given:
    /// localhost and loopback addresses, any port.
    pub const CORS_ORIGIN: &str = "loopback";
    /// Prefix of the keys in a shared state store (`--state-prefix`).
    pub const STATE_PREFIX: &str = "aymara-mock";
}

impl Config {
    /// Which credentials these settings accept.
    pub(crate) fn auth_policy(&self) -> AuthPolicy {
        if self.no_auth {
            AuthPolicy::Disabled
        } else if self.api_keys.is_empty() && self.bearer_tokens.is_empty() {
            AuthPolicy::AnyCredential
        } else {
            AuthPolicy::Only {
                api_keys: self.api_keys.clone(),
                bearer_tokens: self.bearer_tokens.clone(),
            }
        }
    }
}

/// Where a server's fixture rules come from: a file or directory on disk
/// (read again by `--watch` and reset), or a shipped scenario.
#[derive(Debug, Clone)]
pub(crate) enum FixtureSource {
    /// `--fixtures PATH`.
    Path(PathBuf),
    /// `--scenario NAME`.
    Scenario(&'static crate::scenarios::Scenario),
}

/// A size in bytes, parsed from human forms such as `512MiB`, `5GiB`, `10MB` or `1024`.
///
/// Binary suffixes (`KiB`, `MiB`, `GiB`, `TiB`, and the short `K`, `M`, `G`, `T`)
/// are powers of 1024; decimal ones (`KB`, `MB`, `GB`, `TB`) are powers of 1000.
/// Case does not matter; a fraction is allowed (`1.5GiB`).
///
/// ```
/// use aymara_mock::ByteSize;
/// assert_eq!("512MiB".parse::<ByteSize>().unwrap().bytes(), 512 * 1024 * 1024);
/// assert_eq!("10MB".parse::<ByteSize>().unwrap().bytes(), 10_000_000);
/// assert!("ten".parse::<ByteSize>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// A size of `bytes` bytes.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl From<u64> for ByteSize {
    fn from(bytes: u64) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Why a size could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: expected a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 512MiB")]
pub struct ByteSizeError {
    input: String,
}

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || ByteSizeError {
            input: input.to_owned(),
        };
        let s = input.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit = unit.trim().to_ascii_lowercase();
        let multiplier: u64 = match unit.as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "t" | "tib" => 1 << 40,
            _ => return Err(err()),
        };
        if number.is_empty() {
            return Err(err());
        }
        if let Ok(whole) = number.parse::<u64>() {
            return whole.checked_mul(multiplier).map(Self).ok_or_else(err);
        }
        let value: f64 = number.parse().map_err(|_| err())?;
        let bytes = (value * multiplier as f64).round();
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
            return Err(err());
        }
        Ok(Self(bytes as u64))
    }
}

/// Which credentials the emulated API accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum AuthPolicy {
    /// Any non-empty `x-api-key` or bearer token (the default).
    #[default]
    AnyCredential,
    /// Only these keys (`x-api-key`) and tokens (`Authorization: Bearer`).
    Only {
        /// Accepted `x-api-key` values.
        api_keys: Vec<String>,
        /// Accepted bearer tokens.
        bearer_tokens: Vec<String>,
    },
    /// Nothing is checked.
    Disabled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_sizes() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("1B", 1),
            ("1KiB", 1024),
            ("1k", 1024),
            ("1KB", 1000),
            ("512MiB", 512 << 20),
            ("5GiB", 5 << 30),
            ("5gib", 5 << 30),
            ("1.5GiB", 3 << 29),
            ("2 MiB", 2 << 20),
            ("1TB", 1_000_000_000_000),
        ];
        for (input, bytes) in cases {
            assert_eq!(
                input.parse::<ByteSize>().map(ByteSize::bytes),
                Ok(bytes),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_nonsense_sizes() {
        for input in [
            "",
            "MiB",
            "ten",
            "5XB",
            "-1",
            "1.2.3",
            "99999999999999999999TiB",
        ] {
            assert!(input.parse::<ByteSize>().is_err(), "{input}");
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(ByteSize::new(5 << 30).to_string(), "5GiB");
        assert_eq!(ByteSize::new(1536).to_string(), "1536B");
        assert_eq!(ByteSize::new(3 << 10).to_string(), "3KiB");
        assert_eq!(ByteSize::new(1000).to_string(), "1000B");
    }
}
