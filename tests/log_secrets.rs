//! No secret in the log, at any level: the real binary at `trace`, with every
//! peer active (relay and jump feeds, booking rounds and a PUT, a digest sent
//! with an AUTH PLAIN password) and each of them failing once, so the error
//! lines are in too; everything it wrote is searched for every secret, the
//! password in base64 and anything shaped like a token.

mod feed_rig;
mod lab;
mod support;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use lab::{Lab, BOOK_SECRET, FEED_SECRETS, SMTP_PASSWORD, SMTP_USER};
use reqwest::StatusCode;
use serde_json::Value;
use status::sim::smtp::Fault;
use support::binary::{wait_until, Served};

#[test]
fn the_binary_at_trace_level_with_every_peer_active_logs_no_secret() {
    // The peers run on this runtime's workers while the test thread drives the binary.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let lab = runtime.block_on(Lab::start());
    lab.broken_pend00();
    lab.peers.relay.refuse_access(1, StatusCode::UNAUTHORIZED);
    lab.book.control().refuse(true);
    lab.smtp.fail_next([Fault::RejectAfterData]);
    let env = lab.env(&[
        ("STATUS_LOG_LEVEL", "trace"),
        ("STATUS_LOG_FORMAT", "json"),
        ("STATUS_HEALTH_LOG_EVERY", "300ms"),
    ]);
    let mut served = Served::start(&env);
    served.wait_until_serving();
    wait_until("a booking request refused", || {
        let requests = lab.book.control().requests();
        requests.iter().any(|r| r.status == Some(401)).then_some(())
    });
    lab.book.control().refuse(false);
    lab.book.control().fail_next(1);

    wait_until("frames from both feeds", || {
        let (_, body) = served.get("/api/v1/feeds")?;
        let feeds: Value = serde_json::from_str(&body).ok()?;
        let delivered = |f: &str| feeds[f]["frames_received"].as_u64() > Some(0);
        (delivered("relay") && delivered("jump")).then_some(())
    });
    wait_until("ready", || (served.get("/readyz")?.0 == 200).then_some(()));
    lab.peers.relay.close_connections();
    wait_until("the relay back", || {
        let (_, body) = served.get("/api/v1/feeds")?;
        let feeds: Value = serde_json::from_str(&body).ok()?;
        (feeds["relay"]["reconnections"].as_u64() > Some(0) && feeds["relay"]["connected"] == true).then_some(())
    });
    wait_until("r-pend00 unbooked by a PUT", || (lab.unbookings() > 0).then_some(()));
    wait_until("a digest sent after AUTH PLAIN", || {
        let mails = lab.smtp.messages();
        mails.iter().any(|m| m.user.as_deref() == Some(SMTP_USER)).then_some(())
    });
    wait_until("a fleet summary with both feeds connected", || {
        let summary = r#""message":"fleet summary""#;
        let both = [summary, r#""relay":"connected, "#, r#""jump":"connected, "#];
        (served.logged(&both) > 0).then_some(())
    });

    served.sigterm();
    let (exit, out) = served.wait_exit();
    assert_eq!(exit.code(), Some(0), "{out}");
    // The levels really were on: the debug snapshot and trace-level lines are there.
    assert!(out.contains("fleet snapshot"), "no debug output: {out}");
    assert!(out.contains("digest sent") && out.contains("availability of r-pend00 set to false"));
    for failure in [
        "feed attempt failed",
        "refused our token",
        "digest not sent",
        "answered 500",
    ] {
        assert!(out.contains(failure), "no {failure:?} line: {out}");
    }

    let plain = format!("\0{SMTP_USER}\0{SMTP_PASSWORD}");
    let mut secrets = vec![
        BOOK_SECRET.to_string(),
        SMTP_PASSWORD.to_string(),
        BASE64.encode(SMTP_PASSWORD),
        BASE64.encode(plain),
    ];
    secrets.extend(FEED_SECRETS.map(String::from));
    for secret in &secrets {
        assert!(!out.contains(secret.as_str()), "{secret:?} reached the log");
    }
    assert!(!out.contains("eyJ"), "a token reached the log");
    for (i, _) in out.match_indices("code=") {
        assert!(out[i..].starts_with("code=redacted"), "an access code was logged");
    }
}
