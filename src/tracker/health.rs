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
    /// The parts whose change makes a health event.
    pub fn same_as(&self, other: &Health) -> bool {
        self.healthy == other.healthy && self.jump_ok == other.jump_ok && self.issues == other.issues
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
