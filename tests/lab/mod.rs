//! Every peer at once, simulated on loopback: relay and jump (through
//! `feed_rig`), the booking API and an SMTP server that requires a login.
//! The service under test, in this process or as the real binary, is
//! pointed at all of them by [`Lab::env`]. Needs `mod feed_rig; mod support;`
//! beside it in the test crate.

#![allow(dead_code)] // each test binary uses its own part

use serde_json::{json, Map, Value};
use status::sim::book::SimBook;
use status::sim::smtp::SmtpSink;

use crate::feed_rig::{stream, Peers, FRESH};

/// Secrets the service is given; none may ever show in its output.
pub const BOOK_SECRET: &str = "book-secret-7fQz";
pub const SMTP_USER: &str = "status-bot";
pub const SMTP_PASSWORD: &str = "smtp-pa55-w0rd-Kx9";
/// `relay-secret` and `jump-secret` come from `feed_rig`.
pub const FEED_SECRETS: [&str; 2] = ["relay-secret", "jump-secret"];

pub struct Lab {
    pub peers: Peers,
    pub book: SimBook,
    pub smtp: SmtpSink,
}

impl Lab {
    /// The peers, the booking API listing `r-pend00` (requiring data and video) as available.
    pub async fn start() -> Lab {
        let peers = Peers::start().await;
        let book = SimBook::start(BOOK_SECRET, "/tenant/book")
            .await
            .expect("simulated booking API starts");
        book.control().set_manifest(pend00_manifest());
        book.control().set_available("r-pend00", true, "");
        let smtp = SmtpSink::with_login(SMTP_USER, SMTP_PASSWORD)
            .await
            .expect("SMTP sink starts");
        Lab { peers, book, smtp }
    }

    /// The environment pointing the service at every peer, with short periods; `extra` wins.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let book_host = self.book.host();
        let smtp = self.smtp.addr();
        let (smtp_host, smtp_port) = (smtp.ip().to_string(), smtp.port().to_string());
        let ours = [
            ("STATUS_HOST_BOOK", book_host.as_str()),
            ("STATUS_BASEPATH_BOOK", self.book.basepath()),
            ("STATUS_SECRET_BOOK", BOOK_SECRET),
            ("STATUS_QUERY_BOOK_EVERY", "1s"),
            ("STATUS_TIMEOUT_BOOK", "2s"),
            ("STATUS_EMAIL_HOST", smtp_host.as_str()),
            ("STATUS_EMAIL_PORT", smtp_port.as_str()),
            ("STATUS_EMAIL_FROM", "status@example.org"),
            ("STATUS_EMAIL_TO", "maintainers@example.org"),
            ("STATUS_EMAIL_AUTH_TYPE", "plain"),
            ("STATUS_EMAIL_USER", SMTP_USER),
            ("STATUS_EMAIL_PASSWORD", SMTP_PASSWORD),
            ("STATUS_EMAIL_GROUP_WAIT", "200ms"),
            ("STATUS_EMAIL_MIN_INTERVAL", "1s"),
            ("STATUS_EMAIL_TIMEOUT", "2s"),
        ];
        let all: Vec<(&str, &str)> = ours.iter().chain(extra).copied().collect();
        self.peers.env(&all)
    }

    /// `pend00` with fresh data but a video stream that never sent: unhealthy and
    /// not bookable, so the service unbooks `r-pend00` and mails about it.
    pub fn broken_pend00(&self) {
        self.peers.relay.set_reports(vec![
            stream("pend00-st-data", &["read", "write", "expt"], FRESH),
            stream("pend00-st-video", &["read", "write", "expt"], None),
        ]);
        self.peers.jump.set_reports(vec![crate::feed_rig::host("pend00")]);
    }

    /// PUTs that asked for `r-pend00` to be unavailable.
    pub fn unbookings(&self) -> usize {
        let requests = self.book.control().requests();
        requests
            .iter()
            .filter(|r| r.is("PUT", "r-pend00") && r.param("available") == Some("false"))
            .count()
    }
}

fn pend00_manifest() -> Map<String, Value> {
    let manifest = json!({
        "r-pend00": {"topic_stub": "pend00", "streams": ["st-data", "st-video"], "description": "A pendulum"}
    });
    match manifest {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object literal"),
    }
}
