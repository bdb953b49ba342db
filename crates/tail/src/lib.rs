//! `bcfy-tail`: a person's window on the bus. Every event names its protobuf type in its
//! `Content-Type` header, so any message on any subject can be decoded without knowing the
//! subject: as a one-line summary per call (live call, its audio, its transcript, a dead
//! letter) or as JSON lines (protobuf's JSON mapping, via the checked-in descriptor set).

use std::time::{SystemTime, UNIX_EPOCH};

use bcfy_bus::subject::ParsedSubject;
use bcfy_proto::{Alert, AudioPayloadEvent, DeadLetter, LiveCallEnvelope, TranscriptionResult};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// Why a message could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// No `Content-Type` naming a protobuf type.
    #[error("no protobuf Content-Type header")]
    Untyped,
    /// A type the schemas do not have.
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The payload is not that type.
    #[error("cannot decode {kind}: {reason}")]
    Decode {
        /// The type.
        kind: String,
        /// The decoder's error.
        reason: String,
    },
}

/// How messages are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One line per call event; non-final audio chunks are skipped.
    Summary,
    /// One JSON object per message: subject, type and the decoded message.
    Json,
}

/// Decodes messages by the type their headers name.
#[derive(Debug, Clone)]
pub struct Decoder {
    pool: DescriptorPool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

fn decode_error(kind: &str, error: impl std::fmt::Display) -> TailError {
    TailError::Decode {
        kind: kind.to_owned(),
        reason: error.to_string(),
    }
}

/// `HH:MM:SS` of the current UTC time.
fn clock() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

impl Decoder {
    /// A decoder for every `broadcastify.v1` message.
    ///
    /// # Panics
    ///
    /// Never in practice: the descriptor set is generated with the code and checked in.
    pub fn new() -> Self {
        let pool = DescriptorPool::decode(bcfy_proto::FILE_DESCRIPTOR_SET)
            .expect("the checked-in descriptor set decodes");
        Self { pool }
    }

    /// The message on `subject` with `content_type`, shown as `format`; `None` when the
    /// summary skips it (a non-final audio chunk).
    ///
    /// # Errors
    ///
    /// [`TailError`] when the type is missing or unknown, or the payload is not that type.
    pub fn render(
        &self,
        subject: &str,
        content_type: Option<&str>,
        payload: &[u8],
        format: Format,
    ) -> Result<Option<String>, TailError> {
        let kind = content_type
            .and_then(bcfy_proto::content_type::message_name)
            .ok_or(TailError::Untyped)?;
        match format {
            Format::Json => self.json(subject, kind, payload).map(Some),
            Format::Summary => summary(subject, kind, payload),
        }
    }

    fn json(&self, subject: &str, kind: &str, payload: &[u8]) -> Result<String, TailError> {
        let body = self.to_json(kind, payload)?;
        Ok(serde_json::json!({ "subject": subject, "type": kind, "message": body }).to_string())
    }

    /// `payload` decoded as message type `kind` (e.g. `broadcastify.v1.DeadLetter`), in
    /// protobuf's JSON mapping without default-valued fields.
    ///
    /// # Errors
    ///
    /// [`TailError`] when the type is unknown or the payload is not that type.
    pub fn to_json(&self, kind: &str, payload: &[u8]) -> Result<serde_json::Value, TailError> {
        let descriptor = self
            .pool
            .get_message_by_name(kind)
            .ok_or_else(|| TailError::UnknownType(kind.to_owned()))?;
        let message =
            DynamicMessage::decode(descriptor, payload).map_err(|e| decode_error(kind, e))?;
        let options = SerializeOptions::new().skip_default_fields(true);
        let mut body = serde_json::Serializer::new(Vec::new());
        message
            .serialize_with_options(&mut body, &options)
            .map_err(|e| decode_error(kind, e))?;
        serde_json::from_slice(&body.into_inner()).map_err(|e| decode_error(kind, e))
    }
}

/// What was said, each unit named where it starts talking (`Dispatch: … | 2043: …`); the
/// reason in brackets when nothing was.
fn said(event: &TranscriptionResult) -> String {
    if event.text.is_empty() {
        return format!("[{}]", event.no_text_reason);
    }
    if event.segments.iter().all(|s| s.unit.is_none()) {
        return event.text.clone();
    }
    let mut parts: Vec<(String, Vec<&str>)> = Vec::new();
    for segment in &event.segments {
        let unit = match (&segment.unit_tag, segment.unit) {
            (tag, _) if !tag.is_empty() => tag.clone(),
            (_, Some(unit)) => unit.to_string(),
            (_, None) => "?".to_owned(),
        };
        match parts.last_mut() {
            Some((last, texts)) if *last == unit => texts.push(segment.text.trim()),
            _ => parts.push((unit, vec![segment.text.trim()])),
        }
    }
    parts
        .into_iter()
        .map(|(unit, texts)| format!("{unit}: {}", texts.join(" ")))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The tones, after the text: ` tones: two-tone 600.9/1153.4 Hz at 0.4 s, dtmf 159# at 0.3 s`.
fn tones(tones: &[bcfy_proto::Tone]) -> String {
    use bcfy_proto::ToneKind;
    if tones.is_empty() {
        return String::new();
    }
    let each: Vec<String> = tones
        .iter()
        .map(|tone| {
            let what = match tone.kind() {
                ToneKind::TwoTone => format!(
                    "two-tone {:.1}/{:.1} Hz",
                    tone.frequency_hz, tone.second_frequency_hz
                ),
                ToneKind::Dtmf => format!("dtmf {}", tone.digits),
                ToneKind::Single | ToneKind::Unspecified => {
                    format!("tone {:.1} Hz {:.1} s", tone.frequency_hz, tone.duration)
                }
            };
            format!("{what} at {:.1} s", tone.start)
        })
        .collect();
    format!(" tones: {}", each.join(", "))
}

/// `sid/tg call_id` from an event subject.
fn where_from(subject: &str) -> String {
    match subject.parse::<ParsedSubject>() {
        Ok(parsed) => {
            let shard = parsed.shard();
            let call = parsed.call_id().map(|c| c.to_string()).unwrap_or_default();
            format!("{}/{} {call}", shard.sid, shard.tg)
        }
        Err(_) => subject.to_owned(),
    }
}

fn summary(subject: &str, kind: &str, payload: &[u8]) -> Result<Option<String>, TailError> {
    let at = clock();
    let from = where_from(subject);
    let line = match kind.strip_prefix("broadcastify.v1.") {
        Some("LiveCallEnvelope") => {
            let event = LiveCallEnvelope::decode(payload).map_err(|e| decode_error(kind, e))?;
            let seconds = event
                .call
                .and_then(|c| c.call_duration)
                .map_or_else(String::new, |s| format!(" {s} s"));
            // Live subjects carry no call id; the envelope does.
            format!("{at} call   {from}{}{seconds}", event.call_id)
        }
        Some("AudioPayloadEvent") => {
            let event = AudioPayloadEvent::decode(payload).map_err(|e| decode_error(kind, e))?;
            if !event.r#final {
                return Ok(None);
            }
            format!(
                "{at} audio  {from} {} bytes {}",
                event.total_size, event.content_type
            )
        }
        Some("TranscriptionResult") => {
            let event = TranscriptionResult::decode(payload).map_err(|e| decode_error(kind, e))?;
            format!(
                "{at} text   {from} {:.1} s ({}/{}): {}{}",
                event.audio_duration_seconds,
                event.provider,
                event.model,
                said(&event),
                tones(&event.tones)
            )
        }
        Some("DeadLetter") => {
            let event = DeadLetter::decode(payload).map_err(|e| decode_error(kind, e))?;
            format!(
                "{at} dead   {} {} {}: {}",
                event.stage, event.call_id, event.error_kind, event.reason
            )
        }
        Some("Alert") => {
            let event = Alert::decode(payload).map_err(|e| decode_error(kind, e))?;
            format!("{at} ALERT  {}", event.summary)
        }
        _ => format!("{at} {kind} on {subject} ({} bytes)", payload.len()),
    };
    Ok(Some(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bcfy_proto::content_type::for_message;

    const SUBJECT: &str = "transcription.complete.7001.2345.1502-1767225600-2345-abc";

    fn result() -> TranscriptionResult {
        TranscriptionResult {
            call_id: "1502-1767225600-2345-abc".into(),
            text: "Engine 12 respond".into(),
            provider: "whisper".into(),
            model: "tiny.en".into(),
            audio_duration_seconds: 4.6,
            ..TranscriptionResult::default()
        }
    }

    #[test]
    fn a_transcript_is_one_summary_line_and_a_json_object() {
        let decoder = Decoder::new();
        let content_type = for_message::<TranscriptionResult>();
        let payload = result().encode_to_vec();
        let line = decoder
            .render(SUBJECT, Some(&content_type), &payload, Format::Summary)
            .expect("renders")
            .expect("shown");
        assert!(
            line.contains(
                "7001/2345 1502-1767225600-2345-abc 4.6 s (whisper/tiny.en): Engine 12 respond"
            ),
            "{line}"
        );
        let json = decoder
            .render(SUBJECT, Some(&content_type), &payload, Format::Json)
            .expect("renders")
            .expect("shown");
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(value["type"], "broadcastify.v1.TranscriptionResult");
        assert_eq!(value["message"]["text"], "Engine 12 respond");
        assert_eq!(value["message"]["callId"], "1502-1767225600-2345-abc");
    }

    #[test]
    fn units_name_who_spoke_and_tones_and_silence_are_said() {
        let segment = |text: &str, unit: Option<i64>, tag: &str| bcfy_proto::TranscriptSegment {
            text: text.into(),
            unit,
            unit_tag: tag.into(),
            ..bcfy_proto::TranscriptSegment::default()
        };
        let spoken = TranscriptionResult {
            segments: vec![
                segment(" Engine 12,", Some(1001), "Dispatch"),
                segment(" respond.", Some(1001), "Dispatch"),
                segment(" Copy.", Some(2043), ""),
            ],
            ..result()
        };
        assert_eq!(said(&spoken), "Dispatch: Engine 12, respond. | 2043: Copy.");
        let page = TranscriptionResult {
            text: String::new(),
            no_text_reason: "tones_only".into(),
            tones: vec![bcfy_proto::Tone {
                kind: bcfy_proto::ToneKind::TwoTone.into(),
                frequency_hz: 600.9,
                second_frequency_hz: 1153.4,
                start: 0.4,
                ..bcfy_proto::Tone::default()
            }],
            ..result()
        };
        assert_eq!(
            format!("{}{}", said(&page), tones(&page.tones)),
            "[tones_only] tones: two-tone 600.9/1153.4 Hz at 0.4 s"
        );
    }

    #[test]
    fn non_final_audio_is_skipped_and_bad_messages_are_errors() {
        let decoder = Decoder::new();
        let chunk = AudioPayloadEvent::default().encode_to_vec();
        let audio = for_message::<AudioPayloadEvent>();
        assert_eq!(
            decoder
                .render(
                    "calls.audio.raw.7001.2345.x-1-2-y",
                    Some(&audio),
                    &chunk,
                    Format::Summary
                )
                .expect("renders"),
            None
        );
        assert!(matches!(
            decoder.render(SUBJECT, None, b"", Format::Json),
            Err(TailError::Untyped)
        ));
        assert!(matches!(
            decoder.render(
                SUBJECT,
                Some("application/protobuf; proto=x.Y"),
                b"",
                Format::Json
            ),
            Err(TailError::UnknownType(_))
        ));
        let content_type = for_message::<TranscriptionResult>();
        assert!(matches!(
            decoder.render(SUBJECT, Some(&content_type), &[0xff, 0xff], Format::Json),
            Err(TailError::Decode { .. })
        ));
    }

    #[test]
    fn an_alert_is_shown_by_its_summary() {
        let alert = Alert {
            summary: "fire: \"structure fire\" on FD Dispatch".into(),
            ..Alert::default()
        };
        let content_type = for_message::<Alert>();
        let line = Decoder::new()
            .render(
                "alerts.fire.7001.2345.c",
                Some(&content_type),
                &alert.encode_to_vec(),
                Format::Summary,
            )
            .expect("renders")
            .expect("a line");
        assert!(
            line.ends_with("ALERT  fire: \"structure fire\" on FD Dispatch"),
            "{line}"
        );
    }
}
