//! The `status` command line: parse, set up logging, run, map failures to exit codes.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use status::config::{Config, Email};
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
    /// Print the version.
    Version,
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
    }
}

fn load() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        eprintln!("status: {e}");
        ExitCode::from(EXIT_CONFIG)
    })
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
        let addr = SocketAddr::new(config.listen, config.port_serve);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {addr}: {e}");
                eprintln!("status: cannot listen on {addr} (STATUS_LISTEN, STATUS_PORT_SERVE): {e}");
                return ExitCode::FAILURE;
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(on_signal(shutdown.clone()));
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

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!("SIGINT: shutting down"),
        () = term => info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
