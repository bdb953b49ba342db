//! The gateway in-process against a real nats-server, with events published straight into the
//! streams: a client that stops reading is dropped with a reason while another gets every
//! event, and one that never reads is disconnected; idle streams get heartbeats; shutdown tells
//! SSE and WebSocket clients to reconnect; a stream from a time or from a cursor starts where it
//! should, and a cursor never moves back; audio not stored yet is 404 and audio aged out of its
//! stream 410; CORS; TLS through rustls.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::subject::{self, Shard};
use bcfy_bus::{CallId, Publisher};
use bcfy_gateway::GatewayConfig;
use bcfy_gateway::config::TlsConfig;
use bcfy_proto::{Call, LiveCallEnvelope};
use bcfy_test_support::pki::Pki;
use bcfy_test_support::sse::SseStream;
use bcfy_test_support::{NatsServer, ServiceUnderTest, eventually};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SHARD: Shard = Shard {
    sid: 7001,
    tg: 2345,
};
const PATIENCE: Duration = Duration::from_secs(60);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn config(nats: &NatsServer) -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.nats.urls = vec![nats.url()];
    config.admin.listen_addr = free_addr();
    config.http.listen_addr = free_addr();
    config.auth.allow_anonymous = true;
    config
}

/// The gateway running with `config`, once ready, and the address of its API.
async fn started(
    config: GatewayConfig,
) -> (ServiceUnderTest<bcfy_gateway::GatewayError>, SocketAddr) {
    let addr = config.http.listen_addr;
    let service = ServiceUnderTest::start("gateway", config, bcfy_gateway::run);
    eventually(PATIENCE, "the gateway to be ready", || async {
        service.readiness().is_ready().then_some(())
    })
    .await;
    (service, addr)
}

/// A live call of [`SHARD`] that started at `start` (Unix seconds), with CDN hash `hash` and a
/// description `padding` bytes long.
fn live_call(start: i64, hash: &str, padding: usize) -> (CallId, LiveCallEnvelope) {
    let call = Call {
        system_id: Some(1502),
        filename: Some(format!("{start}-{}", SHARD.tg)),
        hash: Some(hash.to_owned()),
        call_tg: Some(SHARD.tg),
        descr: Some("x".repeat(padding)),
        ..Call::default()
    };
    let id = CallId::for_call(&call);
    let envelope = LiveCallEnvelope {
        call_id: id.to_string(),
        call: Some(call),
        ..LiveCallEnvelope::default()
    };
    (id, envelope)
}

/// Publishes live calls `from..to` whose descriptions are `padding` bytes long.
async fn publish_calls(
    nats: &NatsServer,
    calls: std::ops::Range<usize>,
    padding: usize,
) -> Vec<String> {
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let publisher = Publisher::new(js);
    let mut ids = Vec::new();
    for n in calls {
        let (id, envelope) = live_call(1_767_225_600 + n as i64, &format!("h{n}"), padding);
        publisher
            .publish(subject::live(SHARD), id.as_str(), &envelope)
            .await
            .expect("stored");
        ids.push(id.to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_others_get_everything() {
    bcfy_test_support::trace_init();
    let nats = NatsServer::start().await;
    let mut config = config(&nats);
    config.http.client_buffer = 256;
    let (gateway, addr) = started(config).await;
    let url = format!("http://{addr}/v1/events");
    let client = reqwest::Client::new();
    let mut fast = SseStream::connect(&client, &url, &[])
        .await
        .expect("a stream");

    // A client that never reads: a tiny receive buffer, a request, then silence.
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let mut slow = socket.connect(addr).await.expect("connected");
    slow.write_all(b"GET /v1/events HTTP/1.1\r\nhost: gateway\r\naccept: text/event-stream\r\nconnection: close\r\n\r\n")
        .await
        .expect("request sent");
    eventually(PATIENCE, "both clients to be connected", || async {
        (gateway.metric("bcfy_gateway_connections", Some(("kind", "sse"))) == 2.0).then_some(())
    })
    .await;

    // Far more than the socket buffers and the hub's 256 events hold (12 MiB), in batches the
    // reading client keeps up with.
    const CALLS: usize = 3000;
    const BATCH: usize = 50;
    let (progress, mut read) = tokio::sync::watch::channel(0);
    let reader = tokio::spawn(async move {
        let mut received = Vec::new();
        while received.len() < CALLS {
            let frame = tokio::time::timeout(PATIENCE, fast.next())
                .await
                .expect("events keep coming")
                .expect("the fast client is not dropped");
            assert_eq!(frame.event, "call");
            let json: serde_json::Value = serde_json::from_str(&frame.data).expect("JSON");
            received.push(json["call_id"].as_str().expect("a call id").to_owned());
            progress.send_replace(received.len());
        }
        received
    });
    let mut ids = Vec::new();
    for batch in (0..CALLS).step_by(BATCH) {
        ids.extend(publish_calls(&nats, batch..batch + BATCH, 4096).await);
        read.wait_for(|n| *n == ids.len())
            .await
            .expect("the reader reads");
    }
    let received = reader.await.expect("the reader");
    assert_eq!(received, ids, "every call once, in order");

    // The slow client, once it reads, finds the reason it was dropped, then the end.
    let mut body = Vec::new();
    tokio::time::timeout(PATIENCE, slow.read_to_end(&mut body))
        .await
        .expect("the gateway closes the stream")
        .expect("read");
    // (The raw body is chunked; the events are read from it as text.)
    let body = String::from_utf8_lossy(&body);
    let dropped = body.find("event: dropped").expect("a `dropped` event");
    assert!(
        body.rfind("event: call")
            .is_some_and(|last_call| last_call < dropped),
        "`dropped` is the last event"
    );
    assert!(
        body[dropped..].contains("\"error\":\"lagged\""),
        "{}",
        &body[dropped..]
    );
    assert!(
        body.matches("event: call").count() < CALLS,
        "the slow client fell behind"
    );
    assert_eq!(
        gateway.metric(
            "bcfy_gateway_clients_dropped_total",
            Some(("reason", "lagged"))
        ),
        1.0
    );
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_streaming_clients_to_reconnect() {
    let nats = NatsServer::start().await;
    let (gateway, addr) = started(config(&nats)).await;
    let client = reqwest::Client::new();
    let mut stream = SseStream::connect(&client, &format!("http://{addr}/v1/events"), &[])
        .await
        .expect("a stream");
    publish_calls(&nats, 0..1, 10).await;
    let first = stream.next().await.expect("the call");
    assert_eq!(first.event, "call");

    let stopped = tokio::spawn(gateway.stop());
    let last = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("a last event")
        .expect("sent before the end");
    assert_eq!(last.event, "reconnect");
    assert!(last.data.contains("shutting_down"), "{}", last.data);
    assert_eq!(stream.next().await, None, "then the stream ends");
    stopped.await.expect("joined").expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_served_through_rustls() {
    let nats = NatsServer::start().await;
    let pki = Pki::new();
    let mut config = config(&nats);
    config.http.tls = Some(TlsConfig {
        cert_path: pki.server_cert_file(),
        key_path: pki.server_key_file(),
    });
    let (gateway, addr) = started(config).await;
    let port = addr.port();
    let trusting = |ca: &Pki| {
        reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(ca.pem(&ca.ca_file()).as_bytes()).expect("a PEM"),
            )
            .build()
            .expect("a client")
    };
    let url = format!("https://localhost:{port}/v1/openapi.json");
    let response = trusting(&pki).get(&url).send().await.expect("a TLS answer");
    assert_eq!(response.status(), 200);
    let untrusted = trusting(&Pki::other()).get(&url).send().await;
    assert!(
        untrusted.is_err(),
        "a client trusting another CA accepted the gateway"
    );
    let plain = reqwest::get(format!("http://localhost:{port}/v1/openapi.json")).await;
    assert!(plain.is_err(), "plain HTTP is not served on a TLS port");
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_may_call_only_from_the_configured_origins() {
    let nats = NatsServer::start().await;
    let mut config = config(&nats);
    config.http.cors_origins = vec!["https://newsroom.example".to_owned()];
    let (gateway, addr) = started(config).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(
                reqwest::Method::OPTIONS,
                format!("http://{addr}/v1/talkgroups"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://newsroom.example")
        .await
        .expect("an answer");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://newsroom.example"[..])
    );
    let refused = preflight("https://elsewhere.example")
        .await
        .expect("an answer");
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_from_a_replica_further_ahead_never_moves_back() {
    let nats = NatsServer::start().await;
    let (gateway, addr) = started(config(&nats)).await;
    // As if another replica had already been through 1,000 transcripts this one has not read.
    let url = format!("http://{addr}/v1/events?since_seq=0-0-1000");
    let client = reqwest::Client::new();
    let mut stream = SseStream::connect(&client, &url, &[])
        .await
        .expect("a stream");
    publish_calls(&nats, 0..2, 10).await;
    for expected in ["1-0-1000", "2-0-1000"] {
        let frame = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("an event")
            .expect("the stream stays open");
        assert_eq!(frame.id.as_deref(), Some(expected));
    }
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_not_stored_yet_is_404_and_audio_aged_out_is_410() {
    use bcfy_bus::topology::StreamLimits;
    use bcfy_proto::AudioPayloadEvent;

    let nats = NatsServer::start().await;
    let mut config = config(&nats);
    // Audio is kept two seconds.
    config.topology.calls_audio = StreamLimits {
        max_age: Some(Duration::from_secs(2)),
        duplicate_window: Some(Duration::from_secs(1)),
        ..StreamLimits::default()
    };
    let (gateway, addr) = started(config).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let publisher = Publisher::new(js);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (waiting, envelope) = live_call(now, "waiting", 0);
    publisher
        .publish(subject::live(SHARD), waiting.as_str(), &envelope)
        .await
        .expect("stored");
    let (expired, envelope) = live_call(now + 1, "expired", 0);
    publisher
        .publish(subject::live(SHARD), expired.as_str(), &envelope)
        .await
        .expect("stored");
    let audio = AudioPayloadEvent {
        call_id: expired.to_string(),
        payload: b"audio".to_vec().into(),
        content_type: "audio/mp4".to_owned(),
        r#final: true,
        total_size: 5,
        call: envelope.call.clone(),
        ..AudioPayloadEvent::default()
    };
    publisher
        .publish(subject::audio(SHARD, &expired), expired.as_str(), &audio)
        .await
        .expect("stored");
    let client = reqwest::Client::new();
    let status_and_code = |id: CallId| {
        let request = client.get(format!("http://{addr}/v1/calls/{id}/audio"));
        async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (
                status,
                body["error"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    // The stored one answers first; once its stream let it go it is gone, not missing.
    assert_eq!(status_and_code(expired.clone()).await.0, 200);
    assert_eq!(
        status_and_code(waiting.clone()).await,
        (404, "audio_not_ready".to_owned())
    );
    eventually(PATIENCE, "the audio to age out", || async {
        (status_and_code(expired.clone()).await == (410, "audio_expired".to_owned())).then_some(())
    })
    .await;
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_disconnected_after_the_write_timeout() {
    let nats = NatsServer::start().await;
    let mut config = config(&nats);
    config.http.write_timeout = Duration::from_secs(1);
    let (gateway, addr) = started(config).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let mut silent = socket.connect(addr).await.expect("connected");
    silent
        .write_all(b"GET /v1/events HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .expect("request sent");
    let connected = || gateway.metric("bcfy_gateway_connections", Some(("kind", "sse")));
    eventually(PATIENCE, "the client to be connected", || async {
        (connected() == 1.0).then_some(())
    })
    .await;
    // More than every buffer on the way holds (12 MiB).
    publish_calls(&nats, 0..3000, 4096).await;
    eventually(PATIENCE, "the gateway to close the connection", || async {
        (connected() == 0.0).then_some(())
    })
    .await;
    assert_eq!(
        gateway.metric(
            "bcfy_gateway_clients_dropped_total",
            Some(("reason", "stopped_reading"))
        ),
        1.0
    );
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_get_heartbeats() {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;

    let nats = NatsServer::start().await;
    let mut config = config(&nats);
    config.http.heartbeat = Duration::from_secs(1);
    let (gateway, addr) = started(config).await;
    let mut sse = reqwest::get(format!("http://{addr}/v1/events"))
        .await
        .expect("a stream");
    let first = tokio::time::timeout(PATIENCE, sse.chunk())
        .await
        .expect("a chunk in time")
        .expect("read")
        .expect("not the end");
    assert_eq!(&first[..], b": heartbeat\n\n");
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .expect("a WebSocket");
    let ping = tokio::time::timeout(PATIENCE, socket.next())
        .await
        .expect("a frame in time")
        .expect("open")
        .expect("a frame");
    assert!(matches!(ping, Message::Ping(_)), "{ping:?}");
    gateway.stop().await.expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_clients_are_told_to_reconnect_on_shutdown() {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let nats = NatsServer::start().await;
    let (gateway, addr) = started(config(&nats)).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws"))
        .await
        .expect("a WebSocket");
    let ids = publish_calls(&nats, 0..1, 10).await;
    let mut next = async || {
        tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("a frame")
    };
    let Message::Text(event) = next().await else {
        panic!("an event first");
    };
    let event: serde_json::Value = serde_json::from_str(&event).expect("JSON");
    assert_eq!(event["call_id"], ids[0].as_str());
    let stopped = tokio::spawn(gateway.stop());
    let Message::Text(reason) = next().await else {
        panic!("the reason before the close");
    };
    assert!(reason.contains("shutting_down"), "{reason}");
    let Message::Close(Some(close)) = next().await else {
        panic!("a close frame");
    };
    assert_eq!(close.code, CloseCode::Restart, "1012");
    stopped.await.expect("joined").expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_since_a_time_starts_with_what_was_stored_from_then() {
    let nats = NatsServer::start().await;
    let (gateway, addr) = started(config(&nats)).await;
    let earlier = publish_calls(&nats, 0..3, 10).await;
    // Two transcripts before the time too: a stream from then starts after them.
    let publisher = Publisher::new(jetstream::new(
        async_nats::connect(nats.url()).await.expect("NATS"),
    ));
    for id in &earlier[..2] {
        let id = CallId::parse(id).expect("an id");
        let result = bcfy_proto::TranscriptionResult {
            call_id: id.to_string(),
            text: "earlier".to_owned(),
            ..Default::default()
        };
        publisher
            .publish(subject::transcription(SHARD, &id), id.as_str(), &result)
            .await
            .expect("stored");
    }
    // Same machine, same clock as nats-server: everything stored from here on is after it.
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formatted");
    let later = publish_calls(&nats, 3..5, 10).await;
    let url = format!("http://{addr}/v1/events?since={since}");
    let client = reqwest::Client::new();
    let mut stream = SseStream::connect(&client, &url, &[])
        .await
        .expect("a stream");
    for (id, expected) in later.iter().zip(["4-0-2", "5-0-2"]) {
        let frame = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("an event")
            .expect("the stream stays open");
        assert_eq!(frame.id.as_deref(), Some(expected));
        assert!(frame.data.contains(id.as_str()), "{}", frame.data);
    }
    gateway.stop().await.expect("a clean stop");
}
