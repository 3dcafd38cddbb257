//! The real `status` binary as a child process: started with exactly the
//! environment given, its output collected line by line as it comes, probed
//! over HTTP on loopback and stopped with SIGTERM. Every wait has a deadline
//! and the child is killed if a test fails half-way.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{dead_port, DEADLINE};

/// `status <args>` with only `env` in its environment.
pub fn status(env: &[(String, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_status"));
    cmd.args(args).env_clear().envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Kills the child if a test fails half-way.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// A plain HTTP/1.1 GET on loopback: the status code and the body, or `None` if nothing answered.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split("\r\n\r\n").nth(1)?.to_string();
    Some((code, body))
}

pub type Lines = Arc<Mutex<Vec<String>>>;

/// Collects the child's output lines as they come; the thread ends when the child closes the stream.
pub fn collect(stream: impl Read + Send + 'static) -> (Lines, JoinHandle<()>) {
    let lines = Lines::default();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
    });
    (lines, reader)
}

/// Polls `check` every 25 ms until it yields `Some`, or panics naming `what` after [`DEADLINE`].
pub fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A running `status` command (usually `serve` on a free loopback port), its stdout and stderr collected.
pub struct Served {
    pub port: u16,
    child: Reaper,
    stdout: Lines,
    stderr: Lines,
    readers: Vec<JoinHandle<()>>,
}

impl Served {
    /// Starts `status serve` with `env` and `STATUS_PORT_SERVE` set to a free port.
    pub fn start(env: &[(String, String)]) -> Served {
        let port = dead_port();
        let mut env = env.to_vec();
        env.push(("STATUS_PORT_SERVE".into(), port.to_string()));
        Self::spawn(status(&env, &["serve"]), port)
    }

    /// Starts any `status` command; `port` is where it serves, when known in advance.
    pub fn spawn(mut cmd: Command, port: u16) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (stdout, out_reader) = collect(child.stdout.take().expect("piped"));
        let (stderr, err_reader) = collect(child.stderr.take().expect("piped"));
        Served {
            port,
            child: Reaper(child),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        get(self.port, path)
    }

    /// Waits until `/healthz` answers (the process must stay up meanwhile); returns its answer.
    pub fn wait_until_serving(&mut self) -> (u16, String) {
        let port = self.port;
        let child = &mut self.child.0;
        wait_until("serve to answer /healthz", || {
            assert!(child.try_wait().expect("wait").is_none(), "serve exited early");
            get(port, "/healthz")
        })
    }

    /// How many stdout lines so far contain every one of `needles`.
    pub fn logged(&self, needles: &[&str]) -> usize {
        let lines = self.stdout.lock().unwrap_or_else(PoisonError::into_inner);
        lines.iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
    }

    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    pub fn sigterm(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        joined(&self.stdout)
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self, what: &str) {
        let exited = self.child.0.try_wait().expect("wait");
        assert!(
            exited.is_none(),
            "{what}: exited early with {exited:?}\n{}",
            self.stdout()
        );
    }

    /// Waits for the process to exit; returns how, and everything it wrote (stdout, then stderr).
    pub fn wait_exit(self) -> (ExitStatus, String) {
        let (exit, out, err) = self.wait_exit_within(DEADLINE);
        (exit, out + "\n" + &err)
    }

    /// Waits at most `limit` for the process to exit; returns how, its stdout and its stderr.
    pub fn wait_exit_within(mut self, limit: Duration) -> (ExitStatus, String, String) {
        let child = &mut self.child.0;
        let deadline = Instant::now() + limit;
        let exit = loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                break exit;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!(
                    "the process did not exit within {limit:?}; its stdout:\n{}\nstderr:\n{}",
                    joined(&self.stdout),
                    joined(&self.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("reader finished");
        }
        (exit, joined(&self.stdout), joined(&self.stderr))
    }
}

fn joined(lines: &Lines) -> String {
    lines.lock().unwrap_or_else(PoisonError::into_inner).join("\n")
}
