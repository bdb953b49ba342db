//! The alerter under test: a real nats-server with the topology, the service in a runtime of its
//! own, transcripts published as the transcriber would, a webhook receiver over real HTTP, and
//! readings of the streams.

#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use axum::http::{HeaderMap, StatusCode};
use bcfy_alerter::AlerterConfig;
use bcfy_alerter::config::{ConsumerConfig, DestinationConfig, MonitorConfig};
use bcfy_alerter::rule::RuleSpec;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{STREAM_ALERTS, Topology, TopologyConfig};
use bcfy_bus::{CallId, Publisher, Shard, subject};
use bcfy_proto::{Alert, Call, Tone, TranscriptionResult};
use bcfy_test_support::{NatsServer, ServiceUnderTest, eventually};

pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) struct Harness {
    pub(crate) nats: NatsServer,
    pub(crate) js: jetstream::Context,
}

pub(crate) type Running = ServiceUnderTest<bcfy_alerter::AlerterError>;

pub(crate) async fn harness() -> Harness {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    Harness { nats, js }
}

/// A rule matching `keywords`.
pub(crate) fn keyword_rule(name: &str, keywords: &[&str]) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
        ..RuleSpec::default()
    }
}

/// One transcript to publish.
pub(crate) struct Transcript {
    pub(crate) n: u32,
    pub(crate) tg: i64,
    pub(crate) text: &'static str,
    /// Seconds before now the call started.
    pub(crate) age: i64,
    pub(crate) tones: Vec<Tone>,
}

pub(crate) fn transcript(n: u32, text: &'static str) -> Transcript {
    Transcript {
        n,
        tg: 2345,
        text,
        age: 5,
        tones: Vec::new(),
    }
}

pub(crate) fn now_epoch() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

impl Harness {
    pub(crate) fn config(&self, rules: Vec<RuleSpec>) -> AlerterConfig {
        AlerterConfig {
            nats: NatsConfig {
                urls: vec![self.nats.url()],
                ..NatsConfig::default()
            },
            rules,
            consumer: ConsumerConfig {
                ack_wait: Duration::from_secs(3),
                ..ConsumerConfig::default()
            },
            monitor: MonitorConfig {
                enabled: false,
                ..MonitorConfig::default()
            },
            ..AlerterConfig::default()
        }
    }

    pub(crate) fn start(&self, config: AlerterConfig) -> Running {
        ServiceUnderTest::start("alerter", config, bcfy_alerter::run)
    }

    /// Publishes `t` on `transcription.complete.7001.{tg}.{call_id}`, as the transcriber does.
    pub(crate) async fn publish(&self, t: &Transcript) -> CallId {
        let started = now_epoch() - t.age;
        let call_id = CallId::parse(&format!("1502-{started}-{}-h{}", t.tg, t.n)).unwrap();
        let shard = Shard {
            sid: 7001,
            tg: t.tg,
        };
        let result = TranscriptionResult {
            call_id: call_id.to_string(),
            text: t.text.into(),
            tones: t.tones.clone(),
            call: Some(Call {
                sid: Some(7001),
                call_tg: Some(t.tg),
                meta_starttime: Some(started),
                display: Some("FD Dispatch".into()),
                ..Call::default()
            }),
            ..TranscriptionResult::default()
        };
        Publisher::new(self.js.clone())
            .publish(
                subject::transcription(shard, &call_id),
                call_id.as_str(),
                &result,
            )
            .await
            .unwrap();
        call_id
    }

    /// Every alert stored, by subject.
    pub(crate) async fn alerts(&self) -> Vec<(String, Alert)> {
        let mut stream = self.js.get_stream(STREAM_ALERTS).await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut alerts = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                let alert = prost::Message::decode(message.payload.as_ref()).unwrap();
                alerts.push((message.subject.to_string(), alert));
            }
        }
        alerts
    }

    /// True when durable consumer `name` of `stream` has nothing pending or unacknowledged.
    pub(crate) async fn settled(&self, stream: &str, name: &str) -> bool {
        let Ok(mut consumer) = self
            .js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(name, stream)
            .await
        else {
            return false;
        };
        let info = consumer.info().await.unwrap();
        info.num_pending == 0 && info.num_ack_pending == 0
    }

    /// Waits until the alerter has settled every transcript, then returns the alerts.
    pub(crate) async fn alerts_once_settled(&self) -> Vec<(String, Alert)> {
        eventually(
            PATIENCE,
            "the alerter to settle every transcript",
            || async {
                self.settled(
                    bcfy_bus::topology::STREAM_TRANSCRIPTIONS,
                    bcfy_bus::topology::CONSUMER_ALERTER,
                )
                .await
                .then_some(())
            },
        )
        .await;
        self.alerts().await
    }
}

/// `(rule, call id)` of each alert.
pub(crate) fn fired(alerts: &[(String, Alert)]) -> Vec<(String, String)> {
    alerts
        .iter()
        .map(|(_, a)| (a.rule.clone(), a.call_id.clone()))
        .collect()
}

/// One request a [`Receiver`] got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) status: StatusCode,
}

type Answer =
    dyn Fn(usize, &Received) -> (StatusCode, Vec<(&'static str, String)>, String) + Send + Sync;

/// A webhook receiver over real HTTP whose answers a test scripts: `answer(n, request)` for the
/// `n`th request (from 0).
#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(
        answer: impl Fn(usize, &Received) -> (StatusCode, Vec<(&'static str, String)>, String)
        + Send
        + Sync
        + 'static,
    ) -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer: Arc<Answer> = Arc::new(answer);
        let log = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let log = Arc::clone(&log);
                let answer = Arc::clone(&answer);
                async move {
                    let mut request = Received {
                        headers,
                        body: body.to_vec(),
                        status: StatusCode::OK,
                    };
                    let mut log = log.lock().unwrap();
                    let (status, headers, text) = answer(log.len(), &request);
                    request.status = status;
                    log.push(request);
                    let mut response = axum::response::Response::new(axum::body::Body::from(text));
                    *response.status_mut() = status;
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, received }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The requests it answered with a 2xx.
    pub(crate) fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.status.is_success())
            .collect()
    }

    /// A destination of `kind` posting here.
    pub(crate) fn destination(&self, name: &str) -> DestinationConfig {
        DestinationConfig {
            name: name.into(),
            url: Some(self.url.clone().into()),
            timeout: Duration::from_secs(2),
            retry_initial_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(1),
            ..DestinationConfig::default()
        }
    }
}
