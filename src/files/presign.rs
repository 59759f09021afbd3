//! Presigned PUT URLs served by the emulator itself (the files API's `file_url`).
//!
//! The shape follows S3's query-string authentication: the URL carries
//! `X-Amz-Algorithm`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders` and
//! `X-Amz-Signature`, so a client that logs or inspects its URL sees what it
//! would see against the real API. The signature is HMAC-SHA256 over the path
//! (which names the file uuid and name), the date, the expiry and, when one was
//! signed, the `Content-Type`; any change to them fails as S3 fails, with S3's
//! XML error body (rendered by `crate::error`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::http_util::hex;

/// The path prefix of presigned upload URLs.
pub(crate) const PREFIX: &str = "/__uploads/";
/// The real API's expiry for its upload URLs (the default).
#[cfg(test)]
pub(crate) const DEFAULT_EXPIRY: Duration = crate::config::defaults::PRESIGN_EXPIRY;
/// S3 refuses presigned URLs valid for more than 7 days.
pub(crate) const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// HMAC-SHA256 (RFC 2104) over sha2, which is already a dependency.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Equality whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `YYYYMMDDTHHMMSSZ`, S3's `X-Amz-Date` (civil date from days: H. Hinnant's algorithm).
fn amz_date(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The inverse of [`amz_date`]; `None` for anything not of that form.
fn parse_amz_date(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let unix = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let unix = u64::try_from(unix).ok()?;
    // Reject dates that do not exist (Feb 30): they do not round-trip.
    (amz_date(unix) == text).then_some(unix)
}

/// What a presigned URL refuses, as S3 words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PresignError {
    /// The URL was valid but its time is up.
    Expired,
    /// Path, query or signed header differ from what was signed.
    SignatureDoesNotMatch,
    /// A query parameter is missing or malformed.
    Malformed(&'static str),
}

impl PresignError {
    /// S3's status and error code.
    pub(crate) fn code(&self) -> (u16, &'static str) {
        match self {
            PresignError::Expired => (403, "AccessDenied"),
            PresignError::SignatureDoesNotMatch => (403, "SignatureDoesNotMatch"),
            PresignError::Malformed(_) => (400, "AuthorizationQueryParametersError"),
        }
    }

    /// S3's message.
    pub(crate) fn message(&self) -> &'static str {
        match self {
            PresignError::Expired => "Request has expired",
            PresignError::SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided. \
                 Check your key and signing method."
            }
            PresignError::Malformed(why) => why,
        }
    }
}

/// The one rendering of errors (`crate::error`) answers these as S3 does.
impl From<PresignError> for crate::error::ApiError {
    fn from(err: PresignError) -> Self {
        let (status, code) = err.code();
        let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::FORBIDDEN);
        crate::error::ApiError::s3(status, code, err.message())
    }
}

/// Signs and checks presigned upload URLs with one key.
#[derive(Clone)]
pub(crate) struct Signer {
    key: [u8; 32],
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { key: <redacted> }")
    }
}

impl Signer {
    /// A signer with a fresh random key: URLs are valid only for this process.
    pub(crate) fn random() -> Self {
        Signer {
            key: rand::random(),
        }
    }

    /// A signer from a configured secret, so that replicas accept each other's URLs.
    pub(crate) fn from_secret(secret: &[u8]) -> Self {
        Signer {
            key: Sha256::digest(secret).into(),
        }
    }

    fn signature(
        &self,
        path: &str,
        date: &str,
        expires: &str,
        content_type: Option<&str>,
    ) -> [u8; 32] {
        let message = format!(
            "AWS4-HMAC-SHA256\nPUT\n{path}\n{date}\n{expires}\n{}",
            content_type.unwrap_or("")
        );
        hmac_sha256(&self.key, message.as_bytes())
    }

    /// The path and query (`/__uploads/<uuid>/<name>?X-Amz-…`) of a PUT URL
    /// for `name`, valid for `expiry` from `now`.
    pub(crate) fn presign(
        &self,
        file_uuid: &uuid::Uuid,
        name: &str,
        content_type: Option<&str>,
        now: SystemTime,
        expiry: Duration,
    ) -> String {
        let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let path = format!(
            "{PREFIX}{file_uuid}/{}",
            percent_encoding::utf8_percent_encode(name, SEGMENT)
        );
        let date = amz_date(unix);
        let expires = expiry.min(MAX_EXPIRY).as_secs().max(1).to_string();
        let signed = if content_type.is_some() {
            "content-type%3Bhost"
        } else {
            "host"
        };
        let signature = hex(&self.signature(&path, &date, &expires, content_type));
        format!(
            "{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires={expires}\
             &X-Amz-SignedHeaders={signed}&X-Amz-Signature={signature}"
        )
    }

    /// Checks a PUT's raw path, raw query and `Content-Type` header at `now`.
    /// Returns the file uuid the URL was made for.
    pub(crate) fn verify(
        &self,
        path: &str,
        query: &str,
        content_type: Option<&str>,
        now: SystemTime,
    ) -> Result<uuid::Uuid, PresignError> {
        let mut params = std::collections::HashMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if params.insert(k, v).is_some() {
                return Err(PresignError::Malformed("A query parameter is given twice."));
            }
        }
        let get = |k: &str| params.get(k).copied();
        let (Some(algorithm), Some(date), Some(expires), Some(signed), Some(signature)) = (
            get("X-Amz-Algorithm"),
            get("X-Amz-Date"),
            get("X-Amz-Expires"),
            get("X-Amz-SignedHeaders"),
            get("X-Amz-Signature"),
        ) else {
            return Err(PresignError::Malformed(
                "Query-string authentication requires the X-Amz-Algorithm, X-Amz-Date, \
                 X-Amz-Expires, X-Amz-SignedHeaders and X-Amz-Signature parameters.",
            ));
        };
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(PresignError::Malformed(
                "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
            ));
        }
        let signed_content_type = match signed {
            "host" => None,
            "content-type%3Bhost" | "content-type;host" => Some(content_type.unwrap_or("")),
            _ => return Err(PresignError::SignatureDoesNotMatch),
        };
        let expected = self.signature(path, date, expires, signed_content_type);
        let given = signature.as_bytes();
        if !constant_time_eq(hex(&expected).as_bytes(), given) {
            return Err(PresignError::SignatureDoesNotMatch);
        }
        // Signed by us, so well formed; checked all the same.
        let start = parse_amz_date(date).ok_or(PresignError::Malformed("Invalid X-Amz-Date"))?;
        let seconds: u64 = expires
            .parse()
            .map_err(|_| PresignError::Malformed("X-Amz-Expires should be a number"))?;
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now > start.saturating_add(seconds) {
            return Err(PresignError::Expired);
        }
        let uuid = path
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('/').next())
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
            .ok_or(PresignError::SignatureDoesNotMatch)?;
        Ok(uuid)
    }
}

/// What a path segment must escape: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hmac_matches_rfc_4231_test_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 4] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hmac_sha256(&key, &data).to_vec(), unhex(want));
        }
    }

    #[test]
    fn amz_dates_round_trip_and_bad_ones_are_refused() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_709_251_199), "20240229T235959Z");
        for t in [0, 951_782_400, 1_709_251_199, 4_102_444_800] {
            assert_eq!(parse_amz_date(&amz_date(t)), Some(t));
        }
        for bad in [
            "20230230T000000Z",
            "2024-01-01T00:00",
            "20240101T250000Z",
            "2024010+T000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    const NOW: Duration = Duration::from_secs(1_800_000_000);

    fn at(offset: u64) -> SystemTime {
        UNIX_EPOCH + NOW + Duration::from_secs(offset)
    }

    fn split(url: &str) -> (&str, &str) {
        url.split_once('?').unwrap()
    }

    #[test]
    fn a_fresh_url_verifies_and_names_its_file() {
        let signer = Signer::random();
        let id = uuid::Uuid::new_v4();
        let url = signer.presign(&id, "a b/ü.mp4", None, at(0), DEFAULT_EXPIRY);
        assert!(url.starts_with(&format!(
            "/__uploads/{id}/a%20b%2F%C3%BC.mp4?X-Amz-Algorithm="
        )));
        assert!(url.contains("X-Amz-Expires=1800&"));
        assert!(url.contains("X-Amz-Date=20270115T080000Z&"));
        let (path, query) = split(&url);
        assert_eq!(signer.verify(path, query, None, at(1799)), Ok(id));
        // The Content-Type is not signed, so any is accepted.
        assert_eq!(
            signer.verify(path, query, Some("video/mp4"), at(1800)),
            Ok(id)
        );
    }

    #[test]
    fn an_expired_url_is_access_denied() {
        let signer = Signer::random();
        let url = signer.presign(
            &uuid::Uuid::new_v4(),
            "x.txt",
            None,
            at(0),
            Duration::from_secs(60),
        );
        let (path, query) = split(&url);
        let err = signer.verify(path, query, None, at(61)).unwrap_err();
        assert_eq!(err, PresignError::Expired);
        assert_eq!(err.code(), (403, "AccessDenied"));
        let api = crate::error::ApiError::from(err);
        assert_eq!(api.status.as_u16(), 403);
        assert_eq!(api.code, "AccessDenied");
        assert_eq!(api.message, "Request has expired");
    }

    #[test]
    fn tampering_with_any_part_does_not_match_the_signature() {
        let signer = Signer::random();
        let id = uuid::Uuid::new_v4();
        let url = signer.presign(&id, "x.txt", Some("text/plain"), at(0), DEFAULT_EXPIRY);
        let (path, query) = split(&url);
        assert_eq!(
            signer.verify(path, query, Some("text/plain"), at(0)),
            Ok(id)
        );
        let other = uuid::Uuid::new_v4();
        let tampered_paths = [
            path.replace(&id.to_string(), &other.to_string()),
            path.replace("x.txt", "y.txt"),
        ];
        for p in &tampered_paths {
            assert_eq!(
                signer.verify(p, query, Some("text/plain"), at(0)),
                Err(PresignError::SignatureDoesNotMatch),
                "{p}"
            );
        }
        let sig_at = query.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
        let flipped = if &query[sig_at..sig_at + 1] == "0" {
            "1"
        } else {
            "0"
        };
        let tampered_queries = [
            query.replace("X-Amz-Expires=1800", "X-Amz-Expires=99999"),
            query.replace("X-Amz-Date=20270115T080000Z", "X-Amz-Date=20270115T080001Z"),
            query.replace("content-type%3Bhost", "host"),
            format!("{}{flipped}{}", &query[..sig_at], &query[sig_at + 1..]),
            query[..query.len() - 1].to_string(),
        ];
        for q in &tampered_queries {
            assert_ne!(q, query);
            let err = signer
                .verify(path, q, Some("text/plain"), at(0))
                .unwrap_err();
            assert_eq!(err, PresignError::SignatureDoesNotMatch, "{q}");
            assert_eq!(err.code(), (403, "SignatureDoesNotMatch"));
        }
        // Another process's key.
        assert_eq!(
            Signer::random().verify(path, query, Some("text/plain"), at(0)),
            Err(PresignError::SignatureDoesNotMatch)
        );
    }

    #[test]
    fn a_content_type_other_than_the_signed_one_does_not_match() {
        let signer = Signer::random();
        let url = signer.presign(
            &uuid::Uuid::new_v4(),
            "v.mp4",
            Some("video/mp4"),
            at(0),
            DEFAULT_EXPIRY,
        );
        let (path, query) = split(&url);
        for wrong in [None, Some("video/webm"), Some("")] {
            assert_eq!(
                signer.verify(path, query, wrong, at(0)),
                Err(PresignError::SignatureDoesNotMatch),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn replicas_with_one_secret_accept_each_others_urls() {
        let a = Signer::from_secret(b"shared");
        let b = Signer::from_secret(b"shared");
        let id = uuid::Uuid::new_v4();
        let url = a.presign(&id, "f.png", None, at(0), DEFAULT_EXPIRY);
        let (path, query) = split(&url);
        assert_eq!(b.verify(path, query, None, at(5)), Ok(id));
    }

    #[test]
    fn missing_or_repeated_parameters_are_malformed() {
        let signer = Signer::random();
        let url = signer.presign(&uuid::Uuid::new_v4(), "f", None, at(0), DEFAULT_EXPIRY);
        let (path, query) = split(&url);
        let err = signer.verify(path, "", None, at(0)).unwrap_err();
        assert_eq!(err.code(), (400, "AuthorizationQueryParametersError"));
        let twice = format!("{query}&X-Amz-Expires=1");
        assert!(matches!(
            signer.verify(path, &twice, None, at(0)),
            Err(PresignError::Malformed(_))
        ));
    }
}
