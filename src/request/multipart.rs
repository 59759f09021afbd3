//! A streaming `multipart/form-data` parser that hands out part data as
//! slices of the body's own chunks.
//!
//! The body arrives as `Bytes` chunks from hyper. A part's data is cut out of
//! the pending bytes with `Bytes::split_to` up to the next delimiter
//! (`CRLF--boundary`): handing data out never copies it.
//!
//! Bytes are copied in one place only, `Multipart::fill`, and only when
//! bytes are still pending as the next chunk is read: then the pending bytes
//! and that whole chunk are copied into one new buffer. When nothing is
//! pending (the usual case) the chunk is taken as it is. What can be pending:
//!
//! - in a part's data or the preamble, a tail of at most `boundary + 3` bytes
//!   (73 at most) that could begin a delimiter: this happens only when a chunk
//!   ends in such a tail (CR, CR LF, CR LF `-`, …), and costs that tail plus
//!   the next chunk;
//! - in a part's header block, or in the padding after a boundary line, up to
//!   [`MAX_PART_HEADERS`] bytes: the part of a header block read so far is
//!   copied again for each further chunk the block spans.
//!
//! So one copy is at most [`MAX_PART_HEADERS`] plus one chunk, and the memory
//! the parser holds is bounded by that too.
//!
//! The grammar is RFC 7578 / RFC 2046: a preamble (skipped), then
//! `--boundary`, transport padding (spaces and tabs), CRLF, headers, a blank
//! line, the data; the last delimiter is followed by `--`, transport padding
//! and CRLF (or the body's end), and the epilogue after it is left unread.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderName, HeaderValue};
use memchr::memmem::Finder;

use super::body::BodyError;

/// Largest header block of one part, in bytes (up to and including its blank line).
pub(crate) const MAX_PART_HEADERS: usize = 8 * 1024;
/// Most headers one part may have.
const MAX_HEADERS_PER_PART: usize = 32;

/// What follows `--boundary--` when it is not padding and CRLF or the end.
pub(crate) const CLOSE_NOT_CRLF: &str =
    "the closing boundary is followed by something other than CRLF";

/// A part's header line that ends in LF alone.
pub(crate) const LF_IN_HEADERS: &str = "a part's header line ends in LF without CR";

/// Why the body is not a readable multipart stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MultipartError {
    /// Reading the body failed; the body's control says why.
    #[error("the body could not be read")]
    Body(#[from] BodyError),
    /// The body ended inside the multipart framing or a part.
    #[error("the body ends before the closing boundary")]
    Incomplete,
    /// A part's header block is larger than [`MAX_PART_HEADERS`].
    #[error("a part's headers are longer than {MAX_PART_HEADERS} bytes")]
    HeadersTooLarge,
    /// Anything else that does not follow the grammar.
    #[error("{0}")]
    Malformed(String),
}

/// One part's headers; its data follows through [`Multipart::chunk`].
#[derive(Debug)]
pub(crate) struct Part {
    /// The part's headers, in the order sent: `get` gives the first of a
    /// repeated name, as Go's `mime/multipart` and Python's `email` do.
    pub(crate) headers: HeaderMap,
}

impl Part {
    /// The `name` parameter of the part's `Content-Disposition`.
    pub(crate) fn name(&self) -> Option<String> {
        super::name::disposition_name(&self.headers)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first `--boundary`.
    Preamble,
    /// Right after a `--boundary`: `--` (the end) or padding and CRLF.
    AfterBoundary,
    /// Right after the closing `--boundary--`: padding, then CRLF or the
    /// body's end.
    Closing,
    Headers,
    Data,
    /// After the closing `--boundary--`.
    Done,
}

/// The parser over a stream of body chunks.
pub(crate) struct Multipart<S> {
    body: S,
    /// `\r\n--boundary`: what ends a part's data.
    delimiter: Box<[u8]>,
    finder: Finder<'static>,
    /// Bytes read and not yet consumed.
    pending: Bytes,
    stage: Stage,
}

impl<S> std::fmt::Debug for Multipart<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multipart")
            .field("stage", &self.stage)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<S> Multipart<S>
where
    S: Stream<Item = Result<Bytes, BodyError>> + Unpin,
{
    /// A parser for a body whose Content-Type gave `boundary`.
    pub(crate) fn new(body: S, boundary: &str) -> Self {
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary.as_bytes());
        let finder = Finder::new(&delimiter).into_owned();
        Self {
            body,
            delimiter: delimiter.into_boxed_slice(),
            finder,
            pending: Bytes::new(),
            stage: Stage::Preamble,
        }
    }

    /// The next part's headers, skipping whatever is left of the current
    /// part's data; `None` after the closing boundary.
    pub(crate) async fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        loop {
            match self.stage {
                Stage::Preamble => self.skip_preamble().await?,
                Stage::Data => while self.chunk().await?.is_some() {},
                Stage::AfterBoundary => self.read_boundary_end().await?,
                Stage::Closing => self.read_close_end().await?,
                Stage::Headers => return self.read_headers().await.map(Some),
                Stage::Done => return Ok(None),
            }
        }
    }

    /// The next piece of the current part's data, as a slice of a body chunk;
    /// `None` at the part's end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, MultipartError> {
        if self.stage != Stage::Data {
            return Ok(None);
        }
        loop {
            if let Some(at) = self.finder.find(&self.pending) {
                let data = self.pending.split_to(at);
                self.pending.advance(self.delimiter.len());
                self.stage = Stage::AfterBoundary;
                return Ok((!data.is_empty()).then_some(data));
            }
            // Everything but a tail that could begin a delimiter is data.
            let keep = partial_delimiter_len(&self.pending, &self.delimiter);
            let data = self.pending.split_to(self.pending.len() - keep);
            if !data.is_empty() {
                return Ok(Some(data));
            }
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
    }

    /// Skips to just past the first `--boundary`, which opens the body or a
    /// line of the preamble.
    async fn skip_preamble(&mut self) -> Result<(), MultipartError> {
        // At the body's start: `--boundary`, the delimiter without its CRLF.
        let opening = 2..self.delimiter.len();
        while self.pending.len() < opening.len()
            && self.delimiter[opening.clone()].starts_with(&self.pending)
        {
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
        if self.pending.starts_with(&self.delimiter[opening.clone()]) {
            self.pending.advance(opening.len());
            self.stage = Stage::AfterBoundary;
            return Ok(());
        }
        // Then in a later line of the preamble, after a CRLF.
        loop {
            if let Some(at) = self.finder.find(&self.pending) {
                self.pending.advance(at + self.delimiter.len());
                self.stage = Stage::AfterBoundary;
                return Ok(());
            }
            // Drop the preamble, but for a tail that could begin a delimiter.
            let keep = partial_delimiter_len(&self.pending, &self.delimiter);
            self.pending.advance(self.pending.len() - keep);
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
    }

    /// How many pending bytes are transport padding (spaces and tabs).
    fn padding_len(&self) -> usize {
        self.pending
            .iter()
            .position(|b| *b != b' ' && *b != b'\t')
            .unwrap_or(self.pending.len())
    }

    /// After `--boundary`: `--` ends the body; otherwise transport padding and
    /// CRLF open the next part's headers.
    async fn read_boundary_end(&mut self) -> Result<(), MultipartError> {
        loop {
            let padding = self.padding_len();
            let rest = &self.pending[padding..];
            if padding == 0 && rest.starts_with(b"--") {
                self.pending.advance(2);
                self.stage = Stage::Closing;
                return Ok(());
            }
            if rest.starts_with(b"\r\n") {
                self.pending.advance(padding + 2);
                self.stage = Stage::Headers;
                return Ok(());
            }
            let undecided = rest.is_empty() || rest == b"\r" || (padding == 0 && rest == b"-");
            if !undecided {
                return Err(MultipartError::Malformed(
                    "a boundary line is followed by something other than CRLF or `--`".into(),
                ));
            }
            if padding > MAX_PART_HEADERS {
                return Err(MultipartError::HeadersTooLarge);
            }
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
    }

    /// After `--boundary--`: transport padding, then CRLF (the epilogue,
    /// left unread, follows) or the body's end. RFC 2046 allows nothing else
    /// there; accepting `--boundary--garbage` would cut a file at a boundary
    /// look-alike in its data and answer 200 for a body that is not one.
    async fn read_close_end(&mut self) -> Result<(), MultipartError> {
        loop {
            let padding = self.padding_len();
            let rest = &self.pending[padding..];
            if rest.starts_with(b"\r\n") {
                self.stage = Stage::Done;
                return Ok(());
            }
            // Only padding so far, or a CR that may begin the CRLF.
            let at_end_ok = rest.is_empty();
            if !(at_end_ok || rest == b"\r") {
                return Err(MultipartError::Malformed(CLOSE_NOT_CRLF.into()));
            }
            if padding > MAX_PART_HEADERS {
                return Err(MultipartError::HeadersTooLarge);
            }
            if !self.fill().await? {
                if at_end_ok {
                    self.stage = Stage::Done;
                    return Ok(());
                }
                return Err(MultipartError::Malformed(CLOSE_NOT_CRLF.into()));
            }
        }
    }

    /// A part's header block, up to and including its blank line.
    async fn read_headers(&mut self) -> Result<Part, MultipartError> {
        loop {
            let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS_PER_PART];
            match httparse::parse_headers(&self.pending, &mut raw) {
                Ok(httparse::Status::Complete((len, raw))) => {
                    if len > MAX_PART_HEADERS {
                        return Err(MultipartError::HeadersTooLarge);
                    }
                    // httparse also ends a line at a bare LF; RFC 2046 lines
                    // end in CRLF, as the boundary lines must here.
                    let block = &self.pending[..len];
                    let bare_lf = memchr::memchr_iter(b'\n', block)
                        .any(|at| at == 0 || block[at - 1] != b'\r');
                    if bare_lf {
                        return Err(MultipartError::Malformed(LF_IN_HEADERS.into()));
                    }
                    let headers = header_map(raw)?;
                    self.pending.advance(len);
                    self.stage = Stage::Data;
                    return Ok(Part { headers });
                }
                Ok(httparse::Status::Partial) => {
                    if self.pending.len() > MAX_PART_HEADERS {
                        return Err(MultipartError::HeadersTooLarge);
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(MultipartError::Malformed(format!(
                        "a part has more than {MAX_HEADERS_PER_PART} headers"
                    )))
                }
                Err(err) => {
                    return Err(MultipartError::Malformed(format!(
                        "a part's headers cannot be parsed ({err})"
                    )))
                }
            }
            if !self.fill().await? {
                return Err(MultipartError::Incomplete);
            }
        }
    }

    /// Reads the next body chunk onto `pending`; `false` at the body's end.
    /// A chunk is taken as it is when nothing is pending (the usual case);
    /// otherwise the two are joined.
    async fn fill(&mut self) -> Result<bool, MultipartError> {
        let chunk = match self.body.next().await {
            Some(chunk) => chunk?,
            None => return Ok(false),
        };
        if self.pending.is_empty() {
            self.pending = chunk;
        } else {
            let mut joined = BytesMut::with_capacity(self.pending.len() + chunk.len());
            joined.extend_from_slice(&self.pending);
            joined.extend_from_slice(&chunk);
            self.pending = joined.freeze();
        }
        Ok(true)
    }
}

/// The length of the longest tail of `buf`, shorter than `delimiter`, that
/// `delimiter` begins with: bytes that cannot be called data until more arrive.
fn partial_delimiter_len(buf: &[u8], delimiter: &[u8]) -> usize {
    let window = buf.len().saturating_sub(delimiter.len() - 1);
    memchr::memchr_iter(delimiter[0], &buf[window..])
        .map(|at| window + at)
        .find(|&start| delimiter.starts_with(&buf[start..]))
        .map_or(0, |start| buf.len() - start)
}

fn header_map(raw: &[httparse::Header<'_>]) -> Result<HeaderMap, MultipartError> {
    let mut headers = HeaderMap::with_capacity(raw.len());
    for header in raw {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| {
            MultipartError::Malformed(format!("a part header's name {:?} is invalid", header.name))
        })?;
        let value = HeaderValue::from_bytes(header.value).map_err(|_| {
            MultipartError::Malformed(format!("the part header {name} has an invalid value"))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The `boundary` parameter of a `multipart/form-data` Content-Type, unquoted.
/// `None` if it is missing, empty, longer than RFC 2046's 70 characters, or
/// not printable ASCII.
pub(crate) fn parse_boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';').skip(1);
    let value = params.find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("boundary")
            .then_some(value.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    let valid = !value.is_empty()
        && value.len() <= 70
        && value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    valid.then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: Vec<&[u8]>) -> impl Stream<Item = Result<Bytes, BodyError>> + Unpin {
        futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        )
    }

    /// (name, data) of every part, reading `body` split into chunks of `size`.
    async fn parts_in(body: &[u8], size: usize) -> Result<Vec<(Option<String>, Vec<u8>)>, String> {
        let mut parser = Multipart::new(stream(body.chunks(size).collect()), "XyZ");
        let mut out = Vec::new();
        while let Some(part) = parser.next_part().await.map_err(|e| e.to_string())? {
            let mut data = Vec::new();
            while let Some(chunk) = parser.chunk().await.map_err(|e| e.to_string())? {
                data.extend_from_slice(&chunk);
            }
            out.push((part.name(), data));
        }
        Ok(out)
    }

    /// Runs a parser future to its end: the test streams never wait.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("stream::iter never waits")
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\
one\r\n--Xy\r\n--XyZ  \r\ncontent-disposition: form-data; name=\"file\"; filename=\"f\"\r\n\
Content-Type: text/plain\r\n\r\n\r\r\n--XyQ\r\n-\r\n--XyZ\r\n\r\n\r\n--XyZ--\r\nepilogue";

    #[test]
    fn every_chunking_gives_the_same_parts() {
        for size in 1..=BODY.len() {
            let parts =
                block_on(parts_in(BODY, size)).unwrap_or_else(|e| panic!("size {size}: {e}"));
            assert_eq!(
                parts,
                vec![
                    (Some("a".to_owned()), b"one\r\n--Xy".to_vec()),
                    (Some("file".to_owned()), b"\r\r\n--XyQ\r\n-".to_vec()),
                    (None, Vec::new()),
                ],
                "chunk size {size}"
            );
        }
    }

    #[test]
    fn the_first_boundary_opens_the_body_or_a_line() {
        let parts = block_on(parts_in(b"--XyZ\r\n\r\nx\r\n--XyZ--", 4)).unwrap();
        assert_eq!(parts, vec![(None, b"x".to_vec())]);
        // `--XyZ` inside a preamble line is not a boundary.
        let err = block_on(parts_in(b"ab--XyZ\r\n\r\nx", 64)).unwrap_err();
        assert!(err.contains("ends before"), "{err}");
    }

    #[test]
    fn data_is_handed_out_without_copying() {
        let body = b"--XyZ\r\n\r\n0123456789\r\n--XyZ--";
        let chunk = Bytes::from_static(body);
        let mut parser = Multipart::new(
            futures_util::stream::iter(vec![Ok::<_, BodyError>(chunk.clone())]),
            "XyZ",
        );
        block_on(parser.next_part()).unwrap();
        let data = block_on(parser.chunk()).unwrap().unwrap();
        assert_eq!(&data[..], b"0123456789");
        assert_eq!(
            data.as_ptr(),
            chunk[9..].as_ptr(),
            "a slice of the body chunk"
        );
    }

    #[test]
    fn broken_bodies_are_errors() {
        for (body, expect) in [
            (&b"--XyZ\r\nA: b\r\n\r\ndata"[..], "ends before"),
            (b"--XyZ\r\nA: b\r\n", "ends before"),
            (b"no boundary at all", "ends before"),
            (b"--XyZ!\r\n\r\nx\r\n--XyZ--", "other than CRLF"),
            (
                b"--XyZ\r\nBad Name: b\r\n\r\n\r\n--XyZ--",
                "cannot be parsed",
            ),
            (b"--XyZ\r\n\r\nx\r\n--XyZ--junk", "closing boundary"),
            (b"--XyZ\r\n\r\nx\r\n--XyZ-- \r", "closing boundary"),
            (b"--XyZ\r\nA: b\n\r\nx\r\n--XyZ--", "LF without CR"),
        ] {
            let err = block_on(parts_in(body, 3)).err().unwrap_or_default();
            assert!(
                err.contains(expect),
                "{:?}: {err}",
                String::from_utf8_lossy(body)
            );
        }
        let mut big = b"--XyZ\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_PART_HEADERS));
        let err = block_on(parts_in(&big, 1000)).err().unwrap_or_default();
        assert!(err.contains("longer than"), "{err}");
    }

    #[test]
    fn a_tail_is_kept_only_when_it_could_begin_a_delimiter() {
        let d = b"\r\n--XyZ";
        assert_eq!(partial_delimiter_len(b"abc", d), 0);
        assert_eq!(partial_delimiter_len(b"abc\r", d), 1);
        assert_eq!(partial_delimiter_len(b"abc\r\n--X", d), 5);
        assert_eq!(partial_delimiter_len(b"abc\r\n--Q", d), 0);
        assert_eq!(partial_delimiter_len(b"\r\r\n-", d), 3);
        assert_eq!(partial_delimiter_len(b"", d), 0);
    }

    #[test]
    fn boundaries_are_read_from_the_content_type() {
        assert_eq!(
            parse_boundary("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            parse_boundary("multipart/form-data; charset=x; BOUNDARY=\"a b:c\"").as_deref(),
            Some("a b:c")
        );
        for bad in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"abc",
        ] {
            assert_eq!(parse_boundary(bad), None, "{bad}");
        }
        assert_eq!(
            parse_boundary(&format!("multipart/form-data; boundary={}", "b".repeat(71))),
            None
        );
    }
}

/// Round trip: parts serialized as a client would, cut anywhere, parse back
/// to the same parts.
#[cfg(test)]
mod round_trip {
    use super::*;
    use proptest::prelude::*;

    const BOUNDARY: &str = "XyZ";
    const DELIMITER: &[u8] = b"\r\n--XyZ";

    #[derive(Debug, Clone)]
    struct SentPart {
        name: String,
        filename: Option<String>,
        extra: Vec<(String, String)>,
        data: Vec<u8>,
    }

    /// Printable text with quotes, backslashes (not last: it would escape
    /// the closing quote), semicolons and non-ASCII letters.
    fn text() -> impl Strategy<Value = String> {
        "[ -~é日]{0,12}".prop_filter("no trailing backslash", |s| !s.ends_with('\\'))
    }

    /// Data made of random bytes and boundary look-alikes that are not the
    /// delimiter itself.
    fn data() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            Just(b"\r\n--Xy".to_vec()),
            Just(b"\r\n--xyz".to_vec()),
            Just(b"\n--XyZ".to_vec()),
            Just(b"\r--XyZ--".to_vec()),
            Just(b"--XyZ\r\n".to_vec()),
            Just(b"\r\n-XyZ".to_vec()),
            Just(b"\r\n\r\n".to_vec()),
            Just(b"\r\n--X".to_vec()),
        ];
        proptest::collection::vec(piece, 0..6)
            .prop_map(|pieces| pieces.concat())
            .prop_filter("a client picks a boundary not in the data", |d| {
                memchr::memmem::find(d, DELIMITER).is_none()
            })
    }

    fn part() -> impl Strategy<Value = SentPart> {
        let extra =
            proptest::collection::vec(("X-[A-Za-z]{1,8}", "[!-~]([ -~]{0,10}[!-~])?"), 0..3);
        (text(), proptest::option::of(text()), extra, data()).prop_map(
            |(name, filename, extra, data)| SentPart {
                name,
                filename,
                extra,
                data,
            },
        )
    }

    fn quoted(v: &str) -> String {
        format!("\"{}\"", v.replace('"', "\\\""))
    }

    fn serialize(parts: &[SentPart]) -> Vec<u8> {
        let mut body = Vec::new();
        for p in parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            let mut cd = format!("Content-Disposition: form-data; name={}", quoted(&p.name));
            if let Some(f) = &p.filename {
                cd.push_str(&format!("; filename={}", quoted(f)));
            }
            body.extend_from_slice(cd.as_bytes());
            body.extend_from_slice(b"\r\n");
            for (k, v) in &p.extra {
                body.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(&p.data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    type Parsed = (
        Option<String>,
        Option<String>,
        Vec<(String, String)>,
        Vec<u8>,
    );

    fn parse(body: &[u8], cuts: &[usize]) -> Result<Vec<Parsed>, MultipartError> {
        let mut chunks = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            chunks.push(Ok::<_, BodyError>(Bytes::copy_from_slice(
                &body[start..cut],
            )));
            start = cut;
        }
        let mut parser = Multipart::new(futures_util::stream::iter(chunks), BOUNDARY);
        let run = async {
            let mut out = Vec::new();
            while let Some(part) = parser.next_part().await? {
                let extra = part
                    .headers
                    .iter()
                    .filter(|(k, _)| *k != http::header::CONTENT_DISPOSITION)
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
                    .collect();
                let mut data = Vec::new();
                while let Some(chunk) = parser.chunk().await? {
                    data.extend_from_slice(&chunk);
                }
                out.push((
                    part.name(),
                    super::super::name::disposition_filename(&part.headers),
                    extra,
                    data,
                ));
            }
            Ok(out)
        };
        futures_util::FutureExt::now_or_never(run).expect("stream::iter never waits")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn serialized_parts_parse_back_however_the_body_is_cut(
            parts in proptest::collection::vec(part(), 0..5),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let body = serialize(&parts);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut parsed = parse(&body, &cuts).map_err(|e| TestCaseError::fail(e.to_string()))?;
            parsed.iter_mut().for_each(|p| p.2.sort());
            let expected: Vec<Parsed> = parts
                .iter()
                .map(|p| {
                    let mut extra: Vec<_> = p
                        .extra
                        .iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                        .collect();
                    // A HeaderMap groups a repeated name's values.
                    extra.sort();
                    (Some(p.name.clone()), p.filename.clone(), extra, p.data.clone())
                })
                .collect();
            prop_assert_eq!(parsed, expected);
        }
    }
}
