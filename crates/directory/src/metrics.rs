//! Prometheus metrics of the directory (`bcfy_directory_*`), registered by the service that
//! hosts it.

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{IntCounterVec, IntGaugeVec, Registry};

/// Every metric the directory updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Lookups by level and outcome: `hit`, `fetched`, `waited` (another replica fetched it),
    /// `stale` (served expired while the upstream failed), `failed`.
    pub lookups: IntCounterVec,
    /// Upstream failures by API and kind.
    pub upstream_errors: IntCounterVec,
    /// Failures in a row per API (0 after a success): what an integration monitor alerts on.
    pub consecutive_failures: IntGaugeVec,
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
        let m = MetricsBuilder::new(registry, "bcfy_directory");
        let metrics = Self {
            lookups: m.counter_vec(
                "lookups_total",
                "Directory lookups, by level and outcome.",
                &["level", "outcome"],
            )?,
            upstream_errors: m.counter_vec(
                "upstream_errors_total",
                "Upstream failures, by API and kind.",
                &["api", "kind"],
            )?,
            consecutive_failures: m.gauge_vec(
                "upstream_consecutive_failures",
                "Upstream failures in a row, by API (0 after a success).",
                &["api"],
            )?,
            answers: m.counter_vec(
                "answers_total",
                "API answers, by API and status.",
                &["api", "status"],
            )?,
        };
        // Both series exist from the start, so an alert on them never sees "no data".
        for api in ["catalog", "calls_api"] {
            metrics
                .consecutive_failures
                .with_label_values(&[api])
                .set(0);
        }
        Ok(metrics)
    }
}
