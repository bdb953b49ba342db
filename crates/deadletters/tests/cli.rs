//! `bcfy-deadletters` as a process against a real nats-server holding dead letters written the
//! way the stages write them (`Delivery::dead_letter` on a consumed message): what `list`,
//! `show` and `stats` print, what `redrive` sends (and, with `--dry-run`, does not), what
//! `--purge` removes, and the exit code of every kind of bad input.

use std::process::{Command, Output};

use async_nats::jetstream::{self, consumer::pull};
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, STREAM_DEAD_LETTERS, Topology, TopologyConfig};
use bcfy_bus::{CallId, Delivery, Failure, Publisher, Shard, Stage, ensure, redrive, subject};
use bcfy_proto::{AudioPayloadEvent, DeadLetter};
use bcfy_test_support::NatsServer;
use bcfy_test_support::nats::stream_messages;
use futures::StreamExt as _;

fn cli(nats: &NatsServer, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bcfy-deadletters"))
        .arg("--nats")
        .arg(nats.url())
        .args(args)
        .output()
        .expect("the command runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("an exit code")
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

const CALLS: [&str; 3] = [
    "1502-1767225600-2345-aaaa0001",
    "1502-1767225601-2345-aaaa0002",
    "1502-1767225602-2346-aaaa0003",
];

/// The topology, three final audio chunks dead-lettered by the transcriber as `stt_rejected`
/// and one as `poison`, the way the stage does it.
async fn seeded() -> (NatsServer, jetstream::Context) {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("connects"));
    ensure::ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .expect("topology");
    let publisher = Publisher::new(js.clone());
    for (n, call) in CALLS.iter().enumerate() {
        let id = CallId::parse(call).expect("a call id");
        let tg = if n == 2 { 2346 } else { 2345 };
        let event = AudioPayloadEvent {
            call_id: (*call).to_owned(),
            r#final: true,
            payload: vec![n as u8; 100].into(),
            total_size: 100,
            content_type: "audio/mpeg".to_owned(),
            ..AudioPayloadEvent::default()
        };
        publisher
            .publish(subject::audio(Shard { sid: 7001, tg }, &id), call, &event)
            .await
            .expect("stored");
    }
    let stream = js.get_stream(STREAM_CALLS_AUDIO).await.expect("stream");
    let consumer = stream
        .create_consumer::<pull::Config>(pull::Config {
            durable_name: Some("test".to_owned()),
            ..pull::Config::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("pull");
    for n in 0..CALLS.len() {
        let delivery = Delivery::new(messages.next().await.expect("one").expect("ok"));
        let kind = if n == 1 { "poison" } else { "stt_rejected" };
        delivery
            .dead_letter(
                &publisher,
                Stage::Transcriber,
                Failure::new(kind, format!("the STT provider answered 400 ({n})"), None),
            )
            .await
            .expect("dead-lettered");
    }
    (nats, js)
}

async fn redriven_on(js: &jetstream::Context, subject: &str) -> Vec<async_nats::HeaderMap> {
    bcfy_bus::stored::messages_on(js, STREAM_CALLS_AUDIO, subject)
        .await
        .expect("read")
        .into_iter()
        .filter_map(|message| message.headers.clone())
        .filter(|headers| redrive::count(Some(headers)) > 0)
        .collect()
}

#[tokio::test]
async fn list_show_and_stats_read_back_what_the_stages_wrote() {
    let (nats, _js) = seeded().await;

    let table = cli(&nats, &["list"]);
    assert_eq!(code(&table), 0, "{table:?}");
    let text = stdout(&table);
    assert!(
        text.starts_with("ID  TIME"),
        "a table with a header: {text}"
    );
    for call in CALLS {
        assert!(text.contains(call), "{call} listed: {text}");
    }
    assert!(text.contains("7001-2346") && text.contains("stt_rejected"));

    let filtered = json_lines(&cli(
        &nats,
        &[
            "list",
            "--json",
            "--stage",
            "transcriber",
            "--kind",
            "stt_rejected",
            "--tg",
            "7001-2345",
        ],
    ));
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0]["callId"], CALLS[0]);
    assert_eq!(filtered[0]["attempts"], 1);
    let since_later = json_lines(&cli(
        &nats,
        &["list", "--json", "--since", "2999-01-01T00:00:00Z"],
    ));
    assert!(since_later.is_empty(), "a time range filters");
    let until_earlier = json_lines(&cli(&nats, &["list", "--json", "--until", "1h"]));
    assert!(until_earlier.is_empty(), "until an hour ago: none yet");

    let id = filtered[0]["id"].as_u64().expect("an id").to_string();
    let shown = cli(&nats, &["show", &id]);
    assert_eq!(code(&shown), 0, "{shown:?}");
    let text = stdout(&shown);
    assert!(
        text.contains("Original message (broadcastify.v1.AudioPayloadEvent)"),
        "decoded by its content type: {text}"
    );
    assert!(text.contains("\"contentType\": \"audio/mpeg\""), "{text}");
    let shown = json_lines(&cli(&nats, &["--json", "show", &id]));
    assert_eq!(shown[0]["deadLetter"]["errorKind"], "stt_rejected");
    assert_eq!(shown[0]["original"]["message"]["callId"], CALLS[0]);
    assert_eq!(shown[0]["original"]["message"]["totalSize"], "100");

    let stats = json_lines(&cli(&nats, &["stats", "--json", "--window", "1h"]));
    assert_eq!(stats[0]["total"], 3);
    assert_eq!(stats[0]["byStage"]["transcriber"]["stt_rejected"], 2);
    assert_eq!(stats[0]["byStage"]["transcriber"]["poison"], 1);
    let text = stdout(&cli(&nats, &["stats"]));
    assert!(
        text.contains("stt_rejected") && text.contains("transcriber"),
        "{text}"
    );
}

#[tokio::test]
async fn redrive_sends_each_original_once_marked_and_a_dry_run_sends_nothing() {
    let (nats, js) = seeded().await;
    let first = subject::audio(
        Shard {
            sid: 7001,
            tg: 2345,
        },
        &CallId::parse(CALLS[0]).expect("id"),
    );
    let dry = cli(&nats, &["redrive", "--kind", "stt_rejected", "--dry-run"]);
    assert_eq!(code(&dry), 0, "{dry:?}");
    assert!(stdout(&dry).contains("would_send"), "{}", stdout(&dry));
    assert!(
        redriven_on(&js, &first).await.is_empty(),
        "a dry run sends nothing"
    );

    let sent = cli(
        &nats,
        &[
            "--json",
            "redrive",
            "--kind",
            "stt_rejected",
            "--rate",
            "50",
        ],
    );
    assert_eq!(code(&sent), 0, "{sent:?}");
    let lines = json_lines(&sent);
    assert_eq!(lines.len(), 3, "two letters and a summary: {lines:?}");
    assert_eq!(lines[2]["summary"]["sent"], 2);
    let copies = redriven_on(&js, &first).await;
    assert_eq!(copies.len(), 1);
    assert_eq!(redrive::count(copies.first()), 1);
    assert_eq!(
        copies[0].get("Content-Type").map(|v| v.as_str().to_owned()),
        Some("application/protobuf; proto=broadcastify.v1.AudioPayloadEvent".to_owned()),
        "with its original headers"
    );

    let again = json_lines(&cli(
        &nats,
        &["--json", "redrive", "--kind", "stt_rejected"],
    ));
    assert_eq!(
        again.last().expect("summary")["summary"]["alreadyRedriven"],
        2
    );
    assert_eq!(redriven_on(&js, &first).await.len(), 1, "nothing twice");
    let listed = json_lines(&cli(&nats, &["list", "--json", "--kind", "stt_rejected"]));
    assert!(
        listed
            .iter()
            .all(|letter| letter["redriven"]["sequence"].is_u64()),
        "kept, marked: {listed:?}"
    );

    let poison = cli(&nats, &["redrive", "--kind", "poison", "--purge"]);
    assert_eq!(
        code(&poison),
        0,
        "a poison letter was in a stream: {poison:?}"
    );
    assert_eq!(
        stream_messages(&js, STREAM_DEAD_LETTERS).await,
        2,
        "--purge deleted the redriven poison letter"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_an_exit_code_a_script_can_use() {
    let (nats, js) = seeded().await;
    let refused = |args: &[&str], expected: i32, says: &str| {
        let output = cli(&nats, args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(code(&output), expected, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    refused(&["list", "--stage", "nope"], 64, "unknown stage `nope`");
    refused(
        &["list", "--kind", "stt_rejectd"],
        64,
        "unknown kind `stt_rejectd`",
    );
    refused(&["list", "--tg", "7001-x"], 64, "not SID or SID-TG");
    refused(&["stats", "--window", "soon"], 64, "not a duration");
    refused(&["redrive", "--rate", "0"], 64, "--rate");
    refused(&["show", "abc"], 64, "not a dead letter id");
    refused(&["frobnicate"], 64, "frobnicate");
    refused(&["show", "999"], 66, "no dead letter 999");

    // A poller record never was in a stream: shown, not redrivable.
    let letter = DeadLetter {
        stage: "poller".to_owned(),
        error_kind: "bad_upstream_record".to_owned(),
        original_payload: br#"{"call_tg":null}"#.to_vec(),
        ..DeadLetter::default()
    };
    Publisher::new(js.clone())
        .publish(
            subject::dead_letter(Stage::Poller, None, None),
            "dl-poller-x",
            &letter,
        )
        .await
        .expect("stored");
    refused(&["redrive", "--stage", "poller"], 65, "cannot be redriven");
    let listed = json_lines(&cli(&nats, &["list", "--json", "--stage", "poller"]));
    let id = listed[0]["id"].to_string();
    let shown = json_lines(&cli(&nats, &["--json", "show", &id]));
    assert_eq!(
        shown[0]["original"]["message"]["call_tg"],
        serde_json::Value::Null
    );
    assert_eq!(shown[0]["original"]["type"], "text");

    // An original message that is not what its Content-Type says.
    let garbled = DeadLetter {
        stage: "transcriber".to_owned(),
        error_kind: "poison".to_owned(),
        original_subject: "calls.audio.raw.1.2.x".to_owned(),
        original_stream: STREAM_CALLS_AUDIO.to_owned(),
        original_headers: [(
            "Content-Type".to_owned(),
            "application/protobuf; proto=broadcastify.v1.AudioPayloadEvent".to_owned(),
        )]
        .into(),
        original_payload: vec![0xff; 7],
        ..DeadLetter::default()
    };
    let stored = Publisher::new(js.clone())
        .publish(
            subject::dead_letter(Stage::Transcriber, None, None),
            "dl-garbled",
            &garbled,
        )
        .await
        .expect("stored");
    refused(
        &["show", &stored.sequence.to_string()],
        65,
        "cannot be decoded",
    );

    let unreachable = Command::new(env!("CARGO_BIN_EXE_bcfy-deadletters"))
        .args(["--nats", "nats://127.0.0.1:1", "list"])
        .output()
        .expect("runs");
    assert_eq!(code(&unreachable), 69, "{unreachable:?}");
}

#[test]
fn the_operators_guide_explains_every_kind() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/README.md"
    ))
    .expect("deploy/README.md");
    for kind in bcfy_bus::dead_letter_kinds::KINDS {
        assert!(
            guide.contains(&format!("| `{}` |", kind.name)),
            "deploy/README.md has a row for `{}`",
            kind.name
        );
    }
}
