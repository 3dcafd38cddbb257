//! The availability worker: carries out the tracker's availability changes.
//!
//! Each change gets its own task: it takes the resource's lock (never two
//! conversations about one resource at once), sends the PUT, reads the value
//! back and reports what it read (or why it gave up) to the tracker while
//! still holding the lock. The client bounds how many requests run at once.
//! In a dry run nothing is sent: the change is logged and reported as if it
//! had landed, and the next round's read shows the booking system's truth.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::{BookClient, Booking};
use crate::tracker::{AvailabilityChange, Input};

pub(super) async fn run(
    booking: Arc<Booking>,
    mut changes: mpsc::UnboundedReceiver<AvailabilityChange>,
    dry_run: bool,
) {
    if dry_run {
        warn!("STATUS_DRY_RUN=true: availability changes are decided and logged, never sent to the booking system");
    }
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = booking.shutdown.cancelled() => break,
            Some(done) = running.join_next() => {
                if let Err(e) = done {
                    error!("an availability change task failed: {e}");
                }
            }
            change = changes.recv() => match change {
                Some(change) => {
                    running.spawn(apply(booking.clone(), change, dry_run));
                }
                None => break,
            },
        }
    }
    // Dropping the set abandons changes still in flight: whatever the booking
    // system ended up holding is read at the next start and repaired from there.
    debug!(abandoned = running.len(), "availability worker stopped");
}

async fn apply(booking: Arc<Booking>, change: AvailabilityChange, dry_run: bool) {
    let AvailabilityChange {
        resource,
        available,
        reason,
        ..
    } = change;
    booking.metrics.change_requested(available);
    let _guard = booking.locks.lock(&resource).await;
    let result = if dry_run {
        info!("dry run: would set {resource} available={available}: {reason}");
        Ok(available)
    } else {
        let result = carry_out(&booking.client, &resource, available, &reason).await;
        booking.metrics.change_settled(available, result == Ok(available));
        result
    };
    booking.tell(Input::AvailabilityOutcome { resource, result }).await;
}

/// PUT, then read back: the tracker learns what the booking system holds, not what was hoped.
async fn carry_out(client: &BookClient, resource: &str, available: bool, reason: &str) -> Result<bool, String> {
    if let Err(e) = client.set(resource, available, reason).await {
        warn!("availability of {resource} not set to {available}: {e}");
        return Err(e.to_string());
    }
    match client.read(resource).await {
        Ok(now) if now == available => {
            info!("availability of {resource} set to {now}: {reason}");
            Ok(now)
        }
        Ok(now) => {
            warn!("the booking system accepted available={available} for {resource} but reads back available={now}");
            Ok(now)
        }
        Err(e) => {
            warn!("availability of {resource} set to {available} but not read back: {e}");
            Err(e.to_string())
        }
    }
}
