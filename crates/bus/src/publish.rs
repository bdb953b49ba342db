//! Publishing events: every message gets `Nats-Msg-Id` (dedup), a `Content-Type` naming its
//! protobuf type and the current W3C trace context, and `publish` returns only once the stream
//! has stored it (the PubAck), so callers can advance cursors or ack their input safely.

use async_nats::HeaderMap;
use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream::{self, context::PublishErrorKind};
use prost::{Message, Name};

use crate::trace_context;

/// Header naming the payload's protobuf type (see `bcfy_proto::content_type`).
pub const CONTENT_TYPE: &str = "Content-Type";

/// Publishes protobuf events to JetStream and waits for the PubAck.
#[derive(Debug, Clone)]
pub struct Publisher {
    js: jetstream::Context,
}

/// What the stream answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The stream that stored the event.
    pub stream: String,
    /// Its sequence in that stream (the original's, for a duplicate).
    pub sequence: u64,
    /// True when the `Nats-Msg-Id` was seen within the duplicate window and nothing was stored.
    pub duplicate: bool,
}

/// Why an event was not stored.
#[derive(Debug, thiserror::Error)]
#[error("publishing to {subject} failed ({kind})")]
pub struct PublishError {
    subject: String,
    kind: PublishErrorKind,
    #[source]
    source: jetstream::context::PublishError,
}

impl PublishError {
    fn new(subject: String, source: jetstream::context::PublishError) -> Self {
        Self {
            subject,
            kind: source.kind(),
            source,
        }
    }

    /// The failure class.
    pub fn kind(&self) -> PublishErrorKind {
        self.kind
    }

    /// True when trying again later may succeed (timeouts, a full stream, a broken
    /// connection), false for errors that will repeat (no stream for the subject, too large).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self.kind,
            PublishErrorKind::StreamNotFound | PublishErrorKind::MaxPayloadExceeded
        )
    }
}

/// At most this many PubAcks are awaited together by one task. async-nats holds one of its
/// 5,000 in-flight permits per publish until the publish's ack future is awaited or dropped, and
/// `publish` waits for a free permit: a task that sent more than 5,000 before awaiting any ack
/// would wait on itself forever (the poller did, on a poll answer of more than 5,000 new calls).
pub const MAX_ACKS_IN_FLIGHT: usize = 1_000;

impl Publisher {
    /// A publisher on this JetStream context.
    pub fn new(js: jetstream::Context) -> Self {
        Self { js }
    }

    /// The JetStream context (for consumers and KV).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Publishes `event` on `subject` with `msg_id` as `Nats-Msg-Id`, and waits until the
    /// stream has stored it (or recognised it as a duplicate).
    ///
    /// # Errors
    ///
    /// When the stream does not confirm; see [`PublishError::is_retryable`].
    pub async fn publish<M: Message + Name>(
        &self,
        subject: String,
        msg_id: &str,
        event: &M,
    ) -> Result<Published, PublishError> {
        self.start(subject, msg_id, event).await?.await
    }

    /// Publishes every event in order, with their PubAcks awaited together (pipelined, at most
    /// [`MAX_ACKS_IN_FLIGHT`] at a time), so a batch costs about one round trip per
    /// [`MAX_ACKS_IN_FLIGHT`] events instead of one per event. Results come in input order.
    ///
    /// # Errors
    ///
    /// When an event could not be sent; events whose acks failed report it in their own
    /// result.
    pub async fn publish_all<'a, M: Message + Name + 'a>(
        &self,
        events: impl IntoIterator<Item = (String, &'a str, &'a M)>,
    ) -> Result<Vec<Result<Published, PublishError>>, PublishError> {
        let mut results = Vec::new();
        let mut pending = Vec::with_capacity(MAX_ACKS_IN_FLIGHT);
        for (subject, msg_id, event) in events {
            if pending.len() == MAX_ACKS_IN_FLIGHT {
                results.extend(futures::future::join_all(pending.drain(..)).await);
            }
            pending.push(self.start(subject, msg_id, event).await?);
        }
        results.extend(futures::future::join_all(pending).await);
        Ok(results)
    }

    /// Sends one event and returns the future of its PubAck without waiting for it, so a
    /// producer can keep sending (pipelining) and await the acks together later.
    ///
    /// # Errors
    ///
    /// When the event could not be handed to the connection.
    pub async fn start<M: Message + Name>(
        &self,
        subject: String,
        msg_id: &str,
        event: &M,
    ) -> Result<impl Future<Output = Result<Published, PublishError>> + use<M>, PublishError> {
        self.start_with(subject, msg_id, event, HeaderMap::new())
            .await
    }

    /// Publishes `event` as the next message on `subject` only if the subject's last stored
    /// message is still `last_sequence` (0: the subject holds none), and waits for the PubAck.
    /// Two writers that read the same last message cannot both append after it: the second
    /// gets [`PublishErrorKind::WrongLastSequence`] and must read again.
    ///
    /// # Errors
    ///
    /// When the stream does not confirm, or the subject moved on.
    pub async fn publish_after<M: Message + Name>(
        &self,
        subject: String,
        msg_id: &str,
        event: &M,
        last_sequence: u64,
    ) -> Result<Published, PublishError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            last_sequence.to_string().as_str(),
        );
        self.start_with(subject, msg_id, event, headers)
            .await?
            .await
    }

    async fn start_with<M: Message + Name>(
        &self,
        subject: String,
        msg_id: &str,
        event: &M,
        mut headers: HeaderMap,
    ) -> Result<impl Future<Output = Result<Published, PublishError>> + use<M>, PublishError> {
        headers.insert(NATS_MESSAGE_ID, msg_id);
        headers.insert(
            CONTENT_TYPE,
            bcfy_proto::content_type::for_message::<M>().as_str(),
        );
        trace_context::inject_current(&mut headers);
        let ack = self
            .js
            .publish_with_headers(subject.clone(), headers, event.encode_to_vec().into())
            .await
            .map_err(|source| PublishError::new(subject.clone(), source))?;
        Ok(async move {
            let ack = ack
                .await
                .map_err(|source| PublishError::new(subject, source))?;
            Ok(Published {
                stream: ack.stream,
                sequence: ack.sequence,
                duplicate: ack.duplicate,
            })
        })
    }
}
