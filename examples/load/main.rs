//! The end-to-end load run: the real service on loopback against simulated
//! peers, measured from the outside. Prints one Markdown table.
//!
//! ```sh
//! cargo run --release --example load -- [all|action|isolation|readers|memory]...
//! ```
//!
//! - `action`: evidence to action (relay frame → booking PUT), `isolation`:
//!   hung booking API and mute SMTP vs a baseline, `readers`: 50 REST
//!   clients against 10k experiments, `memory`: resident memory per stream
//!   with full event rings. The ingest comparison is `cargo bench --bench ingest`.
//!
//! Every loop is bounded in count and time; only 127.0.0.1 is dialled. Set
//! `LOAD_LOG=status=warn` to see the service's log on stderr, and
//! `LOAD_EXPERIMENTS` to change the readers' and memory fleet (e.g. a small
//! one under a profiler).

mod action;
mod isolation;
mod memory;
mod readers;
mod rig;

use std::process::ExitCode;

use status::sim::fleet::Fleet;

use rig::{print_table, Row};

/// Trials of the evidence-to-action and isolation measurements (each way).
const TRIALS: usize = 200;
/// The readers' and memory fleet unless `LOAD_EXPERIMENTS` says otherwise: 10k experiments, 30k streams.
const LARGE: usize = 10_000;

const SECTIONS: [&str; 4] = ["action", "isolation", "readers", "memory"];

fn main() -> ExitCode {
    let mut asked: Vec<String> = std::env::args().skip(1).collect();
    if asked.is_empty() || asked.iter().any(|a| a == "all") {
        asked = SECTIONS.iter().map(|s| s.to_string()).collect();
    }
    if let Some(bad) = asked.iter().find(|a| !SECTIONS.contains(&a.as_str())) {
        eprintln!("unknown part {bad:?}; usage: load [all|action|isolation|readers|memory]...");
        return ExitCode::from(2);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOAD_LOG").unwrap_or_else(|_| "off".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    println!("{}\n", machine());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let wants = |s: &str| asked.iter().any(|a| a == s);
    let large = match std::env::var("LOAD_EXPERIMENTS").map(|n| n.parse::<usize>()) {
        Err(_) => Fleet { experiments: LARGE },
        Ok(Ok(n)) if n > 0 => Fleet { experiments: n },
        Ok(_) => {
            eprintln!("LOAD_EXPERIMENTS must be a positive number");
            return ExitCode::from(2);
        }
    };
    let (mut rows, failed) = runtime.block_on(async {
        let mut rows = Vec::new();
        let mut failed = false;
        let mut record = |part: &str, result: anyhow::Result<Vec<Row>>| match result {
            Ok(more) => rows.extend(more),
            Err(e) => {
                eprintln!("{part} failed: {e:#}");
                failed = true;
            }
        };
        // Memory first, in a process that has not yet allocated for anything else.
        if wants("memory") || wants("readers") {
            eprintln!("loading {} experiments with full event rings…", large.experiments);
            match memory::Loaded::start(large).await {
                Ok(loaded) => {
                    if wants("memory") {
                        record("memory", loaded.measure().await);
                    }
                    if wants("readers") {
                        eprintln!("readers…");
                        record("readers", readers::run(&loaded).await);
                    }
                    record("stopping", loaded.served.stop().await.map(|()| Vec::new()));
                }
                Err(e) => record("loading", Err(e)),
            }
        }
        if wants("action") {
            eprintln!("evidence to action…");
            record("action", action::run(TRIALS).await);
        }
        if wants("isolation") {
            eprintln!("isolation…");
            record("isolation", isolation::run(TRIALS).await);
        }
        (rows, failed)
    });
    rows.sort_by_key(|r| r.section);
    print_table(&rows);
    println!("\nload average at the end: {}", loadavg());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Cores, CPU model and load: the machine the numbers belong to.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "machine: {cores} cores, {cpu}; load average at the start: {}",
        loadavg()
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test` runs this: a configuration rule that changes must not silently break a measurement.
    #[test]
    fn every_measurement_starts_from_a_valid_configuration() {
        let events = memory::EVENTS.to_string();
        for settings in [
            &action::SETTINGS[..],
            &isolation::settings("2525"),
            &memory::settings(&events),
        ] {
            if let Err(e) = status::Config::from_vars(rig::env(settings)) {
                panic!("{e}");
            }
        }
    }
}
