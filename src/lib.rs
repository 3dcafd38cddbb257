//! `status` keeps a remote laboratory's booking system in step with the
//! health of its experiments.
//!
//! - [`config`]: `STATUS_*` environment → validated [`Config`].
//! - [`report`]: wire types of relay/jump statistics.
//! - [`feed`]: the relay and jump statistics subscriptions.
//! - [`tracker`]: the pure health state machine (every rule of PROTOCOL.md §4).
//! - [`reconciler`]: the one task owning the tracker; routes effects to workers.
//! - [`api`]: the REST API over the published snapshot; [`dashboard`]: the page at `/`.
//! - [`metrics`]: Prometheus metrics at `/metrics`; [`readiness`]: `/readyz`.
//! - [`book`]: booking manifest rounds and the availability worker.
//! - [`mail`]: maintainer email digests.
//! - [`sim`]: simulated peers for the demo and the tests.
//! - [`demo`]: `status demo`, the whole system on one machine against the simulated peers.
//! - [`logging`]: log output; [`systemd`]: readiness and watchdog notifications.
//!
//! [`Service`] wires them (`main` and the tests run it); [`run`] is the same without its seams.

#![forbid(unsafe_code)]

mod allocator;
pub mod api;
pub mod book;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod feed;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod readiness;
pub mod reconciler;
pub mod report;
pub mod sim;
pub mod systemd;
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
use feed::{FeedBoard, Subscription, Timing};
use metrics::Metrics;
use reconciler::{Reconciler, Sinks};
use systemd::Notifier;
use token::Feed;
use tracker::{Input, Snapshot, Tracker};

/// Inputs waiting for the reconciler; senders wait when it is this far behind.
const INPUT_QUEUE: usize = 256;

/// The assembled service before it runs: lets callers reach its seams first.
pub struct Service {
    config: Config,
    published: Arc<ArcSwap<Snapshot>>,
    inputs: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
    mail_stats: Arc<mail::MailStats>,
    metrics: Metrics,
    notifier: Notifier,
}

impl Service {
    pub fn new(config: Config) -> Self {
        let (inputs, input_rx) = mpsc::channel(INPUT_QUEUE);
        Self {
            config,
            published: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            inputs,
            input_rx,
            mail_stats: Arc::default(),
            metrics: Metrics::default(),
            notifier: Notifier::default(),
        }
    }

    /// Tells systemd about readiness, shutdown and liveness through `notifier` (off by default).
    pub fn notify(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Where feeds and the booking poller send what they learn (tests may too).
    pub fn inputs(&self) -> mpsc::Sender<Input> {
        self.inputs.clone()
    }

    /// The latest published snapshot, as the REST API sees it.
    pub fn snapshot(&self) -> Arc<ArcSwap<Snapshot>> {
        self.published.clone()
    }

    /// Counters of the mail worker (all zero while email is off).
    pub fn mail_stats(&self) -> Arc<mail::MailStats> {
        self.mail_stats.clone()
    }

    /// Runs on `listener` until `shutdown` is cancelled, then waits for every task.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        let Service {
            config,
            published,
            inputs,
            input_rx,
            mail_stats,
            metrics,
            notifier,
        } = self;
        let tracker = Tracker::new(config.health.clone(), Utc::now());
        let mut tasks = JoinSet::new();
        let availability = book::start(
            &config,
            inputs.clone(),
            metrics.book.clone(),
            shutdown.clone(),
            &mut tasks,
        )
        .map_err(std::io::Error::other)?;
        let mail = mail::start(
            &config.email,
            published.clone(),
            mail_stats.clone(),
            &mut tasks,
            shutdown.clone(),
        )
        .map_err(std::io::Error::other)?;
        let sinks = Sinks {
            availability: Some(availability),
            mail,
        };
        let feeds = FeedBoard::default();
        let reconciler = Reconciler::new(tracker, input_rx, sinks, published.clone())
            .log_every(config.health_log_every)
            .summarise_feeds(feeds.clone())
            .watchdog(notifier.watchdog());
        // `inputs` lives to the end of `run`: the reconciler stops when shutdown is cancelled, not when senders go away.

        tasks.spawn(reconciler.run(shutdown.clone()));
        for (feed, peer) in [(Feed::Relay, &config.relay), (Feed::Jump, &config.jump)] {
            let timing = Timing::new(feed, &config);
            let subscription = Subscription::new(feed, peer.clone(), timing, inputs.clone(), feeds.state(feed));
            tasks.spawn(subscription.run(shutdown.clone()));
        }

        let registry = metrics.registry(metrics::Sources {
            feeds: feeds.clone(),
            snapshot: published.clone(),
            mail: mail_stats,
        });
        let app = api::router(api::AppState {
            snapshot: published,
            feeds,
            metrics,
            registry: Arc::new(registry),
        });
        let addr = listener.local_addr()?;
        info!(%addr, "serving the REST API");
        // Ready means listening with every task running, not that the peers answered:
        // `/readyz` tells that part, and a down relay must not hold up `systemctl start`.
        notifier.ready(&format!("serving on {addr}"));
        let stopping = {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                notifier.stopping();
            }
        };
        let served = axum::serve(listener, app).with_graceful_shutdown(stopping).await;
        shutdown.cancel();
        while tasks.join_next().await.is_some() {}
        info!("stopped");
        served
    }
}

/// Runs the service on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    Service::new(config).run(listener, shutdown).await
}
