//! The read-only picture the tracker publishes for the REST API and dashboard.
//!
//! Built after each change and shared behind an `Arc`: readers never touch
//! the tracker. Event rings and reports are shared, not copied.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;

use super::{EventRing, SystemAlert, Topic, Tracker};
use crate::report::Report;

/// One experiment as `GET /api/v1/experiments` shows it (PROTOCOL.md §6).
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentView {
    pub topic_name: String,
    pub resource_name: Option<String>,
    pub available: Option<bool>,
    pub healthy: bool,
    pub jump_ok: bool,
    pub stream_ok: Arc<BTreeMap<Topic, bool>>,
    pub stream_required: BTreeMap<Topic, bool>,
    pub stream_reports: BTreeMap<Topic, Arc<Report>>,
    pub jump_report: Option<Arc<Report>>,
    pub health_events: usize,
    pub first_checked: DateTime<Utc>,
    pub last_checked_jump: Option<DateTime<Utc>>,
    pub last_checked_streams: Option<DateTime<Utc>>,
    pub last_found_in_manifest: Option<DateTime<Utc>>,
    /// Current issues, in the words of the health events.
    pub issues: Vec<String>,
    /// The availability health asks for (required streams healthy).
    pub bookable: bool,
    /// Still inside the startup grace: nothing is recorded or changed yet.
    pub in_startup_grace: bool,
    #[serde(skip)]
    pub events: Arc<EventRing>,
}

/// Everything readers may see, as of `at`.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub at: Option<DateTime<Utc>>,
    /// Differs between any two snapshots a process publishes, and between
    /// processes: the experiment list's entity tag. Set by the publisher.
    pub version: u64,
    /// Problems first, then by topic.
    pub experiments: Vec<ExperimentView>,
    pub alerts: Vec<SystemAlert>,
    /// `experiments` as JSON, serialised by the first reader and shared by the rest.
    json: OnceLock<Bytes>,
    /// The same, gzip-compressed, by the first reader that accepts gzip.
    gzip: OnceLock<Bytes>,
}

impl Snapshot {
    /// Found by binary search in each of the two runs `experiments` is sorted in: no index to build.
    pub fn experiment(&self, topic: &str) -> Option<&ExperimentView> {
        let problems = self.experiments.partition_point(|e| !e.healthy);
        let (unhealthy, healthy) = self.experiments.split_at(problems);
        [unhealthy, healthy].into_iter().find_map(|run| {
            let i = run.binary_search_by(|e| e.topic_name.as_str().cmp(topic)).ok()?;
            Some(&run[i])
        })
    }

    /// [`Self::experiments_json`] if a reader has already made it.
    pub fn experiments_json_made(&self) -> Option<Bytes> {
        self.json.get().cloned()
    }

    /// The JSON array of `GET /api/v1/experiments`.
    pub fn experiments_json(&self) -> Bytes {
        self.json
            .get_or_init(|| {
                // Plain data with string keys: serialisation cannot fail.
                Bytes::from(serde_json::to_vec(&self.experiments).expect("experiment views serialise"))
            })
            .clone()
    }

    /// [`Self::experiments_gzip`] if a reader has already made it.
    pub fn experiments_gzip_made(&self) -> Option<Bytes> {
        self.gzip.get().cloned()
    }

    /// [`Self::experiments_json`] gzip-compressed: the list repeats its field
    /// names for every stream, so it shrinks about seventeenfold even at the
    /// fastest level, which is what keeps making it cheap.
    pub fn experiments_gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                let json = self.experiments_json();
                let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 8), Compression::fast());
                // Writing into a Vec cannot fail.
                gz.write_all(&json).expect("compressing into memory");
                Bytes::from(gz.finish().expect("compressing into memory"))
            })
            .clone()
    }
}

impl Tracker {
    /// Builds the published picture; linear in the number of experiments.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Snapshot {
        let mut experiments: Vec<ExperimentView> = self
            .experiments()
            .map(|e| ExperimentView {
                topic_name: e.topic.clone(),
                resource_name: e.resource.clone(),
                available: e.availability.observed,
                healthy: e.health.healthy,
                jump_ok: e.health.jump_ok,
                stream_ok: e.health.stream_ok.clone(),
                stream_required: e
                    .health
                    .stream_ok
                    .keys()
                    .map(|t| (t.clone(), e.required.contains(t)))
                    .collect(),
                stream_reports: e.streams.iter().map(|(t, s)| (t.clone(), s.report.clone())).collect(),
                jump_report: e.jump.clone(),
                health_events: e.events.len(),
                first_checked: e.first_seen,
                last_checked_jump: e.last_checked_jump,
                last_checked_streams: e.last_checked_streams,
                last_found_in_manifest: e.last_found_in_manifest,
                // Copied, not shared: most experiments are healthy and have none.
                issues: e.health.issues.to_vec(),
                bookable: e.health.bookable,
                in_startup_grace: e.in_grace(now, self.cfg.startup),
                events: e.events.clone(),
            })
            .collect();
        experiments.sort_by(|a, b| (a.healthy, &a.topic_name).cmp(&(b.healthy, &b.topic_name)));
        Snapshot {
            at: Some(now),
            experiments,
            alerts: self.alerts().cloned().collect(),
            json: OnceLock::new(),
            gzip: OnceLock::new(),
            version: 0,
        }
    }
}
