//! The `status` command line: parse, set up logging, run, map failures to exit codes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use status::config::{Config, Email, LogConfig, LogFormat};
use status::demo::{self, Demo};
use status::systemd::Notifier;
use status::Service;

/// Keeps a remote laboratory's booking system in step with the health of its experiments.
///
/// Configured entirely by STATUS_* environment variables; see the README.
#[derive(Parser)]
#[command(name = "status", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service until SIGINT or SIGTERM.
    Serve,
    /// Validate the configuration and print the effective values (secrets as <set>/<unset>).
    Check,
    /// Run the whole system on this machine: simulated relay, jump, booking, mail and a
    /// lab that breaks and recovers, watched by the real service. Needs no configuration.
    Demo(DemoArgs),
    /// Print the version.
    Version,
}

#[derive(Args)]
struct DemoArgs {
    /// Simulated experiments (1 to 500).
    #[arg(long, default_value_t = demo::DEFAULT_EXPERIMENTS as u16,
          value_parser = clap::value_parser!(u16).range(1..=demo::MAX_EXPERIMENTS as i64))]
    experiments: u16,
    /// Seed of the lab and its fault script: the same seed tells the same story.
    #[arg(long, default_value_t = demo::DEFAULT_SEED)]
    seed: u64,
    /// Stop after this long (e.g. 90s, 5m) and exit 0; without it, run until Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = duration)]
    run_for: Option<Duration>,
    /// Address of the dashboard and REST API; a busy port falls back to an ephemeral one.
    #[arg(long, default_value_t = demo::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The service's own log (to stdout, as text); quiet by default so the demo's lines stand out.
    #[arg(long, value_enum, default_value_t = DemoLog::Error)]
    log_level: DemoLog,
}

#[derive(Clone, Copy, ValueEnum)]
enum DemoLog {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

fn duration(s: &str) -> Result<Duration, String> {
    status::config::parse_duration(s).ok_or_else(|| "expected a duration such as 90s, 5m or 1h".to_string())
}

/// Exit code for configuration the service refuses to start with.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Version => {
            println!("status {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check => check(),
        Command::Serve => serve(),
        Command::Demo(args) => run_demo(args),
    }
}

/// The configuration, refused (exit 2, one line) when a value is bad or the
/// mail transport cannot be built from it, for `check` and `serve` alike.
fn load() -> Result<Config, ExitCode> {
    let refuse = |e: &dyn std::fmt::Display| {
        eprintln!("status: {e}");
        ExitCode::from(EXIT_CONFIG)
    };
    let config = Config::from_env().map_err(|e| refuse(&e))?;
    if let Email::On(email) = &config.email {
        status::mail::Mailer::new(email).map_err(|e| refuse(&e))?;
    }
    Ok(config)
}

fn check() -> ExitCode {
    let config = match load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    for (name, value) in config.describe() {
        println!("{name}={value}");
    }
    for w in &config.warnings {
        eprintln!("status: warning: {w}");
    }
    ExitCode::SUCCESS
}

fn serve() -> ExitCode {
    let config = match load() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = status::logging::init(&config.log) {
        eprintln!("status: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    for w in &config.warnings {
        warn!("{w}");
    }
    match &config.email {
        Email::Off { missing } => warn!("email is off: {} not set", missing.join(", ")),
        Email::On(e) => info!(host = %e.host, port = e.port, to = ?e.to, "email digests on"),
    }
    if config.profile {
        warn!(
            "STATUS_PROFILE=true is accepted for compatibility but serves no profiler; use /metrics and perf instead"
        );
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("status: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        if !spawn_on_signal(&shutdown) {
            return ExitCode::FAILURE;
        }
        let addr = SocketAddr::new(config.listen, config.port_serve);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {addr}: {e}");
                eprintln!("status: cannot listen on {addr} (STATUS_LISTEN, STATUS_PORT_SERVE): {e}");
                return ExitCode::FAILURE;
            }
        };
        let service = Service::new(config).notify(Notifier::from_env());
        match service.run(listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("stopped with an error: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

fn run_demo(args: DemoArgs) -> ExitCode {
    let level = match args.log_level {
        DemoLog::Off => None,
        DemoLog::Error => Some("error"),
        DemoLog::Warn => Some("warn"),
        DemoLog::Info => Some("info"),
        DemoLog::Debug => Some("debug"),
        DemoLog::Trace => Some("trace"),
    };
    if let Some(level) = level {
        let log = LogConfig {
            level: level.into(),
            format: LogFormat::Text,
            file: None,
        };
        if let Err(e) = status::logging::init(&log) {
            eprintln!("status demo: {e}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("status demo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = demo::Options {
        experiments: usize::from(args.experiments),
        seed: args.seed,
        listen: args.listen,
    };
    runtime.block_on(async move {
        let mut demo = match Demo::start(options).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("status demo: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{}", demo.welcome());
        match args.run_for {
            Some(d) => println!(
                "Running for {}; Ctrl-C stops it sooner.\n",
                status::config::fmt_duration(d)
            ),
            None => println!("Ctrl-C stops it.\n"),
        }
        let stop = CancellationToken::new();
        if !spawn_on_signal(&stop) {
            return ExitCode::FAILURE;
        }
        let time_up = async {
            match args.run_for {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(time_up);
        let mut log = demo.take_log();
        while let Some(lines) = log.as_mut() {
            tokio::select! {
                () = stop.cancelled() => break,
                () = &mut time_up => break,
                line = lines.recv() => match line {
                    Some(line) => println!("{line}"),
                    None => break,
                },
            }
        }
        println!("stopping…");
        let stopped = demo.stop().await;
        // What happened on the way out, such as the last digest.
        while let Some(line) = log.as_mut().and_then(|l| l.try_recv().ok()) {
            println!("{line}");
        }
        match stopped {
            Ok(()) => {
                println!("demo stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("status demo: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A task that cancels `shutdown` on SIGINT or SIGTERM. The handlers are
/// installed now, not when the task first runs: a signal that arrives once
/// the service answers (systemd may stop it right after it is ready) is
/// never missed nor left to kill the process uncleanly.
#[cfg(unix)]
fn on_signal(shutdown: CancellationToken) -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT: shutting down"),
            _ = terminate.recv() => info!("SIGTERM: shutting down"),
        }
        shutdown.cancel();
    })
}

#[cfg(not(unix))]
fn on_signal(shutdown: CancellationToken) -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("Ctrl-C: shutting down");
            shutdown.cancel();
        }
    })
}

/// Spawns [`on_signal`]; false (said on stderr) if the handlers cannot be installed.
fn spawn_on_signal(shutdown: &CancellationToken) -> bool {
    match on_signal(shutdown.clone()) {
        Ok(task) => {
            tokio::spawn(task);
            true
        }
        Err(e) => {
            eprintln!("status: cannot install the SIGINT/SIGTERM handlers: {e}");
            false
        }
    }
}
