//! `status` keeps a remote laboratory's booking system in step with the
//! health of its experiments.
//!
//! - [`config`]: `STATUS_*` environment → validated [`Config`].
//! - [`report`]: wire types of relay/jump statistics.
//! - [`tracker`]: the pure health state machine (every rule of PROTOCOL.md §4).
//! - [`reconciler`]: the one task owning the tracker; routes effects to workers.
//! - [`api`]: the REST API over the published snapshot.
//! - [`logging`]: log output.
//!
//! [`run`] wires them; `main`, the demo and the tests all call it.

#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod logging;
pub mod reconciler;
pub mod report;
pub mod token;
pub mod tracker;

use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::Config;
use reconciler::{Reconciler, Sinks};
use tracker::{Input, Snapshot, Tracker};

/// Inputs waiting for the reconciler; senders wait when it is this far behind.
const INPUT_QUEUE: usize = 256;

/// Runs the service on `listener` until `shutdown` is cancelled, then waits for every task.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let published = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
    let (_inputs, input_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let tracker = Tracker::new(config.health.clone(), Utc::now());
    let reconciler = Reconciler::new(tracker, input_rx, Sinks::default(), published.clone());

    let mut tasks = JoinSet::new();
    tasks.spawn(reconciler.run(shutdown.clone()));

    let app = api::router(api::AppState { snapshot: published });
    info!(addr = %listener.local_addr()?, "serving the REST API");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    served
}
