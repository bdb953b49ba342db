//! The alerter's Prometheus metrics (`bcfy_alerter_*`).

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{Histogram, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// Every metric the alerter records.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Transcripts taken, by outcome (`evaluated`, `too_old`, `redriven`).
    pub transcripts: IntCounterVec,
    /// Seconds to evaluate every rule against one transcript.
    pub evaluation_seconds: Histogram,
    /// Alerts published, by rule ("system" for the monitor).
    pub alerts: IntCounterVec,
    /// Matches that raised no alert, by rule and reason (`cooldown`).
    pub suppressed: IntCounterVec,
    /// Rules in force.
    pub rules: IntGauge,
    /// 1 for each rule that cannot be used (see the log for why).
    pub rule_invalid: IntGaugeVec,
    /// Delivery attempts by destination and outcome (`delivered`, `retry`, `rejected`).
    pub deliveries: IntCounterVec,
    /// Seconds a destination took to answer.
    pub delivery_seconds: HistogramVec,
    /// Dead letters written, by kind.
    pub dead_letters: IntCounterVec,
    /// 1 while a system condition is raised, by kind and subject.
    pub system_conditions: IntGaugeVec,
    /// Each durable consumer's backlog (pending plus unacknowledged), as the monitor last read it.
    pub consumer_backlog: IntGaugeVec,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = MetricsBuilder::new(registry, "bcfy_alerter");
        Ok(Self {
            transcripts: m.counter_vec(
                "transcripts_total",
                "Transcripts taken, by outcome.",
                &["outcome"],
            )?,
            evaluation_seconds: m.histogram(
                "evaluation_seconds",
                "Seconds to evaluate every rule against one transcript.",
                &[
                    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.001_5, 0.002, 0.003, 0.004,
                    0.005, 0.01, 0.05,
                ],
            )?,
            alerts: m.counter_vec("alerts_total", "Alerts published, by rule.", &["rule"])?,
            suppressed: m.counter_vec(
                "suppressed_total",
                "Matches that raised no alert, by rule and reason.",
                &["rule", "reason"],
            )?,
            rules: m.gauge("rules", "Rules in force.")?,
            rule_invalid: m.gauge_vec(
                "rule_invalid",
                "1 for each rule that cannot be used.",
                &["rule"],
            )?,
            deliveries: m.counter_vec(
                "deliveries_total",
                "Delivery attempts by destination and outcome.",
                &["destination", "outcome"],
            )?,
            delivery_seconds: m.histogram_vec(
                "delivery_seconds",
                "Seconds a destination took to answer.",
                &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                &["destination"],
            )?,
            dead_letters: m.counter_vec(
                "dead_letters_total",
                "Dead letters written, by kind.",
                &["kind"],
            )?,
            system_conditions: m.gauge_vec(
                "system_conditions",
                "1 while a system condition is raised.",
                &["kind", "subject"],
            )?,
            consumer_backlog: m.gauge_vec(
                "consumer_backlog",
                "Each durable consumer's backlog, pending plus unacknowledged.",
                &["consumer"],
            )?,
        })
    }
}
