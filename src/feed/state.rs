//! What each feed's subscription reports about itself, for `GET /api/v1/feeds`.
//!
//! The subscription task writes, the REST API reads a copy; the lock is held
//! only to copy or bump a few fields and never across an `.await`, so a
//! reader cannot stall a feed. It never goes through the reconciler: the
//! state of the observer must stay visible even when the tracker is busy.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::token::Feed;

/// One feed's connection and traffic, as the REST API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FeedStatus {
    pub connected: bool,
    /// When the current connection was established; `null` while disconnected.
    pub connected_since: Option<DateTime<Utc>>,
    /// Data frames (text or binary) received over all connections.
    pub frames_received: u64,
    /// Frames refused whole: not a JSON array, or binary.
    pub frames_rejected: u64,
    /// Reports skipped and fields defaulted inside accepted frames.
    pub report_defects: u64,
    /// Connections established after the first one.
    pub reconnections: u64,
    pub last_frame_at: Option<DateTime<Utc>>,
    /// The latest failure, in the words of the log line; never a token or a code.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// The live state of one feed, shared between its subscription and the API.
#[derive(Debug, Default)]
pub struct FeedState(Mutex<FeedStatus>);

impl FeedState {
    /// A copy of the current state.
    pub fn status(&self) -> FeedStatus {
        self.lock().clone()
    }

    pub(super) fn connected(&self, now: DateTime<Utc>, first: bool) {
        let mut s = self.lock();
        s.connected = true;
        s.connected_since = Some(now);
        if !first {
            s.reconnections += 1;
        }
    }

    pub(super) fn disconnected(&self) {
        let mut s = self.lock();
        s.connected = false;
        s.connected_since = None;
    }

    /// A data frame arrived; `accepted` with its defects, or refused whole.
    pub(super) fn frame(&self, now: DateTime<Utc>, accepted: Option<u64>) {
        let mut s = self.lock();
        s.frames_received += 1;
        s.last_frame_at = Some(now);
        match accepted {
            Some(defects) => s.report_defects += defects,
            None => s.frames_rejected += 1,
        }
    }

    pub(super) fn failed(&self, now: DateTime<Utc>, error: String) {
        let mut s = self.lock();
        s.last_error = Some(error);
        s.last_error_at = Some(now);
    }

    fn lock(&self) -> MutexGuard<'_, FeedStatus> {
        // Every critical section only assigns plain fields, so a poisoned lock still holds consistent data.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Both feeds' states; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct FeedBoard {
    pub relay: Arc<FeedState>,
    pub jump: Arc<FeedState>,
}

impl FeedBoard {
    pub fn state(&self, feed: Feed) -> Arc<FeedState> {
        match feed {
            Feed::Relay => self.relay.clone(),
            Feed::Jump => self.jump.clone(),
        }
    }

    /// The body of `GET /api/v1/feeds`.
    pub fn statuses(&self) -> FeedStatuses {
        FeedStatuses {
            relay: self.relay.status(),
            jump: self.jump.status(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedStatuses {
    pub relay: FeedStatus,
    pub jump: FeedStatus,
}
