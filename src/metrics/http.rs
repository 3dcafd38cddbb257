//! REST request metrics: how many, and how long, per method, route template
//! and status family.
//!
//! The route is axum's matched template (`/api/v1/experiments/events/{name}`),
//! never the raw path: a client asking for a million names must not make a
//! million series. Requests that match no route share the label `unmatched`,
//! and unusual methods share `other`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the duration buckets: the API answers from memory, so most land in the first few.
const DURATION_BUCKETS_SECS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: &'static str,
}

/// Counts and times every request the router answers, and counts open connections.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    connections: Gauge,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS_SECS)),
            connections: Gauge::default(),
        }
    }
}

impl HttpMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_requests",
            "REST requests answered, by method, route template and status family",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer a REST request, by method, route template and status family",
            Unit::Seconds,
            self.durations.clone(),
        );
        registry.register(
            "http_connections",
            "REST connections being served now (at most the server's connection limit)",
            self.connections.clone(),
        );
    }

    /// The gauge of open connections, for the server to keep.
    pub fn connections(&self) -> Gauge {
        self.connections.clone()
    }
}

/// Axum middleware (`Router::layer`, so the matched route is known) recording each request.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: status_family(response.status()),
    };
    metrics.requests.get_or_create(&labels).inc();
    metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `2xx`, `4xx`…: the class is what alerts care about, and it keeps series few.
fn status_family(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_fold_into_their_class() {
        let family = |code| status_family(StatusCode::from_u16(code).unwrap());
        assert_eq!(
            [100, 200, 204, 304, 404, 499, 500, 503, 599].map(family),
            ["1xx", "2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx", "5xx"]
        );
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::TRACE), "other");
    }
}
