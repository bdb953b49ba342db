//! The audio fetcher's `run` in-process against a real `nats-server` and `bcfy-sim`.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_audio_fetcher::{AudioConfig, FetcherConfig};
use bcfy_broadcastify::{Client, ClientConfig, GroupKey, LiveQuery, Selector};
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::ensure::{ensure_consumer, ensure_topology};
use bcfy_bus::topology::{
    CONSUMER_AUDIO_FETCHER, ConsumerSpec, STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE,
    STREAM_DEAD_LETTERS, Topology, TopologyConfig,
};
use bcfy_bus::{CallId, Publisher, subject};
use bcfy_config::units::ByteSize;
use bcfy_proto::{AudioPayloadEvent, DeadLetter, LiveCallEnvelope, ShardKey};
use bcfy_simulator::{CallSpec, Fault, LedgerEntry, Route, SimConfig, Simulator};
use bcfy_test_support::{NatsServer, ServiceUnderTest, eventually};
use futures::StreamExt as _;
use prost::Message as _;
use sha2::{Digest as _, Sha256};

const PATIENCE: Duration = Duration::from_secs(20);
const FIRE: (i64, i64) = (7001, 2345);

struct Harness {
    nats: NatsServer,
    sim: Simulator,
    js: jetstream::Context,
    client: Client,
}

async fn harness() -> Harness {
    bcfy_test_support::trace_init();
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests()).await.unwrap();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    let client = Client::new(
        ClientConfig {
            username: Some("demo".into()),
            password: Some("demo-password".to_owned().into()),
            ..ClientConfig::default()
        }
        .with_origin(url::Url::parse(&sim.url()).unwrap()),
    )
    .unwrap();
    Harness {
        nats,
        sim,
        js,
        client,
    }
}

impl Harness {
    /// Makes a call available and publishes its live envelope, as the poller would.
    async fn announce(&self, spec: CallSpec) -> LedgerEntry {
        let entry = self.sim.add_call(CallSpec {
            talkgroup: Some(FIRE),
            ..spec
        });
        let query = LiveQuery {
            selector: Selector::Groups(vec![GroupKey {
                sid: FIRE.0,
                tg: FIRE.1,
            }]),
            position: Some(entry.ts as f64),
            init: false,
        };
        let answer = self.client.live_calls(&query).await.unwrap();
        let upstream = answer
            .parsed
            .calls
            .into_iter()
            .find(|c| CallId::for_call(&c.call).as_str() == entry.key)
            .unwrap();
        let envelope = LiveCallEnvelope {
            call_id: entry.key.clone(),
            call: Some(upstream.call),
            received_at: Some(std::time::SystemTime::now().into()),
            shard_key: Some(ShardKey {
                system_id: FIRE.0,
                talkgroup_id: FIRE.1,
            }),
            raw_payload: upstream.raw.into_bytes(),
            ..LiveCallEnvelope::default()
        };
        let live = subject::live(bcfy_bus::Shard {
            sid: FIRE.0,
            tg: FIRE.1,
        });
        Publisher::new(self.js.clone())
            .publish(live, &entry.key, &envelope)
            .await
            .unwrap();
        entry
    }

    fn config(&self) -> FetcherConfig {
        FetcherConfig {
            nats: NatsConfig {
                urls: vec![self.nats.url()],
                ..NatsConfig::default()
            },
            broadcastify: ClientConfig {
                request_timeout: Duration::from_secs(5),
                ..ClientConfig::default()
            }
            .with_origin(url::Url::parse(&self.sim.url()).unwrap()),
            audio: AudioConfig {
                ack_wait: Duration::from_secs(2),
                not_found_initial_delay: Duration::from_millis(200),
                not_found_max_delay: Duration::from_secs(1),
                retry_initial_delay: Duration::from_millis(200),
                retry_max_delay: Duration::from_secs(1),
                transcription_enabled: false,
                ..AudioConfig::default()
            },
            ..FetcherConfig::default()
        }
    }

    async fn stored(&self, stream: &str) -> Vec<(String, Vec<u8>)> {
        let Ok(mut stream) = self.js.get_stream(stream).await else {
            return Vec::new();
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                messages.push((message.subject.to_string(), message.payload.to_vec()));
            }
        }
        messages
    }

    async fn dead_letters(&self) -> Vec<DeadLetter> {
        self.stored(STREAM_DEAD_LETTERS)
            .await
            .into_iter()
            .map(|(_, payload)| DeadLetter::decode(payload.as_slice()).unwrap())
            .collect()
    }

    /// Every call's audio, reassembled from its chunks; panics on a repeated chunk.
    async fn audio(&self) -> BTreeMap<String, Reassembled> {
        let mut calls: BTreeMap<String, Reassembled> = BTreeMap::new();
        for (subject, payload) in self.stored(STREAM_CALLS_AUDIO).await {
            let event = AudioPayloadEvent::decode(payload.as_slice()).unwrap();
            assert!(subject.ends_with(&event.call_id), "{subject}");
            let call = calls.entry(event.call_id.clone()).or_default();
            assert!(
                call.sequences.insert(event.sequence),
                "chunk {} of {} twice",
                event.sequence,
                event.call_id
            );
            call.chunks.push(event);
        }
        for call in calls.values_mut() {
            call.chunks.sort_by_key(|e| e.sequence);
        }
        calls
    }

    /// Waits until `keys` all have complete audio, then checks it against the ledger.
    async fn expect_audio(&self, entries: &[LedgerEntry]) -> BTreeMap<String, Reassembled> {
        let audio = eventually(PATIENCE, "every call's audio", || async {
            let audio = self.audio().await;
            entries
                .iter()
                .all(|e| audio.get(&e.key).is_some_and(Reassembled::complete))
                .then_some(audio)
        })
        .await;
        assert_eq!(audio.len(), entries.len(), "audio for unexpected calls");
        for entry in entries {
            let call = &audio[&entry.key];
            let bytes = call.bytes();
            let sha: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                sha, entry.audio_sha256,
                "byte-identical to what the CDN served"
            );
            let last = call.chunks.last().unwrap();
            assert_eq!(
                (last.sha256.as_str(), last.total_size),
                (sha.as_str(), bytes.len() as u64)
            );
        }
        audio
    }
}

#[derive(Debug, Default)]
struct Reassembled {
    chunks: Vec<AudioPayloadEvent>,
    sequences: std::collections::BTreeSet<u32>,
}

impl Reassembled {
    fn complete(&self) -> bool {
        self.chunks.iter().any(|e| e.r#final)
            && self.chunks.len()
                == self
                    .chunks
                    .iter()
                    .filter(|e| e.r#final)
                    .map(|e| e.sequence as usize + 1)
                    .sum::<usize>()
    }

    fn bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for chunk in &self.chunks {
            assert_eq!(
                chunk.byte_offset,
                bytes.len() as u64,
                "chunks in order and contiguous"
            );
            bytes.extend_from_slice(&chunk.payload);
        }
        bytes
    }
}

type Running = ServiceUnderTest<bcfy_audio_fetcher::FetcherError>;

fn start(config: FetcherConfig) -> Running {
    ServiceUnderTest::start("audio-fetcher", config, bcfy_audio_fetcher::run)
}

#[tokio::test]
async fn every_calls_audio_is_published_once_and_byte_identical() {
    let h = harness().await;
    let fetcher = start(h.config());
    let mut entries = Vec::new();
    for clip in 0..12 {
        entries.push(
            h.announce(CallSpec {
                clip: Some(clip),
                ..CallSpec::default()
            })
            .await,
        );
    }
    let audio = h.expect_audio(&entries).await;
    assert!(
        audio.values().all(|a| a.chunks.len() == 1),
        "small files are one message"
    );
    let first = &audio[&entries[0].key].chunks[0];
    assert_eq!(first.content_type, "audio/mp4");
    assert!(
        first.call.as_ref().unwrap().filename.is_some(),
        "the call travels with its audio"
    );
    assert_eq!(
        fetcher.metric(
            "bcfy_audio_fetcher_downloads_total",
            Some(("outcome", "ok"))
        ),
        12.0
    );
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn a_multi_chunk_call_reassembles_exactly() {
    let h = harness().await;
    let mut config = h.config();
    config.audio.chunk_bytes = ByteSize(4096);
    let fetcher = start(config);
    let entry = h
        .announce(CallSpec {
            clip: Some(10),
            ..CallSpec::default()
        })
        .await;
    let audio = h.expect_audio(std::slice::from_ref(&entry)).await;
    let chunks = &audio[&entry.key].chunks;
    assert_eq!(chunks.len(), entry.audio_bytes.div_ceil(4096));
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| !c.r#final && c.payload.len() == 4096)
    );
    assert!(
        chunks
            .windows(2)
            .all(|w| w[0].end_offset <= w[1].start_offset + 1e-9)
    );
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn audio_not_yet_on_the_cdn_is_retried_until_it_is() {
    let h = harness().await;
    let fetcher = start(h.config());
    let entry = h
        .announce(CallSpec {
            audio_lag: Some(Duration::from_millis(1500)),
            ..CallSpec::default()
        })
        .await;
    h.expect_audio(std::slice::from_ref(&entry)).await;
    assert!(
        fetcher.metric(
            "bcfy_audio_fetcher_retries_total",
            Some(("kind", "cdn_not_found"))
        ) >= 1.0
    );
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn truncated_and_slow_bodies_still_give_exact_audio() {
    let h = harness().await;
    let fetcher = start(h.config());
    h.sim
        .inject(Route::Audio, Fault::TruncateAudio { after_bytes: 3000 });
    let cut = h
        .announce(CallSpec {
            clip: Some(9),
            ..CallSpec::default()
        })
        .await;
    h.expect_audio(std::slice::from_ref(&cut)).await;

    // Cut more often than one download resumes: that download fails and is retried later.
    h.sim
        .inject_times(Route::Audio, Fault::TruncateAudio { after_bytes: 500 }, 4);
    let cut_often = h
        .announce(CallSpec {
            clip: Some(1),
            ..CallSpec::default()
        })
        .await;
    h.expect_audio(&[cut.clone(), cut_often.clone()]).await;
    let truncated = Some(("kind", "audio_truncated"));
    assert!(fetcher.metric("bcfy_audio_fetcher_retries_total", truncated) >= 1.0);

    let slowly = Fault::SlowBody {
        chunk: 2048,
        pause: Duration::from_millis(30),
    };
    h.sim.inject(Route::Audio, slowly);
    let slow = h
        .announce(CallSpec {
            clip: Some(2),
            ..CallSpec::default()
        })
        .await;
    h.expect_audio(&[cut, cut_often, slow]).await;
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn a_kill_mid_download_is_redelivered_without_a_duplicate() {
    let h = harness().await;
    let mut config = h.config();
    config.audio.chunk_bytes = ByteSize(4096);
    let first = start(config.clone());
    // A slow body (40 kB at 20 kB/s): the fetcher is killed after its first pieces were
    // published.
    h.sim.inject(
        Route::Audio,
        Fault::SlowBody {
            chunk: 1024,
            pause: Duration::from_millis(50),
        },
    );
    let entry = h
        .announce(CallSpec {
            clip: Some(0),
            audio_bytes_at_least: Some(40_000),
            ..CallSpec::default()
        })
        .await;
    eventually(PATIENCE, "the first pieces to be published", || async {
        h.audio()
            .await
            .get(&entry.key)
            .is_some_and(|call| call.chunks.len() >= 2)
            .then_some(())
    })
    .await;
    first.kill();
    let partial = h.audio().await;
    assert!(
        !partial[&entry.key].chunks.iter().any(|c| c.r#final),
        "a partial download never has a final piece"
    );
    let second = start(config);
    // Redelivered and fetched again: the pieces published before the kill are deduplicated
    // (`audio()` panics on a repeated piece) and the whole file is exact.
    let audio = h.expect_audio(std::slice::from_ref(&entry)).await;
    assert_eq!(
        audio[&entry.key].chunks.len(),
        entry.audio_bytes.div_ceil(4096)
    );
    second.stop().await.unwrap();
}

#[tokio::test]
async fn two_replicas_share_the_work() {
    let h = harness().await;
    let mut config = h.config();
    config.audio.max_concurrency = 2;
    let replicas = [start(config.clone()), start(config)];
    let mut entries = Vec::new();
    for _ in 0..20 {
        h.sim
            .inject(Route::Audio, Fault::Slow(Duration::from_millis(50)));
        entries.push(h.announce(CallSpec::default()).await);
    }
    h.expect_audio(&entries).await;
    let done: Vec<f64> = replicas
        .iter()
        .map(|r| {
            r.metric(
                "bcfy_audio_fetcher_downloads_total",
                Some(("outcome", "ok")),
            )
        })
        .collect();
    assert_eq!(done.iter().sum::<f64>(), 20.0);
    assert!(
        done.iter().all(|n| *n > 0.0),
        "both replicas downloaded: {done:?}"
    );
    for replica in replicas {
        replica.stop().await.unwrap();
    }
}

#[tokio::test]
async fn downloads_pause_while_the_transcriber_lags() {
    let h = harness().await;
    let mut config = h.config();
    config.audio.transcription_enabled = true;
    config.audio.transcriber_backlog_threshold = 2;
    let (transcriber, _) = ensure_consumer(&h.js, &ConsumerSpec::transcriber(64))
        .await
        .unwrap();
    let fetcher = start(config);
    let mut entries = Vec::new();
    for clip in 0..3 {
        entries.push(
            h.announce(CallSpec {
                clip: Some(clip),
                ..CallSpec::default()
            })
            .await,
        );
    }
    h.expect_audio(&entries).await;
    eventually(PATIENCE, "the fetcher to see the backlog", || async {
        (fetcher.metric("bcfy_audio_fetcher_transcriber_backlog", None) >= 3.0).then_some(())
    })
    .await;

    let held_back = h
        .announce(CallSpec {
            clip: Some(3),
            ..CallSpec::default()
        })
        .await;
    eventually(PATIENCE, "downloads to pause", || async {
        (fetcher.metric("bcfy_audio_fetcher_backpressure_pauses_total", None) >= 2.0).then_some(())
    })
    .await;
    assert_eq!(
        h.audio().await.len(),
        3,
        "nothing downloaded while the transcriber lags"
    );

    // The transcriber catches up: the held-back call is fetched.
    let mut messages = transcriber
        .fetch()
        .max_messages(3)
        .messages()
        .await
        .unwrap();
    while let Some(message) = messages.next().await {
        message.unwrap().ack().await.unwrap();
    }
    entries.push(held_back);
    h.expect_audio(&entries).await;
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn dead_letters_carry_the_reason() {
    let h = harness().await;
    let mut config = h.config();
    config.audio.not_found_max_age = Duration::from_secs(1);
    let fetcher = start(config);
    // A permanent CDN refusal (first, so no other download takes the injected answer).
    h.sim.inject(
        Route::Audio,
        Fault::Status {
            status: 410,
            retry_after: None,
        },
    );
    let gone = h.announce(CallSpec::default()).await;
    eventually(PATIENCE, "the first dead letter", || async {
        (fetcher.metric("bcfy_audio_fetcher_dead_letters_total", None) >= 1.0).then_some(())
    })
    .await;
    // Never on the CDN within the max age.
    let missing = h
        .announce(CallSpec {
            audio_lag: Some(Duration::from_secs(3600)),
            ..CallSpec::default()
        })
        .await;
    // Poison on the live subject.
    h.js.publish("calls.live.7001.2345", vec![0xde, 0xad].into())
        .await
        .unwrap()
        .await
        .unwrap();

    let letters = eventually(PATIENCE, "three dead letters", || async {
        let letters = h.dead_letters().await;
        (letters.len() >= 3).then_some(letters)
    })
    .await;
    let by_kind: BTreeMap<&str, &DeadLetter> =
        letters.iter().map(|l| (l.error_kind.as_str(), l)).collect();
    assert_eq!(
        by_kind.keys().copied().collect::<Vec<_>>(),
        ["cdn_not_found", "http_status", "poison"]
    );
    assert_eq!(by_kind["cdn_not_found"].call_id, missing.key);
    assert!(
        by_kind["cdn_not_found"].reason.contains("404"),
        "{}",
        by_kind["cdn_not_found"].reason
    );
    assert!(by_kind["cdn_not_found"].attempts >= 2);
    assert_eq!(by_kind["http_status"].call_id, gone.key);
    assert!(
        by_kind["http_status"].reason.contains("410"),
        "{}",
        by_kind["http_status"].reason
    );
    assert_eq!(by_kind["poison"].original_payload, vec![0xde, 0xad]);
    assert!(letters.iter().all(|l| l.stage == "audio-fetcher"));
    assert!(h.audio().await.is_empty());
    assert_eq!(
        fetcher.metric("bcfy_audio_fetcher_dead_letters_total", None),
        3.0
    );
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn a_cdn_refusing_every_download_pauses_the_fetcher_and_loses_no_call() {
    let h = harness().await;
    let fetcher = start(h.config());
    h.sim.inject_times(
        Route::Audio,
        Fault::Status {
            status: 403,
            retry_after: None,
        },
        12,
    );
    let mut entries = Vec::new();
    for clip in 0..6 {
        entries.push(
            h.announce(CallSpec {
                clip: Some(clip),
                ..CallSpec::default()
            })
            .await,
        );
    }
    eventually(PATIENCE, "the fetcher to pause", || async {
        (fetcher.metric("bcfy_audio_fetcher_refused", None) == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        fetcher.readiness().waiting_on(),
        ["cdn"],
        "paused is not ready"
    );
    let audio = h.expect_audio(&entries).await;
    assert_eq!(audio.len(), entries.len(), "every call, once");
    assert!(h.dead_letters().await.is_empty(), "none given up");
    assert_eq!(fetcher.metric("bcfy_audio_fetcher_refused", None), 0.0);
    assert!(fetcher.readiness().is_ready(), "resumed on its own");
    assert_eq!(
        fetcher.metric("bcfy_audio_fetcher_refusal_pauses_total", None),
        1.0
    );
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_the_cdn_refuses_while_serving_others_is_dead_lettered_as_cdn_refused() {
    let h = harness().await;
    let mut config = h.config();
    config.audio.refusals_to_pause = 2;
    // The refused call comes back after 2 s: time for another call to succeed in between.
    config.audio.retry_initial_delay = Duration::from_secs(2);
    config.audio.retry_max_delay = Duration::from_secs(2);
    let fetcher = start(config);
    let refused = Fault::Status {
        status: 403,
        retry_after: None,
    };
    h.sim.inject(Route::Audio, refused.clone());
    let alone = h.announce(CallSpec::default()).await;
    eventually(PATIENCE, "the first refusal", || async {
        (fetcher.metric(
            "bcfy_audio_fetcher_retries_total",
            Some(("kind", "cdn_refused")),
        ) >= 1.0)
            .then_some(())
    })
    .await;
    let served = h
        .announce(CallSpec {
            clip: Some(1),
            ..CallSpec::default()
        })
        .await;
    h.expect_audio(std::slice::from_ref(&served)).await;
    h.sim.inject(Route::Audio, refused);
    let letters = eventually(PATIENCE, "the dead letter", || async {
        let letters = h.dead_letters().await;
        (!letters.is_empty()).then_some(letters)
    })
    .await;
    assert_eq!(letters[0].error_kind, "cdn_refused");
    assert_eq!(letters[0].call_id, alone.key);
    assert_eq!(letters[0].attempts, 2);
    assert_eq!(
        fetcher.metric("bcfy_audio_fetcher_refusal_pauses_total", None),
        0.0,
        "one call refused is not the CDN refusing the fetcher"
    );
    fetcher.stop().await.unwrap();
}

#[tokio::test]
async fn a_redriven_call_whose_audio_is_stored_is_not_downloaded_again() {
    let h = harness().await;
    let fetcher = start(h.config());
    let entry = h.announce(CallSpec::default()).await;
    h.expect_audio(std::slice::from_ref(&entry)).await;
    let downloads = h.sim.requests().len();

    // The live message again, as `bcfy-deadletters redrive` sends it.
    let live = subject::live(bcfy_bus::Shard {
        sid: FIRE.0,
        tg: FIRE.1,
    });
    let original = bcfy_bus::stored::messages_on(&h.js, STREAM_CALLS_LIVE, &live)
        .await
        .unwrap()
        .remove(0);
    let mut headers = original.headers.clone().unwrap_or_default();
    headers.insert(bcfy_bus::redrive::HEADER, "1");
    headers.insert(async_nats::header::NATS_MESSAGE_ID, "redrive-1");
    h.js.publish_with_headers(live, headers, original.payload.clone())
        .await
        .unwrap()
        .await
        .unwrap();
    eventually(PATIENCE, "the fetcher to settle the copy", || async {
        let mut consumer =
            h.js.get_stream(STREAM_CALLS_LIVE)
                .await
                .ok()?
                .get_consumer::<jetstream::consumer::pull::Config>(CONSUMER_AUDIO_FETCHER)
                .await
                .ok()?;
        let info = consumer.info().await.ok()?;
        let settled = info.num_pending == 0
            && info.num_ack_pending == 0
            && info.delivered.stream_sequence == 2;
        settled.then_some(())
    })
    .await;
    assert_eq!(h.sim.requests().len(), downloads, "no second download");
    assert_eq!(
        fetcher.metric(
            "bcfy_audio_fetcher_downloads_total",
            Some(("outcome", "ok"))
        ),
        1.0
    );
    fetcher.stop().await.unwrap();
}
