//! One shard's polling loop: lease, upstream back-off, downstream backlog, shared budget, poll,
//! publish (each call once, `Nats-Msg-Id` = call id), then the cursor.
//!
//! - `query`: which request a poll or sweep sends, when a sweep is due, the jittered interval;
//! - `publish`: the publish pipeline (windows of PubAcks, dead letters);
//! - `sweep`: the look-back sweeps beside the polls;
//! - `failure`: what a failed poll means (stop, fleet back-off, retry).

mod failure;
mod publish;
mod query;
mod sweep;

use std::time::Duration;

use bcfy_broadcastify::error::Error as ClientError;
use bcfy_broadcastify::{Client, LiveCalls, Selector};
use bcfy_bus::Publisher;
use bcfy_bus::backlog::Backlog;
use bcfy_bus::publish::MAX_ACKS_IN_FLIGHT;
use bcfy_runtime::admin::ReadinessLatch;
use bcfy_runtime::service::{Signals, signals};
use bcfy_upstream::UpstreamGate;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use self::failure::PollError;
use self::publish::identity_id;
use crate::config::LiveProducerConfig;
use crate::cursor::Cursors;
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::recent::Recent;

/// Readiness latches the shards share.
#[derive(Debug, Clone)]
pub(crate) struct Latches {
    /// Released once a poll succeeded; pulled when the credentials are refused.
    pub(crate) authenticated: ReadinessLatch,
    /// Pulled while the upstream asked everyone to back off.
    pub(crate) not_backing_off: ReadinessLatch,
}

/// The subject of the upstream's health signals.
const UPSTREAM: &str = "broadcastify";

/// Everything one shard's loop needs.
#[derive(Debug)]
pub(crate) struct ShardPoller {
    pub(crate) name: String,
    /// What to poll; a county shard's changes when its county's talkgroups do.
    pub(crate) selector: watch::Receiver<Selector>,
    pub(crate) interval: Duration,
    pub(crate) jitter_ratio: f64,
    pub(crate) initial_position: Option<f64>,
    pub(crate) producer: LiveProducerConfig,
    pub(crate) client: Client,
    pub(crate) publisher: Publisher,
    pub(crate) cursors: Cursors,
    pub(crate) lease: Lease,
    pub(crate) lease_ttl: Duration,
    pub(crate) gate: UpstreamGate,
    pub(crate) backlog: Backlog,
    pub(crate) metrics: Metrics,
    pub(crate) latches: Latches,
    /// The health figures the alerter's monitor reads (`poll_failures` by shard; the
    /// upstream's `credentials_refused` and `upstream_backoff`).
    pub(crate) signals: Signals,
}

/// The loop's state between polls.
#[derive(Debug, Default)]
struct Progress {
    cursor: Option<f64>,
    cursor_loaded: bool,
    /// When the last sweep (a poll reaching `look_back` behind the cursor) started.
    last_sweep: Option<Instant>,
    /// The sweep in flight; dropping it cancels it.
    sweep: Option<AbortOnDropHandle<Result<LiveCalls, ClientError>>>,
    failures: u32,
    recent: Recent,
}

impl ShardPoller {
    /// Polls until `shutdown`, finishing the poll in flight (publishes and cursor) first. The
    /// lease is renewed on time even while waiting between polls.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut progress = Progress::default();
        let renew_every = Lease::renew_every(self.lease_ttl);
        let mut renew_at = Instant::now();
        let mut next_step = Instant::now();
        let mut last_summary = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= renew_at || !self.lease.held() {
                let held_before = self.lease.held();
                let holds = self.lease.hold().await;
                renew_at = Instant::now() + renew_every;
                self.metrics
                    .lease_held
                    .with_label_values(&[&self.name])
                    .set(i64::from(holds));
                if !holds {
                    progress.cursor_loaded = false;
                    rest(renew_every, &shutdown).await;
                    continue;
                }
                if !held_before {
                    // A new holder starts from the saved cursor, not from what it knew.
                    progress.cursor_loaded = false;
                }
            }
            let now = Instant::now();
            if now < next_step {
                rest(
                    (next_step - now).min(renew_at.saturating_duration_since(now)),
                    &shutdown,
                )
                .await;
                continue;
            }
            let Ok(delay) = self.step(&mut progress).await else {
                break;
            };
            next_step = Instant::now() + delay;
            if last_summary.elapsed() >= self.producer.metrics_interval {
                last_summary = Instant::now();
                tracing::info!(
                    shard = %self.name,
                    dispatched = self.metrics.dispatched.with_label_values(&[&self.name]).get(),
                    backlog = self.backlog.get(),
                    cursor = ?progress.cursor,
                    "Shard health."
                );
            }
        }
        self.lease.release().await;
        self.metrics
            .lease_held
            .with_label_values(&[&self.name])
            .set(0);
    }

    /// One turn of the loop; returns how long to wait before the next one.
    async fn step(&mut self, progress: &mut Progress) -> Result<Duration, Stop> {
        let shard = self.name.clone();
        match self.gate.backoff_remaining().await {
            Ok(Some(wait)) => {
                self.signals
                    .set(signals::UPSTREAM_BACKOFF, UPSTREAM, wait.as_secs_f64());
                self.latches.not_backing_off.set_not_ready();
                self.metrics
                    .rate_limit_waits
                    .with_label_values(&[&shard])
                    .inc();
                return Ok(wait);
            }
            Ok(None) => {
                self.signals.set(signals::UPSTREAM_BACKOFF, UPSTREAM, 0.0);
                self.latches.not_backing_off.set_ready();
            }
            Err(error) => {
                tracing::warn!(error = %error, shard = %shard, "Upstream gate unavailable.");
                return Ok(self.producer.initial_backoff);
            }
        }
        let mut backlog = self.backlog.get();
        if backlog > self.producer.queue_maxsize {
            // The reading is up to a second old and may predate the fetcher working off the
            // last poll's calls: only a backlog that is still there pauses polling.
            backlog = self.backlog.refresh().await;
        }
        if backlog > self.producer.queue_maxsize {
            self.metrics
                .backpressure_pauses
                .with_label_values(&[&shard])
                .inc();
            tracing::debug!(shard = %shard, backlog, "Downstream backlog over threshold; pausing.");
            return Ok(self.interval);
        }
        match self.gate.try_take().await {
            Ok(None) => {}
            Ok(Some(wait)) => {
                self.metrics
                    .rate_limit_waits
                    .with_label_values(&[&shard])
                    .inc();
                tracing::debug!(shard = %shard, wait = ?wait, "Request budget spent; waiting.");
                return Ok(wait);
            }
            Err(error) => {
                tracing::warn!(error = %error, shard = %shard, "Upstream budget unavailable.");
                return Ok(self.producer.initial_backoff);
            }
        }
        let span = tracing::info_span!("poll", shard = %shard);
        let began = Instant::now();
        match self.poll(progress).instrument(span).await {
            Ok(()) => {
                progress.failures = 0;
                self.signals.set(signals::POLL_FAILURES, &shard, 0.0);
                self.signals
                    .set(signals::CREDENTIALS_REFUSED, UPSTREAM, 0.0);
                self.latches.authenticated.set_ready();
                // Polls start one interval apart, however long each took: a call waits at most
                // an interval to be seen, which is what the latency budget counts on.
                Ok(query::jittered(self.interval, self.jitter_ratio)
                    .saturating_sub(began.elapsed()))
            }
            Err(error) => self.failed(progress, &error).await,
        }
    }

    /// Polls once, publishes what is new, then saves the cursor. A sweep, when one is due, runs
    /// beside the polls, so its long answer never holds up the newest calls.
    async fn poll(&mut self, progress: &mut Progress) -> Result<(), PollError> {
        if !progress.cursor_loaded {
            progress.cursor = self.cursors.load(&self.name).await?;
            progress.cursor_loaded = true;
            // Whatever turned up late while no one polled: sweep at once.
            progress.sweep = None;
            progress.last_sweep = None;
        }
        self.start_sweep_if_due(progress).await;
        let started = Instant::now();
        let selector = self.selector.borrow().clone();
        let query = query::poll_query(
            &selector,
            progress.cursor,
            self.initial_position,
            self.producer.overlap,
        );
        // The answer's new calls are published while the rest of it arrives, a window of acks
        // at a time, so memory stays bounded however long the answer is; the cursor moves only
        // once every call of the answer is stored.
        let mut answer = self.client.live_answer(&query).await?;
        let mut acks = Vec::new();
        while let Some(calls) = answer
            .next_calls(MAX_ACKS_IN_FLIGHT, |call| {
                progress.recent.contains(&identity_id(call))
            })
            .await?
        {
            self.send_calls(calls, progress, &mut acks).await?;
        }
        let rest = answer
            .finish(|call| progress.recent.contains(&identity_id(call)))
            .await?;
        let next = rest.next_position(progress.cursor);
        self.publish_answer(rest, progress, acks).await?;
        self.metrics
            .poll_seconds
            .with_label_values(&[&self.name])
            .observe(started.elapsed().as_secs_f64());
        if next != progress.cursor {
            if let Some(position) = next {
                self.cursors.save(&self.name, position).await?;
            }
            progress.cursor = next;
        }
        self.finish_sweep_if_done(progress).await?;
        if let Some(cursor) = progress.cursor {
            let reach = self.producer.look_back.max(self.producer.overlap);
            progress.recent.forget_before(cursor - reach.as_secs_f64());
        }
        Ok(())
    }
}

/// The shard stops for good (refused credentials, retry budget spent).
#[derive(Debug)]
struct Stop;

/// Sleeps for `duration`, or less when shutdown comes first.
async fn rest(duration: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = shutdown.cancelled() => {}
    }
}
