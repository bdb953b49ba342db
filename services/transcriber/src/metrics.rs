//! Prometheus metrics of the transcriber (`bcfy_transcriber_*`).

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Every metric the transcriber updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Transcripts published.
    pub transcriptions: IntCounter,
    /// Failures by kind (`stt_rate_limited`, `stt_empty_text`, `reassembly`, …).
    pub failures: IntCounterVec,
    /// Seconds one provider request took.
    pub stt_seconds: Histogram,
    /// Provider seconds per second of audio.
    pub real_time_factor: Histogram,
    /// Seconds of audio transcribed.
    pub audio_seconds: prometheus::Counter,
    /// Calls being transcribed.
    pub in_flight: IntGauge,
    /// Calls dead-lettered, by kind.
    pub dead_letters: IntCounterVec,
    /// Pauses of this replica after repeated provider failures.
    pub provider_pauses: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let name = |n: &str| format!("bcfy_transcriber_{n}");
        let transcriptions =
            IntCounter::new(name("transcriptions_total"), "Transcripts published.")?;
        let failures = IntCounterVec::new(
            Opts::new(name("failures_total"), "Failed transcriptions, by kind."),
            &["kind"],
        )?;
        let stt_seconds = Histogram::with_opts(
            HistogramOpts::new(
                name("stt_duration_seconds"),
                "Seconds one provider request took.",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0]),
        )?;
        let real_time_factor = Histogram::with_opts(
            HistogramOpts::new(
                name("real_time_factor"),
                "Provider seconds per second of audio.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0]),
        )?;
        let audio_seconds =
            prometheus::Counter::new(name("audio_seconds_total"), "Seconds of audio transcribed.")?;
        let in_flight = IntGauge::new(name("in_flight"), "Calls being transcribed.")?;
        let dead_letters = IntCounterVec::new(
            Opts::new(name("dead_letters_total"), "Calls dead-lettered, by kind."),
            &["kind"],
        )?;
        let provider_pauses = IntCounter::new(
            name("provider_pauses_total"),
            "Pauses after repeated provider failures.",
        )?;
        for metric in [
            Box::new(transcriptions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(stt_seconds.clone()),
            Box::new(real_time_factor.clone()),
            Box::new(audio_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(dead_letters.clone()),
            Box::new(provider_pauses.clone()),
        ] {
            registry.register(metric)?;
        }
        Ok(Self {
            transcriptions,
            failures,
            stt_seconds,
            real_time_factor,
            audio_seconds,
            in_flight,
            dead_letters,
            provider_pauses,
        })
    }
}
