//! What an operator watches and relies on: `/metrics` and `/readyz`, served
//! by the service in this process against simulated peers on loopback; the
//! server's limits on what clients hold; and the log output of the binary.

mod feed_rig;
mod lab;
mod support;

use std::time::{Duration, Instant};

use lab::Lab;
use reqwest::Method;
use serde_json::{json, Value};
use status::api::Limits;
use status::sim::smtp::Fault;
use status::sim::stats::Garbage;
use support::binary::{wait_until, Served};
use support::{env_with, wait_for, Running, DEADLINE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /metrics`: checks the media type and the closing `# EOF`, returns the text.
async fn scrape(svc: &Running) -> String {
    let response = svc.http.get(svc.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let media = response.headers()["content-type"].to_str().expect("ASCII").to_string();
    assert!(media.starts_with("application/openmetrics-text"), "{media}");
    let text = response.text().await.expect("a text body");
    assert!(text.ends_with("# EOF\n"), "{text}");
    text
}

/// The value of the sample named exactly `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

fn requests(route: &str, method: &str, status: &str) -> String {
    format!(r#"status_http_requests_total{{method="{method}",route="{route}",status="{status}"}}"#)
}

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status_family_in_each_service_alone() {
    let svc = Running::start(env_with(&[])).await;
    let other = Running::start(env_with(&[])).await;
    for path in [
        "/api/v1/experiments/events/pend00",
        "/api/v1/experiments/events/spin01",
        "/api/v1/experiments",
        "/no/such/route/4242",
        "/healthz",
    ] {
        svc.http.get(svc.url(path)).send().await.expect("answered");
    }
    for method in [Method::POST, Method::from_bytes(b"BREW").expect("a valid token")] {
        svc.http
            .request(method, svc.url("/healthz"))
            .send()
            .await
            .expect("answered");
    }

    let text = scrape(&svc).await;
    let events = "/api/v1/experiments/events/{name}";
    assert_eq!(value(&text, &requests(events, "GET", "4xx")), Some(2.0), "{text}");
    assert_eq!(value(&text, &requests("/api/v1/experiments", "GET", "2xx")), Some(1.0));
    assert_eq!(value(&text, &requests("unmatched", "GET", "4xx")), Some(1.0));
    assert_eq!(value(&text, &requests("/healthz", "GET", "2xx")), Some(1.0));
    assert_eq!(value(&text, &requests("/healthz", "POST", "4xx")), Some(1.0));
    assert_eq!(value(&text, &requests("/healthz", "other", "4xx")), Some(1.0));
    let histogram =
        format!(r#"status_http_request_duration_seconds_count{{method="GET",route="{events}",status="4xx"}}"#);
    assert_eq!(value(&text, &histogram), Some(2.0));
    let bucket = format!(
        r#"status_http_request_duration_seconds_bucket{{le="+Inf",method="GET",route="{events}",status="4xx"}}"#
    );
    assert_eq!(value(&text, &bucket), Some(2.0));
    for raw in ["pend00", "spin01", "/no/such", "BREW"] {
        assert!(
            !text.contains(raw),
            "a raw path, method or status became a label: {raw}"
        );
    }

    // No global recorder: the other service counted nothing of this.
    let theirs = scrape(&other).await;
    assert!(!theirs.contains("/api/v1/experiments"), "{theirs}");
    assert_eq!(value(&theirs, &requests("/healthz", "GET", "2xx")), None);
    svc.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn readiness_waits_for_a_frame_from_each_feed_and_a_manifest() {
    let lab = Lab::start().await;
    lab.broken_pend00();
    lab.peers.relay.set_silent(true);
    lab.peers.jump.set_silent(true);
    lab.book.control().refuse(true);
    let svc = Running::start(lab.env(&[])).await;
    let readiness = |missing: &[&str]| json!({"ready": false, "missing": missing});
    assert_eq!(
        svc.get_json("/readyz").await,
        (
            503,
            readiness(&[
                "relay feed: no frame yet",
                "jump feed: no frame yet",
                "booking manifest: not loaded"
            ])
        )
    );
    // Refused manifests and silent feeds stay not ready.
    wait_for("a refused manifest request", || async {
        lab.book
            .control()
            .requests()
            .iter()
            .any(|r| r.status == Some(401))
            .then_some(())
    })
    .await;
    assert_eq!(svc.get_json("/readyz").await.0, 503);

    lab.peers.relay.set_silent(false);
    let want = (
        503,
        readiness(&["jump feed: no frame yet", "booking manifest: not loaded"]),
    );
    wait_for("the relay's first frame", || async {
        (svc.get_json("/readyz").await == want).then_some(())
    })
    .await;
    lab.peers.jump.set_silent(false);
    let want = (503, readiness(&["booking manifest: not loaded"]));
    wait_for("the jump's first frame", || async {
        (svc.get_json("/readyz").await == want).then_some(())
    })
    .await;
    lab.book.control().refuse(false);
    let ready = (200, json!({"ready": true, "missing": []}));
    wait_for("a manifest", || async {
        (svc.get_json("/readyz").await == ready).then_some(())
    })
    .await;
    // Readiness is reached once: a feed falling silent later is an alert, not unreadiness.
    lab.peers.relay.set_silent(true);
    wait_for("the relay-silent alert", || async {
        let (_, alerts) = svc.get_json("/api/v1/alerts").await;
        alerts
            .as_array()?
            .iter()
            .any(|a| a["kind"] == "relay_silent")
            .then_some(())
    })
    .await;
    assert_eq!(svc.get_json("/readyz").await, ready);
    let text = scrape(&svc).await;
    assert_eq!(value(&text, r#"status_system_alerts{kind="relay_silent"}"#), Some(1.0));
    assert_eq!(
        value(&text, r#"status_system_alerts{kind="mass_change_held"}"#),
        Some(0.0)
    );
    svc.stop().await;
}

#[tokio::test]
async fn metrics_follow_the_feeds_the_fleet_the_booking_api_and_the_mail() {
    let lab = Lab::start().await;
    lab.broken_pend00();
    lab.book.control().fail_next(1);
    lab.smtp.fail_next([Fault::RejectAfterData]);
    let svc = Running::start(lab.env(&[])).await;

    wait_for("r-pend00 unbooked and mailed about", || async {
        let unbooked = lab.book.control().holding("r-pend00").is_some_and(|h| !h.available);
        (unbooked && !lab.smtp.messages().is_empty()).then_some(())
    })
    .await;
    let relay = &lab.peers.relay;
    relay.send_garbage(Garbage::NotJson);
    wait_for("the rejected frame counted", || async {
        let text = scrape(&svc).await;
        (value(&text, r#"status_feed_frames_rejected_total{feed="relay"}"#)? >= 1.0).then_some(())
    })
    .await;
    relay.close_connections();
    let text = wait_for("the relay's reconnection and the confirmed unbooking", || async {
        let text = scrape(&svc).await;
        let reconnected = value(&text, r#"status_feed_reconnections_total{feed="relay"}"#)? >= 1.0;
        let connected = value(&text, r#"status_feed_connected{feed="relay"}"#)? == 1.0;
        let confirmed = value(
            &text,
            r#"status_availability_changes_confirmed_total{available="false"}"#,
        )? == 1.0;
        (reconnected && connected && confirmed).then_some(text)
    })
    .await;

    // Feeds, read from the board at scrape time.
    for feed in ["relay", "jump"] {
        let received = format!(r#"status_feed_frames_received_total{{feed="{feed}"}}"#);
        assert!(value(&text, &received) >= Some(1.0), "{text}");
        let age = value(
            &text,
            &format!(r#"status_feed_last_frame_age_seconds{{feed="{feed}"}}"#),
        );
        assert!(age.is_some_and(|a| (0.0..20.0).contains(&a)), "{feed}: {age:?}");
        assert!(value(&text, &format!(r#"status_feed_report_defects_total{{feed="{feed}"}}"#)).is_some());
    }
    assert_eq!(value(&text, r#"status_feed_connected{feed="jump"}"#), Some(1.0));
    // This scrape's own connection, at least.
    assert!(value(&text, "status_http_connections") >= Some(1.0), "{text}");
    // The fleet, from the published snapshot.
    assert_eq!(
        value(&text, r#"status_experiments{healthy="false",bookable="false"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"status_experiments{healthy="true",bookable="true"}"#),
        Some(0.0)
    );
    // What the booking system holds, read back after the unbooking.
    let available = |word: &str| value(&text, &format!(r#"status_experiments_available{{available="{word}"}}"#));
    assert_eq!(
        (available("true"), available("false"), available("unknown")),
        (Some(0.0), Some(1.0), Some(0.0)),
        "{text}"
    );
    // Booking: one change asked and confirmed, every operation timed, the injected 500 counted.
    assert_eq!(
        value(
            &text,
            r#"status_availability_changes_requested_total{available="false"}"#
        ),
        Some(1.0)
    );
    // There at 0 before any failure, so that `increase()` sees the first one.
    assert_eq!(
        value(&text, r#"status_availability_changes_failed_total{available="false"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(
            &text,
            r#"status_availability_changes_requested_total{available="true"}"#
        ),
        Some(0.0)
    );
    assert!(value(&text, "status_book_manifest_loads_total") >= Some(1.0));
    for operation in ["manifest", "read", "set"] {
        let count = format!(r#"status_book_request_duration_seconds_count{{operation="{operation}"}}"#);
        assert!(value(&text, &count) >= Some(1.0), "{operation}: {text}");
    }
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("status_book_request_errors_total") && !l.ends_with(" 0"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let timeouts = r#"status_book_request_errors_total{operation="set",status="timeout"}"#;
    assert_eq!(value(&text, timeouts), Some(0.0), "fixed causes are there at 0");
    assert!(
        errors[0].contains(r#"status="500""#) && errors[0].ends_with(" 1"),
        "{errors:?}"
    );
    // Mail: the refused attempt, then the digest that went through.
    assert_eq!(value(&text, "status_email_send_failures_total"), Some(1.0));
    assert!(value(&text, "status_email_digests_sent_total") >= Some(1.0));
    assert!(value(&text, "status_email_events_pending").is_some());

    assert_every_metric_is_documented(&text);
    svc.stop().await;
}

/// Every metric family exposed is in the README's table, under the name PromQL uses.
fn assert_every_metric_is_documented(text: &str) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    let mut families = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let queried = if kind == "counter" {
            format!("{name}_total")
        } else {
            name.to_string()
        };
        assert!(
            readme.contains(&format!("`{queried}`")),
            "{queried} is not in the README"
        );
        families += 1;
    }
    assert_eq!(families, 21, "{text}");
}

/// Short enough for a test, long enough for a loaded machine to send a whole request head in time.
const HEADER_READ: Duration = Duration::from_secs(1);

/// Reads until the server closes the connection (end of stream or reset); `None` after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(answer)
}

#[tokio::test]
async fn a_client_slow_to_send_its_request_head_is_disconnected_after_the_timeout() {
    let limits = Limits {
        header_read: HEADER_READ,
        ..Limits::default()
    };
    let svc = Running::start_limited(env_with(&[]), limits).await;
    let started = Instant::now();
    let stream = TcpStream::connect(svc.addr).await.expect("connects");
    let (mut from, mut to) = stream.into_split();
    to.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .expect("writes");
    // Then a byte every 50 ms, as a slowloris does: a trickle does not keep the head coming "in time".
    let trickle = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(50));
        loop {
            every.tick().await;
            if to.write_all(b"z").await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, from.read_to_end(&mut answer)).await;
    trickle.abort();
    assert!(closed.is_ok(), "the server kept a never-finished request head open");
    assert!(
        started.elapsed() >= HEADER_READ,
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    svc.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_and_do_not_keep_out_a_normal_request() {
    let limits = Limits {
        header_read: HEADER_READ,
        connections: 4,
        ..Limits::default()
    };
    let svc = Running::start_limited(env_with(&[]), limits).await;
    // Three times the connection limit, opened and never used.
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(svc.addr).await.expect("connects"));
    }
    let answer = svc.http.get(svc.url("/healthz")).send().await.expect("answered");
    assert_eq!(answer.status(), 200);
    for stream in &mut idle {
        let closed = closed_within(stream, DEADLINE).await;
        assert_eq!(
            closed.as_deref(),
            Some(&b""[..]),
            "an idle connection is closed, unanswered"
        );
    }
    svc.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    // The default header timeout (10 s) holds idle connections far longer than this test looks.
    let limits = Limits {
        connections: 2,
        ..Limits::default()
    };
    let svc = Running::start_limited(env_with(&[]), limits).await;
    let held = [
        TcpStream::connect(svc.addr).await.expect("connects"),
        TcpStream::connect(svc.addr).await.expect("connects"),
    ];
    let mut waiting = TcpStream::connect(svc.addr).await.expect("connects (into the backlog)");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    // Not answered while both places are held (an unlimited server answers in a millisecond).
    assert_eq!(
        closed_within(&mut waiting, Duration::from_millis(300)).await,
        None,
        "answered beyond the connection limit"
    );
    drop(held);
    let answer = closed_within(&mut waiting, DEADLINE)
        .await
        .expect("answered once places freed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    svc.stop().await;
}

#[test]
fn text_logs_written_to_a_pipe_carry_no_colour_codes() {
    let mut served = Served::start(&env_with(&[
        ("STATUS_LOG_FORMAT", "text"),
        ("STATUS_LOG_LEVEL", "info"),
    ]));
    served.wait_until_serving();
    wait_until("the serving line", || {
        (served.logged(&["serving the REST API"]) > 0).then_some(())
    });
    served.sigterm();
    let (exit, out) = served.wait_exit();
    assert_eq!(exit.code(), Some(0), "{out}");
    assert!(out.contains(" INFO "), "a text line with its level: {out}");
    assert!(!out.contains('\u{1b}'), "ANSI escape codes in the log: {out:?}");
}

#[test]
fn the_log_file_is_appended_to_with_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let file = dir.path().join("status.log");
    std::fs::write(&file, "an earlier line, kept\n").expect("write the earlier content");
    let path = file.to_str().expect("a UTF-8 path");
    let mut served = Served::start(&env_with(&[("STATUS_LOG_FILE", path), ("STATUS_LOG_LEVEL", "info")]));
    served.wait_until_serving();
    wait_until("the serving line in the file", || {
        let text = std::fs::read_to_string(&file).ok()?;
        text.contains("serving the REST API").then_some(())
    });
    served.sigterm();
    let (exit, out) = served.wait_exit();
    assert_eq!(exit.code(), Some(0), "{out}");
    assert!(!out.contains("serving the REST API"), "the log went to stdout: {out}");
    let text = std::fs::read_to_string(&file).expect("the log file");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("an earlier line, kept"));
    let logged: Vec<Value> = lines
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    assert!(logged.len() >= 2, "{text}");
    assert!(
        logged.iter().all(|l| l["level"].is_string() && l["fields"].is_object()),
        "{text}"
    );
    assert!(logged.iter().any(|l| l["fields"]["message"] == "stopped"), "{text}");
}
