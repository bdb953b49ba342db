//! One shard's polling loop: lease, upstream back-off, downstream backlog, shared budget, poll,
//! publish (each call once, `Nats-Msg-Id` = call id), then the cursor.

use std::time::{Duration, SystemTime};

use bcfy_broadcastify::error::{AuthenticationError, Error as ClientError};
use bcfy_broadcastify::{CallIdentity, Client, LiveCalls, LiveQuery, ParsedCalls, Selector};
use bcfy_bus::publish::{self, PublishError, Published};
use bcfy_bus::{CallId, Publisher, Shard, Stage, subject, trace_context};
use bcfy_proto::{DeadLetter, LiveCallEnvelope, ShardKey};
use bcfy_runtime::admin::ReadinessLatch;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument as _;

use crate::config::LiveProducerConfig;
use crate::cursor::{CursorError, Cursors};
use crate::lease::Lease;
use crate::metrics::Metrics;
use crate::recent::{Fingerprint, Recent};
use bcfy_bus::backlog::Backlog;
use bcfy_upstream::UpstreamGate;

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error(transparent)]
    Upstream(#[from] ClientError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Cursor(#[from] CursorError),
}

impl PollError {
    fn kind(&self) -> &'static str {
        match self {
            PollError::Upstream(error) => error.kind(),
            PollError::Publish(_) => "publish",
            PollError::Cursor(_) => "cursor_store",
        }
    }
}

/// Readiness latches the shards share.
#[derive(Debug, Clone)]
pub(crate) struct Latches {
    /// Released once a poll succeeded; pulled when the credentials are refused.
    pub(crate) authenticated: ReadinessLatch,
    /// Pulled while the upstream asked everyone to back off.
    pub(crate) not_backing_off: ReadinessLatch,
}

/// Everything one shard's loop needs.
#[derive(Debug)]
pub(crate) struct ShardPoller {
    pub(crate) name: String,
    pub(crate) selector: Selector,
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
                self.latches.not_backing_off.set_not_ready();
                self.metrics
                    .rate_limit_waits
                    .with_label_values(&[&shard])
                    .inc();
                return Ok(wait);
            }
            Ok(None) => self.latches.not_backing_off.set_ready(),
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
                self.latches.authenticated.set_ready();
                // Polls start one interval apart, however long each took: a call waits at most
                // an interval to be seen, which is what the latency budget counts on.
                Ok(self.jittered_interval().saturating_sub(began.elapsed()))
            }
            Err(error) => self.failed(progress, &error).await,
        }
    }

    /// Decides what a failed poll means: stop, back off fleet-wide, or retry later.
    async fn failed(
        &mut self,
        progress: &mut Progress,
        error: &PollError,
    ) -> Result<Duration, Stop> {
        let shard = self.name.clone();
        self.metrics
            .poll_errors
            .with_label_values(&[&shard, error.kind()])
            .inc();
        if let PollError::Upstream(ClientError::Authentication(auth)) = error {
            self.metrics
                .auth_failures
                .with_label_values(&[&shard])
                .inc();
            self.latches.authenticated.set_not_ready();
            if matches!(
                auth,
                AuthenticationError::InvalidCredentials | AuthenticationError::NoCredentials
            ) {
                tracing::error!(error = %error, shard = %shard, "Broadcastify refused the credentials; this shard stops polling. Fix the credentials and restart.");
                return Err(Stop);
            }
        }
        if let PollError::Upstream(upstream) = error
            && let Some(wait) = upstream.retry_hint().retry_after
        {
            tracing::warn!(error = %error, shard = %shard, wait = ?wait, "Upstream asked to back off; pausing every replica.");
            if let Err(gate_error) = self.gate.back_off(wait).await {
                tracing::warn!(error = %gate_error, "Could not share the back-off.");
            }
            return Ok(wait);
        }
        progress.failures += 1;
        if self
            .producer
            .max_retry_attempts
            .is_some_and(|max| progress.failures > max)
        {
            tracing::error!(error = %error, shard = %shard, failures = progress.failures, "Retry budget spent; this shard stops polling.");
            return Err(Stop);
        }
        self.metrics.retries.with_label_values(&[&shard]).inc();
        let delay = self.backoff(progress.failures);
        tracing::warn!(error = %error, shard = %shard, failures = progress.failures, retry_in = ?delay, "Poll failed; retrying.");
        Ok(delay)
    }

    /// Exponential back-off with full jitter between half and all of the step.
    fn backoff(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(16);
        let step = self
            .producer
            .initial_backoff
            .saturating_mul(1 << exponent)
            .min(self.producer.max_backoff);
        step.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    fn jittered_interval(&self) -> Duration {
        let jitter = self.jitter_ratio;
        if jitter <= 0.0 {
            return self.interval;
        }
        self.interval
            .mul_f64(rand::rng().random_range(1.0 - jitter..=1.0 + jitter))
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
        let query = match progress.cursor.or(self.initial_position) {
            Some(position) if progress.cursor.is_some() => LiveQuery {
                selector: self.selector.clone(),
                position: Some(position - self.producer.overlap.as_secs_f64()),
                init: false,
            },
            Some(position) => LiveQuery {
                selector: self.selector.clone(),
                position: Some(position),
                init: false,
            },
            None => LiveQuery {
                selector: self.selector.clone(),
                position: None,
                init: true,
            },
        };
        // The answer's new calls are published while the rest of it arrives, a window of acks
        // at a time, so memory stays bounded however long the answer is; the cursor moves only
        // once every call of the answer is stored.
        let mut answer = self.client.live_answer(&query).await?;
        let mut acks = Vec::new();
        while let Some(calls) = answer
            .next_calls(publish::MAX_ACKS_IN_FLIGHT, |call| {
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

    /// Starts a sweep (`look_back` behind the cursor) in the background when one is due and
    /// the request budget allows; it leaves out the calls published so far.
    async fn start_sweep_if_due(&self, progress: &mut Progress) {
        let Some(cursor) = progress.cursor else {
            return;
        };
        let due = progress
            .last_sweep
            .is_none_or(|at| at.elapsed() >= self.producer.look_back_interval);
        if !due || progress.sweep.is_some() {
            return;
        }
        if !matches!(self.gate.try_take().await, Ok(None)) {
            // Budget spent (or the gate unreachable): the next poll tries again.
            return;
        }
        let query = LiveQuery {
            selector: self.selector.clone(),
            position: Some(cursor - self.producer.look_back.as_secs_f64()),
            init: false,
        };
        let known = progress.recent.snapshot();
        let client = self.client.clone();
        let span = tracing::info_span!("sweep", shard = %self.name);
        progress.last_sweep = Some(Instant::now());
        progress.sweep = Some(AbortOnDropHandle::new(tokio::spawn(
            async move {
                client
                    .live_calls_except(&query, |call| {
                        known.contains(&Fingerprint::of(&identity_id(call)))
                    })
                    .await
            }
            .instrument(span),
        )));
    }

    /// Publishes a finished sweep's late calls; a failed sweep fails the poll (its back-off and
    /// auth handling apply) and is retried at the next one.
    async fn finish_sweep_if_done(&mut self, progress: &mut Progress) -> Result<(), PollError> {
        let Some(sweep) = progress.sweep.take_if(|sweep| sweep.is_finished()) else {
            return Ok(());
        };
        match sweep.await {
            Ok(Ok(answer)) => self.publish_answer(answer, progress, Vec::new()).await,
            Ok(Err(error)) => {
                progress.last_sweep = None;
                Err(error.into())
            }
            Err(error) => {
                progress.last_sweep = None;
                tracing::warn!(error = %error, shard = %self.name, "A sweep did not finish; retrying.");
                Ok(())
            }
        }
    }

    /// Publishes the last calls of an answer, waits for every ack still pending, and counts
    /// the calls the answer left out as already published.
    async fn publish_answer(
        &self,
        answer: LiveCalls,
        progress: &mut Progress,
        mut acks: Vec<PendingAck>,
    ) -> Result<(), PollError> {
        self.send_calls(answer.parsed, progress, &mut acks).await?;
        self.settle(acks, progress).await?;
        self.metrics
            .duplicates
            .with_label_values(&[&self.name])
            .inc_by(answer.known as u64);
        Ok(())
    }

    /// Starts publishing the calls this shard has not published yet (their acks join `acks`,
    /// settled a window at a time) and dead-letters what is unusable.
    async fn send_calls(
        &self,
        calls: ParsedCalls,
        progress: &mut Progress,
        acks: &mut Vec<PendingAck>,
    ) -> Result<(), PollError> {
        let received_at = Some(SystemTime::now().into());
        for upstream in calls.calls {
            let id = CallId::for_call(&upstream.call);
            // A sweep left out what was published when it started; the polls since may have
            // published more of its calls.
            if progress.recent.contains(&id) {
                self.metrics
                    .duplicates
                    .with_label_values(&[&self.name])
                    .inc();
                continue;
            }
            let (Some(sid), Some(tg)) = (upstream.call.sid, upstream.call.call_tg) else {
                self.dead_letter(Some(&id), &upstream.raw, "the call has no sid or call_tg")
                    .await?;
                continue;
            };
            let envelope = LiveCallEnvelope {
                call_id: id.to_string(),
                call: Some(upstream.call),
                cursor: progress.cursor,
                received_at,
                shard_key: Some(ShardKey {
                    system_id: sid,
                    talkgroup_id: tg,
                }),
                raw_payload: upstream.raw.into_bytes(),
                shard_name: self.name.clone(),
            };
            let span = trace_context::linked_to_current(
                tracing::info_span!(parent: None, "call", call_id = %id, shard = %self.name),
            );
            let ack = self
                .publisher
                .start(subject::live(Shard { sid, tg }), id.as_str(), &envelope)
                .instrument(span)
                .await?;
            let ts = envelope_ts(&envelope, progress.cursor);
            acks.push((id, ts, ack.boxed()));
            if acks.len() >= publish::MAX_ACKS_IN_FLIGHT {
                self.settle(std::mem::take(acks), progress).await?;
            }
        }
        for rejected in &calls.rejected {
            self.dead_letter(None, rejected, "a calls element is not a JSON object")
                .await?;
        }
        Ok(())
    }

    /// Waits for the acks together; each stored call is remembered as published.
    async fn settle(
        &self,
        acks: Vec<PendingAck>,
        progress: &mut Progress,
    ) -> Result<(), PollError> {
        let (calls, acks): (Vec<_>, Vec<_>) = acks
            .into_iter()
            .map(|(id, ts, ack)| ((id, ts), ack))
            .unzip();
        for (result, (id, ts)) in futures::future::join_all(acks).await.into_iter().zip(calls) {
            let published = result?;
            let counter = if published.duplicate {
                &self.metrics.duplicates
            } else {
                &self.metrics.dispatched
            };
            counter.with_label_values(&[&self.name]).inc();
            progress.recent.insert(&id, ts);
        }
        Ok(())
    }

    /// Records an unusable upstream record on `deadletter.poller.…` (never dropped silently).
    async fn dead_letter(
        &self,
        id: Option<&CallId>,
        raw: &str,
        reason: &str,
    ) -> Result<(), PublishError> {
        let digest: String = Sha256::digest(raw.as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let letter = DeadLetter {
            stage: Stage::Poller.as_str().to_owned(),
            reason: reason.to_owned(),
            error_kind: "bad_upstream_record".to_owned(),
            attempts: 1,
            original_subject: String::new(),
            original_stream: String::new(),
            original_stream_sequence: 0,
            original_headers: [("shard".to_owned(), self.name.clone())].into(),
            original_payload: raw.as_bytes().to_vec(),
            call_id: id.map(|id| id.to_string()).unwrap_or_default(),
            failed_at: Some(SystemTime::now().into()),
        };
        let target = subject::dead_letter(Stage::Poller, None, id);
        self.publisher
            .publish(target, &format!("dl-poller-{digest}"), &letter)
            .await?;
        self.metrics
            .dead_letters
            .with_label_values(&[&self.name])
            .inc();
        tracing::warn!(shard = %self.name, reason, "Dead-lettered an upstream record.");
        Ok(())
    }
}

/// The id of a call from the identity fields an answer is screened by.
fn identity_id(call: &CallIdentity<'_>) -> CallId {
    CallId::new(
        call.system_id,
        call.filename.as_deref(),
        call.hash.as_deref(),
    )
}

/// The `ts` a call is remembered under: its own, or the cursor it was polled at when it has
/// none (kept until the cursor has moved a look-back past it). With neither it is forgotten at
/// once; the stream's dedup still drops a repeat.
fn envelope_ts(envelope: &LiveCallEnvelope, cursor: Option<f64>) -> f64 {
    envelope
        .call
        .as_ref()
        .and_then(|call| call.ts)
        .map(|ts| ts as f64)
        .or(cursor)
        .unwrap_or(f64::NEG_INFINITY)
}

/// A call whose envelope was sent, with its `ts`, and the PubAck to come.
type PendingAck = (
    CallId,
    f64,
    BoxFuture<'static, Result<Published, PublishError>>,
);

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
