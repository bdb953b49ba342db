//! One transcript to its alerts: every rule in force is evaluated against it, and each rule
//! that fires publishes `alerts.{rule}.{sid}.{tg}.{call_id}` (message id `{rule}.{call_id}`,
//! so a redelivered transcript stores nothing twice) before the transcript is acked.
//!
//! A rule's cooldown is kept per talkgroup in the `alert-state` bucket (the call that last
//! raised it and when), updated by compare-and-set before the alert is published: replicas
//! agree on who pages, and a transcript redelivered after a crash finds its own call there and
//! publishes again (dropped as a duplicate if it had got through).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;
use bcfy_bus::subject::{self, ParsedSubject};
use bcfy_bus::{Backoff, CallId, Delivery, Publisher, Shard};
use bcfy_proto::{Alert, Call, ShardKey, TranscriptionResult};
use bcfy_runtime::service::DeadLetters;
use bcfy_words::words;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::rule::Subject;
use crate::rules::Fired;
use crate::turns::{Turn, Turns};

/// The delay before retrying a transcript whose alert could not be raised (the bucket or the
/// stream was not available) on its `attempt`.
fn retry_delay(attempt: u64) -> Duration {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).delay(attempt)
}

/// Why an alert could not be raised now (the transcript is retried).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RaiseError {
    #[error("cooldown state: {0}")]
    State(String),
    #[error(transparent)]
    Publish(#[from] bcfy_bus::publish::PublishError),
}

/// Evaluates transcripts and raises their alerts.
#[derive(Debug)]
pub(crate) struct Evaluator {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) publisher: Publisher,
    pub(crate) state: kv::Store,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) metrics: Metrics,
    pub(crate) turns: Turns,
}

/// A rule's last alert on a talkgroup, in `alert-state` under
/// `cooldown.{rule}.{sid}.{tg}`.
#[derive(Debug, Serialize, Deserialize)]
struct LastAlert {
    call_id: String,
    /// The call's start, epoch seconds.
    at: i64,
}

impl Evaluator {
    /// The delivery's turn on its talkgroup; take it in arrival order.
    pub(crate) fn turn(&self, delivery: &Delivery) -> Option<Turn> {
        let shard = delivery
            .subject()
            .parse::<ParsedSubject>()
            .ok()
            .map(|p| p.shard());
        self.turns.take(shard)
    }

    /// Handles one delivery to the end: acked, NAKed or dead-lettered before this returns.
    /// Its alerts are raised once `turn` comes.
    pub(crate) async fn handle(&self, delivery: Delivery, turn: Option<Turn>) {
        let Some((delivery, result)) = self
            .dead_letters
            .decode::<TranscriptionResult>(delivery)
            .await
        else {
            return;
        };
        let Ok(ParsedSubject::Transcription(shard, call_id)) = delivery.subject().parse() else {
            let reason = format!("`{}` is not a transcript subject", delivery.subject());
            return self.dead_letters.poison(delivery, &reason).await;
        };
        let span = tracing::info_span!("alerts", call_id = %call_id);
        // The call's trace goes on through its alerts (and their deliveries).
        delivery.follow_trace(&span);
        self.raise_all(delivery, result, shard, call_id, turn)
            .instrument(span)
            .await;
    }

    /// Evaluates the transcript, raises its alerts once its turn comes, and acks.
    async fn raise_all(
        &self,
        delivery: Delivery,
        result: TranscriptionResult,
        shard: Shard,
        call_id: CallId,
        turn: Option<Turn>,
    ) {
        let call = result.call.clone().unwrap_or_default();
        let started = call_start(&call);
        let age = Duration::from_secs(u64::try_from(crate::now_epoch() - started).unwrap_or(0));
        let fired = self.evaluate(&result, &call, shard);
        self.metrics
            .transcripts
            .with_label_values(&["evaluated"])
            .inc();
        if let Some(mut turn) = turn
            && !fired.is_empty()
        {
            turn.wait().await;
        }
        for fired in fired {
            let name = &fired.rule.spec.name;
            if age > fired.rule.spec.max_call_age {
                self.metrics
                    .suppressed
                    .with_label_values(&[name, "too_old"])
                    .inc();
                tracing::info!(rule = %name, call_id = %call_id, age = ?age, "Match on a call older than the rule's max_call_age; no alert.");
                continue;
            }
            if let Err(error) = self.raise(&fired, shard, &call_id, &result, started).await {
                tracing::warn!(error = %error, rule = %name, call_id = %call_id, "Raising an alert failed; the transcript is retried.");
                let delay = retry_delay(delivery.attempt());
                return delivery.nak_or_wait(delay).await;
            }
        }
        if let Err(error) = delivery.ack().await {
            tracing::warn!(error = %error, "Ack failed; the transcript returns and its alerts are deduplicated.");
        }
    }

    /// The rules that fire on `result`.
    fn evaluate(&self, result: &TranscriptionResult, call: &Call, shard: Shard) -> Vec<Fired> {
        let began = Instant::now();
        let rules = self.catalog.rules();
        let words = words(&result.text);
        let units = units(call, result);
        let emergency = call
            .metadata
            .as_ref()
            .and_then(|m| m.emergency)
            .is_some_and(|flag| flag != 0);
        let fired = rules.evaluate(&Subject {
            text: &result.text,
            words: &words,
            sid: shard.sid,
            tg: shard.tg,
            units: &units,
            emergency,
            tones: &result.tones,
        });
        self.metrics
            .evaluation_seconds
            .observe(began.elapsed().as_secs_f64());
        fired
    }

    /// Publishes the alert of `fired` unless the rule is cooling down on this talkgroup.
    async fn raise(
        &self,
        fired: &Fired,
        shard: Shard,
        call_id: &CallId,
        result: &TranscriptionResult,
        started: i64,
    ) -> Result<(), RaiseError> {
        let rule = &fired.rule.spec;
        if !rule.cooldown.is_zero() && !self.take_turn(rule, shard, call_id, started).await? {
            self.metrics
                .suppressed
                .with_label_values(&[&rule.name, "cooldown"])
                .inc();
            tracing::info!(rule = %rule.name, call_id = %call_id, "Cooling down on this talkgroup; no alert.");
            return Ok(());
        }
        let alert = alert(fired, shard, call_id, result);
        let published = self
            .publisher
            .publish(
                subject::alert(&rule.name, shard, call_id),
                &alert.id,
                &alert,
            )
            .await?;
        if !published.duplicate {
            self.metrics.alerts.with_label_values(&[&rule.name]).inc();
            tracing::info!(rule = %rule.name, call_id = %call_id, summary = %alert.summary, "Alert raised.");
        }
        Ok(())
    }

    /// Whether `call_id` may raise `rule` on `shard` now, recording it as the last alert if
    /// so. A call that already holds the turn (a redelivery) keeps it.
    async fn take_turn(
        &self,
        rule: &crate::rule::RuleSpec,
        shard: Shard,
        call_id: &CallId,
        started: i64,
    ) -> Result<bool, RaiseError> {
        let key = format!("cooldown.{}.{}.{}", rule.name, shard.sid, shard.tg);
        let cooldown = i64::try_from(rule.cooldown.as_secs()).unwrap_or(i64::MAX);
        let state_error = |error: &dyn std::fmt::Display| RaiseError::State(error.to_string());
        loop {
            let entry = self
                .state
                .entry(&key)
                .await
                .map_err(|e| state_error(&e))?
                .filter(|entry| entry.operation == kv::Operation::Put);
            let last = entry
                .as_ref()
                .and_then(|entry| serde_json::from_slice::<LastAlert>(&entry.value).ok());
            let at = match &last {
                Some(last) if last.call_id == call_id.as_str() => return Ok(true),
                Some(last) if (started - last.at).abs() < cooldown => return Ok(false),
                Some(last) => started.max(last.at),
                None => started,
            };
            let value = serde_json::to_vec(&LastAlert {
                call_id: call_id.as_str().to_owned(),
                at,
            })
            .map_err(|e| state_error(&e))?;
            let written = match &entry {
                Some(entry) => self
                    .state
                    .update(&key, value.into(), entry.revision)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind() == kv::UpdateErrorKind::WrongLastRevision),
                None => self
                    .state
                    .create(&key, value.into())
                    .await
                    .map(|_| ())
                    .map_err(|e| e.kind() == kv::CreateErrorKind::AlreadyExists),
            };
            match written {
                Ok(()) => return Ok(true),
                // Another replica took a turn meanwhile: look again.
                Err(true) => {}
                Err(false) => return Err(RaiseError::State(format!("cannot write `{key}`"))),
            }
        }
    }
}

/// The alert of `fired` for the call of `result`.
fn alert(fired: &Fired, shard: Shard, call_id: &CallId, result: &TranscriptionResult) -> Alert {
    let rule = &fired.rule.spec.name;
    let call = result.call.clone();
    let talkgroup = call
        .as_ref()
        .and_then(|c| c.display.clone())
        .unwrap_or_else(|| format!("talkgroup {}", shard.tg));
    let what = fired
        .matches
        .iter()
        .map(|m| {
            if m.text.is_empty() {
                m.term.clone()
            } else {
                format!("\"{}\"", m.text)
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    Alert {
        id: format!("{rule}.{call_id}"),
        rule: rule.clone(),
        raised_at: Some(SystemTime::now().into()),
        summary: format!("{rule}: {what} on {talkgroup}"),
        matches: fired.matches.clone(),
        call_id: call_id.as_str().to_owned(),
        shard_key: Some(ShardKey {
            system_id: shard.sid,
            talkgroup_id: shard.tg,
        }),
        call,
        transcript: Some(TranscriptionResult {
            call: None,
            ..result.clone()
        }),
        system: None,
    }
}

/// The units heard in a call: its `srcList`, its first source, and the transcript's
/// segments.
fn units(call: &Call, result: &TranscriptionResult) -> Vec<i64> {
    let listed = call
        .metadata
        .iter()
        .flat_map(|m| m.src_list.iter().filter_map(|source| source.src));
    let mut units: Vec<i64> = listed
        .chain(call.call_src)
        .chain(result.segments.iter().filter_map(|s| s.unit))
        .filter(|unit| *unit > 0)
        .collect();
    units.sort_unstable();
    units.dedup();
    units
}

/// The call's start, epoch seconds (its ingest time when the start is missing).
fn call_start(call: &Call) -> i64 {
    call.meta_starttime
        .or(call.ts)
        .unwrap_or_else(crate::now_epoch)
}
