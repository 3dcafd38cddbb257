//! A running service wired to a simulated booking API on loopback, fed
//! relay/jump snapshots directly, observed over its REST API and the
//! simulator's request record.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use status::report::Report;
use status::sim::book::{Recorded, SimBook};
use status::tracker::Input;

use crate::support::{eventually, Running};

pub const SECRET: &str = "book-secret-for-tests";

/// `r-<stub>` → `{topic_stub: <stub>, streams: ["st-data"]}` for each stub.
pub fn manifest(stubs: &[&str]) -> Map<String, Value> {
    stubs
        .iter()
        .map(|s| {
            (
                format!("r-{s}"),
                json!({"topic_stub": s, "streams": ["st-data"], "description": "a rig", "tests": [], "config_url": ""}),
            )
        })
        .collect()
}

/// An experiment's own stream connection, `last` being the Go duration since it last sent (or `Never`).
pub fn stream(topic: &str, last: &str) -> Report {
    serde_json::from_value(json!({
        "topic": topic,
        "canRead": true,
        "canWrite": true,
        "scopes": ["read", "write", "expt"],
        "stats": {"tx": {"last": last, "size": 5, "fps": 20}, "rx": {"last": "Never", "size": 0, "fps": 0}}
    }))
    .expect("a well-formed report")
}

/// A relay snapshot with each stub's data stream last sending `last` ago.
pub fn relay(stubs: &[&str], last: &str) -> Vec<Report> {
    stubs.iter().map(|s| stream(&format!("{s}-st-data"), last)).collect()
}

/// A jump snapshot with each stub's host connection.
pub fn jump(stubs: &[&str]) -> Input {
    Input::Jump(
        stubs
            .iter()
            .map(|s| {
                serde_json::from_value(json!({"topic": s, "scopes": ["host"], "stats": {}}))
                    .expect("a well-formed report")
            })
            .collect(),
    )
}

pub struct Rig {
    pub sim: SimBook,
    run: Running,
}

impl Rig {
    /// Starts the simulator with `manifest`, then the service with `extra` settings;
    /// `first` reaches the tracker before anything the booking side learns.
    pub async fn start(manifest: Map<String, Value>, extra: &[(&str, &str)], first: Vec<Input>) -> Rig {
        let sim = SimBook::start(SECRET, "/tenant/book").await.expect("simulator binds");
        sim.control().set_manifest(manifest);
        Self::start_with(sim, extra, first).await
    }

    pub async fn start_with(sim: SimBook, extra: &[(&str, &str)], first: Vec<Input>) -> Rig {
        let host = sim.host();
        // Later entries win, so `extra` overrides these defaults. The relay and
        // jump point at a dead port: their snapshots are fed through `inputs` instead.
        let settings: Vec<(&str, &str)> = [
            ("STATUS_HOST_BOOK", host.as_str()),
            ("STATUS_BASEPATH_BOOK", sim.basepath()),
            ("STATUS_SECRET_BOOK", SECRET),
            ("STATUS_HEALTH_STARTUP", "0s"),
            ("STATUS_HEALTH_LAST_CHECKED", "1h"),
            ("STATUS_QUERY_BOOK_EVERY", "1s"),
            ("STATUS_TIMEOUT_BOOK", "2s"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
        let run = Running::start_with(crate::support::env_with(&settings), first).await;
        Rig { sim, run }
    }

    pub async fn send(&self, input: Input) {
        self.run.send(input).await;
    }

    async fn get(&self, path: &str) -> Value {
        self.run.get_json(path).await.1
    }

    /// `GET /api/v1/experiments`, and how long it took.
    pub async fn experiments_timed(&self) -> (Vec<Value>, Duration) {
        let started = Instant::now();
        let body = self.get("/api/v1/experiments").await;
        let took = started.elapsed();
        (body.as_array().cloned().expect("an array"), took)
    }

    pub async fn experiment(&self, topic: &str) -> Option<Value> {
        self.experiments_timed()
            .await
            .0
            .into_iter()
            .find(|e| e["topic_name"] == topic)
    }

    /// Whether the REST API shows `topic` with `field` equal to `value`.
    pub async fn shows(&self, topic: &str, field: &str, value: Value) -> bool {
        self.experiment(topic).await.is_some_and(|e| e[field] == value)
    }

    /// How many experiments the REST API shows as available in the booking system.
    pub async fn available(&self) -> usize {
        let (all, _) = self.experiments_timed().await;
        all.iter().filter(|e| e["available"] == true).count()
    }

    /// Whether `GET /api/v1/alerts` lists an alert of `kind`.
    pub async fn has_alert(&self, kind: &str) -> bool {
        let body = self.get("/api/v1/alerts").await;
        body.as_array().expect("an array").iter().any(|a| a["kind"] == kind)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.sim.control().requests()
    }

    /// Every PUT the booking API received, in order.
    pub fn puts(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == "PUT").collect()
    }

    /// PUTs for `resource` asking for `available`.
    pub fn puts_for(&self, resource: &str, available: bool) -> Vec<Recorded> {
        let want = available.to_string();
        self.puts()
            .into_iter()
            .filter(|r| r.is("PUT", resource) && r.param("available") == Some(want.as_str()))
            .collect()
    }

    pub fn held(&self, resource: &str) -> Option<bool> {
        self.sim.control().holding(resource).map(|h| h.available)
    }

    fn manifests_served(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.is_manifest() && r.status == Some(200))
            .count()
    }

    /// Lets `n` more manifest rounds complete: the booking side's clock.
    pub async fn rounds(&self, n: usize) {
        let until = self.manifests_served() + n;
        eventually!(format!("{n} more manifest rounds"), self.manifests_served() >= until);
        // The round's reads follow its manifest; wait for those to be answered too.
        eventually!(
            "the round's reads are answered",
            self.requests().iter().all(|r| r.method != "GET" || r.status.is_some())
        );
    }

    /// Lets `n` more rounds pass, then checks that no PUT was ever sent.
    pub async fn no_put_after_rounds(&self, n: usize, why: &str) {
        self.rounds(n).await;
        let puts = self.puts();
        assert!(puts.is_empty(), "{why}: {puts:#?}");
    }

    /// Shuts the service down and checks it stops cleanly and promptly.
    pub async fn stop(self) {
        self.run.stop().await;
    }
}
