//! What the feeds log about failures, and that it never holds a credential.
//!
//! Alone in its test binary, so every captured line is this test's own.

mod feed_rig;
mod support;

use feed_rig::*;
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
    assert!(
        text.contains("feed subscribed") && text.contains("feed attempt failed"),
        "{text}"
    );
    assert_eq!(
        text.matches("feed attempt failed").count(),
        1,
        "one line per failed attempt"
    );
    assert!(!text.contains("eyJ"), "a token was logged");
    assert!(!text.contains("relay-secret") && !text.contains("jump-secret"));
    assert!(text.contains("code=redacted"));
    for (i, _) in text.match_indices("code=") {
        assert!(text[i..].starts_with("code=redacted"), "a code was logged: {text}");
    }
}
