//! Dead letters read back from `DEAD_LETTERS`, and the marks `redrive` leaves on them in the
//! `deadletter-redrives` bucket (keyed by the dead letter's sequence, which is also its id).
//!
//! A read takes what the stream holds when it starts and no more: the count comes with the
//! reading consumer, so a read never waits for letters that are not there, and a redrive never
//! picks up the dead letters its own redrives cause.

use std::time::SystemTime;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig, kv};
use bcfy_bus::topology::{KV_DEADLETTER_REDRIVES, STREAM_DEAD_LETTERS, Topology, TopologyConfig};
use bcfy_proto::DeadLetter;
use futures::StreamExt as _;
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::CliError;
use crate::filter::Filter;

/// One dead letter as stored.
#[derive(Debug, Clone)]
pub struct Letter {
    /// Its sequence in `DEAD_LETTERS`: the id `show` and the marks use.
    pub id: u64,
    /// Its subject (`deadletter.{stage}.{sid}.{tg}.{call_id}`).
    pub subject: String,
    /// When it was stored.
    pub stored_at: SystemTime,
    /// The record; `None` when the payload is not a `DeadLetter` (see `problem`).
    pub record: Option<DeadLetter>,
    /// Why the record could not be decoded.
    pub problem: Option<String>,
    /// The redrive that sent it through again, if any.
    pub redriven: Option<Mark>,
}

/// What `redrive` records once a dead letter's original message is stored again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// When (RFC 3339).
    pub at: String,
    /// Where the original message went.
    pub subject: String,
    /// Its new stream sequence.
    pub sequence: u64,
    /// True when the stream already held this redrive (an earlier run stopped before marking).
    pub duplicate: bool,
}

impl Letter {
    fn from_message(message: &jetstream::Message) -> Result<Self, CliError> {
        let info = message
            .info()
            .map_err(|e| unavailable("reading a dead letter", e))?;
        let (record, problem) = match DeadLetter::decode(message.payload.as_ref()) {
            Ok(record) => (Some(record), None),
            Err(error) => (None, Some(format!("not a DeadLetter: {error}"))),
        };
        Ok(Self {
            id: info.stream_sequence,
            subject: message.subject.to_string(),
            stored_at: info.published.into(),
            record,
            problem,
            redriven: None,
        })
    }

    /// The stage token of its subject.
    pub fn stage(&self) -> &str {
        self.subject.split('.').nth(1).unwrap_or("?")
    }
}

/// A reachable NATS with the dead-letter stream.
#[derive(Debug, Clone)]
pub struct Store {
    js: jetstream::Context,
    marks: kv::Store,
}

pub(crate) fn unavailable(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::Unavailable(format!("{what}: {error}"))
}

impl Store {
    /// Opens the dead-letter stream and the marks bucket (creating the bucket as the topology
    /// declares it when no service has yet).
    ///
    /// # Errors
    ///
    /// [`CliError::Unavailable`] when NATS or the stream cannot be reached.
    pub async fn open(js: jetstream::Context) -> Result<Self, CliError> {
        js.get_stream(STREAM_DEAD_LETTERS)
            .await
            .map_err(|e| unavailable("opening the DEAD_LETTERS stream", e))?;
        let marks = match js.get_key_value(KV_DEADLETTER_REDRIVES).await {
            Ok(marks) => marks,
            Err(_) => {
                let declared = Topology::new(TopologyConfig::default())
                    .buckets()
                    .into_iter()
                    .find(|bucket| bucket.bucket == KV_DEADLETTER_REDRIVES)
                    .expect("the topology declares the marks bucket");
                js.create_key_value(declared)
                    .await
                    .map_err(|e| unavailable("creating the redrive marks bucket", e))?
            }
        };
        Ok(Self { js, marks })
    }

    /// The JetStream context.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Every dead letter `filter` selects, oldest first, with their marks when `with_marks`.
    ///
    /// # Errors
    ///
    /// [`CliError::Unavailable`] when the stream or the bucket cannot be read.
    pub async fn read(&self, filter: &Filter, with_marks: bool) -> Result<Vec<Letter>, CliError> {
        let deliver_policy = match filter.since {
            Some(since) => DeliverPolicy::ByStartTime {
                start_time: since.into(),
            },
            None => DeliverPolicy::All,
        };
        let stream = self
            .js
            .get_stream(STREAM_DEAD_LETTERS)
            .await
            .map_err(|e| unavailable("opening the DEAD_LETTERS stream", e))?;
        let mut consumer = stream
            .create_consumer(OrderedConfig {
                filter_subject: filter.subject(),
                deliver_policy,
                ..OrderedConfig::default()
            })
            .await
            .map_err(|e| unavailable("reading DEAD_LETTERS", e))?;
        let stored = consumer
            .info()
            .await
            .map_err(|e| unavailable("reading DEAD_LETTERS", e))?
            .num_pending;
        let mut letters = Vec::new();
        if stored == 0 {
            return Ok(letters);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| unavailable("reading DEAD_LETTERS", e))?;
        let mut read = 0;
        while read < stored {
            let Some(message) = messages.next().await else {
                break;
            };
            let message = message.map_err(|e| unavailable("reading DEAD_LETTERS", e))?;
            read += 1;
            let letter = Letter::from_message(&message)?;
            if filter.matches(&letter) {
                letters.push(letter);
            }
        }
        if with_marks {
            for letter in &mut letters {
                letter.redriven = self.mark(letter.id).await?;
            }
        }
        Ok(letters)
    }

    /// The dead letter with id `id`; `None` when the stream does not hold it.
    ///
    /// # Errors
    ///
    /// [`CliError::Unavailable`] when the stream cannot be read.
    pub async fn get(&self, id: u64) -> Result<Option<Letter>, CliError> {
        let stream = self
            .js
            .get_stream(STREAM_DEAD_LETTERS)
            .await
            .map_err(|e| unavailable("opening the DEAD_LETTERS stream", e))?;
        let message = match stream.get_raw_message(id).await {
            Ok(message) => message,
            Err(error)
                if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
            {
                return Ok(None);
            }
            Err(error) => return Err(unavailable("reading DEAD_LETTERS", error)),
        };
        let (record, problem) = match DeadLetter::decode(message.payload.as_ref()) {
            Ok(record) => (Some(record), None),
            Err(error) => (None, Some(format!("not a DeadLetter: {error}"))),
        };
        Ok(Some(Letter {
            id,
            subject: message.subject.to_string(),
            stored_at: message.time.into(),
            record,
            problem,
            redriven: self.mark(id).await?,
        }))
    }

    /// The mark of dead letter `id`, if it was redriven.
    ///
    /// # Errors
    ///
    /// [`CliError::Unavailable`] when the bucket cannot be read.
    pub async fn mark(&self, id: u64) -> Result<Option<Mark>, CliError> {
        let entry = self
            .marks
            .get(id.to_string())
            .await
            .map_err(|e| unavailable("reading the redrive marks", e))?;
        Ok(entry.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
    }

    /// Records that dead letter `id` was redriven.
    ///
    /// # Errors
    ///
    /// [`CliError::Interrupted`] when the mark is not stored (a rerun sends the letter again,
    /// and the stream drops it as a duplicate).
    pub async fn set_mark(&self, id: u64, mark: &Mark) -> Result<(), CliError> {
        let bytes = serde_json::to_vec(mark).expect("a mark serializes");
        self.marks
            .put(id.to_string(), bytes.into())
            .await
            .map(|_| ())
            .map_err(|e| CliError::Interrupted(format!("marking dead letter {id}: {e}")))
    }

    /// Deletes dead letter `id` from the stream (`redrive --purge`).
    ///
    /// # Errors
    ///
    /// [`CliError::Interrupted`] when the stream refuses.
    pub async fn purge(&self, id: u64) -> Result<(), CliError> {
        let stream = self
            .js
            .get_stream(STREAM_DEAD_LETTERS)
            .await
            .map_err(|e| unavailable("opening the DEAD_LETTERS stream", e))?;
        stream
            .delete_message(id)
            .await
            .map(|_| ())
            .map_err(|e| CliError::Interrupted(format!("purging dead letter {id}: {e}")))
    }
}
