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
//! - [`deepgram`]: the provider for Deepgram's pre-recorded API;
//! - [`assemblyai`]: the provider for AssemblyAI's asynchronous API (upload, create, poll);
//! - `http`: what the server providers share (client, status and body mapping);
//! - [`whisper`]: the built-in whisper.cpp engine;
//! - [`error`]: [`TranscriptionError`], transient or permanent;
//! - `gate`: the back-off that protects the provider after repeated failures (a refused key
//!   pauses through [`Refusals`] instead);
//! - [`hearing`]: before any engine, the call decoded once: speech or not, and its tones;
//! - [`cleanup`]: known Whisper hallucinations dropped when the engine doubts them;
//! - `units`: each segment's transmitting unit from the call's `srcList`;
//! - [`revise`]: the transcriber as a re-transcription job, publishing revisions;
//! - `transcribe`: one audio message to at most one transcript, and its failure handling;
//! - [`metrics`]: Prometheus metrics.

pub mod assemblyai;
pub mod cleanup;
pub mod config;
pub mod deepgram;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod gate;
pub mod hearing;
mod http;
pub mod metrics;
pub mod openai;
pub mod provider;
pub mod revise;
mod transcribe;
mod units;
pub mod whisper;

use std::sync::Arc;

use bcfy_bus::Stage;
use bcfy_bus::topology::ConsumerSpec;
use bcfy_runtime::service::{Context, DeadLetters, Refusals, StartError};

pub use assemblyai::AssemblyAiProvider;
pub use config::{TranscriberConfig, TranscriptionConfig};
pub use deepgram::DeepgramProvider;
pub use error::TranscriptionError;
pub use openai::OpenAiProvider;
pub use provider::{Provider, ProviderError, Transcript};
pub use whisper::WhisperProvider;

/// Why the transcriber could not run.
#[derive(Debug, thiserror::Error)]
pub enum TranscriberError {
    /// NATS, the consumer or the metrics could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The provider could not be set up.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// A re-transcription job could not read its range or create its consumer.
    #[error("the re-transcription job cannot start: {0}")]
    Job(#[source] async_nats::Error),
}

/// Runs the transcriber until shutdown; returns after the calls in flight have finished.
///
/// # Errors
///
/// When NATS settings, the consumer, the provider or the metrics cannot be set up.
pub async fn run(config: TranscriberConfig, context: Context) -> Result<(), TranscriberError> {
    let shutdown = context.shutdown();
    let metrics = context.register(metrics::Metrics::register)?;
    if !config.transcription.enabled {
        context.set_ready();
        tracing::info!("Transcription is disabled; consuming nothing.");
        shutdown.cancelled().await;
        return Ok(());
    }
    let Some(bus) = context.connect(&config.nats, &config.topology).await? else {
        return Ok(());
    };
    let consumer_config = config.consumer.clone();
    let concurrency = config.transcription.max_concurrency.max(1);
    let (spec, revising) = match config.retranscribe.job() {
        None => {
            let spec = ConsumerSpec {
                ack_wait: consumer_config.ack_wait,
                ..ConsumerSpec::transcriber(i64::try_from(concurrency).unwrap_or(i64::MAX))
                    .with_filter(
                        consumer_config.durable_name.clone(),
                        consumer_config.filter_subject.clone(),
                    )
            };
            (spec, None)
        }
        Some(job) => {
            let (spec, revising) =
                revise::prepare(&bus.js, job, consumer_config.ack_wait, concurrency)
                    .await
                    .map_err(TranscriberError::Job)?;
            (spec, Some(Arc::new(revising)))
        }
    };
    // The model loads before pulling starts, so no delivery waits on it.
    let provider = Provider::from_config(&config.transcription).await?;
    let worker = bus.worker(&spec, concurrency).await?;
    let gate = gate::ProviderGate::new(
        consumer_config.provider_backoff_after,
        consumer_config.provider_backoff(),
    )
    .reported_as(context.signals().signal(
        bcfy_runtime::service::signals::STT_FAILURES,
        config.transcription.provider.as_str(),
    ));
    // A refused key is unambiguous: the first refusal pauses.
    let refusals = Refusals::new(
        "stt_provider",
        1,
        consumer_config.provider_backoff(),
        context.readiness().latch("stt_provider"),
        metrics.refused.clone(),
        metrics.refusal_pauses.clone(),
    )
    .reported_by(context.signals());
    let transcriber = Arc::new(transcribe::Transcriber {
        js: bus.js.clone(),
        publisher: bus.publisher.clone(),
        dead_letters: DeadLetters::new(
            bus.publisher.clone(),
            Stage::Transcriber,
            metrics.dead_letters.clone(),
        ),
        provider,
        settings: config.transcription.clone(),
        gate: gate.clone(),
        refusals: refusals.clone(),
        consumer: consumer_config.clone(),
        metrics,
        revising: revising.clone(),
    });
    context.set_ready();
    tracing::info!(consumer = %spec.durable_name, filter = %spec.filter_subject, concurrency, model = %config.transcription.model, "Transcriber started.");
    // While the provider keeps failing or refuses us, calls are handed back for the rest of
    // the pause.
    let hold_back = || {
        let failing = Some(gate.wait()).filter(|pause| !pause.is_zero());
        failing.max(refusals.hold_back())
    };
    // A job stops when it is done, or on shutdown; the live service on shutdown only.
    let done = shutdown.child_token();
    let watching = revising.clone().map(|revising| {
        let (js, done, shutdown) = (bus.js.clone(), done.clone(), shutdown.clone());
        tokio::spawn(async move { revise::watch(&js, &revising, &done, &shutdown).await })
    });
    worker
        .run(&done, hold_back, |delivery| {
            let transcriber = Arc::clone(&transcriber);
            async move { transcriber.handle(delivery).await }
        })
        .await;
    if let (Some(revising), Some(watching)) = (revising, watching) {
        watching.abort();
        if !shutdown.is_cancelled() {
            revise::finish(&bus.js, &revising).await;
            // The job's work is the process's: it exits.
            shutdown.cancel();
        }
    }
    tracing::info!("Transcriber stopped.");
    Ok(())
}
