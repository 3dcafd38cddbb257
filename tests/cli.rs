//! The real `status` binary: configuration errors exit 2 with one line,
//! `check` never shows a secret, `serve` answers and exits 0 on SIGTERM,
//! `demo` needs no configuration, narrates and stops cleanly.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{base_env, dead_port, DEADLINE};

fn status(env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_status"));
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

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

/// Kills the child if a test fails half-way.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1)?.to_string();
    Some((code, body))
}

type Lines = Arc<Mutex<Vec<String>>>;

/// Collects the child's output lines as they come; the thread ends when the child closes the stream.
fn collect(stream: impl std::io::Read + Send + 'static) -> (Lines, std::thread::JoinHandle<()>) {
    let lines = Lines::default();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().expect("not poisoned").push(line);
        }
    });
    (lines, reader)
}

/// Starts `cmd` with its stdout and stderr collected line by line.
fn spawn(mut cmd: Command) -> (Reaper, Lines, Lines, [std::thread::JoinHandle<()>; 2]) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (stdout, out_reader) = collect(child.stdout.take().expect("piped"));
    let (stderr, err_reader) = collect(child.stderr.take().expect("piped"));
    (Reaper(child), stdout, stderr, [out_reader, err_reader])
}

#[test]
fn serve_answers_logs_a_summary_and_exits_0_on_sigterm() {
    let port = dead_port();
    let env = with(&[
        ("STATUS_PORT_SERVE", &port.to_string()),
        ("STATUS_LOG_LEVEL", "trace"),
        ("STATUS_LOG_FORMAT", "text"),
        ("STATUS_HEALTH_LOG_EVERY", "200ms"),
    ]);
    let (mut child, stdout, stderr, [out_reader, err_reader]) = spawn(status(&env, &["serve"]));

    let deadline = Instant::now() + DEADLINE;
    let health = loop {
        if let Some(r) = get(port, "/healthz") {
            break r;
        }
        assert!(Instant::now() < deadline, "serve never answered /healthz");
        assert!(child.0.try_wait().expect("wait").is_none(), "serve exited early");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(health.0, 200);
    let (code, body) = get(port, "/api/v1/experiments").expect("experiments answer");
    assert_eq!((code, body.trim()), (200, "[]"));
    let deadline = Instant::now() + DEADLINE;
    while !stdout
        .lock()
        .expect("not poisoned")
        .iter()
        .any(|l| l.contains("fleet summary"))
    {
        assert!(Instant::now() < deadline, "no fleet summary logged");
        std::thread::sleep(Duration::from_millis(25));
    }

    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + DEADLINE;
    let exit = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(25));
    };
    assert_eq!(exit.code(), Some(0));
    out_reader.join().expect("reader finished");
    err_reader.join().expect("reader finished");
    let out = stdout.lock().expect("not poisoned").join("\n") + &stderr.lock().expect("not poisoned").join("\n");
    assert!(out.contains("SIGTERM"), "{out}");
    assert!(!out.contains("test-secret"), "a secret reached the log: {out}");
}

/// Waits for the child to exit, killing nothing: the caller's [`Reaper`] does that on failure.
fn exit_within(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `status demo` with `args` and no environment at all.
fn demo(args: &[&str]) -> (Reaper, Lines, Lines, [std::thread::JoinHandle<()>; 2]) {
    spawn(status(&[], &[&["demo"], args].concat()))
}

fn joined(lines: &Lines) -> String {
    lines.lock().expect("not poisoned").join("\n")
}

/// Without any STATUS_ variable, a short demo shows health changes, an availability
/// change and a digest (the script breaks a rig at once), then exits 0 by itself.
#[test]
fn demo_needs_no_configuration_narrates_and_exits_0_when_its_time_is_up() {
    let (mut child, stdout, stderr, readers) = demo(&["--experiments", "4", "--for", "20s", "--listen", "127.0.0.1:0"]);
    let exit = exit_within(
        &mut child.0,
        Duration::from_secs(20) + DEADLINE,
        "demo --for 20s did not stop",
    );
    for reader in readers {
        reader.join().expect("reader finished");
    }
    let (out, err) = (joined(&stdout), joined(&stderr));
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
    let (mut child, stdout, _stderr, readers) = demo(&["--experiments", "2", "--listen", "127.0.0.1:0"]);
    let deadline = Instant::now() + DEADLINE;
    let port: u16 = loop {
        let out = joined(&stdout);
        let port = out
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok());
        if let Some(port) = port {
            break port;
        }
        assert!(Instant::now() < deadline, "no dashboard URL printed: {out}");
        assert!(child.0.try_wait().expect("wait").is_none(), "demo exited early: {out}");
        std::thread::sleep(Duration::from_millis(25));
    };
    let deadline = Instant::now() + DEADLINE;
    while !matches!(get(port, "/healthz"), Some((200, _))) {
        assert!(Instant::now() < deadline, "the demo's service never answered");
        std::thread::sleep(Duration::from_millis(25));
    }
    let (code, page) = get(port, "/").expect("the dashboard answers");
    assert_eq!(code, 200);
    assert!(page.contains("dashboard.js"), "{page}");

    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs")
        .success());
    let exit = exit_within(&mut child.0, DEADLINE, "demo did not stop on SIGTERM");
    for reader in readers {
        reader.join().expect("reader finished");
    }
    assert_eq!(exit.code(), Some(0));
    assert!(joined(&stdout).contains("demo stopped"));
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
