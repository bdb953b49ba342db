//! The bus helpers against a real `nats-server`: dedup, NAK delays, TERM with dead letters,
//! NAK-on-drop, heartbeats, idempotent `ensure` with drift reports, and trace context.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::PullConsumer};
use bcfy_bus::consume::{self, DeadLetterError, DecodeError};
use bcfy_bus::ensure::{ensure_consumer, ensure_topology};
use bcfy_bus::topology::{self, ConsumerSpec, Topology, TopologyConfig};
use bcfy_bus::{CallId, Delivery, Failure, Publisher, Shard, Stage, subject};
use bcfy_config::units::ByteSize;
use bcfy_proto::{Call, DeadLetter, LiveCallEnvelope, TranscriptionResult};
use bcfy_test_support::NatsServer;
use futures::StreamExt as _;
use prost::Message as _;

const SHARD: Shard = Shard {
    sid: 7001,
    tg: 2345,
};

struct Bus {
    _server: NatsServer,
    js: jetstream::Context,
    publisher: Publisher,
}

impl Bus {
    /// Publishes call `n` on its live subject and returns what was published.
    async fn publish_live(&self, n: i64) -> (CallId, LiveCallEnvelope) {
        let (id, event) = envelope(n);
        self.publisher
            .publish(subject::live(SHARD), id.as_str(), &event)
            .await
            .unwrap();
        (id, event)
    }

    /// Publishes `payload` with `headers` on [`SHARD`]'s live subject, as is.
    async fn publish_raw_live(&self, headers: async_nats::HeaderMap, payload: Vec<u8>) {
        self.js
            .publish_with_headers(subject::live(SHARD), headers, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The newest dead letter and the subject it was stored on.
    async fn last_dead_letter(&self) -> (String, DeadLetter) {
        let stream = self
            .js
            .get_stream(topology::STREAM_DEAD_LETTERS)
            .await
            .unwrap();
        let stored = stream
            .get_last_raw_message_by_subject(subject::ALL_DEAD_LETTERS)
            .await
            .unwrap();
        (
            stored.subject.to_string(),
            DeadLetter::decode(stored.payload.as_ref()).unwrap(),
        )
    }
}

async fn bus() -> Bus {
    bcfy_test_support::trace_init();
    let server = NatsServer::start().await;
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = jetstream::new(client);
    let drift = ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    Bus {
        _server: server,
        publisher: Publisher::new(js.clone()),
        js,
    }
}

fn envelope(n: i64) -> (CallId, LiveCallEnvelope) {
    let call = Call {
        sid: Some(SHARD.sid),
        call_tg: Some(SHARD.tg),
        system_id: Some(1502),
        filename: Some(format!("{}-{}", 1_767_225_600 + n, SHARD.tg)),
        hash: Some("k3v9q0ma".into()),
        ..Call::default()
    };
    let id = CallId::for_call(&call);
    let envelope = LiveCallEnvelope {
        call_id: id.to_string(),
        call: Some(call),
        ..Default::default()
    };
    (id, envelope)
}

async fn consumer(js: &jetstream::Context, spec: ConsumerSpec) -> PullConsumer {
    let (consumer, drift) = ensure_consumer(js, &spec).await.unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    consumer
}

/// The next delivery, or `None` when nothing arrives within `wait`.
async fn next(consumer: &PullConsumer, wait: Duration) -> Option<Delivery> {
    let mut batch = consumer
        .fetch()
        .max_messages(1)
        .expires(wait)
        .messages()
        .await
        .unwrap();
    batch.next().await.map(|m| Delivery::new(m.unwrap()))
}

async fn pending(consumer: &mut PullConsumer) -> (u64, usize) {
    let info = consumer.info().await.unwrap();
    (info.num_pending, info.num_ack_pending)
}

#[tokio::test]
async fn a_duplicate_within_the_window_is_dropped() {
    let bus = bus().await;
    let (id, event) = envelope(1);
    let first = bus
        .publisher
        .publish(subject::live(SHARD), id.as_str(), &event)
        .await
        .unwrap();
    let again = bus
        .publisher
        .publish(subject::live(SHARD), id.as_str(), &event)
        .await
        .unwrap();
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.sequence, first.sequence);
    let (other_id, other) = envelope(2);
    let second = bus
        .publisher
        .publish(subject::live(SHARD), other_id.as_str(), &other)
        .await
        .unwrap();
    assert_eq!(second.sequence, first.sequence + 1);

    let mut stream = bus
        .js
        .get_stream(topology::STREAM_CALLS_LIVE)
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn published_events_carry_type_and_decode() {
    let bus = bus().await;
    let (_, event) = bus.publish_live(1).await;
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    assert_eq!(delivery.subject(), "calls.live.7001.2345");
    assert_eq!(delivery.attempt(), 1);
    assert_eq!(delivery.decode::<LiveCallEnvelope>().unwrap(), event);
    let wrong = delivery.decode::<TranscriptionResult>().unwrap_err();
    assert!(matches!(wrong, DecodeError::WrongType { .. }), "{wrong}");
    delivery.ack().await.unwrap();
}

#[tokio::test]
async fn nak_redelivers_only_after_its_delay() {
    let bus = bus().await;
    let (_, event) = bus.publish_live(1).await;
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;

    let delay = Duration::from_millis(1500);
    let first = next(&consumer, Duration::from_secs(5)).await.unwrap();
    let naked_at = tokio::time::Instant::now();
    first.nak(delay).await.unwrap();

    assert!(
        next(&consumer, Duration::from_millis(500)).await.is_none(),
        "redelivered early"
    );
    let again = next(&consumer, Duration::from_secs(10))
        .await
        .expect("redelivered after the delay");
    assert!(
        naked_at.elapsed() >= delay,
        "redelivered after {:?}",
        naked_at.elapsed()
    );
    assert_eq!(again.attempt(), 2);
    assert_eq!(again.decode::<LiveCallEnvelope>().unwrap(), event);
    again.ack().await.unwrap();
}

#[tokio::test]
async fn a_dropped_delivery_is_naked_and_comes_back_at_once() {
    let bus = bus().await;
    bus.publish_live(1).await;
    // The ack wait is 30 s: a redelivery within 5 s can only come from the NAK on drop.
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    drop(next(&consumer, Duration::from_secs(5)).await.unwrap());
    let again = next(&consumer, Duration::from_secs(5))
        .await
        .expect("redelivered after drop");
    assert_eq!(again.attempt(), 2);
    again.ack().await.unwrap();
}

#[tokio::test]
async fn keep_alive_holds_a_message_past_its_ack_wait() {
    let bus = bus().await;
    bus.publish_live(1).await;
    let spec = ConsumerSpec {
        ack_wait: Duration::from_secs(1),
        ..ConsumerSpec::audio_fetcher(16)
    };
    let mut consumer = consumer(&bus.js, spec).await;

    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    let heartbeats = delivery.keep_alive(Duration::from_millis(250));
    // Three ack waits pass; without heartbeats the message would be redelivered.
    assert!(
        next(&consumer, Duration::from_secs(3)).await.is_none(),
        "redelivered while alive"
    );
    drop(heartbeats);
    delivery.ack().await.unwrap();
    assert_eq!(pending(&mut consumer).await, (0, 0));
    assert_eq!(consumer.info().await.unwrap().num_redelivered, 0);
}

#[tokio::test]
async fn dead_letter_terms_the_original_and_records_why() {
    let bus = bus().await;
    let (id, event) = bus.publish_live(1).await;
    let mut consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;

    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    let failure = Failure {
        kind: "cdn_not_found",
        reason: "CDN answered 404 for 600 s".into(),
        call_id: Some(id.clone()),
        redrive_headers: Vec::new(),
    };
    delivery
        .dead_letter(&bus.publisher, Stage::AudioFetcher, failure)
        .await
        .unwrap();

    // The original is settled: nothing pending, nothing redelivered.
    assert_eq!(pending(&mut consumer).await, (0, 0));
    assert!(next(&consumer, Duration::from_millis(500)).await.is_none());

    let (stored_subject, letter) = bus.last_dead_letter().await;
    assert_eq!(
        stored_subject,
        format!("deadletter.audio-fetcher.7001.2345.{id}")
    );
    assert_eq!(letter.stage, "audio-fetcher");
    assert_eq!(letter.error_kind, "cdn_not_found");
    assert_eq!(letter.reason, "CDN answered 404 for 600 s");
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.redrives, 0, "a first failure");
    assert_eq!(letter.call_id, id.as_str());
    assert_eq!(letter.original_subject, "calls.live.7001.2345");
    assert_eq!(letter.original_stream, topology::STREAM_CALLS_LIVE);
    assert_eq!(letter.original_headers["Nats-Msg-Id"], id.as_str());
    assert_eq!(
        LiveCallEnvelope::decode(letter.original_payload.as_slice()).unwrap(),
        event
    );
}

#[tokio::test]
async fn a_redriven_message_that_fails_again_says_how_often_it_was_redriven() {
    let bus = bus().await;
    let (id, event) = envelope(7);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(bcfy_bus::redrive::HEADER, "2");
    headers.insert(async_nats::header::NATS_MESSAGE_ID, "redrive-41");
    bus.publish_raw_live(headers, event.encode_to_vec()).await;
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    assert_eq!(delivery.redrives(), 2);
    delivery
        .dead_letter(
            &bus.publisher,
            Stage::AudioFetcher,
            Failure::new("http_status", "410 again", Some(&id)),
        )
        .await
        .unwrap();
    let (_, letter) = bus.last_dead_letter().await;
    assert_eq!(letter.redrives, 2);
    assert_eq!(letter.original_headers[bcfy_bus::redrive::HEADER], "2");
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_stored_leaves_the_message_to_retry() {
    let bus = bus().await;
    bus.publish_live(1).await;
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    bus.js
        .delete_stream(topology::STREAM_DEAD_LETTERS)
        .await
        .unwrap();

    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    let failure = Failure {
        kind: "poison",
        reason: "bad".into(),
        call_id: None,
        redrive_headers: Vec::new(),
    };
    let error = delivery
        .dead_letter(&bus.publisher, Stage::AudioFetcher, failure)
        .await
        .unwrap_err();
    assert!(matches!(error, DeadLetterError::Publish(_)), "{error}");
    let again = next(&consumer, Duration::from_secs(5))
        .await
        .expect("not lost");
    assert_eq!(again.attempt(), 2);
    again.ack().await.unwrap();
}

#[tokio::test]
async fn poison_payloads_are_dead_lettered_with_the_shard_from_the_subject() {
    let bus = bus().await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "garbage-1");
    bus.publish_raw_live(headers, vec![0xff, 0xff, 0xff]).await;
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    let error = delivery.decode::<LiveCallEnvelope>().unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }));
    let failure = Failure {
        kind: "poison",
        reason: error.to_string(),
        call_id: None,
        redrive_headers: Vec::new(),
    };
    delivery
        .dead_letter(&bus.publisher, Stage::AudioFetcher, failure)
        .await
        .unwrap();

    let (stored_subject, letter) = bus.last_dead_letter().await;
    assert_eq!(stored_subject, "deadletter.audio-fetcher.7001.2345._");
    assert_eq!(letter.original_payload, vec![0xff, 0xff, 0xff]);
}

#[tokio::test]
async fn ensure_twice_changes_nothing_and_a_changed_limit_is_reported() {
    let bus = bus().await;
    bus.publish_live(1).await;
    let mut stream = bus
        .js
        .get_stream(topology::STREAM_CALLS_LIVE)
        .await
        .unwrap();
    let before = stream.info().await.unwrap().clone();

    let drift = ensure_topology(&bus.js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    assert!(drift.is_empty(), "{drift:?}");
    let after = stream.info().await.unwrap().clone();
    assert_eq!(after.created, before.created);
    assert_eq!(after.config, before.config);
    assert_eq!(after.state.messages, 1, "no data lost");

    let mut changed = TopologyConfig::default();
    changed.calls_live.max_bytes = Some(ByteSize(512 << 20));
    let drift = ensure_topology(&bus.js, &Topology::new(changed))
        .await
        .unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].resource, "stream CALLS_LIVE");
    assert_eq!(drift[0].setting, "max_bytes");
    assert_eq!(drift[0].declared, (512_i64 << 20).to_string());
    assert_eq!(drift[0].actual, (1_i64 << 30).to_string());
    let untouched = stream.info().await.unwrap().clone();
    assert_eq!(
        untouched.config.max_bytes,
        1 << 30,
        "drift is reported, not applied"
    );
    assert_eq!(untouched.state.messages, 1);

    let spec = ConsumerSpec::audio_fetcher(16);
    let _ = consumer(&bus.js, spec.clone()).await;
    let (_, drift) = ensure_consumer(
        &bus.js,
        &ConsumerSpec {
            max_ack_pending: 32,
            ..spec
        },
    )
    .await
    .unwrap();
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(drift[0].setting, "max_ack_pending");
}

#[tokio::test]
async fn every_bucket_exists_after_ensure() {
    let bus = bus().await;
    for bucket in [
        topology::KV_POLLER_CURSORS,
        topology::KV_POLLER_LEASES,
        topology::KV_UPSTREAM_SESSION,
        topology::KV_UPSTREAM_BUDGET,
        topology::KV_ARCHIVE_CACHE,
    ] {
        let store = bus.js.get_key_value(bucket).await.unwrap();
        store.put("probe", "value".into()).await.unwrap();
        assert_eq!(
            store.get("probe").await.unwrap().unwrap().as_ref(),
            b"value"
        );
    }
}

#[tokio::test]
async fn trace_context_survives_a_publish_consume_hop() {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let bus = bus().await;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bus-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let (id, event) = envelope(1);
    let publish_span = tracing::info_span!("publish_call");
    let published_trace = publish_span.context().span().span_context().trace_id();
    {
        let _entered = publish_span.enter();
        bus.publisher
            .publish(subject::live(SHARD), id.as_str(), &event)
            .await
            .unwrap();
    }

    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    let delivery = next(&consumer, Duration::from_secs(5)).await.unwrap();
    let traceparent = delivery
        .headers()
        .unwrap()
        .get("traceparent")
        .unwrap()
        .as_str()
        .to_owned();
    assert!(
        traceparent.contains(&published_trace.to_string()),
        "{traceparent}"
    );

    let handle_span = tracing::info_span!("fetch_audio");
    delivery.follow_trace(&handle_span);
    let handled_trace = handle_span.context().span().span_context().trace_id();
    assert_eq!(handled_trace, published_trace);
    delivery.ack().await.unwrap();
}

#[tokio::test]
async fn deliveries_stream_pulls_in_batches() {
    let bus = bus().await;
    for n in 0..5 {
        bus.publish_live(n).await;
    }
    let consumer = consumer(&bus.js, ConsumerSpec::audio_fetcher(16)).await;
    let mut deliveries = consume::deliveries(&consumer, 2).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let delivery = deliveries.next().await.unwrap().unwrap();
        seen.push(delivery.decode::<LiveCallEnvelope>().unwrap().call_id);
        delivery.ack().await.unwrap();
    }
    let expected: Vec<String> = (0..5).map(|n| envelope(n).0.to_string()).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_pipelined_batch_is_stored_in_order_with_duplicates_flagged() {
    let bus = bus().await;
    let events: Vec<(CallId, LiveCallEnvelope)> = (0..100).map(envelope).collect();
    let mut batch: Vec<(String, &str, &LiveCallEnvelope)> = events
        .iter()
        .map(|(id, event)| (subject::live(SHARD), id.as_str(), event))
        .collect();
    // The first event again, inside the same batch.
    batch.push((subject::live(SHARD), events[0].0.as_str(), &events[0].1));
    let results = bus.publisher.publish_all(batch).await.unwrap();
    let published: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let sequences: Vec<u64> = published[..100].iter().map(|p| p.sequence).collect();
    assert_eq!(sequences, (1..=100).collect::<Vec<_>>());
    assert!(published[..100].iter().all(|p| !p.duplicate));
    assert!(published[100].duplicate);
    assert_eq!(published[100].sequence, 1);
}
