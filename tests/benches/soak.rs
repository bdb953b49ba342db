//! `just soak`: the pipeline for an hour at 50 calls/s with the simulator's faults on (resets,
//! 503s and 429s, slow answers, cut-off audio and JSON, expired sessions), everything on this
//! box: nats-server, the poller, audio fetcher and transcriber as release binaries, the
//! simulator and a fast fake STT in this process.
//!
//! The three streams keep `SOAK_KEEP_MINUTES` (8) of calls, with a duplicate window of half
//! that, so within the hour the store reaches its limits and stops growing; what memory does
//! after that is what a long-running deployment sees. Transcripts are counted as they are
//! stored (an ordered consumer from the stream's start), since the stream no longer holds the
//! early ones at the end.
//!
//! Each minute it prints every process's resident memory and open file descriptors, and
//! nats-server's store on disk beside the streams' stored bytes and their configured limits.
//! At the end: each process's growth after the warm-up, as the mean of minutes 11–20 against the
//! mean of the last ten (target ≤ 5 %; needs 30 minutes or more) beside minute 10 against its
//! largest later sample (the swing with calls in flight); the calls listed by the simulator
//! during the run that got no transcript once the pipeline has drained (target 0), and those
//! that got more than one.
//!
//! Knobs: `SOAK_MINUTES` (60), `SOAK_RATE` (calls/s, 50), `SOAK_TALKGROUPS` (20),
//! `SOAK_KEEP_MINUTES` (8), `SOAK_LOG` (the services' log filter, `warn`). The services
//! inherit the environment (`just soak` sets `MALLOC_ARENA_MAX=2` as the image does).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::stored;
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE, STREAM_TRANSCRIPTIONS};
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::bench::knob;
use bcfy_e2e::pipeline;
use bcfy_proto::TranscriptionResult;
use bcfy_simulator::{FaultRates, SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use bcfy_test_support::proc_stat::status_bytes;
use futures::StreamExt as _;
use prost::Message as _;

const MIB: f64 = 1024.0 * 1024.0;
/// Samples before this minute are the warm-up the growth is measured from.
const BASELINE_MINUTE: usize = 10;
/// Minutes averaged at each end of the growth table: the services' memory moves with the calls
/// in flight, so one sample against another says little.
const WINDOW: usize = 10;
/// Longest wait for the pipeline to drain at the end.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// One process's readings at one minute.
#[derive(Debug, Clone, Copy)]
struct Reading {
    rss: u64,
    fds: usize,
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => pending.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// (stored bytes, `max_bytes`, `max_age`) of each pipeline stream.
async fn stream_bytes(js: &jetstream::Context) -> Vec<(&'static str, u64, i64, Duration)> {
    let mut out = Vec::new();
    for name in [STREAM_CALLS_LIVE, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS] {
        if let Ok(mut stream) = js.get_stream(name).await
            && let Ok(info) = stream.info().await
        {
            out.push((
                name,
                info.state.bytes,
                info.config.max_bytes,
                info.config.max_age,
            ));
        }
    }
    out
}

fn percent(from: f64, to: f64) -> f64 {
    100.0 * (to - from) / from.max(1.0)
}

/// Each process's growth after the warm-up: minute [`BASELINE_MINUTE`] against the largest
/// later sample, and the mean of the [`WINDOW`] minutes after it against the mean of the last
/// [`WINDOW`]; file descriptors from minute [`BASELINE_MINUTE`] to the most later.
fn growth_table(names: &[&str], samples: &[Vec<Reading>]) {
    let mean_rss = |minutes: &[Vec<Reading>], p: usize| {
        minutes.iter().map(|s| s[p].rss as f64).sum::<f64>() / minutes.len() as f64 / MIB
    };
    println!(
        "\n| process | RSS minute {BASELINE_MINUTE} → largest after | mean RSS minutes {}–{} → last {WINDOW} | fds minute {BASELINE_MINUTE} → most after |",
        BASELINE_MINUTE + 1,
        BASELINE_MINUTE + WINDOW
    );
    println!("|---|---|---|---|");
    for (p, name) in names.iter().enumerate() {
        let base = samples[BASELINE_MINUTE - 1][p];
        let later = &samples[BASELINE_MINUTE..];
        let largest = later.iter().map(|s| s[p].rss).max().unwrap_or(base.rss) as f64 / MIB;
        let fds = later.iter().map(|s| s[p].fds).max().unwrap_or(base.fds);
        let early = mean_rss(&later[..WINDOW], p);
        let last = mean_rss(&samples[samples.len() - WINDOW..], p);
        let base_rss = base.rss as f64 / MIB;
        println!(
            "| {name} | {base_rss:.1} → {largest:.1} MiB ({:+.1} %) | {early:.1} → {last:.1} MiB ({:+.1} %) | {} → {fds} |",
            percent(base_rss, largest),
            percent(early, last),
            base.fds,
        );
    }
}

/// How many transcripts each call got, counted as `TRANSCRIPTIONS` stores them.
type Arrivals = Arc<Mutex<HashMap<String, u32>>>;

/// Counts every transcript stored from the stream's first message on, into `arrivals`; after a
/// read error it opens the stream again after the last one counted.
async fn count_transcripts(js: jetstream::Context, arrivals: Arrivals) {
    let mut next = 1;
    loop {
        let Ok(mut messages) = stored::from_sequence(&js, STREAM_TRANSCRIPTIONS, next).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok(message)) = messages.next().await {
            if let Ok(info) = message.info() {
                next = info.stream_sequence + 1;
            }
            let result = TranscriptionResult::decode(message.payload.clone()).expect("decodes");
            *arrivals
                .lock()
                .expect("not poisoned")
                .entry(result.call_id)
                .or_default() += 1;
        }
    }
}

#[tokio::main]
async fn main() {
    let minutes = usize::try_from(knob("SOAK_MINUTES", 60)).unwrap_or(60);
    let rate = knob("SOAK_RATE", 50);
    let talkgroups = knob("SOAK_TALKGROUPS", 20);
    let log_filter = std::env::var("SOAK_LOG").unwrap_or_else(|_| "warn".to_owned());
    // Before the simulator starts making calls.
    bcfy_e2e::service::build_binaries();
    let nats = NatsServer::start().await;
    let mut sim_config = SimConfig::for_tests();
    sim_config.systems = 1;
    sim_config.talkgroups_per_system = u32::try_from(talkgroups).unwrap_or(20);
    sim_config.calls_per_second = rate as f64;
    sim_config.request_log_size = 100;
    sim_config.faults = FaultRates {
        slow_delay: Duration::from_secs(2),
        malformed_json_rate: 0.005,
        session_expiry_rate: 0.005,
        ..FaultRates::every(0.01)
    };
    let sim = Simulator::start(sim_config).await.expect("bcfy-sim");
    let stt = pipeline::fake_stt().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let keep = knob("SOAK_KEEP_MINUTES", 8).max(2);
    let limits = format!(
        "    max_age: {keep}m\n    duplicate_window: {}m\n",
        keep / 2
    );
    let topology = format!(
        "topology:\n  calls_live:\n{limits}  calls_audio:\n{limits}  transcriptions:\n{limits}"
    );
    let services = pipeline::start(
        &nats.url(),
        &sim,
        &stt,
        "",
        &topology,
        &log_filter,
        dir.path(),
    );
    let mut pids: Vec<(&str, u32)> = vec![("nats-server", nats.pid().expect("running"))];
    for (name, service) in ["poller", "audio-fetcher", "transcriber"]
        .into_iter()
        .zip(&services)
    {
        pids.push((name, service.pid().expect("running")));
    }
    pids.push(("bench (sim, fake STT)", std::process::id()));
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let arrivals = Arrivals::default();
    let counter = tokio::spawn(count_transcripts(js.clone(), Arc::clone(&arrivals)));
    let started = SystemTime::now();
    println!(
        "soak: {minutes} min at {rate} calls/s over {talkgroups} talkgroups, faults on, \
         streams keep {keep} min\n"
    );
    let names: Vec<&str> = pids.iter().map(|(n, _)| *n).collect();
    println!(
        "| minute | calls made | transcripts | {} | store MiB | streams MiB (stored / limit, max age) |",
        names
            .iter()
            .map(|n| format!("{n} RSS MiB / fds"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|{}", "---|".repeat(5 + names.len()));
    let mut samples: Vec<Vec<Reading>> = Vec::new();
    for minute in 1..=minutes {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let readings: Vec<Reading> = pids
            .iter()
            .map(|(_, pid)| Reading {
                rss: status_bytes(*pid, "VmRSS"),
                fds: open_fds(*pid),
            })
            .collect();
        let streams = stream_bytes(&js).await;
        let transcripts: u32 = arrivals.lock().expect("not poisoned").values().sum();
        println!(
            "| {minute} | {} | {transcripts} | {} | {:.0} | {} |",
            sim.ledger().len(),
            readings
                .iter()
                .map(|r| format!("{:.1} / {}", r.rss as f64 / MIB, r.fds))
                .collect::<Vec<_>>()
                .join(" | "),
            bytes_under(&nats.store_dir()) as f64 / MIB,
            streams
                .iter()
                .map(|(name, stored, limit, age)| format!(
                    "{name} {:.0} / {:.0} ({} min)",
                    *stored as f64 / MIB,
                    *limit as f64 / MIB,
                    age.as_secs() / 60
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        samples.push(readings);
    }
    sim.stop_generating();
    let calls: Vec<_> = sim
        .ledger()
        .into_iter()
        .filter(|c| c.available_at >= started)
        .collect();
    // Drained once every call has its transcript and nothing is left in flight (so a late
    // duplicate is counted too), or at the limit: the poller may not have listed the last
    // calls yet when the fetcher and transcriber are already idle.
    let drain_started = tokio::time::Instant::now();
    while drain_started.elapsed() < DRAIN_LIMIT {
        let complete = {
            let arrivals = arrivals.lock().expect("not poisoned");
            calls.iter().all(|c| arrivals.contains_key(&c.key))
        };
        if complete && pipeline_idle(&js).await {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drained = drain_started.elapsed();
    counter.abort();
    let arrivals = arrivals.lock().expect("not poisoned");
    let lost = calls
        .iter()
        .filter(|c| !arrivals.contains_key(&c.key))
        .count();
    let doubled = calls
        .iter()
        .filter(|c| arrivals.get(&c.key).is_some_and(|n| *n > 1))
        .count();
    println!(
        "\n{} calls listed during the run: {lost} without a transcript after draining ({:.0} s), \
         {doubled} with more than one",
        calls.len(),
        drained.as_secs_f64()
    );
    if samples.len() >= BASELINE_MINUTE + 2 * WINDOW {
        growth_table(&names, &samples);
    } else {
        println!(
            "no growth table: it needs {} minutes or more",
            BASELINE_MINUTE + 2 * WINDOW
        );
    }
    drop(services);
}
