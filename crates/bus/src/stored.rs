//! Reading back what a stream holds, without a durable consumer: which subjects match a filter
//! (and how many messages each holds), every message on one subject, everything from a
//! sequence on. The
//! count comes from the stream's per-subject state, so a read never waits for messages that
//! are not there.

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt as _;

/// The subjects of `stream` that match `filter` (wildcards allowed), with their message counts,
/// in subject order.
///
/// # Errors
///
/// When the stream cannot be read.
pub async fn subjects(
    js: &jetstream::Context,
    stream: &str,
    filter: &str,
) -> Result<Vec<(String, usize)>, async_nats::Error> {
    let stream = js.get_stream(stream).await?;
    let mut info = stream.info_with_subjects(filter).await?;
    let mut found = Vec::new();
    while let Some(entry) = info.next().await {
        found.push(entry?);
    }
    found.sort();
    Ok(found)
}

/// Every message of `stream` from sequence `from` on, in order, then each new one as it is
/// stored (an ordered consumer; after an error, open it again from where it stopped).
///
/// # Errors
///
/// When the stream cannot be read.
pub async fn from_sequence(
    js: &jetstream::Context,
    stream: &str,
    from: u64,
) -> Result<jetstream::consumer::pull::Ordered, async_nats::Error> {
    let consumer = js
        .get_stream(stream)
        .await?
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..OrderedConfig::default()
        })
        .await?;
    Ok(consumer.messages().await?)
}

/// True when `stream` holds at least one message on `subject`.
///
/// # Errors
///
/// When the stream cannot be read.
pub async fn holds(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<bool, async_nats::Error> {
    Ok(subjects(js, stream, subject)
        .await?
        .iter()
        .any(|(_, count)| *count > 0))
}

/// Every message `stream` holds on `subject`, oldest first.
///
/// # Errors
///
/// When the stream cannot be read.
pub async fn messages_on(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Vec<jetstream::Message>, async_nats::Error> {
    let stored: usize = subjects(js, stream, subject)
        .await?
        .iter()
        .map(|(_, count)| count)
        .sum();
    if stored == 0 {
        return Ok(Vec::new());
    }
    let consumer = js
        .get_stream(stream)
        .await?
        .create_consumer(OrderedConfig {
            filter_subject: subject.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ..OrderedConfig::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut read = Vec::with_capacity(stored);
    while read.len() < stored {
        let Some(message) = messages.next().await else {
            break;
        };
        read.push(message?);
    }
    Ok(read)
}

/// The last message `stream` holds on `subject` (wildcards allowed: the last of all matching),
/// or `None` when it holds none.
///
/// # Errors
///
/// When the stream cannot be read.
pub async fn last(
    js: &jetstream::Context,
    stream: &str,
    subject: &str,
) -> Result<Option<jetstream::message::StreamMessage>, async_nats::Error> {
    match js
        .get_stream(stream)
        .await?
        .get_last_raw_message_by_subject(subject)
        .await
    {
        Ok(message) => Ok(Some(message)),
        Err(error)
            if error.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}
