//! The poller's Prometheus metrics (`bcfy_live_producer_*`, labelled by shard).

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

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
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
                let metric = IntCounterVec::new(
                    Opts::new(format!("bcfy_live_producer_{name}"), help),
                    labels,
                )?;
                registry.register(Box::new(metric.clone()))?;
                Ok(metric)
            };
        let poll_seconds = HistogramVec::new(
            HistogramOpts::new(
                "bcfy_live_producer_poll_duration_seconds",
                "Live-calls poll latency.",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["shard"],
        )?;
        registry.register(Box::new(poll_seconds.clone()))?;
        let downstream_backlog = IntGauge::new(
            "bcfy_live_producer_downstream_backlog",
            "Unfinished calls.live messages of the downstream consumer.",
        )?;
        registry.register(Box::new(downstream_backlog.clone()))?;
        let lease_held = IntGaugeVec::new(
            Opts::new(
                "bcfy_live_producer_lease_held",
                "1 while this replica polls the shard.",
            ),
            &["shard"],
        )?;
        registry.register(Box::new(lease_held.clone()))?;
        Ok(Self {
            dispatched: counter(
                "dispatched_total",
                "Calls published to calls.live.",
                &["shard"],
            )?,
            duplicates: counter(
                "duplicates_total",
                "Calls seen again and not republished.",
                &["shard"],
            )?,
            poll_seconds,
            poll_errors: counter(
                "poll_errors_total",
                "Failed polls by error kind.",
                &["shard", "kind"],
            )?,
            auth_failures: counter("auth_failures_total", "Refused logins.", &["shard"])?,
            retries: counter("retries_total", "Retries after a failed poll.", &["shard"])?,
            rate_limit_waits: counter(
                "rate_limit_waits_total",
                "Waits for the budget or a back-off.",
                &["shard"],
            )?,
            backpressure_pauses: counter(
                "backpressure_pauses_total",
                "Polls skipped for downstream backlog.",
                &["shard"],
            )?,
            dead_letters: counter(
                "dead_letters_total",
                "Unusable upstream records dead-lettered.",
                &["shard"],
            )?,
            downstream_backlog,
            lease_held,
        })
    }
}
