//! `just bench` load run for the transcriber (prints figures; not a timed test).
//!
//! 1. **Built-in engine alone**: a bare loop that decodes and transcribes the simulator's 12
//!    spoken clips (`BENCH_ROUNDS` times, default 1) with tiny.en, greedy, 2 threads: calls/s and
//!    the real-time factor (processing seconds per audio second).
//! 2. **The service with the same engine and clips**: the calls wait in `CALLS_AUDIO`, the
//!    transcriber (provider `whisper`, one call at a time, 2 threads) takes them through
//!    JetStream; calls/s from the moment it is ready to the last transcript stored, and the ratio
//!    to (1): how busy the service keeps the engine (target ≥ 95 %). The phases run engine,
//!    service, service, engine, and the ratio uses the totals, so a drift in the machine's load
//!    is shared.
//! 3. **Overhead per call**: the service with the `openai` provider against an in-process fake
//!    that answers at once (`BENCH_FAKE_CALLS`, default 2000, of 10 kB, 16 at a time): calls/s.

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_simulator::clips;
use bcfy_test_support::speech::{model_cache_dir, tiny_en_model_dir};
use bcfy_transcriber::config::WhisperConfig;
use bcfy_whisper::{Engine, EngineSettings, decode_16k, resolve_model};
use support::harness::harness;
use tokio::time::Instant;

const THREADS: usize = 2;

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Nanoseconds since the Unix epoch.
fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Waits until `count` transcripts are stored (checking a few times a second, so the checks
/// cost the engine nothing); returns the seconds from `started` (epoch nanoseconds) to the
/// moment the stream stored the last one.
async fn seconds_until(js: &jetstream::Context, count: u64, started: i128) -> f64 {
    loop {
        let mut stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        if state.messages >= count {
            return (state.last_timestamp.unix_timestamp_nanos() - started) as f64 / 1e9;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn bare_engine(calls: &[clips::Clip], model: &std::path::Path) -> (f64, f64) {
    let engine = Engine::load(EngineSettings {
        model: model.to_owned(),
        threads: THREADS,
        beam_size: 1,
        temperature_fallback: false,
        language: Some("en".to_owned()),
        states: 1,
        max_segment_chars: WhisperConfig::default().max_segment_chars,
        audio_context: WhisperConfig::default().audio_context,
    })
    .expect("the engine loads");
    let started = Instant::now();
    let mut audio_seconds = 0.0;
    for clip in calls {
        let samples = decode_16k(clip.m4a, "audio/mp4").expect("decodes");
        audio_seconds += samples.len() as f64 / 16_000.0;
        engine.transcribe(&samples, None).expect("transcribes");
    }
    (started.elapsed().as_secs_f64(), audio_seconds)
}

async fn service_with_engine(calls: &[clips::Clip], model: &std::path::Path) -> f64 {
    let h = harness().await;
    for (n, clip) in calls.iter().enumerate() {
        h.publish_audio(n as u32 + 1, clip.m4a, "audio/mp4", 256 * 1024)
            .await;
    }
    let mut config = h.config();
    config.transcription.provider = bcfy_transcriber::config::Provider::Whisper;
    config.transcription.max_concurrency = 1;
    config.transcription.whisper.model_path = Some(model.to_owned());
    config.transcription.whisper.threads = Some(THREADS);
    config.consumer.ack_wait = Duration::from_secs(30);
    let running = h.start(config);
    while !running.readiness().is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = seconds_until(&h.js, calls.len() as u64, now_nanos()).await;
    running.stop().await.expect("stops");
    seconds
}

async fn service_with_fake(count: usize) -> f64 {
    let h = harness().await;
    let audio = vec![7u8; 10_000];
    for n in 0..count {
        h.publish_audio(n as u32 + 1, &audio, "audio/mp4", 256 * 1024)
            .await;
    }
    let mut config = h.config();
    config.transcription.max_concurrency = 16;
    let running = h.start(config);
    while !running.readiness().is_ready() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = seconds_until(&h.js, count as u64, now_nanos()).await;
    running.stop().await.expect("stops");
    seconds
}

fn main() {
    let rounds = knob("BENCH_ROUNDS", 1);
    let fake_calls = knob("BENCH_FAKE_CALLS", 2000);
    let model = resolve_model(
        &tiny_en_model_dir(),
        &model_cache_dir(),
        WhisperConfig::default().weights,
    )
    .expect("the model");
    let calls: Vec<clips::Clip> = (0..rounds).flat_map(|_| clips::all()).collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");

    // Engine, service, service, engine: drift in the machine's load falls on both sides.
    let (mut bare_total, mut service_total) = (0.0, 0.0);
    for phase in ["engine", "service", "service", "engine"] {
        let seconds = if phase == "engine" {
            let (seconds, audio_seconds) = bare_engine(&calls, &model);
            bare_total += seconds;
            println!(
                "engine alone:        {} calls ({audio_seconds:.0} s of audio) in {seconds:.1} s = {:.3} calls/s, real-time factor {:.3}",
                calls.len(),
                calls.len() as f64 / seconds,
                seconds / audio_seconds
            );
            continue;
        } else {
            runtime.block_on(service_with_engine(&calls, &model))
        };
        service_total += seconds;
        println!(
            "service + engine:    {} calls in {seconds:.1} s = {:.3} calls/s",
            calls.len(),
            calls.len() as f64 / seconds
        );
    }
    println!(
        "the service keeps the engine {:.1} % as busy as the bare loop (both runs of each; target >= 95 %)",
        100.0 * bare_total / service_total
    );

    let fake_seconds = runtime.block_on(service_with_fake(fake_calls));
    println!(
        "service + fake STT:  {fake_calls} calls of 10 kB in {fake_seconds:.2} s = {:.0} calls/s ({:.2} ms per call)",
        fake_calls as f64 / fake_seconds,
        1000.0 * fake_seconds / fake_calls as f64
    );
}
