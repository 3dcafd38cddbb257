//! Readiness (`GET /readyz`): whether what the service says is worth
//! believing yet.
//!
//! Liveness (`/healthz`) only says the process serves. Readiness also needs
//! evidence from outside: a frame accepted from each feed and a booking
//! manifest loaded. Until then health and bookability are guesses. Once
//! reached it stays reached; a feed falling silent later is a system alert
//! (`/api/v1/alerts`, `status_system_alerts`), not a reason to pull the
//! service out of rotation. It reads counters only, and never waits for a peer.

use serde::Serialize;

use crate::feed::{FeedStatus, FeedStatuses};

/// The body of `GET /readyz`.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// What is still awaited, in words an operator can act on.
    pub missing: Vec<&'static str>,
}

/// Judges readiness from the feeds' counters and whether a manifest has loaded.
pub fn check(feeds: &FeedStatuses, manifest_loaded: bool) -> Readiness {
    let awaited = [
        (!delivered(&feeds.relay), "relay feed: no frame yet"),
        (!delivered(&feeds.jump), "jump feed: no frame yet"),
        (!manifest_loaded, "booking manifest: not loaded"),
    ];
    let missing: Vec<&'static str> = awaited
        .iter()
        .filter(|(open, _)| *open)
        .map(|&(_, what)| what)
        .collect();
    Readiness {
        ready: missing.is_empty(),
        missing,
    }
}

/// A frame was accepted (a rejected one proves the connection, not the data).
fn delivered(feed: &FeedStatus) -> bool {
    feed.frames_received > feed.frames_rejected
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(received: u64, rejected: u64) -> FeedStatus {
        FeedStatus {
            frames_received: received,
            frames_rejected: rejected,
            ..FeedStatus::default()
        }
    }

    fn feeds(relay: FeedStatus, jump: FeedStatus) -> FeedStatuses {
        FeedStatuses { relay, jump }
    }

    #[test]
    fn nothing_yet_means_everything_missing() {
        let r = check(&feeds(feed(0, 0), feed(0, 0)), false);
        assert!(!r.ready);
        assert_eq!(
            r.missing,
            [
                "relay feed: no frame yet",
                "jump feed: no frame yet",
                "booking manifest: not loaded"
            ]
        );
    }

    #[test]
    fn rejected_frames_do_not_count() {
        let r = check(&feeds(feed(3, 3), feed(1, 0)), true);
        assert_eq!(r.missing, ["relay feed: no frame yet"]);
    }

    #[test]
    fn ready_once_both_feeds_and_the_manifest_arrived() {
        let r = check(&feeds(feed(4, 1), feed(1, 0)), true);
        assert_eq!(
            r,
            Readiness {
                ready: true,
                missing: vec![]
            }
        );
    }
}
