//! The text of one digest email (PROTOCOL.md §5).
//!
//! Pure: a [`Batch`], the published [`Snapshot`] and the time go in, a
//! subject and a plain-text body come out. It never sends, waits or reads
//! the clock. Lines are wrapped short for a phone's mail client (which also
//! keeps ASCII bodies in 7bit, readable as they are), everything is sorted,
//! and the same input always gives the same text.

use chrono::{DateTime, Utc};

use super::batch::{Batch, Change};
use crate::tracker::{ExperimentView, News, Snapshot, SystemAlert};

/// Longest line we write, words permitting; short enough for a phone.
const WIDTH: usize = 72;
/// Continuation lines of a wrapped item are indented this much.
const INDENT: &str = "  ";

/// A rendered email, ready for headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub subject: String,
    pub body: String,
}

/// Writes the digest for `batch` as of `now`.
///
/// `snapshot` supplies what is true now rather than what changed: whether
/// each experiment is bookable, the system alerts still active and every
/// current problem, old ones included. A digest written late (grouped, rate
/// limited, retried through an outage) therefore never repeats a stale state.
pub fn render(batch: &Batch, snapshot: &Snapshot, now: DateTime<Utc>, subject: &str, link: &str) -> Digest {
    let events = batch.events();
    let subject = format!(
        "{} {events} new health event{}",
        subject.trim(),
        if events == 1 { "" } else { "s" }
    )
    .trim()
    .to_string();

    let mut body = format!("Lab status at {}\n", time(now));
    alerts(&mut body, batch.alerts(), &snapshot.alerts);
    let (problems, recoveries): (Vec<&Change>, Vec<&Change>) = batch.changes().partition(|c| !c.latest.event.healthy);
    section(&mut body, "New problems", &problems, snapshot);
    section(&mut body, "Recovered", &recoveries, snapshot);
    current_problems(&mut body, snapshot);
    if !link.trim().is_empty() {
        body.push('\n');
        wrapped(&mut body, &format!("Live status: {}", link.trim()));
    }
    Digest { subject, body }
}

/// Alerts raised since the last digest and those still active, each once.
fn alerts(body: &mut String, raised: &[SystemAlert], active: &[SystemAlert]) {
    let same = |a: &SystemAlert, b: &SystemAlert| a.kind == b.kind && a.since == b.since;
    let mut all: Vec<&SystemAlert> = active.iter().collect();
    all.extend(raised.iter().filter(|r| !active.iter().any(|a| same(a, r))));
    if all.is_empty() {
        return;
    }
    all.sort_by_key(|a| (a.kind, a.since));
    body.push_str("\nSystem alerts\n");
    for a in all {
        let state = if active.iter().any(|x| same(x, a)) {
            "still active"
        } else {
            "cleared"
        };
        wrapped(body, &format!("! {} (since {}, {state})", a.message, time(a.since)));
    }
}

fn section(body: &mut String, title: &str, changes: &[&Change], snapshot: &Snapshot) {
    if changes.is_empty() {
        return;
    }
    body.push_str(&format!("\n{title} ({})\n", changes.len()));
    for c in changes {
        let n = &c.latest;
        let now = snapshot.experiment(&n.topic);
        let resource = now.map_or(n.resource.as_deref(), |e| e.resource_name.as_deref());
        let mut line = format!("- {} bookable: {}", experiment(&n.topic, resource), bookable(n, now));
        if c.count > 1 {
            line.push_str(&format!("; flapping: {} changes", c.count));
        }
        line.push_str("; ");
        line.push_str(&issues(&n.event.issues, n.event.healthy));
        wrapped(body, &line);
    }
}

/// Every unhealthy experiment now, one per line, so the list can be pasted into a chat.
fn current_problems(body: &mut String, snapshot: &Snapshot) {
    let mut problems: Vec<_> = snapshot
        .experiments
        .iter()
        .filter(|e| !e.healthy && !e.in_startup_grace)
        .collect();
    problems.sort_by(|a, b| a.topic_name.cmp(&b.topic_name));
    if problems.is_empty() {
        body.push_str("\nAll current problems: none\n");
        return;
    }
    body.push_str(&format!("\nAll current problems ({})\n", problems.len()));
    for e in problems {
        wrapped(
            body,
            &format!(
                "{}: {}",
                experiment(&e.topic_name, e.resource_name.as_deref()),
                issues(&e.issues, e.healthy)
            ),
        );
    }
}

/// `pend00 (r-pend00)`, or just the topic when the booking system does not know it.
fn experiment(topic: &str, resource: Option<&str>) -> String {
    match resource {
        Some(r) => format!("{topic} ({r})"),
        None => topic.to_string(),
    }
}

/// Whether the experiment is bookable as the digest is written: what the
/// booking system was last read to hold, from the published snapshot; the
/// value the event carried only when the snapshot does not know.
fn bookable(n: &News, now: Option<&ExperimentView>) -> &'static str {
    let (managed, available) = match now {
        Some(e) => (e.resource_name.is_some(), e.available.or(n.bookable)),
        None => (n.resource.is_some(), n.bookable),
    };
    match (managed, available) {
        (false, _) => "not managed",
        (true, Some(true)) => "yes",
        (true, Some(false)) => "no",
        (true, None) => "unknown",
    }
}

fn issues(issues: &[String], healthy: bool) -> String {
    match (issues.is_empty(), healthy) {
        (false, _) => issues.join(", "),
        (true, true) => "ok".to_string(),
        (true, false) => "unhealthy".to_string(),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Appends `text` as lines of at most [`WIDTH`] characters, breaking only
/// between words (a longer word, such as a link, keeps a line to itself).
fn wrapped(body: &mut String, text: &str) {
    let mut line_len = 0;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let len = word.chars().count();
        if line_len > 0 && line_len + 1 + len > WIDTH {
            body.push('\n');
            body.push_str(INDENT);
            line_len = INDENT.len();
        } else if line_len > 0 {
            body.push(' ');
            line_len += 1;
        }
        body.push_str(word);
        line_len += len;
    }
    body.push('\n');
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use chrono::TimeZone;

    use super::*;
    use crate::tracker::{AlertKind, Effect, HealthEvent};

    fn at(secs: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, secs).unwrap()
    }

    fn news(topic: &str, resource: Option<&str>, bookable: Option<bool>, issues: &[&str]) -> Effect {
        Effect::Notify(vec![News {
            topic: topic.into(),
            resource: resource.map(Into::into),
            event: HealthEvent {
                when: at(1),
                healthy: issues.is_empty(),
                jump_ok: !issues.contains(&"missing jump"),
                stream_ok: Arc::default(),
                issues: Arc::new(issues.iter().map(|s| s.to_string()).collect()),
            },
            bookable,
        }])
    }

    fn view(topic: &str, resource: Option<&str>, issues: &[&str], in_startup_grace: bool) -> ExperimentView {
        ExperimentView {
            topic_name: topic.into(),
            resource_name: resource.map(Into::into),
            available: None,
            healthy: issues.is_empty(),
            jump_ok: true,
            stream_ok: Arc::default(),
            stream_required: BTreeMap::new(),
            stream_reports: BTreeMap::new(),
            jump_report: None,
            health_events: 0,
            first_checked: at(0),
            last_checked_jump: None,
            last_checked_streams: None,
            last_found_in_manifest: None,
            issues: issues.iter().map(|s| s.to_string()).collect(),
            bookable: true,
            in_startup_grace,
            events: Arc::default(),
        }
    }

    fn silent(kind: AlertKind, since: u32) -> SystemAlert {
        SystemAlert::feed_silent(kind, at(since), None)
    }

    fn snapshot(experiments: Vec<ExperimentView>, alerts: Vec<SystemAlert>) -> Snapshot {
        let mut s = Snapshot::default();
        s.experiments = experiments;
        s.alerts = alerts;
        s
    }

    fn batch(effects: impl IntoIterator<Item = Effect>) -> Batch {
        let mut b = Batch::default();
        for e in effects {
            b.add(e);
        }
        b
    }

    /// The body with wrapped items joined again, one item per line.
    fn unwrapped(body: &str) -> String {
        body.replace(&format!("\n{INDENT}"), " ")
    }

    fn line_of(body: &str, needle: &str) -> usize {
        body.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in\n{body}"))
    }

    #[test]
    fn problems_come_before_recoveries_each_sorted_by_topic() {
        let b = batch([
            news("zeta00", Some("r-zeta00"), Some(true), &[]),
            news(
                "pend01",
                Some("r-pend01"),
                Some(false),
                &["missing required pend01-st-data"],
            ),
            news("alpha00", Some("r-alpha00"), Some(true), &[]),
            news("pend00", None, None, &["missing jump"]),
        ]);
        let d = render(&b, &Snapshot::default(), at(5), "Lab status:", "");
        assert_eq!(d.subject, "Lab status: 4 new health events");
        let body = &d.body;
        assert!(body.starts_with("Lab status at 2026-11-21 10:00:05 UTC\n"), "{body}");
        let order: Vec<usize> = [
            "New problems (2)",
            "- pend00 bookable: not managed; missing jump",
            "- pend01 (r-pend01) bookable: no; missing required pend01-st-data",
            "Recovered (2)",
            "- alpha00 (r-alpha00) bookable: yes; ok",
            "- zeta00 (r-zeta00) bookable: yes; ok",
        ]
        .iter()
        .map(|l| line_of(body, l))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{body}");
        assert_eq!(render(&b, &Snapshot::default(), at(5), "Lab status:", ""), d, "stable");
    }

    #[test]
    fn a_flapping_experiment_appears_once_with_its_latest_state_and_count() {
        let b = batch([
            news(
                "pend00",
                Some("r-pend00"),
                Some(false),
                &["missing required pend00-st-data"],
            ),
            news("pend00", Some("r-pend00"), Some(true), &[]),
            news("pend00", Some("r-pend00"), Some(false), &["unhealthy pend00-st-data"]),
            news("pend01", Some("r-pend01"), Some(true), &["missing jump"]),
        ]);
        let d = render(&b, &Snapshot::default(), at(5), "Lab status:", "");
        assert_eq!(d.subject, "Lab status: 4 new health events");
        let body = unwrapped(&d.body);
        assert_eq!(body.matches("pend00 (r-pend00)").count(), 1, "{body}");
        assert!(
            body.contains("- pend00 (r-pend00) bookable: no; flapping: 3 changes; unhealthy pend00-st-data\n"),
            "{body}"
        );
        assert!(body.contains("- pend01 (r-pend01) bookable: yes; missing jump\n"));
        assert!(
            !body.contains("missing required pend00-st-data"),
            "only the latest state"
        );
        assert!(!body.contains("Recovered"));
    }

    #[test]
    fn bookable_is_read_from_the_snapshot_when_the_digest_is_written() {
        let failed = |bookable| {
            news(
                "pend00",
                Some("r-pend00"),
                bookable,
                &["missing required pend00-st-data"],
            )
        };
        let b = batch([failed(Some(false))]);
        let with_available = |available| {
            let mut v = view("pend00", Some("r-pend00"), &["missing required pend00-st-data"], false);
            v.available = available;
            snapshot(vec![v], vec![])
        };
        let line = |b: &Batch, s: &Snapshot| {
            let body = unwrapped(&render(b, s, at(5), "S", "").body);
            let start = body.find("- pend00").expect("the event is listed");
            body[start..].lines().next().unwrap_or_default().to_string()
        };
        // The unbooking asked for when the event happened has not gone through (yet): say so.
        assert!(line(&b, &with_available(Some(true))).contains("bookable: yes;"));
        assert!(line(&b, &with_available(Some(false))).contains("bookable: no;"));
        // The snapshot has not read it: the event's value.
        assert!(line(&b, &with_available(None)).contains("bookable: no;"));
        assert!(line(&batch([failed(None)]), &with_available(None)).contains("bookable: unknown;"));
        // Not in the snapshot at all: the event's value.
        assert!(line(&b, &Snapshot::default()).contains("bookable: no;"));
        // It left the manifest since: no longer managed.
        let unmanaged = snapshot(vec![view("pend00", None, &["missing jump"], false)], vec![]);
        assert!(line(&b, &unmanaged).starts_with("- pend00 bookable: not managed;"));
    }

    #[test]
    fn one_event_is_singular() {
        let d = render(
            &batch([news("pend00", Some("r"), None, &["missing jump"])]),
            &Snapshot::default(),
            at(5),
            " Lab status: ",
            "",
        );
        assert_eq!(d.subject, "Lab status: 1 new health event");
        assert!(d.body.contains("bookable: unknown"));
    }

    #[test]
    fn system_alerts_come_first_raised_and_still_active_each_once() {
        let relay = silent(AlertKind::RelaySilent, 1);
        let jump = silent(AlertKind::JumpSilent, 2);
        let earlier_jump = silent(AlertKind::JumpSilent, 0);
        let b = batch([
            Effect::Alert {
                alert: earlier_jump.clone(),
                raised: true,
            },
            Effect::Alert {
                alert: relay.clone(),
                raised: true,
            },
            Effect::Alert {
                alert: earlier_jump,
                raised: false,
            },
            news("pend00", None, None, &["missing jump"]),
        ]);
        // The relay alert was raised in this batch, the jump one is older and still active.
        let d = render(&b, &snapshot(vec![], vec![jump, relay]), at(5), "Lab status:", "");
        let body = &unwrapped(&d.body);
        let alerts = line_of(body, "System alerts");
        assert!(alerts < line_of(body, "New problems (1)"), "{body}");
        assert_eq!(body.matches("relay feed silent").count(), 1, "{body}");
        assert_eq!(body.matches("jump feed silent").count(), 2, "{body}");
        let relay_line = line_of(body, "relay feed silent");
        let cleared = line_of(body, "10:00:00 UTC, cleared)");
        let active = line_of(body, "10:00:02 UTC, still active)");
        assert!(
            relay_line < cleared && cleared < active,
            "sorted by kind, then time:\n{body}"
        );
        assert!(body.contains("10:00:01 UTC, still active)"), "{body}");
    }

    #[test]
    fn alerts_alone_are_not_news_and_no_alerts_means_no_section() {
        let b = batch([Effect::Alert {
            alert: silent(AlertKind::RelaySilent, 1),
            raised: true,
        }]);
        assert!(!b.has_news());
        assert_eq!(b.events(), 0);
        let d = render(
            &batch([news("pend00", None, None, &["missing jump"])]),
            &Snapshot::default(),
            at(5),
            "S",
            "",
        );
        assert!(!d.body.contains("System alerts"));
    }

    #[test]
    fn current_problems_list_every_unhealthy_experiment_past_its_grace() {
        let s = snapshot(
            vec![
                view("spin03", None, &["unhealthy spin03-st-video"], false),
                view("pend00", Some("r-pend00"), &["missing required pend00-st-data"], false),
                view("pend01", Some("r-pend01"), &[], false),
                view("new00", None, &["missing jump"], true),
            ],
            vec![],
        );
        let b = batch([news("pend01", Some("r-pend01"), Some(true), &[])]);
        let d = render(&b, &s, at(5), "S", "https://status.example.org/");
        let body = &d.body;
        let head = line_of(body, "All current problems (2)");
        assert_eq!(
            line_of(body, "pend00 (r-pend00): missing required pend00-st-data"),
            head + 1,
            "{body}"
        );
        assert_eq!(line_of(body, "spin03: unhealthy spin03-st-video"), head + 2, "{body}");
        assert!(!body.contains("new00"), "still in its startup grace");
        assert!(body.ends_with("\nLive status: https://status.example.org/\n"), "{body}");

        let healthy = snapshot(vec![view("pend01", None, &[], false)], vec![]);
        let d = render(&b, &healthy, at(5), "S", "");
        assert!(d.body.contains("All current problems: none\n"));
        assert!(!d.body.contains("Live status"), "no link configured");
    }

    #[test]
    fn long_lines_wrap_between_words_and_links_stay_whole() {
        let issues: Vec<String> = (0..6).map(|i| format!("unhealthy pend00-st-stream{i}")).collect();
        let refs: Vec<&str> = issues.iter().map(String::as_str).collect();
        let link = format!("https://status.example.org/{}", "x".repeat(80));
        let d = render(
            &batch([news("pend00", None, None, &refs)]),
            &Snapshot::default(),
            at(5),
            "S",
            &link,
        );
        for line in d.body.lines().filter(|l| !l.contains(&link)) {
            assert!(line.len() <= WIDTH, "{line:?}");
        }
        assert!(d.body.contains(&format!("\n  {link}\n")), "{}", d.body);
        assert!(
            d.body.contains("\n  pend00-st-stream1,"),
            "continuations are indented:\n{}",
            d.body
        );
        assert!(d.body.is_ascii());
    }
}
