//! Prometheus metrics at `GET /metrics` (OpenMetrics text format).
//!
//! Each [`crate::Service`] owns its own [`Metrics`] and registry: there is no
//! global recorder, so several services in one process (the tests) never
//! share a counter. Two kinds of metric live here:
//!
//! - counted as things happen, through cheap cloned handles: REST requests
//!   ([`http`]), booking requests and availability changes ([`book`]);
//! - read at scrape time from state the service keeps anyway ([`observed`]):
//!   the feeds' [`FeedBoard`], the published snapshot, the mail counters.
//!   Nothing is counted twice.
//!
//! Metrics must never carry a secret, a raw URL path or any other unbounded
//! label value: labels are route templates, status families, feed names and
//! fixed words.

pub mod book;
pub mod http;
mod observed;

use std::sync::Arc;

use arc_swap::ArcSwap;
use prometheus_client::registry::Registry;

pub use book::BookMetrics;
pub use http::HttpMetrics;

use crate::feed::FeedBoard;
use crate::mail::MailStats;
use crate::tracker::Snapshot;

/// What `GET /metrics` answers with: the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics counted as things happen; cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub http: HttpMetrics,
    pub book: BookMetrics,
}

/// Where the scrape-time metrics are read from.
pub struct Sources {
    pub feeds: FeedBoard,
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub mail: Arc<MailStats>,
}

impl Metrics {
    /// A registry with every metric of the service, all named `status_…`.
    pub fn registry(&self, sources: Sources) -> Registry {
        let mut registry = Registry::with_prefix("status");
        self.http.register(&mut registry);
        self.book.register(&mut registry);
        observed::register(&mut registry, sources);
        registry
    }
}

/// The whole exposition of `registry`, ending in `# EOF`.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}
