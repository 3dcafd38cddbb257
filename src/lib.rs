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
//! Its tasks run until shutdown: one that panics or ends sooner stops the
//! whole service with an error, so that systemd restarts it.

#![forbid(unsafe_code)]

mod allocator;
pub mod api;
pub mod book;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod duration;
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

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use config::Config;
use feed::{FeedBoard, Subscription, Timing};
use metrics::Metrics;
use reconciler::{Reconciler, Sinks};
use systemd::Notifier;
use token::Feed;
use tracker::{Input, Snapshot, Tracker};

/// Inputs waiting for the reconciler; senders wait when it is this far behind.
const INPUT_QUEUE: usize = 256;

/// Once shutdown begins (and the REST API has drained), every task must end
/// within this long: the mail worker's last digest takes at most 15 s, and
/// systemd kills the service 30 s after SIGTERM (`TimeoutStopSec`). A task
/// still running then is named in the log and the service exits 1 without it.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// The assembled service before it runs: lets callers reach its seams first.
pub struct Service {
    config: Config,
    published: Arc<ArcSwap<Snapshot>>,
    inputs: mpsc::Sender<Input>,
    input_rx: mpsc::Receiver<Input>,
    mail_stats: Arc<mail::MailStats>,
    metrics: Metrics,
    notifier: Notifier,
    limits: api::Limits,
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
            limits: api::Limits::default(),
        }
    }

    /// Serves the REST API within `limits` instead of the defaults.
    pub fn limits(mut self, limits: api::Limits) -> Self {
        self.limits = limits;
        self
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
    ///
    /// Fails if a task panics, or ends before `shutdown` is cancelled: the
    /// rest is then shut down as on a signal.
    pub async fn run(self, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        let Service {
            config,
            published,
            inputs,
            input_rx,
            mail_stats,
            metrics,
            notifier,
            limits,
        } = self;
        let tracker = Tracker::new(config.health.clone(), Utc::now());
        let mut tasks = Tasks::default();
        let mut booking = JoinSet::new();
        let availability = book::start(
            &config,
            inputs.clone(),
            metrics.book.clone(),
            shutdown.clone(),
            &mut booking,
        )
        .map_err(std::io::Error::other)?;
        let mut mailing = JoinSet::new();
        let mail = mail::start(
            &config.email,
            published.clone(),
            mail_stats.clone(),
            &mut mailing,
            shutdown.clone(),
        )
        .map_err(std::io::Error::other)?;
        tasks.watch("booking", booking);
        tasks.watch("mail", mailing);
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

        tasks.spawn("reconciler", reconciler.run(shutdown.clone()));
        for (feed, peer, name) in [
            (Feed::Relay, &config.relay, "relay feed"),
            (Feed::Jump, &config.jump, "jump feed"),
        ] {
            let timing = Timing::new(feed, &config);
            let subscription = Subscription::new(feed, peer.clone(), timing, inputs.clone(), feeds.state(feed));
            tasks.spawn(name, subscription.run(shutdown.clone()));
        }

        let registry = metrics.registry(metrics::Sources {
            feeds: feeds.clone(),
            snapshot: published.clone(),
            mail: mail_stats,
        });
        let connections = metrics.http.connections();
        let app = api::router(
            api::AppState {
                snapshot: published,
                feeds,
                metrics,
                registry: Arc::new(registry),
            },
            limits.request,
        );
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
        let served = api::serve(listener, app, limits, connections, stopping);
        let result = supervise(tasks, served, &shutdown, STOP_WITHIN).await;
        info!("stopped");
        result
    }
}

/// Runs `served` while watching `tasks`: the first task to fail (see [`Ended::failure`])
/// is logged and cancels `shutdown`. Once `served` is done, `shutdown` is cancelled
/// and every task awaited. The error names the first failed task, if any.
async fn supervise(
    mut tasks: Tasks,
    served: impl Future<Output = std::io::Result<()>>,
    shutdown: &CancellationToken,
    stop_within: Duration,
) -> std::io::Result<()> {
    tokio::pin!(served);
    let mut failed: Option<String> = None;
    let mut note = |ended: Ended, shutdown: &CancellationToken| {
        if let Some(failure) = ended.failure(shutdown.is_cancelled()) {
            error!("{failure}; shutting down");
            failed.get_or_insert(failure);
            shutdown.cancel();
        }
    };
    let served = loop {
        tokio::select! {
            served = &mut served => break served,
            ended = tasks.next_end() => note(ended, shutdown),
        }
    };
    shutdown.cancel();
    match tasks.finish(stop_within).await {
        Ok(ends) => {
            for ended in ends {
                note(ended, shutdown);
            }
        }
        Err(stuck) => {
            let failure = format!(
                "the {} task(s) did not stop within {stop_within:?} of shutdown",
                stuck.join(", ")
            );
            error!("{failure}; exiting without them");
            failed.get_or_insert(failure);
        }
    }
    match failed {
        Some(failure) => Err(std::io::Error::other(failure)),
        None => served,
    }
}

/// The service's long-running tasks in named groups; every end is reported as it happens.
struct Tasks {
    watchers: JoinSet<()>,
    ended_tx: mpsc::UnboundedSender<Ended>,
    ended: mpsc::UnboundedReceiver<Ended>,
    /// Tasks not yet reported ended, by name: who to blame if stopping hangs.
    running: BTreeMap<&'static str, usize>,
}

impl Default for Tasks {
    fn default() -> Self {
        let (ended_tx, ended) = mpsc::unbounded_channel();
        Self {
            watchers: JoinSet::new(),
            ended_tx,
            ended,
            running: BTreeMap::new(),
        }
    }
}

/// One task of a group came to an end.
#[derive(Debug, PartialEq, Eq)]
struct Ended {
    task: &'static str,
    how: How,
}

#[derive(Debug, PartialEq, Eq)]
enum How {
    Returned,
    Panicked(String),
    Cancelled,
}

impl How {
    fn of(outcome: Result<(), JoinError>) -> How {
        match outcome {
            Ok(()) => How::Returned,
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                How::Panicked(message)
            }
            Err(_) => How::Cancelled,
        }
    }
}

impl Ended {
    /// What went wrong, if anything: a panic always; a plain end only before shutdown.
    fn failure(&self, shutting_down: bool) -> Option<String> {
        let task = self.task;
        match &self.how {
            How::Panicked(message) => Some(format!("the {task} task panicked: {message}")),
            How::Cancelled => Some(format!("the {task} task was cancelled")),
            How::Returned if shutting_down => None,
            How::Returned => Some(format!("the {task} task ended before shutdown")),
        }
    }
}

fn count_end(running: &mut BTreeMap<&'static str, usize>, ended: &Ended) {
    if let Some(n) = running.get_mut(ended.task) {
        *n = n.saturating_sub(1);
    }
}

impl Tasks {
    /// Watches every task of `group`, reporting each end under `task`.
    fn watch(&mut self, task: &'static str, mut group: JoinSet<()>) {
        *self.running.entry(task).or_default() += group.len();
        let ended = self.ended_tx.clone();
        self.watchers.spawn(async move {
            while let Some(outcome) = group.join_next().await {
                let _ = ended.send(Ended {
                    task,
                    how: How::of(outcome),
                });
            }
        });
    }

    /// Runs `future` as a task of its own, named `task`.
    fn spawn(&mut self, task: &'static str, future: impl Future<Output = ()> + Send + 'static) {
        let mut group = JoinSet::new();
        group.spawn(future);
        self.watch(task, group);
    }

    /// The next task to end; pending while every task runs.
    async fn next_end(&mut self) -> Ended {
        match self.ended.recv().await {
            Some(ended) => {
                count_end(&mut self.running, &ended);
                ended
            }
            // Unreachable: `self` holds a sender.
            None => std::future::pending().await,
        }
    }

    /// Waits, at most `within`, for every task to end; returns the ends not yet
    /// reported, or the names of the tasks still running when time ran out.
    async fn finish(self, within: Duration) -> Result<Vec<Ended>, Vec<&'static str>> {
        let Tasks {
            watchers,
            ended_tx,
            mut ended,
            mut running,
        } = self;
        // The channel closes once the last watcher, whose group is then empty, is done.
        drop(ended_tx);
        let mut ends = Vec::new();
        let all_ended = async {
            while let Some(end) = ended.recv().await {
                count_end(&mut running, &end);
                ends.push(end);
            }
        };
        let finished = tokio::time::timeout(within, all_ended).await;
        // Dropping the watchers aborts them, and with them what they still watch.
        drop(watchers);
        match finished {
            Ok(()) => Ok(ends),
            Err(_) => Err(running.into_iter().filter(|&(_, n)| n > 0).map(|(t, _)| t).collect()),
        }
    }
}

/// Runs the service on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    Service::new(config).run(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Bounds every test here: a supervisor that never returns fails the test instead of hanging it.
    const DEADLINE: Duration = Duration::from_secs(20);

    /// A task that runs until shutdown, like every real one.
    fn steady(shutdown: &CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    }

    /// A server that serves until shutdown.
    fn served(shutdown: &CancellationToken) -> impl Future<Output = std::io::Result<()>> {
        let shutdown = shutdown.clone();
        async move {
            shutdown.cancelled().await;
            Ok(())
        }
    }

    /// A server that ends at once and so begins the shutdown, as a signal would.
    fn served_then_stop(shutdown: &CancellationToken) -> impl Future<Output = std::io::Result<()>> {
        let stop = shutdown.clone();
        async move {
            stop.cancel();
            Ok(())
        }
    }

    async fn supervised(tasks: Tasks, shutdown: &CancellationToken) -> std::io::Result<()> {
        tokio::time::timeout(DEADLINE, supervise(tasks, served(shutdown), shutdown, DEADLINE))
            .await
            .expect("the supervisor returns")
    }

    #[tokio::test]
    async fn a_panicking_task_stops_everything_with_an_error_naming_it() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        tasks.spawn("relay feed", steady(&shutdown));
        tasks.spawn("reconciler", async { panic!("the tracker is broken") });
        let err = supervised(tasks, &shutdown).await.expect_err("a failure");
        assert_eq!(err.to_string(), "the reconciler task panicked: the tracker is broken");
        assert!(shutdown.is_cancelled(), "the other tasks were told to stop");
    }

    #[tokio::test]
    async fn a_task_ending_before_shutdown_is_a_failure_even_in_a_group() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        let mut booking = JoinSet::new();
        booking.spawn(steady(&shutdown));
        booking.spawn(async {});
        tasks.watch("booking", booking);
        tasks.spawn("reconciler", steady(&shutdown));
        let err = supervised(tasks, &shutdown).await.expect_err("a failure");
        assert_eq!(err.to_string(), "the booking task ended before shutdown");
    }

    #[tokio::test]
    async fn tasks_that_end_on_shutdown_are_no_failure() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        tasks.spawn("reconciler", steady(&shutdown));
        let mut booking = JoinSet::new();
        booking.spawn(steady(&shutdown));
        booking.spawn(steady(&shutdown));
        tasks.watch("booking", booking);
        tasks.watch("mail", JoinSet::new());
        let served = served_then_stop(&shutdown);
        let result = tokio::time::timeout(DEADLINE, supervise(tasks, served, &shutdown, DEADLINE)).await;
        result.expect("the supervisor returns").expect("a clean stop");
    }

    #[tokio::test]
    async fn a_panic_while_stopping_is_still_a_failure() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        let stopping = shutdown.clone();
        tasks.spawn("mail", async move {
            stopping.cancelled().await;
            panic!("flushing failed");
        });
        let served = served_then_stop(&shutdown);
        let result = tokio::time::timeout(DEADLINE, supervise(tasks, served, &shutdown, DEADLINE)).await;
        let err = result.expect("the supervisor returns").expect_err("a failure");
        assert_eq!(err.to_string(), "the mail task panicked: flushing failed");
    }

    /// Paused time: the 20 s bound passes at once, as soon as every task waits.
    #[tokio::test(start_paused = true)]
    async fn a_task_that_ignores_shutdown_is_named_and_not_waited_for_past_the_bound() {
        let shutdown = CancellationToken::new();
        let mut tasks = Tasks::default();
        tasks.spawn("reconciler", steady(&shutdown));
        let mut booking = JoinSet::new();
        booking.spawn(steady(&shutdown));
        booking.spawn(std::future::pending());
        tasks.watch("booking", booking);
        let served = served_then_stop(&shutdown);
        let started = tokio::time::Instant::now();
        let result = supervise(tasks, served, &shutdown, STOP_WITHIN).await;
        let err = result.expect_err("a task that does not stop is a failure");
        assert_eq!(
            err.to_string(),
            "the booking task(s) did not stop within 20s of shutdown"
        );
        assert_eq!(started.elapsed(), STOP_WITHIN, "waited for the bound, no longer");
    }

    #[test]
    fn a_plain_end_is_a_failure_only_before_shutdown() {
        let ended = |how| Ended { task: "jump feed", how };
        assert_eq!(ended(How::Returned).failure(true), None);
        assert_eq!(
            ended(How::Returned).failure(false).as_deref(),
            Some("the jump feed task ended before shutdown")
        );
        assert!(ended(How::Panicked("x".into())).failure(true).is_some());
        assert!(ended(How::Cancelled).failure(true).is_some());
    }
}
