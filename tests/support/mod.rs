//! Shared test harness: the real service on an ephemeral loopback port,
//! condition waits with deadlines (never fixed sleeps), and log capture.
#![allow(dead_code, unused_macros, unused_imports)] // each test binary uses its own subset

pub mod binary;
pub mod logs;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use status::api::Limits;
use status::demo::Demo;
use status::mail::MailStats;
use status::tracker::{Input, Snapshot};
use status::{Config, Service};

/// Generous: tests must pass on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How often a waiting test looks again.
pub const POLL: Duration = Duration::from_millis(25);

/// Waits, polling, until `$cond` (which may `.await`) holds; fails the test after [`DEADLINE`].
macro_rules! eventually {
    ($what:expr, $cond:expr) => {{
        let deadline = std::time::Instant::now() + $crate::support::DEADLINE;
        loop {
            if $cond {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting until {}",
                $what
            );
            tokio::time::sleep($crate::support::POLL).await;
        }
    }};
}
pub(crate) use eventually;

/// A loopback port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("bound socket has an address").port()
}

/// The six required variables, with every peer pointing at an unused loopback port.
pub fn base_env() -> Vec<(String, String)> {
    let dead = format!("127.0.0.1:{}", dead_port());
    [
        ("STATUS_HOST_BOOK", dead.as_str()),
        ("STATUS_HOST_JUMP", dead.as_str()),
        ("STATUS_HOST_RELAY", dead.as_str()),
        ("STATUS_SCHEME_BOOK", "http"),
        ("STATUS_SCHEME_JUMP", "http"),
        ("STATUS_SCHEME_RELAY", "http"),
        ("STATUS_SECRET_BOOK", "test-secret-book"),
        ("STATUS_SECRET_JUMP", "test-secret-jump"),
        ("STATUS_SECRET_RELAY", "test-secret-relay"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// [`base_env`] with `extra` added or overriding.
pub fn env_with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = base_env();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

/// The service running in this process on `127.0.0.1:0`, and its seams.
pub struct Running {
    pub addr: SocketAddr,
    pub inputs: mpsc::Sender<Input>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub mail_stats: Arc<MailStats>,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
    pub http: reqwest::Client,
}

impl Running {
    pub async fn start(env: Vec<(String, String)>) -> Self {
        Self::start_with(env, Vec::new()).await
    }

    /// Starts the service with `first` already queued: they reach the tracker before anything else.
    pub async fn start_with(env: Vec<(String, String)>, first: Vec<Input>) -> Self {
        Self::start_within(env, first, Limits::default()).await
    }

    /// Starts the service serving its API within `limits`.
    pub async fn start_limited(env: Vec<(String, String)>, limits: Limits) -> Self {
        Self::start_within(env, Vec::new(), limits).await
    }

    async fn start_within(env: Vec<(String, String)>, first: Vec<Input>, limits: Limits) -> Self {
        let config = Config::from_vars(env).expect("test configuration is valid");
        let service = Service::new(config).limits(limits);
        let inputs = service.inputs();
        for input in first {
            let queued = inputs.send(input).await;
            queued.expect("the queue is open before the service runs");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let listener = listener.expect("bind loopback");
        let addr = listener.local_addr().expect("bound socket has an address");
        let (snapshot, mail_stats) = (service.snapshot(), service.mail_stats());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.run(listener, shutdown.clone()));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build();
        Self {
            addr,
            inputs,
            snapshot,
            mail_stats,
            shutdown,
            task,
            http: http.expect("http client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.http.get(self.url(path)).send().await.expect("GET succeeds");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    pub async fn send(&self, input: Input) {
        self.inputs.send(input).await.expect("reconciler is running");
    }

    /// Stops the service and checks it exits cleanly in time.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let done = tokio::time::timeout(DEADLINE, self.task).await;
        let result = done.expect("service stops promptly");
        result
            .expect("service task did not panic")
            .expect("service exits without error");
    }
}

/// Polls `check` until it yields `Some`, or panics naming `what` after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// `GET url` as a JSON array; `None` while it does not answer with one.
pub async fn json_array(url: &str) -> Option<Vec<serde_json::Value>> {
    let body: serde_json::Value = reqwest::get(url).await.ok()?.json().await.ok()?;
    body.as_array().cloned()
}

/// Stops a demo and checks it stops cleanly in time.
pub async fn stop_demo(demo: Demo) {
    tokio::time::timeout(DEADLINE, demo.stop())
        .await
        .expect("the demo stops in time")
        .expect("the demo stops cleanly");
}
