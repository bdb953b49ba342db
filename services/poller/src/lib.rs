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
//! - `county`: shards that follow a county's talkgroups through the directory service;
//! - [`metrics`]: Prometheus metrics.

pub mod config;
mod county;
pub mod cursor;
pub mod lease;
pub mod metrics;
mod recent;
mod shard;
use std::time::Duration;

use bcfy_broadcastify::Selector;
use bcfy_bus::backlog::Backlog;
use bcfy_bus::topology::{KV_POLLER_CURSORS, KV_POLLER_LEASES, STREAM_CALLS_LIVE};
use bcfy_directory::nats_api::Client;
use bcfy_runtime::service::{Context, StartError};
use bcfy_upstream::{Fleet, FleetError};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub use config::{LiveProducerConfig, PollerConfig, ShardConfig, ShardSelector};

/// How long a directory lookup may take.
const DIRECTORY_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the downstream backlog is read.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// Why the poller could not run.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    /// NATS, a bucket or the metrics could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The Broadcastify client or the fleet's shared state could not be set up.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// Runs the poller until shutdown; returns after every shard has finished its poll in flight.
///
/// # Errors
///
/// When NATS settings, a bucket, the client or the metrics cannot be set up.
pub async fn run(config: PollerConfig, context: Context) -> Result<(), PollerError> {
    let shutdown = context.shutdown().clone();
    let latches = shard::Latches {
        authenticated: context.readiness().latch("upstream-session"),
        not_backing_off: context.readiness().latch("upstream-backoff"),
    };
    latches.not_backing_off.set_ready();
    let metrics = context.register(metrics::Metrics::register)?;
    let Some(bus) = context.connect(&config.nats, &config.topology).await? else {
        return Ok(());
    };
    let instance = bcfy_upstream::instance_id(config.instance_id.as_deref(), context.name());
    let fleet = Fleet::join(
        &bus.js,
        &config.broadcastify,
        instance,
        config.live_producer.rate_limit_per_minute,
    )
    .await?;
    let cursors = cursor::Cursors::new(bus.bucket(KV_POLLER_CURSORS).await?);
    let leases = bus.bucket(KV_POLLER_LEASES).await?;
    context.set_ready();
    tracing::info!(instance = %fleet.instance, shards = config.shards.len(), "Poller started.");

    let backlog = Backlog::new(
        bus.js.clone(),
        STREAM_CALLS_LIVE,
        &config.downstream_consumer,
    );
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
        // A county shard starts with no talkgroups; it polls once its county is looked up.
        let (selector, county) = match selector {
            ShardSelector::Fixed(selector) => (watch::channel(selector), None),
            ShardSelector::County { ctid, tags } => (
                watch::channel(Selector::Groups(Vec::new())),
                Some(county::CountyShard {
                    shard: shard.name.clone(),
                    ctid,
                    tags,
                    directory: Client::new(bus.client.clone(), DIRECTORY_TIMEOUT),
                    refresh: config.directory_refresh,
                    latch: context
                        .readiness()
                        .latch(format!("directory-{}", shard.name)),
                }),
            ),
        };
        let producer = &config.live_producer;
        let poller = shard::ShardPoller {
            name: shard.name.clone(),
            selector: selector.1,
            interval: shard.poll_interval.unwrap_or(producer.poll_interval),
            jitter_ratio: shard.jitter_ratio.unwrap_or(producer.jitter_ratio),
            initial_position: shard.initial_position.or(producer.initial_position),
            producer: producer.clone(),
            client: fleet.client.clone(),
            publisher: bus.publisher.clone(),
            cursors: cursors.clone(),
            lease: lease::Lease::new(leases.clone(), &shard.name, fleet.instance.clone()),
            lease_ttl: config.topology.lease_ttl,
            gate: fleet.gate.clone(),
            backlog: backlog.clone(),
            metrics: metrics.clone(),
            latches: latches.clone(),
            signals: context.signals().clone(),
        };
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Some(county) = county
                && !county.follow(selector.0, &shutdown).await
            {
                return;
            }
            poller.run(shutdown).await;
        });
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
