//! The mail worker: when to send a digest, and sending it until it arrives.
//!
//! Grouping follows Alertmanager: the first news opens a window of
//! `group_wait` in which later news joins the same digest; the next digest
//! goes out no sooner than `min_interval` after the last one was delivered
//! (a governor quota, renewed at each delivery), and whatever arrives
//! meanwhile joins it. A failed send keeps the batch, which goes on
//! absorbing news, and is retried with backoff, so nothing is dropped and
//! digests never pile up. It owns its SMTP waits: nothing outside this task
//! ever waits for the mail server.
//!
//! On shutdown it keeps taking effects until the reconciler, which stops on
//! the same signal, closes the channel (within [`FLUSH_WITHIN`]), so the
//! news of the reconciler's last input still makes the final digest.

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
/// On shutdown, a send in flight may take this much longer, the reconciler
/// as long to hand over its last effects, and one last attempt at what is
/// still pending as long again: stopping stays prompt.
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

    /// Runs until `shutdown` (or until the reconciler is gone), then takes
    /// the reconciler's last effects and tries once, briefly, to send what is pending.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // The quota of the digest after the last delivered one; none before the first.
        let mut limiter: Option<DefaultDirectRateLimiter> = None;
        loop {
            // Alerts alone are kept for the next digest, so only news starts one.
            while !self.batch.has_news() {
                if !self.receive(&shutdown).await {
                    return self.finish().await;
                }
            }
            let window = tokio::time::sleep(self.group_wait);
            if self.gather(&shutdown, window).await.is_none() {
                return self.finish().await;
            }
            if let Some(limiter) = &limiter {
                if self.gather(&shutdown, limiter.until_ready()).await.is_none() {
                    return self.finish().await;
                }
            }
            if !self.deliver(&shutdown).await {
                return self.finish().await;
            }
            limiter = spent_at_delivery(self.min_interval);
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

    /// Takes effects until the reconciler closes the channel (it stops on
    /// the same signal, perhaps with the effects of one last input still to
    /// hand over), within [`FLUSH_WITHIN`], then flushes.
    async fn finish(mut self) {
        let closed = tokio::time::timeout(FLUSH_WITHIN, async {
            while let Some(effect) = self.effects.recv().await {
                self.add(effect);
            }
        })
        .await;
        if closed.is_err() {
            warn!("the reconciler did not stop within {FLUSH_WITHIN:?}; mailing what it handed over");
        }
        self.flush().await;
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
                let alerts: Vec<&str> = self.batch.alerts().iter().map(|a| a.message.as_str()).collect();
                error!(
                    events = self.batch.events(),
                    experiments = ?topics,
                    alerts = ?alerts,
                    "digest not sent before shutdown; its events are in this log and the REST API"
                );
            }
        } else if !self.batch.alerts().is_empty() {
            // Alerts alone wait for news to ride with, and none came.
            let alerts: Vec<&str> = self.batch.alerts().iter().map(|a| a.message.as_str()).collect();
            error!(
                events = 0,
                alerts = ?alerts,
                "digest not sent before shutdown: it held only system alerts; they are in this log and the REST API"
            );
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

/// A quota that lets the next digest go `min_interval` after now, the
/// moment of a delivery; `None` (no limit) for a zero interval.
fn spent_at_delivery(min_interval: Duration) -> Option<DefaultDirectRateLimiter> {
    let quota = Quota::with_period(min_interval)?.allow_burst(NonZeroU32::MIN);
    let limiter = RateLimiter::direct(quota);
    // The digest just delivered takes the one cell.
    let _ = limiter.check();
    Some(limiter)
}

/// `send`, given at most [`FLUSH_WITHIN`]: shutdown must stay prompt.
async fn bounded(send: impl Future<Output = Result<(), SendError>>) -> Result<(), SendError> {
    tokio::time::timeout(FLUSH_WITHIN, send)
        .await
        .unwrap_or(Err(SendError::Timeout(FLUSH_WITHIN)))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::{EmailAuth, EmailTls};
    use crate::sim::smtp::SmtpSink;
    use crate::tracker::{HealthEvent, News};

    /// Generous: these run on a loaded machine.
    const DEADLINE: Duration = Duration::from_secs(20);

    fn config(sink: &SmtpSink, group_wait: Duration, min_interval: Duration) -> EmailConfig {
        EmailConfig {
            host: sink.addr().ip().to_string(),
            port: sink.addr().port(),
            from: "status@example.org".into(),
            to: vec!["maintainers@example.org".into()],
            cc: vec![],
            subject: "Lab status:".into(),
            link: String::new(),
            user: "status@example.org".into(),
            password: None,
            auth: EmailAuth::None,
            tls: EmailTls::None,
            group_wait,
            min_interval,
            timeout: Duration::from_secs(5),
        }
    }

    fn failed(topic: &str) -> Effect {
        Effect::Notify(vec![News {
            topic: topic.into(),
            resource: None,
            event: HealthEvent {
                when: Utc::now(),
                healthy: false,
                jump_ok: false,
                stream_ok: Arc::default(),
                issues: Arc::new(vec!["missing jump".into()]),
            },
            bookable: None,
        }])
    }

    struct Running {
        effects: mpsc::UnboundedSender<Effect>,
        stats: Arc<MailStats>,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    fn start(cfg: &EmailConfig) -> Running {
        let (effects, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(MailStats::default());
        let worker = Worker::new(cfg, Mailer::new(cfg).unwrap(), rx, Arc::default(), stats.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(worker.run(shutdown.clone()));
        Running {
            effects,
            stats,
            shutdown,
            task,
        }
    }

    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The interval runs from the last delivery: a digest held up by an outage
    /// longer than the interval does not let the next one follow it at once.
    #[tokio::test]
    async fn the_minimum_interval_runs_from_the_last_delivered_digest() {
        let min_interval = Duration::from_secs(2);
        let sink = SmtpSink::start().await.unwrap();
        let w = start(&config(&sink, Duration::ZERO, min_interval));

        sink.set_down(true);
        w.effects.send(failed("pend00")).unwrap();
        // Retries wait 1 s, then 2 s (at least): the third attempt comes more
        // than `min_interval` after the first.
        until("two refused attempts", || w.stats.send_failures() >= 2).await;
        sink.set_down(false);
        until("the first digest", || sink.messages().len() == 1).await;

        w.effects.send(failed("pend01")).unwrap();
        until("the second digest", || sink.messages().len() == 2).await;
        let arrivals = sink.arrivals();
        let gap = arrivals[1] - arrivals[0];
        assert!(
            gap >= min_interval,
            "the second digest came {gap:?} after the first was delivered"
        );
        assert!(sink.messages()[1].body().contains("pend01"));
        w.shutdown.cancel();
        tokio::time::timeout(DEADLINE, w.task).await.unwrap().unwrap();
    }

    /// The reconciler stops on the same signal and may hand over the effects of
    /// its last input after the worker saw it: they still make the last digest.
    #[tokio::test]
    async fn effects_handed_over_after_the_shutdown_signal_make_the_last_digest() {
        let sink = SmtpSink::start().await.unwrap();
        let w = start(&config(&sink, Duration::from_secs(3600), Duration::from_secs(60)));
        w.effects.send(failed("pend00")).unwrap();
        until("the first event in the batch", || w.stats.events_pending() == 1).await;

        w.shutdown.cancel();
        // This test's runtime has one thread: yielding lets the worker act on
        // the signal before the last effect comes.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        w.effects.send(failed("pend01")).unwrap();
        drop(w.effects);
        tokio::time::timeout(DEADLINE, w.task).await.unwrap().unwrap();

        let mails = sink.messages();
        assert_eq!(mails.len(), 1, "one last digest");
        let body = mails[0].body();
        assert!(body.contains("pend00") && body.contains("pend01"), "{body}");
        assert_eq!(w.stats.digests_sent(), 1);
    }
}
