//! Email digests end to end: the real service, fed relay/jump/manifest
//! snapshots through its input seam, mailing a real SMTP listener on loopback.
//!
//! The booking system is a dead port here: every availability change fails,
//! so a digest says what the booking system was last read to hold (the
//! baseline's reads, or what `Lab::booked` reports as if a change went through).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use status::report::{Last, Report, RxTx, Statistics};
use status::sim::smtp::{Fault, Received, SmtpSink};
use status::tracker::{Input, Observed, Resource};
use support::logs::Logs;
use support::{env_with, eventually, Running};

const PASSWORD: &str = "pa55-never-in-logs";

/// The service under test and the SMTP listener it mails.
struct Lab {
    sink: SmtpSink,
    run: Running,
}

/// Settings for a service mailing `sink` (email off without one).
fn settings(sink: Option<SocketAddr>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![("STATUS_HEALTH_STARTUP".into(), "0s".into())];
    if let Some(addr) = sink {
        for (k, v) in [
            ("STATUS_EMAIL_HOST", addr.ip().to_string()),
            ("STATUS_EMAIL_PORT", addr.port().to_string()),
            ("STATUS_EMAIL_FROM", "Lab Status <status@example.org>".into()),
            ("STATUS_EMAIL_TO", "maintainers@example.org".into()),
            ("STATUS_EMAIL_SUBJECT", "Lab status:".into()),
            ("STATUS_EMAIL_LINK", "https://status.example.org/".into()),
            ("STATUS_EMAIL_GROUP_WAIT", "300ms".into()),
            ("STATUS_EMAIL_MIN_INTERVAL", "1s".into()),
            ("STATUS_EMAIL_TIMEOUT", "2s".into()),
        ] {
            vars.push((k.into(), v));
        }
    }
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env_with(&borrowed)
}

impl Lab {
    async fn start(sink: SmtpSink, extra: &[(&str, &str)]) -> Lab {
        let env = settings(Some(sink.addr()), extra);
        Self::run(sink, env).await
    }

    async fn run(sink: SmtpSink, env: Vec<(String, String)>) -> Lab {
        let run = Running::start(env).await;
        Lab { sink, run }
    }

    async fn send(&self, input: Input) {
        self.run.send(input).await;
    }

    /// Healthy experiments, fed in an order whose first evaluation is already
    /// healthy (jump, then streams, then the manifest), so nothing is news.
    async fn baseline(&self, topics: &[&str]) {
        self.send(Input::Jump(topics.iter().map(|t| host(t)).collect())).await;
        self.send(Input::Relay(topics.iter().map(|t| stream(t)).collect()))
            .await;
        self.send(Input::Manifest(topics.iter().map(|t| resource(t)).collect()))
            .await;
        self.send(Input::Availability(
            topics
                .iter()
                .map(|t| Observed {
                    resource: format!("r-{t}"),
                    available: true,
                })
                .collect(),
        ))
        .await;
        let snapshot = self.run.snapshot.clone();
        eventually!("a healthy, bookable baseline", {
            let s = snapshot.load();
            topics.iter().all(|t| {
                s.experiment(t)
                    .is_some_and(|e| e.healthy && e.available == Some(true) && e.health_events == 1)
            })
        });
    }

    /// The relay now carries streams of these experiments only.
    async fn streams_of(&self, topics: &[&str]) {
        self.send(Input::Relay(topics.iter().map(|t| stream(t)).collect()))
            .await;
    }

    /// What the booking worker would report after carrying out a change.
    async fn booked(&self, topics: &[&str], available: bool) {
        for t in topics {
            self.send(Input::AvailabilityOutcome {
                resource: format!("r-{t}"),
                result: Ok(available),
            })
            .await;
        }
    }

    async fn mails(&self, n: usize) -> Vec<Received> {
        eventually!(format!("{n} email(s)"), self.sink.messages().len() >= n);
        self.sink.messages()
    }

    async fn stop(self) -> SmtpSink {
        self.run.stop().await;
        self.sink
    }
}

fn stream(topic: &str) -> Report {
    Report {
        topic: format!("{topic}-st-data"),
        scopes: vec!["read".into(), "write".into(), "expt".into()],
        stats: RxTx {
            tx: Statistics {
                last: Last(Some(Duration::from_millis(200))),
                size: 5.0,
                fps: 20.0,
            },
            ..RxTx::default()
        },
        ..Report::default()
    }
}

fn host(topic: &str) -> Report {
    Report {
        topic: topic.into(),
        scopes: vec!["host".into()],
        ..Report::default()
    }
}

fn resource(topic: &str) -> Resource {
    Resource {
        name: format!("r-{topic}"),
        topic: topic.into(),
        required: vec![format!("{topic}-st-data")],
    }
}

/// The body with wrapped lines joined, one item per line.
fn text(m: &Received) -> String {
    m.body().replace("\n  ", " ")
}

/// Checks the subject and that each of `lines` is in the body; returns the body.
fn read_mail(m: &Received, subject: &str, lines: &[&str]) -> String {
    let body = text(m);
    assert_eq!(m.header("Subject").as_deref(), Some(subject), "{body}");
    for line in lines {
        assert!(body.contains(line), "{line:?} missing from\n{body}");
    }
    body
}

#[tokio::test]
async fn one_email_lists_every_failure_of_a_snapshot_and_another_the_recovery() {
    let min_interval = Duration::from_secs(3);
    let lab = Lab::start(SmtpSink::start().await.unwrap(), &[("STATUS_EMAIL_MIN_INTERVAL", "3s")]).await;
    lab.baseline(&["pend00", "pend01", "pend02"]).await;

    lab.streams_of(&["pend02"]).await;
    let mails = lab.mails(1).await;
    let failure = read_mail(
        &mails[0],
        "Lab status: 2 new health events",
        &[
            "New problems (2)\n",
            // Their unbooking could not reach the booking system.
            "- pend00 (r-pend00) bookable: yes; missing required pend00-st-data\n",
            "- pend01 (r-pend01) bookable: yes; missing required pend01-st-data\n",
            "All current problems (2)\npend00 (r-pend00): missing required pend00-st-data\n\
             pend01 (r-pend01): missing required pend01-st-data\n",
            "Live status: https://status.example.org/\n",
        ],
    );
    assert!(!failure.contains("pend02"), "{failure}");

    // Recoveries in two steps: both wait out the rate limit in one digest.
    lab.booked(&["pend00", "pend01"], false).await;
    lab.streams_of(&["pend00", "pend02"]).await;
    let stats = lab.run.mail_stats.clone();
    eventually!("the first recovery waiting", stats.events_pending() == 1);
    lab.streams_of(&["pend00", "pend01", "pend02"]).await;
    let mails = lab.mails(2).await;
    let arrivals = lab.sink.arrivals();
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= min_interval,
        "the next digest came {gap:?} after the first, before the minimum interval"
    );
    assert_eq!(mails.len(), 2, "the failure was one email");
    let recovery = read_mail(
        &mails[1],
        "Lab status: 2 new health events",
        &[
            "Recovered (2)\n",
            // Unbooked (as `booked` reported); making them bookable again cannot reach the booking system.
            "- pend00 (r-pend00) bookable: no; ok\n",
            "- pend01 (r-pend01) bookable: no; ok\n",
            "All current problems: none\n",
        ],
    );
    assert!(!recovery.contains("New problems ("), "{recovery}");
    lab.stop().await;
}

#[tokio::test]
async fn a_jump_only_problem_is_mailed_and_the_experiment_stays_bookable() {
    let lab = Lab::start(SmtpSink::start().await.unwrap(), &[]).await;
    lab.baseline(&["pend00", "pend01"]).await;

    lab.send(Input::Jump(vec![host("pend01")])).await;
    let mails = lab.mails(1).await;
    read_mail(
        &mails[0],
        "Lab status: 1 new health event",
        &[
            "- pend00 (r-pend00) bookable: yes; missing jump\n",
            "All current problems (1)\npend00 (r-pend00): missing jump\n",
        ],
    );
    lab.stop().await;
}

#[tokio::test]
async fn a_flapping_stream_is_one_email_with_its_changes_counted() {
    let lab = Lab::start(SmtpSink::start().await.unwrap(), &[("STATUS_EMAIL_GROUP_WAIT", "2s")]).await;
    lab.baseline(&["pend00", "pend01"]).await;

    // Each change reaches the mail worker before the next is made: only the
    // window opened by the first keeps them in one digest.
    let stats = lab.run.mail_stats.clone();
    lab.streams_of(&["pend01"]).await;
    eventually!("the failure in the mail worker", stats.events_pending() == 1);
    lab.streams_of(&["pend00", "pend01"]).await;
    eventually!("the recovery in the mail worker", stats.events_pending() == 2);
    lab.streams_of(&["pend01"]).await;
    let mails = lab.mails(1).await;
    let body = read_mail(
        &mails[0],
        "Lab status: 3 new health events",
        &["- pend00 (r-pend00) bookable: yes; flapping: 3 changes; missing required pend00-st-data\n"],
    );
    assert_eq!(
        body.matches("- pend00").count(),
        1,
        "once among the new events:\n{body}"
    );
    assert!(!body.contains("Recovered"), "{body}");

    // A later change makes the next email; the flapping did not make more than one.
    lab.send(Input::Jump(vec![host("pend00")])).await;
    let mails = lab.mails(2).await;
    assert_eq!(mails.len(), 2);
    read_mail(
        &mails[1],
        "Lab status: 1 new health event",
        &["New problems (1)\n- pend01 (r-pend01) bookable: yes; missing jump\n"],
    );
    lab.stop().await;
}

#[tokio::test]
async fn system_alerts_ride_at_the_top_of_the_digest() {
    let lab = Lab::start(
        SmtpSink::start().await.unwrap(),
        &[("STATUS_HEALTH_LAST_CHECKED", "2s")],
    )
    .await;
    lab.baseline(&["pend00"]).await;

    // Both feeds fall silent: the observer is blind, which the digest says first.
    let mails = lab.mails(1).await;
    let body = read_mail(
        &mails[0],
        "Lab status: 1 new health event",
        &[
            "- pend00 (r-pend00) bookable: yes; jump feed silent, relay feed silent\n",
            "All current problems (1)\npend00 (r-pend00): jump feed silent, relay feed silent\n",
        ],
    );
    let system = body.find("System alerts\n! relay feed silent").expect(&body);
    let jump = body.find("! jump feed silent").expect(&body);
    assert!(
        system < jump && jump < body.find("New problems").expect(&body),
        "{body}"
    );
    assert_eq!(body.matches("still active)").count(), 2, "{body}");
    lab.stop().await;
}

#[tokio::test]
async fn refused_attempts_delay_the_digest_which_arrives_complete() {
    let sink = SmtpSink::start().await.unwrap();
    sink.fail_next([Fault::Unavailable, Fault::RejectAfterData]);
    let lab = Lab::start(sink, &[]).await;
    lab.baseline(&["pend00", "pend01", "pend02"]).await;

    lab.streams_of(&["pend02"]).await;
    let stats = lab.run.mail_stats.clone();
    eventually!("a refused attempt", stats.send_failures() >= 1);
    // News during the outage joins the waiting digest instead of queueing another.
    lab.send(Input::Jump(vec![host("pend00"), host("pend01")])).await;

    let mails = lab.mails(1).await;
    read_mail(
        &mails[0],
        "Lab status: 3 new health events",
        &[
            "- pend00 (r-pend00) bookable: yes; missing required pend00-st-data\n",
            "- pend01 (r-pend01) bookable: yes; missing required pend01-st-data\n",
            "- pend02 (r-pend02) bookable: yes; missing jump\n",
        ],
    );
    assert_eq!(lab.run.mail_stats.send_failures(), 2);
    assert_eq!(lab.run.mail_stats.digests_sent(), 1);
    assert_eq!(lab.run.mail_stats.events_pending(), 0);
    assert_eq!(lab.sink.connections(), 3);
    let sink = lab.stop().await;
    assert_eq!(sink.messages().len(), 1, "one digest, not one per attempt");
}

/// A digest held up by an outage says what is true when it finally goes out.
#[tokio::test]
async fn a_delayed_digest_says_whether_the_experiment_is_bookable_when_it_goes_out() {
    let sink = SmtpSink::start().await.unwrap();
    sink.set_down(true);
    let lab = Lab::start(sink, &[]).await;
    lab.baseline(&["pend00", "pend01"]).await;

    // A jump-only problem leaves pend00 bookable...
    lab.send(Input::Jump(vec![host("pend01")])).await;
    let stats = lab.run.mail_stats.clone();
    eventually!("a refused attempt", stats.send_failures() >= 1);
    // ...until, during the outage, the booking system is read with pend00 closed.
    lab.send(Input::Availability(vec![Observed {
        resource: "r-pend00".into(),
        available: false,
    }]))
    .await;
    let snapshot = lab.run.snapshot.clone();
    eventually!("pend00 read as closed", {
        snapshot
            .load()
            .experiment("pend00")
            .is_some_and(|e| e.available == Some(false))
    });
    lab.sink.set_down(false);

    let mails = lab.mails(1).await;
    read_mail(
        &mails[0],
        "Lab status: 1 new health event",
        &["- pend00 (r-pend00) bookable: no; missing jump\n"],
    );
    lab.stop().await;
}

/// `Lab Status <status@example.org>` sends; `status@example.org` logs in (AUTH LOGIN).
#[tokio::test]
async fn auth_login_uses_the_bare_sender_address_unless_a_user_is_set() {
    let sink = SmtpSink::with_login_by(&["LOGIN"], "status@example.org", PASSWORD)
        .await
        .unwrap();
    let lab = Lab::start(
        sink,
        &[("STATUS_EMAIL_AUTH_TYPE", "login"), ("STATUS_EMAIL_PASSWORD", PASSWORD)],
    )
    .await;
    lab.baseline(&["pend00"]).await;
    lab.streams_of(&[]).await;

    let mails = lab.mails(1).await;
    assert_eq!(mails[0].user.as_deref(), Some("status@example.org"));
    assert_eq!(
        mails[0].header("From").as_deref(),
        Some("\"Lab Status\" <status@example.org>")
    );
    assert_eq!(lab.run.mail_stats.send_failures(), 0, "the first login worked");
    lab.stop().await;
}

/// `STATUS_EMAIL_TLS=starttls` to a server that does not offer it: nothing is
/// sent in clear, the refusal is logged with its reason, and it is retried.
#[tokio::test]
async fn starttls_required_of_a_server_without_it_sends_nothing_and_says_why() {
    let logs = Logs::capture();
    let lab = Lab::start(SmtpSink::start().await.unwrap(), &[("STATUS_EMAIL_TLS", "starttls")]).await;
    lab.baseline(&["pend00"]).await;
    lab.streams_of(&[]).await;

    let stats = lab.run.mail_stats.clone();
    eventually!("a refused attempt, retried", stats.send_failures() >= 2);
    assert!(lab.sink.connections() >= 2);
    assert_eq!(stats.digests_sent(), 0);
    assert_eq!(stats.events_pending(), 1, "the digest is kept");
    let sink = lab.stop().await;
    assert!(sink.messages().is_empty(), "nothing was sent without TLS");
    assert!(
        !logs
            .lines_with(&["digest not sent", "STARTTLS is not supported on this server"])
            .is_empty(),
        "the reason is logged:\n{}",
        logs.text()
    );
}

/// Alerts alone wait for news; when the service stops first, the log says they were not mailed.
#[tokio::test]
async fn system_alerts_still_waiting_at_shutdown_are_logged_as_not_sent() {
    let logs = Logs::capture();
    let lab = Lab::start(
        SmtpSink::start().await.unwrap(),
        &[("STATUS_HEALTH_LAST_CHECKED", "1s"), ("STATUS_HEALTH_STARTUP", "1h")],
    )
    .await;
    // One experiment, in its startup grace: both feeds falling silent raise
    // alerts and make no health event.
    lab.send(Input::Jump(vec![host("pend00")])).await;
    let snapshot = lab.run.snapshot.clone();
    eventually!("both feeds silent", snapshot.load().alerts.len() == 2);
    assert_eq!(lab.run.mail_stats.events_pending(), 0, "no news");
    let sink = lab.stop().await;
    assert!(sink.messages().is_empty());
    let lines = logs.lines_with(&[
        "ERROR",
        "digest not sent before shutdown",
        "only system alerts",
        "relay feed silent",
        "jump feed silent",
    ]);
    assert!(!lines.is_empty(), "{}", logs.text());
}

/// `STATUS_EMAIL_HOST=[::1]` is loopback, and reached: the brackets never reach the resolver.
#[tokio::test]
async fn a_bracketed_ipv6_host_is_reached() {
    let Ok(sink) = SmtpSink::start_at("[::1]:0".parse().unwrap()).await else {
        eprintln!("skipped: this machine has no IPv6 loopback");
        return;
    };
    let env = settings(Some(sink.addr()), &[("STATUS_EMAIL_HOST", "[::1]")]);
    let lab = Lab::run(sink, env).await;
    lab.baseline(&["pend00"]).await;
    lab.streams_of(&[]).await;
    let mails = lab.mails(1).await;
    read_mail(&mails[0], "Lab status: 1 new health event", &["- pend00 (r-pend00)"]);
    assert_eq!(lab.run.mail_stats.send_failures(), 0);
    lab.stop().await;
}

#[tokio::test]
async fn headers_are_as_configured_and_the_password_stays_out_of_the_logs() {
    let logs = Logs::capture();
    let sink = SmtpSink::with_login("status-bot", PASSWORD).await.unwrap();
    // One refusal, so a failure is logged too.
    sink.fail_next([Fault::RejectAfterData]);
    let lab = Lab::start(
        sink,
        &[
            ("STATUS_EMAIL_TO", "a@example.org, b@example.org"),
            ("STATUS_EMAIL_CC", "c@example.org"),
            ("STATUS_EMAIL_AUTH_TYPE", "plain"),
            ("STATUS_EMAIL_USER", "status-bot"),
            ("STATUS_EMAIL_PASSWORD", PASSWORD),
        ],
    )
    .await;
    lab.baseline(&["pend00"]).await;
    lab.streams_of(&[]).await;

    let mails = lab.mails(1).await;
    let m = &mails[0];
    assert_eq!(m.user.as_deref(), Some("status-bot"), "AUTH PLAIN went through");
    assert_eq!(m.mail_from, "status@example.org");
    assert_eq!(m.rcpt_to, ["a@example.org", "b@example.org", "c@example.org"]);
    assert_eq!(m.header("From").as_deref(), Some("\"Lab Status\" <status@example.org>"));
    assert_eq!(m.header("To").as_deref(), Some("a@example.org, b@example.org"));
    assert_eq!(m.header("Cc").as_deref(), Some("c@example.org"));
    read_mail(
        m,
        "Lab status: 1 new health event",
        &["- pend00 (r-pend00) bookable: yes;"],
    );
    let date = m.header("Date").expect("a Date header");
    let sent = chrono::DateTime::parse_from_rfc2822(&date).expect("an RFC 2822 date");
    assert!((chrono::Utc::now() - sent.to_utc()).num_seconds().abs() < 60, "{date}");
    let id = m.header("Message-ID").expect("a Message-ID header");
    assert!(id.starts_with('<') && id.ends_with('>') && id.contains('@'), "{id}");
    // Stopping right after the message arrived (the client may still be saying QUIT) sends no copy.
    let sink = lab.stop().await;
    assert_eq!(sink.messages().len(), 1);

    let logs = logs.text();
    assert!(
        logs.contains("digest not sent") && logs.contains("451"),
        "the refusal is logged:\n{logs}"
    );
    assert!(
        logs.contains("sim: local error in processing"),
        "with the server's answer:\n{logs}"
    );
    assert!(logs.contains("digest sent"), "{logs}");
    let plain = BASE64.encode(format!("\0status-bot\0{PASSWORD}"));
    assert!(
        !logs.contains(PASSWORD) && !logs.contains(&plain),
        "the password leaked:\n{logs}"
    );
}

#[tokio::test]
async fn a_hanging_smtp_server_delays_nothing_else_and_the_digest_still_arrives() {
    let sink = SmtpSink::start().await.unwrap();
    sink.fail_next([Fault::Hang]);
    let lab = Lab::start(sink, &[("STATUS_EMAIL_TIMEOUT", "3s")]).await;
    lab.baseline(&["pend00", "pend01"]).await;

    lab.streams_of(&["pend01"]).await;
    eventually!("the mail worker stuck on the silent server", {
        lab.sink.connections() == 1
    });
    // Meanwhile the reconciler and the REST API go on.
    lab.send(Input::Jump(vec![host("pend00")])).await;
    let snapshot = lab.run.snapshot.clone();
    eventually!("the reconciler to take a new snapshot", {
        snapshot.load().experiment("pend01").is_some_and(|e| !e.jump_ok)
    });
    assert_eq!(lab.run.mail_stats.digests_sent(), 0, "the mail worker is still waiting");
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        reqwest::get(format!("http://{}/healthz", lab.run.addr)),
    )
    .await
    .expect("the REST API answers while SMTP hangs")
    .unwrap();
    assert!(answer.status().is_success());

    let mails = lab.mails(1).await;
    read_mail(
        &mails[0],
        "Lab status: 2 new health events",
        &[
            "- pend00 (r-pend00) bookable: yes; missing required",
            "- pend01 (r-pend01) bookable: yes; missing jump",
        ],
    );
    assert!(
        lab.run.mail_stats.send_failures() >= 1,
        "the timeout counted as a failure"
    );
    lab.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_a_digest_still_in_its_window() {
    let lab = Lab::start(SmtpSink::start().await.unwrap(), &[("STATUS_EMAIL_GROUP_WAIT", "1h")]).await;
    lab.baseline(&["pend00"]).await;
    lab.streams_of(&[]).await;
    let stats = lab.run.mail_stats.clone();
    eventually!("the event waiting in the window", stats.events_pending() == 1);
    assert!(lab.sink.messages().is_empty());

    let sink = lab.stop().await;
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "flushed before the service stopped");
    assert!(text(&mails[0]).contains("- pend00 (r-pend00) bookable: yes; missing required pend00-st-data"));
}

#[tokio::test]
async fn without_email_configured_the_service_runs_and_reports_through_the_api() {
    let sink = SmtpSink::start().await.unwrap();
    let lab = Lab::run(sink, settings(None, &[])).await;
    lab.baseline(&["pend00"]).await;
    lab.streams_of(&[]).await;
    let snapshot = lab.run.snapshot.clone();
    eventually!("the failure in the snapshot", {
        snapshot.load().experiment("pend00").is_some_and(|e| !e.healthy)
    });
    let body = reqwest::get(format!("http://{}/api/v1/experiments", lab.run.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("missing required pend00-st-data"), "{body}");
    assert_eq!(lab.run.mail_stats.events_pending(), 0, "no mail worker collects events");
    let sink = lab.stop().await;
    assert_eq!(sink.connections(), 0);
}
