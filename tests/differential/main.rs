//! Differential fuzzing of the multipart parser against `multer`.
//!
//! Each case is a generated multipart body (random boundary, parts, header
//! case, quoted, escaped and `filename*` names, preamble, epilogue, boundary
//! look-alikes in the data, sometimes a corruption), fed to both parsers cut
//! into random chunks. What the upload handler keeps — the data and file name
//! of the first part named `file` — must be the same, or both must refuse.
//!
//! Where multer departs from RFC 2046 / RFC 7578 (or from a choice of ours),
//! the case is either rendered a second time for multer in the form multer
//! reads as we do (`Rendered::multer_body`), or the outcome pair is explained
//! by [`explained`], which names the deliberate divergence. Each has a
//! test at the end of this file; the list is in docs/reliability.md (Fuzzing).
//!
//! It reaches our parser through the hidden `aymara_mock::fuzzing` module.
//! `cargo test --test differential` (and plain `cargo test`) runs a fixed seed
//! for a few seconds. A longer run, for CI or by hand: `DIFF_FUZZ_SECS=60
//! DIFF_FUZZ_SEED=random cargo test --release --test differential -- --ignored
//! --exact long --nocapture`.
//! A failing case prints `DIFF_FUZZ_SEED=… DIFF_FUZZ_CASE=…`, which replays it.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aymara_mock::fuzzing::{self, Upload, CLOSE_NOT_CRLF, LF_IN_HEADERS};
use bytes::Bytes;
use futures_util::Stream;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What the upload handler takes from a body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The body is refused (400); ours says why.
    Refused(String),
    /// A well-formed body without a part named `file` (422).
    NoFile,
    /// The first `file` part: its file name and data.
    File {
        filename: Option<String>,
        data: Vec<u8>,
    },
}

impl Outcome {
    fn refused(&self) -> bool {
        matches!(self, Self::Refused(_))
    }
}

/// Our parser's outcome, plus whether it saw a part with no header at all.
#[derive(Debug)]
struct Ours {
    outcome: Outcome,
    headerless_part: bool,
}

/// A body stream that hands out `chunks`, answering `Pending` (and waking
/// itself) before each one, so that a parser sees every cut.
struct Trickle<E> {
    chunks: std::vec::IntoIter<Bytes>,
    ready: bool,
    _error: PhantomData<fn() -> E>,
}

impl<E> Trickle<E> {
    fn new(body: &[u8], cuts: &[usize]) -> Self {
        let mut chunks = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
            let cut = cut.clamp(start, body.len());
            if cut > start {
                chunks.push(Bytes::copy_from_slice(&body[start..cut]));
            }
            start = cut;
        }
        Self {
            chunks: chunks.into_iter(),
            ready: false,
            _error: PhantomData,
        }
    }
}

impl<E> Stream for Trickle<E> {
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !self.ready {
            self.ready = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.ready = false;
        Poll::Ready(self.chunks.next().map(Ok))
    }
}

impl<E> Unpin for Trickle<E> {}

/// Polls `f` to its end. The streams only ever wait for one poll, so a
/// future that is still pending after this many is stuck: a parser bug.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000_000 {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a parser never finished on a body that never waits");
}

/// Our parser, used as the upload handler uses it.
fn ours(body: &[u8], boundary: &str, cuts: &[usize]) -> Ours {
    let read = block_on(fuzzing::first_file(
        Trickle::<Infallible>::new(body, cuts),
        boundary,
    ));
    let outcome = match read.upload {
        Upload::Refused(why) => Outcome::Refused(why),
        Upload::NoFile => Outcome::NoFile,
        Upload::File { filename, data } => Outcome::File { filename, data },
    };
    Ours {
        outcome,
        headerless_part: read.headerless_part,
    }
}

/// multer, read the same way.
fn theirs(body: &[u8], boundary: &str, cuts: &[usize]) -> Outcome {
    block_on(async {
        let stream = Trickle::<std::io::Error>::new(body, cuts);
        let mut parser = multer::Multipart::new(stream, boundary);
        let mut file = None;
        loop {
            let field = match parser.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return Outcome::Refused(e.to_string()),
            };
            if file.is_some() || field.name() != Some("file") {
                continue; // dropping the field lets `next_field` skip its data
            }
            let filename = field.file_name().map(str::to_owned);
            match field.bytes().await {
                Ok(data) => {
                    file = Some(Outcome::File {
                        filename,
                        data: data.to_vec(),
                    })
                }
                Err(e) => return Outcome::Refused(e.to_string()),
            }
        }
        file.unwrap_or(Outcome::NoFile)
    })
}

/// The deliberate divergence that explains `ours` against `theirs` on
/// `body`, if any. Each answer is checked against the body or our own
/// refusal reason, so that an unrelated difference is never excused.
fn explained(body: &[u8], boundary: &str, ours: &Ours, theirs: &Outcome) -> Option<&'static str> {
    let dash = format!("--{boundary}");
    // D1: after the closing `--boundary--` RFC 2046 allows only padding, then
    // CRLF or the end. multer stops at `--boundary--` whatever follows; we refuse.
    if let Outcome::Refused(why) = &ours.outcome {
        if why == CLOSE_NOT_CRLF && !theirs.refused() && close_followed_by_junk(body, &dash) {
            return Some("D1 close delimiter followed by junk");
        }
        // D5: a header line that ends in LF alone. multer reads headers up to
        // the first CRLFCRLF (and lets httparse take LF lines inside them).
        if why == LF_IN_HEADERS {
            return Some("D5 LF-only header line");
        }
    }
    // D7: a part with no header (RFC 2046 allows it; for form-data it has no
    // name). multer looks for CRLFCRLF after the boundary line and so reads
    // into the data, or the next part, as headers.
    if ours.headerless_part {
        return Some("D7 header-less part");
    }
    // D10: an unquoted value (not a token, so malformed) runs to the next
    // `;`, spaces and all; multer stops at the first space.
    if let (
        Outcome::File {
            filename: Some(ours_name),
            data: ours_data,
        },
        Outcome::File {
            filename: Some(their_name),
            data: their_data,
        },
    ) = (&ours.outcome, theirs)
    {
        let cut_at_space = ours_name
            .split_once(' ')
            .is_some_and(|(first, _)| first == their_name);
        if ours_data == their_data && cut_at_space && sent_unquoted(body, ours_name) {
            return Some("D10 unquoted value with spaces");
        }
    }
    // D6: a file name that is not UTF-8 is decoded lossily; multer drops it.
    if let (
        Outcome::File {
            filename: Some(ours_name),
            data: ours_data,
        },
        Outcome::File {
            filename: None,
            data: their_data,
        },
    ) = (&ours.outcome, theirs)
    {
        if ours_data == their_data && ours_name.contains('\u{fffd}') {
            return Some("D6 file name not UTF-8");
        }
    }
    // D12: a quoted value without its closing quote. Ours runs to the next
    // quote or the header's end; multer drops the value, or finds `name=`
    // inside it. Either reading is of a broken header.
    if !ours.outcome.refused() && !theirs.refused() && unbalanced_quotes(body) {
        return Some("D12 unterminated quoted value");
    }
    // D11: parameters are separated by `;`. In `form-data name=file` the
    // key is `form-data name`, so there is no `name`; multer takes `name`
    // after any whitespace, and ignores `filename` right after a quote.
    if !ours.outcome.refused() && !theirs.refused() && param_without_semicolon(body) {
        return Some("D11 parameter not separated by ';'");
    }
    // D8: the first `--boundary` is neither at the body's start nor at the
    // start of a line: we keep looking for one that is, multer takes it.
    let first = memchr::memmem::find(body, dash.as_bytes());
    if first.is_some_and(|at| at > 0 && !body[..at].ends_with(b"\r\n")) {
        return Some("D8 first boundary inside a preamble line");
    }
    None
}

/// Whether a `name` or `filename` key somewhere in `body` does not follow a
/// `;` (and whitespace): where the two parsers split parameters apart
/// differently (`form-data name=…`, `name="a"filename=…`).
fn param_without_semicolon(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, b"name").any(|at| {
        let mut before = &body[..at];
        if before.to_ascii_lowercase().ends_with(b"file") {
            before = &before[..before.len() - 4];
        }
        match before.last() {
            None => false,
            Some(b) if b.is_ascii_alphanumeric() => false, // inside another word
            Some(_) => !before.trim_ascii_end().ends_with(b";"),
        }
    })
}

/// Whether a header line with a `name` or `filename` parameter has an odd
/// number of quotes that are not escaped.
fn unbalanced_quotes(body: &[u8]) -> bool {
    body.split(|b| *b == b'\n').any(|line| {
        let quotes = (0..line.len())
            .filter(|&i| line[i] == b'"' && (i == 0 || line[i - 1] != b'\\'))
            .count();
        memchr::memmem::find(&line.to_ascii_lowercase(), b"name").is_some() && quotes % 2 == 1
    })
}

/// Whether `value` is in `body` right after `=` (and spaces): unquoted.
fn sent_unquoted(body: &[u8], value: &str) -> bool {
    memchr::memmem::find_iter(body, value.as_bytes())
        .any(|at| body[..at].trim_ascii_end().ends_with(b"="))
}

/// Whether the close delimiter multer stops at (the first `--boundary--` at
/// the body's start or after CRLF) is followed by anything but padding and
/// CRLF or the end.
fn close_followed_by_junk(body: &[u8], dash: &str) -> bool {
    let close = format!("{dash}--");
    let at = if body.starts_with(close.as_bytes()) {
        Some(0)
    } else {
        memchr::memmem::find(body, format!("\r\n{close}").as_bytes()).map(|at| at + 2)
    };
    let Some(at) = at else { return false };
    let rest = &body[at + close.len()..];
    let rest = &rest[rest
        .iter()
        .position(|b| *b != b' ' && *b != b'\t')
        .unwrap_or(rest.len())..];
    !(rest.is_empty() || rest.starts_with(b"\r\n"))
}

// ---------------------------------------------------------------------------
// The generator.

/// One generated case: the body, and the same body as multer must see it to
/// read what RFC 7578 (and we) read.
#[derive(Debug)]
struct Rendered {
    boundary: String,
    body: Vec<u8>,
    multer_body: Vec<u8>,
    ours_cuts: Vec<usize>,
    multer_cuts: Vec<usize>,
}

/// RFC 2046 `bchars`, less space (allowed, but not last; kept out for simplicity).
const BCHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";

fn boundary(rng: &mut StdRng) -> String {
    let len = match rng.gen_range(0..4) {
        0 => rng.gen_range(1..=4),
        1 => 70,
        _ => rng.gen_range(1..=40),
    };
    (0..len)
        .map(|_| BCHARS[rng.gen_range(0..BCHARS.len())] as char)
        .collect()
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &[&'a T]) -> &'a T {
    items[rng.gen_range(0..items.len())]
}

/// A parameter value: ASCII, separators, quotes, backslashes and non-ASCII
/// letters. Never contains `name` (multer finds `name=` inside other values:
/// D9) nor ends in a backslash (which would escape the closing quote).
fn value(rng: &mut StdRng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "b",
        "Z",
        "0",
        "7",
        ".",
        "-",
        "_",
        " ",
        ";",
        "\"",
        "\\",
        "/",
        "%",
        "'",
        "*",
        "=",
        ",",
        "é",
        "日",
        "vidéo",
        ".mp4",
        "C:\\dir\\",
        "%41",
        "x y",
    ];
    loop {
        let n = rng.gen_range(0..8);
        let v: String = (0..n).map(|_| pick(rng, PIECES)).collect();
        if !v.to_ascii_lowercase().contains("name") && !v.ends_with('\\') {
            return v;
        }
    }
}

fn is_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b))
}

fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\\\""))
}

/// A parameter key in the case RFC 7578 senders use, or (D3) another case,
/// which we read and multer does not: multer is shown the lower case.
fn key(rng: &mut StdRng, key: &str) -> (String, String) {
    let sent = match rng.gen_range(0..10) {
        0 => key.to_ascii_uppercase(),
        1 => {
            let mut k = key.to_owned();
            k[..1].make_ascii_uppercase();
            k
        }
        _ => key.to_owned(),
    };
    (sent, key.to_owned())
}

/// `key=value`, quoted or as a token, with optional spaces around `=`.
fn param(rng: &mut StdRng, key: &str, value: &str) -> String {
    let eq = pick(rng, &["=", "=", "=", " = ", "= "]);
    if is_token(value) && rng.gen_bool(0.3) {
        format!("{key}{eq}{value}")
    } else {
        format!("{key}{eq}{}", quoted(value))
    }
}

/// A `Content-Disposition` value, as sent and as multer must see it.
fn disposition(rng: &mut StdRng, name: Option<&str>) -> (String, String) {
    let mut sent =
        vec![pick(rng, &["form-data", "form-data", "Form-Data", "attachment"]).to_owned()];
    let mut seen = sent.clone();
    let mut params: Vec<(String, String)> = Vec::new();
    if let Some(name) = name {
        let (k, k_multer) = key(rng, "name");
        params.push((param(rng, &k, name), param(rng, &k_multer, name)));
    }
    match rng.gen_range(0..6) {
        0 => {}
        1 => {
            // D4: `filename*` (RFC 5987) wins over `filename`; multer reads
            // only `filename`, so it is shown the decoded name as that.
            let decoded = value(rng);
            let encoded =
                percent_encoding::utf8_percent_encode(&decoded, percent_encoding::NON_ALPHANUMERIC);
            let (k, _) = key(rng, "filename*");
            let ext = format!("{k}=UTF-8''{encoded}");
            let mut pair = vec![(ext, param(rng, "filename", &decoded))];
            if rng.gen_bool(0.5) {
                let fallback = value(rng);
                let plain = (param(rng, "filename", &fallback), String::new());
                if rng.gen_bool(0.5) {
                    pair.insert(0, plain);
                } else {
                    pair.push(plain);
                }
            }
            params.extend(pair);
        }
        _ => {
            let filename = value(rng);
            let (k, k_multer) = key(rng, "filename");
            params.push((param(rng, &k, &filename), param(rng, &k_multer, &filename)));
        }
    }
    if rng.gen_bool(0.1) {
        params.push(("size=3".to_owned(), "size=3".to_owned()));
    }
    // Order does not matter to either parser.
    if rng.gen_bool(0.3) {
        params.reverse();
    }
    for (s, m) in params {
        sent.push(s);
        if !m.is_empty() {
            seen.push(m);
        }
    }
    let sep = pick(rng, &["; ", ";", " ; "]);
    (sent.join(sep), seen.join(sep))
}

/// Data: random bytes and boundary look-alikes. The look-alikes that begin
/// with the whole delimiter (`\r\n--B…`) end the part there, in both parsers.
fn data(rng: &mut StdRng, boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(0..5) {
        let b = boundary.as_bytes();
        let prefix = &b[..rng.gen_range(0..b.len())];
        let piece: Vec<u8> = match rng.gen_range(0..60) {
            0 => [b"\r\n--", prefix].concat(),
            1 => [b"\n--", b].concat(),
            2 => [b"\r--", b].concat(),
            3 => [b"--", b].concat(),
            4 => [b"\r\n-", b].concat(),
            // These three end the part: the body is cut short or refused.
            5 => [b"\r\n--", b, b"x"].concat(),
            6 => [b"\r\n--", b, b"--garbage"].concat(),
            7 if rng.gen_bool(0.5) => [b"\r\n--", b, b"--"].concat(),
            8 => [b"\r\n--", &b.to_ascii_lowercase()[..], b"\r\n"].concat(),
            9 => b"\r\n\r\n".to_vec(),
            10 if rng.gen_bool(0.5) => [b"\r\n--", b, b" \t\r\nX-Smuggled: 1\r\n\r\n"].concat(),
            11..=14 => {
                let n = rng.gen_range(0..3000);
                (0..n).map(|_| rng.gen()).collect()
            }
            _ => {
                let n = rng.gen_range(0..64);
                (0..n).map(|_| rng.gen()).collect()
            }
        };
        out.extend(piece);
    }
    out
}

/// A header name in some case (header names are case-insensitive).
fn header_name(rng: &mut StdRng, name: &str) -> String {
    match rng.gen_range(0..4) {
        0 => name.to_ascii_lowercase(),
        1 => name.to_ascii_uppercase(),
        2 => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect(),
        _ => name.to_owned(),
    }
}

/// A part's header block (without the blank line), as sent and for multer.
fn headers(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let mut sent = Vec::new();
    let mut multer = Vec::new();
    let mut line = |sent_line: &str, multer_line: Option<&str>| {
        sent.extend_from_slice(sent_line.as_bytes());
        sent.extend_from_slice(b"\r\n");
        if let Some(m) = multer_line {
            multer.extend_from_slice(m.as_bytes());
            multer.extend_from_slice(b"\r\n");
        }
    };
    if rng.gen_bool(0.3) {
        line(
            "Content-Type: application/octet-stream",
            Some("Content-Type: application/octet-stream"),
        );
    }
    if rng.gen_bool(0.95) {
        let name = match rng.gen_range(0..10) {
            0..=4 => Some("file".to_owned()),
            5 => None,
            6 => Some(pick(rng, &["File", "file2", "files", "", "fi le"]).to_owned()),
            _ => Some(value(rng)),
        };
        let (sent_cd, multer_cd) = disposition(rng, name.as_deref());
        let cd = header_name(rng, "Content-Disposition");
        let colon = pick(rng, &[": ", ":", ":  "]);
        line(
            &format!("{cd}{colon}{sent_cd}"),
            Some(&format!("{cd}{colon}{multer_cd}")),
        );
        if rng.gen_bool(0.1) {
            // D2: a second Content-Disposition. We take the first, as Go's
            // mime/multipart and Python's email do; multer takes the last,
            // so it is not shown the second.
            let other = pick(rng, &["file", "other"]);
            let (second, _) = disposition(rng, Some(other));
            line(&format!("Content-Disposition: {second}"), None);
        }
    }
    if rng.gen_bool(0.2) {
        let x = format!(
            "{}: {}",
            header_name(rng, "X-Extra"),
            value(rng).replace(['"', '\\'], "")
        );
        line(&x, Some(&x));
    }
    if rng.gen_bool(0.03) {
        // An obs-fold continuation line.
        line(" folded", Some(" folded"));
    }
    (sent, multer)
}

/// One case, from its own seed.
fn generate(seed: u64) -> Rendered {
    let mut rng = StdRng::seed_from_u64(seed);
    let boundary = boundary(&mut rng);
    let dash = format!("--{boundary}");
    let mut body = Vec::new();
    let mut multer = Vec::new();
    let both = |body: &mut Vec<u8>, multer: &mut Vec<u8>, bytes: &[u8]| {
        body.extend_from_slice(bytes);
        multer.extend_from_slice(bytes);
    };
    if rng.gen_bool(0.3) {
        // A preamble ends in CRLF; it never holds `--boundary` (D8).
        let pre = value(&mut rng).replace(&dash, "");
        let pre = if pre.contains(&dash) {
            String::new()
        } else {
            pre
        };
        both(&mut body, &mut multer, format!("{pre}\r\n").as_bytes());
    }
    let lf_headers = rng.gen_bool(0.04);
    for _ in 0..rng.gen_range(0..5) {
        both(&mut body, &mut multer, dash.as_bytes());
        if rng.gen_bool(0.1) {
            both(
                &mut body,
                &mut multer,
                pick(&mut rng, &[" ", "\t", "  \t"]).as_bytes(),
            );
        }
        both(&mut body, &mut multer, b"\r\n");
        let (mut sent, multer_head) = if rng.gen_bool(0.005) {
            (Vec::new(), Vec::new()) // D7: no header at all
        } else {
            headers(&mut rng)
        };
        if lf_headers {
            // D5: header lines that end in LF alone.
            sent = sent.iter().copied().filter(|b| *b != b'\r').collect();
        }
        body.extend_from_slice(&sent);
        multer.extend_from_slice(&multer_head);
        body.extend_from_slice(if lf_headers { b"\n" } else { b"\r\n" });
        multer.extend_from_slice(b"\r\n");
        let d = data(&mut rng, &boundary);
        both(&mut body, &mut multer, &d);
        both(&mut body, &mut multer, b"\r\n");
    }
    both(&mut body, &mut multer, format!("{dash}--").as_bytes());
    let epilogue = match rng.gen_range(0..40) {
        0 => String::new(),
        1 => "\r\n".to_owned(),
        2 => format!("\r\n{}", value(&mut rng)),
        3 => format!(" \t\r\n{dash}\r\n\r\nafter"),
        4 => "garbage".to_owned(), // D1
        5 => "\r".to_owned(),      // D1
        6 => "\r\n\r\n".to_owned(),
        _ => "\r\n".to_owned(),
    };
    both(&mut body, &mut multer, epilogue.as_bytes());
    if lf_headers {
        // multer is shown the same LF lines: only the outcome is explained.
        multer = body.clone();
    }
    // A corruption, where both bodies are one.
    if body == multer && !body.is_empty() && rng.gen_bool(0.15) {
        // Not inside a Content-Disposition line: broken parameters are
        // readings of a broken header (D10-D12), and would crowd out the rest.
        let mut at = rng.gen_range(0..body.len());
        for _ in 0..10 {
            if !in_disposition_line(&body, at) {
                break;
            }
            at = rng.gen_range(0..body.len());
        }
        match rng.gen_range(0..4) {
            0 => body.truncate(at),
            1 => body[at] = rng.gen(),
            2 => {
                body.remove(at);
            }
            _ => {
                let junk: &[u8] = pick(&mut rng, &[&b"\r\n"[..], b"\n", b"--", b"\r\n--"]);
                body.splice(at..at, junk.iter().copied()).for_each(drop);
            }
        }
        multer = body.clone();
    }
    if rng.gen_bool(0.03) {
        // The whole body with LF line ends.
        body = replace_crlf(&body);
        multer = replace_crlf(&multer);
    }
    let ours_cuts = cuts(&mut rng, body.len());
    let multer_cuts = cuts(&mut rng, multer.len());
    Rendered {
        boundary,
        body,
        multer_body: multer,
        ours_cuts,
        multer_cuts,
    }
}

/// Whether byte `at` of `body` is on a line that names Content-Disposition.
fn in_disposition_line(body: &[u8], at: usize) -> bool {
    let start = body[..at]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let end = body[at..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(body.len(), |i| at + i);
    memchr::memmem::find(
        &body[start..end].to_ascii_lowercase(),
        b"content-disposition",
    )
    .is_some()
}

fn replace_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(b"\r\n") {
            i += 1;
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

/// Offsets to cut a body of `len` bytes at: none, every byte, or random.
fn cuts(rng: &mut StdRng, len: usize) -> Vec<usize> {
    match rng.gen_range(0..6) {
        0 => Vec::new(),
        1 if len < 2000 => (1..len).collect(),
        _ => {
            let max = pick(rng, &[&3usize, &17, &100, &len.max(1)]).to_owned();
            let mut at = 0;
            let mut out = Vec::new();
            while at < len {
                at += rng.gen_range(1..=max);
                out.push(at);
            }
            out
        }
    }
}

/// The case number `case` of a run seeded with `seed`.
fn case_seed(seed: u64, case: u64) -> u64 {
    seed ^ case.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Runs one case; on an unexplained divergence, a message that replays it.
fn run_case(seed: u64, case: u64, tally: &mut Tally) -> Result<(), String> {
    let r = generate(case_seed(seed, case));
    let ours = ours(&r.body, &r.boundary, &r.ours_cuts);
    let theirs = theirs(&r.multer_body, &r.boundary, &r.multer_cuts);
    // Our answer must not depend on how the body is cut.
    let whole = self::ours(&r.body, &r.boundary, &[]);
    if whole.outcome != ours.outcome {
        return Err(format!(
            "our parser depends on the chunking: {:?} whole, {:?} cut at {:?}\n{}",
            whole.outcome,
            ours.outcome,
            r.ours_cuts,
            replay(seed, case, &r)
        ));
    }
    tally.count(&ours.outcome);
    let same = match (&ours.outcome, &theirs) {
        (Outcome::Refused(_), Outcome::Refused(_)) => true,
        (a, b) => a == b,
    };
    if same {
        return Ok(());
    }
    match explained(&r.body, &r.boundary, &ours, &theirs) {
        Some(name) => {
            *tally.explained.entry(name).or_default() += 1;
            Ok(())
        }
        None => Err(format!(
            "unexplained divergence:\n  ours:   {:?}\n  multer: {theirs:?}\n{}",
            ours.outcome,
            replay(seed, case, &r)
        )),
    }
}

fn replay(seed: u64, case: u64, r: &Rendered) -> String {
    format!(
        "  boundary: {:?}\n  body:        b\"{}\"\n  multer body: b\"{}\"\n  replay: DIFF_FUZZ_SEED={seed} DIFF_FUZZ_CASE={case} \
         cargo test --test differential -- --ignored --exact replay_case --nocapture",
        r.boundary,
        r.body.escape_ascii(),
        r.multer_body.escape_ascii()
    )
}

/// What a run covered, so that a generator that stopped producing, say,
/// `file` parts is noticed.
#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    refused: u64,
    no_file: u64,
    file: u64,
    explained: std::collections::BTreeMap<&'static str, u64>,
}

impl Tally {
    fn count(&mut self, outcome: &Outcome) {
        self.cases += 1;
        match outcome {
            Outcome::Refused(_) => self.refused += 1,
            Outcome::NoFile => self.no_file += 1,
            Outcome::File { .. } => self.file += 1,
        }
    }
}

/// Runs cases from `seed` until `cases` are done or `time` is up.
fn run(seed: u64, cases: u64, time: Duration) -> Tally {
    let start = Instant::now();
    let mut tally = Tally::default();
    for case in 0..cases {
        if start.elapsed() > time {
            break;
        }
        if let Err(msg) = run_case(seed, case, &mut tally) {
            panic!("differential fuzzing, seed {seed}, case {case}:\n{msg}");
        }
    }
    tally
}

fn env_seed() -> u64 {
    match std::env::var("DIFF_FUZZ_SEED").ok().as_deref() {
        None | Some("") => 17,
        Some("random") => rand::random(),
        Some(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("DIFF_FUZZ_SEED={s}: not a number")),
    }
}

#[test]
fn ours_and_multer_agree_on_generated_bodies() {
    let tally = run(17, 4000, Duration::from_secs(20));
    // Every kind of outcome is reached, and most cases are not explained away.
    assert!(tally.cases >= 1000, "{tally:?}");
    assert!(tally.file * 4 > tally.cases, "{tally:?}");
    assert!(tally.no_file > 0 && tally.refused > 0, "{tally:?}");
    let explained: u64 = tally.explained.values().sum();
    assert!(explained * 5 < tally.cases, "{tally:?}");
}

/// `DIFF_FUZZ_SECS` (default 60) seconds from `DIFF_FUZZ_SEED` (a number,
/// or `random`; default 17).
#[test]
#[ignore = "long; run by .ci/run with DIFF_FUZZ_SECS and DIFF_FUZZ_SEED"]
fn long() {
    let seed = env_seed();
    let secs = std::env::var("DIFF_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    println!("differential fuzzing: DIFF_FUZZ_SEED={seed} for {secs} s");
    let tally = run(seed, u64::MAX, Duration::from_secs(secs));
    println!("differential fuzzing: seed {seed}: {tally:?}");
    assert!(tally.file > 0, "{tally:?}");
}

/// Replays `DIFF_FUZZ_CASE` of `DIFF_FUZZ_SEED`, printing both outcomes.
#[test]
#[ignore = "replays one case named by DIFF_FUZZ_SEED and DIFF_FUZZ_CASE"]
fn replay_case() {
    let seed = env_seed();
    let case = std::env::var("DIFF_FUZZ_CASE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let r = generate(case_seed(seed, case));
    println!("{}", replay(seed, case, &r));
    println!("ours:   {:?}", ours(&r.body, &r.boundary, &r.ours_cuts));
    println!(
        "multer: {:?}",
        theirs(&r.multer_body, &r.boundary, &r.multer_cuts)
    );
    run_case(seed, case, &mut Tally::default()).unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------
// The deliberate divergences, one test each: what we read, and what multer
// reads instead.

/// Both parsers on one body, read whole and a byte at a time (ours must not
/// care; multer is given the same cuts).
fn both_on(body: &[u8]) -> (Outcome, Outcome) {
    let bytewise: Vec<usize> = (1..body.len()).collect();
    let ours_whole = ours(body, "B", &[]).outcome;
    assert_eq!(ours_whole, ours(body, "B", &bytewise).outcome);
    (ours_whole, theirs(body, "B", &bytewise))
}

fn file(filename: Option<&str>, data: &[u8]) -> Outcome {
    Outcome::File {
        filename: filename.map(str::to_owned),
        data: data.to_vec(),
    }
}

#[test]
fn d1_a_close_delimiter_followed_by_junk_is_refused_not_cut() {
    // A file whose data holds `\r\n--B--garbage`: multer ends the body there
    // and keeps "abc"; a 200 for a body that is not one would store a cut file.
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n\
abc\r\n--B--garbage\r\nmore data\r\n--B--\r\n";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, Outcome::Refused(CLOSE_NOT_CRLF.to_owned()));
    assert_eq!(multer, file(Some("f"), b"abc"));
    // Padding then CRLF, or the end, is a close delimiter as RFC 2046 says.
    for tail in [&b""[..], b"\r\n", b" \t\r\nepilogue --B\r\n"] {
        let body = [
            &b"--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--B--"[..],
            tail,
        ]
        .concat();
        assert_eq!(both_on(&body), (file(None, b"abc"), file(None, b"abc")));
    }
}

#[test]
fn d2_of_two_content_dispositions_the_first_counts() {
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"first\"\r\n\
content-disposition: form-data; name=\"other\"; filename=\"second\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(Some("first"), b"abc"));
    assert_eq!(multer, Outcome::NoFile, "multer takes the last one");
}

#[test]
fn d3_parameter_names_are_case_insensitive() {
    let body = b"--B\r\nContent-Disposition: form-data; Name=\"file\"; FILENAME=\"a.txt\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(Some("a.txt"), b"abc"));
    assert_eq!(
        multer,
        Outcome::NoFile,
        "multer matches `name` in lower case only"
    );
}

#[test]
fn d4_filename_star_wins_over_filename() {
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"fallback.mp4\"; \
filename*=UTF-8''vid%C3%A9o.mp4\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(Some("vid\u{e9}o.mp4"), b"abc"));
    assert_eq!(multer, file(Some("fallback.mp4"), b"abc"));
    // multer loses the name altogether when `filename*` comes first.
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename*=UTF-8''a%20b; \
filename=\"a b\"\r\n\r\nabc\r\n--B--";
    assert_eq!(
        both_on(body),
        (file(Some("a b"), b"abc"), file(None, b"abc"))
    );
}

#[test]
fn d5_a_header_line_ending_in_lf_alone_is_refused() {
    // multer reads headers up to the first CRLFCRLF, here the data's.
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"\n\nabc\r\n\r\nxyz\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, Outcome::Refused(LF_IN_HEADERS.to_owned()));
    assert_eq!(multer, file(None, b"xyz"));
}

#[test]
fn d6_a_filename_that_is_not_utf8_is_decoded_lossily() {
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"caf\xe9.txt\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(Some("caf\u{fffd}.txt"), b"abc"));
    assert_eq!(multer, file(None, b"abc"));
}

#[test]
fn d7_a_part_without_headers_is_read_as_a_nameless_part() {
    // RFC 2046 allows a part with no header: its blank line follows the
    // boundary line at once. multer looks for CRLFCRLF, and takes the next
    // part's headers and data as this part's headers.
    let body = b"--B\r\n\r\nnameless\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(None, b"abc"));
    assert_eq!(multer, Outcome::NoFile);
}

#[test]
fn d8_the_first_boundary_must_begin_a_line() {
    // `x--B` in the preamble is not a boundary (RFC 2046: it follows a CRLF
    // or opens the body); multer takes it, and refuses what follows.
    let body = b"x--B\r\n--B\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(None, b"abc"));
    assert!(multer.refused(), "{multer:?}");
}

#[test]
fn d9_name_is_a_parameter_not_a_substring() {
    // multer finds ` name=` inside the quoted filename.
    let body = b"--B\r\nContent-Disposition: form-data; filename=\"my name=file x\"; name=\"other\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, Outcome::NoFile);
    assert_eq!(multer, file(Some("my name=file x"), b"abc"));
}

#[test]
fn d10_an_unquoted_value_runs_to_the_next_semicolon() {
    // Not a token, so not RFC 7578; a sloppy client's name keeps its spaces.
    let body = b"--B\r\nContent-Disposition: form-data; name=file; filename=my file.txt\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(Some("my file.txt"), b"abc"));
    assert_eq!(multer, file(Some("my"), b"abc"));
}

#[test]
fn d11_parameters_are_separated_by_semicolons() {
    let body = b"--B\r\nContent-Disposition: form-data name=\"file\"\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, Outcome::NoFile);
    assert_eq!(multer, file(None, b"abc"));
    let body =
        b"--B\r\nContent-Disposition: form-data; name=\"file\"filename=\"a\"\r\n\r\nabc\r\n--B--";
    assert_eq!(both_on(body), (file(Some("a"), b"abc"), file(None, b"abc")));
}

#[test]
fn d12_an_unterminated_quoted_value_runs_to_the_header_end() {
    let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\r\n\r\nabc\r\n--B--";
    let (ours, multer) = both_on(body);
    assert_eq!(ours, file(Some("a.txt"), b"abc"));
    assert_eq!(multer, file(None, b"abc"));
}
