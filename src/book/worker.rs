//! The availability worker: carries out the tracker's availability changes.
//!
//! Each change gets its own task: it takes the resource's lock (never two
//! conversations about one resource at once), counts the change on it (so a
//! round's read made before it is dropped), sends the PUT, reads the value
//! back and reports what it read (or why it could not, and whether that is
//! worth retrying soon) to the tracker while still holding the lock. The
//! client bounds how many requests run at once. In a dry run nothing is sent:
//! the decision is logged and reported as not carried out, so the tracker
//! keeps what it last read and decides again after the next read.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::{BookClient, BookError, Booking};
use crate::tracker::{AvailabilityChange, ChangeError, Input, AVAILABILITY_RETRY_AFTER};

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
    let mut guard = booking.locks.lock(&resource).await;
    let result = if dry_run {
        info!("dry run: would set {resource} available={available}: {reason}; decided again after the next read");
        Err(ChangeError::DryRun)
    } else {
        guard.changing();
        let result = carry_out(&booking.client, &resource, available, &reason).await;
        booking.metrics.change_settled(available, result == Ok(available));
        result
    };
    booking.tell(Input::AvailabilityOutcome { resource, result }).await;
    drop(guard);
}

/// PUT, then read back: the tracker learns what the booking system holds, not what was hoped.
async fn carry_out(client: &BookClient, resource: &str, available: bool, reason: &str) -> Result<bool, ChangeError> {
    if let Err(e) = client.set(resource, available, reason).await {
        warn!(
            "availability of {resource} not set to {available}: {e}; {}",
            when_again(&e)
        );
        return Err(classify(e));
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
            warn!(
                "availability of {resource} set to {available} but not read back: {e}; {}",
                when_again(&e)
            );
            Err(classify(e))
        }
    }
}

/// Transient failures are retried soon; anything else (a 4xx, an unusable answer) waits for the next read.
fn classify(e: BookError) -> ChangeError {
    if e.transient() {
        ChangeError::Transient(e.to_string())
    } else {
        ChangeError::Refused(e.to_string())
    }
}

fn when_again(e: &BookError) -> String {
    if e.transient() {
        format!("asked again in {AVAILABILITY_RETRY_AFTER:?}")
    } else {
        "asked again once the next manifest round has read it".into()
    }
}
