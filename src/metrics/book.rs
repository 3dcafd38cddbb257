//! Booking metrics: requests to the booking API (how long, how they failed),
//! manifest loads and the availability changes carried out.
//!
//! The booking client and worker hold a clone and count as they go; the
//! labels are fixed words, HTTP status codes and `true`/`false`, never a
//! resource name (that would be one series per resource, forever). Every
//! series whose labels are known in advance is there at 0 from the start, so
//! that `increase()` sees the first change; a series of an HTTP status
//! appears with the first failure of that status.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds of the duration buckets, up to the longest sensible `STATUS_TIMEOUT_BOOK`.
const DURATION_BUCKETS_SECS: [f64; 11] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Which booking API request was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET /admin/resources`
    Manifest,
    /// `GET /admin/resources/{name}`
    Read,
    /// `PUT /admin/resources/{name}`
    Set,
}

impl Operation {
    const ALL: [Operation; 3] = [Operation::Manifest, Operation::Read, Operation::Set];

    fn label(self) -> &'static str {
        match self {
            Operation::Manifest => "manifest",
            Operation::Read => "read",
            Operation::Set => "set",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: &'static str,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    available: bool,
}

#[derive(Debug, Clone)]
pub struct BookMetrics {
    durations: Family<OperationLabels, Histogram, fn() -> Histogram>,
    errors: Family<ErrorLabels, Counter>,
    manifest_loads: Counter,
    changes_requested: Family<ChangeLabels, Counter>,
    changes_confirmed: Family<ChangeLabels, Counter>,
    changes_failed: Family<ChangeLabels, Counter>,
}

/// Failure causes that are not an HTTP status: their series exist from the start.
const FIXED_ERRORS: [&str; 3] = ["timeout", "unreachable", "bad_answer"];

impl Default for BookMetrics {
    fn default() -> Self {
        let metrics = Self {
            durations: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS_SECS)),
            errors: Family::default(),
            manifest_loads: Counter::default(),
            changes_requested: Family::default(),
            changes_confirmed: Family::default(),
            changes_failed: Family::default(),
        };
        // A series that appears with its first increment hides that increment from
        // `increase()` and `rate()`: every series known in advance starts at 0.
        for family in [
            &metrics.changes_requested,
            &metrics.changes_confirmed,
            &metrics.changes_failed,
        ] {
            for available in [false, true] {
                let _created = family.get_or_create(&ChangeLabels { available });
            }
        }
        for operation in Operation::ALL {
            for status in FIXED_ERRORS {
                let labels = ErrorLabels {
                    operation: operation.label(),
                    status: status.to_string(),
                };
                let _created = metrics.errors.get_or_create(&labels);
            }
        }
        metrics
    }
}

impl BookMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "book_request_duration",
            "Time of each booking API request (every retry counts), by operation",
            Unit::Seconds,
            self.durations.clone(),
        );
        registry.register(
            "book_request_errors",
            "Failed booking API requests, by operation and HTTP status (or timeout, unreachable, bad_answer)",
            self.errors.clone(),
        );
        registry.register(
            "book_manifest_loads",
            "Booking manifests fetched and handed to the tracker",
            self.manifest_loads.clone(),
        );
        registry.register(
            "availability_changes_requested",
            "Availability changes the tracker asked for, by the availability asked",
            self.changes_requested.clone(),
        );
        registry.register(
            "availability_changes_confirmed",
            "Availability changes read back as asked, by the availability asked",
            self.changes_confirmed.clone(),
        );
        registry.register(
            "availability_changes_failed",
            "Availability changes that failed or read back otherwise, by the availability asked",
            self.changes_failed.clone(),
        );
    }

    /// One request took `elapsed`; `error` is the status label of its failure, if it failed.
    pub fn request(&self, operation: Operation, elapsed: Duration, error: Option<String>) {
        let operation = operation.label();
        self.durations
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
        if let Some(status) = error {
            self.errors.get_or_create(&ErrorLabels { operation, status }).inc();
        }
    }

    pub fn manifest_loaded(&self) {
        self.manifest_loads.inc();
    }

    /// Whether any manifest has been loaded since the start (readiness).
    pub fn has_manifest(&self) -> bool {
        self.manifest_loads.get() > 0
    }

    pub fn change_requested(&self, available: bool) {
        self.changes_requested.get_or_create(&ChangeLabels { available }).inc();
    }

    /// The change was read back as asked (`confirmed`), or failed or read back otherwise.
    pub fn change_settled(&self, available: bool, confirmed: bool) {
        let family = if confirmed {
            &self.changes_confirmed
        } else {
            &self.changes_failed
        };
        family.get_or_create(&ChangeLabels { available }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposed(metrics: &BookMetrics) -> String {
        let mut registry = Registry::with_prefix("status");
        metrics.register(&mut registry);
        crate::metrics::encode(&registry).expect("encodes")
    }

    #[test]
    fn change_and_fixed_error_series_are_there_at_zero_before_anything_happens() {
        let text = exposed(&BookMetrics::default());
        for kind in ["requested", "confirmed", "failed"] {
            for available in ["true", "false"] {
                let series = format!("status_availability_changes_{kind}_total{{available=\"{available}\"}} 0");
                assert!(text.lines().any(|l| l == series), "{series} missing:\n{text}");
            }
        }
        for operation in ["manifest", "read", "set"] {
            for status in ["timeout", "unreachable", "bad_answer"] {
                let series =
                    format!("status_book_request_errors_total{{operation=\"{operation}\",status=\"{status}\"}} 0");
                assert!(text.lines().any(|l| l == series), "{series} missing:\n{text}");
            }
        }
    }

    #[test]
    fn settled_changes_count_in_their_own_series() {
        let metrics = BookMetrics::default();
        metrics.change_requested(false);
        metrics.change_settled(false, false);
        let text = exposed(&metrics);
        for (series, value) in [
            (r#"status_availability_changes_requested_total{available="false"}"#, 1),
            (r#"status_availability_changes_failed_total{available="false"}"#, 1),
            (r#"status_availability_changes_confirmed_total{available="false"}"#, 0),
            (r#"status_availability_changes_failed_total{available="true"}"#, 0),
        ] {
            assert!(
                text.lines().any(|l| l == format!("{series} {value}")),
                "{series} {value}:\n{text}"
            );
        }
    }
}
