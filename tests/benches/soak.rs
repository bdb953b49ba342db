//! `just soak`: the pipeline for an hour at 50 calls/s with the simulator's faults on (resets,
//! 503s and 429s, slow answers, cut-off audio and JSON, expired sessions), everything on this
//! box: nats-server, the poller, audio fetcher and transcriber as release binaries, the
//! simulator and a fast fake STT in this process.
//!
//! Each minute it prints every process's resident memory and open file descriptors, and
//! nats-server's store on disk beside the streams' stored bytes and their configured limits.
//! At the end: each process's growth from minute 10 to its largest later sample (target ≤ 5 %),
//! and the calls listed by the simulator during the run that have no transcript once the
//! pipeline has drained (target 0).
//!
//! Knobs: `SOAK_MINUTES` (60), `SOAK_RATE` (calls/s, 50), `SOAK_TALKGROUPS` (20), `SOAK_LOG`
//! (the services' log filter, `warn`). The services inherit the environment, so `BCFY_*`
//! settings reach them: `BCFY_TOPOLOGY__CALLS_AUDIO__MAX_AGE=8m` (with a `DUPLICATE_WINDOW` no
//! longer) runs the audio past its limit within the hour. `TRANSCRIPTIONS` must keep every
//! transcript of the run for the loss count.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::path::Path;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::topology::{STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE, STREAM_TRANSCRIPTIONS};
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::bench::knob;
use bcfy_e2e::pipeline;
use bcfy_simulator::{FaultRates, SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use bcfy_test_support::proc_stat::status_bytes;
use futures::StreamExt as _;

const MIB: f64 = 1024.0 * 1024.0;
/// Samples before this minute are the warm-up the growth is measured from.
const BASELINE_MINUTE: usize = 10;
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

/// (stored bytes, `max_bytes`) of each pipeline stream.
async fn stream_bytes(js: &jetstream::Context) -> Vec<(&'static str, u64, i64)> {
    let mut out = Vec::new();
    for name in [STREAM_CALLS_LIVE, STREAM_CALLS_AUDIO, STREAM_TRANSCRIPTIONS] {
        if let Ok(mut stream) = js.get_stream(name).await
            && let Ok(info) = stream.info().await
        {
            out.push((name, info.state.bytes, info.config.max_bytes));
        }
    }
    out
}

/// The calls of `calls` without a transcript on their subject.
async fn without_transcript(
    js: &jetstream::Context,
    calls: &[bcfy_simulator::LedgerEntry],
) -> usize {
    let stream = js
        .get_stream(STREAM_TRANSCRIPTIONS)
        .await
        .expect("the stream");
    futures::stream::iter(calls)
        .map(|call| {
            let stream = stream.clone();
            let subject = format!(
                "transcription.complete.{}.{}.{}",
                call.sid, call.tg, call.key
            );
            async move {
                stream
                    .get_last_raw_message_by_subject(&subject)
                    .await
                    .is_err()
            }
        })
        .buffer_unordered(64)
        .filter(|missing| std::future::ready(*missing))
        .count()
        .await
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
    let services = pipeline::start(&nats.url(), &sim, &stt, "", &log_filter, dir.path());
    let mut pids: Vec<(&str, u32)> = vec![("nats-server", nats.pid().expect("running"))];
    for (name, service) in ["poller", "audio-fetcher", "transcriber"]
        .into_iter()
        .zip(&services)
    {
        pids.push((name, service.pid().expect("running")));
    }
    pids.push(("bench (sim, fake STT)", std::process::id()));
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let started = SystemTime::now();
    println!("soak: {minutes} min at {rate} calls/s over {talkgroups} talkgroups, faults on\n");
    let names: Vec<&str> = pids.iter().map(|(n, _)| *n).collect();
    println!(
        "| minute | calls made | transcripts | {} | store MiB | streams MiB (stored / limit) |",
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
        let transcripts = match js.get_stream(STREAM_TRANSCRIPTIONS).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        };
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
                .map(|(name, stored, limit)| format!(
                    "{name} {:.0} / {:.0}",
                    *stored as f64 / MIB,
                    *limit as f64 / MIB
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        samples.push(readings);
    }
    sim.stop_generating();
    let drain_started = tokio::time::Instant::now();
    while !pipeline_idle(&js).await && drain_started.elapsed() < DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let calls: Vec<_> = sim
        .ledger()
        .into_iter()
        .filter(|c| c.available_at >= started)
        .collect();
    let lost = without_transcript(&js, &calls).await;
    println!(
        "\n{} calls listed during the run, {lost} without a transcript after draining ({:.0} s)",
        calls.len(),
        drain_started.elapsed().as_secs_f64()
    );
    if samples.len() > BASELINE_MINUTE {
        println!(
            "\n| process | RSS at minute {BASELINE_MINUTE} → largest after (growth) | fds at minute {BASELINE_MINUTE} → largest after |"
        );
        println!("|---|---|---|");
        for (p, name) in names.iter().enumerate() {
            let base = samples[BASELINE_MINUTE - 1][p];
            let later = &samples[BASELINE_MINUTE..];
            let rss = later.iter().map(|s| s[p].rss).max().unwrap_or(base.rss);
            let fds = later.iter().map(|s| s[p].fds).max().unwrap_or(base.fds);
            println!(
                "| {name} | {:.1} → {:.1} MiB ({:+.1} %) | {} → {} |",
                base.rss as f64 / MIB,
                rss as f64 / MIB,
                100.0 * (rss as f64 - base.rss as f64) / base.rss.max(1) as f64,
                base.fds,
                fds
            );
        }
    }
    drop(services);
}
