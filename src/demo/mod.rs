//! `status demo`: the whole system on one machine, in one command.
//!
//! Starts the simulated relay, jump, booking API and SMTP sink on loopback
//! ports, a simulated lab ([`lab`]) broken and mended by a seeded fault
//! script ([`script`]), and the real [`Service`] wired to them with short
//! timings; then tells what happens ([`narrate`]). Tests drive it through
//! [`Demo`]. It needs no `STATUS_*` variable and ignores any that are set;
//! it never talks to anything beyond the sockets it opened itself.
//!
//! - [`lab`]: the rigs and what the relay and jump report about them (pure).
//! - [`script`]: when what goes wrong (pure, seeded).
//! - [`narrate`]: the live log, from the outside: snapshot, booking requests, mail.

pub mod lab;
pub mod narrate;
pub mod script;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::config::{Config, ConfigError};
use crate::sim::book::SimBook;
use crate::sim::smtp::SmtpSink;
use crate::sim::stats::SimStats;
use crate::token::Feed;
use crate::Service;
use lab::{Lab, UnknownExperiment};
pub use narrate::{Kind, Line};
use narrate::{Narrator, Watch};
use script::{Script, Step};

/// The seed used when none is given: every default run tells the same story.
pub const DEFAULT_SEED: u64 = 1;
pub const DEFAULT_EXPERIMENTS: usize = 12;
/// The most experiments the demo simulates.
pub const MAX_EXPERIMENTS: usize = 500;
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 3007);

/// How often the simulated relay and jump publish their statistics.
pub const SNAPSHOT_PERIOD: Duration = Duration::from_secs(1);
/// How often the lab recomputes its reports: ages are never staler than this.
const LAB_PERIOD: Duration = Duration::from_millis(250);
/// Booking requests the simulated booking system remembers (the narrator reads them as they come).
const BOOKING_LOG: usize = 10_000;
/// Longest wait for the service to stop.
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The service's settings in the demo: every decision happens within seconds.
/// The relay's silence in the script ([`script::RELAY_SILENCE`]) outlasts `STATUS_HEALTH_LAST_CHECKED`.
const TIMINGS: &[(&str, &str)] = &[
    ("STATUS_HEALTH_STARTUP", "3s"),
    ("STATUS_HEALTH_LAST_ACTIVE", "3s"),
    ("STATUS_HEALTH_LAST_CHECKED", "4s"),
    ("STATUS_QUERY_BOOK_EVERY", "10s"),
    ("STATUS_TIMEOUT_BOOK", "2s"),
    ("STATUS_EMAIL_GROUP_WAIT", "2s"),
    ("STATUS_EMAIL_MIN_INTERVAL", "10s"),
    ("STATUS_EMAIL_TIMEOUT", "5s"),
];

/// How to run the demo; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Simulated experiments, 1 to [`MAX_EXPERIMENTS`].
    pub experiments: usize,
    /// Decides the lab's rigs and the fault script's victims.
    pub seed: u64,
    /// Where the service's REST API and dashboard listen; a busy port falls back to an ephemeral one.
    pub listen: SocketAddr,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            experiments: DEFAULT_EXPERIMENTS,
            seed: DEFAULT_SEED,
            listen: DEFAULT_LISTEN,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--experiments must be from 1 to {MAX_EXPERIMENTS}, not {0}")]
    Experiments(usize),
    #[error("cannot start the simulated {peer}: {source}")]
    Peer { peer: &'static str, source: io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("the demo's own configuration was refused: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    UnknownExperiment(#[from] UnknownExperiment),
    #[error("the service stopped with an error: {0}")]
    Service(io::Error),
    #[error("the service task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the service did not stop within {STOP_WAIT:?}")]
    StopTimeout,
}

/// A running demo. Dropping it stops everything; [`Demo::stop`] also waits for it.
pub struct Demo {
    options: Options,
    addr: SocketAddr,
    fallback: Option<String>,
    lab: Arc<Mutex<Lab>>,
    narrator: Narrator,
    log: Option<mpsc::Receiver<Line>>,
    shutdown: CancellationToken,
    /// Stops the narrator, which outlives the service (and keeps the SMTP sink open for its final digest).
    stop_watching: CancellationToken,
    service: JoinHandle<io::Result<()>>,
    tasks: JoinSet<()>,
    /// Stops when dropped; kept for that.
    _book: SimBook,
    _stop_on_drop: DropGuard,
}

impl Demo {
    /// Starts the peers, the lab, its fault script, the service and the narrator.
    pub async fn start(options: Options) -> Result<Demo, DemoError> {
        if !(1..=MAX_EXPERIMENTS).contains(&options.experiments) {
            return Err(DemoError::Experiments(options.experiments));
        }
        let started = Instant::now();
        let shutdown = CancellationToken::new();
        // Whatever fails below, the peers already started stop with it.
        let stop_on_drop = shutdown.clone().drop_guard();
        let (listener, fallback) = bind(options.listen).await?;
        let addr = listener.local_addr().map_err(|source| DemoError::Listen {
            addr: options.listen,
            source,
        })?;
        let secrets = Secrets::new();
        let peer = |peer| move |source| DemoError::Peer { peer, source };
        let relay = SimStats::start(Feed::Relay, "/relay", &secrets.relay, SNAPSHOT_PERIOD, shutdown.clone())
            .await
            .map_err(peer("relay"))?;
        let jump = SimStats::start(Feed::Jump, "/jump", &secrets.jump, SNAPSHOT_PERIOD, shutdown.clone())
            .await
            .map_err(peer("jump"))?;
        let book = SimBook::start(&secrets.book, "/book")
            .await
            .map_err(peer("booking API"))?;
        let sink = Arc::new(SmtpSink::start().await.map_err(peer("SMTP sink"))?);

        let lab = Lab::new(options.seed, options.experiments, Utc::now());
        let script = Script::new(options.seed, &lab);
        book.control().keep_requests(BOOKING_LOG);
        book.control().set_manifest(lab.manifest());
        let (narrator, log) = Narrator::new(started);
        let mut driver = Driver {
            lab: Arc::new(Mutex::new(lab)),
            script,
            pending: VecDeque::new(),
            relay: relay.clone(),
            jump: jump.clone(),
            narrator: narrator.clone(),
            started,
        };
        // The peers report the lab as it is before the service first looks.
        driver.step();

        let link = format!("http://{}/", shown(addr));
        let config = Config::from_vars(vars(&relay, &jump, &book, sink.addr(), &secrets, &link))?;
        let service = Service::new(config);
        let watch = Watch::new(narrator.clone(), service.snapshot(), book.control().clone(), sink);
        let service = tokio::spawn(service.run(listener, shutdown.clone()));
        let lab = driver.lab.clone();
        let stop_watching = CancellationToken::new();
        let mut tasks = JoinSet::new();
        tasks.spawn(driver.run(shutdown.clone()));
        tasks.spawn(watch.run(stop_watching.clone()));
        Ok(Demo {
            options,
            addr,
            fallback,
            lab,
            narrator,
            log: Some(log),
            _stop_on_drop: stop_on_drop,
            shutdown,
            stop_watching,
            service,
            tasks,
            _book: book,
        })
    }

    /// Where the service listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:3007/`: the dashboard.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/", shown(self.addr))
    }

    /// The URL of `path` on the service (`/api/v1/experiments`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", shown(self.addr))
    }

    /// Why the service is not on the requested address, when the port was busy.
    pub fn listen_fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The experiments' topic stubs.
    pub fn topics(&self) -> Vec<String> {
        self.lab().topics().map(String::from).collect()
    }

    /// Takes experiment `topic` offline for good (every stream and its jump host
    /// vanish); the fault script leaves it alone from now on.
    pub fn induce_failure(&self, topic: &str) -> Result<(), DemoError> {
        let said = self.lab().induce_failure(topic)?;
        self.narrator.say(Kind::Lab, said);
        Ok(())
    }

    /// The live log, once. Lines nobody takes are dropped when the queue is full.
    pub fn take_log(&mut self) -> Option<mpsc::Receiver<Line>> {
        self.log.take()
    }

    /// What to print before the live log: where to look and what will happen.
    pub fn welcome(&self) -> String {
        let o = &self.options;
        let mut text = format!(
            "status demo: the real service watching a simulated lab of {} experiments (seed {}).\n\
             \n  dashboard  {}\n  REST API   {}\n             {}\n             {}\n",
            o.experiments,
            o.seed,
            self.dashboard_url(),
            self.url("/api/v1/experiments"),
            self.url("/api/v1/alerts"),
            self.url("/api/v1/feeds"),
        );
        if let Some(why) = &self.fallback {
            text.push_str(&format!("  note: {why}\n"));
        }
        text.push_str(&format!(
            "\nEvery minute something breaks: a data stream never starts, a video stream stalls, a jump\n\
             host drops, the relay goes silent for {}s, a stream disappears; then the rigs recover.\n\
             Experiments are judged after a {} start-up grace. In the log below, `lab` is what broke,\n\
             `health` and `alert` what the service concluded, `booking` what the booking system was\n\
             told, `email` each digest the maintainers got.\n",
            script::RELAY_SILENCE.as_secs(),
            timing("STATUS_HEALTH_STARTUP"),
        ));
        text
    }

    /// Stops everything and waits for the service to finish; the narrator tells
    /// what the service did on its way out (its last digest) before it stops too.
    pub async fn stop(mut self) -> Result<(), DemoError> {
        self.shutdown.cancel();
        let served = tokio::time::timeout(STOP_WAIT, &mut self.service).await;
        self.stop_watching.cancel();
        while self.tasks.join_next().await.is_some() {}
        served.map_err(|_| DemoError::StopTimeout)??.map_err(DemoError::Service)
    }

    fn lab(&self) -> MutexGuard<'_, Lab> {
        lock(&self.lab)
    }
}

/// Calls `f` every `period` (at once first) until `shutdown`; a late tick is not made up for.
async fn every(period: Duration, shutdown: CancellationToken, mut f: impl FnMut()) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => f(),
        }
    }
}

fn lock(lab: &Mutex<Lab>) -> MutexGuard<'_, Lab> {
    // Every holder runs plain synchronous code on the lab's own fields; a panic leaves them usable.
    lab.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `listen`; when that port is busy, an ephemeral port on the same address, saying why.
async fn bind(listen: SocketAddr) -> Result<(TcpListener, Option<String>), DemoError> {
    match TcpListener::bind(listen).await {
        Ok(l) => Ok((l, None)),
        Err(busy) if busy.kind() == io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(listen.ip(), 0);
            let l = TcpListener::bind(any)
                .await
                .map_err(|source| DemoError::Listen { addr: any, source })?;
            let port = l.local_addr().map_or(0, |a| a.port());
            Ok((
                l,
                Some(format!("{listen} is busy ({busy}); listening on port {port} instead")),
            ))
        }
        Err(source) => Err(DemoError::Listen { addr: listen, source }),
    }
}

/// An address a browser on this machine can open (`0.0.0.0` is not one).
fn shown(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        ip if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

fn timing(var: &str) -> &'static str {
    TIMINGS.iter().find(|(k, _)| *k == var).map_or("?", |(_, v)| v)
}

/// Fresh shared secrets for this run; they protect loopback peers for its length only, and are never shown.
struct Secrets {
    relay: String,
    jump: String,
    book: String,
}

impl Secrets {
    fn new() -> Self {
        let fresh = || format!("demo-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Self {
            relay: fresh(),
            jump: fresh(),
            book: fresh(),
        }
    }
}

/// The service's configuration: the simulated peers, the SMTP sink and the demo's [`TIMINGS`].
fn vars(
    relay: &SimStats,
    jump: &SimStats,
    book: &SimBook,
    sink: SocketAddr,
    secrets: &Secrets,
    link: &str,
) -> Vec<(String, String)> {
    let mut vars: Vec<(&str, String)> = vec![
        ("STATUS_HOST_RELAY", relay.host().to_string()),
        ("STATUS_SCHEME_RELAY", "http".into()),
        ("STATUS_BASEPATH_RELAY", "/relay".into()),
        ("STATUS_SECRET_RELAY", secrets.relay.clone()),
        ("STATUS_HOST_JUMP", jump.host().to_string()),
        ("STATUS_SCHEME_JUMP", "http".into()),
        ("STATUS_BASEPATH_JUMP", "/jump".into()),
        ("STATUS_SECRET_JUMP", secrets.jump.clone()),
        ("STATUS_HOST_BOOK", book.host()),
        ("STATUS_SCHEME_BOOK", "http".into()),
        ("STATUS_BASEPATH_BOOK", book.basepath().to_string()),
        ("STATUS_SECRET_BOOK", secrets.book.clone()),
        ("STATUS_EMAIL_HOST", sink.ip().to_string()),
        ("STATUS_EMAIL_PORT", sink.port().to_string()),
        ("STATUS_EMAIL_FROM", "Lab Status <status@lab.example.org>".into()),
        ("STATUS_EMAIL_TO", "maintainers@lab.example.org".into()),
        ("STATUS_EMAIL_LINK", link.to_string()),
    ];
    vars.extend(TIMINGS.iter().map(|(k, v)| (*k, v.to_string())));
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Moves the lab along its script and hands its reports to the simulated relay and jump.
struct Driver {
    lab: Arc<Mutex<Lab>>,
    script: Script,
    pending: VecDeque<Step>,
    relay: SimStats,
    jump: SimStats,
    narrator: Narrator,
    started: Instant,
}

impl Driver {
    async fn run(mut self, shutdown: CancellationToken) {
        every(LAB_PERIOD, shutdown, || self.step()).await;
    }

    /// Applies the steps that are due, then publishes the lab's reports as of now.
    fn step(&mut self) {
        let now = self.started.elapsed();
        let mut lab = lock(&self.lab);
        loop {
            if self.pending.is_empty() {
                self.pending.extend(self.script.next_cycle());
            }
            match self.pending.front() {
                Some(step) if step.at <= now => {
                    let fault = step.fault;
                    self.pending.pop_front();
                    if let Some(said) = lab.apply(fault, now) {
                        self.narrator.say(Kind::Lab, said);
                    }
                }
                _ => break,
            }
        }
        self.relay.set_silent(lab.relay_silent());
        self.relay.set_reports(lab.relay_reports(now));
        self.jump.set_reports(lab.jump_reports());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_timings_are_valid_and_the_relay_silence_outlasts_last_checked() {
        let c = crate::feed::tests::config_with(TIMINGS);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(script::RELAY_SILENCE > c.health.last_checked);
        assert!(
            c.health.last_checked > SNAPSHOT_PERIOD * 2,
            "a late snapshot is not silence"
        );
        assert!(
            c.health.last_active > SNAPSHOT_PERIOD + LAB_PERIOD,
            "a sending stream stays healthy"
        );
        assert!(c.health.startup < Duration::from_secs(10), "something happens at once");
    }

    #[test]
    fn an_unspecified_address_is_shown_as_loopback() {
        let any: SocketAddr = "0.0.0.0:3007".parse().unwrap();
        assert_eq!(shown(any).to_string(), "127.0.0.1:3007");
        let any6: SocketAddr = "[::]:3007".parse().unwrap();
        assert_eq!(shown(any6).to_string(), "[::1]:3007");
        let lo: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(shown(lo), lo);
    }
}
