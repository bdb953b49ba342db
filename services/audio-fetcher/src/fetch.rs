//! One live call in, its audio out: download once, publish whole or in ordered chunks, and only
//! then acknowledge the live message. Failures NAK with a growing delay (CDN 404 until the call
//! is too old, transient errors) or dead-letter with the reason (poison, permanent errors).

use std::time::{Duration, SystemTime};

use bcfy_broadcastify::error::{AudioDownloadError, Error as ClientError};
use bcfy_broadcastify::{AudioFile, Client};
use bcfy_bus::{CallId, Delivery, Failure, Publisher, Shard, Stage, subject};
use bcfy_proto::{AudioPayloadEvent, Call, LiveCallEnvelope};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::AudioConfig;
use crate::metrics::Metrics;

/// What every download task shares.
#[derive(Debug, Clone)]
pub(crate) struct Fetcher {
    pub(crate) client: Client,
    pub(crate) publisher: Publisher,
    pub(crate) config: AudioConfig,
    pub(crate) metrics: Metrics,
}

/// Why a call is given up on.
fn failure(kind: &str, reason: impl Into<String>, call_id: Option<&CallId>) -> Failure {
    Failure {
        kind: kind.to_owned(),
        reason: reason.into(),
        call_id: call_id.cloned(),
    }
}

/// `initial * 2^(attempt - 1)`, capped.
fn growing(initial: Duration, max: Duration, attempt: u64) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1).min(16)).unwrap_or(16);
    initial.saturating_mul(1 << exponent).min(max)
}

/// The events for one downloaded file: one when it fits `chunk_bytes`, else ordered chunks;
/// the last carries the total size and SHA-256. Offsets in seconds are proportional to bytes.
pub(crate) fn chunk_events(
    call_id: &CallId,
    call: &Call,
    file: &AudioFile,
    chunk_bytes: usize,
    source_url: &str,
) -> Vec<AudioPayloadEvent> {
    let total = file.bytes.len();
    let duration = call.call_duration.unwrap_or(0) as f64;
    let seconds_at = |byte: usize| {
        if total == 0 {
            0.0
        } else {
            duration * byte as f64 / total as f64
        }
    };
    let content_type = file.content_type.clone().unwrap_or_else(|| {
        match call.enc.as_deref() {
            Some("mp3") => "audio/mpeg",
            _ => "audio/mp4",
        }
        .to_owned()
    });
    let pieces = total.div_ceil(chunk_bytes.max(1)).max(1);
    (0..pieces)
        .map(|i| {
            let start = i * chunk_bytes;
            let end = (start + chunk_bytes).min(total);
            let last = i + 1 == pieces;
            AudioPayloadEvent {
                call_id: call_id.to_string(),
                sequence: u32::try_from(i).unwrap_or(u32::MAX),
                start_offset: seconds_at(start),
                end_offset: seconds_at(end),
                payload: file.bytes.slice(start..end),
                content_type: content_type.clone(),
                byte_offset: start as u64,
                r#final: last,
                total_size: if last { total as u64 } else { 0 },
                sha256: if last {
                    file.sha256.clone()
                } else {
                    String::new()
                },
                call: Some(call.clone()),
                source_url: source_url.to_owned(),
            }
        })
        .collect()
}

impl Fetcher {
    /// Handles one delivery to the end: it is acked, NAKed or dead-lettered before this returns.
    pub(crate) async fn handle(&self, delivery: Delivery) {
        let envelope = match delivery.decode::<LiveCallEnvelope>() {
            Ok(envelope) => envelope,
            Err(error) => {
                return self
                    .give_up(delivery, failure("poison", error.to_string(), None))
                    .await;
            }
        };
        let Ok(call_id) = CallId::parse(&envelope.call_id) else {
            let reason = format!("`{}` is not a call id", envelope.call_id);
            return self
                .give_up(delivery, failure("poison", reason, None))
                .await;
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
                    failure("poison", "the envelope has no call", Some(&call_id)),
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
                        failure("poison", "no sid or talkgroup", Some(&call_id)),
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
                        failure("audio_no_url", error.to_string(), Some(&call_id)),
                    )
                    .await;
            }
        };
        let heartbeat = delivery.keep_alive(self.config.ack_wait / 3);
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let downloaded = self.client.download_audio(&url).await;
        self.metrics.in_flight.dec();
        let file = match downloaded {
            Ok(file) if file.bytes.is_empty() => {
                drop(heartbeat);
                return self
                    .give_up(
                        delivery,
                        failure(
                            "audio_empty",
                            "the CDN served an empty file",
                            Some(&call_id),
                        ),
                    )
                    .await;
            }
            Ok(file) => file,
            Err(error) => {
                drop(heartbeat);
                return self.failed(delivery, &envelope, &call_id, error).await;
            }
        };
        self.metrics
            .download_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.downloads.with_label_values(&["ok"]).inc();
        let events = chunk_events(
            &call_id,
            call,
            &file,
            self.config.chunk_bytes.as_usize(),
            url.as_str(),
        );
        let ids: Vec<String> = events
            .iter()
            .map(|e| format!("{call_id}-{}", e.sequence))
            .collect();
        let target = subject::audio(shard, &call_id);
        let batch: Vec<(String, &str, &AudioPayloadEvent)> = events
            .iter()
            .zip(&ids)
            .map(|(event, id)| (target.clone(), id.as_str(), event))
            .collect();
        let stored = match self.publisher.publish_all(batch).await {
            Ok(results) => results
                .into_iter()
                .find_map(Result::err)
                .map_or(Ok(()), Err),
            Err(error) => Err(error),
        };
        drop(heartbeat);
        match stored {
            Ok(()) => {
                self.metrics.bytes.inc_by(file.bytes.len() as u64);
                tracing::debug!(
                    bytes = file.bytes.len(),
                    chunks = events.len(),
                    "Audio published."
                );
                if let Err(error) = delivery.ack().await {
                    tracing::warn!(error = %error, "Ack failed; the call will be redelivered and deduplicated.");
                }
            }
            Err(error) => {
                self.metrics.retries.with_label_values(&["publish"]).inc();
                let delay = growing(
                    self.config.retry_initial_delay,
                    self.config.retry_max_delay,
                    delivery.attempt(),
                );
                tracing::warn!(error = %error, retry_in = ?delay, "Publishing audio failed; retrying.");
                self.nak(delivery, delay).await;
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
        if let ClientError::AudioDownload(AudioDownloadError::NotFound { .. }) = &error {
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
                    .give_up(delivery, failure("cdn_not_found", reason, Some(call_id)))
                    .await;
            }
            self.metrics
                .retries
                .with_label_values(&["cdn_not_found"])
                .inc();
            let delay = growing(
                self.config.not_found_initial_delay,
                self.config.not_found_max_delay,
                attempt,
            );
            tracing::debug!(retry_in = ?delay, attempt, "Audio not on the CDN yet.");
            return self.nak(delivery, delay).await;
        }
        self.metrics.downloads.with_label_values(&["error"]).inc();
        let hint = error.retry_hint();
        if hint.transient {
            self.metrics
                .retries
                .with_label_values(&[error.kind()])
                .inc();
            let delay = hint.retry_after.unwrap_or_else(|| {
                growing(
                    self.config.retry_initial_delay,
                    self.config.retry_max_delay,
                    attempt,
                )
            });
            tracing::warn!(error = %error, retry_in = ?delay, attempt, "Download failed; retrying.");
            return self.nak(delivery, delay).await;
        }
        self.give_up(
            delivery,
            failure(error.kind(), error.to_string(), Some(call_id)),
        )
        .await;
    }

    async fn nak(&self, delivery: Delivery, delay: Duration) {
        if let Err(error) = delivery.nak(delay).await {
            tracing::warn!(error = %error, "NAK failed; the call returns after its ack wait.");
        }
    }

    async fn give_up(&self, delivery: Delivery, failure: Failure) {
        self.metrics
            .dead_letters
            .with_label_values(&[&failure.kind])
            .inc();
        if let Err(error) = delivery
            .dead_letter(&self.publisher, Stage::AudioFetcher, failure)
            .await
        {
            tracing::warn!(error = %error, "Dead letter failed; the call will be retried.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> AudioFile {
        AudioFile {
            bytes: (0..len)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>()
                .into(),
            content_type: Some("audio/aac".into()),
            sha256: "ab".repeat(32),
            resumes: 0,
        }
    }

    #[test]
    fn a_small_file_is_one_final_event() {
        let call = Call {
            call_duration: Some(8),
            ..Call::default()
        };
        let id = CallId::parse("1-2-3").unwrap();
        let events = chunk_events(&id, &call, &file(1000), 4096, "http://cdn/x.m4a");
        assert_eq!(events.len(), 1);
        let only = &events[0];
        assert!(only.r#final);
        assert_eq!(
            (only.sequence, only.byte_offset, only.total_size),
            (0, 0, 1000)
        );
        assert_eq!((only.start_offset, only.end_offset), (0.0, 8.0));
        assert_eq!(only.content_type, "audio/aac");
    }

    #[test]
    fn a_large_file_is_ordered_chunks_that_cover_it_exactly() {
        let call = Call {
            call_duration: Some(10),
            enc: Some("mp3".into()),
            ..Call::default()
        };
        let id = CallId::parse("1-2-3").unwrap();
        let mut source = file(10_000);
        source.content_type = None;
        let events = chunk_events(&id, &call, &source, 4096, "u");
        assert_eq!(events.len(), 3);
        let joined: Vec<u8> = events.iter().flat_map(|e| e.payload.clone()).collect();
        assert_eq!(joined, source.bytes.to_vec());
        assert_eq!(
            events.iter().map(|e| e.byte_offset).collect::<Vec<_>>(),
            [0, 4096, 8192]
        );
        assert!(
            events[..2]
                .iter()
                .all(|e| !e.r#final && e.total_size == 0 && e.sha256.is_empty())
        );
        assert!(
            events[2].r#final
                && events[2].total_size == 10_000
                && events[2].sha256 == source.sha256
        );
        assert_eq!(events[2].end_offset, 10.0);
        assert_eq!(events[0].content_type, "audio/mpeg");
    }

    #[test]
    fn delays_grow_and_cap() {
        let (one, max) = (Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(growing(one, max, 1), one);
        assert_eq!(growing(one, max, 3), Duration::from_secs(4));
        assert_eq!(growing(one, max, 50), max);
    }
}
