//! Refusals and dead letters, with the transcriber and `bcfy-deadletters` as processes against a
//! real nats-server and an STT endpoint that can be made to refuse:
//!
//! - the provider refuses our key (401) for a minute while calls keep coming: the transcriber
//!   stops taking work (not ready, `…_refused` 1), probes, resumes on its own, and every call
//!   ends as exactly one transcript with nothing dead-lettered;
//! - the provider rejects every call (400, the call's fault as far as the transcriber can
//!   tell): each is dead-lettered; once the provider is fixed, `redrive --stage transcriber
//!   --kind stt_rejected`, killed part-way and run again, makes each end as exactly one
//!   transcript, each original sent through once; and a redriven call that is already
//!   transcribed (past every duplicate window) is acked without a second transcript.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{
    CONSUMER_TRANSCRIBER, KV_DEADLETTER_REDRIVES, STREAM_CALLS_AUDIO, STREAM_DEAD_LETTERS,
    STREAM_TRANSCRIPTIONS, StreamLimits, Topology, TopologyConfig,
};
use bcfy_bus::{CallId, Publisher, Shard, redrive, subject};
use bcfy_e2e::Service;
use bcfy_e2e::admin::metric;
use bcfy_e2e::yaml::free_port;
use bcfy_proto::{AudioPayloadEvent, TranscriptionResult};
use bcfy_test_support::nats::stream_messages;
use bcfy_test_support::stt::{FakeStt, Options, transcript_of};
use bcfy_test_support::{NatsServer, eventually};
use futures::StreamExt as _;
use prost::Message as _;
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

const KEY: &str = "sk-refusal-test";
const PATIENCE: Duration = Duration::from_secs(60);
/// Duplicate windows short enough to outwait: what stops a second transcript then is the
/// transcriber's own check, not JetStream's dedup.
const WINDOW: Duration = Duration::from_secs(2);

fn topology() -> TopologyConfig {
    let short = StreamLimits {
        duplicate_window: Some(WINDOW),
        ..StreamLimits::default()
    };
    TopologyConfig {
        calls_audio: short.clone(),
        transcriptions: short,
        ..TopologyConfig::default()
    }
}

struct Setup {
    nats: NatsServer,
    js: jetstream::Context,
    stt: FakeStt,
    transcriber: Service,
    admin: u16,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connects"));
    ensure_topology(&js, &Topology::new(topology()))
        .await
        .expect("topology");
    let stt = FakeStt::start(Options {
        key: Some(KEY.to_owned()),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let admin = free_port();
    let window = WINDOW.as_secs();
    let config = format!(
        "nats:\n  urls: [\"{}\"]\nadmin:\n  listen_addr: 127.0.0.1:{admin}\nlog:\n  filter: info\n\
         topology:\n  calls_audio:\n    duplicate_window: {window}s\n  transcriptions:\n    duplicate_window: {window}s\n\
         transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {KEY}\n  max_concurrency: 8\n  gating:\n    enabled: false\n\
         consumer:\n  ack_wait: 10s\n  retry_initial_delay: 200ms\n  retry_max_delay: 2s\n  provider_backoff_initial: 1s\n  provider_backoff_max: 8s\n",
        nats.url(),
        stt.url()
    );
    // The calls are made-up bytes (gating off): what is under test is the provider exchange.
    let transcriber = Service::start("transcriber", &config, dir.path());
    let setup = Setup {
        nats,
        js,
        stt,
        transcriber,
        admin,
        _dir: dir,
    };
    eventually(PATIENCE, "the transcriber to be ready", || setup.ready()).await;
    setup
}

impl Setup {
    async fn admin_get(&self, path: &str) -> Option<(StatusCode, String)> {
        let response = reqwest::get(format!("http://127.0.0.1:{}{path}", self.admin))
            .await
            .ok()?;
        let status = response.status();
        Some((status, response.text().await.ok()?))
    }

    async fn ready(&self) -> Option<()> {
        let (status, _) = self.admin_get("/readyz").await?;
        (status == StatusCode::OK).then_some(())
    }

    async fn refused_gauge(&self) -> Option<f64> {
        metric(self.admin, "bcfy_transcriber_refused").await
    }

    /// Publishes call `n`'s audio as one final chunk, as the audio fetcher does.
    async fn call(&self, n: u32) -> (String, Vec<u8>) {
        let call_id = format!("1502-{}-2345-refusal{n:04}", 1_767_225_600 + n);
        let id = CallId::parse(&call_id).expect("a call id");
        let audio = format!("audio of call {n}").into_bytes();
        let event = AudioPayloadEvent {
            call_id: call_id.clone(),
            r#final: true,
            total_size: audio.len() as u64,
            sha256: Sha256::digest(&audio)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            content_type: "audio/mpeg".to_owned(),
            payload: audio.clone().into(),
            ..AudioPayloadEvent::default()
        };
        let shard = Shard {
            sid: 7001,
            tg: 2345,
        };
        Publisher::new(self.js.clone())
            .publish(subject::audio(shard, &id), &format!("{call_id}-0"), &event)
            .await
            .expect("stored");
        (call_id, audio)
    }

    async fn count(&self, stream: &str) -> u64 {
        stream_messages(&self.js, stream).await
    }

    /// Transcripts by call id.
    async fn transcripts(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_call: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let stored = bcfy_bus::stored::messages_on(
            &self.js,
            STREAM_TRANSCRIPTIONS,
            "transcription.complete.>",
        )
        .await
        .expect("read");
        for message in stored {
            let result =
                TranscriptionResult::decode(message.payload.clone()).expect("a transcript");
            by_call.entry(result.call_id).or_default().push(result.text);
        }
        by_call
    }

    /// Every call transcribed exactly once, with its own audio's text.
    async fn expect_one_transcript_each(&self, calls: &[(String, Vec<u8>)]) {
        let want = calls.len() as u64;
        eventually(PATIENCE, "a transcript of every call", || async {
            (self.count(STREAM_TRANSCRIPTIONS).await >= want).then_some(())
        })
        .await;
        let transcripts = self.transcripts().await;
        assert_eq!(transcripts.len(), calls.len());
        for (call_id, audio) in calls {
            assert_eq!(
                transcripts.get(call_id),
                Some(&vec![transcript_of(audio)]),
                "{call_id}: exactly one, of its own audio"
            );
        }
    }

    /// True once the transcriber has settled everything it was given.
    async fn transcriber_idle(&self) -> Option<()> {
        let mut consumer = self
            .js
            .get_stream(STREAM_CALLS_AUDIO)
            .await
            .ok()?
            .get_consumer::<jetstream::consumer::pull::Config>(CONSUMER_TRANSCRIBER)
            .await
            .ok()?;
        let info = consumer.info().await.ok()?;
        (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
    }

    fn deadletters(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bcfy_e2e::service::binary("bcfy-deadletters"));
        command.arg("--nats").arg(self.nats.url()).args(args);
        command
    }

    /// `redrive --stage transcriber --kind stt_rejected` at `rate` a second.
    fn redrive_rejected(&self, rate: &str) -> Command {
        self.deadletters(&[
            "redrive",
            "--stage",
            "transcriber",
            "--kind",
            "stt_rejected",
            "--rate",
            rate,
        ])
    }
}

#[tokio::test]
async fn a_provider_refusing_our_key_for_a_minute_loses_no_call() {
    let s = setup().await;
    s.stt.set_refusing(Some(StatusCode::UNAUTHORIZED));
    let mut calls = Vec::new();
    // Five calls a second for a minute, while the key is refused.
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    for n in 0..300 {
        tick.tick().await;
        calls.push(s.call(n).await);
        if n == 25 {
            eventually(PATIENCE, "the transcriber to pause", || async {
                (s.refused_gauge().await? == 1.0).then_some(())
            })
            .await;
            let (status, body) = s.admin_get("/readyz").await.expect("admin answers");
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "paused is not ready"
            );
            assert!(body.contains("stt_provider"), "says why: {body}");
        }
    }
    let refused = s.stt.refused();
    eprintln!("the provider was asked {refused} times while it refused 300 calls");
    assert!(
        refused < 40,
        "it stopped taking work: {refused} requests for 300 calls in a minute"
    );
    assert_eq!(s.stt.requests(), 0);
    s.stt.set_refusing(None);

    s.expect_one_transcript_each(&calls).await;
    assert_eq!(
        s.count(STREAM_DEAD_LETTERS).await,
        0,
        "nothing dead-lettered"
    );
    eventually(PATIENCE, "ready again", || s.ready()).await;
    assert_eq!(s.refused_gauge().await, Some(0.0));
    let log = s.transcriber.log_text();
    assert!(
        log.contains("refuses this service") && log.contains("accepts this service again"),
        "a clear log line for each"
    );
}

#[tokio::test]
async fn dead_letters_redriven_after_the_fix_end_as_exactly_one_transcript_each() {
    let s = setup().await;
    // Rejected as bad audio: the transcriber cannot tell it from the call's own fault.
    s.stt.set_refusing(Some(StatusCode::BAD_REQUEST));
    let mut calls = Vec::new();
    for n in 0..12 {
        calls.push(s.call(n).await);
    }
    eventually(PATIENCE, "every call dead-lettered", || async {
        (s.count(STREAM_DEAD_LETTERS).await == 12).then_some(())
    })
    .await;
    s.stt.set_refusing(None);

    // A redrive at 3 a second, killed once a few are marked.
    let marks =
        s.js.get_key_value(KV_DEADLETTER_REDRIVES)
            .await
            .expect("the marks bucket");
    let mut slow = s
        .redrive_rejected("3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redrive starts");
    let marked = eventually(PATIENCE, "a few marked", || async {
        let count = marks.keys().await.ok()?.count().await;
        (count >= 3).then_some(count)
    })
    .await;
    slow.kill().expect("killed");
    slow.wait().expect("reaped");
    assert!(marked < 12, "killed part-way ({marked} marked)");

    let rest = s.redrive_rejected("50").output().expect("redrive runs");
    assert!(rest.status.success(), "{rest:?}");
    let summary = String::from_utf8_lossy(&rest.stderr);
    assert!(summary.contains("already redriven"), "{summary}");

    s.expect_one_transcript_each(&calls).await;
    for (call_id, _) in &calls {
        let subject = subject::audio(
            Shard {
                sid: 7001,
                tg: 2345,
            },
            &CallId::parse(call_id).expect("id"),
        );
        let stored = bcfy_bus::stored::messages_on(&s.js, STREAM_CALLS_AUDIO, &subject)
            .await
            .expect("read");
        let redriven = stored
            .iter()
            .filter(|message| redrive::count(message.headers.as_ref()) == 1)
            .count();
        assert_eq!(redriven, 1, "{call_id} sent through once");
    }
    assert_eq!(s.count(STREAM_DEAD_LETTERS).await, 12, "kept, marked");

    // Marks lost and every duplicate window past: the calls come through a third time, and
    // the transcriber sees their transcripts are stored already.
    let requests = s.stt.requests();
    let mut keys = marks.keys().await.expect("keys");
    while let Some(key) = keys.next().await {
        marks.purge(key.expect("a key")).await.expect("purged");
    }
    tokio::time::sleep(WINDOW + Duration::from_secs(1)).await;
    let again = s.redrive_rejected("50").output().expect("redrive runs");
    assert!(again.status.success(), "{again:?}");
    eventually(PATIENCE, "the transcriber to settle the copies", || {
        s.transcriber_idle()
    })
    .await;
    assert_eq!(
        s.count(STREAM_TRANSCRIPTIONS).await,
        12,
        "no second transcript"
    );
    assert_eq!(
        s.stt.requests(),
        requests,
        "the provider was not asked again"
    );
}
