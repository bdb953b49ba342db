//! What JetStream itself costs on this machine, measured with the leanest client this harness
//! can be, so the load report can set the pipeline's figures against the server's own:
//!
//! - [`ceiling`]: pipelined PubAcked publishes to a plain file stream, the figure `nats bench
//!   js pub` gives (the `nats` CLI cannot be installed here);
//! - [`floor`]: the JetStream work one call needs in our topology (store the envelope, deliver
//!   and ack it, store the audio, deliver and ack it, store the transcript), done in batches of
//!   1,000 with nothing else in between: nats-server's CPU per call, a lower bound for what it
//!   spends under the real pipeline.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::PullConsumer, stream};
use bcfy_bus::ensure::{ensure_consumer, ensure_topology};
use bcfy_bus::topology::{ConsumerSpec, Topology, TopologyConfig};
use bcfy_test_support::NatsServer;
use bcfy_test_support::proc_stat::process_cpu_seconds;
use bytes::Bytes;
use futures::StreamExt as _;

/// Publishes in flight at once, and messages per pull.
const BATCH: usize = 1_000;

/// Messages per second of [`ceiling`] with `count` messages of `size` bytes.
pub async fn ceiling(count: usize, size: usize) -> f64 {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    js.create_stream(stream::Config {
        name: "CEILING".to_owned(),
        subjects: vec!["ceiling.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("stream");
    let payload = Bytes::from(vec![7u8; size]);
    let batches = count.div_ceil(BATCH);
    let started = tokio::time::Instant::now();
    for batch in 0..batches {
        publish_batch(
            &js,
            (0..BATCH).map(|i| {
                let n = batch * BATCH + i;
                (format!("ceiling.{n}"), None, payload.clone())
            }),
        )
        .await;
    }
    (batches * BATCH) as f64 / started.elapsed().as_secs_f64()
}

/// The sizes of one call's three events, in bytes (payload only).
#[derive(Debug, Clone, Copy)]
pub struct CallSizes {
    /// The `calls.live` envelope.
    pub envelope: usize,
    /// The `calls.audio.raw` event (one message per call).
    pub audio: usize,
    /// The `transcription.complete` event.
    pub transcript: usize,
}

/// nats-server's CPU seconds per 1,000 calls for each step of [`floor`].
#[derive(Debug, Clone, Copy)]
pub struct FloorFigures {
    /// Storing the envelope (`Nats-Msg-Id`, PubAck).
    pub store_envelope: f64,
    /// Delivering the envelope, storing the audio, acking the envelope: the audio fetcher's
    /// share.
    pub fetch: f64,
    /// Delivering the audio, storing the transcript, acking the audio: the transcriber's share.
    pub transcribe: f64,
}

impl FloorFigures {
    /// The steps the load report's CPU target covers (poll, download, publish).
    pub fn poll_and_fetch(&self) -> f64 {
        self.store_envelope + self.fetch
    }
}

/// Runs `calls` calls of `sizes` through the production streams and consumers (their limits,
/// dedup windows and ack policy), each step over every call before the next, and reads
/// nats-server's CPU time around each step.
pub async fn floor(calls: usize, sizes: CallSizes) -> FloorFigures {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .expect("topology");
    let max_ack_pending = i64::try_from(BATCH).expect("small");
    let (fetcher, _) = ensure_consumer(&js, &ConsumerSpec::audio_fetcher(max_ack_pending))
        .await
        .expect("fetcher consumer");
    let (transcriber, _) = ensure_consumer(&js, &ConsumerSpec::transcriber(max_ack_pending))
        .await
        .expect("transcriber consumer");
    let pid = nats.pid().expect("running");
    let per_thousand = |since: f64| (process_cpu_seconds(pid) - since) / calls as f64 * 1000.0;

    let envelope = Bytes::from(vec![1u8; sizes.envelope]);
    let started = process_cpu_seconds(pid);
    for batch in 0..calls.div_ceil(BATCH) {
        publish_batch(
            &js,
            (batch * BATCH..((batch + 1) * BATCH).min(calls)).map(|n| {
                let subject = format!("calls.live.1.{}", n % 100);
                (subject, Some(format!("{n}")), envelope.clone())
            }),
        )
        .await;
    }
    let store_envelope = per_thousand(started);

    let started = process_cpu_seconds(pid);
    relay(&js, &fetcher, calls, "calls.audio.raw.1.1", sizes.audio).await;
    let fetch = per_thousand(started);

    let started = process_cpu_seconds(pid);
    relay(
        &js,
        &transcriber,
        calls,
        "transcription.complete.1.1",
        sizes.transcript,
    )
    .await;
    let transcribe = per_thousand(started);

    FloorFigures {
        store_envelope,
        fetch,
        transcribe,
    }
}

/// Takes `count` messages from `consumer` a batch at a time; for each publishes `size` bytes on
/// `{prefix}.{n}` and, once the batch's publishes are stored, acks the batch.
async fn relay(
    js: &jetstream::Context,
    consumer: &PullConsumer,
    count: usize,
    prefix: &str,
    size: usize,
) {
    let payload = Bytes::from(vec![2u8; size]);
    let mut relayed = 0;
    while relayed < count {
        let batch: Vec<jetstream::Message> = consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .expect("pull")
            .map(|m| m.expect("message"))
            .collect()
            .await;
        assert!(!batch.is_empty(), "{prefix}: {relayed} of {count} came");
        publish_batch(
            js,
            (relayed..relayed + batch.len()).map(|n| {
                (
                    format!("{prefix}.{n}"),
                    Some(format!("{n}")),
                    payload.clone(),
                )
            }),
        )
        .await;
        relayed += batch.len();
        for message in batch {
            message.ack().await.expect("ack");
        }
    }
}

/// Publishes every `(subject, msg_id, payload)` at once and waits for all PubAcks.
async fn publish_batch(
    js: &jetstream::Context,
    messages: impl Iterator<Item = (String, Option<String>, Bytes)>,
) {
    let mut acks = Vec::with_capacity(BATCH);
    for (subject, msg_id, payload) in messages {
        let sent = match msg_id {
            Some(id) => {
                let mut headers = HeaderMap::new();
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                js.publish_with_headers(subject, headers, payload).await
            }
            None => js.publish(subject, payload).await,
        };
        acks.push(sent.expect("sent").into_future());
    }
    for ack in futures::future::join_all(acks).await {
        ack.expect("stored");
    }
}
