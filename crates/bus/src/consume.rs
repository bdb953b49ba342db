//! Consuming events with explicit acknowledgement, the one way every stage does it.
//!
//! A [`Delivery`] wraps one JetStream message and must be settled exactly once: [`ack`]
//! after the effect is durable, [`nak`] with a delay for a transient failure, [`term`] to stop
//! redelivery, or [`dead_letter`] (publish the reason, then TERM) for poison input and
//! exhausted retries. A delivery dropped unsettled (a handler bug, a panic, a cancelled task)
//! is NAKed, so the message comes back instead of waiting out its ack timeout. Long work keeps
//! the message with [`keep_alive`] heartbeats.
//!
//! [`ack`]: Delivery::ack
//! [`nak`]: Delivery::nak
//! [`term`]: Delivery::term
//! [`dead_letter`]: Delivery::dead_letter
//! [`keep_alive`]: Delivery::keep_alive

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use bcfy_proto::DeadLetter;
use futures::{Stream, StreamExt as _};
use prost::{Message, Name};

use crate::call_id::CallId;
use crate::publish::{PublishError, Publisher};
use crate::subject::{self, ParsedSubject, Stage};
use crate::trace_context;

/// Why an acknowledgement did not reach the server. The message will be redelivered after its
/// ack wait, which idempotent handlers and `Nats-Msg-Id` dedup make harmless.
#[derive(Debug, thiserror::Error)]
#[error("acknowledging ({action}) failed")]
pub struct AckError {
    action: &'static str,
    #[source]
    source: async_nats::Error,
}

/// Why a payload could not be decoded (poison input: dead-letter it).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The `Content-Type` header names another message type.
    #[error("expected {expected}, the message says it is `{found}`")]
    WrongType {
        /// The type the handler wanted.
        expected: String,
        /// The header's value.
        found: String,
    },
    /// The bytes are not a valid encoding of the message.
    #[error("payload is not a valid {expected}")]
    Malformed {
        /// The type the handler wanted.
        expected: String,
        /// The decoder's reason.
        #[source]
        source: prost::DecodeError,
    },
}

/// Why a dead letter could not be recorded. The original message is NAKed back (not lost).
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The dead letter was not stored.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The dead letter was stored but the TERM did not reach the server; the message will come
    /// back and be dead-lettered again, deduplicated by its `Nats-Msg-Id`.
    #[error(transparent)]
    Ack(#[from] AckError),
}

/// The failure every consuming stage shares: a message it cannot read (not its protobuf type,
/// a bad call id or subject), which no retry can mend.
pub const POISON: &str = "poison";

/// Why a message is being given up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Machine-readable class, e.g. `poison`, `cdn_not_found`, `http_status`: a stage's own
    /// failure enum, or its upstream error's, says which.
    pub kind: &'static str,
    /// Human-readable reason.
    pub reason: String,
    /// The call, when the handler knows it (otherwise taken from the subject, if it names one).
    pub call_id: Option<CallId>,
    /// Headers added to the dead letter's copy of the original headers, so that a redrive
    /// carries them (e.g. which of several receivers refused it).
    pub redrive_headers: Vec<(&'static str, String)>,
}

/// Pulls deliveries from a durable consumer, at most `batch` per request.
///
/// # Errors
///
/// When the pull subscription cannot be set up.
pub async fn deliveries(
    consumer: &PullConsumer,
    batch: usize,
) -> Result<
    impl Stream<Item = Result<Delivery, jetstream::consumer::pull::MessagesError>>,
    async_nats::Error,
> {
    let messages = consumer
        .stream()
        .max_messages_per_batch(batch)
        .messages()
        .await?;
    Ok(messages.map(|item| item.map(Delivery::new)))
}

/// One received message that must be settled once (see the module docs).
#[derive(Debug)]
pub struct Delivery {
    message: Option<jetstream::Message>,
}

/// Sends in-progress heartbeats until dropped.
#[derive(Debug)]
pub struct KeepAlive {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Failure {
    /// A failure of `kind` (from an error's or a stage's failure enum) with its `reason`, for
    /// `call_id` when known.
    pub fn new(kind: &'static str, reason: impl Into<String>, call_id: Option<&CallId>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            call_id: call_id.cloned(),
            redrive_headers: Vec::new(),
        }
    }

    /// The same failure, with header `name: value` sent along when it is redriven.
    #[must_use]
    pub fn with_redrive_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.redrive_headers.push((name, value.into()));
        self
    }

    /// A failure of `kind` whose reason is `error` with every cause (see [`error_chain`]).
    pub fn from_error(
        kind: &'static str,
        error: &(dyn std::error::Error + 'static),
        call_id: Option<&CallId>,
    ) -> Self {
        Self::new(kind, error_chain(error), call_id)
    }
}

/// `error` and each of its causes, `: `-separated: errors print their own message only and keep
/// the cause as their source, so this is what a person reading a dead letter or an answer needs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

impl Delivery {
    /// Wraps a received message.
    pub fn new(message: jetstream::Message) -> Self {
        Self {
            message: Some(message),
        }
    }

    fn message(&self) -> &jetstream::Message {
        self.message
            .as_ref()
            .expect("a delivery is only used before it is settled")
    }

    /// The subject it was published on.
    pub fn subject(&self) -> &str {
        self.message().subject.as_str()
    }

    /// The raw payload.
    pub fn payload(&self) -> &[u8] {
        &self.message().payload
    }

    /// The headers, if any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.message().headers.as_ref()
    }

    /// How many times the server has delivered it (1 on the first delivery).
    pub fn attempt(&self) -> u64 {
        self.message()
            .info()
            .map_or(1, |info| u64::try_from(info.delivered).unwrap_or(1))
    }

    /// How many times it has been sent through again from a dead letter (see [`crate::redrive`]).
    pub fn redrives(&self) -> u32 {
        crate::redrive::count(self.headers())
    }

    /// (stream, stream sequence), when the message carries JetStream metadata.
    pub fn origin(&self) -> Option<(String, u64)> {
        let info = self.message().info().ok()?;
        Some((info.stream.to_owned(), info.stream_sequence))
    }

    /// Decodes the payload as `M`, checking the `Content-Type` header when present.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] for poison input.
    pub fn decode<M: Message + Name + Default>(&self) -> Result<M, DecodeError> {
        let expected = M::full_name();
        let header = self
            .headers()
            .and_then(|h| h.get(crate::publish::CONTENT_TYPE));
        if let Some(value) = header.map(|v| v.as_str())
            && bcfy_proto::content_type::message_name(value) != Some(expected.as_str())
        {
            return Err(DecodeError::WrongType {
                expected,
                found: value.to_owned(),
            });
        }
        M::decode(self.payload()).map_err(|source| DecodeError::Malformed { expected, source })
    }

    /// Makes `span` a child of the publisher's trace.
    pub fn follow_trace(&self, span: &tracing::Span) {
        trace_context::follow(span, self.headers());
    }

    /// Tells the server work is still going on (resets the ack wait).
    ///
    /// # Errors
    ///
    /// When the heartbeat cannot be sent.
    pub async fn in_progress(&self) -> Result<(), AckError> {
        self.message()
            .ack_with(AckKind::Progress)
            .await
            .map_err(|source| AckError {
                action: "in progress",
                source,
            })
    }

    /// Sends an in-progress heartbeat every `every` until the returned guard is dropped. Pick
    /// `every` well below the consumer's ack wait.
    pub fn keep_alive(&self, every: Duration) -> KeepAlive {
        let message = self.message().clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                ticks.tick().await;
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::warn!(error = %error, "In-progress heartbeat failed.");
                }
            }
        });
        KeepAlive { task }
    }

    /// Acknowledges and waits for the server to confirm (call only after the effect is
    /// durable).
    ///
    /// # Errors
    ///
    /// When the server does not confirm; the message may be redelivered.
    pub async fn ack(mut self) -> Result<(), AckError> {
        let message = self.take();
        message.double_ack().await.map_err(|source| AckError {
            action: "ack",
            source,
        })
    }

    /// Asks for redelivery after `delay` (a transient failure).
    ///
    /// # Errors
    ///
    /// When the NAK cannot be sent; the message then returns after its ack wait.
    pub async fn nak(mut self, delay: Duration) -> Result<(), AckError> {
        let message = self.take();
        message
            .ack_with(AckKind::Nak(Some(delay)))
            .await
            .map_err(|source| AckError {
                action: "nak",
                source,
            })
    }

    /// Stops redelivery for good. Prefer [`dead_letter`](Self::dead_letter), which records why.
    ///
    /// # Errors
    ///
    /// When the server does not confirm.
    pub async fn term(mut self) -> Result<(), AckError> {
        let message = self.take();
        message
            .double_ack_with(AckKind::Term)
            .await
            .map_err(|source| AckError {
                action: "term",
                source,
            })
    }

    /// [`Delivery::nak`] for handlers that cannot do more about a failed NAK than log it: the
    /// message then comes back after its ack wait anyway.
    pub async fn nak_or_wait(self, delay: Duration) {
        if let Err(error) = self.nak(delay).await {
            tracing::warn!(error = %error, "NAK failed; the message returns after its ack wait.");
        }
    }

    /// [`Delivery::dead_letter`] for handlers that cannot do more about a failure than log it:
    /// the message is then redelivered and given up on again.
    pub async fn dead_letter_or_retry(self, publisher: &Publisher, stage: Stage, failure: Failure) {
        if let Err(error) = self.dead_letter(publisher, stage, failure).await {
            tracing::warn!(error = %error, "Dead letter failed; the message will be redelivered.");
        }
    }

    /// Publishes a [`DeadLetter`] on `deadletter.{stage}.{sid}.{tg}.{call_id}` with the reason,
    /// the attempt count and the original payload and headers, then TERMs the message. When
    /// the dead letter cannot be stored, the message is NAKed instead, so it is never lost.
    ///
    /// # Errors
    ///
    /// When the dead letter or the TERM fails.
    pub async fn dead_letter(
        mut self,
        publisher: &Publisher,
        stage: Stage,
        failure: Failure,
    ) -> Result<(), DeadLetterError> {
        let parsed: Option<ParsedSubject> = self.subject().parse().ok();
        let call_id = failure
            .call_id
            .or_else(|| parsed.as_ref().and_then(|p| p.call_id().cloned()));
        let (stream, sequence) = self.origin().unwrap_or_default();
        let letter = DeadLetter {
            stage: stage.as_str().to_owned(),
            reason: failure.reason,
            error_kind: failure.kind.to_owned(),
            attempts: self.attempt(),
            original_subject: self.subject().to_owned(),
            original_stream: stream.clone(),
            original_stream_sequence: sequence,
            original_headers: self
                .headers()
                .into_iter()
                .flat_map(|headers| {
                    headers.iter().filter_map(|(name, values)| {
                        let name = std::str::from_utf8(name.as_ref()).ok()?;
                        Some((name.to_owned(), values.first()?.as_str().to_owned()))
                    })
                })
                .chain(
                    failure
                        .redrive_headers
                        .iter()
                        .map(|(name, value)| ((*name).to_owned(), value.clone())),
                )
                .collect(),
            original_payload: self.payload().to_vec(),
            call_id: call_id
                .as_ref()
                .map(|id| id.as_str().to_owned())
                .unwrap_or_default(),
            failed_at: Some(std::time::SystemTime::now().into()),
            redrives: self.redrives(),
        };
        let target = subject::dead_letter(stage, parsed.map(|p| p.shard()), call_id.as_ref());
        // One dead letter per original message, however often this runs.
        let msg_id = format!("dl-{stream}-{sequence}");
        if let Err(error) = publisher.publish(target, &msg_id, &letter).await {
            let message = self.take();
            if let Err(nak_error) = message.ack_with(AckKind::Nak(None)).await {
                // The message returns after its ack wait anyway.
                tracing::warn!(error = %nak_error, "NAK after a failed dead letter failed.");
            }
            return Err(error.into());
        }
        tracing::warn!(
            stage = %stage,
            kind = %letter.error_kind,
            reason = %letter.reason,
            call_id = %letter.call_id,
            attempts = letter.attempts,
            redrives = letter.redrives,
            "Dead-lettered a message."
        );
        self.term().await?;
        Ok(())
    }

    fn take(&mut self) -> jetstream::Message {
        self.message.take().expect("a delivery is settled once")
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        tracing::warn!(subject = %message.subject, "A delivery was dropped unsettled; NAKing it.");
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                    tracing::warn!(error = %error, "NAK of a dropped delivery failed.");
                }
            });
        }
    }
}
