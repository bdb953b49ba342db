//! The publish pipeline: each new call of an answer published once (`Nats-Msg-Id` = call id)
//! while the rest of the answer arrives, its PubAcks settled a window at a time, and what is
//! unusable dead-lettered, never dropped.

use std::time::SystemTime;

use bcfy_broadcastify::{CallIdentity, LiveCalls, ParsedCalls};
use bcfy_bus::publish::{self, PublishError, Published};
use bcfy_bus::{CallId, Shard, Stage, subject, trace_context};
use bcfy_proto::{DeadLetter, LiveCallEnvelope, ShardKey};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use sha2::{Digest as _, Sha256};
use tracing::Instrument as _;

use super::failure::PollError;
use super::{Progress, ShardPoller};

/// The dead letter class of an upstream record the poller cannot use.
const BAD_UPSTREAM_RECORD: &str = "bad_upstream_record";

impl ShardPoller {
    /// Publishes the last calls of an answer, waits for every ack still pending, and counts
    /// the calls the answer left out as already published.
    pub(super) async fn publish_answer(
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
    pub(super) async fn send_calls(
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
            error_kind: BAD_UPSTREAM_RECORD.to_owned(),
            attempts: 1,
            original_subject: String::new(),
            original_stream: String::new(),
            original_stream_sequence: 0,
            original_headers: [("shard".to_owned(), self.name.clone())].into(),
            original_payload: raw.as_bytes().to_vec(),
            call_id: id.map(|id| id.to_string()).unwrap_or_default(),
            failed_at: Some(SystemTime::now().into()),
            redrives: 0,
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
pub(super) fn identity_id(call: &CallIdentity<'_>) -> CallId {
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

#[cfg(test)]
mod tests {
    use bcfy_proto::Call;

    use super::*;

    fn envelope(ts: Option<i64>) -> LiveCallEnvelope {
        LiveCallEnvelope {
            call: Some(Call {
                ts,
                ..Call::default()
            }),
            ..LiveCallEnvelope::default()
        }
    }

    #[test]
    fn a_call_is_remembered_by_its_ts_else_the_cursor_else_forgotten_at_once() {
        assert_eq!(envelope_ts(&envelope(Some(1700)), Some(1800.0)), 1700.0);
        assert_eq!(envelope_ts(&envelope(None), Some(1800.0)), 1800.0);
        assert_eq!(envelope_ts(&envelope(None), None), f64::NEG_INFINITY);
    }
}
