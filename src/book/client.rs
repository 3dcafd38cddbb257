//! The booking admin API client (PROTOCOL.md §3): URLs, tokens, answers.
//!
//! One `reqwest` client is built at start and shared; every request carries
//! a freshly minted short-lived token and is bounded by `STATUS_TIMEOUT_BOOK`
//! and by a service-wide cap on requests in flight. It performs single
//! requests, classifies failures and counts both in its [`BookMetrics`]; it
//! never decides what availability should be, and never logs a token.

use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tracing::{debug, warn};
use url::Url;

use crate::config::Peer;
use crate::metrics::book::{BookMetrics, Operation};
use crate::token::{book_token, TokenError};

/// Requests to the booking API in flight at once, across manifest rounds and changes.
const MAX_IN_FLIGHT: usize = 8;

/// A manifest larger than this is refused rather than buffered.
const MANIFEST_MAX_BYTES: usize = 4 * 1024 * 1024;

/// An availability answer is a bool and a short reason; anything this big is not one.
const AVAILABILITY_MAX_BYTES: usize = 64 * 1024;

/// Attempts per read or change before giving up (the first try included).
const ATTEMPTS: usize = 5;

/// First wait before a retry; doubles, with jitter, up to [`RETRY_CAP`].
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_CAP: Duration = Duration::from_secs(5);

/// Why a booking request failed.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error("STATUS_HOST_BOOK/STATUS_BASEPATH_BOOK do not make a usable URL ({url}): {detail}")]
    BaseUrl { url: String, detail: String },
    #[error("cannot build the booking HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot mint a booking token: {0}")]
    Token(#[from] TokenError),
    #[error("{what}: no answer within STATUS_TIMEOUT_BOOK ({timeout:?})")]
    Timeout { what: String, timeout: Duration },
    #[error("{what}: cannot reach the booking API: {source}")]
    Unreachable { what: String, source: reqwest::Error },
    #[error(
        "{what}: the booking API refused our token ({status}); check STATUS_SECRET_BOOK, and that \
         STATUS_HOST_BOOK/STATUS_BASEPATH_BOOK give the audience it expects ({audience})"
    )]
    Unauthorized {
        what: String,
        status: StatusCode,
        audience: String,
    },
    #[error("{what}: the booking API answered {status}")]
    Status { what: String, status: StatusCode },
    #[error("{what}: unusable answer from the booking API: {detail}")]
    Answer { what: String, detail: String },
}

impl BookError {
    /// Worth trying again: the booking API may answer next time. A 4xx will not change by itself.
    pub fn transient(&self) -> bool {
        match self {
            BookError::Timeout { .. } | BookError::Unreachable { .. } => true,
            BookError::Status { status, .. } => status.is_server_error(),
            _ => false,
        }
    }

    /// The `status` label of a failed request in the metrics: the HTTP status, or what happened instead.
    fn status_label(&self) -> String {
        match self {
            BookError::Unauthorized { status, .. } | BookError::Status { status, .. } => status.as_str().to_string(),
            BookError::Timeout { .. } => "timeout".into(),
            BookError::Unreachable { .. } => "unreachable".into(),
            BookError::Answer { .. } => "bad_answer".into(),
            BookError::BaseUrl { .. } | BookError::Client(_) | BookError::Token(_) => "other".into(),
        }
    }
}

/// What the booking system says it holds for one resource.
#[derive(Debug, Deserialize)]
struct Holding {
    available: bool,
}

/// The booking admin API at `<base>/api/v1`.
pub struct BookClient {
    http: reqwest::Client,
    peer: Peer,
    /// `<base>/api/v1/admin/resources`, the root of every call.
    resources: Url,
    timeout: Duration,
    permits: Semaphore,
    metrics: BookMetrics,
}

impl BookClient {
    pub fn new(peer: Peer, timeout: Duration) -> Result<Self, BookError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect from an admin API is a misconfiguration, not a hint: report it.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("status/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BookError::Client)?;
        let resources = resources_url(&peer.base_url())?;
        Ok(Self {
            http,
            peer,
            resources,
            timeout,
            permits: Semaphore::new(MAX_IN_FLIGHT),
            metrics: BookMetrics::default(),
        })
    }

    /// Counts every request in `metrics` (by default in metrics nobody reads).
    pub fn observed_by(mut self, metrics: BookMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// `GET /admin/resources`: the raw manifest object, to be checked by [`super::manifest`].
    pub async fn manifest(&self) -> Result<Map<String, Value>, BookError> {
        let what = "GET /admin/resources";
        let body = self
            .send(
                Operation::Manifest,
                what,
                Method::GET,
                self.resources.clone(),
                MANIFEST_MAX_BYTES,
            )
            .await?;
        serde_json::from_slice(&body).map_err(|e| BookError::Answer {
            what: what.into(),
            detail: format!("expected a JSON object of resources: {e}"),
        })
    }

    /// `GET /admin/resources/{name}`: whether the resource is available now, retried on transient failures.
    pub async fn read(&self, resource: &str) -> Result<bool, BookError> {
        let what = format!("GET /admin/resources/{resource}");
        let url = resource_url(&self.resources, resource, None);
        retrying(&what, || async {
            let body = self
                .send(Operation::Read, &what, Method::GET, url.clone(), AVAILABILITY_MAX_BYTES)
                .await?;
            serde_json::from_slice::<Holding>(&body)
                .map(|h| h.available)
                .map_err(|e| BookError::Answer {
                    what: what.clone(),
                    detail: format!("expected {{\"available\": bool, …}}: {e}"),
                })
        })
        .await
    }

    /// `PUT /admin/resources/{name}?available=…&reason=…`, retried on transient failures.
    pub async fn set(&self, resource: &str, available: bool, reason: &str) -> Result<(), BookError> {
        let what = format!("PUT /admin/resources/{resource}?available={available}");
        let url = resource_url(&self.resources, resource, Some((available, reason)));
        retrying(&what, || async {
            self.send(Operation::Set, &what, Method::PUT, url.clone(), AVAILABILITY_MAX_BYTES)
                .await
                .map(drop)
        })
        .await
    }

    /// One request: a permit, then a fresh token, the timeout; any 2xx body, up to `limit` bytes.
    ///
    /// The token is minted once the permit is held, not before: with many
    /// requests queued behind a slow booking API, a token minted while waiting
    /// could expire before it is sent. Each attempt of a retried request
    /// comes through here, so each carries its own.
    async fn send(
        &self,
        operation: Operation,
        what: &str,
        method: Method,
        url: Url,
        limit: usize,
    ) -> Result<Vec<u8>, BookError> {
        // The semaphore is never closed, so this only waits for a free slot.
        let _permit = self.permits.acquire().await;
        let token = book_token(&self.peer, chrono::Utc::now().timestamp())?;
        // A JWT is base64url parts joined by dots: always a valid header value.
        let mut auth = HeaderValue::from_str(&token).expect("a JWT is a valid header value");
        auth.set_sensitive(true);
        let started = Instant::now();
        let result = self.exchange(what, method, url, auth, limit).await;
        let error = result.as_ref().err().map(BookError::status_label);
        self.metrics.request(operation, started.elapsed(), error);
        result
    }

    /// The request itself, timed by [`Self::send`].
    async fn exchange(
        &self,
        what: &str,
        method: Method,
        url: Url,
        auth: HeaderValue,
        limit: usize,
    ) -> Result<Vec<u8>, BookError> {
        let fail = |e: reqwest::Error| self.transport(what, e);
        let response = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .map_err(fail)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(BookError::Unauthorized {
                what: what.into(),
                status,
                audience: self.peer.base_url(),
            });
        }
        if !status.is_success() {
            return Err(BookError::Status {
                what: what.into(),
                status,
            });
        }
        read_body(response, limit).await.map_err(|e| match e {
            Body::Transport(e) => fail(e),
            Body::TooLarge => BookError::Answer {
                what: what.into(),
                detail: format!("more than {limit} bytes"),
            },
        })
    }

    fn transport(&self, what: &str, e: reqwest::Error) -> BookError {
        if e.is_timeout() {
            BookError::Timeout {
                what: what.into(),
                timeout: self.timeout,
            }
        } else {
            BookError::Unreachable {
                what: what.into(),
                source: e,
            }
        }
    }
}

enum Body {
    Transport(reqwest::Error),
    TooLarge,
}

async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Body> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Body::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Body::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(Body::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Runs `op` up to [`ATTEMPTS`] times while it fails transiently, backing off between tries.
async fn retrying<T, F, Fut>(what: &str, op: F) -> Result<T, BookError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, BookError>>,
{
    let backoff = ExponentialBuilder::new()
        .with_min_delay(RETRY_FIRST)
        .with_max_delay(RETRY_CAP)
        .with_max_times(ATTEMPTS - 1)
        .with_jitter();
    op.retry(backoff)
        .sleep(tokio::time::sleep)
        .when(BookError::transient)
        .notify(|e, wait| warn!("{e}; retrying in {wait:?}"))
        .await
        .inspect_err(|e| debug!(what, transient = e.transient(), "giving up"))
}

/// `<base>/api/v1/admin/resources`, joined as path segments so a basepath never doubles a slash.
fn resources_url(base: &str) -> Result<Url, BookError> {
    let bad = |detail: String| BookError::BaseUrl {
        url: base.to_string(),
        detail,
    };
    let mut url = Url::parse(base).map_err(|e| bad(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| bad("it cannot carry a path".into()))?
        .pop_if_empty()
        .extend(["api", "v1", "admin", "resources"]);
    Ok(url)
}

/// `…/resources/{name}`, the name encoded as one path segment, and the change as a query if given.
fn resource_url(resources: &Url, name: &str, change: Option<(bool, &str)>) -> Url {
    let mut url = resources.clone();
    // `resources` came from `resources_url`, which proved it can carry a path.
    if let Ok(mut path) = url.path_segments_mut() {
        path.push(name);
    }
    if let Some((available, reason)) = change {
        url.query_pairs_mut()
            .append_pair("available", if available { "true" } else { "false" })
            .append_pair("reason", reason);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_path_joins_without_doubled_slashes() {
        for (base, want) in [
            (
                "https://app.example.org",
                "https://app.example.org/api/v1/admin/resources",
            ),
            (
                "https://app.example.org/tenant/book",
                "https://app.example.org/tenant/book/api/v1/admin/resources",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/api/v1/admin/resources"),
        ] {
            assert_eq!(resources_url(base).unwrap().as_str(), want, "{base}");
        }
    }

    #[test]
    fn a_host_that_makes_no_url_is_a_config_error() {
        let e = resources_url("https://bad host").unwrap_err();
        assert!(e.to_string().contains("STATUS_HOST_BOOK"), "{e}");
    }

    #[test]
    fn resource_names_stay_one_path_segment() {
        let root = resources_url("https://app.example.org/tenant/book").unwrap();
        for (name, segment) in [
            ("r-pend00", "r-pend00"),
            ("r pend/00", "r%20pend%2F00"),
            ("r?x#y", "r%3Fx%23y"),
            ("100%", "100%25"),
            ("a\\b", "a%5Cb"),
        ] {
            let url = resource_url(&root, name, None);
            assert_eq!(
                url.as_str(),
                format!("https://app.example.org/tenant/book/api/v1/admin/resources/{segment}"),
                "{name:?}"
            );
            assert_eq!(url.path_segments().unwrap().count(), 7, "{name:?}");
            assert_eq!(url.query(), None);
        }
    }

    #[test]
    fn a_change_goes_in_an_encoded_query() {
        let root = resources_url("https://app.example.org").unwrap();
        let url = resource_url(
            &root,
            "r-pend00",
            Some((
                false,
                "status: missing required pend00-st-data at 2026-11-21T10:00:00Z & more",
            )),
        );
        assert_eq!(
            url.query(),
            Some(
                "available=false&reason=status%3A+missing+required+pend00-st-data+at+2026-11-21T10%3A00%3A00Z+%26+more"
            )
        );
        let back: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert_eq!(
            back[1].1,
            "status: missing required pend00-st-data at 2026-11-21T10:00:00Z & more"
        );
        let url = resource_url(&root, "r-pend00", Some((true, "")));
        assert_eq!(url.query(), Some("available=true&reason="));
    }

    #[test]
    fn only_timeouts_unreachable_and_5xx_are_retried() {
        let status = |code: u16| BookError::Status {
            what: "x".into(),
            status: StatusCode::from_u16(code).unwrap(),
        };
        assert!(status(500).transient());
        assert!(status(503).transient());
        assert!(!status(404).transient());
        assert!(!status(409).transient());
        assert!(BookError::Timeout {
            what: "x".into(),
            timeout: Duration::from_secs(1)
        }
        .transient());
        let refused = BookError::Unauthorized {
            what: "x".into(),
            status: StatusCode::UNAUTHORIZED,
            audience: "https://book.example.org".into(),
        };
        assert!(!refused.transient());
        let line = refused.to_string();
        for var in ["STATUS_SECRET_BOOK", "STATUS_HOST_BOOK", "STATUS_BASEPATH_BOOK"] {
            assert!(line.contains(var), "{line}");
        }
        assert!(!BookError::Answer {
            what: "x".into(),
            detail: "bad".into()
        }
        .transient());
    }
}
