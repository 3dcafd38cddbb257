//! The feed tests' rig: simulated relay and jump on loopback and the real
//! service (through `support`) pointed at them, with probes of its REST API.
//! Needs `mod support;` beside it in the test crate.

// Each test binary uses a different part of the rig.
#![allow(dead_code)]

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use status::config::Config;
use status::report::{Last, Report, RxTx, Statistics};
use status::sim::stats::SimStats;
use status::token::Feed;
use status::tracker::{Input, Resource};
use tokio_util::sync::CancellationToken;

use crate::support::{env_with, wait_for, Running};

/// The simulated peers' frame period.
pub const PERIOD: Duration = Duration::from_millis(100);

/// The simulated relay and jump, before the service starts.
pub struct Peers {
    pub relay: SimStats,
    pub jump: SimStats,
    pub shutdown: CancellationToken,
}

impl Peers {
    pub async fn start() -> Peers {
        let peers = Self::start_with_relay_closed().await;
        peers.relay.listen().expect("simulated relay listens");
        peers
    }

    /// The relay's access port bound but not listening: its connections are refused until `relay.listen()`.
    pub async fn start_with_relay_closed() -> Peers {
        let shutdown = CancellationToken::new();
        let relay = SimStats::start_closed(Feed::Relay, "/tenant/relay", "relay-secret", PERIOD, shutdown.clone())
            .await
            .expect("simulated relay starts");
        let jump = SimStats::start(Feed::Jump, "tenant/jump/", "jump-secret", PERIOD, shutdown.clone())
            .await
            .expect("simulated jump starts");
        Peers { relay, jump, shutdown }
    }

    /// Relay and jump at these peers; the booking port is dead (not part of this feature).
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let ours = [
            ("STATUS_HOST_RELAY", self.relay.host()),
            ("STATUS_BASEPATH_RELAY", "/tenant/relay"),
            ("STATUS_SECRET_RELAY", "relay-secret"),
            ("STATUS_HOST_JUMP", self.jump.host()),
            ("STATUS_BASEPATH_JUMP", "/tenant/jump"),
            ("STATUS_SECRET_JUMP", "jump-secret"),
            ("STATUS_HEALTH_STARTUP", "0s"),
            ("STATUS_HEALTH_LAST_CHECKED", "1s"),
        ];
        let all: Vec<(&str, &str)> = ours.iter().chain(extra).copied().collect();
        env_with(&all)
    }

    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        Config::from_vars(self.env(extra)).expect("test configuration is valid")
    }

    /// Runs the service against these peers.
    pub async fn serve(self, extra: &[(&str, &str)]) -> Rig {
        let svc = Running::start(self.env(extra)).await;
        Rig { peers: self, svc }
    }
}

/// The service and its peers; every task ends with the test's runtime.
pub struct Rig {
    pub peers: Peers,
    pub svc: Running,
}

impl Rig {
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.svc.get_json(path).await;
        assert_eq!(status, 200, "GET {path}");
        body
    }

    pub async fn experiment(&self, topic: &str) -> Option<Value> {
        let all = self.get("/api/v1/experiments").await;
        all.as_array()?.iter().find(|e| e["topic_name"] == topic).cloned()
    }

    pub async fn feed(&self, name: &str) -> Value {
        self.get("/api/v1/feeds").await[name].clone()
    }

    pub async fn alert_kinds(&self) -> Vec<String> {
        let alerts = self.get("/api/v1/alerts").await;
        let kinds = alerts.as_array().expect("alerts are an array").iter();
        kinds.filter_map(|a| a["kind"].as_str().map(String::from)).collect()
    }

    /// Waits until `topic` is judged `healthy` (or not), and returns its view.
    pub async fn health_is(&self, topic: &str, healthy: bool) -> Value {
        wait_for(&format!("{topic} healthy={healthy}"), || async {
            self.experiment(topic).await.filter(|e| e["healthy"] == healthy)
        })
        .await
    }

    /// Waits until `feed`'s counter `field` exceeds `above`.
    pub async fn counter_above(&self, feed: &str, field: &str, above: u64) -> Value {
        wait_for(&format!("{feed} {field} > {above}"), || async {
            let f = self.feed(feed).await;
            (f[field].as_u64() > Some(above)).then_some(f)
        })
        .await
    }

    /// The booking manifest's word: `pend00` requires its data and video streams.
    pub async fn manifest_pend00(&self) {
        self.svc
            .send(Input::Manifest(vec![Resource {
                name: "r-pend00".into(),
                topic: "pend00".into(),
                required: vec!["pend00-st-data".into(), "pend00-st-video".into()],
            }]))
            .await;
    }
}

pub fn stream(topic: &str, scopes: &[&str], last: Option<Duration>) -> Report {
    Report {
        topic: topic.into(),
        can_read: true,
        can_write: scopes.contains(&"expt"),
        connected: Some(Utc::now()),
        remote_addr: "203.0.113.7".into(),
        user_agent: "Go-http-client/1.1".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        stats: RxTx {
            tx: Statistics {
                last: Last(last),
                size: 5.0,
                fps: 20.17,
            },
            rx: Statistics::default(),
        },
        ..Report::default()
    }
}

pub fn host(topic: &str) -> Report {
    Report {
        topic: topic.into(),
        scopes: vec!["host".into()],
        ..Report::default()
    }
}

pub const FRESH: Option<Duration> = Some(Duration::from_millis(1500));

/// A healthy `pend00`: data and video transmitting, a viewer that never does, a jump host.
pub fn healthy_pend00(peers: &Peers) {
    peers.relay.set_reports(vec![
        stream("pend00-st-data", &["read", "write", "expt"], FRESH),
        stream("pend00-st-video", &["read", "write", "expt"], FRESH),
        stream("pend00-st-video", &["read"], None),
    ]);
    peers.jump.set_reports(vec![host("pend00")]);
}

/// The service watching a healthy `pend00` that the manifest manages; returns the rig and its first healthy view.
pub async fn pend00_rig() -> (Rig, Value) {
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    let rig = peers.serve(&[]).await;
    rig.manifest_pend00().await;
    let view = rig.health_is("pend00", true).await;
    (rig, view)
}
