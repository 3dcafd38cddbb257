//! `status demo` through its library entry point: the simulated lab, the
//! real service and the narrator wired together on loopback; an induced
//! failure travels to the REST API, the booking system and the live log; a
//! busy port falls back; bad options are refused; stop is clean.

mod support;

use std::net::SocketAddr;

use serde_json::Value;
use status::demo::{Demo, DemoError, Kind, Line, Options};
use support::{json_array, stop_demo, wait_for, DEADLINE};
use tokio::sync::mpsc;

fn loopback(experiments: usize) -> Options {
    Options {
        experiments,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Options::default()
    }
}

async fn experiments(demo: &Demo) -> Option<Vec<Value>> {
    json_array(&demo.url("/api/v1/experiments")).await
}

fn issues(e: &Value) -> Vec<String> {
    let list = e["issues"].as_array().cloned().unwrap_or_default();
    list.iter().filter_map(|i| i.as_str().map(String::from)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_induced_failure_reaches_the_api_the_booking_system_and_the_live_log() {
    let mut demo = Demo::start(loopback(5)).await.expect("the demo starts");
    let mut log = demo.take_log().expect("the log is there to take");
    assert!(demo.take_log().is_none(), "taken once");
    let topics = demo.topics();
    assert_eq!(topics.len(), 5);

    // A rig that is judged healthy and bookable, so the failure is the one we cause.
    let victim = wait_for("a judged, healthy, bookable experiment", || async {
        let all = experiments(&demo).await?;
        let judged = all.len() == topics.len() && all.iter().all(|e| e["in_startup_grace"] == false);
        let healthy = all.iter().find(|e| e["healthy"] == true && e["available"] == true)?;
        judged.then(|| healthy["topic_name"].as_str().map(String::from))?
    })
    .await;
    demo.induce_failure(&victim).expect("the victim is in the lab");

    let missing_data = format!("missing required {victim}-st-data");
    let view = wait_for("the victim is unhealthy and unbooked", || async {
        let all = experiments(&demo).await?;
        let e = all.into_iter().find(|e| e["topic_name"] == victim.as_str())?;
        (e["healthy"] == false && e["available"] == false).then_some(e)
    })
    .await;
    let said = issues(&view);
    assert!(said.contains(&"missing jump".to_string()), "{said:?}");
    assert!(said.contains(&missing_data), "{said:?}");

    let mut lines: Vec<Line> = Vec::new();
    let told =
        |lines: &[Line], kind: Kind, needle: &str| lines.iter().any(|l| l.kind == kind && l.text.contains(needle));
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !(told(&lines, Kind::Lab, &format!("{victim}: failure induced"))
        && told(&lines, Kind::Health, &missing_data)
        && told(&lines, Kind::Booking, &format!("r-{victim} → not bookable")))
    {
        let line = tokio::time::timeout_at(deadline, log.recv())
            .await
            .unwrap_or_else(|_| panic!("the live log did not tell the failure: {lines:#?}"));
        lines.push(line.expect("the log stays open while the demo runs"));
    }
    assert!(lines.windows(2).all(|w| w[0].at <= w[1].at), "lines come in time order");

    assert!(matches!(
        demo.induce_failure("no-such-rig"),
        Err(DemoError::UnknownExperiment(_))
    ));
    stop_demo(demo).await;
}

/// Waits for the next line of `kind` that contains `needle`, keeping every line read in `seen`.
async fn next_line(log: &mut mpsc::Receiver<Line>, seen: &mut Vec<Line>, kind: Kind, needle: &str) -> Line {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let line = tokio::time::timeout_at(deadline, log.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind:?} line with {needle:?} in: {seen:#?}"))
            .expect("the log stays open while the demo runs");
        seen.push(line.clone());
        if line.kind == kind && line.text.contains(needle) {
            return line;
        }
    }
}

/// A digest still held back by the minimum interval when the demo stops is
/// sent by the service on its way out, caught by the sink and told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_delivers_and_tells_the_last_digest() {
    let mut demo = Demo::start(loopback(3)).await.expect("the demo starts");
    let mut log = demo.take_log().expect("the log");
    let mut seen = Vec::new();
    // The script breaks a rig at once; its digest opens the minimum interval (10 s).
    next_line(&mut log, &mut seen, Kind::Email, "Lab status:").await;
    let victim = demo
        .topics()
        .into_iter()
        .find(|t| {
            !seen
                .iter()
                .any(|l| l.kind == Kind::Email && l.text.contains(t.as_str()))
        })
        .expect("a rig the first digest did not mention");
    demo.induce_failure(&victim).expect("the victim is in the lab");
    next_line(&mut log, &mut seen, Kind::Health, &format!("{victim} unhealthy")).await;

    stop_demo(demo).await;
    let mut after = Vec::new();
    while let Ok(line) = log.try_recv() {
        after.push(line);
    }
    assert!(
        after.iter().any(|l| l.kind == Kind::Email && l.text.contains(&victim)),
        "the last digest names {victim}: {after:#?}"
    );
}

#[tokio::test]
async fn a_busy_port_falls_back_to_an_ephemeral_one_and_says_so() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let taken = busy.local_addr().expect("bound");
    let demo = Demo::start(Options {
        experiments: 1,
        listen: taken,
        ..Options::default()
    })
    .await
    .expect("the demo starts anyway");
    assert_eq!(demo.addr().ip(), taken.ip());
    assert_ne!(demo.addr().port(), taken.port());
    let note = demo.listen_fallback().expect("the fallback is reported");
    assert!(note.contains(&taken.to_string()), "{note}");
    assert!(demo.welcome().contains(note), "and shown in the welcome text");
    assert!(demo.welcome().contains(&demo.dashboard_url()));
    let health = reqwest::get(demo.url("/healthz")).await.expect("the service answers");
    assert_eq!(health.status(), 200);
    stop_demo(demo).await;
}

#[tokio::test]
async fn the_number_of_experiments_is_bounded() {
    for n in [0, 501] {
        match Demo::start(loopback(n)).await {
            Err(DemoError::Experiments(got)) => assert_eq!(got, n),
            Err(e) => panic!("{n}: wrong error {e}"),
            Ok(_) => panic!("{n} experiments must be refused"),
        }
    }
}

#[tokio::test]
async fn dropping_a_demo_stops_its_service() {
    let demo = Demo::start(loopback(1)).await.expect("the demo starts");
    let addr = demo.addr();
    drop(demo);
    wait_for("the port to close", || async {
        let refused = tokio::net::TcpStream::connect(addr).await.is_err();
        refused.then_some(())
    })
    .await;
}
