//! The demo's live log: one line per thing worth watching, with the time since start.
//!
//! It watches from the outside, as a person would: the service's published
//! snapshot (health changes and system alerts), the simulated booking
//! system's request log (each availability PUT it answered) and the SMTP
//! sink (each digest caught). It never parses the service's log and never
//! steers anything. Lines go to a bounded queue; when nobody reads them,
//! new lines are dropped rather than piling up.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::sim::book::{BookControl, Recorded};
use crate::sim::smtp::{Received, SmtpSink};
use crate::tracker::{AlertKind, ExperimentView, Snapshot, SystemAlert};

/// How often the watcher looks.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Lines waiting for a reader before new ones are dropped.
pub const QUEUE: usize = 1024;
/// Experiments named in one grouped line; the rest are counted.
const NAMES_SHOWN: usize = 6;
/// Body lines of a digest shown under its subject, and their longest length.
const MAIL_LINES: usize = 3;
const MAIL_LINE_CHARS: usize = 100;

/// What a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The fault script or an induced failure changed the simulated lab.
    Lab,
    /// The service judged experiments healthy or unhealthy.
    Health,
    /// The service raised or cleared a system alert.
    Alert,
    /// The simulated booking system was told to change availability.
    Booking,
    /// The SMTP sink caught a digest.
    Email,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Lab => "lab",
            Kind::Health => "health",
            Kind::Alert => "alert",
            Kind::Booking => "booking",
            Kind::Email => "email",
        }
    }
}

/// One entry of the live log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Time since the demo started.
    pub at: Duration,
    pub kind: Kind,
    /// The first line says it all; further lines (a digest's body) are detail.
    pub text: String,
}

impl fmt::Display for Line {
    /// `[01:05] booking r-pend03 → not bookable: …`, detail lines indented beneath.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.at.as_secs();
        let mut lines = self.text.lines();
        let first = lines.next().unwrap_or_default();
        write!(
            f,
            "[{:02}:{:02}] {:<7} {first}",
            secs / 60,
            secs % 60,
            self.kind.label()
        )?;
        for more in lines {
            write!(f, "\n{:16}{more}", "")?;
        }
        Ok(())
    }
}

/// Where every part of the demo says what happened; cheap to clone.
#[derive(Clone)]
pub struct Narrator {
    lines: mpsc::Sender<Line>,
    started: Instant,
}

impl Narrator {
    pub fn new(started: Instant) -> (Narrator, mpsc::Receiver<Line>) {
        let (lines, rx) = mpsc::channel(QUEUE);
        (Narrator { lines, started }, rx)
    }

    pub fn say(&self, kind: Kind, text: String) {
        let line = Line {
            at: self.started.elapsed(),
            kind,
            text,
        };
        // Full: nobody is reading (a test, say); closed: the reader is gone. Either way the line is not needed.
        let _ = self.lines.try_send(line);
    }
}

/// What the watcher last saw of one experiment after its startup grace.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    healthy: bool,
    issues: Vec<String>,
}

/// The watcher's memory between looks.
pub struct Watch {
    narrator: Narrator,
    snapshot: Arc<ArcSwap<Snapshot>>,
    booking: BookControl,
    sink: Arc<SmtpSink>,
    seen: HashMap<String, Seen>,
    alerts: BTreeMap<AlertKind, String>,
    /// Absolute index of the next booking request to look at.
    next_request: usize,
}

impl Watch {
    pub fn new(
        narrator: Narrator,
        snapshot: Arc<ArcSwap<Snapshot>>,
        booking: BookControl,
        sink: Arc<SmtpSink>,
    ) -> Self {
        Self {
            narrator,
            snapshot,
            booking,
            sink,
            seen: HashMap::new(),
            alerts: BTreeMap::new(),
            next_request: 0,
        }
    }

    /// Looks every [`WATCH_EVERY`] until `stop`, then once more: started after the
    /// service has stopped, the last look sees what its shutdown did (a final digest).
    pub async fn run(mut self, stop: CancellationToken) {
        super::every(WATCH_EVERY, stop, || self.look()).await;
        self.look();
    }

    fn look(&mut self) {
        let snapshot = self.snapshot.load_full();
        for text in alert_changes(&mut self.alerts, &snapshot.alerts) {
            self.narrator.say(Kind::Alert, text);
        }
        let judged = snapshot.experiments.iter().map(Judgement::from);
        for text in health_changes(&mut self.seen, judged) {
            self.narrator.say(Kind::Health, text);
        }
        let (first, requests) = self.booking.requests_from(self.next_request);
        self.next_request = first;
        for r in &requests {
            if r.method == "PUT" && r.status.is_none() {
                break; // Still being answered: look again next time.
            }
            self.next_request += 1;
            if let Some(text) = availability_change(r) {
                self.narrator.say(Kind::Booking, text);
            }
        }
        for mail in self.sink.take_messages() {
            self.narrator.say(Kind::Email, digest(&mail));
        }
    }
}

/// What the watcher needs of one experiment in the published snapshot.
#[derive(Clone)]
struct Judgement<'a> {
    topic: &'a str,
    in_startup_grace: bool,
    now: Seen,
}

impl<'a> From<&'a ExperimentView> for Judgement<'a> {
    fn from(e: &'a ExperimentView) -> Self {
        Judgement {
            topic: &e.topic_name,
            in_startup_grace: e.in_startup_grace,
            now: Seen {
                healthy: e.healthy,
                issues: e.issues.to_vec(),
            },
        }
    }
}

/// Health changes since the last look, grouped: experiments that changed to
/// the same state with the same issues share a line (a silent relay touches them all).
fn health_changes<'a>(
    seen: &mut HashMap<String, Seen>,
    judged: impl IntoIterator<Item = Judgement<'a>>,
) -> Vec<String> {
    let mut groups: BTreeMap<(bool, Vec<String>, bool), Vec<&str>> = BTreeMap::new();
    for Judgement { topic, now, .. } in judged.into_iter().filter(|j| !j.in_startup_grace) {
        let before = seen.insert(topic.to_string(), now.clone());
        if before.as_ref() == Some(&now) {
            continue;
        }
        let again = before.is_some_and(|b| !b.healthy) && now.healthy;
        groups.entry((now.healthy, now.issues, again)).or_default().push(topic);
    }
    // Problems first, as everywhere else.
    groups
        .into_iter()
        .map(|((healthy, issues, again), mut topics)| {
            topics.sort_unstable();
            let who = names(&topics);
            match (healthy, again) {
                (true, true) => format!("✔ {who} healthy again"),
                (true, false) => format!("✔ {who} healthy"),
                (false, _) if issues.is_empty() => format!("✖ {who} unhealthy"),
                (false, _) => format!("✖ {who} unhealthy: {}", issues.join(", ")),
            }
        })
        .collect()
}

/// `pend00`, or `3 experiments (pend00, spin01, trus00)`, or the first few and a count.
fn names(topics: &[&str]) -> String {
    match topics {
        [one] => (*one).to_string(),
        _ if topics.len() <= NAMES_SHOWN => format!("{} experiments ({})", topics.len(), topics.join(", ")),
        _ => format!(
            "{} experiments ({}, and {} more)",
            topics.len(),
            topics[..NAMES_SHOWN].join(", "),
            topics.len() - NAMES_SHOWN
        ),
    }
}

/// System alerts raised (or reworded) and cleared since the last look.
fn alert_changes(known: &mut BTreeMap<AlertKind, String>, alerts: &[SystemAlert]) -> Vec<String> {
    let mut lines = Vec::new();
    let current: BTreeMap<AlertKind, String> = alerts.iter().map(|a| (a.kind, a.message.clone())).collect();
    for (kind, message) in &current {
        if known.get(kind) != Some(message) {
            lines.push(format!("⚠ {message}"));
        }
    }
    for (kind, message) in known.iter() {
        if !current.contains_key(kind) {
            lines.push(format!("cleared: {message}"));
        }
    }
    *known = current;
    lines
}

/// An answered availability PUT, in words; `None` for any other request.
fn availability_change(r: &Recorded) -> Option<String> {
    if r.method != "PUT" {
        return None;
    }
    let resource = r.resource.as_deref().unwrap_or("?");
    let state = match r.param("available") {
        Some("true") => "bookable",
        Some("false") => "not bookable",
        _ => "?",
    };
    let reason = r.param("reason").unwrap_or_default();
    Some(match r.status {
        Some(204) => format!("{resource} → {state} ({reason})"),
        Some(code) => format!("{resource} → {state} refused with {code}"),
        None => format!("{resource} → {state}: no answer"),
    })
}

/// The subject in quotes, then the first lines of the body below the date line,
/// each unwrapped (the digest wraps long items for phones) and cut short.
fn digest(mail: &Received) -> String {
    let subject = mail.header("Subject").unwrap_or_else(|| "(no subject)".into());
    let mut text = format!("“{subject}” to {}", mail.rcpt_to.join(", "));
    let mut items: Vec<String> = Vec::new();
    for line in mail.body().lines() {
        match items.last_mut() {
            Some(item) if line.starts_with("  ") => {
                item.push(' ');
                item.push_str(line.trim());
            }
            _ if line.trim().is_empty() || line.starts_with("Lab status at") => {}
            _ => items.push(line.trim_end().to_string()),
        }
    }
    for item in items.iter().take(MAIL_LINES) {
        text.push('\n');
        text.push_str(&shorten(item));
    }
    text
}

fn shorten(line: &str) -> String {
    match line.char_indices().nth(MAIL_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn view<'a>(topic: &'a str, healthy: bool, issues: &[&str], grace: bool) -> Judgement<'a> {
        Judgement {
            topic,
            in_startup_grace: grace,
            now: Seen {
                healthy,
                issues: issues.iter().map(|s| s.to_string()).collect(),
            },
        }
    }

    #[test]
    fn health_changes_are_told_once_grouped_and_problems_first() {
        let mut seen = HashMap::new();
        let grace = [view("pend00", false, &[], true), view("spin00", false, &[], true)];
        assert!(
            health_changes(&mut seen, grace).is_empty(),
            "nothing is said during the grace"
        );

        let first = [
            view("pend00", false, &["unhealthy pend00-st-data"], false),
            view("spin00", true, &[], false),
            view("trus00", true, &[], false),
        ];
        assert_eq!(
            health_changes(&mut seen, first.clone()),
            [
                "✖ pend00 unhealthy: unhealthy pend00-st-data",
                "✔ 2 experiments (spin00, trus00) healthy"
            ]
        );
        assert!(
            health_changes(&mut seen, first.clone()).is_empty(),
            "no change, no line"
        );

        let recovered = [
            view("pend00", true, &[], false),
            view("spin00", true, &[], false),
            view("trus00", false, &["missing jump"], false),
        ];
        assert_eq!(
            health_changes(&mut seen, recovered),
            ["✖ trus00 unhealthy: missing jump", "✔ pend00 healthy again"]
        );
    }

    #[test]
    fn a_silent_relay_is_one_line_however_many_experiments() {
        let mut seen = HashMap::new();
        let topics: Vec<String> = (0..9).map(|i| format!("pend{i:02}")).collect();
        let silent: Vec<_> = topics
            .iter()
            .map(|t| view(t, false, &["relay feed silent"], false))
            .collect();
        let lines = health_changes(&mut seen, silent);
        assert_eq!(
            lines,
            ["✖ 9 experiments (pend00, pend01, pend02, pend03, pend04, pend05, and 3 more) unhealthy: relay feed silent"]
        );
    }

    #[test]
    fn alerts_are_told_when_raised_and_when_cleared() {
        let mut known = BTreeMap::new();
        let silent = SystemAlert::feed_silent(AlertKind::RelaySilent, Utc::now(), None);
        let raised = alert_changes(&mut known, std::slice::from_ref(&silent));
        assert_eq!(raised, [format!("⚠ {}", silent.message)]);
        assert!(alert_changes(&mut known, std::slice::from_ref(&silent)).is_empty());
        assert_eq!(alert_changes(&mut known, &[]), [format!("cleared: {}", silent.message)]);
    }

    #[test]
    fn only_answered_puts_are_availability_changes() {
        let put = |status| Recorded {
            method: "PUT".into(),
            path: "/book/api/v1/admin/resources/r-pend00".into(),
            query: vec![
                ("available".into(), "false".into()),
                ("reason".into(), "status: missing jump".into()),
            ],
            resource: Some("r-pend00".into()),
            status,
            at: std::time::Instant::now(),
        };
        assert_eq!(
            availability_change(&put(Some(204))).unwrap(),
            "r-pend00 → not bookable (status: missing jump)"
        );
        assert!(availability_change(&put(Some(500)))
            .unwrap()
            .contains("refused with 500"));
        let get = Recorded {
            method: "GET".into(),
            ..put(Some(200))
        };
        assert_eq!(availability_change(&get), None);
    }

    #[test]
    fn a_digest_shows_its_subject_and_first_items_unwrapped() {
        let mail = Received {
            mail_from: "status@example.org".into(),
            rcpt_to: vec!["a@example.org".into()],
            user: None,
            data: "Subject: Lab status: 2 new health events\r\n\r\nLab status at 2026-11-21 10:00:00 UTC\r\n\r\n\
                   System alerts\r\n! relay feed silent: no statistics since 10:00; its\r\n  experiments cannot be seen\r\n\
                   \r\nNew problems (1)\r\n- pend00 (r-pend00) bookable: no\r\n"
                .into(),
        };
        assert_eq!(
            digest(&mail),
            "“Lab status: 2 new health events” to a@example.org\nSystem alerts\n\
             ! relay feed silent: no statistics since 10:00; its experiments cannot be seen\nNew problems (1)"
        );
        assert_eq!(
            shorten(&"é".repeat(MAIL_LINE_CHARS + 5)),
            format!("{}…", "é".repeat(MAIL_LINE_CHARS))
        );
    }

    #[test]
    fn lines_show_minutes_seconds_and_indent_detail() {
        let line = Line {
            at: Duration::from_secs(65),
            kind: Kind::Email,
            text: "“Lab status: 1 new health event” to a@example.org\nNew problems (1)".into(),
        };
        assert_eq!(
            line.to_string(),
            "[01:05] email   “Lab status: 1 new health event” to a@example.org\n                New problems (1)"
        );
    }
}
