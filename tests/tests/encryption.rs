//! JetStream encryption at rest, shown on the store's files: the pipeline (poller, audio
//! fetcher, transcriber) runs against a nats-server started with the shipped
//! `deploy/nats-server.conf` and a key in `JETSTREAM_KEY`, then every file under the store directory is searched for
//! the Broadcastify session cookie, a transcript's text and a call's audio bytes, as read back
//! through NATS. None is there. The same run without a key finds all three, so the search itself
//! is shown to work.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::topology::{KV_UPSTREAM_SESSION, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS};
use bcfy_e2e::Service;
use bcfy_e2e::yaml::{common, poller, site};
use bcfy_proto::{AudioPayloadEvent, TranscriptionResult};
use bcfy_simulator::{CallSpec, SimConfig, Simulator};
use bcfy_test_support::stt::{FakeStt, Options};
use bcfy_test_support::{NatsServer, eventually};
use futures::StreamExt as _;
use prost::Message as _;

const PATIENCE: Duration = Duration::from_secs(60);
const SID: i64 = 7001;
const TG: i64 = 2345;
const CALLS: u64 = 3;
/// A 256-bit key as a deployment would supply it (64 hex digits).
const KEY: &str = "6f1c2a9e4b7d3f0a8c5e2b9d6a3f1c7e0b4d8a2f6c9e3b7d1a5f8c2e6b0d4a93";

/// What was stored, read back through NATS (so decrypted when the store is encrypted).
struct Needles {
    cookie: Vec<u8>,
    transcript: Vec<u8>,
    audio: Vec<u8>,
}

/// The shipped nats-server config, which turns encryption on with `$JETSTREAM_KEY`.
fn shipped_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats-server.conf");
    path.to_str().expect("UTF-8").to_owned()
}

/// Runs three calls through the pipeline and returns what NATS holds of them.
async fn run_pipeline(nats: &NatsServer, dir: &Path) -> Needles {
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    for n in 0..CALLS {
        sim.add_call(CallSpec {
            talkgroup: Some((SID, TG)),
            clip: Some(n as usize),
            ts: Some(now - 30 + n as i64),
            ..CallSpec::default()
        });
    }
    let stt = FakeStt::start(Options::default()).await;
    let _services = [
        Service::start("poller", &poller(&nats.url(), &sim, SID, TG), dir),
        Service::start(
            "audio-fetcher",
            &format!("{}{}", common(&nats.url(), "info"), site(&sim, false)),
            dir,
        ),
        Service::start(
            "transcriber",
            &format!(
                "{}transcription:\n  provider: openai\n  endpoint_url: {}\n",
                common(&nats.url(), "info"),
                stt.url()
            ),
            dir,
        ),
    ];
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    eventually(PATIENCE, "every call transcribed", || async {
        // The services create the streams when they start.
        let mut stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.ok()?;
        (stream.info().await.ok()?.state.messages >= CALLS).then_some(())
    })
    .await;
    let sessions = js
        .get_key_value(KV_UPSTREAM_SESSION)
        .await
        .expect("the session bucket");
    let mut keys = sessions.keys().await.expect("keys");
    let key = keys.next().await.expect("a session").expect("a key");
    let cookie = sessions
        .get(&key)
        .await
        .expect("read")
        .expect("a value")
        .to_vec();
    let transcripts = js.get_stream(STREAM_TRANSCRIPTIONS).await.expect("stream");
    let stored = transcripts.get_raw_message(1).await.expect("a transcript");
    let transcript = TranscriptionResult::decode(stored.payload)
        .expect("a transcript")
        .text
        .into_bytes();
    let audio_stream = js.get_stream(STREAM_CALLS_AUDIO).await.expect("stream");
    let stored = audio_stream.get_raw_message(1).await.expect("audio");
    let payload = AudioPayloadEvent::decode(stored.payload)
        .expect("audio")
        .payload;
    let middle = payload.len() / 2;
    let audio = payload[middle..middle + 48].to_vec();
    Needles {
        cookie,
        transcript,
        audio,
    }
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("a directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes));
            }
        }
    }
    found
}

/// Which of the needles some file of the store holds in clear.
fn in_clear(store: &Path, needles: &Needles) -> Vec<&'static str> {
    let files = files_under(store);
    assert!(!files.is_empty(), "the store holds files");
    let holds = |needle: &[u8]| {
        assert!(needle.len() >= 16, "a needle long enough to mean something");
        files
            .iter()
            .any(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
    };
    [
        ("session cookie", &needles.cookie),
        ("transcript", &needles.transcript),
        ("audio", &needles.audio),
    ]
    .into_iter()
    .filter(|(_, needle)| holds(needle))
    .map(|(name, _)| name)
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_store_holds_no_cookie_transcript_or_audio_in_clear() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nats =
        NatsServer::start_with_env(&["-c", &shipped_config()], &[("JETSTREAM_KEY", KEY)]).await;
    let needles = run_pipeline(&nats, dir.path()).await;
    // Stopped without a chance to tidy up, as a copied disk or a crash would leave it.
    nats.kill();
    assert_eq!(in_clear(&nats.store_dir(), &needles), Vec::<&str>::new());

    // The control: without the key, the same run leaves all three readable.
    let plain_dir = tempfile::tempdir().expect("temp dir");
    let mut plain = NatsServer::start().await;
    let needles = run_pipeline(&plain, plain_dir.path()).await;
    plain.kill();
    assert_eq!(
        in_clear(&plain.store_dir(), &needles),
        ["session cookie", "transcript", "audio"]
    );
}

/// A rotation's config: the new key, and the previous one to read what it wrote.
const ROTATION_CONFIG: &str = "jetstream {\n  max_file_store: 1TB\n  cipher: chachapoly\n  key: $JETSTREAM_KEY\n  prev_key: $JETSTREAM_PREVIOUS_KEY\n}\n";
const NEW_KEY: &str = "0d7b3e91a4c62f58e1b09d7a3c5f2e8b6a4d1c9f7e3b5a2d8c6f0e4b1a7d3c95";

/// The messages of stream `TEST`, or `None` when the server cannot open it.
async fn stored_messages(nats: &NatsServer) -> Option<Vec<Vec<u8>>> {
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let mut stream = js.get_stream("TEST").await.ok()?;
    let count = stream.info().await.ok()?.state.messages;
    let mut messages = Vec::new();
    for sequence in 1..=count {
        messages.push(
            stream
                .get_raw_message(sequence)
                .await
                .ok()?
                .payload
                .to_vec(),
        );
    }
    Some(messages)
}

#[tokio::test]
async fn the_key_is_rotated_by_one_restart_with_the_previous_key_beside_it() {
    let secret = b"a transcript nobody should read off the disk".to_vec();
    let mut nats =
        NatsServer::start_with_env(&["-c", &shipped_config()], &[("JETSTREAM_KEY", KEY)]).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    js.create_stream(jetstream::stream::Config {
        name: "TEST".to_owned(),
        subjects: vec!["test.>".to_owned()],
        ..Default::default()
    })
    .await
    .expect("a stream");
    js.publish("test.1", secret.clone().into())
        .await
        .expect("sent")
        .await
        .expect("stored");
    nats.kill();

    // One restart with the new key and the previous one re-encrypts under the new key.
    let dir = tempfile::tempdir().expect("temp dir");
    let rotation = dir.path().join("rotation.conf");
    std::fs::write(&rotation, ROTATION_CONFIG).expect("written");
    nats.reconfigure(
        &["-c", rotation.to_str().expect("UTF-8")],
        &[("JETSTREAM_KEY", NEW_KEY), ("JETSTREAM_PREVIOUS_KEY", KEY)],
    );
    nats.start_again().await;
    assert_eq!(stored_messages(&nats).await, Some(vec![secret.clone()]));
    // Stopped cleanly, so the stream's files are all under the new key.
    nats.stop();

    // From then on the new key alone opens it, and the old one no longer does.
    nats.reconfigure(&["-c", &shipped_config()], &[("JETSTREAM_KEY", NEW_KEY)]);
    nats.start_again().await;
    assert_eq!(stored_messages(&nats).await, Some(vec![secret.clone()]));
    nats.kill();
    let files = files_under(&nats.store_dir());
    assert!(
        !files
            .iter()
            .any(|(_, bytes)| bytes.windows(secret.len()).any(|w| w == secret.as_slice())),
        "nothing in clear"
    );
    // The old key: the server runs (it answers JetStream requests) but cannot open the stream,
    // and says so in its health check.
    nats.reconfigure(&["-c", &shipped_config()], &[("JETSTREAM_KEY", KEY)]);
    nats.start_again_unchecked();
    let js = eventually(Duration::from_secs(30), "JetStream to answer", || async {
        let js = jetstream::new(async_nats::connect(nats.url()).await.ok()?);
        js.query_account().await.ok()?;
        Some(js)
    })
    .await;
    assert!(
        js.get_stream("TEST").await.is_err(),
        "the old key opens nothing"
    );
}
