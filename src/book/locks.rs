//! One booking conversation per resource at a time, and no read older than a change.
//!
//! Manifest-round reads and availability changes both take a resource's lock
//! before talking to the booking API about it, so there are never two
//! requests about one resource in flight. A change keeps the lock until its
//! outcome is queued for the tracker. A round's read keeps it only for the
//! read itself: the round queues all its reads as one input later, and must
//! not make urgent changes of other resources wait for its slowest read.
//! Instead each resource counts the changes started on it; a read remembers
//! the count it saw ([`Mark`]) and, when the round queues its reads, takes
//! the lock again ([`Mark::relock`]) and is dropped if a change started since.
//! Holding those locks while the reads are queued keeps the tracker hearing
//! about each resource in the order things happened: a read can never
//! overtake a change. An entry lives only while someone holds, awaits or
//! marks it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

/// A resource's lock; what it guards is the number of changes started on the resource.
type Slot = Arc<AsyncMutex<u64>>;
type Table = Arc<Mutex<HashMap<String, Slot>>>;

#[derive(Clone, Default)]
pub struct ResourceLocks {
    table: Table,
}

/// Held while talking to the booking API about one resource.
pub struct ResourceGuard {
    // Declared first, so released before the entry looks at who still needs it.
    guard: OwnedMutexGuard<u64>,
    entry: Entry,
}

/// A released lock that remembers how many changes the resource had seen.
pub struct Mark {
    entry: Entry,
    changes: u64,
}

/// A handle on a table entry that forgets the entry when the last handle goes.
struct Entry {
    name: String,
    slot: Slot,
    table: Table,
}

impl ResourceLocks {
    fn entry(&self, name: &str) -> Entry {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        Entry {
            name: name.to_string(),
            slot: table.entry(name.to_string()).or_default().clone(),
            table: self.table.clone(),
        }
    }

    /// Waits until nobody else is talking about `name`.
    pub async fn lock(&self, name: &str) -> ResourceGuard {
        let entry = self.entry(name);
        let guard = entry.slot.clone().lock_owned().await;
        ResourceGuard { guard, entry }
    }

    /// The lock of `name` if nobody is talking about it now.
    pub fn try_lock(&self, name: &str) -> Option<ResourceGuard> {
        let entry = self.entry(name);
        let guard = entry.slot.clone().try_lock_owned().ok()?;
        Some(ResourceGuard { guard, entry })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl ResourceGuard {
    /// Counts a change of the resource, before its request is sent: reads marked earlier become stale.
    pub fn changing(&mut self) {
        *self.guard += 1;
    }

    /// Lets others talk about the resource, remembering how many changes it had seen.
    pub fn release(self) -> Mark {
        let ResourceGuard { guard, entry } = self;
        let changes = *guard;
        drop(guard);
        Mark { entry, changes }
    }
}

impl Mark {
    /// The lock again, if nobody is talking about the resource now and no
    /// change started since the mark: then what was learnt before is still the latest.
    pub fn relock(self) -> Option<ResourceGuard> {
        let guard = self.entry.slot.clone().try_lock_owned().ok()?;
        if *guard != self.changes {
            return None;
        }
        Some(ResourceGuard {
            guard,
            entry: self.entry,
        })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Under the table lock nobody can pick up a new handle, so a count of two
        // (the table's and this one) means no holder, waiter or mark remains.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if Arc::strong_count(&self.slot) == 2 && table.get(&self.name).is_some_and(|s| Arc::ptr_eq(s, &self.slot)) {
            table.remove(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_same_resource_waits_and_others_do_not() {
        let locks = ResourceLocks::default();
        let a = locks.lock("r-a").await;
        let _b = tokio::time::timeout(Duration::from_secs(5), locks.lock("r-b"))
            .await
            .expect("another resource is free");
        let busy = tokio::time::timeout(Duration::from_millis(50), locks.lock("r-a")).await;
        assert!(busy.is_err(), "r-a is held, so a second conversation waits");
        assert!(locks.try_lock("r-a").is_none(), "and cannot be taken without waiting");
        drop(a);
        let again = tokio::time::timeout(Duration::from_secs(5), locks.lock("r-a"))
            .await
            .expect("released");
        assert_eq!(locks.len(), 2);
        drop(again);
        assert_eq!(locks.len(), 1, "r-a is forgotten once nobody holds or awaits it");
    }

    #[tokio::test]
    async fn a_mark_relocks_only_if_no_change_started_since() {
        let locks = ResourceLocks::default();
        let quiet = locks.lock("r-a").await.release();
        let changed = locks.lock("r-b").await.release();
        assert_eq!(locks.len(), 2, "a mark keeps its entry, and so its count");
        // Another read of r-a in between changes nothing; a change of r-b does.
        drop(locks.lock("r-a").await);
        let mut change = locks.lock("r-b").await;
        change.changing();
        drop(change);
        let held = quiet.relock().expect("no change on r-a: the read is still the latest");
        assert!(locks.try_lock("r-a").is_none(), "relocked: held again");
        assert!(changed.relock().is_none(), "a change started on r-b since the mark");
        assert_eq!(locks.len(), 1, "r-b is forgotten with its last mark");
        drop(held);
        assert_eq!(locks.len(), 0);
    }

    #[tokio::test]
    async fn a_mark_does_not_relock_while_someone_talks_about_the_resource() {
        let locks = ResourceLocks::default();
        let mark = locks.lock("r-a").await.release();
        let _talking = locks.lock("r-a").await;
        assert!(mark.relock().is_none());
    }
}
