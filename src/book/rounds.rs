//! Manifest rounds: level-triggered repair of availability.
//!
//! At start and every `STATUS_QUERY_BOOK_EVERY`: fetch the manifest, hand it
//! to the tracker, then read every managed resource's availability and hand
//! all of them over as ONE input, so the tracker judges the round as one
//! evaluation (the mass-change guard counts per evaluation). A lost PUT or a
//! manual edit in the booking system is thus corrected on the next round, and
//! a newly listed resource is read before anything is decided for it.
//! A failed manifest fetch is retried sooner; meanwhile the last good
//! manifest stays in force simply because nothing new is sent. Reads that
//! failed are retried on the same shorter backoff, not left until the next
//! round: until it is read, nothing is decided for a resource.
//!
//! A read holds its resource's lock only while it is made, so a slow read
//! never delays changes of other resources; one that a change overtook
//! before the round's reads are queued is dropped (see `locks`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::manifest;
use super::{BookError, Booking};
use crate::tracker::{Input, Observed};

/// First wait after a failed manifest fetch or read; doubles up to [`RETRY_CAP`] or a quarter period.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(60);

/// A warning about reads that failed names at most this many resources.
const NAMED_IN_A_WARNING: usize = 5;

pub(super) async fn run(booking: Arc<Booking>, every: Duration) {
    let mut manifest_failures: u32 = 0;
    // Resources of the latest manifest whose availability could not be read, and how often in a row.
    let mut unread: Vec<String> = Vec::new();
    let mut read_failures: u32 = 0;
    let mut next_round = Instant::now();
    loop {
        let failed = if Instant::now() >= next_round {
            let outcome = tokio::select! {
                () = booking.shutdown.cancelled() => break,
                outcome = round(&booking) => outcome,
            };
            match outcome {
                Ok(failed) => {
                    manifest_failures = 0;
                    read_failures = 0;
                    next_round = Instant::now() + every;
                    failed
                }
                Err(e) => {
                    let wait = retry_wait(every, manifest_failures);
                    manifest_failures = manifest_failures.saturating_add(1);
                    warn!("booking manifest not fetched: {e}; the last good manifest stays in force; retrying in {wait:?}");
                    next_round = Instant::now() + wait;
                    // Reads still owed are retried as they were.
                    Vec::new()
                }
            }
        } else {
            let names = std::mem::take(&mut unread);
            read_failures = read_failures.saturating_add(1);
            tokio::select! {
                () = booking.shutdown.cancelled() => break,
                failed = read(&booking, &names) => failed,
            }
        };
        if !failed.is_empty() {
            let wait = retry_wait(every, read_failures);
            warn_unread(&failed, wait);
            unread = failed.into_iter().map(|(name, _)| name).collect();
        }
        let wake = if unread.is_empty() {
            next_round
        } else {
            next_round.min(Instant::now() + retry_wait(every, read_failures))
        };
        tokio::select! {
            () = booking.shutdown.cancelled() => break,
            () = tokio::time::sleep_until(wake) => {}
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
/// Returns the reads that failed.
async fn round(booking: &Booking) -> Result<Vec<(String, BookError)>, BookError> {
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
    Ok(read(booking, &names).await)
}

/// Reads the availability of `names` and queues what was read as one input.
/// Returns the reads that failed.
async fn read(booking: &Booking, names: &[String]) -> Vec<(String, BookError)> {
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
    let mut failed = Vec::new();
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
            Some((Err(e), _)) => failed.push((name.clone(), e)),
        }
    }
    if !observed.is_empty() {
        booking.tell(Input::Availability(observed)).await;
    }
    drop(guards);
    failed
}

/// One line for all the reads that failed: how many, which, the first error, and when they are read again.
fn warn_unread(failed: &[(String, BookError)], wait: Duration) {
    let Some((_, first)) = failed.first() else {
        return;
    };
    let names: Vec<&str> = failed
        .iter()
        .take(NAMED_IN_A_WARNING)
        .map(|(name, _)| name.as_str())
        .collect();
    let more = failed.len().saturating_sub(NAMED_IN_A_WARNING);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    warn!(
        unread = failed.len(),
        "availability not read for {}{more}: {first}; reading them again in {wait:?}",
        names.join(", ")
    );
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
