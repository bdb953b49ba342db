//! One live call in, its audio out: download once, publish whole or in ordered chunks, and only
//! then acknowledge the live message. Failures NAK with a growing delay (CDN 404 until the call
//! is too old, transient errors) or dead-letter with the reason (poison, permanent errors). A CDN
//! that refuses every call (401, 403) is refusing this service, not the calls: the replica
//! pauses and probes ([`Refusals`]) and the calls stay in the stream. A redriven call whose
//! audio is already stored is acked without downloading it again.

use std::time::SystemTime;

use bcfy_broadcastify::error::{AudioDownloadError, Error as ClientError};
use bcfy_broadcastify::{AudioPiece, Client};
use bcfy_bus::consume::POISON;
use bcfy_bus::topology::STREAM_CALLS_AUDIO;
use bcfy_bus::{CallId, Delivery, Failure, Publisher, Shard, subject};
use bcfy_proto::{AudioPayloadEvent, Call, LiveCallEnvelope};
use bcfy_runtime::service::{Admission, DeadLetters, Refusals};
use prost::Message as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::AudioConfig;
use crate::metrics::Metrics;

/// Why the fetcher gives a call up for good (besides poison and the client's own errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The call names no audio the CDN could serve.
    NoUrl,
    /// The CDN served an empty file.
    Empty,
    /// The CDN still answers 404 after the call's grace.
    NotFound,
    /// The CDN refuses this call (401, 403) while it serves others.
    Refused,
}

impl Refusal {
    /// The dead letter's and the metrics' class.
    fn kind(self) -> &'static str {
        match self {
            Refusal::NoUrl => "audio_no_url",
            Refusal::Empty => "audio_empty",
            Refusal::NotFound => "cdn_not_found",
            Refusal::Refused => "cdn_refused",
        }
    }
}

/// What every download task shares.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    pub(crate) client: Client,
    pub(crate) publisher: Publisher,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) config: AudioConfig,
    pub(crate) metrics: Metrics,
    pub(crate) refusals: Refusals,
}

/// The event for one piece of a call's audio. Offsets in seconds are proportional to bytes
/// (zero while the file's size is unknown); the last piece carries the total size and SHA-256.
pub(crate) fn audio_event(
    call_id: &CallId,
    call: &Call,
    piece: AudioPiece,
    source_url: &str,
) -> AudioPayloadEvent {
    let duration = call.call_duration.unwrap_or(0) as f64;
    let seconds_at = |byte: u64| match piece.expected_size {
        Some(total) if total > 0 => duration * byte as f64 / total as f64,
        _ => 0.0,
    };
    let end_byte = piece.offset + piece.bytes.len() as u64;
    let content_type = piece.content_type.unwrap_or_else(|| {
        match call.enc.as_deref() {
            Some("mp3") => "audio/mpeg",
            _ => "audio/mp4",
        }
        .to_owned()
    });
    AudioPayloadEvent {
        call_id: call_id.to_string(),
        sequence: piece.sequence,
        start_offset: seconds_at(piece.offset),
        end_offset: seconds_at(end_byte),
        payload: piece.bytes,
        content_type,
        byte_offset: piece.offset,
        r#final: piece.end.is_some(),
        total_size: piece.end.as_ref().map_or(0, |end| end.size),
        sha256: piece.end.map(|end| end.sha256).unwrap_or_default(),
        call: Some(call.clone()),
        source_url: source_url.to_owned(),
    }
}

impl Fetcher {
    /// Handles one delivery to the end: it is acked, NAKed or dead-lettered before this returns.
    pub(crate) async fn handle(&self, delivery: Delivery) {
        let Some((delivery, envelope)) =
            self.dead_letters.decode::<LiveCallEnvelope>(delivery).await
        else {
            return;
        };
        let Ok(call_id) = CallId::parse(&envelope.call_id) else {
            let reason = format!("`{}` is not a call id", envelope.call_id);
            return self.dead_letters.poison(delivery, &reason).await;
        };
        let span = tracing::info_span!("fetch_audio", call_id = %call_id);
        delivery.follow_trace(&span);
        self.fetch(delivery, envelope, call_id)
            .instrument(span)
            .await;
    }

    async fn fetch(&self, delivery: Delivery, envelope: LiveCallEnvelope, call_id: CallId) {
        let Some(call) = envelope.call.as_ref() else {
            return self
                .give_up(
                    delivery,
                    Failure::new(POISON, "the envelope has no call", Some(&call_id)),
                )
                .await;
        };
        let key = envelope.shard_key.as_ref();
        let shard = match (
            call.sid.or(key.map(|k| k.system_id)),
            call.call_tg.or(key.map(|k| k.talkgroup_id)),
        ) {
            (Some(sid), Some(tg)) => Shard { sid, tg },
            _ => {
                return self
                    .give_up(
                        delivery,
                        Failure::new(POISON, "no sid or talkgroup", Some(&call_id)),
                    )
                    .await;
            }
        };
        let url = match self.client.audio_url(call) {
            Ok(url) => url,
            Err(error) => {
                return self
                    .give_up(
                        delivery,
                        Failure::from_error(Refusal::NoUrl.kind(), &error, Some(&call_id)),
                    )
                    .await;
            }
        };
        let target = subject::audio(shard, &call_id);
        if delivery.redrives() > 0 {
            match audio_stored(self.publisher.jetstream(), &target).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!("A redriven call's audio is already stored; nothing to do.");
                    return self.ack(delivery).await;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "Looking for earlier audio failed; retrying.");
                    let delay = self.config.retry_backoff().delay(delivery.attempt());
                    return delivery.nak_or_wait(delay).await;
                }
            }
        }
        let _probe = match self.refusals.admit() {
            Admission::Go(probe) => probe,
            Admission::Hold(delay) => return delivery.nak_or_wait(delay).await,
        };
        let heartbeat = delivery.keep_alive(self.config.ack_wait / 3);
        self.metrics.in_flight.inc();
        let started = Instant::now();
        // Each piece is published as soon as it arrives (memory stays near two pieces per
        // download); the acks are awaited together once the file is complete.
        let mut download = self
            .client
            .audio_download(&url, self.config.chunk_bytes.as_usize());
        let mut acks = Vec::new();
        let stored = loop {
            let piece = match download.next_piece().await {
                Ok(Some(piece)) => piece,
                Ok(None) => unreachable!("the last piece ends the loop"),
                Err(error) => {
                    self.metrics.in_flight.dec();
                    drop(heartbeat);
                    return self.failed(delivery, &envelope, &call_id, error).await;
                }
            };
            let end = piece.end.clone();
            if end.as_ref().is_some_and(|end| end.size == 0) {
                self.metrics.in_flight.dec();
                drop(heartbeat);
                let reason = Failure::new(
                    Refusal::Empty.kind(),
                    "the CDN served an empty file",
                    Some(&call_id),
                );
                return self.give_up(delivery, reason).await;
            }
            let event = audio_event(&call_id, call, piece, url.as_str());
            let id = format!("{call_id}-{}", event.sequence);
            match self.publisher.start(target.clone(), &id, &event).await {
                Ok(ack) => acks.push(ack),
                Err(error) => break Err(error),
            }
            if let Some(end) = end {
                break futures::future::join_all(acks)
                    .await
                    .into_iter()
                    .find_map(Result::err)
                    .map_or(Ok(end), Err);
            }
        };
        self.metrics.in_flight.dec();
        drop(heartbeat);
        match stored {
            Ok(end) => {
                self.refusals.accepted();
                self.metrics
                    .download_seconds
                    .observe(started.elapsed().as_secs_f64());
                if let Some(latency) = bcfy_runtime::metrics::seconds_since(call.ts) {
                    self.metrics.call_to_audio_seconds.observe(latency);
                }
                self.metrics.downloads.with_label_values(&["ok"]).inc();
                self.metrics.bytes.inc_by(end.size);
                tracing::debug!(bytes = end.size, resumes = end.resumes, "Audio published.");
                self.ack(delivery).await;
            }
            Err(error) => {
                self.metrics.retries.with_label_values(&["publish"]).inc();
                let delay = self.config.retry_backoff().delay(delivery.attempt());
                tracing::warn!(error = %error, retry_in = ?delay, "Publishing audio failed; retrying.");
                delivery.nak_or_wait(delay).await;
            }
        }
    }

    async fn failed(
        &self,
        delivery: Delivery,
        envelope: &LiveCallEnvelope,
        call_id: &CallId,
        error: ClientError,
    ) {
        let attempt = delivery.attempt();
        if let ClientError::Status {
            status: 401 | 403, ..
        } = &error
        {
            return self.refused(delivery, call_id, &error).await;
        }
        if let ClientError::AudioDownload(AudioDownloadError::NotFound { .. }) = &error {
            // The CDN answered about this call: it serves us.
            self.refusals.accepted();
            self.metrics
                .downloads
                .with_label_values(&["not_found"])
                .inc();
            let received = envelope
                .received_at
                .and_then(|t| SystemTime::try_from(t).ok());
            let age = received
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .unwrap_or_default();
            if age > self.config.not_found_max_age {
                let reason = format!(
                    "the CDN still answered 404 after {}s ({attempt} attempts)",
                    age.as_secs()
                );
                return self
                    .give_up(
                        delivery,
                        Failure::new(Refusal::NotFound.kind(), reason, Some(call_id)),
                    )
                    .await;
            }
            self.metrics
                .retries
                .with_label_values(&[Refusal::NotFound.kind()])
                .inc();
            let delay = self.config.not_found_backoff().delay(attempt);
            tracing::debug!(retry_in = ?delay, attempt, "Audio not on the CDN yet.");
            return delivery.nak_or_wait(delay).await;
        }
        self.metrics.downloads.with_label_values(&["error"]).inc();
        let hint = error.retry_hint();
        if hint.transient {
            self.metrics
                .retries
                .with_label_values(&[error.kind()])
                .inc();
            let delay = hint
                .retry_after
                .unwrap_or_else(|| self.config.retry_backoff().delay(attempt));
            tracing::warn!(error = %error, retry_in = ?delay, attempt, "Download failed; retrying.");
            return delivery.nak_or_wait(delay).await;
        }
        self.give_up(
            delivery,
            Failure::from_error(error.kind(), &error, Some(call_id)),
        )
        .await;
    }

    /// A 401 or 403: handed back while it may be the CDN refusing this service (every call
    /// refused, see [`Refusals`]), dead-lettered once this call alone keeps being refused.
    async fn refused(&self, delivery: Delivery, call_id: &CallId, error: &ClientError) {
        self.metrics.downloads.with_label_values(&["refused"]).inc();
        let attempt = delivery.attempt();
        if let Some(delay) = self.refusals.refused(&error.to_string()) {
            return delivery.nak_or_wait(delay).await;
        }
        if attempt >= u64::from(self.config.refusals_to_pause) {
            return self
                .give_up(
                    delivery,
                    Failure::from_error(Refusal::Refused.kind(), error, Some(call_id)),
                )
                .await;
        }
        self.metrics
            .retries
            .with_label_values(&[Refusal::Refused.kind()])
            .inc();
        let delay = self.config.retry_backoff().delay(attempt);
        tracing::warn!(error = %error, retry_in = ?delay, attempt, "The CDN refused this call; retrying.");
        delivery.nak_or_wait(delay).await;
    }

    async fn ack(&self, delivery: Delivery) {
        if let Err(error) = delivery.ack().await {
            tracing::warn!(error = %error, "Ack failed; the call will be redelivered and deduplicated.");
        }
    }

    async fn give_up(&self, delivery: Delivery, failure: Failure) {
        self.dead_letters.give_up(delivery, failure).await;
    }
}

/// True when the stream holds the final chunk of the audio on `subject` (a redriven call
/// fetched meanwhile; a partial download does not count).
async fn audio_stored(
    js: &async_nats::jetstream::Context,
    subject: &str,
) -> Result<bool, async_nats::Error> {
    let messages = bcfy_bus::stored::messages_on(js, STREAM_CALLS_AUDIO, subject).await?;
    Ok(messages.iter().any(|message| {
        AudioPayloadEvent::decode(message.payload.as_ref()).is_ok_and(|event| event.r#final)
    }))
}

#[cfg(test)]
mod tests {
    use bcfy_broadcastify::AudioEnd;

    use super::*;

    fn piece(sequence: u32, offset: u64, len: usize, end: Option<AudioEnd>) -> AudioPiece {
        AudioPiece {
            sequence,
            offset,
            bytes: vec![7; len].into(),
            expected_size: Some(10_000),
            content_type: None,
            end,
        }
    }

    #[test]
    fn every_kind_a_call_is_given_up_for_is_a_known_dead_letter_kind() {
        use bcfy_broadcastify::error::Endpoint;
        let url = String::new();
        let client_errors = [
            ClientError::Status {
                endpoint: Endpoint::Audio,
                status: 410,
                retry_after: None,
                snippet: String::new(),
            },
            ClientError::AudioDownload(AudioDownloadError::TooLarge {
                url: url.clone(),
                limit: 1,
            }),
            ClientError::AudioDownload(AudioDownloadError::BadRange {
                asked: 1,
                content_range: String::new(),
            }),
            ClientError::AudioDownload(AudioDownloadError::NoUrl {
                missing: "filename",
            }),
        ];
        let kinds = client_errors
            .iter()
            .filter(|error| !error.retry_hint().transient)
            .map(ClientError::kind)
            .chain(
                [
                    Refusal::NoUrl,
                    Refusal::Empty,
                    Refusal::NotFound,
                    Refusal::Refused,
                ]
                .map(Refusal::kind),
            )
            .chain([POISON]);
        for kind in kinds {
            assert!(
                bcfy_bus::dead_letter_kinds::find(kind)
                    .is_some_and(|known| known.stages.contains(&bcfy_bus::Stage::AudioFetcher)),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_middle_piece_is_not_final_and_has_proportional_offsets() {
        let call = Call {
            call_duration: Some(10),
            enc: Some("mp3".into()),
            ..Call::default()
        };
        let id = CallId::parse("1-2-3").unwrap();
        let event = audio_event(&id, &call, piece(1, 4096, 4096, None), "u");
        assert_eq!((event.sequence, event.byte_offset), (1, 4096));
        assert!(!event.r#final && event.total_size == 0 && event.sha256.is_empty());
        assert!((event.start_offset - 4.096).abs() < 1e-9);
        assert!((event.end_offset - 8.192).abs() < 1e-9);
        assert_eq!(event.content_type, "audio/mpeg", "from the call's enc");
        assert_eq!(event.call_id, "1-2-3");
    }

    #[test]
    fn the_last_piece_is_final_with_size_and_hash() {
        let call = Call {
            call_duration: Some(10),
            ..Call::default()
        };
        let id = CallId::parse("1-2-3").unwrap();
        let end = AudioEnd {
            size: 10_000,
            sha256: "ab".repeat(32),
            resumes: 0,
        };
        let mut last = piece(2, 8192, 1808, Some(end));
        last.content_type = Some("audio/aac".into());
        let event = audio_event(&id, &call, last, "u");
        assert!(event.r#final);
        assert_eq!((event.total_size, event.sha256.len()), (10_000, 64));
        assert_eq!(event.end_offset, 10.0);
        assert_eq!(event.content_type, "audio/aac", "the CDN's type wins");
    }
}
