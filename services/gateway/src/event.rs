//! One pipeline event as the gateway serves it: which stream and sequence it came from, the
//! talkgroup and call it belongs to, and its JSON, made once and shared by every client.
//!
//! The JSON of a message is the protobuf JSON mapping of its `broadcastify.v1` type (field
//! names in lowerCamelCase, 64-bit integers as strings, timestamps in RFC 3339), so the same
//! schema describes NATS and HTTP consumers. Two fields are left out because the HTTP API
//! serves them elsewhere: an audio chunk's `payload` (`GET /v1/calls/{id}/audio` has the file)
//! and a live call's `rawPayload` (the Broadcastify JSON `call` already holds).

use std::fmt;
use std::str::FromStr;

use async_nats::HeaderMap;
use bcfy_bus::subject::{ParsedSubject, Shard};
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE, STREAM_TRANSCRIPTIONS};
use bcfy_proto::{AudioPayloadEvent, LiveCallEnvelope, TranscriptionResult};
use bytes::Bytes;
use prost::Message as _;
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A live call was published (`calls.live`).
    Call,
    /// A call's audio is complete in the stream (its final chunk on `calls.audio.raw`).
    Audio,
    /// A call's transcript (`transcription.complete`).
    Transcript,
}

impl Kind {
    /// Every kind, in cursor order.
    pub const ALL: [Kind; 3] = [Kind::Call, Kind::Audio, Kind::Transcript];

    /// The kind's name in URLs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Audio => "audio",
            Kind::Transcript => "transcript",
        }
    }

    /// The stream its events are stored in.
    pub fn stream(self) -> &'static str {
        match self {
            Kind::Call => STREAM_CALLS_LIVE,
            Kind::Audio => STREAM_CALLS_AUDIO,
            Kind::Transcript => STREAM_TRANSCRIPTIONS,
        }
    }

    /// Its place in a [`Cursor`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The subject filter of its events of `sid` (and `tg`), or all of them.
    pub fn subject_filter(self, sid: Option<i64>, tg: Option<i64>) -> String {
        let prefix = match self {
            Kind::Call => bcfy_bus::subject::LIVE_PREFIX,
            Kind::Audio => bcfy_bus::subject::AUDIO_PREFIX,
            Kind::Transcript => bcfy_bus::subject::TRANSCRIPTION_PREFIX,
        };
        let token = |v: Option<i64>| v.map_or("*".to_owned(), |v| v.to_string());
        let shard = format!("{prefix}.{}.{}", token(sid), token(tg));
        match self {
            Kind::Call => shard,
            Kind::Audio | Kind::Transcript => format!("{shard}.*"),
        }
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown kind `{s}` (call, audio, transcript)"))
    }
}

/// A position in all three streams at once: the last sequence seen of `CALLS_LIVE`,
/// `CALLS_AUDIO` and `TRANSCRIPTIONS`, written `L-A-T`. The sequences are the streams' own, so
/// a cursor means the same on every gateway replica.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Cursor(pub [u64; 3]);

impl Cursor {
    /// The sequence of `kind`'s stream.
    pub fn get(self, kind: Kind) -> u64 {
        self.0[kind.index()]
    }

    /// Moves `kind`'s sequence forward to `seq` (never back).
    pub fn advance(&mut self, kind: Kind, seq: u64) {
        let slot = &mut self.0[kind.index()];
        *slot = (*slot).max(seq);
    }

    /// Moves every sequence forward to `other`'s where it is further.
    pub fn advance_to(&mut self, other: Cursor) {
        for kind in Kind::ALL {
            self.advance(kind, other.get(kind));
        }
    }

    /// True when no sequence of this cursor is beyond `other`'s.
    pub fn within(self, other: Cursor) -> bool {
        Kind::ALL.into_iter().all(|k| self.get(k) <= other.get(k))
    }

    /// True when the event at `seq` of `kind` is at or before this cursor.
    pub fn covers(self, kind: Kind, seq: u64) -> bool {
        seq <= self.get(kind)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [live, audio, transcripts] = self.0;
        write!(f, "{live}-{audio}-{transcripts}")
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{s}` is not a cursor (`L-A-T`, as in an event's id)");
        let mut parts = s.split('-');
        let mut cursor = [0; 3];
        for slot in &mut cursor {
            *slot = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(invalid)?;
        }
        if parts.next().is_some() {
            return Err(invalid());
        }
        Ok(Cursor(cursor))
    }
}

/// A stored message the gateway can show.
#[derive(Debug, Clone)]
pub struct Event {
    /// What it is about.
    pub kind: Kind,
    /// Its sequence in its stream.
    pub seq: u64,
    /// Its talkgroup.
    pub shard: Shard,
    /// Its call.
    pub call_id: String,
    /// When JetStream stored it (Unix milliseconds).
    pub stored_at_ms: i64,
    /// The transcript's text in lower case, for `q` (transcripts only).
    pub text_lower: Option<String>,
    /// Its W3C `traceparent`, to continue the call's trace.
    pub traceparent: Option<String>,
    /// The event's JSON object without its opening brace and `id`, which is the client's own
    /// cursor: see [`Event::json`].
    json_rest: String,
}

/// A stored message as read from a stream.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// Its subject.
    pub subject: &'a str,
    /// Its stream sequence.
    pub seq: u64,
    /// When it was stored.
    pub time: OffsetDateTime,
    /// Its headers.
    pub headers: Option<&'a HeaderMap>,
    /// Its payload.
    pub payload: &'a [u8],
}

/// Why a stored message is not an event.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The subject is not a pipeline subject.
    #[error(transparent)]
    Subject(#[from] bcfy_bus::subject::SubjectError),
    /// The payload is not the subject's message type.
    #[error("cannot decode the payload: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The message has no JSON form.
    #[error("cannot serialize as JSON: {0}")]
    Json(String),
}

/// The envelope around a message's JSON.
#[derive(Serialize)]
struct Envelope<'a> {
    kind: Kind,
    stream: &'static str,
    seq: u64,
    subject: &'a str,
    sid: i64,
    tg: i64,
    call_id: &'a str,
    stored_at: String,
    data: serde_json::Value,
}

/// The protobuf JSON mapping of `message` (a `broadcastify.v1` message) without `omit`.
pub fn proto_json<M: prost::Name + prost::Message>(
    message: &M,
    omit: &[&str],
) -> Result<serde_json::Value, EventError> {
    bcfy_proto::proto_json::to_json(message, omit).map_err(|e| EventError::Json(e.to_string()))
}

/// RFC 3339 of `time`.
pub fn rfc3339(time: OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_default()
}

impl Event {
    /// The event a stored message is; `None` for an audio chunk that is not a call's last, and
    /// for a dead letter sent through again (a copy of an event already shown; what it leads
    /// to is new and shown).
    ///
    /// # Errors
    ///
    /// [`EventError`] when the message is not a pipeline event.
    pub fn from_stored(stored: Stored<'_>) -> Result<Option<Self>, EventError> {
        if bcfy_bus::redrive::count(stored.headers) > 0 {
            return Ok(None);
        }
        let parsed: ParsedSubject = stored.subject.parse()?;
        let (kind, call_id, text_lower, data) = match &parsed {
            ParsedSubject::Live(_) => {
                let envelope = LiveCallEnvelope::decode(stored.payload)?;
                let data = proto_json(&envelope, &["raw_payload"])?;
                (Kind::Call, envelope.call_id, None, data)
            }
            ParsedSubject::Audio(_, call_id) => {
                let chunk = AudioPayloadEvent::decode(stored.payload)?;
                if !chunk.r#final {
                    return Ok(None);
                }
                let data = proto_json(&chunk, &["payload"])?;
                (Kind::Audio, call_id.to_string(), None, data)
            }
            ParsedSubject::Transcription(_, call_id) => {
                let result = TranscriptionResult::decode(stored.payload)?;
                let text = result.text.to_lowercase();
                let data = proto_json(&result, &[])?;
                (Kind::Transcript, call_id.to_string(), Some(text), data)
            }
            // The gateway reads the call streams only.
            ParsedSubject::Alert(..) => return Ok(None),
        };
        let shard = parsed.shard();
        let envelope = Envelope {
            kind,
            stream: kind.stream(),
            seq: stored.seq,
            subject: stored.subject,
            sid: shard.sid,
            tg: shard.tg,
            call_id: &call_id,
            stored_at: rfc3339(stored.time),
            data,
        };
        let json = serde_json::to_string(&envelope).map_err(|e| EventError::Json(e.to_string()))?;
        let json_rest = json.strip_prefix('{').unwrap_or(&json).to_owned();
        Ok(Some(Self {
            kind,
            seq: stored.seq,
            shard,
            call_id,
            stored_at_ms: (stored.time.unix_timestamp_nanos() / 1_000_000) as i64,
            text_lower,
            traceparent: stored
                .headers
                .and_then(|h| h.get("traceparent"))
                .map(|v| v.as_str().to_owned()),
            json_rest,
        }))
    }

    /// The event's JSON object with `id` (the client's cursor after it) first.
    pub fn json(&self, id: Cursor) -> String {
        format!("{{\"id\":\"{id}\",{}", self.json_rest)
    }

    /// The event ready to send to a client whose cursor after it is `id`.
    pub fn render(&self, id: Cursor) -> Rendered {
        let json = self.json(id);
        // Compact JSON has no line breaks, so it is one `data:` line.
        let sse = format!("id: {id}\nevent: {}\ndata: {json}\n\n", self.kind.as_str());
        Rendered {
            id,
            json: Bytes::from(json),
            sse: Bytes::from(sse),
        }
    }
}

/// An event as sent: its JSON (a WebSocket text frame) and its Server-Sent Events frame. Made
/// once per event for every live client, and cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The cursor after it (its `id`).
    pub id: Cursor,
    /// The JSON object.
    pub json: Bytes,
    /// `id:`, `event:` and `data:` lines and the blank line.
    pub sse: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_and_refuse_anything_else() {
        let cursor: Cursor = "12-0-7".parse().expect("a cursor");
        assert_eq!(cursor, Cursor([12, 0, 7]));
        assert_eq!(cursor.to_string(), "12-0-7");
        for bad in ["", "12", "12-0", "12-0-7-1", "a-0-0", "-1-0-0", "1--0"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?} refused");
        }
    }

    #[test]
    fn a_transcript_is_json_by_the_protobuf_mapping() {
        let result = TranscriptionResult {
            call_id: "1502-1767225600-2345-k3v9q0ma".to_owned(),
            text: "Engine 5 Respond".to_owned(),
            completed_at: Some(prost_types::Timestamp {
                seconds: 1_767_225_600,
                nanos: 0,
            }),
            call: Some(bcfy_proto::Call {
                call_tg: Some(2345),
                ..Default::default()
            }),
            ..Default::default()
        };
        let payload = result.encode_to_vec();
        let event = Event::from_stored(Stored {
            subject: "transcription.complete.7001.2345.1502-1767225600-2345-k3v9q0ma",
            seq: 9,
            time: OffsetDateTime::UNIX_EPOCH,
            headers: None,
            payload: &payload,
        })
        .expect("an event")
        .expect("shown");
        let rendered = event.render(Cursor([1, 2, 9]));
        let json: serde_json::Value = serde_json::from_slice(&rendered.json).expect("JSON");
        let sse = String::from_utf8(rendered.sse.to_vec()).expect("UTF-8");
        assert!(
            sse.starts_with("id: 1-2-9\nevent: transcript\ndata: {"),
            "{sse}"
        );
        assert!(
            sse.ends_with("}\n\n") && sse.matches('\n').count() == 4,
            "{sse}"
        );
        assert_eq!(json["id"], "1-2-9");
        assert_eq!(json["kind"], "transcript");
        assert_eq!(json["sid"], 7001);
        assert_eq!(json["data"]["callId"], "1502-1767225600-2345-k3v9q0ma");
        assert_eq!(json["data"]["call"]["callTg"], "2345", "int64 as a string");
        assert_eq!(json["data"]["completedAt"], "2026-01-01T00:00:00Z");
        assert_eq!(event.text_lower.as_deref(), Some("engine 5 respond"));
    }

    #[test]
    fn a_redriven_copy_is_not_shown_again() {
        let payload = LiveCallEnvelope {
            call_id: "1502-1767225600-2345-k3v9q0ma".to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
        let shown = |headers: &HeaderMap| {
            Event::from_stored(Stored {
                subject: "calls.live.7001.2345",
                seq: 3,
                time: OffsetDateTime::UNIX_EPOCH,
                headers: Some(headers),
                payload: &payload,
            })
            .expect("an event")
            .is_some()
        };
        let mut headers = HeaderMap::new();
        assert!(shown(&headers));
        headers.insert(bcfy_bus::redrive::HEADER, "1");
        assert!(!shown(&headers));
    }
}
