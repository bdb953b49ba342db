//! One audio message in, at most one transcript out. A non-final chunk is acked at once (it
//! stays in the stream); the final chunk triggers the call: its audio is rebuilt from the
//! stream, transcribed whole, and the `TranscriptionResult` published before the ack. Transient
//! failures NAK with a growing delay (or the provider's `Retry-After`); permanent ones go to a
//! dead letter with the reason. A provider refusing our key (401, 402, 403) is not the call's
//! fault: the replica pauses and probes ([`Refusals`]) and the call goes back to the stream. A
//! redriven call whose transcript is already stored is acked without asking the provider. No
//! transcript is ever made up.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::reassemble::reassemble;
use bcfy_bus::stored;
use bcfy_bus::subject::{self, ParsedSubject};
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_bus::{CallId, Delivery, Failure, Publisher};
use bcfy_proto::{AudioPayloadEvent, TranscriptionResult};
use bcfy_runtime::service::{Admission, DeadLetters, Refusals};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::{ConsumerConfig, TranscriptionConfig};
use crate::error::TranscriptionError;
use crate::gate::ProviderGate;
use crate::hearing;
use crate::metrics::Metrics;
use crate::provider::{Provider, Transcript};
use crate::revise::{self, Revising};
use crate::units;

/// The `provider` and `model` of a transcript no engine made (no speech was heard).
const GATE_PROVIDER: &str = "vad";
const GATE_MODEL: &str = "earshot";

/// The call's length as listed (its `call_duration`), else as far as its audio reaches.
fn listed_duration(event: &AudioPayloadEvent) -> f64 {
    event
        .call
        .as_ref()
        .and_then(|c| c.call_duration)
        .map_or(event.end_offset, |s| s as f64)
}

/// What a transcript is made from.
#[derive(Debug)]
enum Made {
    /// The provider's words, and the call's tones.
    Words(Transcript, Vec<bcfy_signal::Tone>),
    /// No words; the call's tones.
    Nothing(Vec<bcfy_signal::Tone>),
}

/// What every transcription task shares.
#[derive(Debug, Clone)]
pub(crate) struct Transcriber {
    pub(crate) js: jetstream::Context,
    pub(crate) publisher: Publisher,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) provider: Provider,
    pub(crate) settings: TranscriptionConfig,
    pub(crate) consumer: ConsumerConfig,
    pub(crate) metrics: Metrics,
    pub(crate) gate: ProviderGate,
    pub(crate) refusals: Refusals,
    /// Set when running as a re-transcription job.
    pub(crate) revising: Option<Arc<Revising>>,
}

impl Transcriber {
    /// Handles one delivery to the end: acked, NAKed or dead-lettered before this returns.
    pub(crate) async fn handle(&self, delivery: Delivery) {
        let Some((delivery, event)) = self
            .dead_letters
            .decode::<AudioPayloadEvent>(delivery)
            .await
        else {
            return;
        };
        let Ok(ParsedSubject::Audio(shard, call_id)) = delivery.subject().parse() else {
            let reason = format!("`{}` is not an audio subject", delivery.subject());
            return self.dead_letters.poison(delivery, &reason).await;
        };
        if !event.r#final {
            // Kept in the stream; the final chunk's handler reads it back.
            return self.ack(delivery).await;
        }
        if let Some(revising) = &self.revising {
            let sequence = delivery.origin().map_or(0, |(_, sequence)| sequence);
            if revising.covers(sequence, &event).is_err() {
                revising.counts.outside.fetch_add(1, Ordering::Relaxed);
                return self.ack(delivery).await;
            }
        }
        let span = tracing::info_span!("transcribe", call_id = %call_id);
        delivery.follow_trace(&span);
        self.transcribe(delivery, event, shard, call_id)
            .instrument(span)
            .await;
    }

    async fn transcribe(
        &self,
        delivery: Delivery,
        event: AudioPayloadEvent,
        shard: bcfy_bus::Shard,
        call_id: CallId,
    ) {
        if self.revising.is_some() || delivery.redrives() > 0 {
            match self.already_transcribed(shard, &call_id).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!("The call is already transcribed; nothing to do.");
                    if let Some(revising) = &self.revising {
                        revising.counts.already.fetch_add(1, Ordering::Relaxed);
                    }
                    return self.ack(delivery).await;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "Looking for an earlier transcript failed; retrying.");
                    return self.retry(delivery, None).await;
                }
            }
        }
        let probe = match self.refusals.admit() {
            Admission::Go(probe) => probe,
            Admission::Hold(delay) => return delivery.nak_or_wait(delay).await,
        };
        let heartbeat = delivery.keep_alive(self.consumer.ack_wait / 3);
        let audio = match reassemble(&self.js, delivery.subject(), &event).await {
            Ok(audio) => audio,
            Err(error) if error.is_transient() => {
                drop(heartbeat);
                self.failed("reassembly");
                tracing::warn!(error = %error, "Reading the call's chunks failed; retrying.");
                return self.retry(delivery, None).await;
            }
            Err(error) => {
                drop(heartbeat);
                self.failed("reassembly");
                let reason = Failure::from_error(error.kind(), &error, Some(&call_id));
                return self.give_up(delivery, reason).await;
            }
        };
        let heard = if self.settings.gating.enabled {
            match hearing::listen(audio.clone(), &event.content_type, &self.settings.gating).await {
                Ok(heard) => Some(heard),
                Err(error) => {
                    drop(heartbeat);
                    self.failed(error.kind());
                    let reason = Failure::from_error(error.kind(), &error, Some(&call_id));
                    return self.give_up(delivery, reason).await;
                }
            }
        } else {
            None
        };
        if let Some(heard) = &heard
            && let Some(reason) = heard.no_speech_reason()
        {
            // Nothing to transcribe: no provider is asked, and nothing failed.
            drop(probe);
            self.metrics.gated.with_label_values(&[reason]).inc();
            self.metrics
                .gated_audio_seconds
                .inc_by(heard.speech.total_seconds);
            tracing::debug!(
                reason,
                tones = heard.tones.len(),
                "No speech; not transcribed."
            );
            let made = Made::Nothing(heard.tones.clone());
            let result = self.result(&call_id, &event, made, Some(reason));
            return self
                .publish(delivery, shard, &call_id, result, heartbeat)
                .await;
        }
        let prompt = self.settings.prompt_for(shard.sid, shard.tg);
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let answer = self
            .provider
            .transcribe(
                audio,
                &event.content_type,
                prompt,
                heard.as_ref().map(|h| Arc::clone(&h.samples)),
            )
            .await;
        let took = started.elapsed().as_secs_f64();
        self.metrics.in_flight.dec();
        let transcript = match answer {
            Ok(transcript) => transcript,
            // The engine heard no words in what sounded like speech: a normal radio event when
            // speech is gated (a key-up, an unreadable mumble), not a failure.
            Err(TranscriptionError::EmptyText) if heard.is_some() => {
                self.refusals.accepted();
                drop(probe);
                self.gate.succeeded();
                let tones = heard.map(|h| h.tones).unwrap_or_default();
                let made = Made::Words(Transcript::default(), tones);
                let result = self.result(&call_id, &event, made, Some("no_speech"));
                return self
                    .publish(delivery, shard, &call_id, result, heartbeat)
                    .await;
            }
            Err(error) => {
                drop(heartbeat);
                self.failed(error.kind());
                if error.is_refusal_of_us() {
                    let delay = self.refusals.refused(&error.to_string());
                    drop(probe);
                    return self.retry(delivery, delay).await;
                }
                if error.is_transient() {
                    if let Some(pause) = self.gate.failed(error.retry_after()) {
                        self.metrics.provider_pauses.inc();
                        tracing::warn!(pause = ?pause, "The provider keeps failing; pausing.");
                    }
                    tracing::warn!(error = %error, "Transcription failed; retrying.");
                    return self.retry(delivery, error.retry_after()).await;
                }
                // The provider answered about this call: it accepts us.
                self.refusals.accepted();
                let reason = Failure::from_error(error.kind(), &error, Some(&call_id));
                return self.give_up(delivery, reason).await;
            }
        };
        self.refusals.accepted();
        drop(probe);
        self.gate.succeeded();
        self.metrics.stt_seconds.observe(took);
        let audio_seconds = transcript
            .duration_seconds
            .unwrap_or_else(|| listed_duration(&event));
        if audio_seconds > 0.0 {
            self.metrics.audio_seconds.inc_by(audio_seconds);
            self.metrics.real_time_factor.observe(took / audio_seconds);
        }
        let tones = heard.map(|h| h.tones).unwrap_or_default();
        let result = self.result(&call_id, &event, Made::Words(transcript, tones), None);
        self.publish(delivery, shard, &call_id, result, heartbeat)
            .await;
    }

    /// The event for what was heard: the provider's words with units and without known
    /// hallucinations, or no words and why.
    fn result(
        &self,
        call_id: &CallId,
        event: &AudioPayloadEvent,
        made: Made,
        no_text_reason: Option<&str>,
    ) -> TranscriptionResult {
        let call = event.call.clone();
        let (mut transcript, tones, provider, model) = match made {
            Made::Words(transcript, tones) => (
                transcript,
                tones,
                self.settings.provider.as_str().to_owned(),
                self.provider.model().to_owned(),
            ),
            Made::Nothing(tones) => (
                Transcript::default(),
                tones,
                // Nobody transcribed it: the voice-activity detector decided.
                GATE_PROVIDER.to_owned(),
                GATE_MODEL.to_owned(),
            ),
        };
        let sources = call
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .map(|m| m.src_list.as_slice())
            .unwrap_or_default();
        units::assign(&mut transcript.segments, sources);
        let mut raw_text = String::new();
        if let Some(cleaned) = self.settings.cleanup.clean(&transcript.segments) {
            self.metrics
                .hallucinations_dropped
                .inc_by(cleaned.dropped as u64);
            raw_text = std::mem::replace(&mut transcript.text, cleaned.text);
            transcript.segments = cleaned.segments;
        } else if transcript.segments.is_empty()
            && let Some(text) = self.settings.cleanup.clean_text(&transcript.text)
        {
            raw_text = std::mem::replace(&mut transcript.text, text);
        }
        let no_text_reason = no_text_reason
            .or_else(|| transcript.text.is_empty().then_some("no_speech"))
            .unwrap_or_default();
        TranscriptionResult {
            call_id: call_id.to_string(),
            text: transcript.text,
            language: transcript.language.unwrap_or_default(),
            average_logprob: transcript.average_logprob,
            segments: transcript.segments,
            provider,
            model,
            completed_at: Some(SystemTime::now().into()),
            audio_duration_seconds: transcript
                .duration_seconds
                .unwrap_or_else(|| listed_duration(event)),
            call,
            no_text_reason: no_text_reason.to_owned(),
            tones: hearing::tones(&tones),
            raw_text,
            // Set when published.
            revision: 0,
            revision_job: String::new(),
        }
    }

    /// Publishes the transcript, then acks; a failed publish is retried.
    async fn publish(
        &self,
        delivery: Delivery,
        shard: bcfy_bus::Shard,
        call_id: &CallId,
        mut result: TranscriptionResult,
        heartbeat: impl Sized,
    ) {
        let subject = subject::transcription(shard, call_id);
        let published = match &self.revising {
            None => {
                result.revision = 1;
                self.publisher
                    .publish(subject, call_id.as_str(), &result)
                    .await
                    .map_err(async_nats::Error::from)
            }
            Some(revising) => {
                self.publish_revision(revising, subject, call_id, &mut result)
                    .await
            }
        };
        drop(heartbeat);
        match published {
            Ok(_) => {
                self.metrics.transcriptions.inc();
                if let Some(revising) = &self.revising {
                    revising.counts.revised.fetch_add(1, Ordering::Relaxed);
                }
                let logged = result.call.as_ref().and_then(|call| call.ts);
                if let Some(latency) = bcfy_runtime::metrics::seconds_since(logged) {
                    self.metrics.call_to_transcript_seconds.observe(latency);
                }
                tracing::debug!(chars = result.text.len(), "Transcript published.");
                self.ack(delivery).await;
            }
            Err(error) => {
                self.failed("publish");
                tracing::warn!(error = %error, "Publishing the transcript failed; retrying.");
                self.retry(delivery, None).await;
            }
        }
    }

    /// The call's next revision, appended after the newest transcript read (see [`crate::revise`]).
    async fn publish_revision(
        &self,
        revising: &Revising,
        subject: String,
        call_id: &CallId,
        result: &mut TranscriptionResult,
    ) -> Result<bcfy_bus::Published, async_nats::Error> {
        let newest = revise::newest(&self.js, &subject).await?;
        result.revision = Revising::next_revision(newest.as_ref().map(|(t, _)| t));
        result.revision_job.clone_from(&revising.job.name);
        let message_id = Revising::message_id(call_id.as_str(), result.revision);
        let after = newest.map_or(0, |(_, sequence)| sequence);
        Ok(self
            .publisher
            .publish_after(subject, &message_id, result, after)
            .await?)
    }

    /// True when the call's transcript is already stored: for the live service, a redriven call
    /// processed meanwhile (perhaps after the duplicate window that would have dropped a second
    /// one); for a re-transcription job, a call whose newest revision is this job's.
    async fn already_transcribed(
        &self,
        shard: bcfy_bus::Shard,
        call_id: &CallId,
    ) -> Result<bool, async_nats::Error> {
        let subject = subject::transcription(shard, call_id);
        match &self.revising {
            None => stored::holds(&self.js, STREAM_TRANSCRIPTIONS, &subject).await,
            Some(revising) => Ok(revise::newest(&self.js, &subject)
                .await?
                .is_some_and(|(t, _)| t.revision_job == revising.job.name)),
        }
    }

    /// Counts a failure of `kind`.
    fn failed(&self, kind: &str) {
        self.metrics.failures.with_label_values(&[kind]).inc();
    }

    async fn ack(&self, delivery: Delivery) {
        if let Err(error) = delivery.ack().await {
            tracing::warn!(error = %error, "Ack failed; the message returns and is deduplicated.");
        }
    }

    /// NAK after `asked` (the provider's `Retry-After`) or a delay growing with the attempt.
    async fn retry(&self, delivery: Delivery, asked: Option<Duration>) {
        let delay =
            asked.unwrap_or_else(|| self.consumer.retry_backoff().delay(delivery.attempt()));
        delivery.nak_or_wait(delay).await;
    }

    async fn give_up(&self, delivery: Delivery, failure: Failure) {
        self.dead_letters.give_up(delivery, failure).await;
    }
}
