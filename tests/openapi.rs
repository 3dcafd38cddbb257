//! The served API matches `api/openapi.yaml`: every documented path answers,
//! with the documented status and a body valid against its schema (or of the
//! documented media type, for the metrics). Formats (`date-time`) are checked,
//! and the main schemas allow no other properties, so a leaked field fails.

mod feed_rig;
mod lab;
mod support;

use lab::Lab;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;
use serde_json::{json, Value};
use status::report::Report;
use status::tracker::{Input, Observed, Resource};
use support::{env_with, wait_for, Running};

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.yaml")).expect("spec exists");
    serde_norway::from_str(&text).expect("spec is YAML")
}

/// The response schema of `path` for `status`, with the spec's components alongside for `$ref`s.
fn schema_for(spec: &Value, path: &str, status: &str) -> Value {
    let op = &spec["paths"][path]["get"];
    let mut schema = op["responses"][status]["content"]["application/json"]["schema"].clone();
    assert!(schema.is_object(), "{path} documents a {status} JSON schema");
    schema["components"] = spec["components"].clone();
    schema
}

fn assert_valid(spec: &Value, path: &str, status: &str, body: &Value) {
    let schema = schema_for(spec, path, status);
    assert_valid_against(&schema, body, &format!("GET {path} ({status})"));
}

/// Draft 2020-12 makes `format` an annotation only: checking it is asked for.
fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("schema compiles")
}

fn assert_valid_against(schema: &Value, body: &Value, what: &str) {
    let validator = validator(schema);
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match the spec: {errors:#?}\nbody: {body:#}"
    );
}

/// The spec's `Error` schema, for error answers of any path.
fn error_schema(spec: &Value) -> Value {
    schema_for(spec, "/api/v1/experiments/events/{name}", "404")
}

/// `GET path` of every documented path, validated against the spec; the bodies by path.
async fn check_every_path(spec: &Value, svc: &Running, readyz: &str) -> Vec<(String, Value)> {
    let paths: Vec<String> = spec["paths"].as_object().expect("paths").keys().cloned().collect();
    assert!(paths.len() >= 4, "{paths:?}");
    let mut bodies = Vec::new();
    for path in &paths {
        let concrete = path.replace("{name}", "pend00");
        let expected = if path == "/readyz" { readyz } else { "200" };
        let response = svc.http.get(svc.url(&concrete)).send().await.expect("GET succeeds");
        assert_eq!(response.status().as_str(), expected, "GET {concrete}");
        let content = spec["paths"][path]["get"]["responses"][expected]["content"]
            .as_object()
            .expect("documented content");
        if content.contains_key("application/json") {
            let body: Value = response.json().await.expect("JSON body");
            assert_valid(spec, path, expected, &body);
            bodies.push((path.clone(), body));
        } else {
            let media = content.keys().next().expect("one media type");
            let served = response.headers()[CONTENT_TYPE].to_str().expect("ASCII").to_string();
            assert!(
                served.starts_with(media.as_str()),
                "GET {concrete}: {served}, documented {media}"
            );
            assert!(!response.text().await.expect("a body").is_empty());
        }
    }
    bodies
}

#[test]
fn the_checks_are_strict_about_formats_and_unknown_fields() {
    let spec = spec();
    let mut time = json!({"$ref": "#/components/schemas/NullableTime"});
    time["components"] = spec["components"].clone();
    assert!(validator(&time).is_valid(&json!("2026-11-21T10:00:00.123Z")));
    assert!(validator(&time).is_valid(&Value::Null));
    assert!(!validator(&time).is_valid(&json!("yesterday")), "date-time is checked");
    let error = error_schema(&spec);
    assert!(validator(&error).is_valid(&json!({"code": "x", "message": "y"})));
    assert!(
        !validator(&error).is_valid(&json!({"code": "x", "message": "y", "detail": "leak"})),
        "an undocumented field fails"
    );
}

fn report(topic: &str, scope: &str, last: &str) -> Report {
    serde_json::from_value(json!({
        "topic": topic, "canRead": true, "canWrite": true,
        "connected": "2026-11-21T10:00:00.123456789Z", "expiresAt": "2026-11-21T11:00:00Z",
        "remoteAddr": "203.0.113.7", "userAgent": "test", "scopes": [scope],
        "stats": {"tx": {"last": last, "size": 5, "fps": 20.5}, "rx": {"last": "Never", "size": 0, "fps": 0}}
    }))
    .expect("a valid report")
}

#[tokio::test]
async fn every_documented_path_answers_as_documented() {
    let spec = spec();
    let svc = Running::start(env_with(&[("STATUS_HEALTH_STARTUP", "0s")])).await;
    svc.send(Input::Manifest(vec![Resource {
        name: "r-pend00".into(),
        topic: "pend00".into(),
        required: vec!["pend00-st-data".into(), "pend00-st-video".into()],
    }]))
    .await;
    svc.send(Input::Jump(vec![report("spin00", "host", "Never")])).await;
    svc.send(Input::Relay(vec![
        report("pend00-st-data", "expt", "1.5s"),
        report("spin00-st-video", "expt", "Never"),
    ]))
    .await;
    svc.send(Input::Availability(vec![Observed {
        resource: "r-pend00".into(),
        available: false,
    }]))
    .await;
    wait_for(
        "two experiments, each with an event, pend00's availability read",
        || async {
            let (_, body) = svc.get_json("/api/v1/experiments").await;
            let all = body.as_array()?;
            let events = all.len() == 2 && all.iter().all(|e| e["health_events"].as_u64() >= Some(1));
            (events && all.iter().any(|e| e["available"] == false)).then_some(())
        },
    )
    .await;

    // No feed is connected here, so the service is not ready: its 503 is documented too.
    let bodies = check_every_path(&spec, &svc, "503").await;
    assert_eq!(bodies.len(), 6, "every JSON path was read");

    // Both null and non-null jump reports, nullable times, and a 404.
    let (_, all) = svc.get_json("/api/v1/experiments").await;
    let by_topic = |t: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|e| e["topic_name"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(by_topic("pend00")["jump_report"], Value::Null);
    assert_eq!(by_topic("pend00")["available"], false);
    assert_eq!(by_topic("spin00")["available"], Value::Null);
    // Times never set are null, not a zero date.
    assert_eq!(by_topic("pend00")["last_checked_jump"], Value::Null);
    assert_eq!(by_topic("spin00")["last_found_in_manifest"], Value::Null);
    assert!(by_topic("pend00")["last_found_in_manifest"].is_string());
    let (_, feeds) = svc.get_json("/api/v1/feeds").await;
    for time in ["connected_since", "last_frame_at"] {
        assert_eq!(feeds["relay"][time], Value::Null, "{time}: {feeds:#}");
    }
    assert_eq!(by_topic("spin00")["jump_report"]["topic"], "spin00");
    assert_eq!(by_topic("spin00")["resource_name"], Value::Null);
    assert_eq!(
        by_topic("pend00")["stream_reports"]["pend00-st-data"]["stats"]["tx"]["last"],
        "1.5s"
    );
    let (status, body) = svc.get_json("/api/v1/experiments/events/nope").await;
    assert_eq!(status, 404);
    assert_valid(&spec, "/api/v1/experiments/events/{name}", "404", &body);
    svc.stop().await;
}

#[tokio::test]
async fn an_empty_service_answers_empty_lists_and_json_errors() {
    let spec = spec();
    let error = error_schema(&spec);
    let svc = Running::start(env_with(&[])).await;
    assert_eq!(svc.get_json("/api/v1/experiments").await, (200, json!([])));
    assert_eq!(svc.get_json("/api/v1/alerts").await, (200, json!([])));
    assert_eq!(svc.get_json("/healthz").await, (200, json!({"status": "ok"})));
    let (status, body) = svc.get_json("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_valid_against(&error, &body, "an unknown route's 404");
    assert_eq!(body["code"], "not_found");

    // A name that is not UTF-8 once decoded: JSON, not axum's plain-text rejection.
    let response = svc
        .http
        .get(svc.url("/api/v1/experiments/events/%FF"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    assert!(response.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ASCII")
        .starts_with("application/json"));
    let body: Value = response.json().await.expect("a JSON body");
    assert_valid(&spec, "/api/v1/experiments/events/{name}", "400", &body);
    assert_eq!(body["code"], "bad_request");

    // A documented path with another method: 405, JSON, and what is allowed.
    for path in ["/healthz", "/api/v1/experiments/events/pend00", "/"] {
        let response = svc
            .http
            .request(Method::POST, svc.url(path))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 405, "POST {path}");
        let allow = response.headers()["allow"].to_str().expect("ASCII").to_string();
        assert!(allow.contains("GET"), "POST {path}: Allow: {allow}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_valid_against(&error, &body, &format!("POST {path}"));
        assert_eq!(body["code"], "method_not_allowed");
    }
    svc.stop().await;
}

#[tokio::test]
async fn a_live_service_answers_as_documented_when_ready_and_alerting() {
    let spec = spec();
    let lab = Lab::start().await;
    lab.broken_pend00();
    let svc = Running::start(lab.env(&[])).await;
    wait_for("ready, with pend00's availability read", || async {
        let (ready, _) = svc.get_json("/readyz").await;
        let (_, all) = svc.get_json("/api/v1/experiments").await;
        let read = all.as_array()?.iter().any(|e| e["available"].is_boolean());
        (ready == 200 && read).then_some(())
    })
    .await;
    let bodies = check_every_path(&spec, &svc, "200").await;
    let body = |path: &str| {
        bodies
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .expect(path)
    };
    assert_eq!(body("/readyz"), json!({"ready": true, "missing": []}));
    let feeds = body("/api/v1/feeds");
    assert!(feeds["relay"]["last_frame_at"].is_string(), "{feeds:#}");
    let pend00 = body("/api/v1/experiments")[0].clone();
    assert_eq!(pend00["jump_report"]["topic"], "pend00", "{pend00:#}");
    assert!(
        pend00["stream_reports"]["pend00-st-data"]["connected"].is_string(),
        "{pend00:#}"
    );
    assert!(pend00["last_checked_jump"].is_string(), "{pend00:#}");

    // A silent relay raises a system alert: an item of /api/v1/alerts.
    lab.peers.relay.set_silent(true);
    let alerts = wait_for("the relay-silent alert", || async {
        let (_, alerts) = svc.get_json("/api/v1/alerts").await;
        let found = alerts.as_array()?.iter().any(|a| a["kind"] == "relay_silent");
        found.then_some(alerts)
    })
    .await;
    assert_valid(&spec, "/api/v1/alerts", "200", &alerts);
    svc.stop().await;
}
