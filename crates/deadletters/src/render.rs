//! How dead letters are shown: a table (or one JSON object per line) for `list`, the whole
//! record with its original message decoded by its `Content-Type` for `show`, counts for
//! `stats`. JSON uses protobuf's JSON mapping for the messages, camel-case keys throughout.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bcfy_bus::dead_letter_kinds;
use bcfy_tail::Decoder;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::letters::Letter;

/// Longest reason shown in a table cell.
const REASON_CHARS: usize = 80;

/// RFC 3339, to the second.
pub fn rfc3339(at: SystemTime) -> String {
    let at = OffsetDateTime::from(at);
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn talkgroup(letter: &Letter) -> String {
    let mut tokens = letter.subject.split('.').skip(2);
    match (tokens.next(), tokens.next()) {
        (Some(sid), Some(tg)) if sid != "_" => format!("{sid}-{tg}"),
        _ => "-".to_owned(),
    }
}

/// One letter as a JSON object (`list --json`).
pub fn letter_json(letter: &Letter) -> Value {
    let record = letter.record.clone().unwrap_or_default();
    json!({
        "id": letter.id,
        "storedAt": rfc3339(letter.stored_at),
        "subject": letter.subject,
        "stage": letter.stage(),
        "kind": record.error_kind,
        "callId": record.call_id,
        "talkgroup": talkgroup(letter),
        "attempts": record.attempts,
        "redrives": record.redrives,
        "reason": record.reason,
        "originalSubject": record.original_subject,
        "problem": letter.problem,
        "redriven": letter.redriven,
    })
}

/// `list` as a table.
pub fn table(letters: &[Letter]) -> String {
    let header = [
        "ID",
        "TIME",
        "STAGE",
        "KIND",
        "CALL",
        "TALKGROUP",
        "ATTEMPTS",
        "REDRIVEN",
        "REASON",
    ];
    let rows: Vec<[String; 9]> = letters
        .iter()
        .map(|letter| {
            let record = letter.record.clone().unwrap_or_default();
            let reason = letter.problem.clone().unwrap_or(record.reason);
            let reason = if reason.chars().count() > REASON_CHARS {
                let cut: String = reason.chars().take(REASON_CHARS - 1).collect();
                format!("{cut}…")
            } else {
                reason
            };
            [
                letter.id.to_string(),
                rfc3339(letter.stored_at),
                letter.stage().to_owned(),
                or_dash(record.error_kind),
                or_dash(record.call_id),
                talkgroup(letter),
                record.attempts.to_string(),
                letter
                    .redriven
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |mark| mark.at.clone()),
                reason,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(&header.map(str::to_owned));
    for row in &rows {
        out.push_str(&line(row));
    }
    out
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// A letter's original message decoded: `(type, JSON)`, or why it cannot be.
pub type Original = Result<(String, Value), String>;

/// The original message of a letter, decoded: `(type, JSON)`, or why it cannot be.
pub fn original(decoder: &Decoder, letter: &Letter) -> Original {
    let record = letter
        .record
        .as_ref()
        .ok_or_else(|| letter.problem.clone().unwrap_or_default())?;
    let content_type = record
        .original_headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(bcfy_bus::publish::CONTENT_TYPE))
        .map(|(_, value)| value.as_str());
    let Some(content_type) = content_type else {
        // Not a pipeline event: an upstream record, kept as the text it was.
        return match std::str::from_utf8(&record.original_payload) {
            Ok(text) => Ok((
                "text".to_owned(),
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned())),
            )),
            Err(_) => Err(format!(
                "{} bytes with no Content-Type, not text",
                record.original_payload.len()
            )),
        };
    };
    let name = bcfy_proto::content_type::message_name(content_type)
        .ok_or_else(|| format!("Content-Type `{content_type}` names no protobuf message"))?;
    decoder
        .to_json(name, &record.original_payload)
        .map(|json| (name.to_owned(), json))
        .map_err(|error| error.to_string())
}

/// `show --json`: the record (without the payload, which is under `original`), its
/// original message decoded (see [`original`]), and its mark.
pub fn show_json(decoder: &Decoder, letter: &Letter, original: &Original) -> Value {
    let record = letter.record.as_ref().map(|record| {
        let mut record = record.clone();
        record.original_payload.clear();
        decoder
            .to_json(
                "broadcastify.v1.DeadLetter",
                &prost::Message::encode_to_vec(&record),
            )
            .unwrap_or(Value::Null)
    });
    let original = match original {
        Ok((kind, message)) => json!({ "type": kind, "message": message }),
        Err(error) => json!({ "error": error }),
    };
    json!({
        "id": letter.id,
        "storedAt": rfc3339(letter.stored_at),
        "subject": letter.subject,
        "deadLetter": record,
        "problem": letter.problem,
        "original": original,
        "redriven": letter.redriven,
    })
}

/// `show` for a person, with the original message decoded (see [`original`]).
pub fn show_text(letter: &Letter, original: &Original) -> String {
    let mut out = format!("Dead letter {}\n", letter.id);
    let mut field = |name: &str, value: String| {
        out.push_str(&format!("  {name:<11} {value}\n"));
    };
    field("stored", rfc3339(letter.stored_at));
    field("subject", letter.subject.clone());
    if let Some(problem) = &letter.problem {
        field("problem", problem.clone());
    }
    if let Some(record) = &letter.record {
        let meaning = dead_letter_kinds::find(&record.error_kind)
            .map_or(String::new(), |kind| format!(" ({})", kind.meaning));
        field("stage", record.stage.clone());
        field("kind", format!("{}{meaning}", record.error_kind));
        field("reason", record.reason.clone());
        field("call", or_dash(record.call_id.clone()));
        field("attempts", record.attempts.to_string());
        field("redrives", record.redrives.to_string());
        if let Some(failed_at) = record.failed_at.and_then(|t| SystemTime::try_from(t).ok()) {
            field("failed at", rfc3339(failed_at));
        }
        field(
            "original",
            if record.original_stream.is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{} ({} #{})",
                    record.original_subject,
                    record.original_stream,
                    record.original_stream_sequence
                )
            },
        );
        for (name, value) in &record.original_headers {
            field("header", format!("{name}: {value}"));
        }
    }
    field(
        "redriven",
        letter.redriven.as_ref().map_or("no".to_owned(), |mark| {
            format!("{} to {} #{}", mark.at, mark.subject, mark.sequence)
        }),
    );
    match original {
        Ok((kind, message)) => {
            let mut message = message.clone();
            shorten_payloads(&mut message);
            out.push_str(&format!(
                "Original message ({kind}):\n{}\n",
                serde_json::to_string_pretty(&message).unwrap_or_default()
            ));
        }
        Err(error) => out.push_str(&format!("Original message: cannot be decoded: {error}\n")),
    }
    out
}

/// Audio payloads (base64 in JSON) replaced by their size, for a person.
fn shorten_payloads(message: &mut Value) {
    if let Some(Value::String(payload)) = message.get_mut("payload")
        && payload.len() > 64
    {
        *payload = format!("<{} bytes>", payload.len() / 4 * 3);
    }
}

/// Counts by stage and kind.
pub fn counts(letters: &[Letter]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for letter in letters {
        let kind = letter
            .record
            .as_ref()
            .map_or("undecodable".to_owned(), |record| record.error_kind.clone());
        *counts
            .entry(letter.stage().to_owned())
            .or_default()
            .entry(kind)
            .or_default() += 1;
    }
    counts
}

/// `stats` for a person.
pub fn stats_text(since: SystemTime, letters: &[Letter]) -> String {
    let mut out = format!("Dead letters since {}: {}\n", rfc3339(since), letters.len());
    for (stage, kinds) in counts(letters) {
        let total: u64 = kinds.values().sum();
        out.push_str(&format!("  {stage:<15} {total:>8}\n"));
        for (kind, count) in kinds {
            out.push_str(&format!("    {kind:<20} {count:>8}\n"));
        }
    }
    out
}

/// `stats --json`.
pub fn stats_json(since: SystemTime, letters: &[Letter]) -> Value {
    json!({
        "since": rfc3339(since),
        "total": letters.len(),
        "byStage": counts(letters),
    })
}
