//! `just bench` load run for the archive cache (prints figures; not a timed test).
//!
//! A nats-server, `bcfy-sim` and the archive cache run on this machine with the benchmark's
//! gRPC clients (plain HTTP/2 on loopback).
//!
//! 1. **Cached**: one block (3 calls, ~6 kB answer) is warmed, then for each client count in
//!    `BENCH_CLIENTS` (default `4,8,32`) that many tasks (over 4 connections) call
//!    `GetArchivedCalls` for it back to back for `BENCH_SECONDS` (default 5): requests/s, median
//!    and p99 latency (targets ≥ 5,000 req/s, p99 ≤ 2 ms). Clients, server and nats-server
//!    share the 2 cores, so latency grows with the number of clients in flight.
//! 2. **Miss path**: `BENCH_MISSES` (default 200) distinct cold blocks one after another through
//!    the service, against the same number fetched straight from the simulator with the
//!    Broadcastify client: the medians, and what the cache adds.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::{Duration, SystemTime};

use bcfy_archive_cache::config::{ArchiveCacheConfig, GrpcConfig};
use bcfy_broadcastify::{Client, ClientConfig, GroupKey};
use bcfy_bus::connect::NatsConfig;
use bcfy_proto::GetArchivedCallsRequest;
use bcfy_proto::archive_service_client::ArchiveServiceClient;
use bcfy_runtime::service::Context;
use bcfy_simulator::{CallSpec, SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const SID: i64 = 7001;
const TG: i64 = 2345;
const BLOCK: i64 = 1800;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn get(grpc: &mut ArchiveServiceClient<Channel>, time: i64) {
    grpc.get_archived_calls(GetArchivedCallsRequest {
        sid: SID,
        talkgroup: TG,
        time,
    })
    .await
    .expect("an answer");
}

async fn cached(grpc: &ArchiveServiceClient<Channel>, url: &str, block: i64, clients: usize) {
    let seconds = knob("BENCH_SECONDS", 5);
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(
            ArchiveServiceClient::connect(url.to_owned())
                .await
                .expect("connects"),
        );
    }
    get(&mut grpc.clone(), block).await;
    let until = Instant::now() + Duration::from_secs(seconds as u64);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let mut grpc = connections[i % connections.len()].clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    get(&mut grpc, block).await;
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    println!(
        "cached GetArchivedCalls: {} requests from {clients} clients in {elapsed:.1} s = {:.0} req/s, median {:.3} ms, p99 {:.3} ms (targets >= 5,000 req/s, p99 <= 2 ms)",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
    );
}

async fn misses(grpc: &ArchiveServiceClient<Channel>, upstream: &Client, oldest: i64) {
    let count = knob("BENCH_MISSES", 200) as i64;
    let mut through_cache = Vec::new();
    let mut direct = Vec::new();
    for i in 0..count {
        // Alternate, so drift in the machine's load falls on both.
        let started = Instant::now();
        get(&mut grpc.clone(), oldest + 2 * i * BLOCK).await;
        through_cache.push(started.elapsed());
        let started = Instant::now();
        upstream
            .archived_calls(GroupKey { sid: SID, tg: TG }, oldest + (2 * i + 1) * BLOCK)
            .await
            .expect("the simulator answers");
        direct.push(started.elapsed());
    }
    through_cache.sort();
    direct.sort();
    let (cache, upstream) = (percentile(&through_cache, 0.5), percentile(&direct, 0.5));
    println!(
        "miss path: median {:.3} ms through the cache vs {:.3} ms straight from the upstream ({count} each): the cache adds {:.3} ms (claim, store, gRPC)",
        ms(cache),
        ms(upstream),
        ms(cache.saturating_sub(upstream)),
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let nats = NatsServer::start().await;
        let sim = Simulator::start(SimConfig::for_tests())
            .await
            .expect("bcfy-sim");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let warm = now - now.rem_euclid(BLOCK) - 4 * BLOCK;
        for i in 0..3 {
            sim.add_call(CallSpec {
                talkgroup: Some((SID, TG)),
                ts: Some(warm + 60 * (i + 1)),
                ..CallSpec::default()
            });
        }
        let origin = url::Url::parse(&sim.url()).expect("a URL");
        let account = ClientConfig {
            username: Some(sim.config().username.clone()),
            password: Some(sim.config().password.clone().into()),
            ..ClientConfig::default()
        }
        .with_origin(origin);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = ArchiveCacheConfig {
            nats: NatsConfig {
                urls: vec![nats.url()],
                ..NatsConfig::default()
            },
            broadcastify: account.clone(),
            grpc: GrpcConfig {
                listen_addr: ([127, 0, 0, 1], port).into(),
                tls: None,
            },
            ..ArchiveCacheConfig::default()
        };
        let shutdown = CancellationToken::new();
        let service = tokio::spawn(bcfy_archive_cache::run(
            config,
            Context::new("archive-cache", shutdown.clone()),
        ));
        let url = format!("http://127.0.0.1:{port}");
        let grpc = loop {
            if let Ok(grpc) = ArchiveServiceClient::connect(url.clone()).await {
                break grpc;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let counts = std::env::var("BENCH_CLIENTS").unwrap_or_else(|_| "4,8,32".to_owned());
        for clients in counts.split(',').filter_map(|c| c.trim().parse().ok()) {
            cached(&grpc, &url, warm, clients).await;
        }
        let upstream = Client::new(account).expect("a client");
        misses(&grpc, &upstream, warm - 1_000 * BLOCK).await;
        shutdown.cancel();
        service.await.expect("joins").expect("stops cleanly");
    });
}
