//! A small real SMTP server on 127.0.0.1: the mail sink of tests and `status demo`.
//!
//! It speaks enough ESMTP for lettre (EHLO, optional AUTH PLAIN/LOGIN, MAIL,
//! RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), records every message
//! it accepts (and when) and can be told to fail the next connections in the
//! ways real servers do: refuse at the greeting, refuse after DATA, or hang;
//! or to refuse every connection until told otherwise (an outage). It never
//! relays anything anywhere, and it treats its clients as untrusted: lines,
//! messages and idle connections are bounded.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Longest line accepted, CRLF included (RFC 5321 §4.5.3.1.6).
const MAX_LINE: usize = 1000;
/// Largest message accepted; advertised as SIZE.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;
/// Recipients per message (RFC 5321 §4.5.3.1.8 asks servers to take at least 100).
const MAX_RECIPIENTS: usize = 100;
/// A client silent for this long is disconnected.
const IDLE: Duration = Duration::from_secs(300);
/// Bad commands tolerated on one connection before it is closed.
const MAX_ERRORS: usize = 20;
const NAME: &str = "status-sim";

/// How the next connection fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Greet with `421` and close, as a server that is down or busy.
    Unavailable,
    /// Take the whole message, then answer `451` instead of queueing it.
    RejectAfterData,
    /// Accept the connection and never say a word.
    Hang,
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The user that authenticated, when the sink requires a login.
    pub user: Option<String>,
    /// The message as sent after dot-unstuffing, with CRLF line ends.
    pub data: String,
}

impl Received {
    /// The first header called `name` (any case), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.split();
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body decoded from its Content-Transfer-Encoding, with `\n` line ends.
    pub fn body(&self) -> String {
        let (_, body) = self.split();
        let encoding = self.header("Content-Transfer-Encoding").unwrap_or_default();
        let decoded = match encoding.to_ascii_lowercase().as_str() {
            "quoted-printable" => quoted_printable::decode(body, quoted_printable::ParseMode::Robust).ok(),
            "base64" => BASE64.decode(body.split_whitespace().collect::<String>()).ok(),
            _ => None,
        };
        let text = decoded.map_or_else(|| body.to_string(), |b| String::from_utf8_lossy(&b).into_owned());
        text.replace("\r\n", "\n")
    }

    fn split(&self) -> (&str, &str) {
        self.data.split_once("\r\n\r\n").unwrap_or((&self.data, ""))
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    /// When each of `messages` was accepted.
    arrivals: Vec<Instant>,
    faults: VecDeque<Fault>,
    connections: usize,
    /// Every connection is refused at the greeting while set.
    down: bool,
}

/// The login a sink requires.
#[derive(Clone)]
struct Login {
    user: String,
    password: String,
    /// Offered in EHLO; any other is refused.
    mechanisms: Vec<&'static str>,
}

struct Shared {
    state: Mutex<State>,
    /// `None` offers no AUTH.
    login: Option<Login>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The running server; it stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl SmtpSink {
    /// Starts a sink that takes mail from anyone.
    pub async fn start() -> io::Result<Self> {
        Self::listen(None).await
    }

    /// Starts a sink that takes mail from anyone on `addr` (such as `[::1]:0`).
    pub async fn start_at(addr: SocketAddr) -> io::Result<Self> {
        Self::listen_at(addr, None).await
    }

    /// Starts a sink that offers AUTH PLAIN and LOGIN and takes mail only after a login.
    pub async fn with_login(user: &str, password: &str) -> io::Result<Self> {
        Self::with_login_by(&["PLAIN", "LOGIN"], user, password).await
    }

    /// Starts a sink that offers only these AUTH `mechanisms` (`PLAIN`, `LOGIN`),
    /// refuses any other, and takes mail only after a login.
    pub async fn with_login_by(mechanisms: &[&'static str], user: &str, password: &str) -> io::Result<Self> {
        Self::listen(Some(Login {
            user: user.to_string(),
            password: password.to_string(),
            mechanisms: mechanisms.to_vec(),
        }))
        .await
    }

    async fn listen(login: Option<Login>) -> io::Result<Self> {
        Self::listen_at(SocketAddr::from(([127, 0, 0, 1], 0)), login).await
    }

    async fn listen_at(addr: SocketAddr, login: Option<Login>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            login,
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, shared.clone(), stop.clone()));
        Ok(Self { addr, shared, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.state().messages.clone()
    }

    /// When each message of [`Self::messages`] was accepted (before the client heard so).
    pub fn arrivals(&self) -> Vec<Instant> {
        self.shared.state().arrivals.clone()
    }

    /// Takes the messages accepted since the last call (or since the start), oldest first,
    /// so a long-running reader (the demo) does not keep them all.
    pub fn take_messages(&self) -> Vec<Received> {
        let mut state = self.shared.state();
        state.arrivals.clear();
        std::mem::take(&mut state.messages)
    }

    /// Connections accepted so far, failed ones included.
    pub fn connections(&self) -> usize {
        self.shared.state().connections
    }

    /// The next connections fail in these ways, one fault each, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.shared.state().faults.extend(faults);
    }

    /// While `down`, every new connection is refused at the greeting with `421`
    /// (faults queued by [`Self::fail_next`] wait until it is up again).
    pub fn set_down(&self, down: bool) {
        self.shared.state().down = down;
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    debug!("smtp sim: accept failed: {e}");
                    continue;
                }
            },
        };
        let fault = {
            let mut state = shared.state();
            state.connections += 1;
            if state.down {
                Some(Fault::Unavailable)
            } else {
                state.faults.pop_front()
            }
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        connections.spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                result = serve(stream, &shared, fault) => if let Err(e) = result {
                    debug!("smtp sim: connection ended: {e}");
                },
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// One SMTP transaction's envelope.
#[derive(Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

struct Session<'a> {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    shared: &'a Shared,
    fault: Option<Fault>,
    greeted: bool,
    user: Option<String>,
    envelope: Envelope,
    errors: usize,
}

async fn serve(stream: TcpStream, shared: &Shared, fault: Option<Fault>) -> io::Result<()> {
    if fault == Some(Fault::Hang) {
        return std::future::pending().await;
    }
    let (read, writer) = stream.into_split();
    let mut s = Session {
        reader: BufReader::new(read),
        writer,
        shared,
        fault,
        greeted: false,
        user: None,
        envelope: Envelope::default(),
        errors: 0,
    };
    if fault == Some(Fault::Unavailable) {
        return s.reply("421 4.3.2 sim: service not available, try again later").await;
    }
    s.reply(&format!("220 {NAME} ESMTP ready")).await?;
    while let Some(line) = s.line().await? {
        let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let verb = verb.to_ascii_uppercase();
        let arg = arg.trim();
        let more = match verb.as_str() {
            "EHLO" | "HELO" => s.hello(&verb, arg).await?,
            "AUTH" => s.auth(arg).await?,
            "MAIL" => s.mail(arg).await?,
            "RCPT" => s.rcpt(arg).await?,
            "DATA" => s.data().await?,
            "RSET" => {
                s.envelope = Envelope::default();
                s.ok("250 2.0.0 reset").await?
            }
            "NOOP" => s.ok("250 2.0.0 ok").await?,
            "QUIT" => {
                s.reply(&format!("221 2.0.0 {NAME} closing")).await?;
                false
            }
            _ => s.error("500 5.5.2 command not recognised").await?,
        };
        if !more {
            break;
        }
    }
    Ok(())
}

impl Session<'_> {
    /// The next line without its line end; `None` when the client is gone or too slow.
    async fn line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        let mut limited = (&mut self.reader).take(MAX_LINE as u64);
        let n = match tokio::time::timeout(IDLE, limited.read_until(b'\n', &mut buf)).await {
            Ok(n) => n?,
            Err(_) => {
                self.reply("421 4.4.2 sim: idle too long").await?;
                return Ok(None);
            }
        };
        if n == 0 {
            return Ok(None);
        }
        if !buf.ends_with(b"\n") {
            self.reply("500 5.5.6 sim: line too long").await?;
            return Ok(None);
        }
        buf.pop();
        if buf.ends_with(b"\r") {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    async fn reply(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await?;
        self.writer.flush().await
    }

    /// Replies and keeps the connection.
    async fn ok(&mut self, line: &str) -> io::Result<bool> {
        self.reply(line).await?;
        Ok(true)
    }

    /// Replies with an error; too many and the connection is closed.
    async fn error(&mut self, line: &str) -> io::Result<bool> {
        self.errors += 1;
        if self.errors > MAX_ERRORS {
            self.reply("421 4.7.0 sim: too many errors").await?;
            return Ok(false);
        }
        self.ok(line).await
    }

    async fn hello(&mut self, verb: &str, arg: &str) -> io::Result<bool> {
        if arg.is_empty() {
            return self.error("501 5.5.4 sim: a name is required").await;
        }
        self.greeted = true;
        self.envelope = Envelope::default();
        if verb == "HELO" {
            return self.ok(&format!("250 {NAME}")).await;
        }
        let mut lines = vec![
            format!("{NAME} greets {arg}"),
            "8BITMIME".into(),
            format!("SIZE {MAX_MESSAGE}"),
        ];
        if let Some(login) = &self.shared.login {
            lines.push(format!("AUTH {}", login.mechanisms.join(" ")));
        }
        lines.push("ENHANCEDSTATUSCODES".into());
        let last = lines.len() - 1;
        let reply: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect();
        self.ok(&reply.join("\r\n")).await
    }

    async fn auth(&mut self, arg: &str) -> io::Result<bool> {
        let Some(login) = self.shared.login.clone() else {
            return self.error("502 5.5.1 sim: AUTH not offered").await;
        };
        if !self.greeted || self.user.is_some() {
            return self.error("503 5.5.1 sim: EHLO first, and only once per session").await;
        }
        let (mechanism, initial) = arg.split_once(' ').unwrap_or((arg, ""));
        let mechanism = mechanism.to_ascii_uppercase();
        if !login.mechanisms.contains(&mechanism.as_str()) {
            return self.error("504 5.5.4 sim: mechanism not offered").await;
        }
        let given = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    "" => self.challenge("").await?,
                    ir => Some(ir.to_string()),
                };
                response.and_then(|r| decode(&r)).and_then(|plain| {
                    let mut parts = plain.split('\0').skip(1);
                    Some((parts.next()?.to_string(), parts.next()?.to_string()))
                })
            }
            "LOGIN" => {
                let name = match initial {
                    "" => self.challenge("VXNlcm5hbWU6").await?,
                    ir => Some(ir.to_string()),
                };
                match name.and_then(|n| decode(&n)) {
                    Some(name) => self
                        .challenge("UGFzc3dvcmQ6")
                        .await?
                        .and_then(|p| decode(&p))
                        .map(|p| (name, p)),
                    None => None,
                }
            }
            _ => return self.error("504 5.5.4 sim: unknown mechanism").await,
        };
        match given {
            Some((u, p)) if u == login.user && p == login.password => {
                self.user = Some(u);
                self.ok("235 2.7.0 sim: authenticated").await
            }
            _ => self.error("535 5.7.8 sim: authentication failed").await,
        }
    }

    /// Sends a `334` challenge and reads the answer; `None` if the client cancels or leaves.
    async fn challenge(&mut self, text: &str) -> io::Result<Option<String>> {
        self.reply(&format!("334 {text}")).await?;
        Ok(self.line().await?.filter(|l| l != "*"))
    }

    async fn mail(&mut self, arg: &str) -> io::Result<bool> {
        if !self.greeted {
            return self.error("503 5.5.1 sim: EHLO first").await;
        }
        if self.shared.login.is_some() && self.user.is_none() {
            return self.error("530 5.7.0 sim: authentication required").await;
        }
        if self.envelope.from.is_some() {
            return self.error("503 5.5.1 sim: a transaction is already open").await;
        }
        match path(arg, "FROM:") {
            Some(from) => {
                self.envelope.from = Some(from);
                self.ok("250 2.1.0 ok").await
            }
            None => self.error("501 5.5.4 sim: expected MAIL FROM:<address>").await,
        }
    }

    async fn rcpt(&mut self, arg: &str) -> io::Result<bool> {
        if self.envelope.from.is_none() {
            return self.error("503 5.5.1 sim: MAIL first").await;
        }
        if self.envelope.to.len() >= MAX_RECIPIENTS {
            return self.error("452 4.5.3 sim: too many recipients").await;
        }
        match path(arg, "TO:").filter(|to| !to.is_empty()) {
            Some(to) => {
                self.envelope.to.push(to);
                self.ok("250 2.1.5 ok").await
            }
            None => self.error("501 5.5.4 sim: expected RCPT TO:<address>").await,
        }
    }

    async fn data(&mut self) -> io::Result<bool> {
        if self.envelope.to.is_empty() {
            return self.error("503 5.5.1 sim: RCPT first").await;
        }
        self.reply("354 end data with <CR><LF>.<CR><LF>").await?;
        let mut data = String::new();
        loop {
            let Some(line) = self.line().await? else {
                return Ok(false);
            };
            if line == "." {
                break;
            }
            // Dot-unstuffing (RFC 5321 §4.5.2).
            data.push_str(line.strip_prefix('.').unwrap_or(&line));
            data.push_str("\r\n");
            if data.len() > MAX_MESSAGE {
                self.reply("552 5.3.4 sim: message too big").await?;
                return Ok(false);
            }
        }
        let envelope = std::mem::take(&mut self.envelope);
        if self.fault.take() == Some(Fault::RejectAfterData) {
            return self
                .ok("451 4.3.0 sim: local error in processing, try again later")
                .await;
        }
        let queued = {
            let mut state = self.shared.state();
            state.arrivals.push(Instant::now());
            state.messages.push(Received {
                mail_from: envelope.from.unwrap_or_default(),
                rcpt_to: envelope.to,
                user: self.user.clone(),
                data,
            });
            state.messages.len()
        };
        self.ok(&format!("250 2.0.0 queued as {queued}")).await
    }
}

/// The address in `FROM:<a@b> SIZE=…`; empty for the null path `<>`.
fn path(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_string())
}

fn decode(b64: &str) -> Option<String> {
    BASE64
        .decode(b64.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    use super::*;

    /// A hand-driven client: sends a line, returns the full (possibly multi-line) reply.
    struct Client(BufReader<TcpStream>);

    impl Client {
        async fn connect(sink: &SmtpSink) -> (Self, String) {
            let mut c = Client(BufReader::new(TcpStream::connect(sink.addr()).await.unwrap()));
            let greeting = c.reply().await;
            (c, greeting)
        }

        async fn reply(&mut self) -> String {
            let mut all = String::new();
            loop {
                let mut line = String::new();
                if self.0.read_line(&mut line).await.unwrap() == 0 {
                    return all;
                }
                all.push_str(&line);
                if line.as_bytes().get(3) != Some(&b'-') {
                    return all;
                }
            }
        }

        async fn send(&mut self, line: &str) -> String {
            self.0
                .get_mut()
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .unwrap();
            self.reply().await
        }
    }

    #[tokio::test]
    async fn a_transaction_is_recorded_with_dots_unstuffed() {
        let sink = SmtpSink::start().await.unwrap();
        let (mut c, greeting) = Client::connect(&sink).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        assert!(
            c.send("MAIL FROM:<a@example.org>").await.starts_with("503"),
            "EHLO first"
        );
        let ehlo = c.send("EHLO client.example.org").await;
        assert!(ehlo.contains("250-8BITMIME") && !ehlo.contains("AUTH"), "{ehlo}");
        assert!(c.send("DATA").await.starts_with("503"), "RCPT first");
        assert!(c
            .send("MAIL FROM:<a@example.org> BODY=8BITMIME")
            .await
            .starts_with("250"));
        assert!(c.send("RCPT TO:<b@example.org>").await.starts_with("250"));
        assert!(c.send("NOOP").await.starts_with("250"));
        assert!(c.send("DATA").await.starts_with("354"));
        c.0.get_mut()
            .write_all(b"Subject: hi\r\n\r\n..leading dot\r\nplain\r\n.\r\n")
            .await
            .unwrap();
        assert!(c.reply().await.starts_with("250"));
        assert!(c.send("RSET").await.starts_with("250"));
        assert!(c.send("FROB").await.starts_with("500"));
        assert!(c.send("QUIT").await.starts_with("221"));

        let m = &sink.messages()[0];
        assert_eq!(m.mail_from, "a@example.org");
        assert_eq!(m.rcpt_to, ["b@example.org"]);
        assert_eq!(m.header("subject").as_deref(), Some("hi"));
        assert_eq!(m.body(), ".leading dot\nplain\n");
        assert_eq!(m.user, None);
    }

    #[tokio::test]
    async fn taken_messages_are_handed_over_once() {
        let sink = SmtpSink::start().await.unwrap();
        let (mut c, _) = Client::connect(&sink).await;
        c.send("HELO me").await;
        c.send("MAIL FROM:<a@example.org>").await;
        c.send("RCPT TO:<b@example.org>").await;
        c.send("DATA").await;
        c.0.get_mut()
            .write_all(b"Subject: one\r\n\r\nbody\r\n.\r\n")
            .await
            .unwrap();
        assert!(c.reply().await.starts_with("250"));

        let taken = sink.take_messages();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].header("Subject").as_deref(), Some("one"));
        assert!(sink.take_messages().is_empty(), "handed over once");
        assert!(sink.messages().is_empty(), "not kept");
    }

    #[tokio::test]
    async fn a_login_is_required_and_checked() {
        let sink = SmtpSink::with_login("status", "pw").await.unwrap();
        let (mut c, _) = Client::connect(&sink).await;
        assert!(c.send("EHLO me").await.contains("250-AUTH PLAIN LOGIN"));
        assert!(c.send("MAIL FROM:<a@example.org>").await.starts_with("530"));
        let wrong = BASE64.encode("\0status\0nope");
        assert!(c.send(&format!("AUTH PLAIN {wrong}")).await.starts_with("535"));
        assert!(c.send("AUTH LOGIN").await.starts_with("334 VXNlcm5hbWU6"));
        assert!(c.send(&BASE64.encode("status")).await.starts_with("334 UGFzc3dvcmQ6"));
        assert!(c.send(&BASE64.encode("pw")).await.starts_with("235"));
        assert!(c.send("MAIL FROM:<a@example.org>").await.starts_with("250"));
    }

    #[tokio::test]
    async fn a_login_by_one_mechanism_refuses_the_others() {
        let sink = SmtpSink::with_login_by(&["LOGIN"], "status", "pw").await.unwrap();
        let (mut c, _) = Client::connect(&sink).await;
        let ehlo = c.send("EHLO me").await;
        assert!(ehlo.contains("250-AUTH LOGIN\r\n"), "{ehlo}");
        let plain = BASE64.encode("\0status\0pw");
        assert!(c.send(&format!("AUTH PLAIN {plain}")).await.starts_with("504"));
        assert!(c.send("MAIL FROM:<a@example.org>").await.starts_with("530"));
        let login = c.send(&format!("AUTH LOGIN {}", BASE64.encode("status"))).await;
        assert!(login.starts_with("334 UGFzc3dvcmQ6"), "{login}");
        assert!(c.send(&BASE64.encode("pw")).await.starts_with("235"));
    }

    #[tokio::test]
    async fn while_down_every_connection_is_refused_and_arrivals_are_timed() {
        let sink = SmtpSink::start().await.unwrap();
        sink.fail_next([Fault::RejectAfterData]);
        sink.set_down(true);
        for _ in 0..2 {
            let (_, greeting) = Client::connect(&sink).await;
            assert!(greeting.starts_with("421 "), "{greeting}");
        }
        sink.set_down(false);
        let before = Instant::now();
        for expected in ["451", "250"] {
            let (mut c, greeting) = Client::connect(&sink).await;
            assert!(greeting.starts_with("220 "), "{greeting}");
            c.send("HELO me").await;
            c.send("MAIL FROM:<a@example.org>").await;
            c.send("RCPT TO:<b@example.org>").await;
            c.send("DATA").await;
            c.0.get_mut().write_all(b"\r\nbody\r\n.\r\n").await.unwrap();
            assert!(c.reply().await.starts_with(expected), "the queued fault waited");
        }
        assert_eq!(sink.messages().len(), 1);
        let arrivals = sink.arrivals();
        assert_eq!(arrivals.len(), 1);
        assert!(arrivals[0] >= before && arrivals[0] <= Instant::now());
        assert_eq!(sink.take_messages().len(), 1);
        assert!(sink.arrivals().is_empty());
    }

    #[tokio::test]
    async fn faults_apply_to_the_next_connections_in_order() {
        let sink = SmtpSink::start().await.unwrap();
        sink.fail_next([Fault::Unavailable, Fault::RejectAfterData]);
        let (_, greeting) = Client::connect(&sink).await;
        assert!(greeting.starts_with("421 "), "{greeting}");
        let (mut c, greeting) = Client::connect(&sink).await;
        assert!(greeting.starts_with("220 "));
        c.send("HELO me").await;
        c.send("MAIL FROM:<>").await;
        c.send("RCPT TO:<b@example.org>").await;
        c.send("DATA").await;
        c.0.get_mut().write_all(b"\r\nbody\r\n.\r\n").await.unwrap();
        assert!(c.reply().await.starts_with("451 "));
        assert!(sink.messages().is_empty());
        assert_eq!(sink.connections(), 2);
    }

    #[tokio::test]
    async fn an_overlong_line_closes_the_connection() {
        let sink = SmtpSink::start().await.unwrap();
        let (mut c, _) = Client::connect(&sink).await;
        let reply = c.send(&format!("EHLO {}", "x".repeat(MAX_LINE))).await;
        assert!(reply.starts_with("500 5.5.6"), "{reply}");
        assert_eq!(c.reply().await, "", "closed");
    }
}
