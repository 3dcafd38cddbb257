//! The real `status` binary: configuration errors exit 2 with one line,
//! `check` never shows a secret, `serve` answers and exits 0 on SIGTERM,
//! `demo` needs no configuration, narrates and stops cleanly.

mod support;

use std::process::Output;
use std::time::Duration;

use support::binary::{get, status, wait_until, Served};
use support::{base_env, DEADLINE};

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
    assert!(stdout.contains("STATUS_RECONNECT_RELAY_EVERY=1d\n"), "{stdout}");
    assert!(stdout.contains("STATUS_PORT_SERVE=3007"));
    assert!(stdout.contains("STATUS_EMAIL=off"));
    let all = stdout + &text(&out.stderr);
    assert!(!all.contains("test-secret"), "a secret leaked: {all}");
    assert!(
        text(&out.stderr).contains("STATUS_HEALTH_STARTUPP"),
        "typo warned about"
    );
}

/// Email on, with a password: `check` shows it only as `<set>`, wherever it looks.
fn email_on(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars = vec![
        ("STATUS_EMAIL_HOST", "smtp.example.org"),
        ("STATUS_EMAIL_FROM", "Lab Status <status@example.org>"),
        ("STATUS_EMAIL_TO", "maintainers@example.org"),
        ("STATUS_EMAIL_AUTH_TYPE", "login"),
        ("STATUS_EMAIL_PASSWORD", "smtp-pa55word"),
    ];
    vars.extend_from_slice(extra);
    with(&vars)
}

#[test]
fn check_with_email_on_shows_the_password_only_as_set() {
    let out = run(&email_on(&[("STATUS_EMAIL_TLS", "tls")]), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "STATUS_EMAIL_PASSWORD=<set>\n",
        "STATUS_EMAIL_HOST=smtp.example.org\n",
        // The bare address logs in, not the display name with it.
        "STATUS_EMAIL_USER=status@example.org\n",
        // Implicit TLS, no port given: its own port.
        "STATUS_EMAIL_TLS=tls\n",
        "STATUS_EMAIL_PORT=465\n",
        "STATUS_EMAIL_MIN_INTERVAL=1m\n",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
    let all = stdout + &text(&out.stderr);
    assert!(!all.contains("smtp-pa55word"), "the password leaked: {all}");
}

#[test]
fn check_prints_go_durations_in_the_compact_form() {
    let out = run(
        &with(&[
            ("STATUS_HEALTH_STARTUP", "1h0m0s"),
            ("STATUS_QUERY_BOOK_EVERY", "1.5h"),
            ("STATUS_HEALTH_LAST_CHECKED", "1d12h"),
            ("STATUS_TIMEOUT_BOOK", "+10s"),
            ("STATUS_HEALTH_LAST_ACTIVE", ".5s"),
        ]),
        &["check"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for line in [
        "STATUS_HEALTH_STARTUP=1h\n",
        "STATUS_QUERY_BOOK_EVERY=1h30m\n",
        "STATUS_HEALTH_LAST_CHECKED=1d12h\n",
        "STATUS_TIMEOUT_BOOK=10s\n",
        "STATUS_HEALTH_LAST_ACTIVE=500ms\n",
        "STATUS_HEALTH_LOG_EVERY=1h\n",
    ] {
        assert!(stdout.contains(line), "{line:?} in {stdout}");
    }
}

#[test]
fn out_of_range_durations_exit_2_naming_variable_value_and_range() {
    for (var, value, range) in [
        ("STATUS_HEALTH_LAST_CHECKED", "1000000y", "from 1s to 365d"),
        ("STATUS_HEALTH_LAST_CHECKED", "100000000h", "from 1s to 365d"),
        ("STATUS_HEALTH_LOG_EVERY", "500000000000y", "from 100ms to 365d"),
        ("STATUS_HEALTH_LOG_EVERY", "1ns", "from 100ms to 365d"),
        ("STATUS_RECONNECT_RELAY_EVERY", "1ms", "from 1s to 365d"),
        ("STATUS_HEALTH_STARTUP", "-1m", "from 0s to 365d"),
        ("STATUS_QUERY_BOOK_EVERY", "1M", "from 1s to 365d"),
    ] {
        for command in ["check", "serve"] {
            let out = run(&with(&[(var, value)]), &[command]);
            assert_eq!(out.status.code(), Some(2), "{command} {var}={value}");
            let err = text(&out.stderr);
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(
                err.contains(&format!("{var}=\"{value}\"")) && err.contains(range),
                "{err}"
            );
        }
    }
}

#[test]
fn set_email_values_are_checked_while_email_is_off_and_placeholders_refused() {
    for (vars, needle) in [
        (&[("STATUS_EMAIL_PORT", "abc")][..], "STATUS_EMAIL_PORT=\"abc\""),
        (&[("STATUS_EMAIL_HOST", "smtp.example.org:587")], "STATUS_EMAIL_PORT)"),
        (&[("STATUS_SECRET_JUMP", "replace-me")], "the real secret"),
    ] {
        let out = run(&with(vars), &["check"]);
        assert_eq!(out.status.code(), Some(2), "{vars:?}");
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn a_password_without_authentication_is_one_warning() {
    let out = run(&email_on(&[("STATUS_EMAIL_AUTH_TYPE", "none")]), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("warning") && l.contains("STATUS_EMAIL_PASSWORD"))
            .count(),
        1,
        "{err}"
    );
    assert!(!err.contains("smtp-pa55word") && !text(&out.stdout).contains("smtp-pa55word"));
}

/// The startup lines an operator needs when something is off on purpose or for compatibility.
#[test]
fn serve_says_email_is_off_and_that_profile_serves_nothing() {
    let env = with(&[("STATUS_LOG_FORMAT", "text"), ("STATUS_PROFILE", "true")]);
    let mut served = Served::start(&env);
    served.wait_until_serving();
    let email_off = "email is off: STATUS_EMAIL_HOST, STATUS_EMAIL_FROM, STATUS_EMAIL_TO not set";
    let profile = "STATUS_PROFILE=true is accepted for compatibility but serves no profiler";
    wait_until("both startup warnings", || {
        (served.logged(&["WARN", email_off]) > 0 && served.logged(&["WARN", profile]) > 0).then_some(())
    });
    served.sigterm();
    let (exit, out) = served.wait_exit();
    assert_eq!(exit.code(), Some(0), "{out}");
    assert_eq!(out.matches(email_off).count(), 1, "once: {out}");
    assert_eq!(out.matches(profile).count(), 1, "once: {out}");
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

/// `status demo` with `args` and no environment at all.
fn demo(args: &[&str]) -> Served {
    Served::spawn(status(&[], &[&["demo"], args].concat()), 0)
}

/// Without any STATUS_ variable, a short demo shows health changes, an availability
/// change and a digest (the script breaks a rig at once), then exits 0 by itself.
#[test]
fn demo_needs_no_configuration_narrates_and_exits_0_when_its_time_is_up() {
    let child = demo(&["--experiments", "4", "--for", "20s", "--listen", "127.0.0.1:0"]);
    let (exit, out, err) = child.wait_exit_within(Duration::from_secs(20) + DEADLINE);
    assert_eq!(exit.code(), Some(0), "{out}\n{err}");

    let has = |parts: &[&str]| out.lines().any(|l| parts.iter().all(|p| l.contains(p)));
    assert!(has(&["dashboard", "http://127.0.0.1:"]), "where to look: {out}");
    assert!(has(&["/api/v1/experiments"]), "{out}");
    assert!(has(&["] lab ", "never sends"]), "the fault script: {out}");
    assert!(has(&["] health ", "✖", "unhealthy"]), "a health change: {out}");
    assert!(has(&["] health ", "✔", "healthy"]), "{out}");
    assert!(
        has(&["] booking ", "→ not bookable (status: "]),
        "an availability change: {out}"
    );
    assert!(has(&["] email ", "“Lab status: ", "maintainers@"]), "a digest: {out}");
    assert!(has(&["demo stopped"]), "{out}");
    assert!(
        !out.contains("ERROR") && err.is_empty(),
        "nothing went wrong, not even at the end: {out}\n{err}"
    );
    assert!(!out.contains("eyJ"), "a token was printed");
}

#[test]
fn demo_stops_cleanly_on_sigterm() {
    let mut child = demo(&["--experiments", "2", "--listen", "127.0.0.1:0"]);
    let port: u16 = wait_until("the dashboard URL", || {
        child.assert_running("demo");
        let out = child.stdout();
        let port = out.split("http://127.0.0.1:").nth(1)?.split('/').next()?;
        port.parse().ok()
    });
    wait_until("the demo's service to answer", || {
        matches!(get(port, "/healthz"), Some((200, _))).then_some(())
    });
    let (code, page) = get(port, "/").expect("the dashboard answers");
    assert_eq!(code, 200);
    assert!(page.contains("dashboard.js"), "{page}");

    child.sigterm();
    let (exit, out, _) = child.wait_exit_within(DEADLINE);
    assert_eq!(exit.code(), Some(0));
    assert!(out.contains("demo stopped"));
}

#[test]
fn demo_refuses_bad_options_and_documents_them() {
    for bad in [
        &["--experiments", "0"][..],
        &["--experiments", "501"],
        &["--for", "soon"],
        &["--listen", "nowhere"],
    ] {
        let out = run(&[], &[&["demo"], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(!out.stderr.is_empty());
    }
    let help = text(&run(&[], &["demo", "--help"]).stdout);
    for option in [
        "--experiments",
        "--seed",
        "--for",
        "--listen",
        "--log-level",
        "[default: 12]",
        "[default: 127.0.0.1:3007]",
    ] {
        assert!(help.contains(option), "{option} in: {help}");
    }
}
