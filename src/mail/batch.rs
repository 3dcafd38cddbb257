//! What has happened since the last digest went out.
//!
//! Pure bookkeeping: it folds the reconciler's `Notify` and `Alert` effects
//! into one batch, keeping per experiment only the latest news and how many
//! times it changed, so a batch stays as small as the lab however long an
//! SMTP outage lasts. It never decides when to send.

use std::collections::BTreeMap;

use crate::tracker::{Effect, News, SystemAlert};

/// The latest news of one experiment and how many health events led to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub latest: News,
    /// Health events folded into this one; more than one means it flapped.
    pub count: usize,
}

/// Everything waiting for the next digest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// By topic, so the digest is sorted and each experiment appears once.
    changes: BTreeMap<String, Change>,
    /// System alerts raised since the last digest, in order of arrival.
    alerts: Vec<SystemAlert>,
}

impl Batch {
    /// Folds one effect in. Cleared alerts are not kept: the digest asks the
    /// published snapshot which alerts are still active when it is written.
    pub fn add(&mut self, effect: Effect) {
        match effect {
            Effect::Notify(news) => {
                for n in news {
                    match self.changes.get_mut(&n.topic) {
                        Some(c) => {
                            c.latest = n;
                            c.count += 1;
                        }
                        None => {
                            self.changes.insert(n.topic.clone(), Change { latest: n, count: 1 });
                        }
                    }
                }
            }
            Effect::Alert { alert, raised: true } => {
                let known = self
                    .alerts
                    .iter()
                    .any(|a| a.kind == alert.kind && a.since == alert.since);
                if !known {
                    self.alerts.push(alert);
                }
            }
            Effect::Alert { raised: false, .. } | Effect::SetAvailability(_) => {}
        }
    }

    /// Whether there is news worth an email; alerts alone wait for the next one.
    pub fn has_news(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Health events in the batch, counting every change of a flapping experiment.
    pub fn events(&self) -> usize {
        self.changes.values().map(|c| c.count).sum()
    }

    /// Sorted by topic.
    pub fn changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.values()
    }

    pub fn alerts(&self) -> &[SystemAlert] {
        &self.alerts
    }
}
