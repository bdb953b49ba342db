//! Prometheus metrics of the archive cache (`bcfy_archive_cache_*`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

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
        let name = |n: &str| format!("bcfy_archive_cache_{n}");
        let requests = IntCounterVec::new(
            Opts::new(name("lookups_total"), "Block lookups, by outcome."),
            &["outcome"],
        )?;
        let upstream_seconds = Histogram::with_opts(
            HistogramOpts::new(name("upstream_seconds"), "Upstream fetch time per block.")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(name("upstream_errors_total"), "Upstream failures, by kind."),
            &["kind"],
        )?;
        let budget_waits = IntCounter::new(
            name("budget_waits_total"),
            "Fetches that waited for or were refused by the shared budget or back-off.",
        )?;
        let answers = IntCounterVec::new(
            Opts::new(name("answers_total"), "API answers, by API and status."),
            &["api", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(upstream_seconds.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(budget_waits.clone()))?;
        registry.register(Box::new(answers.clone()))?;
        Ok(Self {
            requests,
            upstream_seconds,
            upstream_errors,
            budget_waits,
            answers,
        })
    }
}
