//! One booking conversation per resource at a time.
//!
//! Manifest-round reads and availability changes both take a resource's lock
//! before talking to the booking API about it and keep it until what they
//! learned is queued for the tracker, so the tracker hears about each
//! resource in the order things happened: a read can never overtake a change.
//! An entry lives only while someone holds or awaits it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Table = Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>;

#[derive(Clone, Default)]
pub struct ResourceLocks {
    table: Table,
}

/// Held while talking to the booking API about one resource.
pub struct ResourceGuard {
    name: String,
    guard: Option<OwnedMutexGuard<()>>,
    table: Table,
}

impl ResourceLocks {
    /// Waits until nobody else is talking about `name`.
    pub async fn lock(&self, name: &str) -> ResourceGuard {
        let mutex = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.entry(name.to_string()).or_default().clone()
        };
        ResourceGuard {
            name: name.to_string(),
            guard: Some(mutex.lock_owned().await),
            table: self.table.clone(),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for ResourceGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        // Under the table lock nobody can pick up a new handle, so a count of one
        // (the table's own) means no holder and no waiter remain.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.get(&self.name).is_some_and(|m| Arc::strong_count(m) == 1) {
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
        drop(a);
        let again = tokio::time::timeout(Duration::from_secs(5), locks.lock("r-a"))
            .await
            .expect("released");
        assert_eq!(locks.len(), 2);
        drop(again);
        assert_eq!(locks.len(), 1, "r-a is forgotten once nobody holds or awaits it");
    }
}
