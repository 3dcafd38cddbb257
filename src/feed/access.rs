//! Step 1–2 of PROTOCOL.md §2: trade a fresh token for a single-use WebSocket URI.
//!
//! Owns the access URL, the answer's validation and the redaction of the
//! `code` in that URI. Must never put the token or the code into an error
//! or a log line: both are credentials.

use std::error::Error as StdError;
use std::fmt::Write as _;

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::error::Category;
use url::Url;

use super::frame::Object;
use crate::config::{Peer, Scheme};
use crate::report::{clip, PEER_TEXT_SHOWN};
use crate::token::{Feed, TokenError};

/// An access answer is a one-line JSON object; anything much bigger is not one.
const ANSWER_MAX_BYTES: usize = 16 * 1024;

/// Why an access request did not yield a usable URI.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot mint the token: {0}")]
    Token(#[from] TokenError),
    #[error("access request to {url} failed: {cause}")]
    Request { url: String, cause: String },
    #[error("access request to {url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("access answer from {url} is larger than {ANSWER_MAX_BYTES} bytes")]
    TooLarge { url: String },
    /// Only the kind of error and where: serde_json's own message may quote the answer, code and all.
    #[error("access answer from {url} is not {{\"uri\": \"…\"}}: {what} at line {line} column {column}")]
    BadJson {
        url: String,
        what: &'static str,
        line: usize,
        column: usize,
    },
    #[error("access answer from {url} has an unusable uri {uri}: {why}")]
    BadUri {
        url: String,
        uri: String,
        why: &'static str,
    },
}

/// Where to `POST` for a statistics subscription: a path join onto the peer's base URL.
pub fn access_url(feed: Feed, peer: &Peer) -> String {
    let path = match feed {
        Feed::Relay => "session/stats",
        Feed::Jump => "api/v1/connect/stats",
    };
    format!("{}/{path}", peer.base_url().trim_end_matches('/'))
}

#[derive(Deserialize)]
struct Answer {
    uri: String,
}

/// Presents `token` at `url` and returns the WebSocket URI it grants.
pub async fn request(http: &reqwest::Client, url: &str, token: &str, peer: Scheme) -> Result<Url, AccessError> {
    let failed = |e: reqwest::Error| AccessError::Request {
        url: url.to_string(),
        cause: causes(&e.without_url()),
    };
    let mut resp = http
        .post(url)
        .header(reqwest::header::AUTHORIZATION, token)
        .header(reqwest::header::CONTENT_LENGTH, 0)
        .send()
        .await
        .map_err(failed)?;
    if resp.status() != StatusCode::OK {
        return Err(AccessError::Status {
            url: url.to_string(),
            status: resp.status(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > ANSWER_MAX_BYTES {
            return Err(AccessError::TooLarge { url: url.to_string() });
        }
        body.extend_from_slice(&chunk);
    }
    granted_uri(url, &body, peer)
}

/// The WebSocket URI an access answer `body` from `url` grants.
fn granted_uri(url: &str, body: &[u8], peer: Scheme) -> Result<Url, AccessError> {
    let Object(answer) = serde_json::from_slice::<Object<Answer>>(body).map_err(|e| AccessError::BadJson {
        url: url.to_string(),
        what: match e.classify() {
            Category::Syntax => "not JSON",
            Category::Eof => "JSON cut short",
            Category::Data => "JSON of another shape",
            Category::Io => "unreadable",
        },
        line: e.line(),
        column: e.column(),
    })?;
    websocket_uri(&answer.uri, peer).map_err(|(uri, why)| AccessError::BadUri {
        url: url.to_string(),
        uri,
        why,
    })
}

/// Checks a granted URI; on refusal returns what may be shown of it, and why.
fn websocket_uri(raw: &str, peer: Scheme) -> Result<Url, (String, &'static str)> {
    let uri = Url::parse(raw).map_err(|_| ("(not shown)".to_string(), "not a URL"))?;
    let why = match (uri.scheme(), peer) {
        (_, _) if uri.host_str().map_or(true, str::is_empty) => Some("no host"),
        ("wss", _) | ("ws", Scheme::Http) => None,
        ("ws", Scheme::Https) => Some("plain ws:// from an https peer would expose the stream"),
        _ => Some("not ws:// or wss://"),
    };
    match why {
        None => Ok(uri),
        Some(why) => Err((clip(&redact(&uri), PEER_TEXT_SHOWN).into_owned(), why)),
    }
}

/// The URI with the value of every `code` parameter hidden, fit for logs.
pub fn redact(uri: &Url) -> String {
    if !uri.query_pairs().any(|(k, _)| k == "code") {
        return uri.to_string();
    }
    let mut shown = uri.clone();
    let pairs: Vec<(String, String)> = uri
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" { "redacted".into() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

/// An error and its sources on one line (`connection refused` hides behind `error sending request`).
pub(super) fn causes(e: &dyn StdError) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(line, ": {s}");
        source = s.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::tests::config_with;

    fn peer(scheme: &str, host: &str, basepath: &str) -> Peer {
        config_with(&[
            ("STATUS_SCHEME_RELAY", scheme),
            ("STATUS_HOST_RELAY", host),
            ("STATUS_BASEPATH_RELAY", basepath),
        ])
        .relay
    }

    #[test]
    fn access_urls_join_host_and_basepath_as_paths() {
        for (bp, relay, jump) in [
            (
                "",
                "https://app.example.org/session/stats",
                "https://app.example.org/api/v1/connect/stats",
            ),
            (
                "/",
                "https://app.example.org/session/stats",
                "https://app.example.org/api/v1/connect/stats",
            ),
            (
                "/tenant/relay",
                "https://app.example.org/tenant/relay/session/stats",
                "https://app.example.org/tenant/relay/api/v1/connect/stats",
            ),
            (
                "tenant/relay/",
                "https://app.example.org/tenant/relay/session/stats",
                "https://app.example.org/tenant/relay/api/v1/connect/stats",
            ),
        ] {
            let p = peer("https", "app.example.org", bp);
            assert_eq!(access_url(Feed::Relay, &p), relay, "basepath {bp:?}");
            assert_eq!(access_url(Feed::Jump, &p), jump, "basepath {bp:?}");
        }
        let mut p = peer("http", "127.0.0.1:8080", "");
        p.basepath = "/".into();
        assert_eq!(access_url(Feed::Relay, &p), "http://127.0.0.1:8080/session/stats");
    }

    #[test]
    fn granted_uris_must_be_websockets_and_never_downgrade() {
        let ok = websocket_uri("wss://app.example.org/session/stats?code=abc", Scheme::Https).unwrap();
        assert_eq!(ok.scheme(), "wss");
        assert!(websocket_uri("ws://127.0.0.1:1/x?code=abc", Scheme::Http).is_ok());
        assert!(websocket_uri("wss://127.0.0.1:1/x?code=abc", Scheme::Http).is_ok());
        for (raw, scheme) in [
            ("ws://app.example.org/x?code=abc", Scheme::Https),
            ("https://app.example.org/x?code=abc", Scheme::Https),
            ("file:///etc/passwd", Scheme::Http),
            ("not a uri code=abc", Scheme::Http),
        ] {
            let (shown, _) = websocket_uri(raw, scheme).unwrap_err();
            assert!(!shown.contains("abc"), "{shown} leaks the code");
        }
    }

    #[test]
    fn a_bad_answer_is_described_without_quoting_it() {
        let url = "http://127.0.0.1:1/session/stats";
        let bad = |body: &str| granted_uri(url, body.as_bytes(), Scheme::Http).unwrap_err().to_string();
        for (body, what) in [
            (
                r#""ws://127.0.0.1:1/session/stats?code=s3cr3t""#,
                "JSON of another shape at line 1 column 44",
            ),
            (
                r#"["ws://127.0.0.1:1/session/stats?code=s3cr3t"]"#,
                "JSON of another shape at line 1 column",
            ),
            (
                r#"{"uri": 7, "code": "s3cr3t"}"#,
                "JSON of another shape at line 1 column",
            ),
            (
                r#"{"url": "ws://127.0.0.1:1/session/stats?code=s3cr3t"}"#,
                "JSON of another shape",
            ),
            (r#"code=s3cr3t"#, "not JSON at line 1 column 1"),
            (
                r#"{"uri": "ws://127.0.0.1:1/session/stats?code=s3cr3t"#,
                "JSON cut short",
            ),
            ("", "JSON cut short at line 1 column 0"),
        ] {
            let text = bad(body);
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains(what), "{body}: {text}");
            assert!(text.starts_with(&format!("access answer from {url} is not")), "{text}");
        }
        let shown = bad(&format!(r#"{{"uri": "ftp://h/{}?code=s3cr3t"}}"#, "p".repeat(10_000)));
        assert!(shown.len() < 400 && shown.contains("not ws:// or wss://"), "{shown}");
        let ok = granted_uri(
            url,
            br#"{"uri": "ws://127.0.0.1:1/session/stats?code=abc"}"#,
            Scheme::Http,
        );
        assert_eq!(ok.unwrap().query(), Some("code=abc"));
    }

    #[test]
    fn redaction_hides_only_the_code() {
        let u = Url::parse("wss://h/session/stats?a=1&code=s3cr3t&b=2").unwrap();
        let shown = redact(&u);
        assert!(!shown.contains("s3cr3t"));
        assert!(shown.contains("a=1") && shown.contains("b=2") && shown.contains("code=redacted"));
        let plain = Url::parse("wss://h/session/stats").unwrap();
        assert_eq!(redact(&plain), "wss://h/session/stats");
    }
}
