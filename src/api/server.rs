//! The server that carries the API: what clients may hold of it.
//!
//! A request head must arrive in time (which also closes idle keep-alive
//! connections), a request must be answered in time (see `within` in the
//! routes), and only so many connections are open at once, so no crowd of
//! idle sockets can use up the file descriptors the service needs for its
//! own peers.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

/// What clients may hold of the server; [`Limits::default`] is what `status serve` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection must deliver a whole request head within this long of
    /// opening, or of its previous answer: slow clients and idle keep-alive
    /// connections are closed after it.
    pub header_read: Duration,
    /// A request not answered within this long gets a `503` (`code: timeout`).
    pub request: Duration,
    /// Connections served at once; further ones wait in the listen backlog
    /// (holding no file descriptor of the service) until one closes.
    pub connections: usize,
    /// On shutdown, requests in flight get this long to finish.
    pub drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            request: Duration::from_secs(10),
            connections: 256,
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then
/// lets requests in flight finish (for at most `limits.drain`). HTTP/1.1 only,
/// as the API has always been. `open` counts the connections being served.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    open: Gauge,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    // The timer is what makes the header timeout (and so the idle timeout) work at all.
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let permits = Arc::new(Semaphore::new(limits.connections.max(1)));
    let connections = TaskTracker::new();
    let (closing, abandon) = (CancellationToken::new(), CancellationToken::new());
    tokio::pin!(shutdown);
    loop {
        // A permit first: at the cap, new connections wait in the kernel's backlog, not in ours.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.map_err(io::Error::other)?,
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    error!("cannot accept a connection: {e}; trying again in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let (closing, abandon, open) = (closing.clone(), abandon.clone(), open.clone());
        connections.spawn(async move {
            let _permit = permit;
            open.inc();
            tokio::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => Some(served),
                () = closing.cancelled() => {
                    // Finish the request in flight, if any, then close; an idle connection closes now.
                    conn.as_mut().graceful_shutdown();
                    tokio::select! {
                        served = conn.as_mut() => Some(served),
                        () = abandon.cancelled() => None,
                    }
                }
            };
            if let Some(Err(e)) = served {
                debug!("connection ended: {e}");
            }
            open.dec();
        });
    }
    drop(listener);
    closing.cancel();
    connections.close();
    if tokio::time::timeout(limits.drain, connections.wait()).await.is_err() {
        warn!(
            "{} connection(s) still busy {:?} after shutdown began; closing them",
            connections.len(),
            limits.drain
        );
        abandon.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Errors of one connection, not of the listener: the next accept is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::within;
    use axum::routing::get;

    const DEADLINE: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn a_request_not_answered_in_time_gets_a_json_503_and_others_are_unaffected() {
        let app = Router::new()
            .route("/stuck", get(std::future::pending::<&'static str>))
            .route("/quick", get(|| async { "quick" }));
        let app = within(app, Duration::from_millis(100));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("bound");
        let stop = CancellationToken::new();
        let open = Gauge::default();
        let server = tokio::spawn(serve(
            listener,
            app,
            Limits::default(),
            open.clone(),
            stop.clone().cancelled_owned(),
        ));
        let client = reqwest::Client::builder().timeout(DEADLINE).build().expect("a client");

        let stuck = client
            .get(format!("http://{addr}/stuck"))
            .send()
            .await
            .expect("answered");
        assert_eq!(stuck.status(), 503);
        let body: serde_json::Value = stuck.json().await.expect("a JSON body");
        assert_eq!(body["code"], "timeout", "{body}");
        assert!(body["message"].is_string(), "{body}");
        let quick = client
            .get(format!("http://{addr}/quick"))
            .send()
            .await
            .expect("answered");
        assert_eq!(quick.text().await.expect("a body"), "quick");
        assert!(open.get() >= 1, "the client's kept-alive connection is counted");

        // Shutdown closes the idle kept-alive connection at once, and the server returns.
        stop.cancel();
        let stopped = tokio::time::timeout(DEADLINE, server).await.expect("stops in time");
        stopped.expect("no panic").expect("no error");
        assert_eq!(open.get(), 0);
    }
}
