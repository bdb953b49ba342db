//! `just bench` load run for the poller (prints figures; not a timed test).
//!
//! 1. The publish path: upstream call JSON parsed into `Call`, wrapped in a `LiveCallEnvelope`,
//!    encoded and published with PubAck (acks pipelined per batch), in calls/s; and in the same
//!    run the raw JetStream ceiling: publishes/s of payloads of the same size, same batching.
//! 2. Polling cost: 1,000 shards at a 5 s interval against the simulator, in CPU cores used by
//!    the poller's threads (the simulator runs on threads of its own, reported apart).
//!
//! Knobs: `BENCH_CALLS` (default 50000), `BENCH_SHARDS` (1000),
//! `BENCH_SECONDS` (20).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Duration;

use async_nats::jetstream;
use bcfy_broadcastify::ClientConfig;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{Topology, TopologyConfig};
use bcfy_bus::{CallId, Publisher, Shard, subject};
use bcfy_poller::{LiveProducerConfig, PollerConfig, ShardConfig};
use bcfy_proto::{Call, LiveCallEnvelope, ShardKey};
use bcfy_simulator::{SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use bcfy_test_support::proc_stat::threads_cpu_seconds;
use prost::Message as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const BATCH: usize = 1_000;
const FIXTURE: &str = include_str!("../../../proto/tests/fixtures/live-calls.json");

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` distinct upstream call objects, as JSON text, shaped like the capture.
fn upstream_calls(n: usize) -> Vec<String> {
    let answer: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let template = answer["calls"][0].clone();
    (0..n)
        .map(|i| {
            let mut call = template.clone();
            call["filename"] = format!("{}-2345", 1_767_225_600 + i).into();
            call["hash"] = format!("{i:08x}").into();
            call["ts"] = (1_767_225_612 + i as i64).into();
            call.to_string()
        })
        .collect()
}

fn envelope(text: &str) -> (Shard, CallId, LiveCallEnvelope) {
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let call = Call::from_json(&value).unwrap();
    let id = CallId::for_call(&call);
    let (sid, tg) = (call.sid.unwrap(), call.call_tg.unwrap());
    let envelope = LiveCallEnvelope {
        call_id: id.to_string(),
        call: Some(call),
        cursor: Some(1_767_225_000.0),
        received_at: Some(std::time::SystemTime::now().into()),
        shard_key: Some(ShardKey {
            system_id: sid,
            talkgroup_id: tg,
        }),
        raw_payload: text.as_bytes().to_vec(),
        shard_name: "bench".into(),
    };
    (Shard { sid, tg }, id, envelope)
}

async fn publish_path(publisher: &Publisher, calls: &[String]) -> f64 {
    let started = Instant::now();
    for chunk in calls.chunks(BATCH) {
        let envelopes: Vec<_> = chunk.iter().map(|text| envelope(text)).collect();
        let batch: Vec<(String, &str, &LiveCallEnvelope)> = envelopes
            .iter()
            .map(|(shard, id, e)| (subject::live(*shard), id.as_str(), e))
            .collect();
        for result in publisher.publish_all(batch).await.unwrap() {
            assert!(!result.unwrap().duplicate);
        }
    }
    calls.len() as f64 / started.elapsed().as_secs_f64()
}

async fn raw_ceiling(js: &jetstream::Context, n: usize, size: usize) -> f64 {
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    for start in (0..n).step_by(BATCH) {
        let mut acks = Vec::with_capacity(BATCH);
        for i in start..(start + BATCH).min(n) {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
            acks.push(
                js.publish_with_headers("calls.live.1.1", headers, payload.clone())
                    .await
                    .unwrap(),
            );
        }
        for ack in
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await
        {
            ack.unwrap();
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn runtime(name: &str, workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let calls = knob("BENCH_CALLS", 50_000) as usize;
    let shards = knob("BENCH_SHARDS", 1_000) as usize;
    let seconds = knob("BENCH_SECONDS", 20);
    let bench = runtime("bench", 2);
    let server = bench.block_on(NatsServer::start());
    let js = bench.block_on(async {
        let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
        ensure_topology(&js, &Topology::new(TopologyConfig::default()))
            .await
            .unwrap();
        js
    });

    // 1. Publish path against the raw ceiling.
    let texts = upstream_calls(calls);
    let size = envelope(&texts[0]).2.encoded_len();
    let publisher = Publisher::new(js.clone());
    let path = bench.block_on(publish_path(&publisher, &texts));
    let ceiling = bench.block_on(raw_ceiling(&js, calls, size));
    println!("poller publish path: {calls} calls of {size} B encoded");
    println!("  parse + encode + publish (PubAck, batches of {BATCH}): {path:>9.0} calls/s");
    println!("  raw JetStream publish, same size and batching:        {ceiling:>9.0} msgs/s");
    println!("  ratio: {:.0} % of the ceiling", 100.0 * path / ceiling);

    // 2. CPU of 1,000 idle shards polling every 5 s.
    let simulator_runtime = runtime("sim", 1);
    let sim = simulator_runtime
        .block_on(Simulator::start(SimConfig::for_tests()))
        .unwrap();
    let url = url::Url::parse(&sim.url()).unwrap();
    let config = PollerConfig {
        nats: NatsConfig {
            urls: vec![server.url()],
            ..NatsConfig::default()
        },
        broadcastify: ClientConfig {
            username: Some("demo".into()),
            password: Some("demo-password".to_owned().into()),
            ..ClientConfig::default()
        }
        .with_origin(url),
        live_producer: LiveProducerConfig {
            poll_interval: Duration::from_secs(5),
            ..LiveProducerConfig::default()
        },
        shards: (0..shards)
            .map(|i| ShardConfig {
                name: format!("shard-{i}"),
                groups: vec!["7001-2345".into()],
                ..ShardConfig::default()
            })
            .collect(),
        instance_id: Some("bench".into()),
        ..PollerConfig::default()
    };
    let poller_runtime = runtime("poller", 2);
    let shutdown = CancellationToken::new();
    let poller = poller_runtime.spawn(bcfy_poller::run(
        config,
        bcfy_runtime::service::Context::new("poller", shutdown.clone()),
    ));
    // Warm-up: every shard acquires its lease and logs its first poll.
    bench.block_on(async { tokio::time::sleep(Duration::from_secs(10)).await });
    let requests_before = sim.requests().len();
    let (poller_before, sim_before) = (threads_cpu_seconds("poller"), threads_cpu_seconds("sim"));
    let started = Instant::now();
    bench.block_on(async { tokio::time::sleep(Duration::from_secs(seconds)).await });
    let wall = started.elapsed().as_secs_f64();
    let (poller_cpu, sim_cpu) = (
        threads_cpu_seconds("poller") - poller_before,
        threads_cpu_seconds("sim") - sim_before,
    );
    let polls = sim.requests().len().saturating_sub(requests_before);
    shutdown.cancel();
    poller_runtime.block_on(poller).unwrap().unwrap();
    println!(
        "polling cost: {shards} shards, 5 s interval, {wall:.0} s measured, {polls} polls ({:.0}/s)",
        polls as f64 / wall
    );
    println!("  poller threads: {:.3} cores", poller_cpu / wall);
    println!("  simulator threads (apart): {:.3} cores", sim_cpu / wall);
}
