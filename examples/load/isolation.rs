//! Isolation: a hung booking API and a mute SMTP server must not slow down
//! anything else. The same run twice, once with healthy peers (baseline) and
//! once with every booking request hanging 30 s (the service's timeout is set
//! above that, so they truly hang) and every SMTP connection accepted but
//! never greeted. Each run flips experiments stale and fresh again through
//! the simulated relay, so availability changes and digests keep being
//! asked of the hung peers, and measures
//! - relay frame sent → change visible in the published snapshot, and
//! - REST latency of `GET /api/v1/experiments` and `…/events/{name}` from
//!   one client polling throughout.

use std::time::{Duration, Instant};

use anyhow::Context;
use status::sim::fleet::Fleet;
use status::sim::smtp::{Fault, SmtpSink};
use tokio_util::sync::CancellationToken;

use crate::rig::{all_healthy, ms, timed_get, wait_until, Latencies, Peers, Row, Served};

const SECTION: &str = "3 isolation";
const FLEET: Fleet = Fleet { experiments: 100 };
const PERIOD: Duration = Duration::from_millis(25);
/// How long the faulty booking API holds every request.
const HANG: Duration = Duration::from_secs(30);
/// The REST client's pause between two requests.
const PROBE_EVERY: Duration = Duration::from_millis(5);
const PROBE_MAX: usize = 100_000;
const TRIAL_WITHIN: Duration = Duration::from_secs(10);
/// Polling the published snapshot: the visibility instant is late by at most about this.
const POLL: Duration = Duration::from_millis(1);
pub const TARGET_RISE: Duration = Duration::from_millis(50);

/// What one run measured.
struct Outcome {
    to_snapshot: Latencies,
    list: Latencies,
    events: Latencies,
    /// Booking requests still unanswered at the end, and SMTP connections and messages.
    hung_book: usize,
    smtp_connections: usize,
    mails: usize,
}

pub async fn run(trials: usize) -> anyhow::Result<Vec<Row>> {
    let base = scenario(false, trials).await.context("baseline")?;
    let hung = scenario(true, trials).await.context("with faults")?;
    let mut rows = Vec::new();
    for (what, b, h) in [
        (
            "relay frame sent → visible in the snapshot",
            &base.to_snapshot,
            &hung.to_snapshot,
        ),
        ("GET /api/v1/experiments (100 experiments)", &base.list, &hung.list),
        ("GET /api/v1/experiments/events/{name}", &base.events, &hung.events),
    ] {
        rows.push(Row::info(SECTION, format!("{what}, baseline"), b.describe()));
        let rise = h.pct(99.0).saturating_sub(b.pct(99.0));
        let change_ms = (h.pct(99.0).as_secs_f64() - b.pct(99.0).as_secs_f64()) * 1e3;
        rows.push(Row::target(
            SECTION,
            format!("{what}, booking hung + SMTP mute"),
            format!("{}; p99 {change_ms:+.2} ms against the baseline", h.describe()),
            format!("p99 rise ≤ {}", ms(TARGET_RISE)),
            rise <= TARGET_RISE,
        ));
    }
    rows.push(Row::info(
        SECTION,
        "faults in force at the end",
        format!(
            "{} booking requests hanging; {} SMTP connections, {} mails (baseline: {} mails)",
            hung.hung_book, hung.smtp_connections, hung.mails, base.mails
        ),
    ));
    Ok(rows)
}

/// The service's settings beyond the peers': booking requests that may hang
/// far longer than a trial, and mail to the sink on `smtp_port` as often as allowed.
pub fn settings(smtp_port: &str) -> [(&str, &str); 9] {
    [
        ("STATUS_QUERY_BOOK_EVERY", "5s"),
        ("STATUS_TIMEOUT_BOOK", "60s"),
        ("STATUS_EMAIL_HOST", "127.0.0.1"),
        ("STATUS_EMAIL_PORT", smtp_port),
        ("STATUS_EMAIL_FROM", "status@example.org"),
        ("STATUS_EMAIL_TO", "maintainers@example.org"),
        ("STATUS_EMAIL_TLS", "none"),
        ("STATUS_EMAIL_GROUP_WAIT", "100ms"),
        ("STATUS_EMAIL_MIN_INTERVAL", "1s"),
    ]
}

async fn scenario(faults: bool, trials: usize) -> anyhow::Result<Outcome> {
    let peers = Peers::start(FLEET, PERIOD).await?;
    let smtp = SmtpSink::start().await?;
    let port = smtp.addr().port().to_string();
    let served = Served::start(&peers.env(&settings(&port)))?;
    all_healthy(&served, FLEET, Duration::from_secs(60)).await?;
    if faults {
        peers.book.control().hang_next(usize::MAX, HANG);
        smtp.fail_next(std::iter::repeat(Fault::Hang).take(10_000));
    }
    let stop = CancellationToken::new();
    let probe = tokio::spawn(probe(served.url(""), stop.clone()));
    let mut to_snapshot = Vec::with_capacity(trials);
    for trial in 0..trials {
        // Each experiment in turn goes stale, then fresh again.
        let (e, stale) = ((trial / 2) % FLEET.experiments, trial % 2 == 0);
        let version = peers.relay.set_reports(FLEET.relay(|x, s| stale && x == e && s == 0));
        let topic = Fleet::topic(e);
        let seen = wait_until(&format!("{topic} shows healthy={}", !stale), TRIAL_WITHIN, POLL, || {
            (served.view(&topic, |v| v.healthy)? != stale).then(Instant::now)
        })
        .await?;
        let sent = peers
            .relay
            .first_sent(version)
            .context("visible before the relay sent it")?;
        to_snapshot.push(seen.saturating_duration_since(sent));
    }
    stop.cancel();
    let (list, events) = probe.await.context("the REST probe panicked")??;
    let hung_book = peers
        .book
        .control()
        .requests()
        .iter()
        .filter(|r| r.status.is_none())
        .count();
    let outcome = Outcome {
        to_snapshot: Latencies::new(to_snapshot),
        list: Latencies::new(list),
        events: Latencies::new(events),
        hung_book,
        smtp_connections: smtp.connections(),
        mails: smtp.messages().len(),
    };
    served.stop().await?;
    Ok(outcome)
}

/// One client reading the list and one experiment's events in turn until `stop`.
async fn probe(base: String, stop: CancellationToken) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let (list_url, events_url) = (
        format!("{base}/api/v1/experiments"),
        format!("{base}/api/v1/experiments/events/{}", Fleet::topic(0)),
    );
    let (mut list, mut events) = (Vec::new(), Vec::new());
    while !stop.is_cancelled() && list.len() < PROBE_MAX {
        list.push(timed_get(&http, &list_url).await?.total);
        events.push(timed_get(&http, &events_url).await?.total);
        tokio::time::sleep(PROBE_EVERY).await;
    }
    Ok((list, events))
}
