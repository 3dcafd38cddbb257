//! The REST API (PROTOCOL.md §6) over the published snapshot, and the
//! server that carries it.
//!
//! Handlers only read an `Arc` of the latest snapshot: they never wait for
//! the reconciler and it never waits for them. Every error reaches clients
//! as a JSON `{"code", "message"}` body (unknown route, bad path, wrong
//! method, timeout); details stay in the log. Every request is counted in
//! the metrics under its route template.
//!
//! [`serve`] bounds what clients can hold: a request head must arrive in
//! time (which also closes idle keep-alive connections), a request must be
//! answered in time, and only so many connections are open at once, so no
//! crowd of idle sockets can use up the file descriptors the service needs
//! for its own peers.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, warn};

use crate::feed::{FeedBoard, FeedStatuses};
use crate::metrics::{self, Metrics};
use crate::readiness::{self, Readiness};
use crate::tracker::{Snapshot, SystemAlert};

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

/// What every handler reads from.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Read directly, not through the snapshot: the observer's own state.
    pub feeds: FeedBoard,
    /// Counts requests; tells readiness whether a manifest has loaded.
    pub metrics: Metrics,
    /// Everything `GET /metrics` exposes.
    pub registry: Arc<Registry>,
}

/// Every route, each request bounded by `request_timeout` and counted in the metrics.
pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/experiments", get(experiments))
        .route("/api/v1/experiments/events/{name}", get(events))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/feeds", get(feeds))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        // After every route, so that each one has it (axum keeps the `Allow` header).
        .method_not_allowed_fallback(method_not_allowed);
    within(router, request_timeout)
        // After every route and the fallback, so each request is seen with its matched route,
        // and outside the timeout, so a timed-out request is counted as the 503 it got.
        .layer(middleware::from_fn_with_state(
            state.metrics.http.clone(),
            metrics::http::track,
        ))
        .with_state(state)
}

/// `router` with every request answered within `limit`, or with a JSON `503`.
fn within<S: Clone + Send + Sync + 'static>(router: Router<S>, limit: Duration) -> Router<S> {
    router.layer(middleware::from_fn_with_state(limit, answer_within))
}

async fn answer_within(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            warn!("a request was not answered within {limit:?}; answered 503");
            ApiError::timeout().into_response()
        }
    }
}

/// A client-facing error: a stable code and a message safe to show.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
        }
    }

    /// The request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
        }
    }

    /// The route exists, but not for this method (only `GET` and `HEAD` are served).
    pub fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "method_not_allowed",
            message: "only GET and HEAD are served".into(),
        }
    }

    /// The answer took longer than the server allows.
    pub fn timeout() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "timeout",
            message: "the request took too long; try again".into(),
        }
    }

    /// Something failed on our side: the detail goes to the log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        error!("request failed: {detail}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

#[derive(Serialize)]
struct Alive {
    status: &'static str,
}

async fn healthz() -> Json<Alive> {
    Json(Alive { status: "ok" })
}

/// `200` once both feeds delivered a frame and a manifest loaded; `503` saying what is missing until then.
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let readiness = readiness::check(&state.feeds.statuses(), state.metrics.book.has_manifest());
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

async fn metrics(State(state): State<AppState>) -> Response {
    match metrics::encode(&state.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => ApiError::internal(format!("cannot encode the metrics: {e}")).into_response(),
    }
}

async fn experiments(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.snapshot.load_full();
    let body = match snapshot.experiments_json_made() {
        Some(body) => body,
        // The first reader of a snapshot serialises it: tens of milliseconds for a large
        // fleet, so on a blocking thread, while the async workers (and the reconciler) go on.
        None => tokio::task::spawn_blocking(move || snapshot.experiments_json())
            .await
            .map_err(|e| ApiError::internal(format!("serialising the experiment list: {e}")))?,
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// About the JSON size of one health event, to size the answer's buffer once.
const EVENT_JSON_BYTES: usize = 200;

async fn events(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|e| match e {
        // Not percent-encoded UTF-8 (`%FF`): no topic name looks like that.
        PathRejection::FailedToDeserializePathParams(_) => {
            ApiError::bad_request("the experiment name is not valid percent-encoded UTF-8")
        }
        other => ApiError::internal(format!("extracting the experiment name: {other}")),
    })?;
    let snapshot = state.snapshot.load();
    let exp = snapshot
        .experiment(&name)
        .ok_or_else(|| ApiError::not_found("no experiment with that topic name"))?;
    // Written straight into one buffer: a quarter cheaper than `Json`'s growing writer.
    let mut body = Vec::with_capacity(exp.events.len() * EVENT_JSON_BYTES + 2);
    serde_json::to_writer(&mut body, &*exp.events).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn alerts(State(state): State<AppState>) -> Json<Vec<SystemAlert>> {
    Json(state.snapshot.load().alerts.clone())
}

async fn feeds(State(state): State<AppState>) -> Json<FeedStatuses> {
    Json(state.feeds.statuses())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
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
