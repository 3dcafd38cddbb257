//! The mail worker: when to send a digest, and sending it until it arrives.
//!
//! Grouping follows Alertmanager: the first news opens a window of
//! `group_wait` in which later news joins the same digest; after a digest
//! the next waits for `min_interval` (a governor quota), and whatever
//! arrives meanwhile joins it. A failed send keeps the batch, which goes on
//! absorbing news, and is retried with backoff, so nothing is dropped and
//! digests never pile up. It owns its SMTP waits: nothing outside this task
//! ever waits for the mail server.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::batch::Batch;
use super::digest::{render, Digest};
use super::mailer::{Mailer, SendError};
use super::MailStats;
use crate::config::EmailConfig;
use crate::tracker::{Effect, Snapshot};

/// First wait after a failed send; it doubles from there.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two attempts during a long outage.
const RETRY_MAX: Duration = Duration::from_secs(120);
/// On shutdown, a send in flight may take this much longer, and one last
/// attempt at what is still pending as long again: stopping stays prompt.
pub const FLUSH_WITHIN: Duration = Duration::from_secs(5);

pub struct Worker {
    mailer: Mailer,
    effects: mpsc::UnboundedReceiver<Effect>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    stats: Arc<MailStats>,
    subject: String,
    link: String,
    group_wait: Duration,
    min_interval: Duration,
    batch: Batch,
}

/// How one attempt ended.
enum Attempt {
    Sent,
    Failed,
    /// Shutdown came during the attempt, which was then given time to end.
    Stopped,
}

impl Worker {
    pub fn new(
        cfg: &EmailConfig,
        mailer: Mailer,
        effects: mpsc::UnboundedReceiver<Effect>,
        snapshot: Arc<ArcSwap<Snapshot>>,
        stats: Arc<MailStats>,
    ) -> Self {
        Self {
            mailer,
            effects,
            snapshot,
            stats,
            subject: cfg.subject.clone(),
            link: cfg.link.clone(),
            group_wait: cfg.group_wait,
            min_interval: cfg.min_interval,
            batch: Batch::default(),
        }
    }

    /// Runs until `shutdown`, then tries once, briefly, to send what is pending.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // One digest per `min_interval`, counted from its first attempt (retries
        // take no quota: nothing was delivered); zero means no limit.
        let limiter: Option<DefaultDirectRateLimiter> =
            Quota::with_period(self.min_interval).map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)));
        loop {
            // Alerts alone are kept for the next digest, so only news starts one.
            while !self.batch.has_news() {
                if !self.receive(&shutdown).await {
                    debug!("mail worker stopped");
                    return;
                }
            }
            let window = tokio::time::sleep(self.group_wait);
            if self.gather(&shutdown, window).await.is_none() {
                return self.flush().await;
            }
            if let Some(limiter) = &limiter {
                if self.gather(&shutdown, limiter.until_ready()).await.is_none() {
                    return self.flush().await;
                }
            }
            if !self.deliver(&shutdown).await {
                return self.flush().await;
            }
        }
    }

    /// Sends the batch, retrying with backoff until it is sent; false on shutdown.
    async fn deliver(&mut self, shutdown: &CancellationToken) -> bool {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(RETRY_FIRST)
            .with_max_delay(RETRY_MAX)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match self.attempt(shutdown).await {
                Attempt::Sent => return true,
                Attempt::Stopped => return false,
                Attempt::Failed => {}
            }
            let delay = delays.next().unwrap_or(RETRY_MAX);
            debug!(retry_in = ?delay, "digest kept for the next attempt");
            if self.gather(shutdown, tokio::time::sleep(delay)).await.is_none() {
                return false;
            }
        }
    }

    /// One send of everything pending.
    ///
    /// Shutdown does not abandon a send in flight (the server may already
    /// hold the message, and sending it again would duplicate it): it gets
    /// [`FLUSH_WITHIN`] more to finish.
    async fn attempt(&mut self, shutdown: &CancellationToken) -> Attempt {
        self.drain();
        let (digest, now) = self.render();
        let (result, stopping) = {
            let send = self.mailer.send(&digest, now);
            tokio::pin!(send);
            tokio::select! {
                biased;
                r = &mut send => (r, false),
                () = shutdown.cancelled() => (bounded(send).await, true),
            }
        };
        let sent = self.settle(&digest, result);
        match (stopping, sent) {
            (true, _) => Attempt::Stopped,
            (false, true) => Attempt::Sent,
            (false, false) => Attempt::Failed,
        }
    }

    /// The last chance at shutdown: one attempt within [`FLUSH_WITHIN`],
    /// regardless of the rate limit (a digest early beats a digest lost).
    async fn flush(mut self) {
        self.drain();
        if self.batch.has_news() {
            let (digest, now) = self.render();
            let result = bounded(self.mailer.send(&digest, now)).await;
            if !self.settle(&digest, result) {
                let topics: Vec<&str> = self.batch.changes().map(|c| c.latest.topic.as_str()).collect();
                error!(
                    events = self.batch.events(),
                    experiments = ?topics,
                    "digest not sent before shutdown; its events are in this log and the REST API"
                );
            }
        }
        debug!("mail worker stopped");
    }

    /// Folds effects into the batch until `until` completes; `None` on shutdown.
    async fn gather<F: Future>(&mut self, shutdown: &CancellationToken, until: F) -> Option<F::Output> {
        tokio::pin!(until);
        loop {
            tokio::select! {
                biased;
                out = &mut until => return Some(out),
                received = self.receive(shutdown) => if !received {
                    return None;
                },
            }
        }
    }

    /// Waits for one effect and folds it in; false on shutdown or when the reconciler is gone.
    async fn receive(&mut self, shutdown: &CancellationToken) -> bool {
        let effect = tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            effect = self.effects.recv() => effect,
        };
        match effect {
            Some(effect) => {
                self.add(effect);
                true
            }
            None => false,
        }
    }

    /// Folds in whatever is already queued, so a retry carries the latest news.
    fn drain(&mut self) {
        while let Ok(effect) = self.effects.try_recv() {
            self.add(effect);
        }
    }

    fn add(&mut self, effect: Effect) {
        self.batch.add(effect);
        self.stats.set_pending(self.batch.events());
    }

    fn render(&self) -> (Digest, chrono::DateTime<Utc>) {
        let now = Utc::now();
        let digest = render(&self.batch, &self.snapshot.load(), now, &self.subject, &self.link);
        (digest, now)
    }

    /// Records how a send ended; true when the digest went out (the batch then starts afresh).
    fn settle(&mut self, digest: &Digest, result: Result<(), SendError>) -> bool {
        match result {
            Ok(()) => {
                info!(events = self.batch.events(), subject = %digest.subject, "digest sent");
                self.batch = Batch::default();
                self.stats.record_sent();
                true
            }
            Err(e) => {
                warn!(error = %e, events = self.batch.events(), "digest not sent");
                self.stats.record_failure();
                false
            }
        }
    }
}

/// `send`, given at most [`FLUSH_WITHIN`]: shutdown must stay prompt.
async fn bounded(send: impl Future<Output = Result<(), SendError>>) -> Result<(), SendError> {
    tokio::time::timeout(FLUSH_WITHIN, send)
        .await
        .unwrap_or(Err(SendError::Timeout(FLUSH_WITHIN)))
}
