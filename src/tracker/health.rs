//! What an experiment's health is at one instant, and the wording of its issues.
//!
//! Pure judgement: given the evidence (present streams, jump, feed freshness)
//! it says healthy or not and why, in the words of PROTOCOL.md §4.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Topic;

/// The result of judging one experiment now.
///
/// The map and the list are shared (with the previous judgement when they are
/// the same, with health events and with published snapshots): judging
/// happens on every relay frame, and most frames change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    pub healthy: bool,
    pub jump_ok: bool,
    /// Keyed by full stream topic: required streams and every present stream.
    pub stream_ok: Arc<BTreeMap<Topic, bool>>,
    /// Human-readable reasons, sorted: jump first, then missing, then unhealthy streams.
    pub issues: Arc<Vec<String>>,
    /// Every required stream is healthy: what availability should be.
    pub bookable: bool,
}

impl Health {
    /// No health event between the two (PROTOCOL.md §4): overall health, jump
    /// health, which streams are not ok and whether a feed is silent are all
    /// equal. The wording of an issue is not compared: a required stream that
    /// goes from stale to vanished was unhealthy and still is.
    pub fn same_as(&self, other: &Health) -> bool {
        self.healthy == other.healthy
            && self.jump_ok == other.jump_ok
            && self.silent() == other.silent()
            && self.not_ok().eq(other.not_ok())
    }

    /// The streams judged not ok, in topic order.
    fn not_ok(&self) -> impl Iterator<Item = &Topic> {
        self.stream_ok.iter().filter(|(_, ok)| !**ok).map(|(topic, _)| topic)
    }

    /// Whether the relay and the jump feed are silent, as far as this experiment is concerned.
    fn silent(&self) -> (bool, bool) {
        let has = |what: &str| self.issues.iter().any(|i| i == what);
        (has(RELAY_SILENT), has(JUMP_SILENT))
    }
}

pub const MISSING_JUMP: &str = "missing jump";
pub const JUMP_SILENT: &str = "jump feed silent";
pub const RELAY_SILENT: &str = "relay feed silent";
pub const MISSING_REQUIRED: &str = "missing required ";
pub const UNHEALTHY: &str = "unhealthy ";

/// A recorded change of an experiment's health (PROTOCOL.md §4, §6).
///
/// Compact and cheap to clone: a ring holds many, and a flapping experiment
/// repeats a few states, whose maps and lists its events share (see
/// `Experiment::record`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthEvent {
    pub when: DateTime<Utc>,
    pub healthy: bool,
    pub jump_ok: bool,
    pub stream_ok: Arc<BTreeMap<Topic, bool>>,
    pub issues: Arc<Vec<String>>,
}

impl HealthEvent {
    pub fn new(when: DateTime<Utc>, h: &Health) -> Self {
        Self {
            when,
            healthy: h.healthy,
            jump_ok: h.jump_ok,
            stream_ok: h.stream_ok.clone(),
            issues: h.issues.clone(),
        }
    }
}
