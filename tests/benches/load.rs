//! `just bench-e2e`: the whole pipeline under load, everything on this box. For each talkgroup
//! count and each rising call rate: a fresh nats-server, the simulator generating calls at that
//! rate (in this process), the poller, audio-fetcher and transcriber as release binaries, and a
//! fast fake STT (in this process), so what is measured is the pipeline, not a speech engine.
//!
//! Per run it prints: the calls generated in the measured window and how many were lost (a
//! call made in the window with no transcript once the pipeline has drained), the latency from
//! the moment the simulator listed a call to its envelope stored on `calls.live`, its audio on
//! `calls.audio.raw` and its `transcription.complete` (p50/p99, from JetStream's own
//! timestamps), CPU seconds per 1,000 calls per process over the window, and each process's
//! peak RSS. At the end, what JetStream
//! alone costs here ([`raw_jetstream`]): the ceiling `nats bench js pub` would report (the `nats`
//! CLI is not installable here), and the floor, nats-server's CPU for one call's JetStream work
//! done in batches with nothing else running, to set the pipeline's nats-server figure against.
//!
//! Knobs: `BENCH_TALKGROUPS` (default `1,10,100`), `BENCH_RATES` (calls/s, `250,500,1000,1500`),
//! `BENCH_SECONDS` (measured window, 30), `BENCH_POLL_INTERVAL_MS` (1000), `BENCH_LOOK_BACK_S` (the
//! poller's `live_producer.look_back`, 120 as in production), `BENCH_LOG` (the services' log filter,
//! `warn`).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::{self, stream};
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE, STREAM_TRANSCRIPTIONS};
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::pipeline;
use bcfy_e2e::raw_jetstream::{self, CallSizes};
use bcfy_simulator::{SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use bcfy_test_support::proc_stat::{peak_rss_bytes, process_cpu_seconds};
use futures::StreamExt as _;
use prost::Message as _;

const WARM_UP: Duration = Duration::from_secs(5);
/// Longest wait for the pipeline to drain after the simulator stops making calls.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);
/// The drain is over when nothing is pending and no transcript arrived for this long.
const QUIET: Duration = Duration::from_secs(10);
/// When calls are still missing after [`QUIET`], the wait for them: longer than the poller's
/// longest back-off (30 s) plus a request timeout (20 s), so a call still on its way is counted
/// late, not lost.
const LONG_QUIET: Duration = Duration::from_secs(60);
const MIB: f64 = 1024.0 * 1024.0;
/// Calls through [`raw_jetstream::floor`].
const FLOOR_CALLS: usize = 20_000;
/// This process: the simulator and the fake STT.
const BENCH_PROCESS: &str = "bench";

fn knob_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

fn knob(name: &str, default: u64) -> u64 {
    knob_list(name, &default.to_string())
        .first()
        .copied()
        .unwrap_or(default)
}

/// One process's share of a run.
struct ProcessFigures {
    name: &'static str,
    cpu_seconds: f64,
    peak_rss: u64,
}

struct RunFigures {
    talkgroups: u64,
    rate: u64,
    calls: usize,
    lost: usize,
    /// Calls that arrived only after the first quiet period (the long wait).
    late: usize,
    seconds: f64,
    drained_in: Duration,
    to_live: Percentiles,
    to_audio: Percentiles,
    to_transcript: Percentiles,
    processes: Vec<ProcessFigures>,
    /// Mean stored message size per stream (bytes, headers included).
    message_bytes: Vec<(&'static str, u64)>,
}

#[derive(Clone, Copy, Default)]
struct Percentiles {
    p50_ms: f64,
    p99_ms: f64,
}

fn percentiles(mut samples: Vec<f64>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Percentiles {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    }
}

fn unix_ms(at: SystemTime) -> f64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// Latencies of the window's calls, and how many have no transcript yet.
struct Outcome {
    lost: usize,
    to_live: Percentiles,
    to_audio: Percentiles,
    to_transcript: Percentiles,
}

/// When each call's envelope was stored on `calls.live` (the first time), by call id: the
/// live subjects are per talkgroup, so the stream is read through once.
async fn live_stored_ms(js: &jetstream::Context) -> HashMap<String, f64> {
    let mut stored = HashMap::new();
    let Ok(mut stream) = js.get_stream(STREAM_CALLS_LIVE).await else {
        return stored;
    };
    let total = stream.info().await.map_or(0, |i| i.state.messages);
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("an ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    for _ in 0..total {
        let Some(Ok(message)) = messages.next().await else {
            break;
        };
        let (Ok(info), Ok(envelope)) = (
            message.info(),
            bcfy_proto::LiveCallEnvelope::decode(message.payload.as_ref()),
        ) else {
            continue;
        };
        let at = info.published.unix_timestamp_nanos() as f64 / 1e6;
        stored.entry(envelope.call_id).or_insert(at);
    }
    stored
}

async fn latencies(js: &jetstream::Context, calls: &[bcfy_simulator::LedgerEntry]) -> Outcome {
    let live = live_stored_ms(js).await;
    let audio = js.get_stream(STREAM_CALLS_AUDIO).await.expect("stream");
    let transcripts = js.get_stream(STREAM_TRANSCRIPTIONS).await.expect("stream");
    // Looked up call by call (the last message on the call's own subject), so a slow read
    // cannot pass for a lost call.
    let stored_ms = |stream: &stream::Stream, subject: String| {
        let stream = stream.clone();
        async move {
            stream
                .get_last_raw_message_by_subject(&subject)
                .await
                .ok()
                .map(|m| m.time.unix_timestamp_nanos() as f64 / 1e6)
        }
    };
    let found: Vec<(&String, f64, Option<f64>, Option<f64>)> = futures::stream::iter(calls)
        .map(|call| {
            let suffix = format!("{}.{}.{}", call.sid, call.tg, call.key);
            let audio_at = stored_ms(&audio, format!("calls.audio.raw.{suffix}"));
            let transcript_at = stored_ms(&transcripts, format!("transcription.complete.{suffix}"));
            let listed = unix_ms(call.available_at);
            async move { (&call.key, listed, audio_at.await, transcript_at.await) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut to_live = Vec::new();
    let mut to_audio = Vec::new();
    let mut to_transcript = Vec::new();
    let mut lost = 0;
    for (key, listed, audio_at, transcript_at) in found {
        match (audio_at, transcript_at) {
            (Some(a), Some(t)) => {
                if let Some(l) = live.get(key) {
                    to_live.push(l - listed);
                }
                to_audio.push(a - listed);
                to_transcript.push(t - listed);
            }
            _ => lost += 1,
        }
    }
    Outcome {
        lost,
        to_live: percentiles(to_live),
        to_audio: percentiles(to_audio),
        to_transcript: percentiles(to_transcript),
    }
}

async fn messages(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut stream) => stream.info().await.map_or(0, |i| i.state.messages),
        Err(_) => 0,
    }
}

/// Waits until both consumers have nothing pending and transcripts stopped arriving for
/// `quiet`.
async fn drain(js: &jetstream::Context, quiet: Duration) -> Duration {
    let started = tokio::time::Instant::now();
    let mut last_count = 0;
    let mut quiet_since = tokio::time::Instant::now();
    while started.elapsed() < DRAIN_LIMIT {
        let count = messages(js, STREAM_TRANSCRIPTIONS).await;
        if count != last_count {
            last_count = count;
            quiet_since = tokio::time::Instant::now();
        }
        let idle = pipeline_idle(js).await;
        if idle && quiet_since.elapsed() >= quiet {
            return quiet_since.duration_since(started);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    DRAIN_LIMIT
}

async fn run(talkgroups: u64, rate: u64, window: Duration, poller: &str) -> RunFigures {
    let log_filter = std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".to_owned());
    let nats = NatsServer::start().await;
    let mut sim_config = SimConfig::for_tests();
    sim_config.systems = 1;
    sim_config.talkgroups_per_system = talkgroups as u32;
    sim_config.calls_per_second = rate as f64;
    sim_config.request_log_size = 100;
    let sim = Simulator::start(sim_config).await.expect("bcfy-sim");
    let stt = pipeline::fake_stt().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let nats_url = nats.url();
    let services = pipeline::start(&nats_url, &sim, &stt, poller, "", &log_filter, dir.path());
    let mut pids: Vec<(&'static str, u32)> = vec![("nats-server", nats.pid().expect("running"))];
    for (name, service) in ["poller", "audio-fetcher", "transcriber"]
        .into_iter()
        .zip(&services)
    {
        pids.push((name, service.pid().expect("running")));
    }
    pids.push((BENCH_PROCESS, std::process::id()));

    tokio::time::sleep(WARM_UP).await;
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|(_, pid)| process_cpu_seconds(*pid))
        .collect();
    let window_start = SystemTime::now();
    tokio::time::sleep(window).await;
    let window_end = SystemTime::now();
    let cpu_after: Vec<f64> = pids
        .iter()
        .map(|(_, pid)| process_cpu_seconds(*pid))
        .collect();
    sim.stop_generating();

    let js = jetstream::new(async_nats::connect(&nats_url).await.expect("NATS"));
    let mut drained_in = drain(&js, QUIET).await;
    let mut message_bytes = Vec::new();
    for stream in [STREAM_CALLS_LIVE, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS] {
        if let Ok(mut info) = js.get_stream(stream).await
            && let Ok(info) = info.info().await
        {
            message_bytes.push((stream, info.state.bytes / info.state.messages.max(1)));
        }
    }
    let in_window: Vec<_> = sim
        .ledger()
        .into_iter()
        .filter(|c| c.available_at >= window_start && c.available_at < window_end)
        .collect();
    let mut late = 0;
    let mut outcome = latencies(&js, &in_window).await;
    if outcome.lost > 0 {
        late = outcome.lost;
        drained_in += drain(&js, LONG_QUIET).await;
        outcome = latencies(&js, &in_window).await;
        late -= outcome.lost;
    }
    let processes = pids
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|((name, pid), (before, after))| ProcessFigures {
            name,
            cpu_seconds: after - before,
            peak_rss: peak_rss_bytes(*pid),
        })
        .collect();
    if outcome.lost > 0 {
        // Something broke rather than slowed down: show why.
        for service in &services {
            let log = service.log_text();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            println!("{} log tail:", service.name());
            for line in tail.iter().rev() {
                println!("  {line}");
            }
        }
    }
    drop(services);
    RunFigures {
        talkgroups,
        rate,
        calls: in_window.len(),
        lost: outcome.lost,
        late,
        seconds: window_end
            .duration_since(window_start)
            .unwrap_or_default()
            .as_secs_f64(),
        drained_in,
        to_live: outcome.to_live,
        to_audio: outcome.to_audio,
        to_transcript: outcome.to_transcript,
        processes,
        message_bytes,
    }
}

fn print_run(f: &RunFigures) {
    let per_thousand = |cpu: f64| cpu / f.calls.max(1) as f64 * 1000.0;
    let cpu: BTreeMap<&str, f64> = f
        .processes
        .iter()
        .map(|p| (p.name, p.cpu_seconds))
        .collect();
    let fetch_path = cpu["poller"] + cpu["audio-fetcher"] + cpu["nats-server"];
    println!(
        "| {} | {} | {:.0} | {} ({}) | {:.1} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {} |",
        f.talkgroups,
        f.rate,
        f.calls as f64 / f.seconds,
        f.lost,
        f.late,
        f.drained_in.as_secs_f64(),
        f.to_live.p50_ms,
        f.to_live.p99_ms,
        f.to_audio.p50_ms,
        f.to_audio.p99_ms,
        f.to_transcript.p50_ms,
        f.to_transcript.p99_ms,
        per_thousand(fetch_path),
        per_thousand(cpu["poller"]),
        per_thousand(cpu["audio-fetcher"]),
        per_thousand(cpu["nats-server"]),
        per_thousand(cpu["transcriber"]),
        per_thousand(cpu[BENCH_PROCESS]),
        f.processes
            .iter()
            .filter(|p| p.name != BENCH_PROCESS)
            .map(|p| format!("{:.0}", p.peak_rss as f64 / MIB))
            .collect::<Vec<_>>()
            .join(" / "),
    );
}

#[tokio::main]
async fn main() {
    // Before any simulator generates calls: a build takes minutes.
    bcfy_e2e::service::build_binaries();
    let talkgroups = knob_list("BENCH_TALKGROUPS", "1,10,100");
    let rates = knob_list("BENCH_RATES", "250,500,1000,1500");
    // Long enough to hold a sweep (the poller's default `look_back_interval` is 30 s).
    let window = Duration::from_secs(knob("BENCH_SECONDS", 30));
    let poll_interval_ms = knob("BENCH_POLL_INTERVAL_MS", 1000);
    let look_back_s = knob("BENCH_LOOK_BACK_S", 120);
    let poller = format!(
        "live_producer:\n  poll_interval: {poll_interval_ms}ms\n  look_back: {look_back_s}s\n"
    );
    println!(
        "Whole pipeline, {} s windows, poll interval {poll_interval_ms} ms, look-back {look_back_s} s, {} cores.",
        window.as_secs(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "| talkgroups | target calls/s | made calls/s | lost (late) | drained in s | →live p50/p99 ms | →audio p50/p99 ms | →transcript p50/p99 ms | CPU s/1k poll+fetch+NATS | poller | audio-fetcher | nats-server | transcriber | sim + fake STT | peak RSS MiB (NATS / poller / fetcher / transcriber) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut sizes = Vec::new();
    for t in &talkgroups {
        for r in &rates {
            let figures = run(*t, *r, window, &poller).await;
            print_run(&figures);
            sizes = figures.message_bytes;
        }
    }
    println!("Mean stored message size (last run): {sizes:?} bytes");
    for size in [1_024, 12_288] {
        let per_second = raw_jetstream::ceiling(50_000, size).await;
        println!(
            "Raw JetStream ceiling, {size}-byte messages, PubAcks pipelined per 1,000: {per_second:.0} msgs/s ({:.1} MiB/s)",
            per_second * size as f64 / MIB
        );
    }
    let stored = |stream: &str, default: usize| {
        sizes
            .iter()
            .find(|(name, _)| *name == stream)
            .map_or(default, |(_, bytes)| *bytes as usize)
    };
    let call = CallSizes {
        envelope: stored(STREAM_CALLS_LIVE, 2_133),
        audio: stored(STREAM_CALLS_AUDIO, 28_413),
        transcript: stored(STREAM_TRANSCRIPTIONS, 930),
    };
    let floor = raw_jetstream::floor(FLOOR_CALLS, call).await;
    println!(
        "JetStream floor per call ({FLOOR_CALLS} calls of {call:?}, batches of 1,000), nats-server CPU s per 1,000 calls: store envelope {:.3}, deliver + store audio + ack {:.3}, deliver audio + store transcript + ack {:.3}; poll+fetch share {:.3}",
        floor.store_envelope,
        floor.fetch,
        floor.transcribe,
        floor.poll_and_fetch()
    );
}
