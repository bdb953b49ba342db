//! Test harness shared by every crate's tests: real servers, not mocks.
//!
//! # Layout
//!
//! - [`nats`]: [`NatsServer`] runs a real `nats-server` with JetStream on random loopback ports
//!   and a temporary store, restarts it on the same store, forms a three-node [`NatsCluster`],
//!   and kills and cleans up on drop. The binary comes from `NATS_SERVER_BIN`, else `PATH`, else
//!   the pinned version is provisioned under `target/` (see [`nats::binary`]); and
//!   [`nats::stream_messages`] counts what a stream holds; [`nats::credentials`] issues NKey
//!   users and the operator/account/user JWTs of a `.creds` file.
//! - [`eventually`](mod@eventually): wait for a condition with patience instead of sleeping;
//! - [`isolated`]: a service in a runtime of its own, to stop or kill, and metric readings.
//! - [`service`]: a service's `run` under test ([`ServiceUnderTest`]), with its readiness and
//!   metrics;
//! - [`stt`]: an in-process OpenAI-compatible speech-to-text server ([`FakeStt`]);
//! - [`faster_whisper`]: a real faster-whisper-server on the tiny.en model;
//! - [`pki`]: a throwaway CA with server and client certificates ([`pki::Pki`]);
//! - [`otlp`]: an in-process OTLP/gRPC collector that records the spans services export;
//! - [`proc_stat`]: CPU time of processes and threads, for benchmarks;
//! - [`speech`]: word error rates of transcripts, and the offline Whisper test model;
//! - [`sse`]: a Server-Sent Events client ([`sse::SseStream`]);
//! - [`browser`]: headless Chromium through ChromeDriver ([`browser::Browser`]);
//! - [`trace_init`]: scoped, test-friendly logs (`RUST_LOG` to change the level).

pub mod browser;
pub mod eventually;
pub mod faster_whisper;
pub mod isolated;
pub mod nats;
pub mod otlp;
pub mod pki;
pub mod proc_stat;
pub mod service;
pub mod speech;
pub mod sse;
pub mod stt;

pub use eventually::eventually;
pub use isolated::{Isolated, metric};
pub use nats::{NatsCluster, NatsServer};
pub use service::ServiceUnderTest;
pub use stt::FakeStt;

/// Turns on logs captured by the test harness, once per test binary, and gives spans
/// OpenTelemetry trace ids (not exported) as the services' telemetry does, so published events
/// carry `traceparent`. The filter comes from `RUST_LOG` (default `warn`, `info` for ours).
pub fn trace_init() {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};

    static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> =
        std::sync::OnceLock::new();
    let mut first = false;
    let provider = PROVIDER.get_or_init(|| {
        first = true;
        opentelemetry_sdk::trace::SdkTracerProvider::builder().build()
    });
    if !first {
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(
            "warn,bcfy_bus=info,bcfy_runtime=info,bcfy_poller=info,bcfy_broadcastify=info",
        )
    });
    // Spans must reach the OpenTelemetry layer whatever the log level, so only the log
    // output is filtered.
    let logs = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(filter);
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("tests"));
    // NOTE: fails only when something else installed a global subscriber first; then logs and
    // trace ids go there.
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .ok();
}
