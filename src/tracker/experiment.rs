//! One experiment's remembered evidence and decisions.
//!
//! Holds what the feeds last said (present streams, jump), what the manifest
//! requires, what the booking system holds, and the ring of health events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::health::{Health, HealthEvent, JUMP_SILENT, MISSING_JUMP, MISSING_REQUIRED, RELAY_SILENT, UNHEALTHY};
use super::ring::EventRing;
use super::Topic;
use crate::report::Report;

/// `new`, or `old` when it holds the same: equal judgements share one allocation.
fn share<T: PartialEq>(new: T, old: &Arc<T>) -> Arc<T> {
    if **old == new {
        old.clone()
    } else {
        Arc::new(new)
    }
}

/// A stream present in the latest relay snapshot.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The experiment's own connection on this topic (the healthiest, if several).
    pub report: Arc<Report>,
    /// Its last transmission was recent enough at the snapshot's time.
    pub active: bool,
    /// The relay snapshot (tracker generation) that last reported it.
    pub seen: u64,
}

/// What the booking system holds, and what we asked it to hold.
#[derive(Debug, Clone, Default)]
pub struct Availability {
    /// Last value read from the booking system; `None` before the first read.
    pub observed: Option<bool>,
    /// A change requested and not yet confirmed or failed.
    pub in_flight: Option<bool>,
    /// After a change that failed transiently or read back otherwise, no new request before this time.
    pub retry_after: Option<DateTime<Utc>>,
    /// After a refused change (or a dry run), no new request before the booking system is read again.
    pub until_read: bool,
}

/// Whether the feeds can currently be trusted (fresh snapshots within `last_checked`).
#[derive(Debug, Clone, Copy)]
pub struct FeedsFresh {
    pub relay: bool,
    pub jump: bool,
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub topic: String,
    /// Set while the experiment is in the manifest.
    pub resource: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_found_in_manifest: Option<DateTime<Utc>>,
    pub last_checked_jump: Option<DateTime<Utc>>,
    pub last_checked_streams: Option<DateTime<Utc>>,
    /// Full stream topics the manifest requires.
    pub required: BTreeSet<Topic>,
    /// Streams in the latest relay snapshot, by full topic.
    pub streams: BTreeMap<Topic, Stream>,
    /// The jump connection in the latest jump snapshot.
    pub jump: Option<Arc<Report>>,
    /// The latest judgement (also during the startup grace).
    pub health: Health,
    /// The judgement last recorded as a health event; `None` before the first.
    pub recorded: Option<Health>,
    /// Most recent last; shared with published snapshots, copied only on write.
    pub events: Arc<EventRing>,
    pub availability: Availability,
}

impl Experiment {
    pub fn new(topic: &str, now: DateTime<Utc>) -> Self {
        Self {
            topic: topic.to_string(),
            resource: None,
            first_seen: now,
            last_found_in_manifest: None,
            last_checked_jump: None,
            last_checked_streams: None,
            required: BTreeSet::new(),
            streams: BTreeMap::new(),
            jump: None,
            health: Health::default(),
            recorded: None,
            events: Arc::default(),
            availability: Availability::default(),
        }
    }

    pub fn in_grace(&self, now: DateTime<Utc>, startup: Duration) -> bool {
        now < self.first_seen + startup
    }

    /// Judges the experiment from its evidence (PROTOCOL.md §4).
    pub fn judge(&self, feeds: FeedsFresh) -> Health {
        let mut stream_ok = BTreeMap::new();
        let mut missing = Vec::new();
        let mut unhealthy = Vec::new();
        let mut bookable = true;
        for topic in &self.required {
            let ok = feeds.relay && self.streams.get(topic).is_some_and(|s| s.active);
            stream_ok.insert(topic.clone(), ok);
            bookable &= ok;
            if feeds.relay {
                match self.streams.get(topic) {
                    None => missing.push(format!("{MISSING_REQUIRED}{topic}")),
                    Some(s) if !s.active => unhealthy.push(format!("{UNHEALTHY}{topic}")),
                    Some(_) => {}
                }
            }
        }
        for (topic, s) in self.streams.iter().filter(|(t, _)| !self.required.contains(*t)) {
            let ok = feeds.relay && s.active;
            stream_ok.insert(topic.clone(), ok);
            if feeds.relay && !s.active {
                unhealthy.push(format!("{UNHEALTHY}{topic}"));
            }
        }
        let jump_ok = feeds.jump && self.jump.is_some();
        let mut issues = Vec::with_capacity(2 + missing.len() + unhealthy.len());
        if !feeds.jump {
            issues.push(JUMP_SILENT.to_string());
        } else if !jump_ok {
            issues.push(MISSING_JUMP.to_string());
        }
        if !feeds.relay && !stream_ok.is_empty() {
            issues.push(RELAY_SILENT.to_string());
        }
        issues.extend(missing);
        issues.extend(unhealthy);
        let streams_ok = stream_ok.values().all(|ok| *ok);
        Health {
            healthy: jump_ok && streams_ok,
            jump_ok,
            stream_ok: share(stream_ok, &self.health.stream_ok),
            issues: share(issues, &self.health.issues),
            bookable,
        }
    }

    /// Records the current judgement as a health event at `when`, keeping the
    /// last `keep`. Its stream map and issue list are shared with an earlier
    /// event that has the same (and the judgement then shares them too), so a
    /// flapping experiment keeps each of its few states once, not once per event.
    pub fn record(&mut self, when: DateTime<Utc>, keep: usize) {
        let health = &mut self.health;
        if let Some(same) = self.events.iter().rev().find(|e| e.stream_ok == health.stream_ok) {
            health.stream_ok = same.stream_ok.clone();
        }
        if let Some(same) = self.events.iter().rev().find(|e| e.issues == health.issues) {
            health.issues = same.issues.clone();
        }
        let event = HealthEvent::new(when, health);
        Arc::make_mut(&mut self.events).push(event, keep);
    }
}
