//! Sending one digest over SMTP with lettre.
//!
//! Owns the transport (built once, from [`EmailConfig`]), the TLS policy and
//! the headers. It must never send a password in clear to another machine
//! and never log one; whether and when to retry is the worker's business.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::digest::Digest;
use crate::config::{EmailAuth, EmailConfig, EmailTls};

/// The mail configuration cannot be turned into a transport.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{var}={value:?} is not a mail address: {reason}")]
    Address {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("STATUS_EMAIL_HOST={host:?} cannot be used for TLS: {reason} (STATUS_EMAIL_TLS=none sends unencrypted)")]
    Tls { host: String, reason: String },
    #[error("STATUS_EMAIL_TLS=none would send the password in clear to {host}, which is not this machine")]
    CleartextPassword { host: String },
}

/// One attempt to send failed; the digest is kept and sent again later.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no answer from the SMTP server within {0:?}")]
    Timeout(Duration),
    /// Carries the server's reply for 4xx/5xx answers (never credentials).
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("cannot build the message: {0}")]
    Message(#[from] lettre::error::Error),
}

/// Sends digests to the configured recipients through one long-lived transport.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    timeout: Duration,
}

impl Mailer {
    pub fn new(cfg: &EmailConfig) -> Result<Self, MailError> {
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host)
            .port(cfg.port)
            .timeout(Some(cfg.timeout))
            .tls(tls(cfg)?);
        if let (Some(mechanism), Some(password)) = (mechanism(cfg.auth), &cfg.password) {
            builder = builder
                .credentials(Credentials::new(cfg.user.clone(), password.expose_secret().to_string()))
                .authentication(vec![mechanism]);
        }
        Ok(Self {
            transport: builder.build(),
            from: mailbox("STATUS_EMAIL_FROM", &cfg.from)?,
            to: mailboxes("STATUS_EMAIL_TO", &cfg.to)?,
            cc: mailboxes("STATUS_EMAIL_CC", &cfg.cc)?,
            timeout: cfg.timeout,
        })
    }

    /// Sends `digest`, dated `now`, within the configured timeout.
    ///
    /// The timeout covers the whole conversation: lettre's own bounds only
    /// the connect, and a server that accepts and then stays silent must not
    /// hold the worker forever.
    pub async fn send(&self, digest: &Digest, now: DateTime<Utc>) -> Result<(), SendError> {
        let message = self.message(digest, now)?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(sent) => sent.map(drop).map_err(SendError::from),
            Err(_) => Err(SendError::Timeout(self.timeout)),
        }
    }

    fn message(&self, digest: &Digest, now: DateTime<Utc>) -> Result<Message, lettre::error::Error> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(digest.subject.as_str())
            .date(now.into())
            // lettre writes `<random@this host>`, which is what Message-ID asks for.
            .message_id(None)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        for cc in &self.cc {
            builder = builder.cc(cc.clone());
        }
        builder.body(digest.body.clone())
    }
}

/// The TLS policy of PROTOCOL.md §5.
///
/// `auto` is lettre's opportunistic STARTTLS, except that a password bound
/// for another machine makes STARTTLS required: an attacker who strips the
/// server's STARTTLS offer must not be handed the password.
fn tls(cfg: &EmailConfig) -> Result<Tls, MailError> {
    let params = || {
        TlsParameters::new(cfg.host.clone()).map_err(|e| MailError::Tls {
            host: cfg.host.clone(),
            reason: e.to_string(),
        })
    };
    let password_leaves = cfg.auth != EmailAuth::None && !cfg.host_is_loopback();
    Ok(match cfg.tls {
        EmailTls::Auto if password_leaves => Tls::Required(params()?),
        EmailTls::Auto => Tls::Opportunistic(params()?),
        EmailTls::StartTls => Tls::Required(params()?),
        EmailTls::Tls => Tls::Wrapper(params()?),
        EmailTls::None if password_leaves => return Err(MailError::CleartextPassword { host: cfg.host.clone() }),
        EmailTls::None => Tls::None,
    })
}

fn mechanism(auth: EmailAuth) -> Option<Mechanism> {
    match auth {
        EmailAuth::None => None,
        EmailAuth::Plain => Some(Mechanism::Plain),
        EmailAuth::Login => Some(Mechanism::Login),
    }
}

fn mailbox(var: &'static str, value: &str) -> Result<Mailbox, MailError> {
    value
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            var,
            value: value.to_string(),
            reason: e.to_string(),
        })
}

fn mailboxes(var: &'static str, values: &[String]) -> Result<Vec<Mailbox>, MailError> {
    values.iter().map(|v| mailbox(var, v)).collect()
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn cfg(host: &str, auth: EmailAuth, tls: EmailTls) -> EmailConfig {
        EmailConfig {
            host: host.into(),
            port: 587,
            from: "Lab Status <status@example.org>".into(),
            to: vec!["a@example.org".into()],
            cc: vec![],
            subject: "Lab status:".into(),
            link: String::new(),
            user: "status@example.org".into(),
            password: (auth != EmailAuth::None).then(|| SecretString::from("hunter2")),
            auth,
            tls,
            group_wait: Duration::from_secs(10),
            min_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(30),
        }
    }

    fn policy(host: &str, auth: EmailAuth, tls_: EmailTls) -> String {
        match tls(&cfg(host, auth, tls_)) {
            Ok(t) => format!("{t:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn auto_requires_starttls_only_when_a_password_leaves_the_machine() {
        use EmailAuth::{None as NoAuth, Plain};
        assert_eq!(policy("smtp.example.org", Plain, EmailTls::Auto), "Required");
        assert_eq!(policy("smtp.example.org", NoAuth, EmailTls::Auto), "Opportunistic");
        assert_eq!(policy("127.0.0.1", Plain, EmailTls::Auto), "Opportunistic");
        assert_eq!(policy("smtp.example.org", NoAuth, EmailTls::StartTls), "Required");
        assert_eq!(policy("smtp.example.org", Plain, EmailTls::Tls), "Wrapper");
        assert_eq!(policy("localhost", Plain, EmailTls::None), "None");
    }

    #[test]
    fn a_password_in_clear_to_another_machine_is_refused() {
        let e = policy("smtp.example.org", EmailAuth::Login, EmailTls::None);
        assert!(e.contains("in clear to smtp.example.org"), "{e}");
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn the_message_carries_every_header() {
        let mut c = cfg("127.0.0.1", EmailAuth::None, EmailTls::None);
        c.to.push("b@example.org".into());
        c.cc.push("c@example.org".into());
        let mailer = Mailer::new(&c).unwrap();
        let digest = Digest {
            subject: "Lab status: 1 new health event".into(),
            body: "Lab status at 2026-11-21 10:00:05 UTC\n".into(),
        };
        let now = "2026-11-21T10:00:05Z".parse().unwrap();
        let raw = String::from_utf8(mailer.message(&digest, now).unwrap().formatted()).unwrap();
        for header in [
            "From: \"Lab Status\" <status@example.org>\r\n",
            "To: a@example.org, b@example.org\r\n",
            "Cc: c@example.org\r\n",
            "Subject: Lab status: 1 new health event\r\n",
            "Date: Sat, 21 Nov 2026 10:00:05 +0000\r\n",
            "Content-Type: text/plain; charset=utf-8\r\n",
            "Content-Transfer-Encoding: 7bit\r\n",
        ] {
            assert!(raw.contains(header), "{header:?} missing from\n{raw}");
        }
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(
            raw.ends_with("\r\n\r\nLab status at 2026-11-21 10:00:05 UTC\r\n"),
            "{raw}"
        );
    }

    #[test]
    fn a_bad_address_names_its_variable() {
        let mut c = cfg("127.0.0.1", EmailAuth::None, EmailTls::None);
        c.cc.push("nobody".into());
        let e = Mailer::new(&c).err().expect("refused");
        assert!(e.to_string().starts_with("STATUS_EMAIL_CC=\"nobody\""), "{e}");
    }
}
