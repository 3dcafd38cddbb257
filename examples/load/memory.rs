//! Memory: the service's resident memory per stream once it holds a large
//! fleet with full event rings. The fleet also serves the readers' load.
//!
//! Inputs go straight into the service's input queue (the seam the feeds
//! and booking rounds use), skipping the WebSockets: building 100 relay
//! frames of 33k reports through the simulators would measure them, not us.
//! Every relay frame flips each experiment's camera stream (not required)
//! between fresh and stale, so each frame adds one health event per
//! experiment and nothing asks the booking system for a change.

use std::time::{Duration, Instant};

use anyhow::ensure;
use status::sim::fleet::{Fleet, STREAMS};
use status::tracker::{Input, Observed};

use crate::rig::{env, rss_bytes, timed_get, wait_until, Row, Served};

const SECTION: &str = "5 memory";
/// Health events kept per experiment (`STATUS_HEALTH_EVENTS`), all of which get filled.
pub const EVENTS: usize = 100;
const FRAME_WITHIN: Duration = Duration::from_secs(60);
pub const TARGET_PER_STREAM: u64 = 4096;

/// The service's settings: rings of `events`, and the jump snapshot, given
/// once, must not go stale meanwhile.
pub fn settings(events: &str) -> [(&str, &str); 2] {
    [("STATUS_HEALTH_LAST_CHECKED", "1h"), ("STATUS_HEALTH_EVENTS", events)]
}

/// The service holding `fleet` with full event rings, and what loading it cost.
pub struct Loaded {
    pub served: Served,
    pub fleet: Fleet,
    rss_before: u64,
    rss_loaded: u64,
    took: Duration,
}

impl Loaded {
    pub async fn start(fleet: Fleet) -> anyhow::Result<Loaded> {
        let events = EVENTS.to_string();
        let served = Served::start(&env(&settings(&events)))?;
        wait_until("the first snapshot", FRAME_WITHIN, Duration::from_millis(10), || {
            served.snapshot.load().at
        })
        .await?;
        let rss_before = rss_bytes()?;
        let started = Instant::now();
        served.send(Input::Manifest(fleet.resources())).await?;
        served.send(Input::Jump(fleet.jump())).await?;
        // One frame per event, plus one: the manifest's first judgement counts as an event too.
        for frame in 0..=EVENTS {
            let cam_stale = frame % 2 == 1;
            served
                .send(Input::Relay(fleet.relay(|_, s| cam_stale && s == 2)))
                .await?;
            if frame == 0 {
                let all_available = (0..fleet.experiments).map(|e| Observed {
                    resource: Fleet::resource(e),
                    available: true,
                });
                served.send(Input::Availability(all_available.collect())).await?;
            }
            // One frame at a time: queued frames would be measured as the service's memory.
            let last = Fleet::topic(fleet.experiments - 1);
            wait_until("the frame is judged", FRAME_WITHIN, Duration::from_millis(5), || {
                (served.view(&last, |v| v.healthy)? != cam_stale).then_some(())
            })
            .await?;
        }
        let took = started.elapsed();
        let snapshot = served.snapshot.load();
        let full = snapshot
            .experiments
            .iter()
            .filter(|e| e.health_events == EVENTS)
            .count();
        ensure!(full == fleet.experiments, "only {full} event rings are full");
        drop(snapshot);
        Ok(Loaded {
            rss_loaded: rss_bytes()?,
            served,
            fleet,
            rss_before,
            took,
        })
    }

    pub async fn measure(&self) -> anyhow::Result<Vec<Row>> {
        let streams = (self.fleet.experiments * STREAMS.len()) as u64;
        let loaded = self.rss_loaded.saturating_sub(self.rss_before);
        // The first reader serialises the list once per snapshot; it is kept until the next.
        let http = reqwest::Client::new();
        let json = timed_get(&http, &self.served.url("/api/v1/experiments")).await?;
        let with_json = rss_bytes()?.saturating_sub(self.rss_before);
        let per_stream = loaded / streams;
        Ok(vec![
            Row::target(
                SECTION,
                format!(
                    "resident memory per stream, {} experiments × {} streams, {EVENTS} events each",
                    self.fleet.experiments,
                    STREAMS.len()
                ),
                format!("{per_stream} B ({:.1} MiB in all)", mib(loaded)),
                format!("< {TARGET_PER_STREAM} B"),
                per_stream < TARGET_PER_STREAM,
            ),
            Row::info(
                SECTION,
                "… after the first GET /api/v1/experiments (cached JSON)",
                format!(
                    "{} B per stream ({:.1} MiB in all; the JSON is {:.1} MiB)",
                    with_json / streams,
                    mib(with_json),
                    mib(json.bytes as u64)
                ),
            ),
            Row::info(
                SECTION,
                "loading time",
                format!("{:.1} s for {} relay frames", self.took.as_secs_f64(), EVENTS + 1),
            ),
        ])
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
