//! `just bench-search` (also run by `just bench-gateway`): the gateway's transcript index at
//! size. It stores `BENCH_TRANSCRIPTS` transcripts (default 1,000,000) in `TRANSCRIPTIONS` —
//! the simulator's clip texts with their numbers, streets and units varied, over 50 talkgroups
//! and 30 days — then starts one gateway (release build) on an empty index directory.
//!
//! It prints: how long the fresh gateway took to index the stream (the rebuild time, and so the
//! indexing rate), the index's size on disk, how long a restarted gateway took to be ready and
//! caught up (it resumes), query latency p50/p99 over `BENCH_QUERIES` (200) HTTP requests each
//! for a word, a phrase and a filtered query, and the gateway's RSS while serving (its own
//! memory and the memory-mapped index apart) and since start.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::subject::{self, Shard};
use bcfy_bus::topology::{StreamLimits, Topology, TopologyConfig};
use bcfy_bus::{CallId, Publisher};
use bcfy_config::units::ByteSize;
use bcfy_e2e::Service;
use bcfy_e2e::admin::metric;
use bcfy_e2e::bench::{knob, percentile};
use bcfy_e2e::yaml::free_port;
use bcfy_proto::{Call, TranscriptionResult};
use bcfy_simulator::clips;
use bcfy_test_support::proc_stat::{peak_rss_bytes, status_bytes};
use bcfy_test_support::{NatsServer, eventually};
use tokio::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;
const T0: i64 = 1_767_225_600;
const STREETS: [&str; 8] = [
    "Main", "Oak", "Elm", "Pine", "Maple", "Cedar", "Walnut", "Lincoln",
];

/// Transcript `n`: a clip's text with its numbers and streets varied.
fn text(n: u64, texts: &[&str]) -> String {
    let base = texts[(n % texts.len() as u64) as usize];
    let street = STREETS[(n / 7 % STREETS.len() as u64) as usize];
    format!(
        "{} Unit {} copies, {} {street} Avenue, cross of {}.",
        base,
        n % 97,
        100 + n % 9900,
        STREETS[(n / 3 % STREETS.len() as u64) as usize]
    )
}

fn shard(n: u64) -> Shard {
    Shard {
        sid: 7000 + (n % 5) as i64,
        tg: 2000 + (n % 50) as i64,
    }
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn indexed(admin: u16) -> Option<u64> {
    metric(admin, "bcfy_gateway_search_indexed_sequence")
        .await
        .map(|v| v as u64)
}

async fn latencies(http: &reqwest::Client, url: &str, queries: &[String]) -> (f64, f64, u64) {
    let mut ms = Vec::with_capacity(queries.len());
    let mut found = 0;
    for query in queries {
        let started = Instant::now();
        let body: serde_json::Value = http
            .get(format!("{url}/v1/calls?{query}"))
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        found += body["total"].as_u64().unwrap_or(0);
    }
    ms.sort_by(f64::total_cmp);
    (
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        found / queries.len() as u64,
    )
}

#[tokio::main]
async fn main() {
    let total = knob("BENCH_TRANSCRIPTS", 1_000_000);
    let queries = knob("BENCH_QUERIES", 200);
    bcfy_e2e::service::build_binaries();
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let topology = TopologyConfig {
        transcriptions: StreamLimits {
            max_bytes: Some(ByteSize(8 << 30)),
            ..StreamLimits::default()
        },
        ..TopologyConfig::default()
    };
    ensure_topology(&js, &Topology::new(topology.clone()))
        .await
        .expect("topology");
    let texts: Vec<&str> = clips::all().iter().map(|c| c.text).collect();
    let started = Instant::now();
    let publisher = Publisher::new(js.clone());
    let mut acks = Vec::new();
    for n in 0..total {
        let s = shard(n);
        let time = T0 + (n as i64 * 2_592_000 / total.max(1) as i64);
        let id = CallId::parse(&format!("1502-{time}-{}-b{n:07}", s.tg)).expect("id");
        let result = TranscriptionResult {
            call_id: id.to_string(),
            text: text(n, &texts),
            call: Some(Call {
                ts: Some(time),
                call_tg: Some(s.tg),
                call_src: Some(1000 + (n % 300) as i64),
                ..Call::default()
            }),
            ..TranscriptionResult::default()
        };
        acks.push(
            publisher
                .start(subject::transcription(s, &id), id.as_str(), &result)
                .await
                .expect("sent"),
        );
        if acks.len() == 512 {
            for ack in acks.drain(..) {
                ack.await.expect("stored");
            }
        }
    }
    for ack in acks.drain(..) {
        ack.await.expect("stored");
    }
    println!(
        "stored {total} transcripts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let index_dir = dir.path().join("index");
    let (port, admin) = (free_port(), free_port());
    let config = format!(
        "nats:\n  urls: [\"{}\"]\nadmin:\n  listen_addr: 127.0.0.1:{admin}\nlog:\n  filter: warn\nhttp:\n  listen_addr: 127.0.0.1:{port}\nauth:\n  allow_anonymous: true\nsearch:\n  index_dir: {}\ntopology:\n  transcriptions:\n    max_bytes: 8GiB\n",
        nats.url(),
        index_dir.display()
    );
    let patience = Duration::from_secs(3600);
    let started = Instant::now();
    let mut gateway = Service::start("gateway", &config, dir.path());
    eventually(patience, "the index to hold every transcript", || async {
        (indexed(admin).await? >= total).then_some(())
    })
    .await;
    let build = started.elapsed().as_secs_f64();
    println!(
        "fresh index from the stream: {build:.1} s, {:.0} transcripts/s; on disk {:.0} MiB",
        total as f64 / build,
        dir_bytes(&index_dir) as f64 / MIB
    );

    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let pick = |i: u64| STREETS[(i % STREETS.len() as u64) as usize].to_lowercase();
    let words: Vec<String> = (0..queries).map(|i| format!("q={}", pick(i))).collect();
    let phrases: Vec<String> = (0..queries)
        .map(|i| format!("q=%22{}+avenue%22", pick(i)))
        .collect();
    let filtered: Vec<String> = (0..queries)
        .map(|i| {
            let s = shard(i);
            format!(
                "q=respond&sid={}&tg={}&from={}&to={}",
                s.sid,
                s.tg,
                T0 + (i as i64 % 20) * 86_400,
                T0 + (i as i64 % 20 + 7) * 86_400
            )
        })
        .collect();
    for (name, list) in [
        ("word", &words),
        ("phrase", &phrases),
        ("filtered", &filtered),
    ] {
        let (p50, p99, found) = latencies(&http, &url, list).await;
        println!(
            "query {name}: p50 {p50:.1} ms, p99 {p99:.1} ms ({found} matches each on average)"
        );
    }
    let pid = gateway.pid().expect("running");
    println!(
        "gateway RSS while serving: {:.1} MiB, of which {:.1} MiB its own memory (RssAnon) and {:.1} MiB the memory-mapped index files (RssFile, page cache the kernel can drop); peak since start {:.1} MiB",
        status_bytes(pid, "VmRSS") as f64 / MIB,
        status_bytes(pid, "RssAnon") as f64 / MIB,
        status_bytes(pid, "RssFile") as f64 / MIB,
        peak_rss_bytes(pid) as f64 / MIB
    );

    let started = Instant::now();
    gateway.restart();
    eventually(
        patience,
        "the restarted gateway to be caught up",
        || async {
            reqwest::get(format!("{url}/v1/calls?limit=1")).await.ok()?;
            (indexed(admin).await? >= total).then_some(())
        },
    )
    .await;
    println!(
        "restarted gateway answering and caught up: {:.1} s (it resumes from its last commit)",
        started.elapsed().as_secs_f64()
    );
}
