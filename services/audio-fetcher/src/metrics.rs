//! The audio fetcher's Prometheus metrics (`bcfy_audio_fetcher_*`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the fetcher records.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Downloads by outcome (`ok`, `not_found`, `error`).
    pub downloads: IntCounterVec,
    /// Audio bytes downloaded and published.
    pub bytes: IntCounter,
    /// Download latency in seconds (successful downloads).
    pub download_seconds: Histogram,
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
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let name = |n: &str| format!("bcfy_audio_fetcher_{n}");
        let downloads = IntCounterVec::new(
            Opts::new(name("downloads_total"), "Downloads by outcome."),
            &["outcome"],
        )?;
        let bytes = IntCounter::new(name("bytes_total"), "Audio bytes downloaded and published.")?;
        let download_seconds = Histogram::with_opts(
            HistogramOpts::new(
                name("download_duration_seconds"),
                "From the first CDN request to the last piece handed to NATS.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let retries = IntCounterVec::new(
            Opts::new(name("retries_total"), "Redeliveries asked for, by reason."),
            &["kind"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(name("dead_letters_total"), "Calls dead-lettered, by kind."),
            &["kind"],
        )?;
        let in_flight = IntGauge::new(name("in_flight"), "Downloads in flight.")?;
        let backpressure_pauses = IntCounter::new(
            name("backpressure_pauses_total"),
            "Pulls held back for the transcriber's backlog.",
        )?;
        let transcriber_backlog = IntGauge::new(
            name("transcriber_backlog"),
            "The transcriber consumer's latest backlog (pending plus unacknowledged).",
        )?;
        for metric in [
            Box::new(downloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(bytes.clone()),
            Box::new(download_seconds.clone()),
            Box::new(retries.clone()),
            Box::new(dead_letters.clone()),
            Box::new(in_flight.clone()),
            Box::new(backpressure_pauses.clone()),
            Box::new(transcriber_backlog.clone()),
        ] {
            registry.register(metric)?;
        }
        Ok(Self {
            downloads,
            bytes,
            download_seconds,
            retries,
            dead_letters,
            in_flight,
            backpressure_pauses,
            transcriber_backlog,
        })
    }
}
