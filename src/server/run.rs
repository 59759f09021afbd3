//! The accept loop: one task per connection, a connection limit, bounded
//! graceful shutdown (hyper-util's recipe), and abort of whatever outlives it.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::conn::{ConnHandle, SharedStream};
use crate::state::AppState;

/// Connection-level settings.
#[derive(Debug, Clone)]
pub(crate) struct ConnSettings {
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) max_connections: Option<usize>,
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    mut stop: watch::Receiver<bool>,
    settings: ConnSettings,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true)
        // Without half-close, hyper ends a busy connection as soon as the
        // client's FIN arrives, dropping the handler mid-fault; with it, a
        // hang sees the close itself and the request is journaled.
        .half_close(true)
        .max_headers(100)
        .max_buf_size(128 * 1024);
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let limit = settings
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n)));
    let mut at_limit = false;

    loop {
        // Take a connection slot first, so that a full server stops accepting
        // and lets the kernel's backlog hold new clients.
        let permit = match &limit {
            None => None,
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => {
                    at_limit = false;
                    Some(p)
                }
                Err(_) => {
                    if !at_limit {
                        tracing::warn!(
                            max_connections = settings.max_connections,
                            "connection limit reached (--max-connections): new connections wait until one closes"
                        );
                        at_limit = true;
                    }
                    tokio::select! {
                        p = Arc::clone(sem).acquire_owned() => p.ok(),
                        _ = stop.changed() => break,
                    }
                }
            },
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        while tasks.try_join_next().is_some() {}
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly
                // rather than spinning on the error.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let stream = Arc::new(tcp);
        let handle = ConnHandle::new(Arc::clone(&stream));
        let state = Arc::clone(&state);
        let service =
            service_fn(move |req| super::handler::handle(Arc::clone(&state), handle.clone(), req));
        let conn = http.serve_connection(TokioIo::new(SharedStream(stream)), service);
        let conn = graceful.watch(conn);
        tasks.spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(settings.shutdown_timeout) => {
            tracing::warn!(
                timeout_ms = settings.shutdown_timeout.as_millis() as u64,
                "shutdown timeout reached; closing connections still in flight"
            );
        }
    }
    tasks.shutdown().await;
}
