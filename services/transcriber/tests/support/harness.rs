//! The transcriber service under test: a real nats-server with the topology, the in-process
//! OpenAI-compatible server, the service in a runtime of its own, and readings of the streams.

use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{
    CONSUMER_TRANSCRIBER, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS, Topology, TopologyConfig,
};
use bcfy_bus::{CallId, Publisher, Shard, subject};
use bcfy_proto::{AudioPayloadEvent, Call, TranscriptionResult};
use bcfy_test_support::{FakeStt, NatsServer, ServiceUnderTest, eventually};
use bcfy_transcriber::config::{ConsumerConfig, TranscriberConfig};
use bcfy_transcriber::hearing::GatingConfig;
use bcfy_transcriber::{TranscriberError, TranscriptionConfig};
use sha2::{Digest as _, Sha256};

pub(crate) const PATIENCE: Duration = Duration::from_secs(20);
pub(crate) const SHARD: Shard = Shard {
    sid: 7001,
    tg: 2345,
};

pub(crate) struct Harness {
    pub(crate) nats: NatsServer,
    pub(crate) js: jetstream::Context,
    pub(crate) stt: FakeStt,
}

pub(crate) async fn harness() -> Harness {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    Harness {
        nats,
        js,
        stt: FakeStt::recording().await,
    }
}

pub(crate) type Running = ServiceUnderTest<TranscriberError>;

impl Harness {
    pub(crate) fn config(&self) -> TranscriberConfig {
        TranscriberConfig {
            nats: NatsConfig {
                urls: vec![self.nats.url()],
                ..NatsConfig::default()
            },
            transcription: TranscriptionConfig {
                endpoint_url: Some(self.stt.url().parse().unwrap()),
                request_timeout: Duration::from_secs(5),
                // The calls here are made-up bytes: what is under test is the delivery and the
                // provider exchange, not what the audio holds (tests/gating.rs uses real audio).
                gating: GatingConfig {
                    enabled: false,
                    ..GatingConfig::default()
                },
                ..TranscriptionConfig::default()
            },
            consumer: ConsumerConfig {
                ack_wait: Duration::from_secs(3),
                retry_initial_delay: Duration::from_millis(200),
                retry_max_delay: Duration::from_secs(1),
                ..ConsumerConfig::default()
            },
            ..TranscriberConfig::default()
        }
    }

    pub(crate) fn start(&self, config: TranscriberConfig) -> Running {
        ServiceUnderTest::start("transcriber", config, bcfy_transcriber::run)
    }

    /// Publishes `size` bytes of made-up audio for call `n` in chunks of `chunk`.
    pub(crate) async fn publish_call(
        &self,
        n: u32,
        size: usize,
        chunk: usize,
    ) -> (CallId, Vec<u8>) {
        let audio: Vec<u8> = (0..size).map(|i| (i as u32 * 7 + n) as u8).collect();
        let call_id = self.publish_audio(n, &audio, "audio/mp4", chunk).await;
        (call_id, audio)
    }

    /// Publishes `audio` as call `n` in chunks of `chunk`, as the fetcher would.
    pub(crate) async fn publish_audio(
        &self,
        n: u32,
        audio: &[u8],
        content_type: &str,
        chunk: usize,
    ) -> CallId {
        let call = Call {
            call_duration: Some(4),
            ..Call::default()
        };
        self.publish_call_audio(n, audio, content_type, chunk, call)
            .await
    }

    /// As [`Harness::publish_audio`], the call's metadata being `call`.
    pub(crate) async fn publish_call_audio(
        &self,
        n: u32,
        audio: &[u8],
        content_type: &str,
        chunk: usize,
        call: Call,
    ) -> CallId {
        let call_id = CallId::parse(&format!("1502-176722{n:04}-2345-h{n}")).unwrap();
        let size = audio.len();
        let sha: String = Sha256::digest(audio)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let pieces: Vec<&[u8]> = audio.chunks(chunk).collect();
        let publisher = Publisher::new(self.js.clone());
        for (i, piece) in pieces.iter().enumerate() {
            let last = i + 1 == pieces.len();
            let event = AudioPayloadEvent {
                call_id: call_id.to_string(),
                sequence: u32::try_from(i).unwrap(),
                byte_offset: (i * chunk) as u64,
                payload: piece.to_vec().into(),
                content_type: content_type.into(),
                r#final: last,
                total_size: if last { size as u64 } else { 0 },
                sha256: if last { sha.clone() } else { String::new() },
                call: Some(call.clone()),
                ..AudioPayloadEvent::default()
            };
            publisher
                .publish(
                    subject::audio(SHARD, &call_id),
                    &format!("{call_id}-{i}"),
                    &event,
                )
                .await
                .unwrap();
        }
        call_id
    }

    pub(crate) async fn stored<M: prost::Message + Default>(
        &self,
        stream: &str,
    ) -> Vec<(String, M)> {
        let mut stream = self.js.get_stream(stream).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                let decoded = M::decode(message.payload.as_ref()).unwrap();
                messages.push((message.subject.to_string(), decoded));
            }
        }
        messages
    }

    pub(crate) async fn transcripts(&self) -> Vec<(String, TranscriptionResult)> {
        self.stored(STREAM_TRANSCRIPTIONS).await
    }

    /// Waits until `count` transcripts exist, then checks no more arrive before the audio
    /// consumer has settled every message.
    pub(crate) async fn expect_transcripts(
        &self,
        count: usize,
    ) -> Vec<(String, TranscriptionResult)> {
        self.expect_transcripts_within(count, PATIENCE).await
    }

    /// As [`Harness::expect_transcripts`], waiting up to `patience`.
    pub(crate) async fn expect_transcripts_within(
        &self,
        count: usize,
        patience: Duration,
    ) -> Vec<(String, TranscriptionResult)> {
        eventually(patience, "the transcripts", || async {
            let settled = self.settled().await;
            let transcripts = self.transcripts().await;
            (settled && transcripts.len() >= count).then_some(())
        })
        .await;
        let transcripts = self.transcripts().await;
        assert_eq!(transcripts.len(), count, "exactly one transcript per call");
        transcripts
    }

    /// True when the transcriber consumer has nothing pending or unacknowledged.
    pub(crate) async fn settled(&self) -> bool {
        let Ok(mut consumer) = self
            .js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                CONSUMER_TRANSCRIBER,
                STREAM_CALLS_AUDIO,
            )
            .await
        else {
            return false;
        };
        let info = consumer.info().await.unwrap();
        info.num_pending == 0 && info.num_ack_pending == 0
    }
}
