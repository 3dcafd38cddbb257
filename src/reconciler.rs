//! The one task that owns the [`Tracker`].
//!
//! It selects over inputs and a clock tick, applies them with the current
//! time, hands effects to workers over channels and publishes a fresh
//! snapshot. It never awaits network IO: a hung peer cannot stall it.
//! When systemd runs a watchdog, this loop pings it, so a stuck loop is
//! noticed and the process restarted.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::feed::{FeedBoard, FeedStatus};
use crate::systemd::Watchdog;
use crate::tracker::{AvailabilityChange, Effect, Input, Snapshot, Tracker};

/// How often time is fed to the tracker so deadlines (grace, silence, retries) fire.
pub const TICK: Duration = Duration::from_secs(1);

/// Where effects go. A missing sink means that part is off: its effects are only logged.
#[derive(Default, Clone)]
pub struct Sinks {
    pub availability: Option<mpsc::UnboundedSender<AvailabilityChange>>,
    /// Receives `Effect::Notify` and `Effect::Alert`.
    pub mail: Option<mpsc::UnboundedSender<Effect>>,
}

pub struct Reconciler {
    tracker: Tracker,
    inputs: mpsc::Receiver<Input>,
    sinks: Sinks,
    published: Arc<ArcSwap<Snapshot>>,
    log_every: Duration,
    /// Only read, for the fleet summary.
    feeds: Option<FeedBoard>,
    watchdog: Option<Watchdog>,
    /// Of the last published snapshot; starts anywhere, so no two runs share versions.
    version: u64,
}

impl Reconciler {
    pub fn new(
        tracker: Tracker,
        inputs: mpsc::Receiver<Input>,
        sinks: Sinks,
        published: Arc<ArcSwap<Snapshot>>,
    ) -> Self {
        Self {
            tracker,
            inputs,
            sinks,
            published,
            log_every: Duration::from_secs(3600),
            feeds: None,
            watchdog: None,
            version: fastrand::u64(..),
        }
    }

    /// Adds the feeds' state to the fleet summary.
    pub fn summarise_feeds(mut self, feeds: FeedBoard) -> Self {
        self.feeds = Some(feeds);
        self
    }

    /// Pings systemd's watchdog from this loop (`None`: no watchdog).
    pub fn watchdog(mut self, watchdog: Option<Watchdog>) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// Period of the fleet summary line (`STATUS_HEALTH_LOG_EVERY`).
    pub fn log_every(mut self, period: Duration) -> Self {
        self.log_every = period;
        self
    }

    /// Runs until `shutdown` is cancelled or every input sender is gone.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut summary = tokio::time::interval_at(tokio::time::Instant::now() + self.log_every, self.log_every);
        summary.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ping = self.watchdog.as_ref().map(|w| {
            let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + w.every(), w.every());
            ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ping
        });
        self.publish();
        loop {
            let input = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                // Before inputs, so a busy but healthy loop still pings.
                () = next_ping(&mut ping) => {
                    if let Some(watchdog) = &self.watchdog {
                        watchdog.ping();
                    }
                    continue;
                }
                input = self.inputs.recv() => match input {
                    Some(input) => input,
                    None => break,
                },
                _ = tick.tick() => Input::Tick,
                _ = summary.tick() => {
                    self.log_summary();
                    continue;
                }
            };
            let effects = self.tracker.handle(Utc::now(), input);
            for effect in effects {
                self.dispatch(effect);
            }
            if self.tracker.take_changed() {
                self.publish();
            }
        }
        debug!("reconciler stopped");
    }

    fn publish(&mut self) {
        let mut snapshot = self.tracker.snapshot(Utc::now());
        self.version = self.version.wrapping_add(1);
        snapshot.version = self.version;
        self.published.store(Arc::new(snapshot));
    }

    /// One info line about the whole fleet; the full picture at debug level.
    fn log_summary(&self) {
        let snapshot = self.published.load();
        let all = &snapshot.experiments;
        let healthy = all.iter().filter(|e| e.healthy).count();
        let managed = all.iter().filter(|e| e.resource_name.is_some()).count();
        // What the booking system holds (as last read), not what health asks for.
        let available = all.iter().filter(|e| e.available == Some(true)).count();
        let alerts: Vec<&str> = snapshot.alerts.iter().map(|a| a.message.as_str()).collect();
        let (relay, jump) = match &self.feeds {
            Some(board) => (feed_summary(&board.relay.status()), feed_summary(&board.jump.status())),
            None => (String::new(), String::new()),
        };
        info!(
            experiments = all.len(),
            healthy,
            managed,
            available,
            relay,
            jump,
            ?alerts,
            "fleet summary"
        );
        if tracing::enabled!(tracing::Level::DEBUG) {
            debug!(experiments = %String::from_utf8_lossy(&snapshot.experiments_json()), "fleet snapshot");
        }
    }

    fn dispatch(&self, effect: Effect) {
        match effect {
            Effect::SetAvailability(change) => {
                info!(resource = %change.resource, available = change.available, reason = %change.reason, "availability change");
                if let Some(tx) = &self.sinks.availability {
                    // The worker lives as long as the service; a closed channel means shutdown.
                    let _ = tx.send(change);
                }
            }
            Effect::Notify(ref news) => {
                for n in news {
                    let state = if n.event.healthy { "healthy" } else { "unhealthy" };
                    warn!(experiment = %n.topic, bookable = ?n.bookable, issues = ?n.event.issues, "experiment {state}");
                }
                self.to_mail(effect);
            }
            Effect::Alert { ref alert, raised } => {
                if raised {
                    warn!(alert = ?alert.kind, "system alert: {}", alert.message);
                } else {
                    info!(alert = ?alert.kind, "system alert cleared: {}", alert.message);
                }
                self.to_mail(effect);
            }
        }
    }

    fn to_mail(&self, effect: Effect) {
        if let Some(tx) = &self.sinks.mail {
            let _ = tx.send(effect);
        }
    }
}

/// One feed in a few words: `connected, 120 frames (2 rejected), 3 reconnections`.
fn feed_summary(s: &FeedStatus) -> String {
    let link = if s.connected { "connected" } else { "disconnected" };
    format!(
        "{link}, {} frames ({} rejected), {} reconnections",
        s.frames_received, s.frames_rejected, s.reconnections
    )
}

/// The next watchdog tick; never, without a watchdog.
async fn next_ping(ping: &mut Option<Interval>) {
    match ping {
        Some(ping) => {
            ping.tick().await;
        }
        None => std::future::pending().await,
    }
}
