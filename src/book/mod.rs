//! Booking reconciliation (PROTOCOL.md §3, §4): the booking system's side of
//! the service.
//!
//! - [`manifest`]: the resource list → tracker resources, checked entry by entry.
//! - `rounds`: every `STATUS_QUERY_BOOK_EVERY`, the manifest and every managed
//!   resource's availability, fed to the tracker (level-triggered repair).
//! - `worker`: carries out the tracker's availability changes and reports what
//!   it read back.
//!
//! It owns all talk with the booking API and decides nothing: what
//! availability should be is the tracker's call. It must never delay the
//! reconciler: it runs in its own tasks, receives changes over an unbounded
//! channel and only reports back through the reconciler's input queue.

mod client;
mod locks;
pub mod manifest;
mod rounds;
mod worker;

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use client::{BookClient, BookError};
use locks::ResourceLocks;

use crate::config::Config;
use crate::metrics::BookMetrics;
use crate::tracker::{AvailabilityChange, Input};

/// What the manifest rounds and the availability worker share.
struct Booking {
    client: BookClient,
    metrics: BookMetrics,
    locks: ResourceLocks,
    inputs: mpsc::Sender<Input>,
    shutdown: CancellationToken,
}

impl Booking {
    /// Queues `input` for the reconciler; gives up only at shutdown.
    async fn tell(&self, input: Input) {
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            // The reconciler outlives these tasks; a closed queue only happens at shutdown.
            _ = self.inputs.send(input) => {}
        }
    }
}

/// Spawns the manifest rounds and the availability worker into `tasks`, both
/// stopping when `shutdown` is cancelled; returns where availability changes go.
/// Requests, manifest loads and changes are counted in `metrics`.
pub fn start(
    config: &Config,
    inputs: mpsc::Sender<Input>,
    metrics: BookMetrics,
    shutdown: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<mpsc::UnboundedSender<AvailabilityChange>, BookError> {
    let booking = Arc::new(Booking {
        client: BookClient::new(config.book.clone(), config.timeout_book)?.observed_by(metrics.clone()),
        metrics,
        locks: ResourceLocks::default(),
        inputs,
        shutdown,
    });
    let (changes, changes_rx) = mpsc::unbounded_channel();
    tasks.spawn(rounds::run(booking.clone(), config.query_book_every));
    tasks.spawn(worker::run(booking, changes_rx, config.dry_run));
    Ok(changes)
}
