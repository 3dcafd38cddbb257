//! Readers: many REST clients at once against a large fleet.
//!
//! [`CLIENTS`] clients, each with its own connection, ask in a closed loop
//! (next request when the last answer is fully read) for the experiment list
//! and then for one experiment's events, for a bounded time and count; then
//! a single client does the same, for the latency of one request alone.
//! The list is asked for as it is and, in a round of its own, with
//! `Accept-Encoding: gzip`. Meanwhile a relay frame of the whole fleet
//! arrives every 5 s, as from the real relay, so snapshots are rebuilt and
//! the list re-serialised (and re-compressed) while the readers read.

use std::time::{Duration, Instant};

use anyhow::Context;
use status::sim::fleet::Fleet;
use status::tracker::Input;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::memory::Loaded;
use crate::rig::{ms, service_cpu, timed_get, Latencies, Row};

const SECTION: &str = "4 readers";
pub const CLIENTS: usize = 50;
/// Each phase runs this long, and each client asks at most `MAX_PER_CLIENT` times.
const PHASE: Duration = Duration::from_secs(15);
const PHASE_ALONE: Duration = Duration::from_secs(5);
const MAX_PER_CLIENT: usize = 100_000;
/// The relay's own period.
const RELAY_EVERY: Duration = Duration::from_secs(5);
pub const TARGET_LIST_P99: Duration = Duration::from_millis(20);
pub const TARGET_EVENTS_P99: Duration = Duration::from_millis(2);

/// What one phase measured.
struct Phase {
    total: Latencies,
    first_byte: Latencies,
    requests: usize,
    bytes: usize,
    took: Duration,
    /// CPU time the service's threads used meanwhile.
    service_cpu: Duration,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.took.as_secs_f64()
    }

    /// The service's own CPU time per request: what the answer costs whoever the client is.
    fn cpu_per_request(&self) -> Duration {
        self.service_cpu / self.requests.max(1) as u32
    }
}

pub async fn run(loaded: &Loaded) -> anyhow::Result<Vec<Row>> {
    let stop = CancellationToken::new();
    let relay = tokio::spawn(relay_frames(loaded.fleet, loaded.served.inputs.clone(), stop.clone()));
    let list_url = loaded.served.url("/api/v1/experiments");
    let events_url = |i: usize| {
        let e = (i * 7919) % loaded.fleet.experiments;
        loaded
            .served
            .url(&format!("/api/v1/experiments/events/{}", Fleet::topic(e)))
    };
    let mut measured = Vec::new();
    for (clients, within) in [(CLIENTS, PHASE), (1, PHASE_ALONE)] {
        let list = phase(clients, within, Encoding::Identity, |_| list_url.clone()).await;
        let gzip = phase(clients, within, Encoding::Gzip, |_| list_url.clone()).await;
        let events = phase(clients, within, Encoding::Identity, events_url).await;
        measured.push((clients, list, gzip, events));
    }
    stop.cancel();
    let frames = relay.await.context("the relay task panicked")?;
    let mut rows = Vec::new();
    for (clients, list, gzip, events) in measured {
        let (list, gzip, events) = (list?, gzip?, events?);
        let mib = |p: &Phase| p.bytes as f64 / p.requests.max(1) as f64 / (1024.0 * 1024.0);
        let experiments = loaded.fleet.experiments;
        let list_what = format!(
            "GET /api/v1/experiments, {experiments} experiments ({:.1} MiB), {clients} client(s)",
            mib(&list)
        );
        let gzip_what = format!(
            "… with Accept-Encoding: gzip ({:.2} MiB on the wire), {clients} client(s)",
            mib(&gzip)
        );
        let events_what = format!(
            "GET /api/v1/experiments/events/{{name}}, {} events, {clients} client(s)",
            crate::memory::EVENTS
        );
        rows.push(row(list_what, &list, TARGET_LIST_P99));
        rows.push(row(gzip_what, &gzip, TARGET_LIST_P99));
        rows.push(row(events_what, &events, TARGET_EVENTS_P99));
    }
    rows.push(Row::info(
        SECTION,
        "setup",
        format!(
            "{:.0} s per endpoint with {CLIENTS} clients, {:.0} s with one; a relay frame of the whole fleet every {RELAY_EVERY:?} meanwhile ({frames} frames)",
            PHASE.as_secs_f64(),
            PHASE_ALONE.as_secs_f64()
        ),
    ));
    Ok(rows)
}

fn row(what: String, p: &Phase, target: Duration) -> Row {
    let value = format!(
        "{:.0} req/s; {}; first byte p99 {}; service CPU {:.0} µs per request",
        p.per_second(),
        p.total.describe(),
        ms(p.first_byte.pct(99.0)),
        p.cpu_per_request().as_secs_f64() * 1e6
    );
    Row::target(
        SECTION,
        what,
        value,
        format!("p99 < {}", ms(target)),
        p.total.pct(99.0) < target,
    )
}

/// What the clients of a phase accept.
#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    /// The answer is timed and counted as it travels, compressed; not inflated.
    Gzip,
}

/// `clients` clients asking for `url(i)` on their `i`-th request, for `within`.
async fn phase(
    clients: usize,
    within: Duration,
    encoding: Encoding,
    url: impl Fn(usize) -> String,
) -> anyhow::Result<Phase> {
    let cpu_before = service_cpu()?;
    let started = Instant::now();
    let until = started + within;
    let mut running = JoinSet::new();
    for c in 0..clients {
        let urls: Vec<String> = (0..64).map(|i| url(c * 64 + i)).collect();
        running.spawn(async move {
            let mut headers = reqwest::header::HeaderMap::new();
            if let Encoding::Gzip = encoding {
                headers.insert(
                    reqwest::header::ACCEPT_ENCODING,
                    reqwest::header::HeaderValue::from_static("gzip"),
                );
            }
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .default_headers(headers)
                .build()?;
            let mut done = Vec::new();
            for i in 0..MAX_PER_CLIENT {
                if Instant::now() >= until {
                    break;
                }
                done.push(timed_get(&http, &urls[i % urls.len()]).await?);
            }
            anyhow::Ok(done)
        });
    }
    let (mut total, mut first_byte, mut bytes) = (Vec::new(), Vec::new(), 0);
    while let Some(client) = running.join_next().await {
        for t in client.context("a client panicked")?? {
            total.push(t.total);
            first_byte.push(t.first_byte);
            bytes += t.bytes;
        }
    }
    Ok(Phase {
        requests: total.len(),
        total: Latencies::new(total),
        first_byte: Latencies::new(first_byte),
        bytes,
        took: started.elapsed(),
        service_cpu: service_cpu()?.saturating_sub(cpu_before),
    })
}

/// Sends the healthy fleet's relay snapshot every [`RELAY_EVERY`] until `stop`; returns how many.
async fn relay_frames(fleet: Fleet, inputs: tokio::sync::mpsc::Sender<Input>, stop: CancellationToken) -> usize {
    let mut tick = tokio::time::interval(RELAY_EVERY);
    let mut sent = 0;
    loop {
        tokio::select! {
            () = stop.cancelled() => return sent,
            _ = tick.tick() => {}
        }
        let Ok(frame) = tokio::task::spawn_blocking(move || fleet.relay(|_, _| false)).await else {
            return sent;
        };
        if inputs.send(Input::Relay(frame)).await.is_err() {
            return sent;
        }
        sent += 1;
    }
}
