//! Carrying out what the rules decided once the route has answered, in one
//! place for every route: the delay (the longest `delay_ms` of the rules
//! that fired), then the answer, or instead a `reset` (closed with a TCP
//! RST), a `hang` (nothing, for a while or until the client leaves), and
//! `truncate` (the full `Content-Length`, half the body, then the close).
//! What each fault means is decided by the applier (`crate::routes::apply`);
//! how it is done to the socket is here.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::BodyExt;

use super::conn::ConnHandle;
use crate::http_util::ResponseBody;
use crate::routes::answer::{Abort, Answer, Finish};

/// How a request ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// A `reset` fault: closed with a TCP RST.
    Reset,
    /// A `hang` fault: nothing was answered.
    Hang,
    /// The client went away mid-request.
    ClientGone,
}

impl Ended {
    /// The error hyper is given to close the connection without an answer.
    pub(crate) fn abort(self) -> Abort {
        Abort(match self {
            Ended::Reset => "reset",
            Ended::Hang => "hang",
            Ended::ClientGone => "client closed the connection",
        })
    }
}

/// Waits `delay_ms`, then carries out `finish`: the answer to send
/// (truncated by [`truncated`] if it says so), or how the connection ends
/// without one (a reset is marked on `conn`; a hang has been waited out).
pub(crate) async fn carry_out(
    finish: Finish,
    delay_ms: u64,
    conn: &ConnHandle,
) -> Result<Answer, Ended> {
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    match finish {
        Finish::Answer(answer) => Ok(answer),
        Finish::Reset => {
            conn.reset_on_close();
            Err(Ended::Reset)
        }
        Finish::Hang(for_ms) => {
            let wait = async {
                match for_ms {
                    Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = wait => {}
                () = conn.closed_by_peer() => {}
            }
            Err(Ended::Hang)
        }
        Finish::ClientGone => Err(Ended::ClientGone),
    }
}

/// Sends the status and headers with the full Content-Length, then half the
/// body, then fails. The body streams through: a file's bytes are not held.
pub(crate) async fn truncated(response: Response<ResponseBody>) -> Response<ResponseBody> {
    use http_body::Body as _;
    let (mut parts, body) = response.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (total, body) = match declared.or_else(|| body.size_hint().exact()) {
        Some(total) => (total, body),
        // A body of unknown length (none of ours) is measured first.
        None => {
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            (bytes.len() as u64, crate::http_util::full(bytes))
        }
    };
    parts
        .headers
        .insert(http::header::CONTENT_LENGTH, HeaderValue::from(total));
    let half = futures_util::stream::unfold((body, total / 2), |(mut body, left)| async move {
        if left == 0 {
            return None;
        }
        let mut data = body.frame().await?.ok()?.into_data().ok()?;
        if data.len() as u64 > left {
            data.truncate(left as usize);
        }
        let left = left - data.len() as u64;
        Some((Ok(http_body::Frame::data(data)), (body, left)))
    });
    // hyper flushes what it has buffered only when the body is pending: wait
    // a moment between the half and the failure, or the half is dropped
    // unsent along with the head.
    let failure = futures_util::stream::once(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<http_body::Frame<Bytes>, crate::http_util::BoxError>(
            "truncated by a fault rule".into(),
        )
    });
    let body =
        http_body_util::StreamBody::new(futures_util::StreamExt::chain(half, failure)).boxed();
    Response::from_parts(parts, body)
}
