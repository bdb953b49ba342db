//! `just bench` load run for the audio fetcher (prints figures; not a timed test).
//!
//! The `audio-fetcher` binary runs as its own process (concurrency 64) against `bcfy-sim` and a
//! nats-server on this machine. For 50 kB and 500 kB files it reports calls/s and MB/s from the
//! first live message published to the last audio message stored, and in the same run the raw
//! JetStream MB/s for messages of the same size (the ceiling), and the fetcher's peak RSS so far
//! (the 50 kB run comes first, so its figure is that run's peak). Then the fetcher's CPU.
//! Knobs: `BENCH_SMALL_CALLS` (default 3000), `BENCH_LARGE_CALLS` (1000).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use bcfy_broadcastify::{Client, ClientConfig, GroupKey, LiveQuery, Selector};
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, Topology, TopologyConfig};
use bcfy_bus::{CallId, Publisher, Shard, subject};
use bcfy_proto::{LiveCallEnvelope, ShardKey};
use bcfy_simulator::{CallSpec, SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use bcfy_test_support::proc_stat::process_cpu_seconds;
use tokio::time::Instant;

const FIRE: GroupKey = GroupKey {
    sid: 7001,
    tg: 2345,
};
const CHUNK: usize = 256 * 1024;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A field of `/proc/<pid>/status`, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn spawn_fetcher(nats: &str, site: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_audio-fetcher"))
        .env("BCFY_NATS__URLS", nats)
        .env("BCFY_BROADCASTIFY__BASE_URL", site)
        .env("BCFY_BROADCASTIFY__CDN_URL", site)
        .env("BCFY_BROADCASTIFY__ALTERNATE_CDN_URL", site)
        .env("BCFY_BROADCASTIFY__MAX_CONCURRENCY", "64")
        .env("BCFY_AUDIO__MAX_CONCURRENCY", "64")
        .env("BCFY_AUDIO__TRANSCRIPTION_ENABLED", "false")
        .env("BCFY_ADMIN__LISTEN_ADDR", "127.0.0.1:0")
        .env("BCFY_LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the audio-fetcher binary")
}

async fn stored(js: &jetstream::Context) -> u64 {
    js.get_stream(STREAM_CALLS_AUDIO)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}

/// Publishes live envelopes for `n` new calls with `size`-byte audio; returns when all their
/// audio is stored, with the seconds it took.
async fn fetch_run(
    sim: &Simulator,
    client: &Client,
    js: &jetstream::Context,
    n: usize,
    size: usize,
) -> f64 {
    let spec = CallSpec {
        talkgroup: Some((FIRE.sid, FIRE.tg)),
        node: Some(1502),
        audio_bytes_at_least: Some(size),
        ..CallSpec::default()
    };
    let entries: Vec<_> = (0..n).map(|_| sim.add_call(spec.clone())).collect();
    let first_ts = entries.iter().map(|e| e.ts).min().unwrap_or(0);
    let keys: std::collections::HashSet<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let query = LiveQuery {
        selector: Selector::Groups(vec![FIRE]),
        position: Some(first_ts as f64),
        init: false,
    };
    let envelopes: Vec<(CallId, LiveCallEnvelope)> = client
        .live_calls(&query)
        .await
        .unwrap()
        .parsed
        .calls
        .into_iter()
        .map(|c| (CallId::for_call(&c.call), c))
        .filter(|(id, _)| keys.contains(id.as_str()))
        .map(|(id, c)| {
            let envelope = LiveCallEnvelope {
                call_id: id.to_string(),
                call: Some(c.call),
                received_at: Some(std::time::SystemTime::now().into()),
                shard_key: Some(ShardKey {
                    system_id: FIRE.sid,
                    talkgroup_id: FIRE.tg,
                }),
                raw_payload: c.raw.into_bytes(),
                ..LiveCallEnvelope::default()
            };
            (id, envelope)
        })
        .collect();
    assert_eq!(envelopes.len(), n);
    let expected = stored(js).await + (n * size.div_ceil(CHUNK)) as u64;
    let publisher = Publisher::new(js.clone());
    let live = subject::live(Shard {
        sid: FIRE.sid,
        tg: FIRE.tg,
    });
    let started = Instant::now();
    for batch in envelopes.chunks(1000) {
        let batch: Vec<(String, &str, &LiveCallEnvelope)> = batch
            .iter()
            .map(|(id, e)| (live.clone(), id.as_str(), e))
            .collect();
        publisher.publish_all(batch).await.unwrap();
    }
    while stored(js).await < expected {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed().as_secs_f64()
}

/// Raw JetStream publishes of `messages` payloads of `size` bytes, acks pipelined; seconds.
async fn raw_run(js: &jetstream::Context, messages: usize, size: usize, tag: &str) -> f64 {
    let payload = bytes::Bytes::from(vec![7u8; size]);
    let started = Instant::now();
    for start in (0..messages).step_by(256) {
        let mut acks = Vec::new();
        for i in start..(start + 256).min(messages) {
            let subject = format!("calls.audio.raw.0.0.raw-{tag}-{i}");
            acks.push(
                js.publish(subject, payload.clone())
                    .await
                    .unwrap()
                    .into_future(),
            );
        }
        for ack in futures::future::join_all(acks).await {
            ack.unwrap();
        }
    }
    started.elapsed().as_secs_f64()
}

fn main() {
    let small = knob("BENCH_SMALL_CALLS", 3000);
    let large = knob("BENCH_LARGE_CALLS", 1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = NatsServer::start().await;
        let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
        ensure_topology(&js, &Topology::new(TopologyConfig::default())).await.unwrap();
        let sim = Simulator::start(SimConfig { mp3_node_ratio: 0.0, systems: 1, ..SimConfig::for_tests() })
            .await
            .unwrap();
        let client = Client::new(
            ClientConfig {
                username: Some("demo".into()),
                password: Some("demo-password".to_owned().into()),
                ..ClientConfig::default()
            }
            .with_origin(url::Url::parse(&sim.url()).unwrap()),
        )
        .unwrap();
        let mut fetcher = spawn_fetcher(&server.url(), &sim.url());
        // Warm-up: the fetcher connects and creates its consumer.
        fetch_run(&sim, &client, &js, 10, 50_000).await;
        let cpu_before = process_cpu_seconds(fetcher.id());
        let wall = Instant::now();
        println!("audio fetcher: concurrency 64, simulator and nats-server on the same 2 cores");
        for (label, n, size) in [("50 kB", small, 50_000), ("500 kB", large, 500_000)] {
            let seconds = fetch_run(&sim, &client, &js, n, size).await;
            let chunks = size.div_ceil(CHUNK);
            let raw = raw_run(&js, n * chunks, size / chunks, &size.to_string()).await;
            let mb = (n * size) as f64 / 1e6;
            println!(
                "  {label}: {n} calls in {seconds:.2} s = {:.0} calls/s, {:.1} MB/s; raw JetStream same sizes: {:.1} MB/s ({:.0} % of it); fetcher peak RSS so far {:.1} MiB",
                n as f64 / seconds,
                mb / seconds,
                mb / raw,
                100.0 * raw / seconds,
                status_kb(fetcher.id(), "VmHWM:") as f64 / 1024.0,
            );
        }
        let cpu = process_cpu_seconds(fetcher.id()) - cpu_before;
        println!(
            "  fetcher process: peak RSS {:.1} MiB, CPU {:.1} s over {:.1} s",
            status_kb(fetcher.id(), "VmHWM:") as f64 / 1024.0,
            cpu,
            wall.elapsed().as_secs_f64()
        );
        Command::new("kill").arg("-TERM").arg(fetcher.id().to_string()).status().ok();
        fetcher.wait().ok();
    });
}
