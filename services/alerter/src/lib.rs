//! The alerter: turns transcripts into alerts and delivers them, and watches the pipeline
//! itself (spec §12's rules engine on the event bus, and the integration guides' monitor).
//!
//! - Rules (keywords as whole words, an expression, the emergency flag, two-tone pages; scoped
//!   to systems, talkgroups, units; with an ignore list, a max call age and a cooldown) come
//!   from the config file and the `alert-rules` bucket, and change without a restart.
//! - A durable consumer of `TRANSCRIPTIONS` evaluates each transcript and publishes one
//!   `alerts.{rule}.{sid}.{tg}.{call_id}` per rule that fires, before acking it.
//! - Each destination (a signed webhook, Slack, Discord, Teams) has its own durable consumer of
//!   `ALERTS`, delivering in order with retries; a refusal is dead-lettered.
//! - The integration monitor raises and resolves `alerts.system.{kind}` from the services'
//!   status reports and the streams.
//!
//! # Layout
//!
//! - [`config`]: the settings ([`AlerterConfig`]);
//! - [`rule`]: one rule, written and compiled;
//! - [`rules`]: the rules in force, indexed by first word;
//! - [`catalog`]: the file's and the bucket's rules, followed at runtime;
//! - `fire`: a transcript to its alerts, with cooldowns;
//! - `turns`: a talkgroup's alerts raised in the order of its transcripts;
//! - [`format`](mod@format): what each kind of destination receives;
//! - [`deliver`]: one destination's deliveries;
//! - `monitor`: the integration monitor;
//! - [`metrics`]: Prometheus metrics.

pub mod catalog;
pub mod config;
pub mod deliver;
mod fire;
pub mod format;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod metrics;
mod monitor;
pub mod rule;
pub mod rules;
mod turns;

use std::sync::Arc;
use std::time::Duration;

use bcfy_bus::Stage;
use bcfy_bus::topology::{ConsumerSpec, KV_ALERT_RULES, KV_ALERT_STATE};
use bcfy_runtime::service::{Context, DeadLetters, StartError};
use tokio_util::task::TaskTracker;

pub use config::AlerterConfig;

/// A delivery may stay unacknowledged this much longer than its destination's timeout.
const DELIVERY_ACK_MARGIN: Duration = Duration::from_secs(30);

/// Why the alerter could not run.
#[derive(Debug, thiserror::Error)]
pub enum AlerterError {
    /// NATS, a consumer, a bucket or the metrics could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Http(#[source] reqwest::Error),
    /// A destination's URL is not one.
    #[error("destination `{0}`: the URL is not valid")]
    Url(String),
    /// The destinations file cannot be read (it was valid when the config was loaded).
    #[error("cannot read the destinations file")]
    Destinations(#[source] Box<bcfy_config::ConfigError>),
}

/// Now, in epoch seconds: the unit of a call's times, which cooldowns, call ages and system
/// conditions are measured in.
pub(crate) fn now_epoch() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs the alerter until shutdown; returns once the evaluations and deliveries in flight have
/// finished.
///
/// # Errors
///
/// When NATS, a consumer, a bucket, the HTTP client or the metrics cannot be set up.
pub async fn run(config: AlerterConfig, context: Context) -> Result<(), AlerterError> {
    let shutdown = context.shutdown().clone();
    let metrics = context.register(metrics::Metrics::register)?;
    let catalog = catalog::Catalog::new(config.rules.clone(), metrics.clone());
    let Some(bus) = context.connect(&config.nats, &config.topology).await? else {
        return Ok(());
    };
    catalog
        .follow(bus.bucket(KV_ALERT_RULES).await?, shutdown.clone())
        .await;
    let state = bus.bucket(KV_ALERT_STATE).await?;
    let dead_letters = DeadLetters::new(
        bus.publisher.clone(),
        Stage::Alerter,
        metrics.dead_letters.clone(),
    );
    let tasks = TaskTracker::new();
    let client = reqwest::Client::builder()
        .build()
        .map_err(AlerterError::Http)?;
    let destinations = config
        .all_destinations()
        .map_err(AlerterError::Destinations)?;
    for settings in &destinations {
        let url = settings
            .parsed_url()
            .map_err(|_| AlerterError::Url(settings.name.clone()))?;
        let spec = ConsumerSpec::alert_delivery(
            &settings.name,
            settings.filter.clone(),
            settings.timeout + DELIVERY_ACK_MARGIN,
        );
        let worker = bus.worker(&spec, 1).await?;
        let destination = Arc::new(deliver::Destination {
            config: settings.clone(),
            url,
            client: client.clone(),
            console: config.console_url.clone(),
            dead_letters: dead_letters.clone(),
            metrics: metrics.clone(),
        });
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            worker
                .run(
                    &shutdown,
                    || None,
                    |delivery| {
                        let destination = Arc::clone(&destination);
                        async move { destination.handle(delivery).await }
                    },
                )
                .await;
        });
    }
    if config.monitor.enabled {
        let monitor = monitor::Monitor {
            config: config.monitor.clone(),
            client: bus.client.clone(),
            js: bus.js.clone(),
            topology: bus.topology.clone(),
            publisher: bus.publisher.clone(),
            state: state.clone(),
            metrics: metrics.clone(),
        };
        tasks.spawn(monitor.run(shutdown.clone()));
    }
    let consumer = &config.consumer;
    let concurrency = consumer.concurrency.max(1);
    let spec = ConsumerSpec {
        ack_wait: consumer.ack_wait,
        ..ConsumerSpec::alerter(i64::try_from(concurrency).unwrap_or(i64::MAX)).with_filter(
            consumer.durable_name.clone(),
            consumer.filter_subject.clone(),
        )
    };
    let worker = bus.worker(&spec, concurrency).await?;
    let evaluator = Arc::new(fire::Evaluator {
        catalog: Arc::clone(&catalog),
        publisher: bus.publisher.clone(),
        state,
        dead_letters,
        metrics,
        turns: turns::Turns::default(),
    });
    context.set_ready();
    tracing::info!(
        rules = catalog.rules().len(),
        destinations = destinations.len(),
        monitor = config.monitor.enabled,
        "Alerter started."
    );
    worker
        .run(
            &shutdown,
            || None,
            |delivery| {
                let evaluator = Arc::clone(&evaluator);
                let turn = evaluator.turn(&delivery);
                async move { evaluator.handle(delivery, turn).await }
            },
        )
        .await;
    tasks.close();
    tasks.wait().await;
    tracing::info!("Alerter stopped.");
    Ok(())
}
