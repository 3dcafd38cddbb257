//! Ingest vs the floor: how much the tracker adds to parsing a relay snapshot.
//!
//! (a) typed serde parsing of the frame alone; (b) the whole path from bytes
//! to an updated tracker with effects computed. Run: `cargo bench --bench ingest`.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

use status::config::HealthConfig;
use status::report::Report;
use status::tracker::{Input, Resource, Tracker};

const STREAMS: [&str; 3] = ["data", "video", "cam"];

/// A relay frame of about `reports` reports: three streams per experiment, one in ten
/// streams watched by a viewer, Go duration strings, one stream in fifty stalled.
/// Returns the frame and the number of experiments in it.
fn relay_frame(reports: usize) -> (String, usize) {
    let experiments = reports * 10 / 33;
    let mut all = Vec::with_capacity(reports);
    for e in 0..experiments {
        for (s, stream) in STREAMS.iter().enumerate() {
            let topic = format!("exp{e:05}-st-{stream}");
            let stalled = (e * 3 + s) % 50 == 0;
            let last = if stalled {
                "1m30.5s".to_string()
            } else {
                format!("{}.{:03}ms", 5 + s * 40, e % 1000)
            };
            all.push(report(&topic, &["read", "write", "expt"], &last, "Go-http-client/1.1"));
            if (e * 3 + s) % 10 == 0 {
                all.push(report(&topic, &["read"], "Never", "Mozilla/5.0"));
            }
        }
    }
    (serde_json::to_string(&all).expect("JSON values serialise"), experiments)
}

fn report(topic: &str, scopes: &[&str], last: &str, agent: &str) -> serde_json::Value {
    json!({
        "topic": topic, "canRead": true, "canWrite": scopes.contains(&"write"),
        "connected": "2026-11-21T10:04:46.294717207Z", "expiresAt": "2026-11-21T11:04:46Z",
        "remoteAddr": "203.0.113.7", "userAgent": agent, "scopes": scopes,
        "stats": {"tx": {"last": last, "size": 1234.5, "fps": 24.97}, "rx": {"last": "Never", "size": 0, "fps": 0}}
    })
}

fn tracker(experiments: usize) -> Tracker {
    let cfg = HealthConfig {
        last_active: Duration::from_secs(10),
        last_checked: Duration::from_secs(30),
        startup: Duration::from_secs(60),
        events: 100,
        mass_change_guard: true,
    };
    let t0 = Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap();
    let mut t = Tracker::new(cfg, t0);
    let manifest = (0..experiments)
        .map(|e| Resource {
            name: format!("r-exp{e:05}"),
            topic: format!("exp{e:05}"),
            required: STREAMS[..2].iter().map(|s| format!("exp{e:05}-st-{s}")).collect(),
        })
        .collect();
    t.handle(t0, Input::Manifest(manifest));
    t
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_snapshot");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    for reports in [1_000usize, 10_000, 30_000] {
        let (frame, experiments) = relay_frame(reports);
        group.throughput(Throughput::Elements(reports as u64));
        group.bench_with_input(BenchmarkId::new("a_parse_only", reports), &frame, |b, frame| {
            b.iter(|| serde_json::from_str::<Vec<Report>>(frame).expect("valid frame"))
        });
        let mut t = tracker(experiments);
        let mut now = Utc.with_ymd_and_hms(2026, 11, 21, 10, 2, 0).unwrap();
        group.bench_with_input(BenchmarkId::new("b_parse_and_track", reports), &frame, |b, frame| {
            b.iter(|| {
                now += chrono::Duration::seconds(5);
                let reports = serde_json::from_str::<Vec<Report>>(frame).expect("valid frame");
                t.handle(now, Input::Relay(reports))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
