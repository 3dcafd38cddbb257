//! systemd integration for `Type=notify` units: `READY=1` once the service
//! listens and its tasks run, `STOPPING=1` when shutdown begins, and
//! `WATCHDOG=1` pings when the unit sets `WatchdogSec=`.
//!
//! The pings come from the reconciler's own loop (see [`Watchdog`]), so a
//! stuck loop stops them and systemd restarts the process. Readiness never
//! waits for a peer: a down relay must not hold up `systemctl start`.
//! Everything here is a no-op unless `NOTIFY_SOCKET` was set at start, so
//! services run by tests or by hand never notify anyone. It must never block
//! on anything but a local datagram send.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::{debug, warn};

/// The service manager's ear, if the process was started by one.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    enabled: bool,
    watchdog_every: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` as systemd sets them.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok();
        let enabled = var("NOTIFY_SOCKET").is_some();
        let watchdog_every = enabled
            .then(|| {
                let (usec, pid) = (var("WATCHDOG_USEC"), var("WATCHDOG_PID"));
                ping_period(usec.as_deref(), pid.as_deref(), std::process::id())
            })
            .flatten();
        Self {
            enabled,
            watchdog_every,
        }
    }

    /// Startup is finished; `status` is what `systemctl status` shows.
    pub fn ready(&self, status: &str) {
        self.send("READY=1", &[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// Shutdown has begun.
    pub fn stopping(&self) {
        self.send("STOPPING=1", &[NotifyState::Stopping]);
    }

    /// The pinger for the reconciler loop, when systemd expects pings.
    pub fn watchdog(&self) -> Option<Watchdog> {
        self.watchdog_every.map(|every| Watchdog {
            notifier: self.clone(),
            every,
        })
    }

    fn send(&self, what: &str, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        match sd_notify::notify(false, states) {
            Ok(()) => debug!("told systemd {what}"),
            Err(e) => warn!("cannot tell systemd {what} through NOTIFY_SOCKET: {e}"),
        }
    }
}

/// Pings systemd's watchdog; owned by the loop whose liveness it vouches for.
#[derive(Debug, Clone)]
pub struct Watchdog {
    notifier: Notifier,
    every: Duration,
}

impl Watchdog {
    /// How often to ping: half the watchdog timeout, as systemd recommends.
    pub fn every(&self) -> Duration {
        self.every
    }

    pub fn ping(&self) {
        self.notifier.send("WATCHDOG=1", &[NotifyState::Watchdog]);
    }
}

/// Half of `WATCHDOG_USEC`, if it is set, positive, and meant for this
/// process (`WATCHDOG_PID` unset or `own_pid`), as `sd_watchdog_enabled(3)` says.
fn ping_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_at_half_its_timeout_when_meant_for_us() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(ping_period(Some("30000000"), None, 42), half);
        assert_eq!(ping_period(Some("30000000"), Some("42"), 42), half);
        assert_eq!(ping_period(Some("30000000"), Some("43"), 42), None, "another process's");
        assert_eq!(ping_period(Some("30000000"), Some("x"), 42), None);
        assert_eq!(ping_period(None, Some("42"), 42), None);
        assert_eq!(ping_period(Some("0"), None, 42), None);
        assert_eq!(ping_period(Some("-5"), None, 42), None);
        assert_eq!(ping_period(Some("soon"), None, 42), None);
    }

    #[test]
    fn a_service_not_started_by_systemd_expects_no_pings() {
        assert!(Notifier::default().watchdog().is_none());
    }
}
