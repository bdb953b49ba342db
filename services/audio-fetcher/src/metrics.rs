//! The audio fetcher's Prometheus metrics (`bcfy_audio_fetcher_*`).

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

/// Every metric the fetcher records.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Downloads by outcome (`ok`, `not_found`, `error`).
    pub downloads: IntCounterVec,
    /// Audio bytes downloaded and published.
    pub bytes: IntCounter,
    /// Download latency in seconds (successful downloads).
    pub download_seconds: Histogram,
    /// Seconds from the call's `ts` to its audio stored.
    pub call_to_audio_seconds: Histogram,
    /// Redeliveries asked for, by reason.
    pub retries: IntCounterVec,
    /// Calls dead-lettered, by kind.
    pub dead_letters: IntCounterVec,
    /// Downloads in flight.
    pub in_flight: IntGauge,
    /// Pulls held back because the transcriber's backlog was over the threshold.
    pub backpressure_pauses: IntCounter,
    /// The transcriber consumer's latest backlog reading (when transcription is enabled).
    pub transcriber_backlog: IntGauge,
    /// 1 while the CDN refuses this service (401, 403 to every call) and no calls are taken.
    pub refused: IntGauge,
    /// Pauses of this replica because the CDN refused it.
    pub refusal_pauses: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = MetricsBuilder::new(registry, "bcfy_audio_fetcher");
        Ok(Self {
            downloads: m.counter_vec("downloads_total", "Downloads by outcome.", &["outcome"])?,
            bytes: m.counter("bytes_total", "Audio bytes downloaded and published.")?,
            download_seconds: m.histogram(
                "download_duration_seconds",
                "From the first CDN request to the last piece handed to NATS.",
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )?,
            call_to_audio_seconds: m.histogram(
                "call_to_audio_seconds",
                "From the call's logging upstream (ts) to its audio stored.",
                bcfy_runtime::metrics::LATENCY_BUCKETS,
            )?,
            retries: m.counter_vec(
                "retries_total",
                "Redeliveries asked for, by reason.",
                &["kind"],
            )?,
            dead_letters: m.counter_vec(
                "dead_letters_total",
                "Calls dead-lettered, by kind.",
                &["kind"],
            )?,
            in_flight: m.gauge("in_flight", "Downloads in flight.")?,
            backpressure_pauses: m.counter(
                "backpressure_pauses_total",
                "Pulls held back for the transcriber's backlog.",
            )?,
            transcriber_backlog: m.gauge(
                "transcriber_backlog",
                "The transcriber consumer's latest backlog (pending plus unacknowledged).",
            )?,
            refused: m.gauge(
                "refused",
                "1 while the CDN refuses this service and no calls are taken.",
            )?,
            refusal_pauses: m.counter(
                "refusal_pauses_total",
                "Pauses because the CDN refused every download.",
            )?,
        })
    }
}
