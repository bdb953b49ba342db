//! The audio fetcher: a durable pull consumer on `CALLS_LIVE` that downloads each call's audio
//! from the CDN once and publishes it on `calls.audio.raw.{sid}.{tg}.{call_id}` (spec §3.4,
//! `AudioConsumer`). Replicas share the durable consumer; downloads in flight are bounded by
//! `audio.max_concurrency`; pulling pauses while the transcriber's backlog is over its threshold.
//!
//! # Layout
//!
//! - [`config`]: the settings, [`FetcherConfig`];
//! - `fetch`: one call from live message to published audio, and its failure handling;
//! - [`metrics`]: Prometheus metrics.

pub mod config;
mod fetch;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use bcfy_broadcastify::Client;
use bcfy_bus::Stage;
use bcfy_bus::backlog::Backlog;
use bcfy_bus::topology::{ConsumerSpec, STREAM_CALLS_AUDIO};
use bcfy_runtime::service::{Context, DeadLetters, Refusals, StartError};

pub use config::{AudioConfig, FetcherConfig};

/// How often the transcriber's backlog is read, and how long a paused pull waits.
const BACKLOG_EVERY: Duration = Duration::from_millis(500);

/// Why the fetcher could not run.
#[derive(Debug, thiserror::Error)]
pub enum FetcherError {
    /// NATS, the consumer or the metrics could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] bcfy_broadcastify::client::BuildError),
}

/// Runs the fetcher until shutdown; returns after the downloads in flight have finished.
///
/// # Errors
///
/// When NATS settings, the consumer, the client or the metrics cannot be set up.
pub async fn run(config: FetcherConfig, context: Context) -> Result<(), FetcherError> {
    let shutdown = context.shutdown();
    let metrics = context.register(metrics::Metrics::register)?;
    let Some(bus) = context.connect(&config.nats, &config.topology).await? else {
        return Ok(());
    };
    let audio = config.audio.clone();
    let concurrency = audio.max_concurrency.max(1);
    let spec = ConsumerSpec {
        ack_wait: audio.ack_wait,
        ..ConsumerSpec::audio_fetcher(i64::try_from(concurrency).unwrap_or(i64::MAX))
            .with_filter(audio.durable_name.clone(), audio.filter_subject.clone())
    };
    let worker = bus.worker(&spec, concurrency).await?;
    let refusals = Refusals::new(
        "cdn",
        audio.refusals_to_pause,
        audio.retry_backoff(),
        context.readiness().latch("cdn"),
        metrics.refused.clone(),
        metrics.refusal_pauses.clone(),
    )
    .reported_by(context.signals());
    let fetcher = Arc::new(fetch::Fetcher {
        client: Client::new(config.broadcastify.clone())?,
        publisher: bus.publisher.clone(),
        dead_letters: DeadLetters::new(
            bus.publisher.clone(),
            Stage::AudioFetcher,
            metrics.dead_letters.clone(),
        ),
        config: audio.clone(),
        metrics: metrics.clone(),
        refusals: refusals.clone(),
    });
    let backlog = Backlog::new(
        bus.js.clone(),
        STREAM_CALLS_AUDIO,
        &audio.transcriber_consumer,
    );
    let watcher_stop = shutdown.child_token();
    if audio.transcription_enabled {
        let gauge = metrics.transcriber_backlog.clone();
        tokio::spawn(
            backlog
                .clone()
                .watch(BACKLOG_EVERY, watcher_stop.clone(), move |backlog| {
                    gauge.set(i64::try_from(backlog).unwrap_or(i64::MAX))
                }),
        );
    }
    context.set_ready();
    tracing::info!(consumer = %audio.durable_name, filter = %audio.filter_subject, concurrency, "Audio fetcher started.");
    // While the transcriber lags or the CDN refuses us, a call is handed back for later instead
    // of downloaded.
    let hold_back = || {
        let lagging =
            audio.transcription_enabled && backlog.get() > audio.transcriber_backlog_threshold;
        let lagging = lagging.then(|| {
            metrics.backpressure_pauses.inc();
            BACKLOG_EVERY
        });
        lagging.max(refusals.hold_back())
    };
    worker
        .run(shutdown, hold_back, |delivery| {
            let fetcher = Arc::clone(&fetcher);
            async move { fetcher.handle(delivery).await }
        })
        .await;
    watcher_stop.cancel();
    tracing::info!("Audio fetcher stopped.");
    Ok(())
}
