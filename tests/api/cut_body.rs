//! A request body that ends before its framing says it does — the client died,
//! or a proxy cut the request — is a cut request even when the multipart body
//! inside it is complete (final boundary sent): nothing is stored, no rule
//! fires at `complete`, and the journal shows no answer. Each HTTP framing
//! (Content-Length, chunked with a short chunk, chunked without its
//! terminator), each way of leaving (half-close, full close).

use std::time::Duration;

use aymara_mock::{RequestRecord, Rule};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length` 1000 bytes more than is sent.
    LengthShort,
    /// One chunk declared 100 bytes longer than is sent.
    ShortChunk,
    /// Whole chunks, but never the final `0` chunk.
    NoTerminator,
    /// Correct framing: the control case, stored.
    Complete,
}

#[derive(Debug, Clone, Copy)]
enum Leave {
    /// `shutdown(SHUT_WR)`, then read what the server answers.
    HalfClose,
    /// Close the socket.
    Close,
}

/// The request bytes: head and body, framed as `framing` says.
fn request(addr: std::net::SocketAddr, body: &[u8], framing: Framing) -> Vec<u8> {
    let head = |framing_header: String| {
        format!(
            "POST /v2/files/-/uploads HTTP/1.1\r\nHost: {addr}\r\nx-api-key: k\r\n\
             Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{framing_header}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut out;
    match framing {
        Framing::LengthShort => {
            out = head(format!("Content-Length: {}", body.len() + 1000));
            out.extend_from_slice(body);
        }
        Framing::Complete => {
            out = head(format!("Content-Length: {}", body.len()));
            out.extend_from_slice(body);
        }
        Framing::ShortChunk => {
            out = head("Transfer-Encoding: chunked".to_owned());
            out.extend_from_slice(format!("{:x}\r\n", body.len() + 100).as_bytes());
            out.extend_from_slice(body);
        }
        Framing::NoTerminator => {
            out = head("Transfer-Encoding: chunked".to_owned());
            for chunk in body.chunks(4096) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out
}

/// Sends the request, leaves as told, and returns what the server answered
/// before it closed (empty for no answer).
async fn send_and_leave(app: &TestApp, request: &[u8], leave: Leave) -> Vec<u8> {
    let mut stream = TcpStream::connect(app.server.address()).await.unwrap();
    stream.write_all(request).await.unwrap();
    match leave {
        Leave::HalfClose => {
            stream.shutdown().await.unwrap();
            let mut answer = Vec::new();
            // A reset instead of a close is also "no answer".
            let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
                .await
                .expect("the server closes a half-closed, cut request");
            answer
        }
        Leave::Close => {
            drop(stream);
            Vec::new()
        }
    }
}

/// The journal once it holds `n` entries (polled, bounded).
async fn journal_of(app: &TestApp, n: usize) -> Vec<RequestRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let requests = app.server.requests().await;
        if requests.len() >= n || tokio::time::Instant::now() >= deadline {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The file of `size` bytes in a complete multipart body, with an epilogue.
fn complete_multipart(size: usize) -> (Vec<u8>, Vec<u8>) {
    let content = data(size);
    let mut body = multipart_body("cut.bin", Some("application/octet-stream"), &content);
    body.extend_from_slice(b"an epilogue, which is part of the body too");
    (content, body)
}

async fn assert_cut_leaves_nothing(framing: Framing, leave: Leave, size: usize) {
    let app = spawn_app().await;
    // A rule at `complete` that would keep the upload: it must not fire for
    // a body that never completed.
    app.server
        .add_rule(
            Rule::from_json(
                r#"{"id": "at-complete", "phase": "complete", "respond": {"status": 500}, "keep_upload": true}"#,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let (_, body) = complete_multipart(size);
    let answer = send_and_leave(&app, &request(app.server.address(), &body, framing), leave).await;
    let what = format!("{framing:?}, {leave:?}, {size} bytes");
    assert!(
        answer.is_empty(),
        "{what}: answered {:?}",
        String::from_utf8_lossy(&answer)
    );

    let journal = journal_of(&app, 1).await;
    assert_eq!(journal.len(), 1, "{what}: {journal:?}");
    let entry = &journal[0];
    assert_eq!(entry.status, None, "{what}: journaled as answered");
    assert!(entry.cut, "{what}: not journaled as cut");
    // Every byte sent was read (chunk framing is not counted).
    assert_eq!(entry.body_bytes, body.len() as u64, "{what}");
    assert_eq!(entry.upload, None, "{what}: journaled as stored");
    assert_eq!(entry.rule, None, "{what}: a rule fired at `complete`");
    let rules = app.server.rules().await;
    assert_eq!((rules[0].matched, rules[0].fired), (0, 0), "{what}");
    assert!(app.server.uploads().await.is_empty(), "{what}");
    assert!(
        eventually(Duration::from_secs(5), || app.stored_files().is_empty()).await,
        "{what}: left {:?}",
        app.stored_files()
    );
}

/// Every way of leaving, with a file kept in memory until committed (small)
/// and one streamed to a temp file (large).
async fn assert_every_cut_leaves_nothing(framing: Framing) {
    for leave in [Leave::HalfClose, Leave::Close] {
        for size in [100, 3 << 20] {
            assert_cut_leaves_nothing(framing, leave, size).await;
        }
    }
}

#[tokio::test]
async fn content_length_short_with_the_final_boundary_sent_stores_nothing() {
    assert_every_cut_leaves_nothing(Framing::LengthShort).await;
}

#[tokio::test]
async fn a_short_chunk_with_the_final_boundary_sent_stores_nothing() {
    assert_every_cut_leaves_nothing(Framing::ShortChunk).await;
}

#[tokio::test]
async fn chunks_without_the_terminating_chunk_store_nothing() {
    assert_every_cut_leaves_nothing(Framing::NoTerminator).await;
}

#[tokio::test]
async fn the_same_bodies_framed_whole_are_stored_with_their_epilogue_read() {
    for framing in [Framing::Complete, Framing::NoTerminator] {
        let app = spawn_app().await;
        let (content, body) = complete_multipart(3 << 20);
        let mut bytes = request(app.server.address(), &body, framing);
        if matches!(framing, Framing::NoTerminator) {
            bytes.extend_from_slice(b"0\r\n\r\n"); // now whole
        }
        // Half-closing after a whole request still gets the answer.
        let answer = send_and_leave(&app, &bytes, Leave::HalfClose).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{framing:?}: {answer}");
        let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let uploads = app.server.uploads().await;
        assert_eq!(uploads.len(), 1, "{framing:?}");
        assert_eq!(uploads[0].file_uuid, json["file_uuid"].as_str().unwrap());
        assert_eq!(uploads[0].sha256, sha256_hex(&content), "{framing:?}");
        let journal = journal_of(&app, 1).await;
        assert_eq!(journal[0].status, Some(200), "{framing:?}");
        assert!(!journal[0].cut, "{framing:?}");
    }
}

#[tokio::test]
async fn an_epilogue_that_stalls_gets_408_and_stores_nothing() {
    let app = spawn_with(|b| b.body_timeout(Duration::from_millis(300))).await;
    let (_, body) = complete_multipart(1000);
    let bytes = request(app.server.address(), &body, Framing::LengthShort);
    let (status, _, answer) = raw_exchange(app.server.address(), &bytes).await.unwrap();
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&answer));
    assert!(app.server.uploads().await.is_empty());
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
}
