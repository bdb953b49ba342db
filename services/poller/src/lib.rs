//! The poller service: polls Broadcastify live calls per shard and publishes each call once on
//! `calls.live.{sid}.{tg}` (spec §3.3, `LiveCallProducer`), with its cursor, session, request
//! budget, back-off and leases held in NATS so any number of replicas cooperate.
//!
//! # Layout
//!
//! - [`config`]: [`PollerConfig`] (the spec's `LiveProducerConfig` keys under `live_producer`);
//! - `shard`: one shard's loop (lease, back-off, backlog, budget, poll, publish, cursor);
//! - the fleet's session, request budget and back-off come from [`bcfy_upstream`] (KV), shared
//!   with the archive cache;
//! - [`lease`]: hot-standby shard leases (KV with a TTL);
//! - [`cursor`]: per-shard cursors (KV);
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod cursor;
pub mod lease;
pub mod metrics;
mod recent;
mod shard;
pub use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_broadcastify::{Client, LocalSession, SessionSource};
use bcfy_bus::Publisher;
use bcfy_bus::backlog::Backlog;
use bcfy_bus::ensure::ensure_topology_retrying;
use bcfy_bus::topology::{
    KV_POLLER_CURSORS, KV_POLLER_LEASES, KV_UPSTREAM_BUDGET, KV_UPSTREAM_SESSION,
    STREAM_CALLS_LIVE, Topology,
};
use bcfy_runtime::admin::{Readiness, serve_with_admin};
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{LiveProducerConfig, PollerConfig, ShardConfig};

/// How often the downstream backlog is read.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);
/// Pause between attempts to set up NATS at startup.
const SETUP_RETRY: Duration = Duration::from_secs(2);

/// Why the poller could not run.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// The admin port could not be bound.
    #[error("cannot bind the admin port")]
    Admin(#[source] std::io::Error),
    /// NATS settings could not be used.
    #[error(transparent)]
    Connect(#[from] bcfy_bus::connect::ConnectError),
    /// A KV bucket could not be opened.
    #[error("cannot open KV bucket {bucket}")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// Why.
        #[source]
        source: jetstream::context::KeyValueError,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] bcfy_broadcastify::client::BuildError),
    /// Metrics could not be registered.
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
}

/// Runs the poller with its admin port until `shutdown`; returns after every shard has
/// finished its poll in flight.
///
/// # Errors
///
/// When the admin port, NATS settings, a bucket or the metrics cannot be set up.
pub async fn run(config: PollerConfig, shutdown: CancellationToken) -> Result<(), PollerError> {
    let addr = config.admin.listen_addr;
    serve_with_admin(addr, shutdown.clone(), |readiness, registry| {
        serve(config, shutdown, readiness, registry)
    })
    .await
    .map_err(PollerError::Admin)?
}

/// Runs the poller with the caller's readiness and metrics registry (tests inspect them).
///
/// # Errors
///
/// As [`run`].
pub async fn serve(
    config: PollerConfig,
    shutdown: CancellationToken,
    readiness: Readiness,
    registry: prometheus::Registry,
) -> Result<(), PollerError> {
    let nats_ready = readiness.latch("nats");
    let latches = shard::Latches {
        authenticated: readiness.latch("upstream-session"),
        not_backing_off: readiness.latch("upstream-backoff"),
    };
    latches.not_backing_off.set_ready();
    let metrics = metrics::Metrics::register(&registry).map_err(PollerError::Metrics)?;
    let client = bcfy_bus::connect::connect(&config.nats, "poller").await?;
    let js = jetstream::new(client);
    let topology = Topology::new(config.topology.clone());
    if !ensure_topology_retrying(&js, &topology, SETUP_RETRY, &shutdown).await {
        return Ok(());
    }
    let bucket = |bucket: &'static str| {
        let js = js.clone();
        async move {
            js.get_key_value(bucket)
                .await
                .map_err(|source| PollerError::Bucket { bucket, source })
        }
    };
    let instance = config
        .instance_id
        .clone()
        .unwrap_or_else(default_instance_id);
    let session: Arc<dyn SessionSource> =
        match (&config.broadcastify.username, &config.broadcastify.password) {
            (Some(username), Some(password)) => Arc::new(bcfy_upstream::KvSession::new(
                bucket(KV_UPSTREAM_SESSION).await?,
                username,
                password.expose_secret(),
                instance.clone(),
            )),
            _ => Arc::new(LocalSession::default()),
        };
    let client = Client::with_session_source(config.broadcastify.clone(), session)?;
    let gate = bcfy_upstream::UpstreamGate::new(
        bucket(KV_UPSTREAM_BUDGET).await?,
        config.live_producer.rate_limit_per_minute,
    );
    let cursors = cursor::Cursors::new(bucket(KV_POLLER_CURSORS).await?);
    let leases = bucket(KV_POLLER_LEASES).await?;
    let publisher = Publisher::new(js.clone());
    nats_ready.set_ready();
    tracing::info!(instance = %instance, shards = config.shards.len(), "Poller started.");

    let backlog = Backlog::new(js.clone(), STREAM_CALLS_LIVE, &config.downstream_consumer);
    // The watcher outlives no shard: it stops on shutdown or when every shard has stopped.
    let watcher_stop = shutdown.child_token();
    let gauge = metrics.downstream_backlog.clone();
    let watcher = tokio::spawn(backlog.clone().watch(
        BACKLOG_EVERY,
        watcher_stop.clone(),
        move |backlog| gauge.set(i64::try_from(backlog).unwrap_or(i64::MAX)),
    ));
    let tasks = TaskTracker::new();
    for shard in &config.shards {
        let Ok(selector) = shard.selector() else {
            continue;
        };
        let producer = &config.live_producer;
        let poller = shard::ShardPoller {
            name: shard.name.clone(),
            selector,
            interval: shard.poll_interval.unwrap_or(producer.poll_interval),
            jitter_ratio: shard.jitter_ratio.unwrap_or(producer.jitter_ratio),
            initial_position: shard.initial_position.or(producer.initial_position),
            producer: producer.clone(),
            client: client.clone(),
            publisher: publisher.clone(),
            cursors: cursors.clone(),
            lease: lease::Lease::new(leases.clone(), &shard.name, instance.clone()),
            lease_ttl: config.topology.lease_ttl,
            gate: gate.clone(),
            backlog: backlog.clone(),
            metrics: metrics.clone(),
            latches: latches.clone(),
        };
        tasks.spawn(poller.run(shutdown.clone()));
    }
    tasks.close();
    tasks.wait().await;
    watcher_stop.cancel();
    if let Err(error) = watcher.await {
        tracing::warn!(error = %error, "Backlog watcher failed.");
    }
    tracing::info!("Poller stopped.");
    Ok(())
}

/// `HOSTNAME` (the pod name on Kubernetes) or `poller`, plus the process id.
fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "poller".to_owned());
    format!("{host}-{}", std::process::id())
}
