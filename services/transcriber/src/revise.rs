//! Re-transcription with revisions: the transcriber run as a job (`transcriber retranscribe`, or
//! `retranscribe.*` in its config) replays the stored audio of a time range and talkgroup from
//! `CALLS_AUDIO` through its configured provider and model, and publishes each result as the
//! call's next revision on the same subject, so every version stays in `TRANSCRIPTIONS`.
//!
//! - **Resumable.** The job's progress is its durable consumer `retranscribe-{job}`, created
//!   at the range's start; a killed job started again continues where it was. The audio it
//!   covers ends at the last matching message stored when the job was first created (kept in
//!   the consumer's metadata, so a resumed job keeps the same end); the job is done when the
//!   consumer's ack floor has passed it, and then deletes its consumer.
//! - **Never a doubled revision.** Before transcribing, a call whose newest transcript was made
//!   by this job is skipped (a kill between publish and ack). A revision is published with
//!   `Nats-Expected-Last-Subject-Sequence` set to the newest transcript it read, so two writers
//!   cannot both append revision *n*: the second reads again and takes *n* + 1.

pub mod config;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::stored;
use bcfy_bus::topology::{ConsumerSpec, ConsumerStart, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS};
use bcfy_proto::{AudioPayloadEvent, TranscriptionResult};
use prost::Message as _;
use tokio_util::sync::CancellationToken;

pub use config::{Job, RetranscribeConfig};

/// The consumer metadata key holding the job's last audio sequence.
const END_SEQUENCE: &str = "bcfy_end_sequence";
/// How often the job reports progress and checks whether it is done.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What a job counts, for its progress lines and summary.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Revisions published.
    pub(crate) revised: AtomicU64,
    /// Calls this job had already revised (a resumed job).
    pub(crate) already: AtomicU64,
    /// Calls that started outside the range, and audio stored after the job began.
    pub(crate) outside: AtomicU64,
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} revised, {} already revised, {} outside the job",
            self.revised.load(Ordering::Relaxed),
            self.already.load(Ordering::Relaxed),
            self.outside.load(Ordering::Relaxed)
        )
    }
}

/// A running job: what it covers and what it has done.
#[derive(Debug)]
pub(crate) struct Revising {
    pub(crate) job: Job,
    /// The last audio message the job covers (0: none).
    pub(crate) end_sequence: u64,
    pub(crate) counts: Counts,
}

/// Why a call is not re-transcribed by this job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outside {
    /// Stored after the job began.
    Later,
    /// Started outside the job's time range.
    OutOfRange,
}

impl Revising {
    /// Whether the job covers the call whose final chunk is at `sequence` with this event.
    pub(crate) fn covers(&self, sequence: u64, event: &AudioPayloadEvent) -> Result<(), Outside> {
        if sequence > self.end_sequence {
            return Err(Outside::Later);
        }
        let started = event.call.as_ref().and_then(|c| c.ts);
        match started {
            Some(ts) if self.job.covers(ts) => Ok(()),
            _ => Err(Outside::OutOfRange),
        }
    }

    /// The revision to publish after `newest` (the call's newest transcript, if any).
    pub(crate) fn next_revision(newest: Option<&TranscriptionResult>) -> u32 {
        newest.map_or(1, |t| t.revision.max(1) + 1)
    }

    /// The message id of a call's `revision`: the call id for the first (as the live
    /// transcriber publishes it), `{call_id}.r{n}` after.
    pub(crate) fn message_id(call_id: &str, revision: u32) -> String {
        if revision <= 1 {
            call_id.to_owned()
        } else {
            format!("{call_id}.r{revision}")
        }
    }
}

/// The newest transcript on `subject` and its sequence.
///
/// # Errors
///
/// When the stream cannot be read or holds something that is not a transcript.
pub(crate) async fn newest(
    js: &jetstream::Context,
    subject: &str,
) -> Result<Option<(TranscriptionResult, u64)>, async_nats::Error> {
    let Some(message) = stored::last(js, STREAM_TRANSCRIPTIONS, subject).await? else {
        return Ok(None);
    };
    let result = TranscriptionResult::decode(message.payload)?;
    Ok(Some((result, message.sequence)))
}

/// The job's consumer: created at the range's start with the end recorded, or the existing
/// one (a resumed job) with its recorded end.
///
/// # Errors
///
/// When the streams cannot be read or the consumer cannot be created.
pub(crate) async fn prepare(
    js: &jetstream::Context,
    job: Job,
    ack_wait: Duration,
    concurrency: usize,
) -> Result<(ConsumerSpec, Revising), async_nats::Error> {
    let spec = ConsumerSpec {
        stream: STREAM_CALLS_AUDIO,
        durable_name: job.consumer_name(),
        filter_subject: job.filter_subject.clone(),
        ack_wait,
        max_ack_pending: i64::try_from(concurrency).unwrap_or(i64::MAX),
        start: ConsumerStart::At(job.from),
    };
    let stream = js.get_stream(STREAM_CALLS_AUDIO).await?;
    let recorded = match stream.consumer_info(&spec.durable_name).await {
        Ok(info) => info
            .config
            .metadata
            .get(END_SEQUENCE)
            .and_then(|v| v.parse::<u64>().ok()),
        Err(_) => None,
    };
    let end_sequence = match recorded {
        Some(end) => {
            tracing::info!(job = %job.name, end, "Resuming the re-transcription job.");
            end
        }
        None => {
            let end = stored::last(js, STREAM_CALLS_AUDIO, &job.filter_subject)
                .await?
                .map_or(0, |m| m.sequence);
            let mut config = spec.to_config();
            config.metadata = HashMap::from([(END_SEQUENCE.to_owned(), end.to_string())]);
            stream.create_consumer(config).await?;
            tracing::info!(job = %job.name, end, "Re-transcription job created.");
            end
        }
    };
    let revising = Revising {
        job,
        end_sequence,
        counts: Counts::default(),
    };
    Ok((spec, revising))
}

/// Reports progress until the job's consumer has acknowledged everything up to the job's end,
/// then cancels `done`. Returns early on `shutdown`.
pub(crate) async fn watch(
    js: &jetstream::Context,
    revising: &Revising,
    done: &CancellationToken,
    shutdown: &CancellationToken,
) {
    let name = revising.job.consumer_name();
    loop {
        match consumer_position(js, &name).await {
            Ok((acked_to, in_flight, waiting)) => {
                tracing::info!(
                    job = %revising.job.name,
                    counts = %revising.counts,
                    in_flight,
                    waiting,
                    acked_to,
                    end = revising.end_sequence,
                    "Re-transcription progress."
                );
                if acked_to >= revising.end_sequence {
                    done.cancel();
                    return;
                }
            }
            Err(error) => tracing::warn!(error = %error, "Reading the job's consumer failed."),
        }
        tokio::select! {
            () = tokio::time::sleep(PROGRESS_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// (ack floor's stream sequence, messages in flight, messages not yet delivered).
async fn consumer_position(
    js: &jetstream::Context,
    name: &str,
) -> Result<(u64, usize, u64), async_nats::Error> {
    let info = js
        .get_stream(STREAM_CALLS_AUDIO)
        .await?
        .consumer_info(name)
        .await?;
    Ok((
        info.ack_floor.stream_sequence,
        info.num_ack_pending,
        info.num_pending,
    ))
}

/// Deletes a finished job's consumer (so the backlog monitor does not watch it grow).
pub(crate) async fn finish(js: &jetstream::Context, revising: &Revising) {
    let name = revising.job.consumer_name();
    let deleted = match js.get_stream(STREAM_CALLS_AUDIO).await {
        Ok(stream) => stream
            .delete_consumer(&name)
            .await
            .map(drop)
            .map_err(async_nats::Error::from),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = deleted {
        tracing::warn!(error = %error, consumer = %name, "The finished job's consumer could not be deleted.");
    }
    tracing::info!(job = %revising.job.name, counts = %revising.counts, "Re-transcription finished.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_count_up_from_one_and_keep_the_first_message_id() {
        assert_eq!(Revising::next_revision(None), 1);
        let first = TranscriptionResult {
            revision: 1,
            ..TranscriptionResult::default()
        };
        assert_eq!(Revising::next_revision(Some(&first)), 2);
        // A transcript from before revisions existed counts as the first.
        assert_eq!(
            Revising::next_revision(Some(&TranscriptionResult::default())),
            2
        );
        assert_eq!(Revising::message_id("c-1", 1), "c-1");
        assert_eq!(Revising::message_id("c-1", 3), "c-1.r3");
    }
}
