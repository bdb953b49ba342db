//! The gateway's Prometheus metrics (`bcfy_gateway_*`).

use bcfy_runtime::metrics::MetricsBuilder;
use prometheus::{HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// Every metric the gateway records.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Open streaming connections, by kind (`sse`, `ws`).
    pub connections: IntGaugeVec,
    /// Events sent to clients, by event kind.
    pub events_sent: IntCounterVec,
    /// Clients disconnected by the gateway, by reason (`lagged`: fell behind the hub's buffer;
    /// `stopped_reading`: a write to it waited past `http.write_timeout`).
    pub clients_dropped: IntCounterVec,
    /// Request latency by route and status (for streams: until the response starts).
    pub request_seconds: HistogramVec,
    /// Stored messages that are not events, by stream kind (skipped).
    pub undecodable: IntCounterVec,
    /// Audio served, by where from (`cache`, `stream`).
    pub audio_served: IntCounterVec,
    /// The `TRANSCRIPTIONS` sequence the search index has committed up to.
    pub search_indexed_sequence: IntGauge,
}

impl Metrics {
    /// Creates the metrics and registers them.
    ///
    /// # Errors
    ///
    /// When a metric of the same name is already registered.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = MetricsBuilder::new(registry, "bcfy_gateway");
        Ok(Self {
            connections: m.gauge_vec(
                "connections",
                "Open streaming connections, by kind (sse, ws).",
                &["kind"],
            )?,
            events_sent: m.counter_vec(
                "events_sent_total",
                "Events sent to clients, by event kind.",
                &["kind"],
            )?,
            clients_dropped: m.counter_vec(
                "clients_dropped_total",
                "Streaming clients disconnected by the gateway, by reason.",
                &["reason"],
            )?,
            request_seconds: m.histogram_vec(
                "request_duration_seconds",
                "Request latency by route and status (streams: until the response starts).",
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
                &["route", "status"],
            )?,
            undecodable: m.counter_vec(
                "undecodable_total",
                "Stored messages that are not events, skipped, by stream kind.",
                &["kind"],
            )?,
            audio_served: m.counter_vec(
                "audio_served_total",
                "Audio responses, by source (cache, stream).",
                &["source"],
            )?,
            search_indexed_sequence: m.gauge(
                "search_indexed_sequence",
                "The TRANSCRIPTIONS sequence the search index has committed up to.",
            )?,
        })
    }
}
