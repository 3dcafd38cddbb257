//! Booking reconciliation end to end: the service against a simulated booking
//! API over loopback sockets, relay/jump snapshots fed straight into its
//! input queue, outcomes observed through the simulator's request record and
//! the service's REST API.

mod rig;
#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;

use axum::http::StatusCode;
use futures_util::future::join_all;
use rig::{jump, manifest, relay, stream, Rig, SECRET};
use serde_json::{json, Value};
use status::book::{BookClient, BookError};
use status::config::{Peer, Scheme};
use status::report::Report;
use status::sim::book::{Headers, SimBook};
use status::token::{book_token, verify, BookClaims};
use status::tracker::Input;
use support::eventually;
use support::logs::Logs;

/// A rig with `pend00` healthy and read as available from the booking system.
async fn healthy_pend00(extra: &[(&str, &str)]) -> Rig {
    let rig = Rig::start(
        manifest(&["pend00"]),
        extra,
        vec![Input::Relay(relay(&["pend00"], "150ms")), jump(&["pend00"])],
    )
    .await;
    eventually!(
        "pend00 is healthy and read as available",
        rig.shows("pend00", "available", json!(true)).await && rig.shows("pend00", "healthy", json!(true)).await
    );
    rig
}

/// A broken required stream unbooks once, the value is read back, and recovery books again.
async fn unbooks_once_then_rebooks(broken: Vec<Report>) {
    let rig = healthy_pend00(&[]).await;

    rig.send(Input::Relay(broken)).await;
    eventually!(
        "the booking system holds pend00 unavailable",
        rig.held("r-pend00") == Some(false)
    );
    let requests = rig.requests();
    let put = requests
        .iter()
        .position(|r| r.is("PUT", "r-pend00"))
        .expect("a PUT was recorded");
    let reason = requests[put].param("reason").unwrap_or_default();
    assert!(
        reason.starts_with("status: ") && reason.contains("pend00-st-data"),
        "reason names the service and the stream: {reason}"
    );
    eventually!(
        "the PUT is read back",
        rig.requests()[put + 1..].iter().any(|r| r.is("GET", "r-pend00"))
    );
    eventually!(
        "the REST API shows what was read back",
        rig.shows("pend00", "available", json!(false)).await
    );
    rig.rounds(2).await;
    assert_eq!(
        rig.puts_for("r-pend00", false).len(),
        1,
        "exactly one PUT available=false"
    );

    rig.send(Input::Relay(relay(&["pend00"], "150ms"))).await;
    eventually!("pend00 is bookable again", rig.held("r-pend00") == Some(true));
    rig.rounds(1).await;
    assert_eq!(
        rig.puts_for("r-pend00", true).len(),
        1,
        "exactly one PUT available=true"
    );
    assert_eq!(rig.puts().len(), 2, "no other PUT");
    assert!(rig.puts().iter().all(|r| r.status == Some(204)));
    rig.stop().await;
}

#[tokio::test]
async fn a_stale_required_stream_unbooks_once_and_recovery_rebooks() {
    unbooks_once_then_rebooks(relay(&["pend00"], "1m")).await;
}

#[tokio::test]
async fn a_never_sent_required_stream_unbooks_once_and_recovery_rebooks() {
    unbooks_once_then_rebooks(relay(&["pend00"], "Never")).await;
}

#[tokio::test]
async fn a_vanished_required_stream_unbooks_once_and_recovery_rebooks() {
    // Another experiment keeps the snapshot non-empty: only pend00's stream is gone.
    unbooks_once_then_rebooks(vec![stream("spin01-st-data", "150ms")]).await;
}

#[tokio::test]
async fn a_missing_jump_alone_changes_no_availability() {
    let rig = healthy_pend00(&[]).await;
    rig.send(jump(&[])).await;
    eventually!(
        "pend00 is unhealthy for its jump alone",
        rig.experiment("pend00")
            .await
            .is_some_and(|e| e["jump_ok"] == false && e["healthy"] == false && e["bookable"] == true)
    );
    rig.no_put_after_rounds(2, "a missing jump never changes availability")
        .await;
    assert_eq!(rig.held("r-pend00"), Some(true));
    rig.stop().await;
}

#[tokio::test]
async fn an_experiment_outside_the_manifest_is_never_changed() {
    let mut snapshot = relay(&["pend00"], "150ms");
    snapshot.extend(relay(&["pend01"], "1m"));
    let rig = Rig::start(
        manifest(&["pend00"]),
        &[],
        vec![Input::Relay(snapshot), jump(&["pend00", "pend01"])],
    )
    .await;
    eventually!(
        "pend01 is seen, unhealthy and unmanaged",
        rig.experiment("pend01")
            .await
            .is_some_and(|e| e["healthy"] == false && e["resource_name"].is_null())
    );
    rig.send(Input::Relay(relay(&["pend00"], "150ms"))).await;
    rig.no_put_after_rounds(2, "no PUT at all").await;
    assert!(
        rig.requests()
            .iter()
            .all(|r| !r.resource.as_deref().unwrap_or_default().contains("pend01")),
        "the booking API is never asked about pend01"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_manual_change_in_the_booking_system_is_corrected_at_the_next_round() {
    let rig = healthy_pend00(&[]).await;
    rig.sim
        .control()
        .set_available("r-pend00", false, "maintenance by hand");
    eventually!("the drift is repaired", rig.held("r-pend00") == Some(true));
    let puts = rig.puts_for("r-pend00", true);
    assert_eq!(puts.len(), 1);
    assert!(puts[0].param("reason").unwrap_or_default().starts_with("status: "));
    rig.rounds(1).await;
    assert_eq!(rig.puts().len(), 1, "repaired once, then left alone");
    rig.stop().await;
}

#[tokio::test]
async fn a_change_lands_through_two_500s() {
    // One round only, so the failures hit the change and nothing else.
    let rig = healthy_pend00(&[("STATUS_QUERY_BOOK_EVERY", "1h")]).await;
    rig.sim.control().fail_next(2);
    rig.send(Input::Relay(relay(&["pend00"], "1m"))).await;
    eventually!("the change lands", rig.held("r-pend00") == Some(false));
    eventually!(
        "the change is read back",
        rig.requests().last().is_some_and(|r| r.is("GET", "r-pend00"))
    );
    // With no round running, everything after the PUTs is the read-back.
    let requests = rig.requests();
    let first_put = requests.iter().position(|r| r.method == "PUT").expect("recorded");
    let after: Vec<(&str, Option<u16>)> = requests[first_put..]
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    assert_eq!(
        after,
        [
            ("PUT", Some(500)),
            ("PUT", Some(500)),
            ("PUT", Some(204)),
            ("GET", Some(200))
        ]
    );
    // The client backs off between attempts: 200 ms at least, then twice that
    // (jitter only adds). Lower bounds only: a loaded machine makes gaps longer.
    let puts = &requests[first_put..first_put + 3];
    let gaps = [puts[1].at - puts[0].at, puts[2].at - puts[1].at];
    assert!(gaps[0] >= Duration::from_millis(200), "{gaps:?}");
    assert!(gaps[1] >= Duration::from_millis(400), "{gaps:?}");
    eventually!(
        "the REST API shows the value read back",
        rig.shows("pend00", "available", json!(false)).await
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_hung_booking_api_is_retried_and_delays_nothing_else() {
    let rig = healthy_pend00(&[("STATUS_QUERY_BOOK_EVERY", "1h"), ("STATUS_TIMEOUT_BOOK", "4s")]).await;
    let hang = Duration::from_secs(30);
    rig.sim.control().hang_next(1, hang);
    rig.send(Input::Relay(relay(&["pend00"], "1m"))).await;
    eventually!("the PUT hangs", rig.puts().first().is_some_and(|r| r.status.is_none()));

    // While the booking API hangs, the REST API and the reconciler carry on.
    let (_, took) = rig.experiments_timed().await;
    assert!(took < Duration::from_secs(1), "GET /api/v1/experiments took {took:?}");
    let mut snapshot = relay(&["pend00"], "1m");
    snapshot.extend(relay(&["spin01"], "150ms"));
    let sent = std::time::Instant::now();
    rig.send(Input::Relay(snapshot)).await;
    eventually!("spin01 appears", rig.experiment("spin01").await.is_some());
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "a new snapshot took {:?} to show",
        sent.elapsed()
    );
    assert_eq!(rig.puts().len(), 1, "all this happened before the hung PUT timed out");

    eventually!("the retried change lands", rig.held("r-pend00") == Some(false));
    let puts = rig.puts();
    assert_eq!(puts.len(), 2, "one timed out, one retried");
    assert_eq!(puts[1].status, Some(204));
    rig.stop().await;
}

#[tokio::test]
async fn a_hung_read_delays_no_change_and_a_read_a_change_overtook_is_dropped() {
    let both = ["pend00", "spin00"];
    let rig = Rig::start(
        manifest(&both),
        &[("STATUS_TIMEOUT_BOOK", "60s")],
        vec![Input::Relay(relay(&both, "150ms")), jump(&both)],
    )
    .await;
    eventually!("both read as available", rig.available().await == 2);
    // Hold one round open: spin00's read hangs (until released) after pend00's was answered (available).
    rig.sim
        .control()
        .hang_next_about("r-spin00", 1, Duration::from_secs(3600));
    eventually!("a round is held open by spin00's read", {
        let requests = rig.requests();
        let hung = requests
            .iter()
            .rposition(|r| r.is("GET", "r-spin00") && r.status.is_none());
        hung.is_some_and(|h| {
            let round = requests[..h].iter().rposition(|r| r.is_manifest()).unwrap_or(0);
            requests[round..]
                .iter()
                .any(|r| r.is("GET", "r-pend00") && r.status == Some(200))
        })
    });
    // pend00 breaks now: its change goes ahead of the round.
    rig.send(Input::Relay(vec![
        stream("pend00-st-data", "1m"),
        stream("spin00-st-data", "150ms"),
    ]))
    .await;
    eventually!("the change lands", rig.held("r-pend00") == Some(false));
    eventually!(
        "the change is read back",
        rig.shows("pend00", "available", json!(false)).await
    );
    let hanging = |rig: &Rig| {
        rig.requests()
            .iter()
            .filter(|r| r.is("GET", "r-spin00") && r.status.is_none())
            .count()
    };
    assert_eq!(hanging(&rig), 1, "all this while spin00's read hung");
    // The round ends: its read of pend00 (available, older than the change)
    // must not reach the tracker, or it would ask for a second PUT.
    rig.sim.control().release_hung();
    rig.rounds(2).await;
    assert_eq!(rig.puts_for("r-pend00", false).len(), 1, "exactly one PUT");
    assert_eq!(rig.puts().len(), 1);
    assert!(rig.shows("pend00", "available", json!(false)).await);
    assert_eq!(
        rig.sim.control().max_in_flight_about_one_resource(),
        1,
        "never two requests about one resource at once"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_failed_read_is_retried_before_the_next_round() {
    let sim = SimBook::start(SECRET, "").await.expect("simulator binds");
    sim.control().set_manifest(manifest(&["pend00"]));
    sim.control().fail_next_about("r-pend00", 1, StatusCode::NOT_FOUND);
    // One round an hour: only a retry can read pend00 in time.
    let rig = Rig::start_with(
        sim,
        &[("STATUS_QUERY_BOOK_EVERY", "1h")],
        vec![Input::Relay(relay(&["pend00"], "150ms")), jump(&["pend00"])],
    )
    .await;
    eventually!(
        "pend00 is read after its first read failed",
        rig.shows("pend00", "available", json!(true)).await
    );
    let requests = rig.requests();
    let reads: Vec<Option<u16>> = requests
        .iter()
        .filter(|r| r.is("GET", "r-pend00"))
        .map(|r| r.status)
        .collect();
    assert_eq!(reads, [Some(404), Some(200)]);
    assert_eq!(
        requests.iter().filter(|r| r.is_manifest()).count(),
        1,
        "retried on its own, not by a new round"
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_healthy_rig_first_read_as_unavailable_is_booked() {
    let sim = SimBook::start(SECRET, "").await.expect("simulator binds");
    sim.control().set_manifest(manifest(&["pend00"]));
    sim.control().set_available("r-pend00", false, "left unbookable");
    let rig = Rig::start_with(
        sim,
        &[],
        vec![Input::Relay(relay(&["pend00"], "150ms")), jump(&["pend00"])],
    )
    .await;
    eventually!("pend00 is made bookable", rig.held("r-pend00") == Some(true));
    let requests = rig.requests();
    let put = requests.iter().position(|r| r.is("PUT", "r-pend00")).expect("recorded");
    assert!(
        requests[..put]
            .iter()
            .any(|r| r.is("GET", "r-pend00") && r.status == Some(200)),
        "read before it was changed"
    );
    assert_eq!(requests[put].param("available"), Some("true"));
    rig.rounds(1).await;
    assert_eq!(rig.puts().len(), 1);
    eventually!(
        "the REST API shows it bookable",
        rig.shows("pend00", "available", json!(true)).await
    );
    rig.stop().await;
}

#[tokio::test]
async fn a_refused_token_is_not_retried_and_says_what_to_check() {
    let logs = Logs::capture();
    let rig = healthy_pend00(&[]).await;
    rig.sim.control().refuse(true);
    rig.send(Input::Relay(relay(&["pend00"], "1m"))).await;
    eventually!(
        "the PUT is refused",
        rig.puts().first().is_some_and(|r| r.status == Some(401))
    );
    let manifest_attempts = || rig.requests().iter().filter(|r| r.is_manifest()).count();
    let after = manifest_attempts();
    eventually!("three more manifest attempts", manifest_attempts() >= after + 3);
    assert_eq!(rig.puts().len(), 1, "a 401 is not retried");
    let requests = rig.requests();
    let put = requests.iter().position(|r| r.method == "PUT").expect("recorded");
    assert!(
        !requests[put + 1..].iter().any(|r| r.is("GET", "r-pend00")),
        "nothing to read back after a refusal"
    );
    let lines = logs.lines_with(&["PUT /admin/resources/r-pend00", "STATUS_SECRET_BOOK"]);
    assert_eq!(lines.len(), 1, "one clear line: {lines:#?}");
    assert!(lines[0].contains("STATUS_HOST_BOOK") && lines[0].contains("STATUS_BASEPATH_BOOK"));
    assert!(
        lines[0].contains(rig.sim.base_url()),
        "names the audience: {}",
        lines[0]
    );
    logs.assert_none_of(&[SECRET]);
    rig.stop().await;
}

#[tokio::test]
async fn a_dry_run_sends_no_put() {
    let logs = Logs::capture();
    let rig = healthy_pend00(&[("STATUS_DRY_RUN", "true")]).await;
    rig.send(Input::Relay(relay(&["pend00"], "1m"))).await;
    eventually!(
        "the decision is logged",
        !logs
            .lines_with(&["dry run: would set r-pend00 available=false: status: "])
            .is_empty()
    );
    rig.no_put_after_rounds(2, "no PUT in a dry run").await;
    assert_eq!(rig.held("r-pend00"), Some(true));
    assert!(
        rig.shows("pend00", "available", json!(true)).await,
        "the REST API shows what the booking system holds, not what would be set"
    );
    logs.assert_none_of(&[SECRET]);
    rig.stop().await;
}

#[tokio::test]
async fn a_dry_run_decides_once_until_the_booking_system_is_read_again() {
    let logs = Logs::capture();
    // One round an hour: after it, nothing reads the booking system again.
    let rig = Rig::start(
        manifest(&["dry00"]),
        &[("STATUS_DRY_RUN", "true"), ("STATUS_QUERY_BOOK_EVERY", "1h")],
        vec![Input::Relay(relay(&["dry00"], "150ms")), jump(&["dry00"])],
    )
    .await;
    eventually!(
        "dry00 is read as available",
        rig.shows("dry00", "available", json!(true)).await
    );
    let decided = || logs.lines_with(&["dry run: would set r-dry00 available=false"]).len();
    rig.send(Input::Relay(relay(&["dry00"], "1m"))).await;
    eventually!("the decision is logged", decided() == 1);
    // Every snapshot judges dry00 again, still broken; a marker shows it was taken.
    for k in 0..5 {
        let mut snapshot = relay(&["dry00"], "1m");
        snapshot.extend(relay(&[format!("mark{k}").as_str()], "150ms"));
        rig.send(Input::Relay(snapshot)).await;
    }
    eventually!("the last snapshot is taken", rig.experiment("mark4").await.is_some());
    assert_eq!(decided(), 1, "decided once, not once per snapshot");
    assert!(rig.shows("dry00", "available", json!(true)).await);
    assert!(rig.puts().is_empty());
    rig.stop().await;
}

#[tokio::test]
async fn a_silent_relay_unbooks_nothing() {
    let rig = healthy_pend00(&[("STATUS_HEALTH_LAST_CHECKED", "2s")]).await;
    // No further snapshots: both feeds fall silent.
    eventually!(
        "the relay silence is a system alert",
        rig.has_alert("relay_silent").await
    );
    eventually!(
        "health says pend00 should not be bookable",
        rig.shows("pend00", "bookable", json!(false)).await
    );
    rig.no_put_after_rounds(2, "silence of the observer unbooks nothing")
        .await;
    assert_eq!(rig.held("r-pend00"), Some(true));
    rig.stop().await;
}

const EIGHT: [&str; 8] = [
    "pend00", "pend01", "pend02", "pend03", "pend04", "spin00", "spin01", "spin02",
];
const FIVE: [&str; 5] = ["pend00", "pend01", "pend02", "pend03", "pend04"];

/// Eight managed experiments read as available, then five of them stale in one snapshot.
async fn five_of_eight_fail(extra: &[(&str, &str)]) -> Rig {
    let rig = Rig::start(
        manifest(&EIGHT),
        extra,
        vec![Input::Relay(relay(&EIGHT, "150ms")), jump(&EIGHT)],
    )
    .await;
    eventually!("all eight read as available", rig.available().await == 8);
    let mut snapshot = relay(&FIVE, "1m");
    snapshot.extend(relay(&EIGHT[5..], "150ms"));
    rig.send(Input::Relay(snapshot)).await;
    rig
}

#[tokio::test]
async fn five_of_eight_failing_at_once_are_held_with_an_alert() {
    let rig = five_of_eight_fail(&[]).await;
    eventually!(
        "the mass change is held with an alert",
        rig.has_alert("mass_change_held").await
    );
    rig.no_put_after_rounds(2, "a held mass change sends no PUT").await;
    assert!(EIGHT.iter().all(|s| rig.held(&format!("r-{s}")) == Some(true)));
    rig.stop().await;
}

#[tokio::test]
async fn a_held_mass_change_is_released_when_two_recover() {
    let rig = five_of_eight_fail(&[]).await;
    eventually!(
        "the mass change is held with an alert",
        rig.has_alert("mass_change_held").await
    );
    // pend00 and pend01 recover: three of eight is no mass change.
    let mut snapshot = relay(&FIVE[2..], "1m");
    snapshot.extend(relay(&["pend00", "pend01"], "150ms"));
    snapshot.extend(relay(&EIGHT[5..], "150ms"));
    rig.send(Input::Relay(snapshot)).await;
    eventually!(
        "the three still broken are unbookable",
        FIVE[2..].iter().all(|s| rig.held(&format!("r-{s}")) == Some(false))
    );
    eventually!("the alert is cleared", !rig.has_alert("mass_change_held").await);
    rig.rounds(1).await;
    for s in &FIVE[2..] {
        assert_eq!(rig.puts_for(&format!("r-{s}"), false).len(), 1, "{s}");
    }
    assert_eq!(rig.puts().len(), 3, "the recovered and the healthy are left alone");
    rig.stop().await;
}

#[tokio::test]
async fn with_the_guard_off_all_five_are_unbooked() {
    let rig = five_of_eight_fail(&[("STATUS_MASS_CHANGE_GUARD", "off")]).await;
    eventually!(
        "all five are unbookable",
        FIVE.iter().all(|s| rig.held(&format!("r-{s}")) == Some(false))
    );
    rig.rounds(1).await;
    for s in FIVE {
        assert_eq!(rig.puts_for(&format!("r-{s}"), false).len(), 1, "{s}");
    }
    assert_eq!(rig.puts().len(), 5, "the three healthy ones are left alone");
    assert!(!rig.has_alert("mass_change_held").await);
    rig.stop().await;
}

#[tokio::test]
async fn bad_entries_are_skipped_and_the_last_good_manifest_outlives_failures() {
    let sim = SimBook::start(rig::SECRET, "").await.expect("simulator binds");
    let mut m = manifest(&["pend00"]);
    m.insert("r-bad".into(), json!({"topic_stub": "pend 01", "streams": ["st-data"]}));
    m.insert("r-odd".into(), json!({"topic_stub": "odd00", "streams": "st-data"}));
    sim.control().set_manifest(m);
    let rig = Rig::start_with(
        sim,
        &[],
        vec![Input::Relay(relay(&["pend00"], "150ms")), jump(&["pend00"])],
    )
    .await;
    eventually!(
        "pend00 is managed and read",
        rig.shows("pend00", "available", json!(true)).await
    );
    let (all, _) = rig.experiments_timed().await;
    assert_eq!(all.len(), 1, "bad entries are not managed: {all:#?}");
    assert!(!rig
        .requests()
        .iter()
        .any(|r| r.resource.is_some() && !r.is("GET", "r-pend00")));

    let found = |e: Option<Value>| e.map(|e| e["last_found_in_manifest"].clone());
    let before = found(rig.experiment("pend00").await);
    rig.sim.control().fail_next(usize::MAX);
    let failed = || {
        rig.requests()
            .iter()
            .filter(|r| r.is_manifest() && r.status == Some(500))
            .count()
    };
    eventually!("three manifest fetches fail", failed() >= 3);
    let now = rig.experiment("pend00").await;
    assert_eq!(
        now.as_ref().map(|e| e["resource_name"].clone()),
        Some(json!("r-pend00"))
    );
    assert_eq!(found(now), before, "nothing replaced the last good manifest");

    rig.sim.control().fail_next(0);
    eventually!(
        "the next good manifest is taken",
        found(rig.experiment("pend00").await) != before
    );
    rig.stop().await;
}

#[tokio::test]
async fn the_simulator_checks_tokens_as_the_booking_system_does() {
    let sim = SimBook::start(rig::SECRET, "/tenant/book")
        .await
        .expect("simulator binds");
    sim.control().set_manifest(manifest(&["pend00"]));
    let peer = |host: String, secret: &str| Peer {
        scheme: Scheme::Http,
        host,
        basepath: sim.basepath().to_string(),
        secret: secret.to_string().into(),
    };
    let client = |secret: &str| BookClient::new(peer(sim.host(), secret), Duration::from_secs(5)).expect("client");

    let listed = client(rig::SECRET).manifest().await.expect("our own token is accepted");
    assert!(listed.contains_key("r-pend00"));
    match client("another-secret").manifest().await {
        Err(e @ BookError::Unauthorized { .. }) => assert!(e.to_string().contains("STATUS_SECRET_BOOK")),
        other => panic!("a wrong secret is refused, got {other:?}"),
    }

    let url = format!("{}/api/v1/admin/resources/r-pend00", sim.base_url());
    let now = chrono::Utc::now().timestamp();
    let http = reqwest::Client::new();
    let status = |auth: Option<String>| {
        let mut req = http.get(&url);
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        async move { req.send().await.expect("the simulator answers").status().as_u16() }
    };
    let good = book_token(&peer(sim.host(), rig::SECRET), now).expect("token");
    let elsewhere = book_token(&peer("127.0.0.1:1".into(), rig::SECRET), now).expect("token");
    let expired = book_token(&peer(sim.host(), rig::SECRET), now - 3600).expect("token");
    let mut claims: BookClaims = verify(&good, rig::SECRET.as_bytes(), sim.base_url()).expect("our own token");
    claims.aud.push("https://elsewhere.example.org".into());
    let two_audiences = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(rig::SECRET.as_bytes()),
    )
    .expect("signed");
    assert_eq!(status(Some(good.clone())).await, 200, "the bare token");
    assert_eq!(status(Some(format!("Bearer {good}"))).await, 401, "a Bearer prefix");
    assert_eq!(status(None).await, 401, "no token");
    assert_eq!(status(Some(elsewhere)).await, 401, "another audience");
    assert_eq!(status(Some(expired)).await, 401, "an expired token");
    assert_eq!(status(Some(two_audiences)).await, 401, "aud of more than one element");
    assert_eq!(sim.control().requests().len(), 8, "every request is recorded");
    assert_eq!(sim.control().headers().len(), 8, "with its headers");
}

/// The `Authorization` header of a recorded request.
fn authorization(headers: &Headers) -> &str {
    headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .expect("an Authorization header")
}

#[tokio::test]
async fn the_booking_token_goes_bare_in_the_authorization_header() {
    let sim = SimBook::start(rig::SECRET, "/tenant/book")
        .await
        .expect("simulator binds");
    sim.control().set_manifest(manifest(&["pend00"]));
    let peer = Peer {
        scheme: Scheme::Http,
        host: sim.host(),
        basepath: sim.basepath().to_string(),
        secret: rig::SECRET.to_string().into(),
    };
    let client = BookClient::new(peer, Duration::from_secs(5)).expect("client");
    client.manifest().await.expect("manifest");
    client.read("r-pend00").await.expect("read");
    client.set("r-pend00", false, "status: test").await.expect("set");
    let headers = sim.control().headers();
    assert_eq!(headers.len(), 3);
    for h in &headers {
        let value = authorization(h);
        assert_eq!(value.split('.').count(), 3, "a bare JWT, nothing before it");
        let claims: BookClaims = verify(value, rig::SECRET.as_bytes(), sim.base_url()).expect("a valid token");
        assert_eq!(claims.aud, [sim.base_url()]);
    }
}

#[tokio::test]
async fn at_most_eight_requests_are_in_flight_and_queued_ones_carry_fresh_tokens() {
    let sim = SimBook::start(rig::SECRET, "").await.expect("simulator binds");
    let names: Vec<String> = (0..20).map(|k| format!("rig{k:02}")).collect();
    let stubs: Vec<&str> = names.iter().map(String::as_str).collect();
    sim.control().set_manifest(manifest(&stubs));
    let peer = Peer {
        scheme: Scheme::Http,
        host: sim.host(),
        basepath: String::new(),
        secret: rig::SECRET.to_string().into(),
    };
    let client = BookClient::new(peer, Duration::from_secs(3600)).expect("client");
    // The first eight hang until released; the other twelve must wait for a slot.
    sim.control().hang_next(8, Duration::from_secs(3600));
    let resources: Vec<String> = names.iter().map(|n| format!("r-{n}")).collect();
    let reads = tokio::spawn(async move { join_all(resources.iter().map(|r| client.read(r))).await });
    eventually!("eight reads hang", sim.control().in_flight() == 8);
    let queued_since = chrono::Utc::now().timestamp();
    // Wall-clock seconds must pass for a token's `iat` to tell when it was minted.
    eventually!("two seconds pass", chrono::Utc::now().timestamp() >= queued_since + 2);
    assert_eq!(sim.control().requests().len(), 8, "the rest wait in the client");
    sim.control().release_hung();
    let reads = tokio::time::timeout(support::DEADLINE, reads)
        .await
        .expect("the reads end")
        .expect("the reads run");
    assert!(reads.iter().all(|r| matches!(r, Ok(true))), "{reads:?}");
    assert_eq!(sim.control().max_in_flight(), 8);
    let headers = sim.control().headers();
    assert_eq!(headers.len(), 20);
    for h in &headers[8..] {
        let claims: BookClaims = verify(authorization(h), rig::SECRET.as_bytes(), sim.base_url()).expect("valid");
        assert!(
            claims.iat >= queued_since + 2,
            "minted when the request got its slot, not when it was queued: iat {} vs queued at {queued_since}",
            claims.iat
        );
    }
}

#[tokio::test]
async fn a_bounded_request_log_is_read_with_a_cursor() {
    let sim = SimBook::start(rig::SECRET, "").await.expect("simulator binds");
    sim.control().set_manifest(manifest(&["pend00"]));
    sim.control().keep_requests(3);
    let peer = Peer {
        scheme: Scheme::Http,
        host: sim.host(),
        basepath: String::new(),
        secret: rig::SECRET.to_string().into(),
    };
    let client = BookClient::new(peer, Duration::from_secs(5)).expect("client");
    client.manifest().await.expect("manifest");
    for _ in 0..4 {
        client.read("r-pend00").await.expect("read");
    }

    let kept = sim.control().requests();
    assert_eq!(kept.len(), 3, "only the latest are kept");
    assert!(kept.iter().all(|r| r.is("GET", "r-pend00") && r.status == Some(200)));
    let (first, all) = sim.control().requests_from(0);
    assert_eq!((first, all.len()), (2, 3), "the cursor skips what was let go");
    let (first, rest) = sim.control().requests_from(4);
    assert_eq!((first, rest.len()), (4, 1));
    assert_eq!(sim.control().requests_from(5).1.len(), 0, "nothing new yet");
}
