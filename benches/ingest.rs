//! Ingest vs the floor: how much the service adds to parsing a relay snapshot.
//!
//! For relay snapshots of 1k, 10k and 30k reports (a [`Fleet`] frame: three
//! streams per experiment, Go durations, viewers):
//! (a) typed serde parsing into `Vec<Report>` alone, the floor;
//! (b) the feed's real path: [`parse_frame`] then `Tracker::handle` with the
//!     effects computed, as the feed task and the reconciler do;
//! (c) (b) plus building the snapshot the reconciler publishes after it.
//! Criterion times each; a summary at the end measures them again side by
//! side and prints b/a. Run: `cargo bench --bench ingest`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput};

use status::config::HealthConfig;
use status::feed::parse_frame;
use status::report::Report;
use status::sim::fleet::{frame_json, Fleet};
use status::tracker::{Input, Observed, Tracker};

const SIZES: [usize; 3] = [1_000, 10_000, 30_000];

/// Relay frames arrive this often (the relay's default period).
const PERIOD_SECS: i64 = 5;

/// One stream in fifty has stalled.
fn stalled(e: usize, s: usize) -> bool {
    (e * 3 + s) % 50 == 0
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0)
        .single()
        .expect("a valid date")
}

/// A tracker past its startup grace that knows the manifest, the jump and every availability.
fn tracker(fleet: Fleet) -> (Tracker, DateTime<Utc>) {
    let cfg = HealthConfig {
        last_active: Duration::from_secs(10),
        // The jump snapshot below is given once: keep it fresh through the run.
        last_checked: Duration::from_secs(86_400),
        startup: Duration::from_secs(60),
        events: 100,
        mass_change_guard: true,
    };
    let mut t = Tracker::new(cfg, t0());
    t.handle(t0(), Input::Manifest(fleet.resources()));
    t.handle(t0(), Input::Jump(fleet.jump()));
    let observed = (0..fleet.experiments)
        .map(|e| Observed {
            resource: Fleet::resource(e),
            available: true,
        })
        .collect();
    t.handle(t0(), Input::Availability(observed));
    (t, t0() + chrono::Duration::minutes(2))
}

fn parse_only(frame: &str) -> Vec<Report> {
    serde_json::from_str(frame).expect("a valid frame")
}

/// What the feed task and the reconciler do with one frame.
fn parse_and_track(t: &mut Tracker, now: &mut DateTime<Utc>, frame: &str) -> usize {
    *now += chrono::Duration::seconds(PERIOD_SECS);
    let reports = parse_frame(frame).expect("a valid frame").reports;
    t.handle(*now, Input::Relay(reports)).len()
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_snapshot");
    group.sample_size(20).measurement_time(Duration::from_secs(4));
    for reports in SIZES {
        let fleet = Fleet::with_reports(reports);
        let frame = frame_json(&fleet.relay(stalled));
        group.throughput(Throughput::Elements(reports as u64));
        group.bench_with_input(BenchmarkId::new("a_parse_only", reports), &frame, |b, frame| {
            b.iter(|| parse_only(frame))
        });
        let (mut t, mut now) = tracker(fleet);
        group.bench_with_input(BenchmarkId::new("b_parse_and_track", reports), &frame, |b, frame| {
            b.iter(|| parse_and_track(&mut t, &mut now, frame))
        });
        group.bench_with_input(BenchmarkId::new("c_track_and_publish", reports), &frame, |b, frame| {
            b.iter(|| {
                parse_and_track(&mut t, &mut now, frame);
                t.snapshot(now)
            })
        });
    }
    group.finish();
}

/// Rounds of the summary: a, b and c once each per round, so that other load on the machine
/// falls on all three alike; stops early after [`SUMMARY_BUDGET`] per size.
const ROUNDS: usize = 21;
const SUMMARY_BUDGET: Duration = Duration::from_secs(10);

fn timed(f: impl FnOnce()) -> Duration {
    let started = Instant::now();
    f();
    started.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

/// Measures a, b and c in alternation and prints their medians and the ratio b/a.
fn summary() {
    println!("\ningest summary (medians of up to {ROUNDS} alternating rounds):");
    println!(
        "{:>8} {:>11} {:>11} {:>6} {:>13} {:>12} {:>12}",
        "reports", "a parse ms", "b track ms", "b/a", "c publish ms", "a µs/report", "b µs/report"
    );
    for reports in SIZES {
        let fleet = Fleet::with_reports(reports);
        let frame = frame_json(&fleet.relay(stalled));
        let (mut t, mut now) = tracker(fleet);
        let started = Instant::now();
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        while a.len() < ROUNDS && (a.is_empty() || started.elapsed() < SUMMARY_BUDGET) {
            a.push(timed(|| drop(black_box(parse_only(&frame)))));
            b.push(timed(|| {
                black_box(parse_and_track(&mut t, &mut now, &frame));
            }));
            c.push(timed(|| {
                parse_and_track(&mut t, &mut now, &frame);
                drop(black_box(t.snapshot(now)));
            }));
        }
        let (a, b, c) = (median(a), median(b), median(c));
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / reports as f64;
        println!(
            "{reports:>8} {:>11.2} {:>11.2} {:>6.2} {:>13.2} {:>12.2} {:>12.2}",
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64(),
            ms(c),
            per(a),
            per(b)
        );
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    ingest(&mut c);
    c.final_summary();
    // `cargo test --benches` runs each benchmark once to check it works; the summary is for `cargo bench`.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
