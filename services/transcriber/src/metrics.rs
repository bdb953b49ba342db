//! Prometheus metrics of the transcriber (`bcfy_transcriber_*`).

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

/// Every metric the transcriber updates.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Transcripts published.
    pub transcriptions: IntCounter,
    /// Failures by kind (`stt_rate_limited`, `stt_empty_text`, `reassembly`, …).
    pub failures: IntCounterVec,
    /// Seconds one provider request took.
    pub stt_seconds: Histogram,
    /// Seconds from the call's `ts` to its transcript stored.
    pub call_to_transcript_seconds: Histogram,
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
    /// 1 while the provider refuses our key (401, 402, 403) and this replica takes no calls.
    pub refused: IntGauge,
    /// Pauses of this replica because the provider refused our key.
    pub refusal_pauses: IntCounter,
    /// Calls not sent to the provider, by reason (`no_speech`, `tones_only`).
    pub gated: IntCounterVec,
    /// Seconds of audio not sent to the provider.
    pub gated_audio_seconds: prometheus::Counter,
    /// Segments dropped as known hallucinations.
    pub hallucinations_dropped: IntCounter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = MetricsBuilder::new(registry, "bcfy_transcriber");
        Ok(Self {
            transcriptions: m.counter("transcriptions_total", "Transcripts published.")?,
            failures: m.counter_vec(
                "failures_total",
                "Failed transcriptions, by kind.",
                &["kind"],
            )?,
            call_to_transcript_seconds: m.histogram(
                "call_to_transcript_seconds",
                "From the call's logging upstream (ts) to its transcript stored.",
                bcfy_runtime::metrics::LATENCY_BUCKETS,
            )?,
            stt_seconds: m.histogram(
                "stt_duration_seconds",
                "Seconds one provider request took.",
                &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0],
            )?,
            real_time_factor: m.histogram(
                "real_time_factor",
                "Provider seconds per second of audio.",
                &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0],
            )?,
            audio_seconds: m
                .float_counter("audio_seconds_total", "Seconds of audio transcribed.")?,
            in_flight: m.gauge("in_flight", "Calls being transcribed.")?,
            dead_letters: m.counter_vec(
                "dead_letters_total",
                "Calls dead-lettered, by kind.",
                &["kind"],
            )?,
            provider_pauses: m.counter(
                "provider_pauses_total",
                "Pauses after repeated provider failures.",
            )?,
            refused: m.gauge(
                "refused",
                "1 while the STT provider refuses this service's key and no calls are taken.",
            )?,
            gated: m.counter_vec(
                "gated_total",
                "Calls not sent to the provider because they hold no speech, by reason.",
                &["reason"],
            )?,
            gated_audio_seconds: m.float_counter(
                "gated_audio_seconds_total",
                "Seconds of audio not sent to the provider.",
            )?,
            hallucinations_dropped: m.counter(
                "hallucinations_dropped_total",
                "Transcript segments dropped as known hallucinations.",
            )?,
            refusal_pauses: m.counter(
                "refusal_pauses_total",
                "Pauses because the STT provider refused this service's key.",
            )?,
        })
    }
}
