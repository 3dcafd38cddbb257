//! System alerts: problems of the observer, not of an experiment.
//!
//! A silent feed means status cannot see; a held mass change means status
//! distrusts what it sees. Both go to the log, the REST API and the next email.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    RelaySilent,
    JumpSilent,
    MassChangeHeld,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemAlert {
    pub kind: AlertKind,
    pub since: DateTime<Utc>,
    pub message: String,
}

impl SystemAlert {
    pub fn feed_silent(kind: AlertKind, since: DateTime<Utc>, last: Option<DateTime<Utc>>) -> Self {
        let feed = match kind {
            AlertKind::JumpSilent => "jump",
            _ => "relay",
        };
        let last = last.map_or("never".to_string(), |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        });
        Self {
            kind,
            since,
            message: format!(
                "{feed} feed silent: no statistics since {last}; its experiments cannot be seen{}",
                if kind == AlertKind::RelaySilent {
                    ", so none is made unbookable for it"
                } else {
                    ""
                }
            ),
        }
    }

    pub fn mass_change(since: DateTime<Utc>, held: usize, managed: usize) -> Self {
        Self {
            kind: AlertKind::MassChangeHeld,
            since,
            message: format!(
                "mass change held: {held} of {managed} managed experiments would become unbookable at once; \
                 set STATUS_MASS_CHANGE_GUARD=off to allow it"
            ),
        }
    }
}
