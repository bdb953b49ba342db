//! Sending dead letters through again. Each selected dead letter's original message is
//! published to its original subject with its original headers, a redrive count
//! (`Bcfy-Redrive`, one more than the letter's) and a `Nats-Msg-Id` fixed per dead letter, and
//! only once the stream has stored it is the dead letter marked as redriven.
//!
//! - **Resumable.** Marked letters are skipped. A run killed between a publish and its mark
//!   publishes again on the next run with the same id, which the stream drops as a duplicate
//!   (within its duplicate window, an hour by default).
//! - **No loop.** Only the dead letters stored when the run starts are read; what the
//!   redriven messages fail with becomes new dead letters for a later, deliberate run.
//! - **No flood.** At most `rate` messages a second.
//! - **Kept.** Redriven letters stay, marked, unless `purge` deletes them.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use bcfy_bus::redrive;
use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::CliError;
use crate::letters::{Letter, Mark, Store};

/// How a redrive runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Print what would be sent; send nothing.
    pub dry_run: bool,
    /// Messages per second at most.
    pub rate: f64,
    /// Delete each dead letter once it is sent and marked.
    pub purge: bool,
}

/// What happened to one dead letter.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Sent and marked.
    Sent(Mark),
    /// Would be sent to this subject (`dry_run`).
    WouldSend {
        /// The original subject.
        subject: String,
        /// The redrive count it would carry.
        redrive: u32,
    },
    /// Marked by an earlier run; not sent again.
    AlreadyRedriven(Mark),
    /// Cannot be sent through again, with why.
    Skipped(String),
}

/// Why a letter cannot be sent through again, if it cannot.
fn not_redrivable(letter: &Letter) -> Option<String> {
    let Some(record) = &letter.record else {
        return Some(
            letter
                .problem
                .clone()
                .unwrap_or_else(|| "undecodable".to_owned()),
        );
    };
    if record.original_subject.is_empty() || record.original_stream.is_empty() {
        return Some("it never was in a stream (nothing to send it back to)".to_owned());
    }
    None
}

/// The headers the original message is sent with again.
fn headers(letter: &Letter, redrive_count: u32) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(record) = &letter.record {
        for (name, value) in &record.original_headers {
            // The server's own headers and the old id (which would be dropped as a duplicate).
            if name.eq_ignore_ascii_case(NATS_MESSAGE_ID.as_ref())
                || name.eq_ignore_ascii_case(redrive::HEADER)
                || name.starts_with("Nats-")
            {
                continue;
            }
            headers.insert(name.as_str(), value.as_str());
        }
    }
    headers.insert(NATS_MESSAGE_ID, redrive::msg_id(letter.id).as_str());
    headers.insert(redrive::HEADER, redrive_count.to_string().as_str());
    headers
}

/// Sends `letters` through again (in order), calling `report` after each.
///
/// # Errors
///
/// [`CliError::Interrupted`] when a publish, a mark or a purge fails: what was done is marked,
/// and a rerun goes on from there.
pub async fn run(
    store: &Store,
    letters: &[Letter],
    options: Options,
    mut report: impl FnMut(&Letter, &Outcome),
) -> Result<(), CliError> {
    let period = Duration::from_secs_f64(1.0 / options.rate);
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for letter in letters {
        if let Some(mark) = &letter.redriven {
            report(letter, &Outcome::AlreadyRedriven(mark.clone()));
            continue;
        }
        if let Some(why) = not_redrivable(letter) {
            report(letter, &Outcome::Skipped(why));
            continue;
        }
        let record = letter.record.as_ref().expect("checked above");
        let redrive_count = record.redrives.saturating_add(1);
        if options.dry_run {
            report(
                letter,
                &Outcome::WouldSend {
                    subject: record.original_subject.clone(),
                    redrive: redrive_count,
                },
            );
            continue;
        }
        pace.tick().await;
        let ack = store
            .jetstream()
            .publish_with_headers(
                record.original_subject.clone(),
                headers(letter, redrive_count),
                Bytes::from(record.original_payload.clone()),
            )
            .await
            .map_err(|e| CliError::Interrupted(format!("sending dead letter {}: {e}", letter.id)))?
            .await
            .map_err(|e| {
                CliError::Interrupted(format!("sending dead letter {}: {e}", letter.id))
            })?;
        let mark = Mark {
            at: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            subject: record.original_subject.clone(),
            sequence: ack.sequence,
            duplicate: ack.duplicate,
        };
        store.set_mark(letter.id, &mark).await?;
        if options.purge {
            store.purge(letter.id).await?;
        }
        report(letter, &Outcome::Sent(mark));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use bcfy_proto::DeadLetter;

    use super::*;

    fn letter(headers: &[(&str, &str)], subject: &str) -> Letter {
        Letter {
            id: 42,
            subject: "deadletter.transcriber.1.2.c".to_owned(),
            stored_at: SystemTime::UNIX_EPOCH,
            record: Some(DeadLetter {
                original_subject: subject.to_owned(),
                original_stream: if subject.is_empty() {
                    ""
                } else {
                    "CALLS_AUDIO"
                }
                .to_owned(),
                original_headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
                redrives: 1,
                ..DeadLetter::default()
            }),
            problem: None,
            redriven: None,
        }
    }

    #[test]
    fn the_original_headers_go_again_with_a_new_id_and_the_count() {
        let letter = letter(
            &[
                ("Nats-Msg-Id", "c-0"),
                ("Content-Type", "application/protobuf; proto=x"),
                ("traceparent", "00-a-b-01"),
                ("Bcfy-Redrive", "1"),
            ],
            "calls.audio.raw.1.2.c",
        );
        let sent = headers(&letter, 2);
        assert_eq!(
            sent.get(NATS_MESSAGE_ID).map(|v| v.as_str()),
            Some("redrive-42")
        );
        assert_eq!(sent.get(redrive::HEADER).map(|v| v.as_str()), Some("2"));
        assert_eq!(
            sent.get("Content-Type").map(|v| v.as_str()),
            Some("application/protobuf; proto=x")
        );
        assert_eq!(
            sent.get("traceparent").map(|v| v.as_str()),
            Some("00-a-b-01")
        );
        assert_eq!(not_redrivable(&letter), None);
    }

    #[test]
    fn a_letter_that_never_was_in_a_stream_is_not_redrivable() {
        assert!(not_redrivable(&letter(&[], "")).is_some());
        let undecodable = Letter {
            record: None,
            problem: Some("not a DeadLetter".to_owned()),
            ..letter(&[], "x")
        };
        assert_eq!(
            not_redrivable(&undecodable).as_deref(),
            Some("not a DeadLetter")
        );
    }
}
