//! The relay and jump subscriptions end to end: the real `Service` against
//! simulated peers on loopback sockets, observed through its REST API.

mod feed_rig;
mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use feed_rig::*;
use reqwest::StatusCode;
use serde_json::Value;
use status::feed::{FeedState, Subscription, Timing, BACKOFF_MAX, BACKOFF_MIN};
use status::report::Report;
use status::sim::stats::{BadAnswer, Garbage};
use status::token::{self, Feed, StatsClaims};
use status::tracker::Input;
use support::{wait_for, DEADLINE};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn tokens_carry_exactly_the_protocol_claims() {
    let rig = Peers::start()
        .await
        .serve(&[
            ("STATUS_RECONNECT_RELAY_EVERY", "1h"),
            ("STATUS_RECONNECT_JUMP_EVERY", "2h"),
        ])
        .await;
    let (relay, jump) = (&rig.peers.relay, &rig.peers.jump);
    wait_for("both subscriptions", || async {
        (relay.subscriptions() >= 1 && jump.subscriptions() >= 1).then_some(())
    })
    .await;
    assert_eq!(
        relay.bad_tokens() + jump.bad_tokens(),
        0,
        "every token passed the peers' checks"
    );

    for (peer, prefix, scope, lifetime) in [(relay, "session", "read", 3600), (jump, "connect", "stats", 7200)] {
        let all = peer.last_claims().unwrap();
        let mut names: Vec<&str> = all.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["aud", "booking_id", "exp", "iat", "nbf", "prefix", "scopes", "topic"]
        );
        let c: StatsClaims = serde_json::from_value(Value::Object(all)).unwrap();
        assert_eq!(c.aud, [peer.base_url().to_string()]);
        assert_eq!((c.topic.as_str(), c.prefix.as_str()), ("stats", prefix));
        assert_eq!(c.scopes, [scope]);
        assert_eq!(c.booking_id, "status-server");
        assert_eq!(c.nbf, c.iat);
        assert!((c.iat - Utc::now().timestamp()).abs() < 60);
        assert_eq!(c.exp - c.iat, lifetime);
    }
    assert!(relay.base_url().ends_with("/tenant/relay"));
    assert!(jump.base_url().ends_with("/tenant/jump"));

    // The peers' checks are real: a wrong secret and a `Bearer ` prefix are refused.
    let config = rig.peers.config(&[]);
    let mut wrong = config.relay.clone();
    wrong.secret = "not-the-secret".to_string().into();
    let url = status::feed::access_url(Feed::Relay, &config.relay);
    let good = token::stats_token(Feed::Relay, &config.relay, Utc::now().timestamp(), DEADLINE).unwrap();
    let forged = token::stats_token(Feed::Relay, &wrong, Utc::now().timestamp(), DEADLINE).unwrap();
    for bad in [forged, format!("Bearer {good}")] {
        let resp = reqwest::Client::new()
            .post(&url)
            .header("Authorization", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(relay.bad_tokens(), 2);
}

#[tokio::test]
async fn the_simulated_peers_refuse_tokens_that_stray_from_the_protocol() {
    let peers = Peers::start().await;
    let url = status::feed::access_url(Feed::Relay, &peers.config(&[]).relay);
    let now = Utc::now().timestamp();
    let exact = StatsClaims {
        aud: vec![peers.relay.base_url().to_string()],
        topic: "stats".into(),
        prefix: "session".into(),
        scopes: vec!["read".into()],
        booking_id: "status-server".into(),
        iat: now,
        nbf: now,
        exp: now + 60,
    };
    type Stray = fn(&mut StatsClaims);
    let strays: [(&str, Stray); 6] = [
        ("an extra scope", |c| c.scopes.push("write".into())),
        ("another scope", |c| c.scopes = vec!["stats".into()]),
        ("another booking_id", |c| c.booking_id = "someone-else".into()),
        ("a second audience", |c| {
            c.aud.push("https://elsewhere.example.org".into())
        }),
        ("the jump's prefix", |c| c.prefix = "connect".into()),
        ("another topic", |c| c.topic = "pend00-st-data".into()),
    ];
    let http = reqwest::Client::new();
    let post = |claims: &StatsClaims| {
        let key = jsonwebtoken::EncodingKey::from_secret(b"relay-secret");
        let signed = jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key);
        let request = http.post(&url).header("Authorization", signed.expect("claims sign"));
        async move { request.send().await.expect("the simulated relay answers").status() }
    };
    assert_eq!(post(&exact).await, StatusCode::OK, "the exact claims pass");
    for (what, stray) in strays {
        let mut claims = exact.clone();
        stray(&mut claims);
        assert_eq!(post(&claims).await, StatusCode::UNAUTHORIZED, "{what} must be refused");
    }
    assert_eq!(peers.relay.bad_tokens(), 6);
    peers.shutdown.cancel();
}

#[tokio::test]
async fn granted_codes_work_once() {
    let peers = Peers::start().await;
    let config = peers.config(&[]);
    let http = reqwest::Client::new();
    let url = status::feed::access_url(Feed::Jump, &config.jump);
    let token = token::stats_token(Feed::Jump, &config.jump, Utc::now().timestamp(), DEADLINE).unwrap();
    let answer: Value = http
        .post(&url)
        .header("Authorization", token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let uri = answer["uri"].as_str().unwrap();
    assert!(uri.starts_with("ws://127.0.0.1:") && uri.contains("/tenant/jump/api/v1/connect/stats?code="));
    let (ws, _) = tokio_tungstenite::connect_async(uri)
        .await
        .expect("a fresh code is accepted");
    let again = tokio_tungstenite::connect_async(uri).await;
    assert!(again.is_err(), "a used code must be refused");
    let unknown = uri.split("code=").next().unwrap().to_string() + "code=0123";
    assert!(tokio_tungstenite::connect_async(unknown).await.is_err());
    assert_eq!(peers.jump.subscriptions(), 1);
    drop(ws);
    peers.shutdown.cancel();
}

#[tokio::test]
async fn stalled_silent_and_vanished_streams_make_the_experiment_unhealthy_but_viewers_do_not() {
    let (rig, view) = pend00_rig().await;
    let relay = &rig.peers.relay;
    assert_eq!(
        view["stream_ok"]["pend00-st-video"], true,
        "the viewer that never sends does not count"
    );

    let cases = [
        ("stalled", Some(Duration::from_secs(60)), "unhealthy pend00-st-video"),
        ("never transmitted", None, "unhealthy pend00-st-video"),
    ];
    for (what, last, issue) in cases {
        relay.set_reports(vec![
            stream("pend00-st-data", &["expt"], FRESH),
            stream("pend00-st-video", &["expt"], last),
        ]);
        let view = rig.health_is("pend00", false).await;
        assert_eq!(view["stream_ok"]["pend00-st-video"], false, "{what}");
        assert!(
            view["issues"].as_array().unwrap().contains(&issue.into()),
            "{what}: {view}"
        );
        healthy_pend00(&rig.peers);
        rig.health_is("pend00", true).await;
    }

    // Vanished: only a viewer is left on the video topic, and it does not stand in for the stream.
    relay.set_reports(vec![
        stream("pend00-st-data", &["expt"], FRESH),
        stream("pend00-st-video", &["read"], FRESH),
    ]);
    let view = rig.health_is("pend00", false).await;
    let issues = view["issues"].as_array().unwrap();
    assert!(issues.contains(&"missing required pend00-st-video".into()), "{view}");

    // The jump connection vanishing is seen too.
    healthy_pend00(&rig.peers);
    rig.health_is("pend00", true).await;
    rig.peers.jump.set_reports(vec![]);
    let view = rig.health_is("pend00", false).await;
    assert_eq!(view["jump_ok"], false);
}

#[tokio::test]
async fn refused_access_is_retried_until_it_subscribes() {
    let peers = Peers::start().await;
    peers.relay.refuse_access(2, StatusCode::SERVICE_UNAVAILABLE);
    peers.jump.refuse_access(1, StatusCode::UNAUTHORIZED);
    let rig = peers.serve(&[]).await;
    let (relay, jump) = (&rig.peers.relay, &rig.peers.jump);

    let feed = rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!((relay.access_requests(), relay.subscriptions()), (3, 1));
    assert!(feed["last_error"].as_str().unwrap().contains("503"), "{feed}");
    assert_eq!(feed["reconnections"], 0, "refusals are not connections");

    let feed = rig.counter_above("jump", "frames_received", 0).await;
    assert_eq!((jump.access_requests(), jump.subscriptions()), (2, 1));
    assert!(feed["last_error"].as_str().unwrap().contains("401"), "{feed}");
}

#[tokio::test]
async fn bad_access_answers_are_failed_attempts_that_are_retried() {
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    peers.relay.answer_badly([
        BadAnswer::Body("this is not JSON {".into()),
        BadAnswer::Body(r#"{"uri": "https://127.0.0.1:1/tenant/relay/session/stats?code=x"}"#.into()),
    ]);
    peers
        .jump
        .answer_badly([BadAnswer::Body(r#"{"uri": "not a url"}"#.into())]);
    let rig = peers.serve(&[]).await;
    let (relay, jump) = (&rig.peers.relay, &rig.peers.jump);

    let feed = rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!(
        (relay.access_requests(), relay.subscriptions()),
        (3, 1),
        "two failed attempts, then a subscription"
    );
    let error = feed["last_error"].as_str().expect("the failures are shown");
    assert!(
        error.contains("unusable uri") && error.contains("not ws:// or wss://"),
        "{error}"
    );
    assert_eq!(feed["reconnections"], 0, "failed access requests are not connections");

    let feed = rig.counter_above("jump", "frames_received", 0).await;
    assert_eq!((jump.access_requests(), jump.subscriptions()), (2, 1));
    let error = feed["last_error"].as_str().expect("the failure is shown");
    assert!(error.contains("not a URL"), "{error}");
}

#[tokio::test]
async fn a_redirected_access_request_is_a_failed_attempt_not_followed() {
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    peers.relay.answer_badly([BadAnswer::Redirect]);
    let rig = peers.serve(&[]).await;
    let relay = &rig.peers.relay;

    let feed = rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!(relay.redirects_followed(), 0, "the redirect was followed");
    assert_eq!((relay.access_requests(), relay.subscriptions()), (2, 1));
    let error = feed["last_error"].as_str().expect("the failure is shown");
    assert!(error.contains("answered 302"), "{error}");
}

#[tokio::test]
async fn a_refused_access_connection_is_retried_until_the_peer_listens() {
    let peers = Peers::start_with_relay_closed().await;
    healthy_pend00(&peers);
    let rig = peers.serve(&[]).await;
    let relay = &rig.peers.relay;

    let feed = wait_for("a refused access request", || async {
        let feed = rig.feed("relay").await;
        let error = feed["last_error"].as_str().unwrap_or_default().to_lowercase();
        error.contains("refused").then_some(feed)
    })
    .await;
    assert_eq!(feed["connected"], false);
    assert_eq!(relay.access_requests(), 0, "nothing reached the peer");

    relay.listen().expect("the relay listens");
    let feed = rig.counter_above("relay", "frames_received", 0).await;
    assert_eq!((relay.access_requests(), relay.subscriptions()), (1, 1));
    assert_eq!(feed["reconnections"], 0);
    assert_eq!(feed["connected"], true);
}

#[tokio::test]
async fn a_jump_connection_without_the_host_scope_is_no_experiment_jump() {
    let (rig, view) = pend00_rig().await;
    assert_eq!(view["jump_ok"], true);
    let jump = &rig.peers.jump;

    // Someone logged in through the jump to pend00: the connection has the stub as its topic but no host scope.
    let user = Report {
        topic: "pend00".into(),
        scopes: vec!["read".into(), "write".into()],
        ..Report::default()
    };
    jump.set_reports(vec![user.clone()]);
    let view = rig.health_is("pend00", false).await;
    assert_eq!(view["jump_ok"], false, "{view}");
    assert_eq!(view["jump_report"], Value::Null, "{view}");
    assert!(
        view["issues"]
            .as_array()
            .expect("issues are a list")
            .contains(&"missing jump".into()),
        "{view}"
    );

    jump.set_reports(vec![user, host("pend00")]);
    let view = rig.health_is("pend00", true).await;
    assert_eq!(view["jump_ok"], true);
}

#[tokio::test]
async fn garbage_frames_are_counted_survived_and_leave_the_snapshot_alone() {
    let (rig, view) = pend00_rig().await;
    let relay = &rig.peers.relay;
    let events = view["health_events"].clone();

    let mut rejected = 0;
    for garbage in [Garbage::NotJson, Garbage::Binary, Garbage::Object] {
        relay.send_garbage(garbage);
        let feed = rig.counter_above("relay", "frames_rejected", rejected).await;
        rejected = feed["frames_rejected"].as_u64().unwrap();
    }
    relay.send_garbage(Garbage::WrongTypes);
    // Every report had a wrong canWrite and one had no usable topic.
    let feed = rig.counter_above("relay", "report_defects", 3).await;
    assert_eq!(feed["frames_rejected"], 3);
    assert_eq!(feed["connected"], true);
    assert_eq!(relay.subscriptions(), 1, "garbage never drops the connection");

    // A few more clean frames, then the picture is still the one before the garbage.
    let frames = feed["frames_received"].as_u64().unwrap();
    rig.counter_above("relay", "frames_received", frames + 3).await;
    let view = rig.health_is("pend00", true).await;
    assert_eq!(view["health_events"], events, "no frame was taken as an empty snapshot");

    // A later valid change is still acted on.
    relay.set_reports(vec![
        stream("pend00-st-data", &["expt"], FRESH),
        stream("pend00-st-video", &["expt"], Some(Duration::from_secs(60))),
    ]);
    rig.health_is("pend00", false).await;
}

#[tokio::test]
async fn a_silent_feed_raises_its_alert_and_its_dead_connection_is_renewed() {
    let (rig, _) = pend00_rig().await;
    let jump = &rig.peers.jump;
    rig.counter_above("jump", "frames_received", 0).await;
    rig.counter_above("relay", "frames_received", 0).await;
    wait_for("no alert while both feeds talk", || async {
        rig.alert_kinds().await.is_empty().then_some(())
    })
    .await;

    jump.set_silent(true);
    let asked = jump.access_requests();
    let pongs = jump.pongs();
    wait_for("the jump silence alert", || async {
        (rig.alert_kinds().await == ["jump_silent"]).then_some(())
    })
    .await;
    assert!(
        jump.pongs() > pongs,
        "pings are answered, and do not count as statistics"
    );

    // Silent for twice STATUS_HEALTH_LAST_CHECKED: the connection is taken for dead and renewed.
    let feed = wait_for("a renewed jump subscription", || async {
        let feed = rig.feed("jump").await;
        (jump.access_requests() > asked && feed["reconnections"].as_u64() > Some(0)).then_some(feed)
    })
    .await;
    assert!(
        feed["last_error"].as_str().unwrap().contains("no frame for 2s"),
        "{feed}"
    );

    jump.set_silent(false);
    wait_for("the alert to clear", || async {
        rig.alert_kinds().await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn subscriptions_renew_every_reconnect_period_without_errors() {
    let peers = Peers::start().await;
    let rig = peers.serve(&[("STATUS_RECONNECT_RELAY_EVERY", "1s")]).await;
    let relay = &rig.peers.relay;
    wait_for("two renewals", || async { (relay.subscriptions() >= 3).then_some(()) }).await;
    let feed = rig.feed("relay").await;
    assert_eq!(feed["last_error"], Value::Null, "renewal is not a failure: {feed}");
    let claims: StatsClaims = serde_json::from_value(Value::Object(relay.last_claims().unwrap())).unwrap();
    assert_eq!(claims.exp - claims.iat, 1, "tokens live one reconnect period");
    assert!(rig.peers.jump.subscriptions() == 1, "the jump keeps its own period");
}

#[tokio::test]
async fn shutdown_closes_both_subscriptions_promptly() {
    let peers = Peers::start().await;
    let rig = peers.serve(&[]).await;
    let (relay, jump) = (&rig.peers.relay, &rig.peers.jump);
    wait_for("both connected", || async {
        (relay.open_connections() == 1 && jump.open_connections() == 1).then_some(())
    })
    .await;
    let Rig { peers, svc } = rig;
    tokio::time::timeout(Duration::from_secs(5), svc.stop())
        .await
        .expect("the service stops within 5 s");
    let (relay, jump) = (&peers.relay, &peers.jump);
    wait_for("the peers to see both sockets closed", || async {
        (relay.open_connections() == 0 && jump.open_connections() == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_subscription_with_periods_beyond_the_clock_still_runs() {
    let peers = Peers::start().await;
    healthy_pend00(&peers);
    let timing = Timing {
        renew_every: Duration::MAX,
        idle_limit: Duration::MAX,
        backoff_min: BACKOFF_MIN,
        backoff_max: BACKOFF_MAX,
    };
    let (inputs, mut received) = mpsc::channel(8);
    let state = Arc::new(FeedState::default());
    let relay = peers.config(&[]).relay;
    let subscription = Subscription::new(Feed::Relay, relay, timing, inputs, state.clone());
    let stop = CancellationToken::new();
    let task = tokio::spawn(subscription.run(stop.clone()));
    // Several frames: each one moves the idle deadline again.
    for _ in 0..3 {
        let input = timeout(DEADLINE, received.recv()).await.expect("a snapshot in time");
        match input {
            Some(Input::Relay(reports)) => assert_eq!(reports.len(), 3),
            other => panic!("the subscription ended or sent something else: {other:?}"),
        }
    }
    stop.cancel();
    let ended = timeout(DEADLINE, task).await.expect("the subscription stops");
    ended.expect("the subscription did not panic");
    assert_eq!(state.status().last_error, None);
    assert_eq!(peers.relay.subscriptions(), 1);
}
