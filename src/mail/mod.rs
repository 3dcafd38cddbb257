//! Maintainer email digests (PROTOCOL.md §5): never lost, never spam.
//!
//! - [`batch`]: folds health news and system alerts into what the next digest says.
//! - [`digest`]: the pure text of one digest.
//! - [`mailer`]: the SMTP transport (lettre), TLS policy and headers.
//! - [`worker`]: grouping, rate limit, retries and the shutdown flush.
//!
//! The mail side only ever receives effects; it never feeds the tracker and
//! nothing else waits for it.

pub mod batch;
pub mod digest;
pub mod mailer;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Email;
use crate::tracker::{Effect, Snapshot};
pub use mailer::{MailError, Mailer, SendError};
pub use worker::Worker;

/// Counters of the mail worker, shared for whoever exposes metrics.
#[derive(Debug, Default)]
pub struct MailStats {
    digests_sent: AtomicU64,
    send_failures: AtomicU64,
    events_pending: AtomicU64,
}

impl MailStats {
    pub fn digests_sent(&self) -> u64 {
        self.digests_sent.load(Ordering::Relaxed)
    }

    /// Failed attempts: refusals, timeouts, 4xx/5xx answers.
    pub fn send_failures(&self) -> u64 {
        self.send_failures.load(Ordering::Relaxed)
    }

    /// Health events waiting for the next digest.
    pub fn events_pending(&self) -> u64 {
        self.events_pending.load(Ordering::Relaxed)
    }

    fn record_sent(&self) {
        self.digests_sent.fetch_add(1, Ordering::Relaxed);
        self.events_pending.store(0, Ordering::Relaxed);
    }

    fn record_failure(&self) {
        self.send_failures.fetch_add(1, Ordering::Relaxed);
    }

    fn set_pending(&self, events: usize) {
        self.events_pending.store(events as u64, Ordering::Relaxed);
    }
}

/// Spawns the mail worker into `tasks` when email is on; returns the sink for
/// `Sinks.mail`, or `None` when email is off (effects are then only logged).
pub fn start(
    email: &Email,
    snapshot: Arc<ArcSwap<Snapshot>>,
    stats: Arc<MailStats>,
    tasks: &mut JoinSet<()>,
    shutdown: CancellationToken,
) -> Result<Option<mpsc::UnboundedSender<Effect>>, MailError> {
    let Email::On(cfg) = email else {
        return Ok(None);
    };
    let mailer = Mailer::new(cfg)?;
    let (tx, rx) = mpsc::unbounded_channel();
    tasks.spawn(Worker::new(cfg, mailer, rx, snapshot, stats).run(shutdown));
    Ok(Some(tx))
}
