//! Manifest rounds: level-triggered repair of availability.
//!
//! At start and every `STATUS_QUERY_BOOK_EVERY`: fetch the manifest, hand it
//! to the tracker, then read every managed resource's availability and hand
//! all of them over as ONE input, so the tracker judges the round as one
//! evaluation (the mass-change guard counts per evaluation). A lost PUT or a
//! manual edit in the booking system is thus corrected on the next round, and
//! a newly listed resource is read before anything is decided for it.
//! A failed manifest fetch is retried sooner; meanwhile the last good
//! manifest stays in force simply because nothing new is sent.
//!
//! A read holds its resource's lock only while it is made, so a slow read
//! never delays changes of other resources; one that a change overtook
//! before the round's reads are queued is dropped (see `locks`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tracing::{debug, warn};

use super::manifest;
use super::{BookError, Booking};
use crate::tracker::{Input, Observed};

/// First wait after a failed manifest fetch; doubles up to [`RETRY_CAP`] or a quarter period.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(60);

pub(super) async fn run(booking: Arc<Booking>, every: Duration) {
    let mut failures: u32 = 0;
    loop {
        let wait = tokio::select! {
            () = booking.shutdown.cancelled() => break,
            outcome = round(&booking) => match outcome {
                Ok(()) => {
                    failures = 0;
                    every
                }
                Err(e) => {
                    let wait = retry_wait(every, failures);
                    failures = failures.saturating_add(1);
                    warn!("booking manifest not fetched: {e}; the last good manifest stays in force; retrying in {wait:?}");
                    wait
                }
            },
        };
        tokio::select! {
            () = booking.shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    debug!("booking manifest rounds stopped");
}

/// 1 s doubling per consecutive failure, capped well under the period.
fn retry_wait(every: Duration, failures: u32) -> Duration {
    let cap = (every / 4).min(RETRY_CAP);
    RETRY_FIRST.saturating_mul(2u32.saturating_pow(failures)).min(cap)
}

/// One round: the manifest, then every managed resource's availability.
async fn round(booking: &Booking) -> Result<(), BookError> {
    let manifest = manifest::map(booking.client.manifest().await?);
    for s in &manifest.skipped {
        warn!(resource = %s.name, "booking manifest entry skipped: {}", s.why);
    }
    let names: Vec<String> = manifest.resources.iter().map(|r| r.name.clone()).collect();
    debug!(
        managed = names.len(),
        skipped = manifest.skipped.len(),
        "booking manifest fetched"
    );
    booking.tell(Input::Manifest(manifest.resources)).await;
    booking.metrics.manifest_loaded();

    read(booking, &names).await;
    Ok(())
}

/// Reads the availability of `names` and queues what was read as one input.
async fn read(booking: &Booking, names: &[String]) {
    // Each read holds its resource's lock only while it is made; the client
    // bounds how many run at once. A resource being changed right now is not
    // read: the change reads it back and reports what it holds.
    let reads = join_all(names.iter().map(|name| async move {
        let Some(guard) = booking.locks.try_lock(name) else {
            debug!("availability of {name} not read this time: a change of it is in flight and reads it back");
            return (name, None);
        };
        let read = booking.client.read(name).await;
        (name, Some((read, guard.release())))
    }))
    .await;
    let mut observed = Vec::with_capacity(reads.len());
    let mut guards = Vec::with_capacity(reads.len());
    for (name, read) in reads {
        match read {
            None => {}
            Some((Ok(available), mark)) => match mark.relock() {
                // Held until the batch is queued: no change of it can be reported in between.
                Some(guard) => {
                    observed.push(Observed {
                        resource: name.clone(),
                        available,
                    });
                    guards.push(guard);
                }
                None => debug!("availability of {name} read, then overtaken by a change: the change reports it"),
            },
            Some((Err(e), _)) => warn!("availability of {name} not read: {e}; it is read again next round"),
        }
    }
    if !observed.is_empty() {
        booking.tell(Input::Availability(observed)).await;
    }
    drop(guards);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_retries_back_off_to_well_under_the_period() {
        let waits: Vec<u64> = (0..10)
            .map(|n| retry_wait(Duration::from_secs(15 * 60), n).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(retry_wait(Duration::from_secs(8), 5), Duration::from_secs(2));
        assert_eq!(retry_wait(Duration::from_secs(1), 0), Duration::from_millis(250));
        assert_eq!(retry_wait(Duration::from_secs(3600), u32::MAX), RETRY_CAP);
    }
}
