//! The transcriber: final-only transcripts of each call's whole audio (spec §3.5,
//! `TranscriptionPipeline`) as a durable pull consumer on `CALLS_AUDIO`. Replicas share the
//! consumer; whichever receives a call's final chunk rebuilds the audio from the stream (no
//! per-call state), transcribes it and publishes `transcription.complete.{sid}.{tg}.{call_id}`
//! before acking. `transcription.enabled: false` is a supported deployment: the service then
//! consumes nothing and the rest of the pipeline runs without transcripts.
//!
//! # Layout
//!
//! - [`config`]: the settings, [`TranscriberConfig`] and the spec's [`TranscriptionConfig`];
//! - [`provider`]: the configured [`Provider`] behind one interface;
//! - [`openai`]: the provider for any OpenAI-compatible `/v1/audio/transcriptions` endpoint;
//! - [`whisper`]: the built-in whisper.cpp engine;
//! - [`error`]: [`TranscriptionError`], transient or permanent;
//! - `gate`: the back-off that protects the provider after repeated failures;
//! - `transcribe`: one audio message to at most one transcript, and its failure handling;
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod error;
mod gate;
pub mod metrics;
pub mod openai;
pub mod provider;
mod transcribe;
pub mod whisper;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::ensure::{ensure_consumer, ensure_topology_retrying};
use bcfy_bus::topology::{ConsumerSpec, Topology};
use bcfy_bus::{Publisher, worker};
use bcfy_runtime::admin::{Readiness, serve_with_admin};
use tokio_util::sync::CancellationToken;

pub use config::{TranscriberConfig, TranscriptionConfig};
pub use error::TranscriptionError;
pub use openai::OpenAiProvider;
pub use provider::{Provider, ProviderError, Transcript};
pub use whisper::WhisperProvider;

/// Pause between attempts to set up NATS.
const RETRY: Duration = Duration::from_secs(2);

/// Why the transcriber could not run.
#[derive(Debug, thiserror::Error)]
pub enum TranscriberError {
    /// The admin port could not be bound.
    #[error("cannot bind the admin port")]
    Admin(#[source] std::io::Error),
    /// NATS settings could not be used.
    #[error(transparent)]
    Connect(#[from] bcfy_bus::connect::ConnectError),
    /// The durable consumer could not be set up.
    #[error(transparent)]
    Consumer(#[from] bcfy_bus::ensure::EnsureError),
    /// The pull subscription could not be opened.
    #[error("cannot pull from the consumer")]
    Pull(#[source] async_nats::Error),
    /// The provider could not be set up.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// Metrics could not be registered.
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
}

/// Runs the transcriber with its admin port until `shutdown`; returns after the calls in
/// flight have finished.
///
/// # Errors
///
/// When the admin port, NATS, the consumer, the provider or the metrics cannot be set up.
pub async fn run(
    config: TranscriberConfig,
    shutdown: CancellationToken,
) -> Result<(), TranscriberError> {
    let addr = config.admin.listen_addr;
    serve_with_admin(addr, shutdown.clone(), |readiness, registry| {
        serve(config, shutdown, readiness, registry)
    })
    .await
    .map_err(TranscriberError::Admin)?
}

/// Runs the transcriber with the caller's readiness and metrics registry (tests inspect them).
///
/// # Errors
///
/// As [`run`].
pub async fn serve(
    config: TranscriberConfig,
    shutdown: CancellationToken,
    readiness: Readiness,
    registry: prometheus::Registry,
) -> Result<(), TranscriberError> {
    let ready = readiness.latch("nats");
    let metrics = metrics::Metrics::register(&registry).map_err(TranscriberError::Metrics)?;
    if !config.transcription.enabled {
        ready.set_ready();
        tracing::info!("Transcription is disabled; consuming nothing.");
        shutdown.cancelled().await;
        return Ok(());
    }
    let js = jetstream::new(bcfy_bus::connect::connect(&config.nats, "transcriber").await?);
    if !ensure_topology_retrying(
        &js,
        &Topology::new(config.topology.clone()),
        RETRY,
        &shutdown,
    )
    .await
    {
        return Ok(());
    }
    let consumer_config = config.consumer.clone();
    let concurrency = config.transcription.max_concurrency.max(1);
    let spec = ConsumerSpec {
        ack_wait: consumer_config.ack_wait,
        ..ConsumerSpec::transcriber(i64::try_from(concurrency).unwrap_or(i64::MAX)).with_filter(
            consumer_config.durable_name.clone(),
            consumer_config.filter_subject.clone(),
        )
    };
    let (consumer, _) = ensure_consumer(&js, &spec).await?;
    let provider = Provider::from_config(&config.transcription).await?;
    let gate = gate::ProviderGate::new(
        consumer_config.provider_backoff_after,
        consumer_config.provider_backoff_initial,
        consumer_config.provider_backoff_max,
    );
    let transcriber = Arc::new(transcribe::Transcriber {
        js: js.clone(),
        publisher: Publisher::new(js.clone()),
        provider,
        settings: config.transcription.clone(),
        gate: gate.clone(),
        consumer: consumer_config.clone(),
        metrics,
    });
    let messages = consumer
        .stream()
        .max_messages_per_batch(concurrency)
        .messages()
        .await
        .map_err(|e| TranscriberError::Pull(e.into()))?;
    ready.set_ready();
    tracing::info!(consumer = %consumer_config.durable_name, filter = %consumer_config.filter_subject, concurrency, model = %config.transcription.model, "Transcriber started.");
    // While the provider keeps failing, calls are handed back for the rest of the pause.
    let hold_back = || Some(gate.wait()).filter(|pause| !pause.is_zero());
    worker::work(messages, concurrency, &shutdown, hold_back, |delivery| {
        let transcriber = Arc::clone(&transcriber);
        async move { transcriber.handle(delivery).await }
    })
    .await;
    tracing::info!("Transcriber stopped.");
    Ok(())
}
