//! The served API matches `api/openapi.yaml`: every documented path answers,
//! with the documented status and a body valid against its schema (or of the
//! documented media type, for the metrics).

mod support;

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use status::report::Report;
use status::tracker::{Input, Resource};
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
    let validator = jsonschema::draft202012::new(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "GET {path} ({status}) does not match the spec: {errors:#?}\nbody: {body:#}"
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
    wait_for("two experiments, each with an event", || async {
        let (_, body) = svc.get_json("/api/v1/experiments").await;
        let all = body.as_array()?;
        (all.len() == 2 && all.iter().all(|e| e["health_events"].as_u64() >= Some(1))).then_some(())
    })
    .await;

    let paths: Vec<String> = spec["paths"].as_object().expect("paths").keys().cloned().collect();
    assert!(paths.len() >= 4, "{paths:?}");
    for path in &paths {
        let concrete = path.replace("{name}", "pend00");
        // No feed is connected here, so the service is not ready: its 503 is documented too.
        let expected = if path == "/readyz" { "503" } else { "200" };
        let response = svc.http.get(svc.url(&concrete)).send().await.expect("GET succeeds");
        assert_eq!(response.status().as_str(), expected, "GET {concrete}");
        let content = spec["paths"][path]["get"]["responses"][expected]["content"]
            .as_object()
            .expect("documented content");
        if content.contains_key("application/json") {
            let body: Value = response.json().await.expect("JSON body");
            assert_valid(&spec, path, expected, &body);
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
async fn an_empty_service_answers_empty_lists_and_json_404s() {
    let svc = Running::start(env_with(&[])).await;
    assert_eq!(svc.get_json("/api/v1/experiments").await, (200, json!([])));
    assert_eq!(svc.get_json("/api/v1/alerts").await, (200, json!([])));
    assert_eq!(svc.get_json("/healthz").await, (200, json!({"status": "ok"})));
    let (status, body) = svc.get_json("/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert!(body["code"].is_string() && body["message"].is_string());
    svc.stop().await;
}
