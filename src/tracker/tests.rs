//! Every rule of PROTOCOL.md §4, driven with explicit times: seconds of lab
//! life in microseconds of test time.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::report::{Last, Report, RxTx, Statistics};

const STARTUP: u64 = 60;

fn cfg() -> HealthConfig {
    HealthConfig {
        last_active: Duration::from_secs(10),
        last_checked: Duration::from_secs(30),
        startup: Duration::from_secs(STARTUP),
        events: 5,
        mass_change_guard: true,
    }
}

fn t(secs: u64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap() + Duration::from_secs(secs)
}

/// An experiment's own stream connection whose last transmission was `last` seconds ago.
fn stream(topic: &str, last: Option<f64>) -> Report {
    Report {
        topic: topic.into(),
        scopes: vec!["read".into(), "write".into(), "expt".into()],
        stats: RxTx {
            tx: Statistics {
                last: Last(last.map(Duration::from_secs_f64)),
                size: 5.0,
                fps: 20.0,
            },
            rx: Statistics::default(),
        },
        ..Report::default()
    }
}

fn viewer(topic: &str) -> Report {
    Report {
        topic: topic.into(),
        scopes: vec!["read".into()],
        ..stream(topic, Some(0.1))
    }
}

fn host(topic: &str) -> Report {
    Report {
        topic: topic.into(),
        scopes: vec!["host".into()],
        ..Report::default()
    }
}

fn resource(topic: &str, streams: &[&str]) -> Resource {
    Resource {
        name: format!("r-{topic}"),
        topic: topic.into(),
        required: streams.iter().map(|s| format!("{topic}-st-{s}")).collect(),
    }
}

fn observed(topics: &[&str], available: bool) -> Input {
    Input::Availability(
        topics
            .iter()
            .map(|t| Observed {
                resource: format!("r-{t}"),
                available,
            })
            .collect(),
    )
}

fn healthy_relay(topics: &[&str]) -> Vec<Report> {
    topics
        .iter()
        .flat_map(|t| {
            [
                stream(&format!("{t}-st-data"), Some(0.5)),
                stream(&format!("{t}-st-video"), Some(0.1)),
            ]
        })
        .collect()
}

fn changes(effects: &[Effect]) -> Vec<(String, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetAvailability(c) => Some((c.resource.clone(), c.available)),
            _ => None,
        })
        .collect()
}

fn news(effects: &[Effect]) -> Vec<News> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => Some(n.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn alerts(effects: &[Effect]) -> Vec<(AlertKind, bool)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Alert { alert, raised } => Some((alert.kind, *raised)),
            _ => None,
        })
        .collect()
}

/// A lab at `t(STARTUP + 1)`: topics in the manifest (data+video required), all healthy,
/// booking says available, grace over, first evaluation done.
struct Lab {
    tracker: Tracker,
    topics: Vec<&'static str>,
    now: u64,
}

impl Lab {
    fn new(topics: &[&'static str]) -> Self {
        Self::with(cfg(), topics)
    }

    fn with(cfg: HealthConfig, topics: &[&'static str]) -> Self {
        let mut tracker = Tracker::new(cfg, t(0));
        tracker.handle(
            t(0),
            Input::Manifest(topics.iter().map(|x| resource(x, &["data", "video"])).collect()),
        );
        tracker.handle(t(0), observed(topics, true));
        let mut lab = Self {
            tracker,
            topics: topics.to_vec(),
            now: 0,
        };
        for s in (5..STARTUP).step_by(5).chain([STARTUP + 1]) {
            lab.both_at(s, healthy_relay(topics));
        }
        lab.now = STARTUP + 1;
        lab
    }

    /// Sends a relay snapshot (and a healthy jump snapshot) at `secs`.
    fn both_at(&mut self, secs: u64, relay: Vec<Report>) -> Vec<Effect> {
        let jump = self.topics.iter().map(|x| host(x)).collect();
        let mut e = self.tracker.handle(t(secs), Input::Jump(jump));
        e.extend(self.tracker.handle(t(secs), Input::Relay(relay)));
        e
    }

    fn relay(&mut self, secs: u64, relay: Vec<Report>) -> Vec<Effect> {
        self.now = secs;
        self.tracker.handle(t(secs), Input::Relay(relay))
    }

    fn exp(&self, topic: &str) -> &Experiment {
        self.tracker.experiment(topic).unwrap()
    }
}

// ---- judging streams ----

#[test]
fn a_healthy_lab_after_grace_makes_no_noise() {
    let mut lab = Lab::new(&["pend00", "pend01"]);
    let e = lab.both_at(70, healthy_relay(&["pend00", "pend01"]));
    assert!(e.is_empty(), "{e:?}");
    let exp = lab.exp("pend00");
    assert!(exp.health.healthy && exp.health.jump_ok && exp.health.bookable);
    assert_eq!(exp.events.len(), 1, "the first evaluation is recorded");
}

#[test]
fn the_first_evaluation_is_mailed_only_when_unhealthy() {
    let mut tracker = Tracker::new(cfg(), t(0));
    tracker.handle(
        t(0),
        Input::Manifest(vec![resource("good", &["data"]), resource("bad", &["data"])]),
    );
    tracker.handle(t(0), Input::Jump(vec![host("good"), host("bad")]));
    tracker.handle(
        t(0),
        Input::Relay(vec![stream("good-st-data", Some(1.0)), stream("bad-st-data", None)]),
    );
    tracker.handle(t(50), Input::Jump(vec![host("good"), host("bad")]));
    tracker.handle(
        t(50),
        Input::Relay(vec![stream("good-st-data", Some(1.0)), stream("bad-st-data", None)]),
    );
    let e = tracker.handle(t(STARTUP), Input::Tick);
    let n = news(&e);
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].topic, "bad");
    assert_eq!(*n[0].event.issues, ["unhealthy bad-st-data"]);
    assert_eq!(
        tracker.experiment("good").unwrap().events.len(),
        1,
        "recorded all the same"
    );
}

#[test]
fn a_stalled_stream_is_unhealthy_and_unbooks() {
    let mut lab = Lab::new(&["pend00"]);
    let relay = vec![
        stream("pend00-st-data", Some(10.5)),
        stream("pend00-st-video", Some(0.1)),
    ];
    let e = lab.both_at(70, relay);
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
    let n = news(&e);
    assert_eq!(n.len(), 1);
    assert!(!n[0].event.healthy && n[0].event.jump_ok);
    assert_eq!(*n[0].event.issues, ["unhealthy pend00-st-data"]);
    assert!(!n[0].event.stream_ok["pend00-st-data"]);
    assert!(n[0].event.stream_ok["pend00-st-video"]);
    assert_eq!(n[0].bookable, Some(false));
}

#[test]
fn the_threshold_itself_is_still_active() {
    let mut lab = Lab::new(&["pend00"]);
    let relay = vec![
        stream("pend00-st-data", Some(10.0)),
        stream("pend00-st-video", Some(0.1)),
    ];
    assert!(lab.both_at(70, relay).is_empty());
}

#[test]
fn a_stream_that_never_sent_is_unhealthy() {
    let mut lab = Lab::new(&["pend00"]);
    let relay = vec![stream("pend00-st-data", None), stream("pend00-st-video", Some(0.1))];
    let e = lab.both_at(70, relay);
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
    assert_eq!(*news(&e)[0].event.issues, ["unhealthy pend00-st-data"]);
}

#[test]
fn a_vanished_required_stream_is_missing_and_unbooks() {
    let mut lab = Lab::new(&["pend00"]);
    let e = lab.both_at(70, vec![stream("pend00-st-video", Some(0.1))]);
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
    assert_eq!(*news(&e)[0].event.issues, ["missing required pend00-st-data"]);
    assert!(!lab.exp("pend00").streams.contains_key("pend00-st-data"));
}

#[test]
fn a_whole_experiment_vanishing_from_the_relay_is_noticed() {
    let mut lab = Lab::new(&["pend00", "pend01", "pend02"]);
    let e = lab.both_at(70, healthy_relay(&["pend01", "pend02"]));
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
    assert_eq!(
        *news(&e)[0].event.issues,
        ["missing required pend00-st-data", "missing required pend00-st-video"]
    );
}

#[test]
fn any_healthy_expt_connection_on_a_topic_is_enough_and_viewers_are_ignored() {
    let mut lab = Lab::new(&["pend00"]);
    let relay = vec![
        stream("pend00-st-data", None),
        stream("pend00-st-data", Some(0.2)),
        stream("pend00-st-data", Some(50.0)),
        stream("pend00-st-video", Some(0.1)),
        viewer("pend00-st-video"),
    ];
    assert!(lab.both_at(70, relay).is_empty());
    assert!(lab.exp("pend00").health.healthy);
    // A viewer alone does not make a stream present.
    let e = lab.both_at(75, vec![stream("pend00-st-data", Some(0.2)), viewer("pend00-st-video")]);
    assert_eq!(*news(&e)[0].event.issues, ["missing required pend00-st-video"]);
}

#[test]
fn a_healthy_connection_in_the_last_snapshot_does_not_stand_for_a_stalled_one_now() {
    let mut lab = Lab::new(&["pend00"]);
    assert!(lab.both_at(70, healthy_relay(&["pend00"])).is_empty());
    assert!(lab.exp("pend00").streams["pend00-st-data"].active);
    let relay = vec![
        stream("pend00-st-data", Some(50.0)),
        stream("pend00-st-video", Some(0.1)),
    ];
    let e = lab.both_at(75, relay);
    assert_eq!(*news(&e)[0].event.issues, ["unhealthy pend00-st-data"]);
    assert!(!lab.exp("pend00").streams["pend00-st-data"].active);
}

#[test]
fn topics_without_st_are_ignored() {
    let mut lab = Lab::new(&["pend00"]);
    let mut relay = healthy_relay(&["pend00"]);
    relay.push(stream("pend00-data", Some(0.1)));
    relay.push(stream("-st-x", Some(0.1)));
    assert!(lab.both_at(70, relay).is_empty());
    assert_eq!(lab.tracker.experiments().count(), 1);
}

#[test]
fn an_extra_stream_is_judged_while_present_and_dropped_when_gone() {
    let mut lab = Lab::new(&["pend00"]);
    let mut relay = healthy_relay(&["pend00"]);
    relay.push(stream("pend00-st-extra", Some(30.0)));
    let e = lab.both_at(70, relay);
    assert!(changes(&e).is_empty(), "availability follows required streams only");
    let n = news(&e);
    assert_eq!(*n[0].event.issues, ["unhealthy pend00-st-extra"]);
    assert_eq!(n[0].bookable, Some(true));
    // Gone: dropped, healthy again.
    let e = lab.both_at(75, healthy_relay(&["pend00"]));
    assert!(news(&e)[0].event.healthy);
    assert!(!lab.exp("pend00").health.stream_ok.contains_key("pend00-st-extra"));
}

#[test]
fn a_required_stream_going_from_stale_to_vanished_is_no_new_event() {
    let mut lab = Lab::new(&["pend00"]);
    let stale = vec![
        stream("pend00-st-data", Some(30.0)),
        stream("pend00-st-video", Some(0.1)),
    ];
    let e = lab.both_at(70, stale);
    assert_eq!(*news(&e)[0].event.issues, ["unhealthy pend00-st-data"]);
    let e = lab.both_at(75, vec![stream("pend00-st-video", Some(0.1))]);
    assert!(news(&e).is_empty(), "it was unhealthy and still is: {e:?}");
    let exp = lab.exp("pend00");
    assert_eq!(exp.events.len(), 2);
    assert_eq!(
        *exp.health.issues,
        ["missing required pend00-st-data"],
        "the REST API shows the current wording"
    );
}

#[test]
fn a_second_stream_going_bad_is_a_new_event() {
    let mut lab = Lab::new(&["pend00"]);
    let e = lab.both_at(
        70,
        vec![
            stream("pend00-st-data", Some(30.0)),
            stream("pend00-st-video", Some(0.1)),
        ],
    );
    assert_eq!(news(&e).len(), 1);
    let e = lab.both_at(75, vec![stream("pend00-st-data", Some(30.0))]);
    let n = news(&e);
    assert_eq!(n.len(), 1, "{e:?}");
    assert_eq!(
        *n[0].event.issues,
        ["missing required pend00-st-video", "unhealthy pend00-st-data"]
    );
    assert!(!n[0].event.stream_ok["pend00-st-video"]);
    assert_eq!(lab.exp("pend00").events.len(), 3);
}

#[test]
fn relay_silence_is_an_event_even_when_every_stream_was_already_bad() {
    let mut lab = Lab::new(&["pend00"]);
    let stale = vec![
        stream("pend00-st-data", Some(30.0)),
        stream("pend00-st-video", Some(30.0)),
    ];
    assert_eq!(news(&lab.both_at(70, stale)).len(), 1);
    // The jump keeps speaking; the relay's last snapshot was at 70.
    lab.tracker.handle(t(95), Input::Jump(vec![host("pend00")]));
    let e = lab.tracker.handle(t(100), Input::Tick);
    assert_eq!(alerts(&e), [(AlertKind::RelaySilent, true)]);
    let n = news(&e);
    assert_eq!(n.len(), 1, "{e:?}");
    assert_eq!(*n[0].event.issues, ["relay feed silent"]);
}

// ---- the decision tables ----

#[test]
fn table_row_streams_unchanged_jump_changed_emails_without_booking_change() {
    let mut lab = Lab::new(&["pend00"]);
    let e = lab.relay(70, healthy_relay(&["pend00"]));
    assert!(e.is_empty());
    let e = lab.tracker.handle(t(70), Input::Jump(vec![]));
    assert!(changes(&e).is_empty(), "jump alone never changes availability");
    let n = news(&e);
    assert_eq!(n.len(), 1);
    assert!(!n[0].event.healthy && !n[0].event.jump_ok);
    assert_eq!(*n[0].event.issues, ["missing jump"]);
    assert_eq!(n[0].bookable, Some(true));
}

#[test]
fn table_row_streams_changed_jump_unchanged_emails_and_changes() {
    let mut lab = Lab::new(&["pend00"]);
    let e = lab.both_at(70, vec![stream("pend00-st-video", Some(0.1))]);
    assert_eq!(news(&e).len(), 1);
    assert_eq!(changes(&e).len(), 1);
}

#[test]
fn table_row_both_changed_emails_and_changes() {
    let mut lab = Lab::new(&["pend00"]);
    lab.tracker.handle(t(70), Input::Jump(vec![]));
    let e = lab.relay(70, vec![stream("pend00-st-video", Some(0.1))]);
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
    let n = news(&e);
    assert_eq!(*n[0].event.issues, ["missing jump", "missing required pend00-st-data"]);
}

#[test]
fn table_row_nothing_changed_does_nothing() {
    let mut lab = Lab::new(&["pend00"]);
    for s in [70, 75, 80] {
        assert!(lab.both_at(s, healthy_relay(&["pend00"])).is_empty());
    }
    assert_eq!(lab.exp("pend00").events.len(), 1);
}

#[test]
fn bookable_follows_required_streams_whatever_the_jump() {
    // Row: streams healthy, jump missing → bookable.
    let mut lab = Lab::new(&["pend00"]);
    lab.tracker.handle(t(70), Input::Jump(vec![]));
    let e = lab.tracker.handle(t(70), observed(&["pend00"], false));
    assert_eq!(
        changes(&e),
        [("r-pend00".to_string(), true)],
        "made bookable despite missing jump"
    );
}

#[test]
fn recovery_makes_bookable_again() {
    let mut lab = Lab::new(&["pend00"]);
    lab.both_at(70, vec![stream("pend00-st-video", Some(0.1))]);
    lab.tracker.handle(
        t(71),
        Input::AvailabilityOutcome {
            resource: "r-pend00".into(),
            result: Ok(false),
        },
    );
    let e = lab.both_at(75, healthy_relay(&["pend00"]));
    assert_eq!(changes(&e), [("r-pend00".to_string(), true)]);
    let n = news(&e);
    assert!(n[0].event.healthy && n[0].event.issues.is_empty());
    assert_eq!(n[0].bookable, Some(true));
    let last = lab.exp("pend00");
    assert_eq!(last.events.len(), 3);
}

#[test]
fn the_reason_names_status_the_issue_and_the_time() {
    let mut lab = Lab::new(&["pend00"]);
    let e = lab.both_at(70, vec![stream("pend00-st-video", Some(0.1))]);
    let Some(Effect::SetAvailability(c)) = e.iter().find(|e| matches!(e, Effect::SetAvailability(_))) else {
        panic!("a change was requested")
    };
    assert_eq!(
        c.reason,
        "status: missing required pend00-st-data at 2026-11-21T10:01:10Z"
    );
    assert_eq!(c.topic, "pend00");
}

#[test]
fn a_long_reason_names_three_issues_and_counts_the_rest() {
    let streams: Vec<String> = (0..40).map(|k| format!("s{k:02}")).collect();
    let names: Vec<&str> = streams.iter().map(String::as_str).collect();
    let mut tracker = Tracker::new(cfg(), t(0));
    tracker.handle(t(0), Input::Manifest(vec![resource("pend00", &names)]));
    tracker.handle(t(0), observed(&["pend00"], true));
    tracker.handle(t(STARTUP), Input::Jump(vec![host("pend00")]));
    let e = tracker.handle(t(STARTUP), Input::Relay(vec![]));
    let Some(Effect::SetAvailability(c)) = e.iter().find(|e| matches!(e, Effect::SetAvailability(_))) else {
        panic!("a change was requested: {e:?}")
    };
    assert_eq!(
        c.reason,
        "status: missing required pend00-st-s00, missing required pend00-st-s01, \
         missing required pend00-st-s02 and 37 more at 2026-11-21T10:01:00Z"
    );
    assert_eq!(news(&e)[0].event.issues.len(), 40, "the health event keeps every issue");
}

#[test]
fn a_reason_stays_short_whatever_the_names() {
    let at = "2026-11-21T10:01:00Z";
    let long = "x".repeat(500);
    let medium = "y".repeat(150);
    let issue = |name: &str| format!("missing required pend00-st-{name}");
    let budget = REASON_MAX_BYTES - "status:  at ".len() - at.len();
    for (issues, starts, ends) in [
        (
            vec![issue(&long), issue("a")],
            "missing required pend00-st-xxx",
            "xxx… and 1 more",
        ),
        (
            vec![issue(&medium), issue(&medium), issue(&medium), issue("a")],
            "missing required pend00-st-yyy",
            "yyy and 2 more",
        ),
        (
            vec![issue("é".repeat(300).as_str())],
            "missing required pend00-st-é",
            "é…",
        ),
    ] {
        let refs: Vec<&str> = issues.iter().map(String::as_str).collect();
        let list = issue_list(&refs, budget);
        assert!(list.len() <= budget, "{} bytes: {list}", list.len());
        assert!(list.starts_with(starts) && list.ends_with(ends), "{list}");
    }
    assert_eq!(issue_list(&["a", "b"], budget), "a, b");
}

// ---- availability bookkeeping ----

#[test]
fn no_change_is_requested_twice_while_one_is_in_flight() {
    let mut lab = Lab::new(&["pend00"]);
    let broken = || vec![stream("pend00-st-video", Some(0.1))];
    assert_eq!(changes(&lab.both_at(70, broken())).len(), 1);
    assert!(changes(&lab.both_at(75, broken())).is_empty());
    // A stale read racing the change does not trigger a second one.
    assert!(changes(&lab.tracker.handle(t(76), observed(&["pend00"], true))).is_empty());
    lab.tracker.handle(
        t(77),
        Input::AvailabilityOutcome {
            resource: "r-pend00".into(),
            result: Ok(false),
        },
    );
    assert!(changes(&lab.both_at(80, broken())).is_empty());
    assert_eq!(lab.exp("pend00").availability.observed, Some(false));
}

#[test]
fn a_manual_change_is_corrected_on_the_next_read() {
    let mut lab = Lab::new(&["pend00"]);
    let e = lab.tracker.handle(t(70), observed(&["pend00"], false));
    assert_eq!(changes(&e), [("r-pend00".to_string(), true)]);
    assert!(news(&e).is_empty(), "drift is not a health event");
}

#[test]
fn nothing_is_changed_before_the_booking_system_was_read() {
    let mut tracker = Tracker::new(cfg(), t(0));
    tracker.handle(t(0), Input::Manifest(vec![resource("pend00", &["data"])]));
    tracker.handle(t(0), Input::Jump(vec![host("pend00")]));
    let e = tracker.handle(t(STARTUP + 1), Input::Relay(vec![]));
    assert!(changes(&e).is_empty(), "availability unknown: read, do not assume");
    assert_eq!(news(&e).len(), 1);
    let e = tracker.handle(t(STARTUP + 2), observed(&["pend00"], true));
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
}

#[test]
fn a_failed_change_waits_before_it_is_retried() {
    let mut lab = Lab::new(&["pend00"]);
    let broken = || vec![stream("pend00-st-video", Some(0.1))];
    lab.both_at(70, broken());
    let e = lab.tracker.handle(
        t(71),
        Input::AvailabilityOutcome {
            resource: "r-pend00".into(),
            result: Err(ChangeError::Transient("500".into())),
        },
    );
    assert!(changes(&e).is_empty());
    assert!(changes(&lab.both_at(75, broken())).is_empty(), "too soon");
    let retry = 71 + AVAILABILITY_RETRY_AFTER.as_secs();
    for s in (80..retry).step_by(5) {
        assert!(changes(&lab.both_at(s, broken())).is_empty(), "at {s}s");
    }
    let e = lab.both_at(retry, broken());
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
}

fn outcome(resource: &str, result: Result<bool, ChangeError>) -> Input {
    Input::AvailabilityOutcome {
        resource: resource.into(),
        result,
    }
}

#[test]
fn a_read_back_other_than_asked_waits_before_asking_again() {
    let mut lab = Lab::new(&["pend00"]);
    let broken = || vec![stream("pend00-st-video", Some(0.1))];
    assert_eq!(changes(&lab.both_at(70, broken())), [("r-pend00".to_string(), false)]);
    // The booking system accepted the PUT but still holds available.
    let e = lab.tracker.handle(t(71), outcome("r-pend00", Ok(true)));
    assert!(changes(&e).is_empty());
    assert_eq!(
        lab.exp("pend00").availability.observed,
        Some(true),
        "what was read back"
    );
    let retry = 71 + AVAILABILITY_RETRY_AFTER.as_secs();
    for s in (75..retry).step_by(5) {
        assert!(changes(&lab.both_at(s, broken())).is_empty(), "at {s}s");
    }
    assert!(
        changes(&lab.tracker.handle(t(retry - 1), observed(&["pend00"], true))).is_empty(),
        "a read does not cut the wait short"
    );
    let e = lab.tracker.handle(t(retry), Input::Tick);
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
}

#[test]
fn a_refused_change_is_asked_again_only_after_the_next_read() {
    let mut lab = Lab::new(&["pend00"]);
    let broken = || vec![stream("pend00-st-video", Some(0.1))];
    assert_eq!(changes(&lab.both_at(70, broken())).len(), 1);
    let refused = Err(ChangeError::Refused("403".into()));
    let e = lab.tracker.handle(t(71), outcome("r-pend00", refused));
    assert!(changes(&e).is_empty());
    let a = &lab.exp("pend00").availability;
    assert_eq!((a.in_flight, a.observed), (None, Some(true)));
    // Far beyond the transient retry wait: still not asked again.
    let late = 71 + 10 * AVAILABILITY_RETRY_AFTER.as_secs();
    for s in (75..late).step_by(20).chain([late]) {
        assert!(changes(&lab.both_at(s, broken())).is_empty(), "at {s}s");
        assert!(changes(&lab.tracker.handle(t(s), Input::Tick)).is_empty(), "at {s}s");
    }
    // The next round reads it: asked again, once.
    let e = lab.tracker.handle(t(late + 1), observed(&["pend00"], true));
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
}

#[test]
fn a_dry_run_keeps_what_was_read_and_decides_again_only_after_the_next_read() {
    let mut lab = Lab::new(&["pend00"]);
    let broken = || vec![stream("pend00-st-video", Some(0.1))];
    assert_eq!(changes(&lab.both_at(70, broken())).len(), 1);
    lab.tracker.handle(t(70), outcome("r-pend00", Err(ChangeError::DryRun)));
    let a = &lab.exp("pend00").availability;
    assert_eq!(
        (a.in_flight, a.observed),
        (None, Some(true)),
        "nothing was sent: the booking system still holds what was read"
    );
    let snap = lab.tracker.snapshot(t(70));
    assert_eq!(snap.experiment("pend00").unwrap().available, Some(true));
    for s in (71..200).step_by(3) {
        assert!(changes(&lab.both_at(s, broken())).is_empty(), "at {s}s");
        assert!(changes(&lab.tracker.handle(t(s), Input::Tick)).is_empty(), "at {s}s");
    }
    // A jump event later tells the email what the booking system really holds.
    lab.tracker.handle(t(200), Input::Relay(broken()));
    let e = lab.tracker.handle(t(200), Input::Jump(vec![]));
    assert_eq!(news(&e)[0].bookable, Some(true));
    let e = lab.tracker.handle(t(201), observed(&["pend00"], true));
    assert_eq!(
        changes(&e),
        [("r-pend00".to_string(), false)],
        "the next round decides again"
    );
}

#[test]
fn a_change_in_flight_when_its_resource_leaves_the_manifest_is_forgotten() {
    let mut lab = Lab::new(&["pend00", "pend01"]);
    assert_eq!(
        changes(&lab.both_at(70, healthy_relay(&["pend01"]))),
        [("r-pend00".to_string(), false)]
    );
    lab.tracker
        .handle(t(71), Input::Manifest(vec![resource("pend01", &["data", "video"])]));
    let e = lab.tracker.handle(t(72), outcome("r-pend00", Ok(false)));
    assert!(e.is_empty(), "{e:?}");
    let gone = lab.exp("pend00");
    assert!(gone.resource.is_none());
    assert_eq!(
        (gone.availability.observed, gone.availability.in_flight),
        (None, None),
        "an unmanaged experiment holds no availability"
    );
    let snap = lab.tracker.snapshot(t(72));
    assert_eq!(snap.experiment("pend00").unwrap().available, None);
    // Back in the manifest: read before anything is decided for it again.
    lab.tracker.handle(
        t(80),
        Input::Manifest(vec![
            resource("pend00", &["data", "video"]),
            resource("pend01", &["data", "video"]),
        ]),
    );
    assert!(changes(&lab.both_at(81, healthy_relay(&["pend01"]))).is_empty());
    let e = lab.tracker.handle(t(82), observed(&["pend00"], true));
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
}

#[test]
fn a_change_in_flight_when_its_resource_is_renamed_is_forgotten() {
    let mut lab = Lab::new(&["pend00"]);
    let broken = || vec![stream("pend00-st-video", Some(0.1))];
    assert_eq!(changes(&lab.both_at(70, broken())), [("r-pend00".to_string(), false)]);
    let renamed = Resource {
        name: "r-pendulum".into(),
        ..resource("pend00", &["data", "video"])
    };
    let e = lab.tracker.handle(t(71), Input::Manifest(vec![renamed]));
    assert!(
        changes(&e).is_empty(),
        "the new name is read before anything is decided"
    );
    assert_eq!(lab.exp("pend00").resource.as_deref(), Some("r-pendulum"));
    // The old name's outcome arrives: it says nothing about the new resource.
    let e = lab.tracker.handle(t(72), outcome("r-pend00", Ok(false)));
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(lab.exp("pend00").availability.observed, None);
    let e = lab.tracker.handle(t(73), observed(&["pend00"], true));
    assert!(changes(&e).is_empty(), "reads of the old name are ignored");
    let e = lab.tracker.handle(
        t(74),
        Input::Availability(vec![Observed {
            resource: "r-pendulum".into(),
            available: true,
        }]),
    );
    assert_eq!(changes(&e), [("r-pendulum".to_string(), false)]);
}

#[test]
fn a_topic_stub_claimed_twice_is_managed_by_the_first_resource_only() {
    let mut tracker = Tracker::new(cfg(), t(0));
    let second = Resource {
        name: "r-second".into(),
        ..resource("pend00", &["video"])
    };
    tracker.handle(t(0), Input::Manifest(vec![resource("pend00", &["data"]), second]));
    let exp = tracker.experiment("pend00").unwrap();
    assert_eq!(exp.resource.as_deref(), Some("r-pend00"));
    assert_eq!(
        exp.required.iter().map(|t| &**t).collect::<Vec<_>>(),
        ["pend00-st-data"]
    );
    assert_eq!(tracker.experiments().count(), 1);
    let read = |name: &str, available| {
        Input::Availability(vec![Observed {
            resource: name.into(),
            available,
        }])
    };
    tracker.handle(t(1), read("r-second", false));
    assert_eq!(tracker.experiment("pend00").unwrap().availability.observed, None);
    tracker.handle(t(1), read("r-pend00", true));
    assert_eq!(tracker.experiment("pend00").unwrap().availability.observed, Some(true));
    tracker.handle(t(2), read("r-second", false));
    assert_eq!(
        tracker.experiment("pend00").unwrap().availability.observed,
        Some(true),
        "the skipped resource never speaks for the experiment"
    );
    // The same manifest again changes nothing: still the first, still read.
    tracker.handle(
        t(3),
        Input::Manifest(vec![
            resource("pend00", &["data"]),
            Resource {
                name: "r-second".into(),
                ..resource("pend00", &["video"])
            },
        ]),
    );
    let exp = tracker.experiment("pend00").unwrap();
    assert_eq!(exp.resource.as_deref(), Some("r-pend00"));
    assert_eq!(exp.availability.observed, Some(true));
    // Relay and jump say it broke after the grace: one change, for the first resource.
    tracker.handle(t(STARTUP), Input::Jump(vec![host("pend00")]));
    let e = tracker.handle(t(STARTUP), Input::Relay(vec![stream("pend00-st-video", Some(0.1))]));
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
}

#[test]
fn experiments_outside_the_manifest_are_never_changed() {
    let mut lab = Lab::new(&["pend00"]);
    let mut relay = healthy_relay(&["pend00"]);
    relay.push(stream("stray-st-data", None));
    for s in (70..=STARTUP + 80).step_by(10) {
        assert!(changes(&lab.both_at(s, relay.clone())).is_empty());
    }
    let stray = lab.exp("stray");
    assert!(stray.resource.is_none());
    assert!(!stray.health.healthy);
}

#[test]
fn leaving_the_manifest_stops_management_but_stays_visible() {
    let mut lab = Lab::new(&["pend00", "pend01"]);
    lab.tracker
        .handle(t(70), Input::Manifest(vec![resource("pend01", &["data", "video"])]));
    let e = lab.both_at(75, healthy_relay(&["pend01"]));
    assert!(changes(&e).is_empty());
    let gone = lab.exp("pend00");
    assert!(gone.resource.is_none() && gone.required.is_empty());
    assert!(lab.tracker.snapshot(t(75)).experiment("pend00").is_some());
}

// ---- startup grace, ring ----

#[test]
fn nothing_is_recorded_or_changed_during_startup_grace() {
    let mut tracker = Tracker::new(cfg(), t(0));
    tracker.handle(t(0), Input::Manifest(vec![resource("pend00", &["data"])]));
    tracker.handle(t(0), observed(&["pend00"], true));
    for s in (0..STARTUP).step_by(5) {
        let mut e = tracker.handle(t(s), Input::Jump(vec![]));
        e.extend(tracker.handle(t(s), Input::Relay(vec![])));
        assert!(e.is_empty(), "at {s}s: {e:?}");
    }
    let exp = tracker.experiment("pend00").unwrap();
    assert!(exp.events.is_empty());
    assert!(!exp.health.healthy, "judged all the same, for the REST API");
    let e = tracker.handle(t(STARTUP), Input::Tick);
    assert_eq!(changes(&e), [("r-pend00".to_string(), false)]);
    assert_eq!(news(&e).len(), 1);
}

#[test]
fn grace_starts_when_an_experiment_is_first_seen_anywhere() {
    let mut lab = Lab::new(&["pend00"]);
    let mut relay = healthy_relay(&["pend00"]);
    relay.push(stream("late-st-data", None));
    for s in (65..65 + STARTUP).step_by(10) {
        assert!(
            news(&lab.both_at(s, relay.clone())).is_empty(),
            "late is in its own grace"
        );
    }
    let e = lab.both_at(65 + STARTUP, relay);
    assert_eq!(news(&e).len(), 1);
    assert_eq!(news(&e)[0].topic, "late");
}

#[test]
fn grace_starts_at_a_jump_first_sighting_not_at_the_manifest() {
    let mut tracker = Tracker::new(cfg(), t(0));
    // Seen by the jump at 100, listed in the manifest and read at 130.
    tracker.handle(t(100), Input::Jump(vec![host("late")]));
    tracker.handle(t(100), Input::Relay(vec![]));
    tracker.handle(t(125), Input::Jump(vec![host("late")]));
    tracker.handle(t(125), Input::Relay(vec![]));
    tracker.handle(t(130), Input::Manifest(vec![resource("late", &["data"])]));
    tracker.handle(t(130), observed(&["late"], true));
    let grace_end = 100 + STARTUP;
    for s in (131..grace_end).step_by(5) {
        let mut e = tracker.handle(t(s), Input::Jump(vec![host("late")]));
        e.extend(tracker.handle(t(s), Input::Relay(vec![])));
        assert!(e.is_empty(), "in grace at {s}s: {e:?}");
    }
    let e = tracker.handle(t(grace_end), Input::Tick);
    assert_eq!(changes(&e), [("r-late".to_string(), false)]);
    assert_eq!(news(&e).len(), 1);
    assert_eq!(tracker.experiment("late").unwrap().first_seen, t(100));
}

#[test]
fn the_event_ring_is_bounded() {
    let mut lab = Lab::new(&["pend00"]);
    for k in 0..10u64 {
        let relay = if k % 2 == 0 { vec![] } else { healthy_relay(&["pend00"]) };
        lab.both_at(70 + k, relay);
    }
    let exp = lab.exp("pend00");
    assert_eq!(exp.events.len(), 5);
    assert_eq!(exp.events.back().unwrap().when, t(79));
    assert!(exp.events.back().unwrap().healthy);
}

#[test]
fn a_flapping_experiment_keeps_each_state_once_not_once_per_event() {
    let mut lab = Lab::new(&["pend00"]);
    for k in 0..4u64 {
        let data = if k % 2 == 0 { 50.0 } else { 0.1 };
        lab.both_at(
            70 + 5 * k,
            vec![
                stream("pend00-st-data", Some(data)),
                stream("pend00-st-video", Some(0.1)),
            ],
        );
    }
    let events: Vec<&HealthEvent> = lab.exp("pend00").events.iter().collect();
    assert_eq!(events.len(), 5);
    assert!(!events[1].healthy && !events[3].healthy);
    assert!(Arc::ptr_eq(&events[1].stream_ok, &events[3].stream_ok));
    assert!(Arc::ptr_eq(&events[1].issues, &events[3].issues));
    assert!(Arc::ptr_eq(&events[0].stream_ok, &events[4].stream_ok));
    let health = &lab.exp("pend00").health;
    assert!(
        Arc::ptr_eq(&health.stream_ok, &events[0].stream_ok),
        "the judgement shares them too"
    );
}

// ---- distrust the observer ----

#[test]
fn relay_silence_raises_one_alert_and_unbooks_nothing() {
    let mut lab = Lab::new(&["pend00", "pend01"]);
    lab.tracker
        .handle(t(90), Input::Jump(lab.topics.iter().map(|x| host(x)).collect()));
    // Last relay snapshot at 61: silent from 91 on.
    assert!(lab.tracker.handle(t(90), Input::Tick).is_empty());
    let e = lab.tracker.handle(t(91), Input::Tick);
    assert_eq!(alerts(&e), [(AlertKind::RelaySilent, true)]);
    assert!(changes(&e).is_empty(), "silence never unbooks");
    let n = news(&e);
    assert_eq!(n.len(), 2);
    assert_eq!(*n[0].event.issues, ["relay feed silent"]);
    assert_eq!(n[0].event.stream_ok.values().filter(|ok| **ok).count(), 0);
    assert_eq!(n[0].bookable, Some(true));
    assert!(
        lab.tracker.handle(t(95), Input::Tick).is_empty(),
        "one alert, not one per tick"
    );
    assert_eq!(lab.tracker.alerts().count(), 1);
    // The relay returns: alert cleared, rigs healthy again, still no change.
    let e = lab.relay(96, healthy_relay(&["pend00", "pend01"]));
    assert_eq!(alerts(&e), [(AlertKind::RelaySilent, false)]);
    assert!(changes(&e).is_empty());
    assert!(news(&e).iter().all(|n| n.event.healthy));
}

#[test]
fn nothing_is_unbooked_before_the_relay_has_spoken() {
    let cfg = HealthConfig {
        startup: Duration::ZERO,
        ..cfg()
    };
    let mut tracker = Tracker::new(cfg, t(0));
    tracker.handle(t(0), Input::Manifest(vec![resource("pend00", &["data"])]));
    let e = tracker.handle(t(1), observed(&["pend00"], true));
    assert!(
        changes(&e).is_empty(),
        "no relay snapshot yet: no evidence against the rig"
    );
    assert_eq!(
        news(&e).len(),
        0,
        "judged, but the first evaluation was at the manifest"
    );
    let e = tracker.handle(t(2), Input::Relay(vec![]));
    assert_eq!(
        changes(&e),
        [("r-pend00".to_string(), false)],
        "the relay spoke: now it counts"
    );
}

#[test]
fn a_feed_that_never_spoke_is_silent_after_last_checked() {
    let mut tracker = Tracker::new(cfg(), t(0));
    assert!(tracker.take_changed(), "the first snapshot is published");
    assert!(tracker.handle(t(29), Input::Tick).is_empty());
    assert!(!tracker.take_changed());
    let e = tracker.handle(t(30), Input::Tick);
    assert!(
        tracker.take_changed(),
        "an alert is news for readers even with no experiment to show"
    );
    assert_eq!(
        alerts(&e),
        [(AlertKind::RelaySilent, true), (AlertKind::JumpSilent, true)]
    );
    let messages: Vec<_> = tracker.alerts().map(|a| a.message.clone()).collect();
    assert!(messages[0].starts_with("relay feed silent: no statistics since never"));
    assert!(messages[1].starts_with("jump feed silent"));
}

#[test]
fn jump_silence_is_an_alert_and_an_issue_but_no_change() {
    let mut lab = Lab::new(&["pend00"]);
    lab.relay(70, healthy_relay(&["pend00"]));
    lab.relay(85, healthy_relay(&["pend00"]));
    let e = lab.relay(91, healthy_relay(&["pend00"]));
    assert_eq!(alerts(&e), [(AlertKind::JumpSilent, true)]);
    assert!(changes(&e).is_empty());
    assert_eq!(*news(&e)[0].event.issues, ["jump feed silent"]);
}

#[test]
fn a_mass_unbooking_is_held_with_an_alert() {
    let all = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut lab = Lab::new(&all);
    let e = lab.both_at(70, healthy_relay(&["f", "g", "h"]));
    assert!(changes(&e).is_empty(), "five of eight at once is held");
    assert_eq!(alerts(&e), [(AlertKind::MassChangeHeld, true)]);
    assert!(lab.tracker.alerts().next().unwrap().message.contains("5 of 8"));
    assert_eq!(news(&e).len(), 5, "still health events");
    assert!(news(&e).iter().all(|n| n.bookable == Some(true)));
    // Still asking for five: still held, no duplicate alert.
    let e = lab.both_at(75, healthy_relay(&["f", "g", "h"]));
    assert!(e.is_empty(), "{e:?}");
    // Two recover: three of eight is no longer a mass change; the rest go through.
    let e = lab.both_at(80, healthy_relay(&["a", "b", "f", "g", "h"]));
    assert_eq!(alerts(&e), [(AlertKind::MassChangeHeld, false)]);
    let mut c = changes(&e);
    c.sort();
    assert_eq!(
        c,
        [
            ("r-c".to_string(), false),
            ("r-d".to_string(), false),
            ("r-e".to_string(), false)
        ]
    );
}

#[test]
fn with_the_guard_off_a_mass_unbooking_goes_through() {
    let all = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut lab = Lab::with(
        HealthConfig {
            mass_change_guard: false,
            ..cfg()
        },
        &all,
    );
    let e = lab.both_at(70, healthy_relay(&["f", "g", "h"]));
    assert_eq!(changes(&e).len(), 5);
    assert!(alerts(&e).is_empty());
}

#[test]
fn half_or_fewer_than_three_is_not_a_mass_change() {
    let mut lab = Lab::new(&["a", "b", "c", "d"]);
    let e = lab.both_at(70, healthy_relay(&["c", "d"]));
    assert_eq!(changes(&e).len(), 2, "two of four is half, not more");
    let mut lab = Lab::new(&["a", "b"]);
    let e = lab.both_at(70, vec![]);
    assert_eq!(changes(&e).len(), 2, "fewer than three is never held");
}

#[test]
fn recoveries_are_never_held() {
    let all = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut lab = Lab::new(&all);
    let e = lab.tracker.handle(t(62), observed(&all, false));
    assert_eq!(changes(&e).len(), 8);
    assert!(changes(&e).iter().all(|(_, up)| *up));
}

#[test]
fn recoveries_go_through_in_the_evaluation_that_holds_a_mass_unbooking() {
    let all = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut lab = Lab::new(&all);
    let e = lab.both_at(70, healthy_relay(&["f", "g", "h"]));
    assert_eq!(alerts(&e), [(AlertKind::MassChangeHeld, true)]);
    // One round reads all eight: a–e still available (their unbooking is a mass
    // change), f–h unavailable by hand though healthy (recoveries).
    let mut round = Vec::new();
    for (topic, available) in all.iter().map(|x| (x, !["f", "g", "h"].contains(x))) {
        round.push(Observed {
            resource: format!("r-{topic}"),
            available,
        });
    }
    let e = lab.tracker.handle(t(71), Input::Availability(round));
    let mut c = changes(&e);
    c.sort();
    assert_eq!(
        c,
        [
            ("r-f".to_string(), true),
            ("r-g".to_string(), true),
            ("r-h".to_string(), true)
        ],
        "the rebookings go through, the five unbookings stay held"
    );
    assert!(alerts(&e).is_empty(), "still held, not raised again: {e:?}");
    assert!(lab.tracker.alerts().any(|a| a.kind == AlertKind::MassChangeHeld));
}

#[test]
fn the_mass_guard_counts_managed_experiments_only() {
    let managed = ["a", "b", "c", "d", "e"];
    let stray = ["s0", "s1", "s2", "s3", "s4", "s5"];
    // Six unmanaged experiments alongside, first seen at 62; judged too once
    // their own grace is over.
    let at = 62 + STARTUP;
    let with_strays = |lab: &mut Lab| {
        let mut relay = healthy_relay(&managed);
        relay.extend(healthy_relay(&stray));
        for s in (62..at).step_by(10) {
            lab.both_at(s, relay.clone());
        }
    };
    let mut lab = Lab::new(&managed);
    with_strays(&mut lab);
    let mut relay = healthy_relay(&["d", "e"]);
    relay.extend(healthy_relay(&stray));
    let e = lab.both_at(at, relay);
    assert!(
        changes(&e).is_empty(),
        "three of five managed is a mass change, whatever the eleven experiments: {e:?}"
    );
    assert_eq!(alerts(&e), [(AlertKind::MassChangeHeld, true)]);
    assert!(lab.tracker.alerts().next().unwrap().message.contains("3 of 5"));

    // Broken unmanaged experiments are no unbookings: two of five managed is not a mass change.
    let mut lab = Lab::new(&managed);
    with_strays(&mut lab);
    let e = lab.both_at(at, healthy_relay(&["c", "d", "e"]));
    assert_eq!(news(&e).len(), 8, "two managed and six strays broke");
    let mut c = changes(&e);
    c.sort();
    assert_eq!(c, [("r-a".to_string(), false), ("r-b".to_string(), false)]);
    assert!(alerts(&e).is_empty());
}

// ---- published snapshot ----

#[test]
fn the_snapshot_lists_problems_first_with_protocol_fields() {
    let mut lab = Lab::new(&["pend00", "pend01"]);
    let mut relay = vec![stream("pend01-st-video", Some(0.1)), viewer("pend01-st-data")];
    relay.extend(healthy_relay(&["pend00"]));
    lab.both_at(70, relay);
    let snap = lab.tracker.snapshot(t(70));
    assert_eq!(snap.experiments[0].topic_name, "pend01");
    let json = serde_json::to_value(&snap.experiments).unwrap();
    let broken = &json[0];
    assert_eq!(broken["resource_name"], "r-pend01");
    assert_eq!(broken["available"], true);
    assert_eq!(broken["healthy"], false);
    assert_eq!(broken["stream_ok"]["pend01-st-data"], false);
    assert_eq!(broken["stream_required"]["pend01-st-data"], true);
    assert_eq!(
        broken["stream_reports"]["pend01-st-video"]["stats"]["tx"]["last"],
        "100ms"
    );
    assert!(broken["stream_reports"].get("pend01-st-data").is_none());
    assert_eq!(broken["jump_report"]["topic"], "pend01");
    assert_eq!(broken["health_events"], 2);
    assert_eq!(broken["first_checked"], "2026-11-21T10:00:00Z");
    assert_eq!(broken["last_found_in_manifest"], "2026-11-21T10:00:00Z");
    assert_eq!(broken["last_checked_streams"], "2026-11-21T10:01:10Z");
    assert_eq!(snap.experiment("pend00").unwrap().events.len(), 1);
    for e in &snap.experiments {
        let found = snap.experiment(&e.topic_name).map(|v| v.topic_name.as_str());
        assert_eq!(
            found,
            Some(e.topic_name.as_str()),
            "healthy or not, every experiment is found"
        );
    }
    assert!(snap.experiment("pend99").is_none());
}
