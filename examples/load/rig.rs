//! What every measurement of the load run shares: the real service in a
//! runtime of its own, the simulated peers pointed at by its environment,
//! bounded waits, percentiles and the result table.
//!
//! The service gets its own two worker threads, as on a small VM; the load
//! client and the simulated peers run on the caller's runtime. Only
//! 127.0.0.1 is ever dialled.

use std::fmt::Display;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use arc_swap::ArcSwap;
use status::sim::book::SimBook;
use status::sim::fleet::Fleet;
use status::sim::stats::SimStats;
use status::token::Feed;
use status::tracker::{ExperimentView, Input, Snapshot};
use status::{Config, Service};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Worker threads of the service's runtime.
const SERVICE_THREADS: usize = 2;
const STOP_WITHIN: Duration = Duration::from_secs(20);
const SECRET_RELAY: &str = "load-secret-relay";
const SECRET_JUMP: &str = "load-secret-jump";
const SECRET_BOOK: &str = "load-secret-book";

/// The service, running on `127.0.0.1:<port>` in a runtime of its own.
pub struct Served {
    pub addr: SocketAddr,
    pub inputs: mpsc::Sender<Input>,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    shutdown: CancellationToken,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// Starts the service configured by `env` (later entries win).
    pub fn start(env: &[(String, String)]) -> anyhow::Result<Served> {
        let config = Config::from_vars(env.iter().cloned()).context("load configuration")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let service = Service::new(config);
        let (inputs, snapshot) = (service.inputs(), service.snapshot());
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(SERVICE_THREADS)
            .thread_name("service")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new().name("service".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                service.run(listener, stop).await
            })
        })?;
        Ok(Served {
            addr,
            inputs,
            snapshot,
            shutdown,
            thread,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `f` of experiment `topic` in the latest published snapshot.
    pub fn view<T>(&self, topic: &str, f: impl FnOnce(&ExperimentView) -> T) -> Option<T> {
        self.snapshot.load().experiment(topic).map(f)
    }

    pub async fn send(&self, input: Input) -> anyhow::Result<()> {
        self.inputs.send(input).await.context("the service stopped")
    }

    /// Shuts the service down and waits for it to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let thread = &self.thread;
        wait_until("the service stops", STOP_WITHIN, Duration::from_millis(20), || {
            thread.is_finished().then_some(())
        })
        .await?;
        match self.thread.join() {
            Ok(served) => Ok(served?),
            Err(_) => bail!("the service thread panicked"),
        }
    }
}

/// Simulated relay, jump and booking API serving one fleet, all healthy.
pub struct Peers {
    pub relay: SimStats,
    pub jump: SimStats,
    pub book: SimBook,
    stop: CancellationToken,
}

impl Peers {
    /// Starts the peers; the relay and jump send a snapshot every `period`.
    pub async fn start(fleet: Fleet, period: Duration) -> anyhow::Result<Peers> {
        let stop = CancellationToken::new();
        let relay = SimStats::start(Feed::Relay, "/relay", SECRET_RELAY, period, stop.clone()).await?;
        let jump = SimStats::start(Feed::Jump, "/jump", SECRET_JUMP, period, stop.clone()).await?;
        let book = SimBook::start(SECRET_BOOK, "/book").await?;
        relay.set_reports(fleet.relay(|_, _| false));
        jump.set_reports(fleet.jump());
        book.control().set_manifest(fleet.book_manifest());
        Ok(Peers {
            relay,
            jump,
            book,
            stop,
        })
    }

    /// The service's environment for these peers, then `extra`.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let book = self.book.host();
        let ours = [
            ("STATUS_HOST_RELAY", self.relay.host()),
            ("STATUS_BASEPATH_RELAY", "/relay"),
            ("STATUS_SECRET_RELAY", SECRET_RELAY),
            ("STATUS_HOST_JUMP", self.jump.host()),
            ("STATUS_BASEPATH_JUMP", "/jump"),
            ("STATUS_SECRET_JUMP", SECRET_JUMP),
            ("STATUS_HOST_BOOK", book.as_str()),
            ("STATUS_BASEPATH_BOOK", self.book.basepath()),
            ("STATUS_SECRET_BOOK", SECRET_BOOK),
        ];
        env(ours.iter().chain(extra))
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Every variable the service requires, peers at `127.0.0.1:9` (nothing listens: inputs are
/// fed through [`Served::inputs`]), plain HTTP and no startup grace; then `extra`.
pub fn env<'a>(extra: impl IntoIterator<Item = &'a (&'a str, &'a str)>) -> Vec<(String, String)> {
    const BASE: [(&str, &str); 10] = [
        ("STATUS_HOST_RELAY", "127.0.0.1:9"),
        ("STATUS_HOST_JUMP", "127.0.0.1:9"),
        ("STATUS_HOST_BOOK", "127.0.0.1:9"),
        ("STATUS_SECRET_RELAY", SECRET_RELAY),
        ("STATUS_SECRET_JUMP", SECRET_JUMP),
        ("STATUS_SECRET_BOOK", SECRET_BOOK),
        ("STATUS_SCHEME_RELAY", "http"),
        ("STATUS_SCHEME_JUMP", "http"),
        ("STATUS_SCHEME_BOOK", "http"),
        ("STATUS_HEALTH_STARTUP", "0s"),
    ];
    BASE.iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Polls `check` every `every` until it yields `Some`; an error naming `what` after `within`.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting until {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until the published snapshot shows every experiment of `fleet` healthy and bookable.
pub async fn all_healthy(served: &Served, fleet: Fleet, within: Duration) -> anyhow::Result<()> {
    wait_until(
        "every experiment is healthy and available",
        within,
        Duration::from_millis(20),
        || {
            let s = served.snapshot.load();
            let ready = s.experiments.len() == fleet.experiments
                && s.experiments.iter().all(|e| e.healthy && e.available == Some(true));
            ready.then_some(())
        },
    )
    .await
}

/// Latencies of one kind, summarised.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut all: Vec<Duration>) -> Self {
        all.sort_unstable();
        Self(all)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile `p` (0–100); zero when empty.
    pub fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    /// `median 1.23 ms, p99 4.56 ms, max 7.89 ms (n=200)`.
    pub fn describe(&self) -> String {
        format!(
            "median {}, p99 {}, max {} (n={})",
            ms(self.pct(50.0)),
            ms(self.pct(99.0)),
            ms(self.pct(100.0)),
            self.len()
        )
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// One line of the result table.
pub struct Row {
    pub section: &'static str,
    pub what: String,
    pub value: String,
    pub target: String,
    /// `None` when the line is information without a target.
    pub met: Option<bool>,
}

impl Row {
    pub fn info(section: &'static str, what: impl Display, value: impl Display) -> Row {
        Row {
            section,
            what: what.to_string(),
            value: value.to_string(),
            target: String::new(),
            met: None,
        }
    }

    pub fn target(
        section: &'static str,
        what: impl Display,
        value: impl Display,
        target: impl Display,
        met: bool,
    ) -> Row {
        Row {
            section,
            what: what.to_string(),
            value: value.to_string(),
            target: target.to_string(),
            met: Some(met),
        }
    }
}

/// The table in Markdown, ready for the README.
pub fn print_table(rows: &[Row]) {
    println!("| part | measurement | result | target | met |");
    println!("|---|---|---|---|---|");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!("| {} | {} | {} | {} | {met} |", r.section, r.what, r.value, r.target);
    }
}

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`).
pub fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .context("no VmRSS line in /proc/self/status")?;
    Ok(kb * 1024)
}

/// How one GET went.
pub struct Timed {
    /// Until the status line and headers arrived.
    pub first_byte: Duration,
    /// Until the whole body was read.
    pub total: Duration,
    pub bytes: usize,
}

/// GETs `url`, reads the whole body, and fails on anything but `200`.
pub async fn timed_get(http: &reqwest::Client, url: &str) -> anyhow::Result<Timed> {
    let started = Instant::now();
    let response = http.get(url).send().await.with_context(|| format!("GET {url}"))?;
    let first_byte = started.elapsed();
    let status = response.status();
    let body = response.bytes().await.with_context(|| format!("GET {url}: body"))?;
    let total = started.elapsed();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    Ok(Timed {
        first_byte,
        total,
        bytes: body.len(),
    })
}

/// CPU time used so far by the service's threads (all named `service` by [`Served::start`]).
pub fn service_cpu() -> anyhow::Result<Duration> {
    /// The unit of `utime` and `stime` in `/proc/<pid>/task/<tid>/stat` on Linux.
    const TICKS_PER_SEC: u64 = 100;
    let mut ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        // A thread may end while we look: skip it.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
            continue;
        };
        // `tid (name) state …`: utime and stime are the 12th and 13th fields after the name.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(service") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        for f in fields.get(11..13).unwrap_or_default() {
            ticks += f.parse::<u64>().unwrap_or(0);
        }
    }
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SEC))
}
