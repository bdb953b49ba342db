//! The gateway as a process in front of the real pipeline (nats-server, bcfy-sim, poller, audio
//! fetcher, transcriber with an OpenAI-compatible endpoint, two gateway replicas): a client
//! that disconnects mid-run and reconnects to the other replica with `Last-Event-ID` ends up
//! with every event exactly once; keys and scopes hold on every route; audio is the exact bytes
//! with working ranges; bad input gets a 4xx with a JSON body; and every JSON answer matches
//! the OpenAPI document the gateway publishes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_e2e::Service;
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::yaml::{common, free_port, site};
use bcfy_simulator::{CallSpec, LedgerEntry, SimConfig, Simulator};
use bcfy_test_support::sse::{SseFrame, SseStream};
use bcfy_test_support::stt::{FakeStt, Options, transcript_for_sha256};
use bcfy_test_support::{NatsServer, eventually};
use futures::StreamExt as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const SID: i64 = 7001;
const TG: i64 = 2345;
const OTHER_TG: i64 = 2346;
const STT_KEY: &str = "stt-key";
const KEY_ALL: &str = "key-everything";
const KEY_NARROW: &str = "key-only-2345";
const KEY_TRICKLE: &str = "key-trickle";
/// Building the binaries (if needed) and the whole pipeline.
const PATIENCE: Duration = Duration::from_secs(180);

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn keys_file() -> String {
    format!(
        "keys:\n  - name: everything\n    sha256: {}\n  - name: engine-2345\n    sha256: {}\n    grant:\n      scope: [\"{SID}-{TG}\"]\n  - name: trickle\n    sha256: {}\n    grant:\n      rate_per_second: 0.1\n      burst: 1\n",
        sha256_hex(KEY_ALL.as_bytes()),
        sha256_hex(KEY_NARROW.as_bytes()),
        sha256_hex(KEY_TRICKLE.as_bytes()),
    )
}

/// Validates JSON answers against the gateway's own OpenAPI document.
struct Schemas {
    document: Value,
}

impl Schemas {
    fn check(&self, schema: &str, instance: &Value) {
        let mut root = self.document.clone();
        root["$ref"] = Value::String(format!("#/components/schemas/{schema}"));
        let validator = jsonschema::validator_for(&root).expect("the document is a schema");
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{schema}: {errors:?}\n{instance:#}");
    }
}

fn add(sim: &Simulator, tg: i64, clip: usize) -> LedgerEntry {
    sim.add_call(CallSpec {
        talkgroup: Some((SID, tg)),
        clip: Some(clip),
        ..CallSpec::default()
    })
}

/// Reads `stream` until `until` holds for a frame (which is kept), checking each against the
/// schema; the frames read.
async fn read_until(
    stream: &mut SseStream,
    schemas: &Schemas,
    mut until: impl FnMut(&SseFrame, &Value) -> bool,
) -> Vec<(SseFrame, Value)> {
    let mut frames = Vec::new();
    loop {
        let frame = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("events keep coming")
            .expect("the stream stays open");
        let json: Value = serde_json::from_str(&frame.data).expect("JSON data");
        schemas.check("Event", &json);
        assert_eq!(
            frame.id.as_deref(),
            json["id"].as_str(),
            "SSE id = the event's id"
        );
        assert_eq!(frame.event, json["kind"], "SSE event = the event's kind");
        let done = until(&frame, &json);
        frames.push((frame, json));
        if done {
            return frames;
        }
    }
}

fn kind_and_call(json: &Value) -> (String, String) {
    (
        json["kind"].as_str().expect("kind").to_owned(),
        json["call_id"].as_str().expect("call id").to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_pipeline_over_http() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let stt = FakeStt::start(Options {
        key: Some(STT_KEY.to_owned()),
        failure_every: 0,
        record: false,
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys.yaml");
    std::fs::write(&keys, keys_file()).expect("keys written");
    let otel_off = [("OTEL_SDK_DISABLED", "true")];
    let gateway_config = |port: u16| {
        format!(
            "{}http:\n  listen_addr: 127.0.0.1:{port}\n  heartbeat: 1s\nauth:\n  keys_file: {}\n",
            common(&nats.url(), "info"),
            keys.display()
        )
    };
    let (port_a, port_b) = (free_port(), free_port());
    let services = [
        Service::start_with_env(
            "poller",
            &format!(
                "{}{}live_producer:\n  poll_interval: 1s\nshards:\n  - name: county\n    groups: [\"{SID}-{TG}\", \"{SID}-{OTHER_TG}\"]\n",
                common(&nats.url(), "info"),
                site(&sim, true)
            ),
            dir.path(),
            &otel_off,
        ),
        Service::start_with_env(
            "audio-fetcher",
            &format!("{}{}", common(&nats.url(), "info"), site(&sim, false)),
            dir.path(),
            &otel_off,
        ),
        Service::start_with_env(
            "transcriber",
            &format!(
                "{}transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {STT_KEY}\n",
                common(&nats.url(), "info"),
                stt.url()
            ),
            dir.path(),
            &otel_off,
        ),
        Service::start_with_env("gateway", &gateway_config(port_a), dir.path(), &otel_off),
    ];
    // A second replica, with its own config and log file.
    let dir_b = tempfile::tempdir().expect("temp dir");
    let mut replica_b =
        Service::start_with_env("gateway", &gateway_config(port_b), dir_b.path(), &otel_off);
    let (a, b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let http = reqwest::Client::new();
    let document: Value = eventually(PATIENCE, "both gateways to answer", || async {
        let document = http.get(format!("{a}/v1/openapi.json")).send().await.ok()?;
        http.get(format!("{b}/v1/openapi.json")).send().await.ok()?;
        document.json().await.ok()
    })
    .await;
    let schemas = Schemas { document };
    let bearer = |key: &str| format!("Bearer {key}");

    // A client follows everything on replica A, and leaves after a few events.
    let all = bearer(KEY_ALL);
    let mut first =
        SseStream::connect(&http, &format!("{a}/v1/events"), &[("authorization", &all)])
            .await
            .expect("a stream");
    let mut calls: Vec<LedgerEntry> = (0..4)
        .map(|n| add(&sim, [TG, OTHER_TG][n % 2], n))
        .collect();
    let mut read = 0;
    let before = read_until(&mut first, &schemas, |_, _| {
        read += 1;
        read == 5
    })
    .await;
    drop(first);
    let last_id = before
        .last()
        .and_then(|(f, _)| f.id.clone())
        .expect("an id");

    // More calls while it is away; everything finishes.
    calls.extend((4..8).map(|n| add(&sim, [TG, OTHER_TG][n % 2], n)));
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    eventually(PATIENCE, "a transcript per call", || async {
        let mut stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.ok()?;
        (stream.info().await.ok()?.state.messages >= calls.len() as u64).then_some(())
    })
    .await;
    eventually(PATIENCE, "the pipeline to be idle", || async {
        pipeline_idle(&js).await.then_some(())
    })
    .await;

    // It comes back on replica B with its last id; a sentinel call marks the end of the run.
    let mut second = SseStream::connect(
        &http,
        &format!("{b}/v1/events"),
        &[("authorization", &all), ("last-event-id", &last_id)],
    )
    .await
    .expect("a stream");
    let sentinel = add(&sim, TG, 9);
    let is_sentinel_transcript = |_: &SseFrame, json: &Value| {
        json["kind"] == "transcript" && json["call_id"] == sentinel.key.as_str()
    };
    let after = read_until(&mut second, &schemas, is_sentinel_transcript).await;
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (_, json) in before.iter().chain(&after) {
        *seen.entry(kind_and_call(json)).or_default() += 1;
    }
    for call in &calls {
        for kind in ["call", "audio", "transcript"] {
            let count = seen.remove(&(kind.to_owned(), call.key.clone()));
            assert_eq!(count, Some(1), "{kind} of {} exactly once", call.key);
        }
    }
    assert!(
        seen.keys().all(|(_, call)| *call == sentinel.key),
        "nothing else: {seen:?}"
    );
    replica_b.kill();

    // A call: metadata, transcript and audio link.
    let call = &calls[0];
    let url = format!("{a}/v1/calls/{}", call.key);
    let response = http
        .get(&url)
        .header("authorization", &all)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    let view: Value = response.json().await.expect("JSON");
    schemas.check("CallView", &view);
    assert_eq!(view["tg"], call.tg);
    assert!(view["live_seq"].is_u64(), "the live event is found: {view}");
    assert_eq!(view["audio"]["sha256"], call.audio_sha256.as_str());
    assert_eq!(
        view["transcripts"][0]["text"],
        transcript_for_sha256(&call.audio_sha256).as_str()
    );
    assert_eq!(view["transcripts"][0]["revision"], 1);
    // A re-transcription's revision is listed after the first, which stays.
    let call_id = bcfy_bus::CallId::parse(&call.key).expect("a call id");
    let revised = bcfy_proto::TranscriptionResult {
        call_id: call.key.clone(),
        text: "Engine 12 respond, revised".to_owned(),
        revision: 2,
        revision_job: "larger".to_owned(),
        ..bcfy_proto::TranscriptionResult::default()
    };
    bcfy_bus::Publisher::new(js.clone())
        .publish(
            bcfy_bus::subject::transcription(
                bcfy_bus::Shard {
                    sid: SID,
                    tg: call.tg,
                },
                &call_id,
            ),
            &format!("{}.r2", call.key),
            &revised,
        )
        .await
        .expect("stored");
    let view: Value = http
        .get(&url)
        .header("authorization", &all)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    schemas.check("CallView", &view);
    let listed: Vec<(Value, Value)> = view["transcripts"]
        .as_array()
        .expect("transcripts")
        .iter()
        .map(|t| (t["revision"].clone(), t["revisionJob"].clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (Value::from(1), Value::Null),
            (Value::from(2), Value::from("larger"))
        ]
    );
    assert_eq!(
        view["call"]["callTg"],
        call.tg.to_string(),
        "int64 as a string"
    );

    // Its audio: the exact bytes, ranges, validators.
    let audio_url = format!("{url}/audio");
    let get_audio = |headers: &[(&str, &str)]| {
        let mut request = http.get(&audio_url).header("authorization", &all);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let whole = get_audio(&[]).await.expect("answer");
    assert_eq!(whole.status(), 200);
    let etag = whole.headers()["etag"].to_str().expect("ASCII").to_owned();
    assert_eq!(etag, format!("\"{}\"", call.audio_sha256));
    assert!(
        whole.headers()["cache-control"]
            .to_str()
            .expect("ASCII")
            .contains("immutable")
    );
    assert!(
        whole.headers()["content-type"]
            .to_str()
            .expect("ASCII")
            .starts_with("audio/")
    );
    let bytes = whole.bytes().await.expect("body");
    assert_eq!(sha256_hex(&bytes), call.audio_sha256, "the exact bytes");
    let head = get_audio(&[("range", "bytes=0-9")]).await.expect("answer");
    assert_eq!(head.status(), 206);
    assert_eq!(
        head.headers()["content-range"],
        format!("bytes 0-9/{}", bytes.len()).as_str()
    );
    assert_eq!(head.bytes().await.expect("body"), bytes.slice(0..10));
    let tail = get_audio(&[("range", "bytes=-5")]).await.expect("answer");
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await.expect("body"),
        bytes.slice(bytes.len() - 5..)
    );
    let not_modified = get_audio(&[("if-none-match", &etag)])
        .await
        .expect("answer");
    assert_eq!(not_modified.status(), 304);
    let beyond = format!("bytes={}-", bytes.len());
    for (range, status) in [
        (beyond.as_str(), 416),
        ("bytes=0-1,4-5", 416),
        ("bytes=x-", 400),
        ("lines=1-2", 400),
    ] {
        let response = get_audio(&[("range", range)]).await.expect("answer");
        assert_eq!(response.status(), status, "Range: {range}");
        schemas.check("Error", &response.json().await.expect("a JSON error"));
    }

    // Scope: another talkgroup's calls do not exist for the narrow key.
    let narrow = bearer(KEY_NARROW);
    let other = calls
        .iter()
        .find(|c| c.tg == OTHER_TG)
        .expect("a call of the other talkgroup");
    let missing = format!("{SID}-1767225600-{TG}-nosuchcall");
    for path in [
        format!("/v1/calls/{}", other.key),
        format!("/v1/calls/{}/audio", other.key),
        format!("/v1/calls/{missing}"),
        format!("/v1/calls/{missing}/audio"),
    ] {
        let response = http
            .get(format!("{a}{path}"))
            .header("authorization", &narrow)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 404, "{path}");
        let error: Value = response.json().await.expect("a JSON error");
        schemas.check("Error", &error);
        assert_eq!(error["error"], "not_found", "{path}");
    }
    let visible = http
        .get(format!("{a}/v1/calls/{}/audio", call.key))
        .header("authorization", &narrow)
        .send()
        .await
        .expect("answer");
    assert_eq!(visible.status(), if call.tg == TG { 200 } else { 404 });
    // GET `path` with `query` and `key`: 200 and its JSON.
    let get_json = |path: &str, query: Vec<(&'static str, String)>, key: String| {
        let request = http
            .get(format!("{a}{path}"))
            .query(&query)
            .header("authorization", key);
        async move {
            let response = request.send().await.expect("answer");
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.expect("JSON")
        }
    };
    let talkgroups = |key: String| get_json("/v1/talkgroups", Vec::new(), key);
    let listed = talkgroups(all.clone()).await;
    schemas.check("Talkgroups", &listed);
    let tgs: BTreeSet<i64> = listed["talkgroups"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| t["tg"].as_i64().expect("tg"))
        .collect();
    assert_eq!(tgs, BTreeSet::from([TG, OTHER_TG]));
    assert!(
        listed["talkgroups"][0]["display"].is_string(),
        "names: {listed}"
    );
    let listed = talkgroups(narrow.clone()).await;
    assert_eq!(listed["talkgroups"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["talkgroups"][0]["tg"], TG);

    // Search finds the sentinel by its transcript's words, in the key's scope only.
    let words = transcript_for_sha256(&sentinel.audio_sha256);
    let search = |key: String| get_json("/v1/calls", vec![("q", words.clone())], key);
    let found = eventually(PATIENCE, "the sentinel to be searchable", || async {
        let found = search(narrow.clone()).await;
        (found["total"] == 1).then_some(found)
    })
    .await;
    schemas.check("SearchResults", &found);
    assert_eq!(found["calls"][0]["call_id"], sentinel.key.as_str());
    assert!(
        found["calls"][0]["highlight"]
            .as_str()
            .is_some_and(|h| h.contains("<b>")),
        "{found}"
    );
    let mut scoped = SseStream::connect(
        &http,
        &format!("{a}/v1/events?since_seq=0-0-0"),
        &[("authorization", &narrow)],
    )
    .await
    .expect("a stream");
    let replayed = read_until(&mut scoped, &schemas, is_sentinel_transcript).await;
    let expected: BTreeSet<(String, String)> = calls
        .iter()
        .chain([&sentinel])
        .filter(|c| c.tg == TG)
        .flat_map(|c| ["call", "audio", "transcript"].map(|k| (k.to_owned(), c.key.clone())))
        .collect();
    let got: Vec<(String, String)> = replayed
        .iter()
        .map(|(_, json)| kind_and_call(json))
        .collect();
    assert_eq!(got.len(), expected.len(), "each once");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);

    // WebSocket: the same events as text frames.
    let ws_url =
        format!("ws://127.0.0.1:{port_a}/v1/ws?kind=transcript&since_seq=0-0-0&api_key={KEY_ALL}");
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("a WebSocket");
    let mut transcripts = BTreeSet::new();
    while transcripts.len() < calls.len() + 1 {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("frames")
            .expect("open")
            .expect("a frame");
        let tokio_tungstenite::tungstenite::Message::Text(text) = message else {
            continue;
        };
        let json: Value = serde_json::from_str(&text).expect("JSON");
        schemas.check("Event", &json);
        assert_eq!(json["kind"], "transcript");
        assert!(
            transcripts.insert(json["call_id"].as_str().expect("id").to_owned()),
            "once each"
        );
    }

    // Keys: none, unknown, over the rate.
    for path in [
        "/v1/events",
        "/v1/ws",
        "/v1/talkgroups",
        &format!("/v1/calls/{}", call.key),
        &format!("/v1/calls/{}/audio", call.key),
    ] {
        for key in [None, Some("Bearer wrong")] {
            let mut request = http.get(format!("{a}{path}"));
            if let Some(key) = key {
                request = request.header("authorization", key);
            }
            let response = request.send().await.expect("answer");
            assert_eq!(response.status(), 401, "{path} with {key:?}");
            schemas.check("Error", &response.json().await.expect("a JSON error"));
        }
    }
    let trickle = bearer(KEY_TRICKLE);
    let once = http
        .get(format!("{a}/v1/talkgroups"))
        .header("authorization", &trickle)
        .send()
        .await
        .expect("answer");
    assert_eq!(once.status(), 200);
    let twice = http
        .get(format!("{a}/v1/talkgroups"))
        .header("authorization", &trickle)
        .send()
        .await
        .expect("answer");
    assert_eq!(twice.status(), 429);
    assert!(twice.headers().contains_key("retry-after"));
    schemas.check("Error", &twice.json().await.expect("a JSON error"));

    // Bad input on every route: a 4xx with a JSON error, never a 500.
    type Case<'a> = (&'a str, Option<(&'a str, &'a str)>, u16);
    let bad: [Case<'_>; 14] = [
        ("/v1/events?tg=abc", None, 400),
        ("/v1/events?since_seq=5", None, 400),
        ("/v1/events?since=yesterday", None, 400),
        ("/v1/events?kind=alarm", None, 400),
        ("/v1/events?colour=red", None, 400),
        ("/v1/events", Some(("last-event-id", "1-2")), 400),
        ("/v1/ws?q=", None, 400),
        ("/v1/ws", None, 426),
        ("/v1/calls/%FF%FE", None, 400),
        (
            "/v1/ws?sid=1&sid=2&sid=3&sid=4&sid=5&sid=6&sid=7&sid=8&tg=1&tg=2&tg=3&tg=4&tg=5&tg=6&tg=7&tg=8&tg=9",
            None,
            400,
        ),
        ("/v1/calls/not.an.id", None, 400),
        ("/v1/calls/%E2%98%83/audio", None, 400),
        ("/v1/calls/x0123456789abcdef0123456789abcdef", None, 404),
        ("/v1/nothing/here", None, 404),
    ];
    for (path, header, status) in bad {
        let mut request = http.get(format!("{a}{path}")).header("authorization", &all);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), status, "{path} {header:?}");
        let error: Value = response.json().await.expect("a JSON error");
        schemas.check("Error", &error);
    }

    // No key reaches a log, whether sent as a header or in the query.
    for log in [services[3].log_text(), replica_b.log_text()] {
        for key in [KEY_ALL, KEY_NARROW, KEY_TRICKLE] {
            assert!(!log.contains(key), "a key in a gateway log");
        }
    }
}
