//! One experiment's last health events: a bounded ring that is cheap to share.
//!
//! Published snapshots share the tracker's ring, so recording an event must
//! copy what it changes. Events live in blocks of [`BLOCK`]; full blocks are
//! never changed again and stay shared, so recording copies at most the
//! newest, unfinished block and the list of blocks, never the whole ring: a
//! frame that gives every experiment an event does not briefly hold every
//! ring twice.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeSeq, Serializer};

use super::HealthEvent;

/// Events per block: small enough to copy, large enough that the list of blocks stays short.
const BLOCK: usize = 16;

/// At most `keep` events, oldest first (`keep` is given to [`EventRing::push`]).
#[derive(Debug, Default)]
pub struct EventRing {
    /// Full blocks, oldest first: never changed again, so every copy of the ring shares them.
    full: VecDeque<Arc<[HealthEvent]>>,
    /// Events at the start of the first full block that have left the ring.
    skip: usize,
    /// The newest events, fewer than [`BLOCK`]: the only part a copy duplicates.
    open: Vec<HealthEvent>,
    len: usize,
}

impl Clone for EventRing {
    fn clone(&self) -> Self {
        // Room for a whole block, so the next event does not reallocate the copy.
        let mut open = Vec::with_capacity(BLOCK);
        open.extend(self.open.iter().cloned());
        Self {
            full: self.full.clone(),
            skip: self.skip,
            open,
            len: self.len,
        }
    }
}

impl EventRing {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most recent event.
    pub fn back(&self) -> Option<&HealthEvent> {
        self.open.last().or_else(|| self.full.back()?.last())
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &HealthEvent> {
        let skip = self.skip;
        self.full
            .iter()
            .enumerate()
            .flat_map(move |(i, b)| b[if i == 0 { skip } else { 0 }..].iter())
            .chain(self.open.iter())
    }

    /// Appends `event` and lets the oldest go beyond `keep`.
    pub fn push(&mut self, event: HealthEvent, keep: usize) {
        if self.open.capacity() == 0 {
            self.open.reserve_exact(BLOCK);
        }
        self.open.push(event);
        self.len += 1;
        if self.open.len() == BLOCK {
            self.full.push_back(std::mem::take(&mut self.open).into());
        }
        while self.len > keep {
            self.len -= 1;
            match self.full.front() {
                Some(first) => {
                    self.skip += 1;
                    if self.skip == first.len() {
                        self.full.pop_front();
                        self.skip = 0;
                    }
                }
                None => {
                    self.open.remove(0);
                }
            }
        }
    }
}

/// A JSON array of the events, oldest first.
impl Serialize for EventRing {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for event in self.iter() {
            seq.serialize_element(event)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::tracker::Health;

    fn event(secs: u32) -> HealthEvent {
        let when = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, secs).unwrap();
        HealthEvent::new(when, &Health::default())
    }

    fn seconds(ring: &EventRing) -> Vec<u32> {
        use chrono::Timelike;
        ring.iter().map(|e| e.when.second()).collect()
    }

    #[test]
    fn keeps_the_last_events_in_order_across_blocks() {
        let mut ring = EventRing::default();
        for s in 0..50 {
            ring.push(event(s), 20);
            assert_eq!(ring.len(), (s as usize + 1).min(20));
        }
        assert_eq!(seconds(&ring), (30..50).collect::<Vec<_>>());
        assert_eq!(ring.back().map(|e| e.when.timestamp() % 60), Some(49));
        assert_eq!(ring.iter().next_back().map(|e| e.when), ring.back().map(|e| e.when));
        let json = serde_json::to_value(&ring).unwrap();
        assert_eq!(json.as_array().map(Vec::len), Some(20));
        assert_eq!(json[0]["when"], "2026-11-21T10:00:30Z");
    }

    #[test]
    fn a_shared_copy_is_untouched_and_shares_the_full_blocks() {
        let mut ring = EventRing::default();
        for s in 0..40 {
            ring.push(event(s), 100);
        }
        let published = ring.clone();
        ring.push(event(40), 100);
        assert_eq!(published.len(), 40);
        assert_eq!(seconds(&published), (0..40).collect::<Vec<_>>());
        assert_eq!(seconds(&ring), (0..41).collect::<Vec<_>>());
        assert_eq!(ring.full.len(), 2);
        assert!(Arc::ptr_eq(&ring.full[0], &published.full[0]));
        assert!(Arc::ptr_eq(&ring.full[1], &published.full[1]));
        assert_eq!((published.open.len(), ring.open.len()), (8, 9));
    }

    #[test]
    fn a_ring_of_one_keeps_the_latest() {
        let mut ring = EventRing::default();
        assert!(ring.is_empty() && ring.back().is_none());
        for s in 0..BLOCK as u32 * 2 + 3 {
            ring.push(event(s), 1);
        }
        assert_eq!(seconds(&ring), [BLOCK as u32 * 2 + 2]);
        assert!(ring.full.is_empty() && ring.open.len() == 1);
    }
}
