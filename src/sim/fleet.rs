//! A simulated fleet of experiments at any size, for benchmarks and load runs.
//!
//! Experiment `e` is `exp<e>` (resource `r-exp<e>`) with three streams of its
//! own (`-st-data` and `-st-video` required, `-st-cam` not), one in ten
//! streams watched by a viewer, and a host connection on the jump. Reports
//! look like the relay's: Go duration strings, fractional sizes and rates,
//! nanosecond timestamps. It only builds data; it never judges or sends it.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::report::{Last, Report, RxTx, Statistics};
use crate::tracker::Resource;

/// Stream names of every experiment; the first [`REQUIRED`] are required by the manifest.
pub const STREAMS: [&str; 3] = ["st-data", "st-video", "st-cam"];
pub const REQUIRED: usize = 2;

/// How long ago a stale stream last sent: far beyond any `STATUS_HEALTH_LAST_ACTIVE`.
pub const STALE: Duration = Duration::from_secs(90);

/// Relay reports per experiment on average: three streams plus 0.3 viewers.
const REPORTS_PER_EXPERIMENT: f64 = 3.3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fleet {
    pub experiments: usize,
}

impl Fleet {
    /// A fleet whose relay snapshot holds about `reports` reports.
    pub fn with_reports(reports: usize) -> Self {
        Self {
            experiments: (reports as f64 / REPORTS_PER_EXPERIMENT).round() as usize,
        }
    }

    /// Topic stub of experiment `e`.
    pub fn topic(e: usize) -> String {
        format!("exp{e:05}")
    }

    pub fn resource(e: usize) -> String {
        format!("r-exp{e:05}")
    }

    /// Full topic of stream `s` (an index into [`STREAMS`]) of experiment `e`.
    pub fn stream(e: usize, s: usize) -> String {
        format!("exp{e:05}-{}", STREAMS[s])
    }

    /// The relay's snapshot; `stale(e, s)` picks the streams that last sent [`STALE`] ago.
    pub fn relay(&self, stale: impl Fn(usize, usize) -> bool) -> Vec<Report> {
        let mut reports = Vec::with_capacity((self.experiments as f64 * REPORTS_PER_EXPERIMENT) as usize + 1);
        for e in 0..self.experiments {
            for s in 0..STREAMS.len() {
                let topic = Self::stream(e, s);
                let last = if stale(e, s) {
                    STALE
                } else {
                    // 5–85 ms with a microsecond fraction, as a busy stream shows.
                    Duration::from_micros((5_000 + s * 40_000 + (e % 1000) * 37) as u64)
                };
                if (e * STREAMS.len() + s) % 10 == 0 {
                    reports.push(connection(&topic, &["read"], None, "Mozilla/5.0 (X11; Linux x86_64)"));
                }
                reports.push(connection(
                    &topic,
                    &["read", "write", "expt"],
                    Some(last),
                    "Go-http-client/1.1",
                ));
            }
        }
        reports
    }

    /// The jump's snapshot: every experiment's host connection.
    pub fn jump(&self) -> Vec<Report> {
        (0..self.experiments)
            .map(|e| connection(&Self::topic(e), &["host"], None, "Go-http-client/1.1"))
            .collect()
    }

    /// The manifest as the tracker takes it.
    pub fn resources(&self) -> Vec<Resource> {
        (0..self.experiments)
            .map(|e| Resource {
                name: Self::resource(e),
                topic: Self::topic(e),
                required: (0..REQUIRED).map(|s| Self::stream(e, s)).collect(),
            })
            .collect()
    }

    /// The manifest as the booking API serves it (`GET /admin/resources`).
    pub fn book_manifest(&self) -> Map<String, Value> {
        (0..self.experiments)
            .map(|e| {
                let entry = json!({
                    "topic_stub": Self::topic(e),
                    "streams": &STREAMS[..REQUIRED],
                    "description": "a simulated rig",
                    "tests": [],
                    "config_url": "",
                });
                (Self::resource(e), entry)
            })
            .collect()
    }
}

/// A snapshot as the relay and jump put it on the wire: a JSON array in camelCase.
pub fn frame_json(reports: &[Report]) -> String {
    Value::Array(reports.iter().map(super::stats::wire).collect()).to_string()
}

fn connection(topic: &str, scopes: &[&str], last: Option<Duration>, agent: &str) -> Report {
    Report {
        topic: topic.to_string(),
        can_read: true,
        can_write: scopes.contains(&"write"),
        connected: Some(at(46, 294_717_207)),
        expires_at: Some(at(46, 0) + chrono::Duration::hours(1)),
        remote_addr: "203.0.113.7".into(),
        user_agent: agent.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        stats: RxTx {
            tx: Statistics {
                last: Last(last),
                size: if last.is_some() { 1234.5 } else { 0.0 },
                fps: if last.is_some() { 24.97 } else { 0.0 },
            },
            rx: Statistics::default(),
        },
    }
}

/// A fixed time on 2026-11-21, so frames are the same on every run.
fn at(secs: u32, nanos: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 4, secs)
        .single()
        .map(|t| t + chrono::Duration::nanoseconds(nanos.into()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::parse_frame;

    #[test]
    fn a_fleet_frame_has_the_size_asked_for_and_parses_cleanly() {
        let fleet = Fleet::with_reports(1000);
        let reports = fleet.relay(|e, s| e == 1 && s == 0);
        assert_eq!(fleet.experiments, 303);
        assert!((990..=1010).contains(&reports.len()), "{} reports", reports.len());
        let frame = parse_frame(&frame_json(&reports)).expect("a valid frame");
        assert_eq!(frame.defects, 0);
        assert_eq!(frame.reports, reports, "the wire form round-trips");
        let stale: Vec<&str> = reports
            .iter()
            .filter(|r| r.stats.tx.last.0 == Some(STALE))
            .map(|r| r.topic.as_str())
            .collect();
        assert_eq!(stale, ["exp00001-st-data"]);
        assert_eq!(fleet.resources()[7].required, ["exp00007-st-data", "exp00007-st-video"]);
        assert_eq!(
            fleet.book_manifest()["r-exp00007"]["streams"],
            json!(["st-data", "st-video"])
        );
        assert_eq!(fleet.jump().len(), 303);
    }
}
