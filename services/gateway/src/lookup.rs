//! Finding one call in the streams by its id, without an index of our own: the audio and
//! transcript subjects end with the call id, and a readable id names the call's talkgroup and
//! start time, which narrow the live stream to a few of its talkgroup's calls.

use std::time::Duration;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use bcfy_bus::CallId;
use bcfy_bus::subject::{ParsedSubject, Shard};
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE, STREAM_TRANSCRIPTIONS};
use bcfy_proto::{AudioPayloadEvent, LiveCallEnvelope, TranscriptionResult};
use futures::StreamExt as _;
use prost::Message as _;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::event::Kind;

/// How long before a call's start its live event may have been stored (clock skew).
const SKEW: Duration = Duration::from_secs(600);
/// How long after a call's start its live event may be stored (the poller's late sweep and
/// redeliveries end well within the duplicate window).
const LATE: Duration = Duration::from_secs(2 * 3600);
/// Most live events of the call's talkgroup read while looking for it.
const MAX_SCANNED: usize = 20_000;

/// A call's live event, as stored.
#[derive(Debug, Clone)]
pub struct LiveRecord {
    /// The envelope.
    pub envelope: LiveCallEnvelope,
    /// Its sequence in `CALLS_LIVE`.
    pub seq: u64,
    /// When it was stored.
    pub stored_at: OffsetDateTime,
}

/// A call's audio, as stored: its final chunk.
#[derive(Debug, Clone)]
pub struct AudioRecord {
    /// The subject of its chunks.
    pub subject: String,
    /// The final chunk (with its payload: the whole file when it is the only one).
    pub last: AudioPayloadEvent,
    /// Its sequence in `CALLS_AUDIO`.
    pub seq: u64,
    /// Its headers (the call's trace context among them).
    pub headers: async_nats::HeaderMap,
    /// When it was stored.
    pub stored_at: OffsetDateTime,
}

/// Everything the streams hold of one call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The call.
    pub call_id: CallId,
    /// Its talkgroup.
    pub shard: Shard,
    /// Its live event, when found.
    pub live: Option<LiveRecord>,
    /// Its audio, when complete in the stream.
    pub audio: Option<AudioRecord>,
    /// Its transcripts, oldest first, with their sequences.
    pub transcripts: Vec<(TranscriptionResult, u64)>,
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(format!("the streams cannot be read: {error}"))
}

/// Parses a call id from a path.
///
/// # Errors
///
/// 400 `invalid_call_id`.
pub fn parse_call_id(id: &str) -> Result<CallId, ApiError> {
    CallId::parse(id).map_err(|e| ApiError::bad_request("invalid_call_id", e.to_string()))
}

/// The talkgroup and start time a readable call id names (`{node}-{start}-{tg}-{hash}`).
fn readable_parts(id: &CallId) -> Option<(i64, i64)> {
    let mut parts = id.as_str().split('-');
    let _node = parts.next()?;
    let start = parts.next()?.parse().ok()?;
    let tg = parts.next()?.parse().ok()?;
    Some((tg, start))
}

/// The subjects of `stream` that match `filter`, with their message counts.
///
/// # Errors
///
/// 503 when the stream cannot be read.
pub async fn subjects(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Result<Vec<(String, usize)>, ApiError> {
    bcfy_bus::stored::subjects(js, stream, filter)
        .await
        .map_err(unavailable)
}

/// The last message stored on `subject`.
pub async fn last_on(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<StreamMessage, ApiError> {
    js.get_stream(stream)
        .await
        .map_err(unavailable)?
        .get_last_raw_message_by_subject(subject)
        .await
        .map_err(unavailable)
}

/// The call's audio: the last chunk on its subject, when it is the final one.
pub async fn find_audio(
    js: &jetstream::Context,
    call_id: &CallId,
) -> Result<Option<(Shard, AudioRecord)>, ApiError> {
    let filter = format!("{}.*.*.{call_id}", bcfy_bus::subject::AUDIO_PREFIX);
    let Some((subject, _)) = subjects(js, STREAM_CALLS_AUDIO, &filter).await?.pop() else {
        return Ok(None);
    };
    let shard = match subject.parse::<ParsedSubject>() {
        Ok(parsed) => parsed.shard(),
        Err(_) => return Ok(None),
    };
    let message = last_on(js, STREAM_CALLS_AUDIO, &subject).await?;
    let last = AudioPayloadEvent::decode(message.payload.as_ref()).map_err(unavailable)?;
    if !last.r#final {
        return Ok(None);
    }
    Ok(Some((
        shard,
        AudioRecord {
            subject,
            last,
            seq: message.sequence,
            headers: message.headers,
            stored_at: message.time,
        },
    )))
}

/// Everything the streams hold of `call_id`; `None` when they hold nothing.
///
/// # Errors
///
/// 503 when a stream cannot be read.
pub async fn find_call(
    js: &jetstream::Context,
    call_id: &CallId,
) -> Result<Option<CallRecord>, ApiError> {
    let audio = find_audio(js, call_id).await?;
    find_call_with(js, call_id, audio).await
}

/// As [`find_call`], with the call's audio already looked up (`None`: not stored).
///
/// # Errors
///
/// 503 when a stream cannot be read.
pub async fn find_call_with(
    js: &jetstream::Context,
    call_id: &CallId,
    audio: Option<(Shard, AudioRecord)>,
) -> Result<Option<CallRecord>, ApiError> {
    let filter = Kind::Transcript.subject_filter(None, None);
    let filter = format!("{}{call_id}", filter.strip_suffix('*').unwrap_or(&filter));
    let mut transcripts = Vec::new();
    let mut shard = audio.as_ref().map(|(shard, _)| *shard);
    for (subject, _) in subjects(js, STREAM_TRANSCRIPTIONS, &filter).await? {
        if let Ok(parsed) = subject.parse::<ParsedSubject>() {
            shard.get_or_insert(parsed.shard());
        }
        let messages = bcfy_bus::stored::messages_on(js, STREAM_TRANSCRIPTIONS, &subject)
            .await
            .map_err(unavailable)?;
        for message in messages {
            let seq = message.info().map_or(0, |i| i.stream_sequence);
            if let Ok(result) = TranscriptionResult::decode(message.payload.as_ref()) {
                transcripts.push((result, seq));
            }
        }
    }
    let live = find_live(js, call_id, shard).await?;
    let shard = shard.or_else(|| live.as_ref().map(|(shard, _)| *shard));
    let Some(shard) = shard else {
        return Ok(None);
    };
    Ok(Some(CallRecord {
        call_id: call_id.clone(),
        shard,
        live: live.map(|(_, record)| record),
        audio: audio.map(|(_, record)| record),
        transcripts,
    }))
}

/// The call's live event: read from its talkgroup's events stored around its start time.
async fn find_live(
    js: &jetstream::Context,
    call_id: &CallId,
    shard: Option<Shard>,
) -> Result<Option<(Shard, LiveRecord)>, ApiError> {
    let Some((tg, start)) = readable_parts(call_id) else {
        return Ok(None);
    };
    let Ok(start) = OffsetDateTime::from_unix_timestamp(start) else {
        return Ok(None);
    };
    let filter = Kind::Call.subject_filter(shard.map(|s| s.sid), Some(tg));
    let consumer = js
        .get_stream(STREAM_CALLS_LIVE)
        .await
        .map_err(unavailable)?
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::ByStartTime {
                start_time: start - SKEW,
            },
            ..OrderedConfig::default()
        })
        .await
        .map_err(unavailable)?;
    if consumer.cached_info().num_pending == 0 {
        return Ok(None);
    }
    let mut messages = consumer.messages().await.map_err(unavailable)?;
    for _ in 0..MAX_SCANNED {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.map_err(unavailable)?;
        let info = message.info().map_err(unavailable)?;
        if info.published > start + LATE {
            break;
        }
        let (seq, stored_at, pending) = (info.stream_sequence, info.published, info.pending);
        if let Ok(envelope) = LiveCallEnvelope::decode(message.payload.as_ref())
            && envelope.call_id == call_id.as_str()
            && let Ok(ParsedSubject::Live(shard)) = message.subject.parse::<ParsedSubject>()
        {
            let record = LiveRecord {
                envelope,
                seq,
                stored_at,
            };
            return Ok(Some((shard, record)));
        }
        if pending == 0 {
            break;
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readable_id_names_its_talkgroup_and_start() {
        let id = CallId::parse("1502-1767225600-2345-k3v9q0ma").expect("an id");
        assert_eq!(readable_parts(&id), Some((2345, 1_767_225_600)));
        let hashed = CallId::parse("x0123456789abcdef0123456789abcdef").expect("an id");
        assert_eq!(readable_parts(&hashed), None);
    }
}
