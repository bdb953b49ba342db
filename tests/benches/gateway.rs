//! `just bench-gateway`: one gateway replica (release build) in front of the whole pipeline
//! at a steady call rate — nats-server, the simulator generating calls, poller, audio fetcher
//! and transcriber (with a fast fake STT, in this process) — with many SSE clients (in this
//! process) following every event.
//!
//! It prints: events each client received against the events stored in the window (every
//! client must get every one), the added delivery delay (stored in JetStream → parsed by the
//! client, p50/p99 over every delivery), the gateway's peak RSS and CPU, and then audio GETs
//! per second against the gateway (concurrent clients, the window's calls at random).
//!
//! Knobs: `BENCH_CLIENTS` (default 1000), `BENCH_RATE` (calls/s, 100), `BENCH_SECONDS` (20),
//! `BENCH_AUDIO_SECONDS` (10), `BENCH_AUDIO_CONCURRENCY` (32).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bcfy_e2e::Service;
use bcfy_e2e::bench::{knob, percentile};
use bcfy_e2e::pipeline;
use bcfy_e2e::yaml::{common, free_port};
use bcfy_simulator::{SimConfig, Simulator};
use bcfy_test_support::proc_stat::{peak_rss_bytes, process_cpu_seconds};
use bcfy_test_support::sse::SseStream;
use bcfy_test_support::{NatsServer, eventually};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const WARM_UP: Duration = Duration::from_secs(5);
const MIB: f64 = 1024.0 * 1024.0;
/// Longest wait, after the window, for every client to have every event.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// One client's deliveries: (call id, kind) and the delay in ms of each, and whether the
/// gateway dropped it.
struct Received {
    events: Vec<(String, String)>,
    delays_ms: Vec<f64>,
    dropped: bool,
}

/// The string value of top-level envelope field `name` (`"name":"value"`), read without parsing
/// the whole event, so the clients cost this process as little as possible.
fn field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

async fn follow(url: String, stop: Arc<AtomicBool>, total: Arc<AtomicU64>) -> Received {
    let client = reqwest::Client::new();
    let mut stream = SseStream::connect(&client, &url, &[])
        .await
        .expect("a stream");
    let mut received = Received {
        events: Vec::new(),
        delays_ms: Vec::new(),
        dropped: false,
    };
    while !stop.load(Ordering::Relaxed) {
        let Ok(frame) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await
        else {
            continue;
        };
        let Some(frame) = frame.filter(|f| f.event != "dropped") else {
            received.dropped = true;
            break;
        };
        let now = OffsetDateTime::now_utc();
        let stored = field(&frame.data, "stored_at").expect("stored_at");
        let stored = OffsetDateTime::parse(stored, &Rfc3339).expect("RFC 3339");
        received
            .delays_ms
            .push((now - stored).as_seconds_f64() * 1000.0);
        let call_id = field(&frame.data, "call_id").expect("call_id");
        received.events.push((call_id.to_owned(), frame.event));
        total.fetch_add(1, Ordering::Relaxed);
    }
    received
}

#[tokio::main]
async fn main() {
    let clients = knob("BENCH_CLIENTS", 1000) as usize;
    let rate = knob("BENCH_RATE", 100);
    let window = Duration::from_secs(knob("BENCH_SECONDS", 20));
    let nats = NatsServer::start().await;
    let mut sim_config = SimConfig::for_tests();
    sim_config.systems = 1;
    sim_config.talkgroups_per_system = 10;
    sim_config.calls_per_second = 0.0;
    let sim = Simulator::start(sim_config).await.expect("bcfy-sim");
    let stt = pipeline::fake_stt().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = nats.url();
    let port = free_port();
    let gateway = Service::start(
        "gateway",
        &format!(
            "{}http:\n  listen_addr: 127.0.0.1:{port}\nauth:\n  allow_anonymous: true\n",
            common(&url, "warn")
        ),
        dir.path(),
    );
    let poller = "live_producer:\n  poll_interval: 1s\n";
    let _pipeline = pipeline::start(&url, &sim, &stt, poller, "", "warn", dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(120), "the gateway", || async {
        http.get(format!("{base}/v1/openapi.json"))
            .send()
            .await
            .ok()
            .map(drop)
    })
    .await;
    let gateway_pid = gateway.pid().expect("running");

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let followers: Vec<_> = (0..clients)
        .map(|_| {
            let url = format!("{base}/v1/events");
            tokio::spawn(follow(url, Arc::clone(&stop), Arc::clone(&total)))
        })
        .collect();
    tokio::time::sleep(WARM_UP).await;
    // Calls at the rate, for the window.
    let me = std::process::id();
    let cpu_before = [process_cpu_seconds(gateway_pid), process_cpu_seconds(me)];
    let started = SystemTime::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let talkgroups = sim.world().talkgroups.clone();
    let mut made = Vec::new();
    for n in 0.. {
        tick.tick().await;
        if started.elapsed().unwrap_or_default() >= window {
            break;
        }
        let t = &talkgroups[n % talkgroups.len()];
        made.push(sim.add_call(bcfy_simulator::CallSpec {
            talkgroup: Some((t.sid, t.tg)),
            clip: Some(n % 12),
            ..bcfy_simulator::CallSpec::default()
        }));
    }
    let expected = made.len() * 3;
    // Until every client has every event (only the window makes calls), or a minute.
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while total.load(Ordering::Relaxed) < (expected * clients) as u64
        && tokio::time::Instant::now() < deadline
    {
        tick.tick().await;
    }
    let drained_after = started.elapsed().unwrap_or_default().saturating_sub(window);
    let cpu = [
        process_cpu_seconds(gateway_pid) - cpu_before[0],
        process_cpu_seconds(me) - cpu_before[1],
    ];
    stop.store(true, Ordering::Relaxed);
    let mut delivered = 0;
    let mut all_delays = Vec::new();
    let (mut complete, mut fewest, mut dropped) = (0, usize::MAX, 0);
    let wanted: std::collections::HashSet<&str> = made.iter().map(|c| c.key.as_str()).collect();
    for follower in followers {
        let received = follower.await.expect("a follower");
        let mine = received
            .events
            .iter()
            .filter(|(id, _)| wanted.contains(id.as_str()))
            .count();
        delivered += mine;
        fewest = fewest.min(mine);
        if mine == expected {
            complete += 1;
        }
        dropped += usize::from(received.dropped);
        all_delays.extend(received.delays_ms);
    }
    all_delays.sort_by(f64::total_cmp);
    let rss = peak_rss_bytes(gateway_pid) as f64 / MIB;
    println!(
        "Gateway, {clients} SSE clients, {rate} calls/s for {} s ({} calls, {expected} events each), {} cores.",
        window.as_secs(),
        made.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "  clients with every event: {complete}/{clients} (fewest received: {fewest}, dropped for lag: {dropped}); deliveries {delivered}"
    );
    println!(
        "  added delivery delay (stored → client): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&all_delays, 0.5),
        percentile(&all_delays, 0.99),
        percentile(&all_delays, 1.0)
    );
    println!(
        "  drained {:.1} s after the window; CPU over window and drain: gateway {:.1} s, this process (simulator, fake STT, clients) {:.1} s",
        drained_after.as_secs_f64(),
        cpu[0],
        cpu[1]
    );
    println!("  gateway: peak RSS {rss:.1} MiB");

    // Audio GETs against the calls of the window.
    let seconds = knob("BENCH_AUDIO_SECONDS", 10);
    let concurrency = knob("BENCH_AUDIO_CONCURRENCY", 32);
    let ids: Arc<Vec<String>> = Arc::new(made.iter().map(|c| c.key.clone()).collect());
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (http, base, ids) = (http.clone(), base.clone(), Arc::clone(&ids));
            let (done, failed) = (Arc::clone(&done), Arc::clone(&failed));
            tokio::spawn(async move {
                let mut n = w as usize;
                while tokio::time::Instant::now() < until {
                    n = (n * 31 + 7) % ids.len();
                    let url = format!("{base}/v1/calls/{}/audio", ids[n]);
                    let ok = match http.get(url).send().await {
                        Ok(response) => response.status() == 200 && response.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok { &done } else { &failed }.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("a worker");
    }
    println!(
        "  audio GETs: {:.0}/s with {concurrency} concurrent clients over {seconds} s ({} failed)",
        done.load(Ordering::Relaxed) as f64 / seconds as f64,
        failed.load(Ordering::Relaxed)
    );
}
