//! systemd integration with the real binary and the real script: the
//! notifications a `Type=notify` unit relies on, heard on a Unix datagram
//! socket as systemd would hear them, and `scripts/install.sh` run twice
//! into a staging directory.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::binary::{wait_until, Served};
use support::{env_with, DEADLINE};

/// A fresh directory under the system's temp dir, removed when dropped.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new(what: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(&format!("status-{what}-")).tempdir();
        Scratch(dir.expect("scratch directory"))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }
}

/// Where systemd would listen, and the environment (every peer down, plus
/// `extra`) that points the service at it.
fn listen_as_systemd(scratch: &Scratch, extra: &[(&str, &str)]) -> (UnixDatagram, Vec<(String, String)>) {
    let path = scratch.path("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket.set_read_timeout(Some(DEADLINE)).expect("a read timeout");
    let path = path.to_str().expect("a UTF-8 path");
    let vars: Vec<(&str, &str)> = [("NOTIFY_SOCKET", path)].iter().chain(extra).copied().collect();
    (socket, env_with(&vars))
}

/// The next notification, waiting at most [`DEADLINE`].
fn next(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification before the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The next notification that is not a watchdog ping.
fn next_but_pings(socket: &UnixDatagram) -> String {
    (0..100)
        .map(|_| next(socket))
        .find(|m| m != "WATCHDOG=1\n")
        .expect("a notification other than pings")
}

#[test]
fn systemd_hears_ready_then_watchdog_pings_then_stopping() {
    let scratch = Scratch::new("notify");
    // Every peer is down: readiness for systemd must not wait for them.
    let (socket, env) = listen_as_systemd(&scratch, &[("WATCHDOG_USEC", "200000")]);
    let served = Served::start(&env);

    // A ping may come first on a slow machine; READY=1 must come.
    let ready = next_but_pings(&socket);
    assert!(ready.starts_with("READY=1\n"), "{ready:?}");
    assert!(
        ready.contains(&format!("STATUS=serving on 127.0.0.1:{}", served.port)),
        "{ready:?}"
    );
    // Ready means listening: it answers at once, though not ready for traffic.
    assert_eq!(served.get("/healthz").map(|r| r.0), Some(200));
    assert_eq!(served.get("/readyz").map(|r| r.0), Some(503));

    for _ in 0..3 {
        assert_eq!(next(&socket), "WATCHDOG=1\n", "the reconciler pings every 100 ms");
    }
    served.sigterm();
    assert_eq!(next_but_pings(&socket), "STOPPING=1\n");
    let (exit, out) = served.wait_exit();
    assert_eq!(exit.code(), Some(0), "{out}");
    assert!(!out.contains("cannot tell systemd"), "{out}");
}

#[test]
fn without_a_watchdog_meant_for_it_the_service_only_says_ready_and_stopping() {
    let scratch = Scratch::new("nowatchdog");
    // The watchdog is another process's (systemd sets WATCHDOG_PID to the main PID).
    let (socket, env) = listen_as_systemd(
        &scratch,
        &[
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
            ("STATUS_LOG_LEVEL", "info"),
            ("STATUS_HEALTH_LOG_EVERY", "100ms"),
        ],
    );
    let served = Served::start(&env);
    assert!(next(&socket).starts_with("READY=1\n"));
    // The reconciler loop that would ping every 100 ms logs a summary every 100 ms:
    // three summaries are time for at least two pings, had they been due.
    wait_until("three fleet summaries", || {
        (served.logged(&["fleet summary"]) >= 3).then_some(())
    });
    served.sigterm();
    assert_eq!(next(&socket), "STOPPING=1\n", "no WATCHDOG=1 in between");
    assert_eq!(served.wait_exit().0.code(), Some(0));
}

fn install(root: &Path, extra: &[(&str, &str)], fake_bin: &Path) -> Output {
    let path = format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap_or_default());
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .env("DESTDIR", root)
        .env("BINARY", env!("CARGO_BIN_EXE_status"))
        .env("PATH", path)
        .envs(extra.iter().copied())
        .output()
        .expect("bash runs the script")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The file the unit's `Documentation=file:…` names.
fn documentation(unit: &str) -> String {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("Documentation="))
        .unwrap_or_else(|| panic!("a Documentation= line in {unit}"));
    line.strip_prefix("file:")
        .unwrap_or_else(|| panic!("a file: URI, not {line}"))
        .to_string()
}

fn repo_file(rel: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).expect("a repository file")
}

#[test]
fn install_script_is_idempotent_and_keeps_the_operators_environment_file() {
    let scratch = Scratch::new("install");
    // A systemctl that leaves a mark: a staged install must never call it.
    let fake_bin = scratch.path("fake-bin");
    fs::create_dir_all(&fake_bin).expect("fake bin dir");
    let marker = scratch.path("systemctl-called");
    let systemctl = fake_bin.join("systemctl");
    fs::write(&systemctl, format!("#!/bin/sh\ntouch {}\n", marker.display())).expect("fake systemctl");
    fs::set_permissions(&systemctl, fs::Permissions::from_mode(0o755)).expect("executable");
    let root = scratch.path("root");

    let first = install(&root, &[], &fake_bin);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let binary = root.join("usr/local/bin/status");
    let unit = root.join("etc/systemd/system/status.service");
    let env_file = root.join("etc/status/status.env");
    assert_eq!((mode(&binary), mode(&unit), mode(&env_file)), (0o755, 0o644, 0o600));
    assert_eq!(
        fs::read(&binary).expect("installed binary"),
        fs::read(env!("CARGO_BIN_EXE_status")).expect("built binary")
    );
    assert_eq!(fs::read_to_string(&unit).expect("unit"), repo_file("status.service"));
    assert_eq!(
        fs::read_to_string(&env_file).expect("env file"),
        repo_file("scripts/status.env.example")
    );
    // The unit's documentation is the installed README.
    let documented = documentation(&fs::read_to_string(&unit).expect("unit"));
    assert_eq!(documented, "/usr/local/share/doc/status/README.md");
    let readme = root.join(documented.trim_start_matches('/'));
    assert_eq!(
        fs::read_to_string(&readme).expect("installed README"),
        repo_file("README.md")
    );
    assert_eq!(mode(&readme), 0o644);
    // A staged install restarts nothing, and says how to.
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(said.contains("systemctl try-restart status"), "{said}");

    // The operator fills in the secrets; a second run upgrades the rest and keeps them.
    fs::write(&env_file, "STATUS_SECRET_BOOK=mine\n").expect("edit the env file");
    let second = install(&root, &[], &fake_bin);
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(String::from_utf8_lossy(&second.stdout).contains("kept"));
    assert_eq!(
        fs::read_to_string(&env_file).expect("env file"),
        "STATUS_SECRET_BOOK=mine\n"
    );
    assert_eq!((mode(&binary), mode(&unit), mode(&env_file)), (0o755, 0o644, 0o600));
    assert_eq!(fs::read_to_string(&unit).expect("unit"), repo_file("status.service"));

    // A readable env file is kept but warned about.
    fs::set_permissions(&env_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let third = install(&root, &[], &fake_bin);
    assert!(third.status.success());
    assert!(String::from_utf8_lossy(&third.stderr).contains("readable by others"));
    assert!(!marker.exists(), "systemctl was called for a staged install");

    // Another prefix: the unit follows the binary.
    let opt = scratch.path("opt-root");
    let out = install(&opt, &[("PREFIX", "/opt/status")], &fake_bin);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(mode(&opt.join("opt/status/bin/status")), 0o755);
    let unit = fs::read_to_string(opt.join("etc/systemd/system/status.service")).expect("unit");
    assert!(unit.contains("ExecStart=/opt/status/bin/status serve"), "{unit}");
    let documented = documentation(&unit);
    assert_eq!(documented, "/opt/status/share/doc/status/README.md");
    assert!(opt.join(documented.trim_start_matches('/')).is_file(), "{documented}");

    // No binary, no install.
    let missing = install(&scratch.path("none"), &[("BINARY", "/nonexistent/status")], &fake_bin);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cargo build --release"));
}
