//! Creating a service's Prometheus metrics: each under the service's prefix, registered as it is
//! made, so a service's `Metrics::register` is one line per metric.

use prometheus::core::Collector;
use prometheus::{
    Counter, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

/// Seconds from `epoch_seconds` (a call's `ts`, when Broadcastify logged it) to now, for the
/// latency histograms; `None` when unknown.
pub fn seconds_since(epoch_seconds: Option<i64>) -> Option<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    epoch_seconds.map(|at| (now - at as f64).max(0.0))
}

/// Buckets of the call-to-stage latency histograms, in seconds: a poll interval to an outage.
pub const LATENCY_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0];

/// Makes and registers metrics named `{prefix}_{name}`.
#[derive(Debug, Clone, Copy)]
pub struct MetricsBuilder<'a> {
    registry: &'a Registry,
    prefix: &'static str,
}

impl<'a> MetricsBuilder<'a> {
    /// Metrics named `{prefix}_…` in `registry`.
    pub fn new(registry: &'a Registry, prefix: &'static str) -> Self {
        Self { registry, prefix }
    }

    fn opts(&self, name: &str, help: &str) -> Opts {
        Opts::new(format!("{}_{name}", self.prefix), help)
    }

    fn histogram_opts(&self, name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
        HistogramOpts::new(format!("{}_{name}", self.prefix), help).buckets(buckets.to_vec())
    }

    fn register<M: Collector + Clone + 'static>(&self, metric: M) -> prometheus::Result<M> {
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    /// An integer counter.
    ///
    /// # Errors
    ///
    /// When the name is invalid or already registered.
    pub fn counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.register(IntCounter::with_opts(self.opts(name, help))?)
    }

    /// A counter of fractional amounts (seconds of audio, say).
    ///
    /// # Errors
    ///
    /// As [`counter`](Self::counter).
    pub fn float_counter(&self, name: &str, help: &str) -> prometheus::Result<Counter> {
        self.register(Counter::with_opts(self.opts(name, help))?)
    }

    /// Integer counters by `labels`.
    ///
    /// # Errors
    ///
    /// As [`counter`](Self::counter).
    pub fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.register(IntCounterVec::new(self.opts(name, help), labels)?)
    }

    /// An integer gauge.
    ///
    /// # Errors
    ///
    /// As [`counter`](Self::counter).
    pub fn gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.register(IntGauge::with_opts(self.opts(name, help))?)
    }

    /// Integer gauges by `labels`.
    ///
    /// # Errors
    ///
    /// As [`counter`](Self::counter).
    pub fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntGaugeVec> {
        self.register(IntGaugeVec::new(self.opts(name, help), labels)?)
    }

    /// A histogram with `buckets`.
    ///
    /// # Errors
    ///
    /// As [`counter`](Self::counter).
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> prometheus::Result<Histogram> {
        self.register(Histogram::with_opts(
            self.histogram_opts(name, help, buckets),
        )?)
    }

    /// Histograms with `buckets` by `labels`.
    ///
    /// # Errors
    ///
    /// As [`counter`](Self::counter).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> prometheus::Result<HistogramVec> {
        self.register(HistogramVec::new(
            self.histogram_opts(name, help, buckets),
            labels,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_prefixed_registered_once_and_refused_twice() {
        let registry = Registry::new();
        let metrics = MetricsBuilder::new(&registry, "bcfy_test");
        metrics.counter("calls_total", "Calls.").unwrap().inc();
        metrics
            .histogram("seconds", "Time.", &[0.1, 1.0])
            .unwrap()
            .observe(0.5);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned())
            .collect();
        assert_eq!(names, ["bcfy_test_calls_total", "bcfy_test_seconds"]);
        assert!(metrics.counter("calls_total", "Again.").is_err());
    }
}
