//! The six services against a nats-server that admits only TLS clients with a certificate of
//! its CA and knows only the users of the shipped `deploy/nats-authorization.conf`, each service
//! connecting as its own user: calls flow end to end (transcripts, alerts, the gateway's call
//! view and directory) without one permission violation in the server's log; and what a role
//! must not do fails: the poller publishing audio, the transcriber reading the Broadcastify
//! session, the read-only user publishing an event, removing a pipeline consumer or reading the
//! dead letters; the operator's `bcfy-deadletters` connects as the operator; a service that does
//! not trust the server's certificate stops at start with the reason.

use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::access::Role;
use bcfy_bus::connect::{NatsConfig, TlsConfig, connect};
use bcfy_bus::topology::{
    KV_UPSTREAM_SESSION, STREAM_ALERTS, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS,
};
use bcfy_e2e::Service;
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::pipeline::{STT_KEY, fake_stt};
use bcfy_e2e::yaml::{common_with, directory, free_port, site};
use bcfy_simulator::{CallSpec, SimConfig, Simulator};
use bcfy_test_support::pki::Pki;
use bcfy_test_support::{NatsServer, eventually};
use futures::StreamExt as _;

const SID: i64 = 7001;
const TG: i64 = 2345;
const CALLS: usize = 3;
/// Building the binaries (if needed) and the calls through the fake STT.
const PATIENCE: Duration = Duration::from_secs(300);

fn password(role: Role) -> String {
    format!("pw-{}", role.name())
}

/// The server: TLS with client certificates, and the shipped users.
fn server_config(pki: &Pki) -> String {
    let authorization = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats-authorization.conf"),
    )
    .expect("the shipped authorization block");
    format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n}}\n{authorization}",
        pki.server_cert_file().display(),
        pki.server_key_file().display(),
        pki.ca_file().display()
    )
}

/// A service's `nats` credentials and TLS lines.
fn nats_as(role: Role, pki: &Pki) -> String {
    format!(
        "  user: {}\n  password: {}\n  tls:\n    required: true\n    ca_file: {}\n    cert_file: {}\n    key_file: {}\n",
        role.name(),
        password(role),
        pki.ca_file().display(),
        pki.client_cert_file().display(),
        pki.client_key_file().display()
    )
}

/// The shared settings of a service connecting as `role`.
fn common(nats: &NatsServer, role: Role, pki: &Pki) -> String {
    common_with(&nats.url(), "info", free_port(), &nats_as(role, pki))
}

/// A client of this test connecting as `role`.
async fn client_as(nats: &NatsServer, role: Role, pki: &Pki) -> jetstream::Context {
    let config = NatsConfig {
        urls: vec![nats.url()],
        user: Some(role.name().to_owned()),
        password: Some(password(role).into()),
        tls: TlsConfig {
            required: true,
            ca_file: Some(pki.ca_file()),
            cert_file: Some(pki.client_cert_file()),
            key_file: Some(pki.client_key_file()),
        },
        request_timeout: Duration::from_secs(2),
        ..NatsConfig::default()
    };
    jetstream::new(connect(&config, role.name()).await.expect("connected"))
}

fn violations(nats: &NatsServer) -> Vec<String> {
    nats.log()
        .lines()
        .filter(|line| line.contains(" Violation - "))
        .map(str::to_owned)
        .collect()
}

async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut stream) => stream.info().await.map_or(0, |info| info.state.messages),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_works_with_its_own_permissions_and_nothing_more() {
    let pki = Pki::new();
    let env: Vec<(String, String)> = Role::ALL
        .iter()
        .map(|role| (role.password_variable(), password(*role)))
        .collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let nats = NatsServer::start_with_config(&server_config(&pki), &env).await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            sim.add_call(CallSpec {
                talkgroup: Some((SID, TG)),
                clip: Some(i),
                ..CallSpec::default()
            })
        })
        .collect();
    let stt = fake_stt().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let http = free_port();
    let _services = [
        Service::start(
            "poller",
            &format!(
                "{}{}live_producer:\n  poll_interval: 1s\nshards:\n  - name: fire\n    groups: [\"{SID}-{TG}\"]\n",
                common(&nats, Role::Poller, &pki),
                site(&sim, true)
            ),
            dir.path(),
        ),
        Service::start(
            "audio-fetcher",
            &format!(
                "{}{}",
                common(&nats, Role::AudioFetcher, &pki),
                site(&sim, false)
            ),
            dir.path(),
        ),
        Service::start(
            "transcriber",
            &format!(
                "{}transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {STT_KEY}\n",
                common(&nats, Role::Transcriber, &pki),
                stt.url()
            ),
            dir.path(),
        ),
        Service::start(
            "archive-cache",
            &format!(
                "{}{}{}grpc:\n  listen_addr: 127.0.0.1:{}\n",
                common(&nats, Role::ArchiveCache, &pki),
                site(&sim, true),
                directory(&sim),
                free_port()
            ),
            dir.path(),
        ),
        Service::start(
            "gateway",
            &format!(
                "{}http:\n  listen_addr: 127.0.0.1:{http}\nauth:\n  allow_anonymous: true\n",
                common(&nats, Role::Gateway, &pki)
            ),
            dir.path(),
        ),
        Service::start(
            "alerter",
            &format!(
                "{}rules:\n  - name: any-words\n    regex: \"\\\\w\"\n",
                common(&nats, Role::Alerter, &pki)
            ),
            dir.path(),
        ),
    ];

    // Everything flows: a transcript and an alert per call, then nothing left in flight.
    let operator = client_as(&nats, Role::Operator, &pki).await;
    eventually(PATIENCE, "a transcript and an alert per call", || async {
        let refused = violations(&nats);
        assert!(refused.is_empty(), "a service was refused: {refused:#?}");
        (messages(&operator, STREAM_TRANSCRIPTIONS).await >= CALLS as u64
            && messages(&operator, STREAM_ALERTS).await >= CALLS as u64)
            .then_some(())
    })
    .await;
    eventually(PATIENCE, "the pipeline to be idle", || async {
        pipeline_idle(&operator).await.then_some(())
    })
    .await;
    assert_eq!(
        messages(&operator, STREAM_TRANSCRIPTIONS).await,
        CALLS as u64,
        "one transcript per call"
    );
    // The gateway reads the streams and asks the archive cache's directory.
    let gateway = format!("http://127.0.0.1:{http}");
    for path in [
        format!("/v1/calls/{}", calls[0].key),
        "/v1/directory/states".to_owned(),
    ] {
        let status = reqwest::get(format!("{gateway}{path}"))
            .await
            .expect("an answer")
            .status();
        assert_eq!(status, 200, "{path}");
    }
    assert_eq!(
        violations(&nats),
        Vec::<String>::new(),
        "the services needed nothing beyond their permissions"
    );

    // The poller cannot publish audio.
    let poller = client_as(&nats, Role::Poller, &pki).await;
    let forged = poller
        .publish("calls.audio.raw.7001.2345.forged", "forged".into())
        .await
        .expect("sent");
    assert!(forged.await.is_err(), "the audio stream acknowledged it");
    assert_eq!(messages(&operator, STREAM_CALLS_AUDIO).await, CALLS as u64);

    // The transcriber cannot read the Broadcastify session the poller keeps.
    let sessions = operator
        .get_key_value(KV_UPSTREAM_SESSION)
        .await
        .expect("the bucket");
    let keys: Vec<String> = sessions
        .keys()
        .await
        .expect("keys")
        .filter_map(|k| async { k.ok() })
        .collect()
        .await;
    assert!(!keys.is_empty(), "the poller stored its session");
    let transcriber = client_as(&nats, Role::Transcriber, &pki).await;
    let denied = transcriber
        .get_key_value(KV_UPSTREAM_SESSION)
        .await
        .expect("the bucket's existence is no secret");
    assert!(
        denied.get(&keys[0]).await.is_err(),
        "the transcriber read the session"
    );

    // The reader reads the transcripts, publishes nothing and cannot remove a consumer.
    let reader = client_as(&nats, Role::Reader, &pki).await;
    let read =
        bcfy_bus::stored::messages_on(&reader, STREAM_TRANSCRIPTIONS, "transcription.complete.>")
            .await
            .expect("the reader reads the history");
    assert_eq!(read.len(), CALLS);
    let forged = reader
        .publish("transcription.complete.7001.2345.forged", "forged".into())
        .await
        .expect("sent");
    assert!(forged.await.is_err(), "the transcripts took a forgery");
    let audio = reader
        .get_stream(STREAM_CALLS_AUDIO)
        .await
        .expect("the reader sees the stream");
    assert!(
        audio.delete_consumer("transcriber").await.is_err(),
        "the reader removed the transcriber's consumer"
    );
    operator
        .get_stream(STREAM_CALLS_AUDIO)
        .await
        .expect("the stream")
        .consumer_info("transcriber")
        .await
        .expect("the transcriber's consumer is still there");

    // The operator's commands connect as the operator over the same TLS; the reader may not
    // look at the dead letters.
    let list_dead_letters = |role: Role| {
        std::process::Command::new(bcfy_e2e::service::binary("bcfy-deadletters"))
            .args(["list", "--nats", &nats.url()])
            .env("NATS_USER", role.name())
            .env("NATS_PASSWORD", password(role))
            .env("NATS_CA", pki.ca_file())
            .env("NATS_CERT", pki.client_cert_file())
            .env("NATS_KEY", pki.client_key_file())
            .output()
            .expect("bcfy-deadletters runs")
    };
    let listed = list_dead_letters(Role::Operator);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(!list_dead_letters(Role::Reader).status.success());

    // A service that does not trust the server's certificate stops at once, saying why.
    let other = Pki::other();
    let mut untrusting = Service::start(
        "audio-fetcher",
        &format!(
            "{}{}",
            common(&nats, Role::AudioFetcher, &other),
            site(&sim, false)
        ),
        dir.path(),
    );
    eventually(
        Duration::from_secs(30),
        "the untrusting fetcher to stop",
        || std::future::ready((!untrusting.running()).then_some(())),
    )
    .await;
    let log = untrusting.log_text();
    assert!(
        log.contains("NATS refused the connection") && log.contains("invalid peer certificate"),
        "{log}"
    );

    let refused = violations(&nats);
    for forbidden in [
        "calls.audio.raw.7001.2345.forged",
        "KV_upstream-session",
        "transcription.complete.7001.2345.forged",
        "$JS.API.CONSUMER.DELETE.CALLS_AUDIO.transcriber",
        "\"$G/user:reader\" - Publish Violation - Subject \"$JS.API.STREAM.INFO.DEAD_LETTERS\"",
    ] {
        assert!(
            refused.iter().any(|line| line.contains(forbidden)),
            "no violation logged for {forbidden}: {refused:#?}"
        );
    }
}
