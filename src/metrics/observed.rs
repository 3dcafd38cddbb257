//! Metrics read at scrape time from state the service keeps anyway: the
//! feeds' [`FeedBoard`], the published [`Snapshot`] and the [`MailStats`].
//!
//! Derived, not counted: a collector copies what the REST API would show, so
//! the two can never disagree. It only reads (a short lock on each feed, one
//! load of the snapshot) and never waits for the reconciler.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use chrono::Utc;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::TypedMetric;
use prometheus_client::registry::{Registry, Unit};

use super::Sources;
use crate::feed::{FeedBoard, FeedStatus};
use crate::mail::MailStats;
use crate::tracker::{AlertKind, Snapshot};

pub(super) fn register(registry: &mut Registry, sources: Sources) {
    registry.register_collector(Box::new(Feeds(sources.feeds)));
    registry.register_collector(Box::new(Fleet(sources.snapshot)));
    registry.register_collector(Box::new(Mail(sources.mail)));
}

/// Every kind, so an inactive alert reads 0 instead of vanishing.
const ALERT_KINDS: [AlertKind; 3] = [AlertKind::RelaySilent, AlertKind::JumpSilent, AlertKind::MassChangeHeld];

fn alert_label(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::RelaySilent => "relay_silent",
        AlertKind::JumpSilent => "jump_silent",
        AlertKind::MassChangeHeld => "mass_change_held",
    }
}

/// One metric family: its descriptor, then one sample per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: &[(L, M)],
) -> fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, M::TYPE)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

/// One metric without labels.
fn single<M: EncodeMetric + TypedMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: M,
) -> fmt::Result {
    value.encode(encoder.encode_descriptor(name, help, None, M::TYPE)?)
}

type FeedLabel = [(&'static str, &'static str); 1];

#[derive(Debug)]
struct Feeds(FeedBoard);

impl Collector for Feeds {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let feeds: [(FeedLabel, FeedStatus); 2] = [
            ([("feed", "relay")], self.0.relay.status()),
            ([("feed", "jump")], self.0.jump.status()),
        ];
        let gauge = |f: fn(&FeedStatus) -> i64| feeds.clone().map(|(l, s)| (l, ConstGauge::new(f(&s))));
        let counter = |f: fn(&FeedStatus) -> u64| feeds.clone().map(|(l, s)| (l, ConstCounter::new(f(&s))));
        family(
            &mut encoder,
            "feed_connected",
            "Whether the feed's WebSocket is connected (1) or not (0).",
            None,
            &gauge(|s| i64::from(s.connected)),
        )?;
        family(
            &mut encoder,
            "feed_frames_received",
            "Data frames received over all connections.",
            None,
            &counter(|s| s.frames_received),
        )?;
        family(
            &mut encoder,
            "feed_frames_rejected",
            "Frames refused whole (not a JSON array of reports, or binary).",
            None,
            &counter(|s| s.frames_rejected),
        )?;
        family(
            &mut encoder,
            "feed_report_defects",
            "Reports skipped and fields defaulted inside accepted frames.",
            None,
            &counter(|s| s.report_defects),
        )?;
        family(
            &mut encoder,
            "feed_reconnections",
            "Connections established after the first one.",
            None,
            &counter(|s| s.reconnections),
        )?;
        let now = Utc::now();
        let since: Vec<(FeedLabel, ConstGauge<f64>)> = feeds
            .iter()
            .filter_map(|(l, s)| {
                let age = now.signed_duration_since(s.last_frame_at?);
                Some((*l, ConstGauge::new(age.num_milliseconds().max(0) as f64 / 1000.0)))
            })
            .collect();
        family(
            &mut encoder,
            "feed_last_frame_age",
            "Time since the feed's latest frame; absent until its first.",
            Some(&Unit::Seconds),
            &since,
        )
    }
}

#[derive(Debug)]
struct Fleet(Arc<ArcSwap<Snapshot>>);

impl Collector for Fleet {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let snapshot = self.0.load();
        let mut counts = [[0i64; 2]; 2];
        for e in &snapshot.experiments {
            counts[usize::from(e.healthy)][usize::from(e.bookable)] += 1;
        }
        let words = ["false", "true"];
        let mut experiments = Vec::with_capacity(4);
        for (healthy, row) in counts.iter().enumerate() {
            for (bookable, &n) in row.iter().enumerate() {
                let labels = [("healthy", words[healthy]), ("bookable", words[bookable])];
                experiments.push((labels, ConstGauge::new(n)));
            }
        }
        family(
            &mut encoder,
            "experiments",
            "Experiments known, by health and by whether health asks for them to be bookable (every required stream healthy).",
            None,
            &experiments,
        )?;
        // What the booking system holds, as last read: not the same as `bookable` above
        // while a change is pending, held, failing, or the experiment is not managed.
        let mut held = [0i64; 3];
        for e in &snapshot.experiments {
            held[match e.available {
                Some(true) => 0,
                Some(false) => 1,
                None => 2,
            }] += 1;
        }
        let available = [
            ([("available", "true")], ConstGauge::new(held[0])),
            ([("available", "false")], ConstGauge::new(held[1])),
            ([("available", "unknown")], ConstGauge::new(held[2])),
        ];
        family(
            &mut encoder,
            "experiments_available",
            "Experiments by the availability last read from the booking system (unknown: not read yet, or not in the manifest).",
            None,
            &available,
        )?;
        let alerts = ALERT_KINDS.map(|kind| {
            let active = snapshot.alerts.iter().any(|a| a.kind == kind);
            ([("kind", alert_label(kind))], ConstGauge::new(i64::from(active)))
        });
        family(
            &mut encoder,
            "system_alerts",
            "Whether each system alert is active (1) or not (0).",
            None,
            &alerts,
        )
    }
}

#[derive(Debug)]
struct Mail(Arc<MailStats>);

impl Collector for Mail {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        single(
            &mut encoder,
            "email_digests_sent",
            "Email digests the SMTP server accepted.",
            ConstCounter::new(self.0.digests_sent()),
        )?;
        single(
            &mut encoder,
            "email_send_failures",
            "Failed attempts to send a digest (each is retried).",
            ConstCounter::new(self.0.send_failures()),
        )?;
        single(
            &mut encoder,
            "email_events_pending",
            "Health events waiting for the next digest.",
            ConstGauge::new(i64::try_from(self.0.events_pending()).unwrap_or(i64::MAX)),
        )
    }
}
