//! Evidence to action: from the simulated relay sending the frame in which a
//! required stream turned stale to the simulated booking API receiving the
//! PUT that makes the experiment unbookable; and back, for the recovery.
//!
//! Both instants are taken by the simulators themselves (`SimStats::first_sent`,
//! `Recorded::at`), so polling by this driver adds nothing to the numbers.
//! The stale report says the stream last sent 90 s ago: no threshold has to
//! elapse, what is measured is the service's own reaction time.

use std::time::{Duration, Instant};

use anyhow::Context;
use status::sim::fleet::Fleet;

use crate::rig::{all_healthy, wait_until, Latencies, Peers, Row, Served};

const SECTION: &str = "2 evidence to action";
const FLEET: Fleet = Fleet { experiments: 100 };
/// The simulated relay's frame period: short, so trials follow each other quickly.
const PERIOD: Duration = Duration::from_millis(25);
/// Longest wait for one PUT.
const TRIAL_WITHIN: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(2);
pub const TARGET_P99: Duration = Duration::from_millis(50);

/// The service's settings beyond the peers': no manifest round during the trials.
pub const SETTINGS: [(&str, &str); 1] = [("STATUS_QUERY_BOOK_EVERY", "1h")];

pub async fn run(trials: usize) -> anyhow::Result<Vec<Row>> {
    let peers = Peers::start(FLEET, PERIOD).await?;
    // One manifest round at the start is enough: nothing changes the manifest.
    let served = Served::start(&peers.env(&SETTINGS))?;
    all_healthy(&served, FLEET, Duration::from_secs(60)).await?;
    let started = Instant::now();
    let mut down = Vec::with_capacity(trials);
    let mut up = Vec::with_capacity(trials);
    for trial in 0..trials {
        let e = trial % FLEET.experiments;
        down.push(flip(&served, &peers, e, true).await?);
        up.push(flip(&served, &peers, e, false).await?);
    }
    let elapsed = started.elapsed();
    served.stop().await?;
    let (down, up) = (Latencies::new(down), Latencies::new(up));
    let p99 = down.pct(99.0);
    Ok(vec![
        Row::target(
            SECTION,
            "stale frame sent → PUT available=false received",
            down.describe(),
            format!("p99 ≤ {}", crate::rig::ms(TARGET_P99)),
            p99 <= TARGET_P99,
        ),
        Row::info(SECTION, "fresh frame sent → PUT available=true received", up.describe()),
        Row::info(
            SECTION,
            "setup",
            format!(
                "{} experiments × 3 streams, relay frame every {PERIOD:?}, {trials} trials each way in {:.1} s",
                FLEET.experiments,
                elapsed.as_secs_f64()
            ),
        ),
    ])
}

/// Makes experiment `e`'s data stream stale (or fresh again) and returns the time from the
/// relay sending that frame to the booking API receiving the resulting PUT; waits until the
/// change has been read back, so the next flip starts from a settled state.
async fn flip(served: &Served, peers: &Peers, e: usize, stale: bool) -> anyhow::Result<Duration> {
    let book = peers.book.control();
    let seen = book.requests().len();
    let version = peers.relay.set_reports(FLEET.relay(|x, s| stale && x == e && s == 0));
    let resource = Fleet::resource(e);
    let want = (!stale).to_string();
    let topic = Fleet::topic(e);
    wait_until(
        &format!("{resource} is read back as available={want}"),
        TRIAL_WITHIN,
        POLL,
        || (served.view(&topic, |v| v.available)? == Some(!stale)).then_some(()),
    )
    .await?;
    let put = book.requests()[seen..]
        .iter()
        .find(|r| r.is("PUT", &resource) && r.param("available") == Some(want.as_str()))
        .map(|r| r.at)
        .with_context(|| format!("{resource} changed without a PUT"))?;
    let sent = peers
        .relay
        .first_sent(version)
        .context("the booking system changed before the relay sent the frame")?;
    put.checked_duration_since(sent)
        .context("the PUT arrived before the frame that caused it was sent")
}
