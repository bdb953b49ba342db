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

use async_nats::jetstream;
use bcfy_broadcastify::Client;
use bcfy_bus::backlog::Backlog;
use bcfy_bus::ensure::{ensure_consumer, ensure_topology_retrying};
use bcfy_bus::topology::{ConsumerSpec, STREAM_CALLS_AUDIO, Topology};
use bcfy_bus::{Publisher, worker};
use bcfy_runtime::admin::{Readiness, serve_with_admin};
use tokio_util::sync::CancellationToken;

pub use config::{AudioConfig, FetcherConfig};

/// Pause between attempts to set up NATS at startup.
const SETUP_RETRY: Duration = Duration::from_secs(2);
/// How often the transcriber's backlog is read, and how long a paused pull waits.
const BACKLOG_EVERY: Duration = Duration::from_millis(500);

/// Why the fetcher could not run.
#[derive(Debug, thiserror::Error)]
pub enum FetcherError {
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
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] bcfy_broadcastify::client::BuildError),
    /// Metrics could not be registered.
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
}

/// Runs the fetcher with its admin port until `shutdown`; returns after the downloads in
/// flight have finished.
///
/// # Errors
///
/// When the admin port, NATS, the consumer or the metrics cannot be set up.
pub async fn run(config: FetcherConfig, shutdown: CancellationToken) -> Result<(), FetcherError> {
    let addr = config.admin.listen_addr;
    serve_with_admin(addr, shutdown.clone(), |readiness, registry| {
        serve(config, shutdown, readiness, registry)
    })
    .await
    .map_err(FetcherError::Admin)?
}

/// Runs the fetcher with the caller's readiness and metrics registry (tests inspect them).
///
/// # Errors
///
/// As [`run`].
pub async fn serve(
    config: FetcherConfig,
    shutdown: CancellationToken,
    readiness: Readiness,
    registry: prometheus::Registry,
) -> Result<(), FetcherError> {
    let ready = readiness.latch("nats");
    let metrics = metrics::Metrics::register(&registry).map_err(FetcherError::Metrics)?;
    let js = jetstream::new(bcfy_bus::connect::connect(&config.nats, "audio-fetcher").await?);
    if !ensure_topology_retrying(
        &js,
        &Topology::new(config.topology.clone()),
        SETUP_RETRY,
        &shutdown,
    )
    .await
    {
        return Ok(());
    }
    let audio = config.audio.clone();
    let concurrency = audio.max_concurrency.max(1);
    let spec = ConsumerSpec {
        ack_wait: audio.ack_wait,
        ..ConsumerSpec::audio_fetcher(i64::try_from(concurrency).unwrap_or(i64::MAX))
            .with_filter(audio.durable_name.clone(), audio.filter_subject.clone())
    };
    let (consumer, _) = ensure_consumer(&js, &spec).await?;
    let fetcher = Arc::new(fetch::Fetcher {
        client: Client::new(config.broadcastify.clone())?,
        publisher: Publisher::new(js.clone()),
        config: audio.clone(),
        metrics: metrics.clone(),
    });
    let backlog = Backlog::new(js.clone(), STREAM_CALLS_AUDIO, &audio.transcriber_consumer);
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
    let messages = consumer
        .stream()
        .max_messages_per_batch(concurrency)
        .messages()
        .await
        .map_err(|e| FetcherError::Pull(e.into()))?;
    ready.set_ready();
    tracing::info!(consumer = %audio.durable_name, filter = %audio.filter_subject, concurrency, "Audio fetcher started.");
    // While the transcriber lags, a call is handed back for later instead of downloaded.
    let hold_back = || {
        let lagging =
            audio.transcription_enabled && backlog.get() > audio.transcriber_backlog_threshold;
        lagging.then(|| {
            metrics.backpressure_pauses.inc();
            BACKLOG_EVERY
        })
    };
    worker::work(messages, concurrency, &shutdown, hold_back, |delivery| {
        let fetcher = Arc::clone(&fetcher);
        async move { fetcher.handle(delivery).await }
    })
    .await;
    watcher_stop.cancel();
    tracing::info!("Audio fetcher stopped.");
    Ok(())
}
