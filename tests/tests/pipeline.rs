//! The four services' binaries, as processes, against a real nats-server and bcfy-sim: every
//! call the simulator makes available ends as exactly one `transcription.complete` whose text is
//! close to the clip's reference, and the archive cache returns the calls the live path saw.

use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_e2e::Service;
use bcfy_proto::archive_service_client::ArchiveServiceClient;
use bcfy_proto::{GetArchivedCallsRequest, TranscriptionResult};
use bcfy_simulator::{CallSpec, SimConfig, Simulator};
use bcfy_test_support::speech::{model_cache_dir, tiny_en_model_dir, word_error_rate};
use bcfy_test_support::{NatsServer, eventually};
use prost::Message as _;

const SID: i64 = 7001;
const TG: i64 = 2345;
/// Building the binaries (if needed), loading the model, and ~1–4 s per call on 2 cores.
const PATIENCE: Duration = Duration::from_secs(300);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn site(sim: &Simulator, with_account: bool) -> String {
    let url = sim.url();
    let account = if with_account {
        format!(
            "  username: {}\n  password: {}\n",
            sim.config().username,
            sim.config().password
        )
    } else {
        String::new()
    };
    format!(
        "broadcastify:\n  base_url: {url}\n  cdn_url: {url}\n  alternate_cdn_url: {url}\n{account}"
    )
}

#[tokio::test]
async fn every_call_becomes_exactly_one_transcript_and_the_archive_agrees() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let clips = [0usize, 3, 4, 11];
    let calls: Vec<_> = clips
        .iter()
        .enumerate()
        .map(|(i, clip)| {
            sim.add_call(CallSpec {
                talkgroup: Some((SID, TG)),
                clip: Some(*clip),
                ts: Some(now - 60 + i as i64),
                ..CallSpec::default()
            })
        })
        .collect();

    let dir = tempfile::tempdir().expect("temp dir");
    let common = |admin: u16| {
        format!(
            "nats:\n  urls: [\"{}\"]\nadmin:\n  listen_addr: 127.0.0.1:{admin}\nlog:\n  filter: info\n",
            nats.url()
        )
    };
    let grpc = free_port();
    let _services = [
        Service::start(
            "poller",
            &format!(
                "{}{}live_producer:\n  poll_interval: 1s\nshards:\n  - name: fire\n    groups: [\"{SID}-{TG}\"]\n",
                common(free_port()),
                site(&sim, true)
            ),
            dir.path(),
        ),
        Service::start(
            "audio-fetcher",
            &format!("{}{}", common(free_port()), site(&sim, false)),
            dir.path(),
        ),
        Service::start(
            "transcriber",
            &format!(
                "{}transcription:\n  provider: whisper\n  model: tiny.en\n  max_concurrency: 1\n  whisper:\n    model_path: {}\n    model_cache_dir: {}\n    threads: 2\n",
                common(free_port()),
                tiny_en_model_dir().display(),
                model_cache_dir().display()
            ),
            dir.path(),
        ),
        Service::start(
            "archive-cache",
            &format!(
                "{}{}grpc:\n  listen_addr: 127.0.0.1:{grpc}\n",
                common(free_port()),
                site(&sim, true)
            ),
            dir.path(),
        ),
    ];

    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let transcripts = eventually(PATIENCE, "a transcript per call", || async {
        let mut stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.ok()?;
        let stored = stream.info().await.ok()?.state.messages;
        (stored >= calls.len() as u64).then_some(stream)
    })
    .await;
    // Nothing more arrives once every call has its transcript.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let last = transcripts
        .get_info()
        .await
        .expect("info")
        .state
        .last_sequence;
    let mut results = Vec::new();
    for sequence in 1..=last {
        let message = transcripts.get_raw_message(sequence).await.expect("stored");
        results.push(TranscriptionResult::decode(message.payload).expect("a TranscriptionResult"));
    }
    assert_eq!(
        results.len(),
        calls.len(),
        "exactly one transcript per call"
    );
    let mut total = 0.0;
    for call in &calls {
        let result = results
            .iter()
            .find(|r| r.call_id == call.key)
            .unwrap_or_else(|| panic!("no transcript for {}", call.key));
        let wer = word_error_rate(call.reference_text, &result.text);
        eprintln!("{} WER {wer:.2}: {}", call.clip, result.text);
        total += wer;
    }
    let mean = total / calls.len() as f64;
    eprintln!("mean WER {mean:.3} over {} calls", calls.len());
    assert!(mean <= 0.45, "mean WER {mean:.3}");

    let mut archive = eventually(PATIENCE, "the archive cache", || async {
        ArchiveServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
            .await
            .ok()
    })
    .await;
    let block = archive
        .get_archived_calls(GetArchivedCallsRequest {
            sid: SID,
            talkgroup: TG,
            time: calls[0].start,
        })
        .await
        .expect("the block")
        .into_inner()
        .result
        .expect("a result");
    let archived: Vec<String> = block
        .calls
        .iter()
        .map(|c| {
            format!(
                "{}-{}-{}",
                c.system_id.unwrap_or_default(),
                c.filename.clone().unwrap_or_default(),
                c.hash.clone().unwrap_or_default()
            )
        })
        .collect();
    for call in calls
        .iter()
        .filter(|c| c.start - c.start.rem_euclid(1800) == block.window.unwrap_or_default().start)
    {
        assert!(
            archived.contains(&call.key),
            "{} missing from the archive: {archived:?}",
            call.key
        );
    }
}
