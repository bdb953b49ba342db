//! The pieces of the fault runs (one nats-server, and a JetStream cluster): the simulator with
//! its faults on, the four pipeline services with consumer timings short enough that a killed
//! replica's calls come back within seconds, one of every upstream fault on demand, a steady
//! feed of calls, and what the streams hold at the end.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::topology::{STREAM_CALLS_LIVE, STREAM_DEAD_LETTERS, STREAM_TRANSCRIPTIONS};
use bcfy_proto::{DeadLetter, LiveCallEnvelope, TranscriptionResult};
use bcfy_simulator::{
    CallSpec, Fault, FaultRates, LedgerEntry, RetryAfter, Route, SimConfig, Simulator,
};
use bcfy_test_support::stt::{FakeStt, Options, transcript_for_sha256};
use tokio::task::JoinHandle;

use crate::yaml::{common, site};

/// The STT key the fake endpoint expects (and no log may show).
pub const STT_KEY: &str = "sk-fault-run-secret-4711";
/// The bound: everything delivered within this long of the last recovery.
pub const DELIVERY_BOUND: Duration = Duration::from_secs(60);
/// New calls while the faults run, one per tick.
const CALL_EVERY: Duration = Duration::from_millis(300);
/// How long a killed service stays down.
pub const DOWN_FOR: Duration = Duration::from_secs(2);
/// Time between one kill and the next.
pub const BETWEEN_FAULTS: Duration = Duration::from_secs(8);

/// The simulator with its faults on and the fake STT failing one request in seven.
pub async fn start_upstreams() -> (Arc<Simulator>, FakeStt) {
    let sim = Arc::new(
        Simulator::start(simulator_config())
            .await
            .expect("bcfy-sim"),
    );
    let stt = FakeStt::start(Options {
        key: Some(STT_KEY.to_owned()),
        failure_every: 7,
        record: false,
    })
    .await;
    (sim, stt)
}

/// Feeds the simulator a call every [`CALL_EVERY`] (see [`feed`]) until aborted.
pub fn spawn_feeder(sim: &Arc<Simulator>) -> JoinHandle<()> {
    let sim = Arc::clone(sim);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(CALL_EVERY);
        for n in 0.. {
            tick.tick().await;
            feed(&sim, n);
        }
    })
}

/// Two systems of three talkgroups, every upstream fault at 3 % (5 % cut and slow audio).
fn simulator_config() -> SimConfig {
    let mut config = SimConfig::for_tests();
    config.systems = 2;
    config.talkgroups_per_system = 3;
    config.faults = FaultRates {
        truncate_audio_rate: 0.05,
        slow_audio_rate: 0.05,
        ..FaultRates::every(0.03)
    };
    config
}

/// Consumer timings short enough that a killed replica's calls come back within seconds, and a
/// block claim that a killed archive cache (or a NATS restart) leaves behind lapses as soon.
/// `nats` is one server URL or several, comma-separated; `extra` (top-level settings such as
/// `topology:`) goes into every config.
pub fn service_configs(
    nats: &str,
    sim: &Simulator,
    stt: &FakeStt,
    grpc: u16,
    extra: &str,
) -> [(&'static str, String); 4] {
    let groups = |sid: i64| {
        sim.world()
            .talkgroups
            .iter()
            .filter(|t| t.sid == sid)
            .map(|t| format!("\"{}-{}\"", t.sid, t.tg))
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        (
            "poller",
            format!(
                "{}{extra}{}live_producer:\n  poll_interval: 1s\n  max_backoff: 4s\n  look_back_interval: 5s\nshards:\n  - name: a\n    groups: [{}]\n  - name: b\n    groups: [{}]\n",
                common(nats, "info"),
                site(sim, true),
                groups(7001),
                groups(7002)
            ),
        ),
        (
            "audio-fetcher",
            format!(
                "{}{extra}{}audio:\n  ack_wait: 5s\n  not_found_initial_delay: 500ms\n  not_found_max_delay: 2s\n  retry_initial_delay: 500ms\n  retry_max_delay: 3s\n",
                common(nats, "info"),
                site(sim, false)
            ),
        ),
        (
            "transcriber",
            format!(
                "{}{extra}transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {STT_KEY}\n  max_concurrency: 4\n  request_timeout: 5s\nconsumer:\n  ack_wait: 5s\n  retry_initial_delay: 500ms\n  retry_max_delay: 3s\n  provider_backoff_initial: 1s\n  provider_backoff_max: 3s\n",
                common(nats, "info"),
                stt.url()
            ),
        ),
        (
            "archive-cache",
            format!(
                "{}{extra}{}grpc:\n  listen_addr: 127.0.0.1:{grpc}\ncache:\n  claim_ttl: 5s\n",
                common(nats, "info"),
                site(sim, true)
            ),
        ),
    ]
}

/// Queues one of each fault for the next requests to each route.
pub fn script_every_fault(sim: &Simulator) {
    let second = Duration::from_secs(1);
    let retry_after = || Some(RetryAfter::Seconds(1));
    let faults = [
        (
            Route::LiveCalls,
            Fault::Status {
                status: 429,
                retry_after: retry_after(),
            },
        ),
        (
            Route::LiveCalls,
            Fault::Status {
                status: 502,
                retry_after: None,
            },
        ),
        (
            Route::LiveCalls,
            Fault::SlowStatus {
                status: 504,
                after: second,
            },
        ),
        (Route::LiveCalls, Fault::ExpireSession),
        (Route::LiveCalls, Fault::Slow(second)),
        (Route::LiveCalls, Fault::MalformedJson),
        (Route::LiveCalls, Fault::BadRecords),
        (Route::LiveCalls, Fault::Reset),
        (Route::Audio, Fault::NotFound),
        (
            Route::Audio,
            Fault::Status {
                status: 503,
                retry_after: retry_after(),
            },
        ),
        (
            Route::Audio,
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        ),
        (Route::Audio, Fault::TruncateAudio { after_bytes: 1024 }),
        (
            Route::Audio,
            Fault::SlowBody {
                chunk: 2048,
                pause: Duration::from_millis(50),
            },
        ),
        (Route::Audio, Fault::Slow(second)),
        (Route::Audio, Fault::Reset),
        (
            Route::Archive,
            Fault::Status {
                status: 503,
                retry_after: retry_after(),
            },
        ),
        (Route::Archive, Fault::MalformedJson),
        (Route::Archive, Fault::ExpireSession),
    ];
    for (route, fault) in faults {
        sim.inject(route, fault);
    }
}

/// Adds a call every tick until stopped: random talkgroup and clip, one in ten late by 15 s
/// (behind the poller's cursor), one in ten with audio that 404s for 3 s.
fn feed(sim: &Simulator, n: u64) {
    let talkgroups = &sim.world().talkgroups;
    let talkgroup = &talkgroups[(n as usize * 7) % talkgroups.len()];
    sim.add_call(CallSpec {
        talkgroup: Some((talkgroup.sid, talkgroup.tg)),
        clip: Some((n as usize * 5) % 12),
        late_by: (n % 10 == 3).then_some(Duration::from_secs(15)),
        audio_lag: (n % 10 == 7).then_some(Duration::from_secs(3)),
        ..CallSpec::default()
    });
}

/// Every stored message's payload in `stream`, decoded.
pub async fn stored<M: prost::Message + Default>(js: &jetstream::Context, stream: &str) -> Vec<M> {
    let mut stream = js.get_stream(stream).await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            messages.push(M::decode(message.payload).expect("decodes"));
        }
    }
    messages
}

/// `Some(count)` once `TRANSCRIPTIONS` holds at least one transcript per call of `ledger`.
pub async fn transcripts_of(js: &jetstream::Context, ledger: &[LedgerEntry]) -> Option<usize> {
    let count = js
        .get_stream(STREAM_TRANSCRIPTIONS)
        .await
        .ok()?
        .info()
        .await
        .ok()?
        .state
        .messages as usize;
    (count >= ledger.len()).then_some(count)
}

/// What the streams hold at the end of a run, per call of the simulator's ledger.
#[derive(Debug)]
pub struct Tally {
    /// Live events stored.
    pub live: Vec<LiveCallEnvelope>,
    /// Transcripts stored.
    pub transcripts: Vec<TranscriptionResult>,
    /// Dead letters stored.
    pub dead_letters: Vec<DeadLetter>,
    /// Calls of the ledger without a transcript.
    pub lost: Vec<String>,
    /// Calls with more than one live event or more than one transcript.
    pub doubled: usize,
}

impl Tally {
    /// Reads the streams (once the pipeline is idle, so a late duplicate cannot slip past).
    pub async fn read(js: &jetstream::Context, ledger: &[LedgerEntry]) -> Self {
        let live: Vec<LiveCallEnvelope> = stored(js, STREAM_CALLS_LIVE).await;
        let transcripts: Vec<TranscriptionResult> = stored(js, STREAM_TRANSCRIPTIONS).await;
        let dead_letters: Vec<DeadLetter> = stored(js, STREAM_DEAD_LETTERS).await;
        let mut live_per_call: BTreeMap<&str, usize> = BTreeMap::new();
        for event in &live {
            *live_per_call.entry(event.call_id.as_str()).or_default() += 1;
        }
        let mut transcripts_per_call: BTreeMap<&str, usize> = BTreeMap::new();
        for result in &transcripts {
            *transcripts_per_call
                .entry(result.call_id.as_str())
                .or_default() += 1;
        }
        let lost = ledger
            .iter()
            .filter(|c| !transcripts_per_call.contains_key(c.key.as_str()))
            .map(|c| c.key.clone())
            .collect();
        let doubled = transcripts_per_call.values().filter(|n| **n > 1).count()
            + live_per_call.values().filter(|n| **n > 1).count();
        Self {
            live,
            transcripts,
            dead_letters,
            lost,
            doubled,
        }
    }

    /// Every call of `ledger` has exactly one live event and exactly one transcript, of its own
    /// audio, and there is nothing else.
    ///
    /// # Panics
    ///
    /// When one is lost, doubled, foreign or transcribed from other audio.
    pub fn assert_each_call_once(&self, ledger: &[LedgerEntry]) {
        assert!(self.lost.is_empty(), "lost: {:?}", self.lost);
        assert_eq!(self.doubled, 0, "a call published or transcribed twice");
        assert_eq!(
            self.transcripts.len(),
            ledger.len(),
            "only the simulator's calls"
        );
        for call in ledger {
            let text = self
                .transcripts
                .iter()
                .find(|t| t.call_id == call.key)
                .map(|t| t.text.as_str());
            assert_eq!(
                text,
                Some(transcript_for_sha256(&call.audio_sha256).as_str()),
                "{} was transcribed from other audio",
                call.key
            );
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "live events {} · transcripts {} · lost {} · doubled {} · dead letters {}",
            self.live.len(),
            self.transcripts.len(),
            self.lost.len(),
            self.doubled,
            self.dead_letters.len()
        )
    }
}
