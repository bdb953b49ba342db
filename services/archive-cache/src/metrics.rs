//! Prometheus metrics of the archive cache (`bcfy_archive_cache_*`).

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{Histogram, IntCounter, IntCounterVec, Registry};

/// Every metric the archive cache updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Block lookups by outcome: `hit` (fresh entry), `miss` (fetched upstream by this replica),
    /// `stale` (an expired entry was refreshed), `waited` (another replica was fetching it).
    pub requests: IntCounterVec,
    /// Seconds the upstream took per block fetched.
    pub upstream_seconds: Histogram,
    /// Upstream failures, by kind.
    pub upstream_errors: IntCounterVec,
    /// Times a fetch waited for, or was refused by, the fleet's budget or back-off.
    pub budget_waits: IntCounter,
    /// API answers by API (`grpc`, `nats`) and status.
    pub answers: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = MetricsBuilder::new(registry, "bcfy_archive_cache");
        Ok(Self {
            requests: m.counter_vec("lookups_total", "Block lookups, by outcome.", &["outcome"])?,
            upstream_seconds: m.histogram(
                "upstream_seconds",
                "Upstream fetch time per block.",
                &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            )?,
            upstream_errors: m.counter_vec(
                "upstream_errors_total",
                "Upstream failures, by kind.",
                &["kind"],
            )?,
            budget_waits: m.counter(
                "budget_waits_total",
                "Fetches that waited for or were refused by the shared budget or back-off.",
            )?,
            answers: m.counter_vec(
                "answers_total",
                "API answers, by API and status.",
                &["api", "status"],
            )?,
        })
    }
}
