//! The poller's Prometheus metrics (`bcfy_live_producer_*`, labelled by shard).

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// Every metric the poller records.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Calls published (new to the stream).
    pub dispatched: IntCounterVec,
    /// Calls seen again (look-back repeats, or dropped as duplicates by the stream).
    pub duplicates: IntCounterVec,
    /// Poll latency in seconds.
    pub poll_seconds: HistogramVec,
    /// Failed polls by error kind.
    pub poll_errors: IntCounterVec,
    /// Logins refused.
    pub auth_failures: IntCounterVec,
    /// Retries after a failed poll.
    pub retries: IntCounterVec,
    /// Waits for the shared request budget or an upstream back-off.
    pub rate_limit_waits: IntCounterVec,
    /// Polls skipped because the downstream backlog was over the threshold.
    pub backpressure_pauses: IntCounterVec,
    /// Calls dead-lettered (unusable upstream records).
    pub dead_letters: IntCounterVec,
    /// The downstream backlog last read.
    pub downstream_backlog: IntGauge,
    /// 1 while this replica holds the shard's lease.
    pub lease_held: IntGaugeVec,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = MetricsBuilder::new(registry, "bcfy_live_producer");
        let by_shard = |name: &str, help: &str| m.counter_vec(name, help, &["shard"]);
        Ok(Self {
            dispatched: by_shard("dispatched_total", "Calls published to calls.live.")?,
            duplicates: by_shard("duplicates_total", "Calls seen again and not republished.")?,
            poll_seconds: m.histogram_vec(
                "poll_duration_seconds",
                "Live-calls poll latency.",
                &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                &["shard"],
            )?,
            poll_errors: m.counter_vec(
                "poll_errors_total",
                "Failed polls by error kind.",
                &["shard", "kind"],
            )?,
            auth_failures: by_shard("auth_failures_total", "Refused logins.")?,
            retries: by_shard("retries_total", "Retries after a failed poll.")?,
            rate_limit_waits: by_shard(
                "rate_limit_waits_total",
                "Waits for the budget or a back-off.",
            )?,
            backpressure_pauses: by_shard(
                "backpressure_pauses_total",
                "Polls skipped for downstream backlog.",
            )?,
            dead_letters: by_shard(
                "dead_letters_total",
                "Unusable upstream records dead-lettered.",
            )?,
            downstream_backlog: m.gauge(
                "downstream_backlog",
                "Unfinished calls.live messages of the downstream consumer.",
            )?,
            lease_held: m.gauge_vec(
                "lease_held",
                "1 while this replica polls the shard.",
                &["shard"],
            )?,
        })
    }
}
