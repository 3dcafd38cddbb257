//! The REST API (PROTOCOL.md §6) over the published snapshot, and the
//! server that carries it.
//!
//! Handlers only read an `Arc` of the latest snapshot: they never wait for
//! the reconciler and it never waits for them. Every error reaches clients
//! as a JSON `{"code", "message"}` body (unknown route, bad path, wrong
//! method, timeout); details stay in the log. Every request is counted in
//! the metrics under its route template.
//!
//! [`serve`] (in `server.rs`) bounds what clients can hold of the server;
//! `cache.rs` lets the large experiment list travel compressed, or not at
//! all when the client already has it.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use serde::Serialize;
use tracing::{error, warn};

use crate::feed::{FeedBoard, FeedStatuses};
use crate::metrics::{self, Metrics};
use crate::readiness::{self, Readiness};
use crate::tracker::{Snapshot, SystemAlert};

mod cache;
mod server;

use cache::Answer;

pub use server::{serve, Limits};

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
pub(crate) fn within<S: Clone + Send + Sync + 'static>(router: Router<S>, limit: Duration) -> Router<S> {
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

/// The list of every experiment: `304` when the client has this snapshot's
/// list already, gzip when it accepts it (see `cache.rs`).
async fn experiments(State(state): State<AppState>, request: HeaderMap) -> Result<Response, ApiError> {
    let snapshot = state.snapshot.load_full();
    let etag = cache::etag(snapshot.version);
    let answer = cache::negotiate(&request, &etag);
    let made = match answer {
        Answer::NotModified => return Ok((StatusCode::NOT_MODIFIED, cache::headers(&etag)).into_response()),
        Answer::Gzip => snapshot.experiments_gzip_made(),
        Answer::Identity => snapshot.experiments_json_made(),
    };
    let body = match made {
        Some(body) => body,
        // The first reader of a snapshot serialises (and compresses) it: tens of milliseconds
        // for a large fleet, so on a blocking thread, while the async workers and the reconciler go on.
        None => tokio::task::spawn_blocking(move || match answer {
            Answer::Gzip => snapshot.experiments_gzip(),
            _ => snapshot.experiments_json(),
        })
        .await
        .map_err(|e| ApiError::internal(format!("serialising the experiment list: {e}")))?,
    };
    let mut response = (
        cache::headers(&etag),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if answer == Answer::Gzip {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
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
