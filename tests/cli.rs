//! The real `status` binary: configuration errors exit 2 with one line,
//! `check` never shows a secret, `serve` answers and exits 0 on SIGTERM.

mod support;

use std::process::Output;

use support::base_env;
use support::binary::{status, Served};

fn run(env: &[(String, String)], args: &[&str]) -> Output {
    status(env, args).output().expect("the binary runs")
}

fn with(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    support::env_with(extra)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_with_a_bad_duration_exits_2_naming_the_variable() {
    let out = run(&with(&[("STATUS_HEALTH_STARTUP", "abc")]), &["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("STATUS_HEALTH_STARTUP") && err.contains("abc"), "{err}");
}

#[test]
fn serve_refuses_a_missing_secret_with_exit_2() {
    let env: Vec<_> = base_env()
        .into_iter()
        .filter(|(k, _)| k != "STATUS_SECRET_RELAY")
        .collect();
    let out = run(&env, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("STATUS_SECRET_RELAY is not set"), "{err}");
}

#[test]
fn check_prints_effective_values_and_hides_secrets() {
    let out = run(
        &with(&[("STATUS_HEALTH_STARTUPP", "2m"), ("STATUS_RECONNECT_RELAY_EVERY", "1d")]),
        &["check"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("STATUS_SECRET_BOOK=<set>"), "{stdout}");
    assert!(stdout.contains("STATUS_RECONNECT_RELAY_EVERY=1day"), "{stdout}");
    assert!(stdout.contains("STATUS_PORT_SERVE=3007"));
    assert!(stdout.contains("STATUS_EMAIL=off"));
    let all = stdout + &text(&out.stderr);
    assert!(!all.contains("test-secret"), "a secret leaked: {all}");
    assert!(
        text(&out.stderr).contains("STATUS_HEALTH_STARTUPP"),
        "typo warned about"
    );
}

#[test]
fn version_and_help() {
    let out = run(&[], &["version"]);
    assert!(text(&out.stdout).starts_with("status "));
    for args in [&["--help"][..], &["serve", "--help"], &["check", "--help"]] {
        let out = run(&[], args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn an_unopenable_log_file_refuses_to_start() {
    let out = run(&with(&[("STATUS_LOG_FILE", "/nonexistent-dir/status.log")]), &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("STATUS_LOG_FILE"));
}

#[test]
fn serve_answers_logs_a_summary_and_exits_0_on_sigterm() {
    let env = with(&[
        ("STATUS_LOG_LEVEL", "trace"),
        ("STATUS_LOG_FORMAT", "text"),
        ("STATUS_HEALTH_LOG_EVERY", "200ms"),
    ]);
    let mut served = Served::start(&env);
    assert_eq!(served.wait_until_serving().0, 200);
    let (code, body) = served.get("/api/v1/experiments").expect("experiments answer");
    assert_eq!((code, body.trim()), (200, "[]"));
    support::binary::wait_until("a fleet summary in the log", || {
        (served.logged(&["fleet summary"]) > 0).then_some(())
    });

    served.sigterm();
    let (exit, out) = served.wait_exit();
    assert_eq!(exit.code(), Some(0));
    assert!(out.contains("SIGTERM"), "{out}");
    assert!(!out.contains("test-secret"), "a secret reached the log: {out}");
}
