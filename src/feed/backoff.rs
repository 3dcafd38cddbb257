//! The wait between failed attempts: exponential, capped, reset by success.
//!
//! No jitter: there is one status service per relay and jump, so there is no
//! herd of clients to spread out, and predictable waits are easier to read
//! in the log.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// The peers' own clients wait 1 s, doubling to 10 s (PROTOCOL.md §2).
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .without_max_times();
        Self {
            builder,
            delays: builder.build(),
            max,
        }
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // Built without a limit on attempts or total delay, so it never ends.
        self.delays.next().unwrap_or(self.max)
    }

    /// The wait after a failed attempt; the minimum again when the connection had `worked` first.
    pub fn after_failure(&mut self, worked: bool) -> Duration {
        if worked {
            self.reset();
        }
        self.next_delay()
    }

    /// After a connection that worked: the next failure waits the minimum again.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(BACKOFF_MIN, BACKOFF_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(b: &mut Backoff, n: usize) -> Vec<u64> {
        (0..n).map(|_| b.next_delay().as_secs()).collect()
    }

    #[test]
    fn doubles_from_one_second_to_a_ten_second_cap() {
        let mut b = Backoff::default();
        assert_eq!(secs(&mut b, 7), [1, 2, 4, 8, 10, 10, 10]);
    }

    #[test]
    fn reset_starts_again_at_the_minimum() {
        let mut b = Backoff::default();
        assert_eq!(secs(&mut b, 3), [1, 2, 4]);
        b.reset();
        assert_eq!(secs(&mut b, 2), [1, 2]);
    }

    #[test]
    fn failures_grow_the_wait_to_the_cap_and_a_connection_that_worked_resets_it() {
        let mut b = Backoff::default();
        let worked = [
            false, false, false, true, false, false, false, false, false, true, false,
        ];
        let waits: Vec<u64> = worked.iter().map(|&w| b.after_failure(w).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 1, 2, 4, 8, 10, 10, 1, 2]);
    }
}
