//! What the feeds log about failures, and that it never holds a credential.
//!
//! The capture is shared by the tests of this binary: each test counts only
//! the lines naming its own simulated peer, and a credential anywhere in the
//! capture fails them all.

mod feed_rig;
mod support;

use std::time::{Duration, Instant};

use feed_rig::*;
use reqwest::StatusCode;
use status::sim::stats::{BadAnswer, SimStats};
use support::logs::Logs;

#[tokio::test]
async fn a_closed_socket_is_followed_by_a_fresh_access_request_and_nothing_secret_is_logged() {
    let logs = Logs::capture();
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    let rig = peers.serve(&[]).await;
    let relay = &rig.peers.relay;
    rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!(relay.subscriptions(), 1);
    let asked = relay.access_requests();

    relay.close_connections();
    let feed = rig.counter_above("relay", "reconnections", 0).await;
    assert_eq!(feed["connected"], true);
    assert!(
        relay.access_requests() > asked,
        "every reconnection asks for access again"
    );
    assert_eq!(
        relay.subscriptions(),
        2,
        "with a fresh code: a used one would be refused"
    );
    let error = feed["last_error"].as_str().unwrap();
    assert!(
        error.contains("closed the connection") && error.contains("1001"),
        "{error}"
    );
    let frames = feed["frames_received"].as_u64().unwrap();
    rig.counter_above("relay", "frames_received", frames).await;

    let text = logs.text();
    assert!(text.contains("feed subscribed"), "{text}");
    let failures = logs.lines_with(&["feed attempt failed", &peer_field(relay)]);
    assert_eq!(failures.len(), 1, "one line per failed attempt: {failures:?}");
    assert!(failures[0].contains("closed the connection"), "{failures:?}");
    assert!(!text.contains("eyJ"), "a token was logged");
    assert!(!text.contains("relay-secret") && !text.contains("jump-secret"));
    assert!(text.contains("code=redacted"));
    for (i, _) in text.match_indices("code=") {
        assert!(text[i..].starts_with("code=redacted"), "a code was logged: {text}");
    }
}

#[tokio::test]
async fn a_code_in_a_bad_access_answer_reaches_neither_the_log_nor_the_api() {
    let logs = Logs::capture();
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    let codes = ["0c0de1nawr0ngur1", "0c0de1nab4res7r1ng"];
    let granted = format!("ws://{}/tenant/relay/session/stats?code=", peers.relay.host());
    peers.relay.answer_badly([
        BadAnswer::Body(format!(r#"{{"uri": "ftp{}{}"}}"#, &granted[2..], codes[0])),
        // JSON, but a bare string instead of {"uri": …}: serde_json's message would quote it whole.
        BadAnswer::Body(format!(r#""{granted}{}""#, codes[1])),
    ]);
    let rig = peers.serve(&[]).await;
    let relay = &rig.peers.relay;

    let feed = rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!((relay.access_requests(), relay.subscriptions()), (3, 1));
    let error = feed["last_error"].as_str().expect("the failure is shown");
    assert!(
        error.contains("is not {\"uri\": \"…\"}: JSON of another shape at line 1 column"),
        "{error}"
    );
    let feeds = rig.get("/api/v1/feeds").await.to_string();
    let failures = logs.lines_with(&["feed attempt failed", &peer_field(relay)]);
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].contains("unusable uri") && failures[0].contains("code=redacted"));
    assert!(failures[1].contains("line 1 column"), "{failures:?}");
    for code in codes {
        assert!(!feeds.contains(code), "a code reached the API: {feeds}");
    }
    logs.assert_none_of(&codes);
}

#[tokio::test]
async fn failures_back_off_and_a_connection_that_worked_resets_the_wait() {
    let logs = Logs::capture();
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    peers.relay.refuse_access(3, StatusCode::SERVICE_UNAVAILABLE);
    // A long idle limit: on a slow machine, a late frame must not add a failure of its own.
    let rig = peers.serve(&[("STATUS_HEALTH_LAST_CHECKED", "30s")]).await;
    let relay = &rig.peers.relay;

    rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!(relay.access_requests(), 4, "three refusals, then access");
    let closed_at = Instant::now();
    relay.close_connections();
    rig.counter_above("relay", "reconnections", 0).await;

    // The waits the subscription chose: doubling on each refusal, back to 1 s after the connection that worked.
    let failures = logs.lines_with(&["feed attempt failed", &peer_field(relay)]);
    let waits: Vec<&str> = failures.iter().filter_map(|l| field(l, "retry_in")).collect();
    assert_eq!(waits, ["1s", "2s", "4s", "1s"], "{failures:?}");
    // And they were waited: the peer saw each request at least that long after the previous one.
    let times = relay.access_times();
    assert_eq!(times.len(), 5);
    for (i, wait) in [1, 2, 4].into_iter().enumerate() {
        let gap = times[i + 1] - times[i];
        assert!(gap >= Duration::from_secs(wait), "attempt {} came after {gap:?}", i + 2);
    }
    assert!(times[4] - closed_at >= Duration::from_secs(1));
}

/// The value of `name=` in a log line.
fn field<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    line[start..].split_whitespace().next()
}

/// How the failure lines name `sim` (with the space that ends the field, so a port is not a prefix of another).
fn peer_field(sim: &SimStats) -> String {
    format!("peer={} ", sim.host())
}
