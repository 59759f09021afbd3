//! `SafeFileName`: the client's file name reduced to a base name that is safe to
//! store under the storage directory.

use std::fmt;

/// Longest stored name, in bytes (the common file-system limit).
const MAX_NAME_BYTES: usize = 255;
/// Name used when nothing usable is left of the client's.
const FALLBACK: &str = "upload.bin";
/// An extension longer than this is not worth keeping when a name is shortened.
const MAX_KEPT_EXTENSION: usize = 16;

/// A file name with no directory parts, no `..`, no control characters, and at
/// most 255 bytes: `../../etc/passwd` is stored as `passwd`,
/// `C:\Users\me\clip.mp4` as `clip.mp4`, `..` as `upload.bin` (the
/// tests below).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SafeFileName(String);

impl SafeFileName {
    /// Reduces a client-supplied name to a safe base name; never fails.
    pub(crate) fn parse(raw: &str) -> Self {
        // Both separators count: a Windows client sends `C:\dir\file`.
        let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
        let cleaned = cleaned.trim();
        if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
            return Self(FALLBACK.to_owned());
        }
        Self(shorten(cleaned))
    }
}

/// Cuts a name to `MAX_NAME_BYTES` at a character boundary, keeping a short
/// extension so that content types can still be guessed from it.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let extension = match name.rfind('.') {
        Some(dot) if dot > 0 && name.len() - dot <= MAX_KEPT_EXTENSION => &name[dot..],
        _ => "",
    };
    let budget = MAX_NAME_BYTES - extension.len();
    let mut end = budget;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &name[..end], extension)
}

impl AsRef<str> for SafeFileName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SafeFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `filename` of a part's `Content-Disposition`, as the client sent it.
///
/// `filename*` (RFC 5987, percent-encoded UTF-8) wins over `filename`. Bytes
/// that are not UTF-8 are decoded lossily rather than dropped, so a name is
/// never lost (multer's own parser returns nothing for them).
pub(crate) fn disposition_filename(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::CONTENT_DISPOSITION)?.as_bytes();
    let mut plain = None;
    for (key, val) in disposition_params(value) {
        if key.eq_ignore_ascii_case(b"filename*") {
            // charset'language'percent-encoded
            let mut pieces = val.splitn(3, |b| *b == b'\'');
            let (_charset, _lang, encoded) = (pieces.next(), pieces.next(), pieces.next());
            if let Some(encoded) = encoded {
                let bytes: Vec<u8> = percent_encoding::percent_decode(encoded).collect();
                return Some(String::from_utf8_lossy(&bytes).into_owned());
            }
        } else if key.eq_ignore_ascii_case(b"filename") && plain.is_none() {
            plain = Some(String::from_utf8_lossy(&val).into_owned());
        }
    }
    plain
}

/// The `name` of a part's `Content-Disposition`: which form field it is.
pub(crate) fn disposition_name(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(http::header::CONTENT_DISPOSITION)?.as_bytes();
    disposition_params(value)
        .into_iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(b"name"))
        .map(|(_, val)| String::from_utf8_lossy(&val).into_owned())
}

/// Splits `form-data; name="a"; filename="b;c"` into (key, unquoted value) pairs.
fn disposition_params(value: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut params = Vec::new();
    let mut i = 0;
    let n = value.len();
    while i < n {
        // key
        while i < n && (value[i] == b';' || value[i].is_ascii_whitespace()) {
            i += 1;
        }
        let key_start = i;
        while i < n && value[i] != b'=' && value[i] != b';' {
            i += 1;
        }
        let key = value[key_start..i].trim_ascii().to_vec();
        if i >= n || value[i] == b';' {
            continue; // a bare token such as `form-data`
        }
        i += 1; // '='
        while i < n && value[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut val = Vec::new();
        if i < n && value[i] == b'"' {
            i += 1;
            while i < n && value[i] != b'"' {
                // Only `\"` is an escape: Windows clients send paths such as
                // `C:\dir\file` with literal backslashes.
                if value[i] == b'\\' && i + 1 < n && value[i + 1] == b'"' {
                    i += 1;
                }
                val.push(value[i]);
                i += 1;
            }
            i += 1; // closing quote
        } else {
            while i < n && value[i] != b';' {
                val.push(value[i]);
                i += 1;
            }
            let trimmed = val.trim_ascii().to_vec();
            val = trimmed;
        }
        params.push((key, val));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filename_of(value: &[u8]) -> Option<String> {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_DISPOSITION,
            http::HeaderValue::from_bytes(value).unwrap(),
        );
        disposition_filename(&h)
    }

    #[test]
    fn disposition_filenames() {
        assert_eq!(
            filename_of(b"form-data; name=\"file\"; filename=\"a b.txt\"").as_deref(),
            Some("a b.txt")
        );
        assert_eq!(
            filename_of(b"form-data; name=file; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        assert_eq!(
            filename_of(b"form-data; filename=\"semi;colon.txt\"; name=\"file\"").as_deref(),
            Some("semi;colon.txt")
        );
        assert_eq!(
            filename_of(b"form-data; filename=\"q\\\"uote.txt\"").as_deref(),
            Some("q\"uote.txt")
        );
        assert_eq!(
            filename_of(b"form-data; filename=\"fallback.txt\"; filename*=UTF-8''vid%C3%A9o.mp4")
                .as_deref(),
            Some("vid\u{e9}o.mp4")
        );
        assert_eq!(
            filename_of(b"form-data; filename=\"caf\xe9.txt\"").as_deref(),
            Some("caf\u{fffd}.txt")
        );
        assert_eq!(filename_of(b"form-data; name=\"file\""), None);
    }

    #[test]
    fn strips_unix_and_windows_directories() {
        assert_eq!(SafeFileName::parse("../../etc/passwd").as_ref(), "passwd");
        assert_eq!(SafeFileName::parse("..\\..\\win.ini").as_ref(), "win.ini");
        assert_eq!(SafeFileName::parse("/abs/path/a.txt").as_ref(), "a.txt");
        assert_eq!(SafeFileName::parse("dir/").as_ref(), "upload.bin");
    }

    #[test]
    fn dots_alone_and_empty_names_fall_back() {
        for raw in ["", ".", "..", "...", "a/..", "  ", "\u{0}\u{1}"] {
            assert_eq!(SafeFileName::parse(raw).as_ref(), "upload.bin", "{raw:?}");
        }
        assert_eq!(SafeFileName::parse(".bashrc").as_ref(), ".bashrc");
    }

    #[test]
    fn removes_c0_and_c1_control_characters() {
        let name = SafeFileName::parse("a\u{0}b\nc\u{1b}d\u{7f}e\u{85}f\u{9f}.txt");
        assert_eq!(name.as_ref(), "abcdef.txt");
    }

    #[test]
    fn long_names_are_cut_to_255_bytes_keeping_the_extension() {
        let raw = format!("{}.mp4", "a".repeat(1000));
        let name = SafeFileName::parse(&raw);
        assert_eq!(name.as_ref().len(), 255);
        assert!(name.as_ref().ends_with(".mp4"));
        // Multi-byte characters are never split.
        let raw = "é".repeat(500);
        let name = SafeFileName::parse(&raw);
        assert!(name.as_ref().len() <= 255);
        assert!(name.as_ref().chars().all(|c| c == 'é'));
    }

    #[test]
    fn unicode_names_are_kept() {
        assert_eq!(
            SafeFileName::parse("vidéo 日本.mp4").as_ref(),
            "vidéo 日本.mp4"
        );
    }
}
