//! Shared by the feed tests: simulated relay and jump on loopback, the real
//! `Service` pointed at them, and probes of its REST API.

// Each test binary uses a different part of the rig.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use status::config::Config;
use status::report::{Last, Report, RxTx, Statistics};
use status::sim::stats::SimStats;
use status::token::Feed;
use status::tracker::{Input, Resource};
use status::Service;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Generous: the machine is small and shared.
pub const DEADLINE: Duration = Duration::from_secs(20);
pub const POLL: Duration = Duration::from_millis(30);
/// The simulated peers' frame period.
pub const PERIOD: Duration = Duration::from_millis(100);

/// Polls `probe` until it yields a value, failing the test after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The simulated relay and jump, before the service starts.
pub struct Peers {
    pub relay: SimStats,
    pub jump: SimStats,
    pub shutdown: CancellationToken,
}

impl Peers {
    pub async fn start() -> Peers {
        let shutdown = CancellationToken::new();
        let relay = SimStats::start(Feed::Relay, "/tenant/relay", "relay-secret", PERIOD, shutdown.clone())
            .await
            .unwrap();
        let jump = SimStats::start(Feed::Jump, "tenant/jump/", "jump-secret", PERIOD, shutdown.clone())
            .await
            .unwrap();
        Peers { relay, jump, shutdown }
    }

    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        // Nothing listens on the booking port: that worker is not part of this feature.
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let book = unused.local_addr().unwrap().to_string();
        drop(unused);
        let vars: Vec<(String, String)> = [
            ("STATUS_SCHEME_RELAY", "http"),
            ("STATUS_HOST_RELAY", self.relay.host()),
            ("STATUS_BASEPATH_RELAY", "/tenant/relay"),
            ("STATUS_SECRET_RELAY", "relay-secret"),
            ("STATUS_SCHEME_JUMP", "http"),
            ("STATUS_HOST_JUMP", self.jump.host()),
            ("STATUS_BASEPATH_JUMP", "/tenant/jump"),
            ("STATUS_SECRET_JUMP", "jump-secret"),
            ("STATUS_SCHEME_BOOK", "http"),
            ("STATUS_HOST_BOOK", &book),
            ("STATUS_SECRET_BOOK", "book-secret"),
            ("STATUS_HEALTH_STARTUP", "0s"),
            ("STATUS_HEALTH_LAST_CHECKED", "1s"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Config::from_vars(vars).unwrap()
    }

    /// Runs the service against these peers; `setup` may feed it inputs first.
    pub async fn serve(self, extra: &[(&str, &str)], setup: impl FnOnce(&Service)) -> Rig {
        let service = Service::new(self.config(extra));
        setup(&service);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let stop = self.shutdown.child_token();
        let running = tokio::spawn(service.run(listener, stop.clone()));
        Rig {
            peers: self,
            api,
            http: reqwest::Client::new(),
            stop,
            running,
        }
    }
}

pub struct Rig {
    pub peers: Peers,
    pub api: String,
    pub http: reqwest::Client,
    /// Stops the service; the peers stop when the rig is dropped.
    pub stop: CancellationToken,
    pub running: JoinHandle<std::io::Result<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.peers.shutdown.cancel();
    }
}

impl Rig {
    pub async fn get(&self, path: &str) -> Value {
        let resp = self.http.get(format!("{}{path}", self.api)).send().await.unwrap();
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "GET {path}");
        resp.json().await.unwrap()
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
        let kinds = alerts.as_array().unwrap().iter();
        kinds.map(|a| a["kind"].as_str().unwrap().to_string()).collect()
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
            (f[field].as_u64().unwrap() > above).then_some(f)
        })
        .await
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

pub fn manifest_pend00(service: &Service) {
    let manifest = Input::Manifest(vec![Resource {
        name: "r-pend00".into(),
        topic: "pend00".into(),
        required: vec!["pend00-st-data".into(), "pend00-st-video".into()],
    }]);
    service.inputs().try_send(manifest).unwrap();
}
