//! What the feeds log about failures, and that it never holds a credential.
//!
//! The capture is shared by the tests of this binary: each test counts only
//! the lines naming its own simulated peer, and a credential anywhere in the
//! capture fails them all.

mod feed_rig;
mod support;

use feed_rig::*;
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

/// How the failure lines name `sim` (with the space that ends the field, so a port is not a prefix of another).
fn peer_field(sim: &SimStats) -> String {
    format!("peer={} ", sim.host())
}
