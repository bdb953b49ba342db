//! The six services' binaries, as processes, against a real nats-server and bcfy-sim: every
//! call the simulator makes available ends as exactly one `transcription.complete` whose text is
//! close to the clip's reference, each call is one OpenTelemetry trace across the six services
//! (exported over OTLP to a collector in this test), and the archive cache returns the calls the
//! live path saw. A two-tone page among them is not sent to the engine and comes out with
//! its tones, and each segment of a call with a `srcList` names its unit.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_e2e::Service;
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::yaml::{common, free_port, poller, site, whisper_transcriber};
use bcfy_proto::archive_service_client::ArchiveServiceClient;
use bcfy_proto::{GetArchivedCallsRequest, TranscriptionResult};
use bcfy_simulator::{CallSpec, SimConfig, Simulator, clips};
use bcfy_test_support::otlp::{Collector, ReceivedSpan};
use bcfy_test_support::speech::word_error_rate;
use bcfy_test_support::{NatsServer, eventually};
use prost::Message as _;

const SID: i64 = 7001;
const TG: i64 = 2345;
/// Building the binaries (if needed), loading the model, and ~1–4 s per call on 2 cores.
const PATIENCE: Duration = Duration::from_secs(300);

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
    // A two-tone page with no speech: gated, never sent to the engine, its tones reported.
    let page = sim.add_call(CallSpec {
        talkgroup: Some((SID, TG)),
        non_speech: Some(0),
        ts: Some(now - 50),
        ..CallSpec::default()
    });
    let page_clip = clips::non_speech()[0];

    let collector = Collector::start().await;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        // Spans leave each process within a fraction of a second instead of every 5 s.
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let grpc = free_port();
    let _services = [
        Service::start_with_env(
            "poller",
            &poller(&nats.url(), &sim, SID, TG),
            dir.path(),
            &otel,
        ),
        Service::start_with_env(
            "audio-fetcher",
            &format!("{}{}", common(&nats.url(), "info"), site(&sim, false)),
            dir.path(),
            &otel,
        ),
        Service::start_with_env(
            "transcriber",
            &whisper_transcriber(&nats.url()),
            dir.path(),
            &otel,
        ),
        Service::start_with_env(
            "gateway",
            &format!(
                "{}http:\n  listen_addr: 127.0.0.1:{}\n",
                common(&nats.url(), "info"),
                free_port()
            ),
            dir.path(),
            &otel,
        ),
        Service::start_with_env(
            "alerter",
            &format!(
                "{}rules:\n  - name: any-words\n    regex: \"\\\\w\"\n",
                common(&nats.url(), "info")
            ),
            dir.path(),
            &otel,
        ),
        Service::start_with_env(
            "archive-cache",
            &format!(
                "{}{}grpc:\n  listen_addr: 127.0.0.1:{grpc}\n",
                common(&nats.url(), "info"),
                site(&sim, true)
            ),
            dir.path(),
            &otel,
        ),
    ];

    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let transcripts = eventually(PATIENCE, "a transcript per call", || async {
        let mut stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.ok()?;
        let stored = stream.info().await.ok()?.state.messages;
        (stored > calls.len() as u64).then_some(stream)
    })
    .await;
    // Read only once nothing is left in flight, so a late duplicate cannot slip past.
    eventually(PATIENCE, "the pipeline to be idle", || async {
        pipeline_idle(&js).await.then_some(())
    })
    .await;
    let last = transcripts
        .get_info()
        .await
        .expect("info")
        .state
        .last_sequence;
    let mut results = Vec::new();
    // Each call's trace context, as the transcript carries it, for the archive lookups below.
    let mut traceparents = BTreeMap::new();
    for sequence in 1..=last {
        let message = transcripts.get_raw_message(sequence).await.expect("stored");
        let result = TranscriptionResult::decode(message.payload).expect("a TranscriptionResult");
        if let Some(traceparent) = message.headers.get("traceparent") {
            traceparents.insert(result.call_id.clone(), traceparent.as_str().to_owned());
        }
        results.push(result);
    }
    assert_eq!(
        results.len(),
        calls.len() + 1,
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
    for call in &calls {
        let result = results
            .iter()
            .find(|r| r.call_id == call.key)
            .expect("its transcript");
        let has_sources = result
            .call
            .as_ref()
            .and_then(|c| c.metadata.as_ref())
            .is_some_and(|m| !m.src_list.is_empty());
        if has_sources {
            assert!(
                result.segments.iter().all(|s| s.unit.is_some()),
                "{}: every segment names its unit: {:?}",
                call.clip,
                result.segments
            );
        }
    }
    let page_result = results
        .iter()
        .find(|r| r.call_id == page.key)
        .expect("the page's transcript");
    assert_eq!(page_result.text, "");
    assert_eq!(page_result.no_text_reason, "tones_only");
    // `two_tone {A} {B}`
    let frequencies: Vec<f64> = page_clip
        .holds
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("a frequency"))
        .collect();
    let (a, b) = (frequencies[0], frequencies[1]);
    assert!(
        page_result
            .tones
            .iter()
            .any(|t| (t.frequency_hz - a).abs() <= 2.0 && (t.second_frequency_hz - b).abs() <= 2.0),
        "{:?}",
        page_result.tones
    );
    eprintln!("mean WER {mean:.3} over {} calls", calls.len());
    assert!(mean <= 0.45, "mean WER {mean:.3}");

    let mut archive = eventually(PATIENCE, "the archive cache", || async {
        ArchiveServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
            .await
            .ok()
    })
    .await;
    // Each call's block is asked for on the call's behalf (its traceparent in the metadata), as
    // a consumer enriching a transcript with its archive entry would.
    for call in &calls {
        let mut request = tonic::Request::new(GetArchivedCallsRequest {
            sid: SID,
            talkgroup: TG,
            time: call.start,
        });
        let traceparent = traceparents
            .get(&call.key)
            .unwrap_or_else(|| panic!("the transcript of {} has no traceparent", call.key));
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().expect("ASCII"));
        let block = archive
            .get_archived_calls(request)
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
        assert!(
            archived.contains(&call.key),
            "{} missing from its archive block: {archived:?}",
            call.key
        );
    }

    let keys: Vec<&str> = calls.iter().map(|c| c.key.as_str()).collect();
    let traces = eventually(
        PATIENCE,
        "one trace per call across the six services",
        || {
            let spans = collector.spans();
            let keys = keys.clone();
            async move { traces_per_call(&spans, &keys) }
        },
    )
    .await;
    let distinct: BTreeSet<&String> = traces.values().collect();
    assert_eq!(distinct.len(), calls.len(), "a trace of its own per call");
}

/// The trace id of each call, once every call's trace holds spans from all six services and
/// starts at the poller's `call` span for that call.
fn traces_per_call(spans: &[ReceivedSpan], keys: &[&str]) -> Option<BTreeMap<String, String>> {
    let mut traces = BTreeMap::new();
    for key in keys {
        let root = spans.iter().find(|s| {
            s.name == "call" && s.attributes.get("call_id").map(String::as_str) == Some(*key)
        })?;
        assert_eq!(root.service, "poller");
        assert!(root.parent_span_id.is_empty(), "the call span is a root");
        let services: BTreeSet<&str> = spans
            .iter()
            .filter(|s| s.trace_id == root.trace_id)
            .map(|s| s.service.as_str())
            .collect();
        if services != BTreeSet::from(bcfy_e2e::service::SERVICES) {
            return None;
        }
        traces.insert((*key).to_owned(), root.trace_id.clone());
    }
    Some(traces)
}
