//! The REST API (PROTOCOL.md §6) over the published snapshot.
//!
//! Handlers only read an `Arc` of the latest snapshot: they never wait for
//! the reconciler and it never waits for them. Errors reach clients as a
//! generic `{"code", "message"}` body; details stay in the log.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tracing::error;

use crate::feed::{FeedBoard, FeedStatuses};
use crate::tracker::{Snapshot, SystemAlert};

/// What every handler reads from.
#[derive(Clone)]
pub struct AppState {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Read directly, not through the snapshot: the observer's own state.
    pub feeds: FeedBoard,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/experiments", get(experiments))
        .route("/api/v1/experiments/events/{name}", get(events))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/feeds", get(feeds))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .with_state(state)
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

async fn events(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
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
