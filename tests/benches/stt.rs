//! `just bench-stt`: transcript quality on a radio-style call set the project generates itself
//! (`tests/benches/stt/generate.sh`, from `calls.tsv`: flite voices, 300–3000 Hz, white noise
//! at 10–25 dB SNR, squelch tails, pages before some dispatches, AAC-LC and MP3 at 8 kHz; and
//! non-speech calls: hiss, two-tone pages, long tones, a data burst, static, a key-up).
//!
//! The whole set goes through the transcriber service (release binary, its own nats-server per
//! run) once per configuration:
//!
//! - **built-in**: the built-in whisper.cpp engine, gating and cleanup on, on tiny.en with each
//!   weight type (f16, q8_0, q5_1, q5_0) and audio context (the whole 30 s window, or fitted to
//!   the call), then on Whisper base (f16 and q8_0, fitted);
//! - **faster-whisper bare**: faster-whisper-server on the same tiny.en weights with its default
//!   beam, every call sent (gating and cleanup off) — what a deployment without them gets;
//! - **faster-whisper gated**: the same server behind gating and cleanup.
//!
//! Per run it prints: word error rate (number-normalised) on the speech calls, non-speech calls
//! published with text (hallucinations), tones found against those made (both frequencies
//! within ± 2 Hz), segments carrying a unit (every call has a `srcList`), and CPU seconds per
//! audio second (the transcriber's and the server's processes). Then the CPU of decoding and
//! gating alone, as a share of the first run's. Knobs: `BENCH_STT_DIR` (a generated set),
//! `BENCH_STT_SHOW=1` (each speech call's reference and transcript), `BENCH_STT_BUILTIN_ONLY=1`,
//! `BENCH_STT_QUICK=1` (one built-in run: the default, tiny.en f16 fitted), `BENCH_STT_FALLBACK=1`
//! (the built-in engine's temperature fallback on).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::subject::{self, Shard};
use bcfy_bus::topology::{STREAM_DEAD_LETTERS, STREAM_TRANSCRIPTIONS, Topology, TopologyConfig};
use bcfy_bus::{CallId, Publisher};
use bcfy_e2e::Service;
use bcfy_e2e::bench::knob;
use bcfy_proto::{
    AudioPayloadEvent, Call, SourceEntry, ToneKind, TranscriptionResult, TrunkRecorderMetadata,
};
use bcfy_test_support::faster_whisper::{FasterWhisperServer, MODEL};
use bcfy_test_support::nats::stream_messages;
use bcfy_test_support::proc_stat::process_cpu_seconds;
use bcfy_test_support::speech::{
    base_model_dir, model_cache_dir, tiny_en_model_dir, word_error_rate,
};
use bcfy_test_support::{NatsServer, eventually};
use bcfy_whisper::{AudioContext, Weights};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

/// How long one run may take.
const PATIENCE: Duration = Duration::from_secs(1800);
const SHARD: Shard = Shard {
    sid: 7001,
    tg: 2345,
};

/// One generated call, from the manifest.
#[derive(Debug, Clone)]
struct TestCall {
    content_type: String,
    speech: bool,
    seconds: f64,
    /// `two_tone:A/B` or `single:Hz`, or `-`.
    tones: String,
    text: String,
    audio: Vec<u8>,
}

fn set_dir() -> PathBuf {
    std::env::var_os("BENCH_STT_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-stt/calls"),
        PathBuf::from,
    )
}

fn load_set() -> Vec<TestCall> {
    let dir = set_dir();
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap_or_else(|e| {
        panic!(
            "no call set in {}: run `just bench-stt` (it generates one): {e}",
            dir.display()
        )
    });
    manifest
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            TestCall {
                content_type: fields[1].to_owned(),
                speech: fields[2] == "speech",
                seconds: fields[3].parse().expect("seconds"),
                tones: fields[4].to_owned(),
                text: fields.get(5).copied().unwrap_or_default().to_owned(),
                audio: std::fs::read(dir.join(fields[0])).expect("the call's audio"),
            }
        })
        .collect()
}

/// Two units on every call: dispatch from the start, a responder from 45 % in.
fn call_metadata(call: &TestCall) -> Call {
    let source = |src: i64, pos: f64, tag: Option<&str>| SourceEntry {
        src: Some(src),
        pos: Some(pos),
        tag: tag.map(str::to_owned),
        ..SourceEntry::default()
    };
    Call {
        call_duration: Some(call.seconds.round() as i64),
        metadata: Some(TrunkRecorderMetadata {
            src_list: vec![
                source(1001, 0.0, Some("Dispatch")),
                source(2002, (call.seconds * 0.45 * 100.0).round() / 100.0, None),
            ],
            ..TrunkRecorderMetadata::default()
        }),
        ..Call::default()
    }
}

/// What one run measured.
struct Figures {
    name: &'static str,
    wer: f64,
    hallucinated: usize,
    non_speech: usize,
    tones_found: usize,
    tones_made: usize,
    segments_with_unit: usize,
    segments: usize,
    cpu_per_audio_second: f64,
    cpu_seconds: f64,
}

impl Figures {
    fn print(&self) {
        println!(
            "| {} | {:.3} | {} / {} | {} / {} | {} / {} | {:.3} ({:.1} s) |",
            self.name,
            self.wer,
            self.hallucinated,
            self.non_speech,
            self.tones_found,
            self.tones_made,
            self.segments_with_unit,
            self.segments,
            self.cpu_per_audio_second,
            self.cpu_seconds
        );
    }
}

/// The tones a manifest entry says were made: (kind, A, B).
fn made(tones: &str) -> Option<(ToneKind, f64, f64)> {
    let (kind, hz) = tones.split_once(':')?;
    let (a, b) = hz.split_once('/').unwrap_or((hz, "0"));
    let kind = match kind {
        "two_tone" => ToneKind::TwoTone,
        "single" => ToneKind::Single,
        _ => return None,
    };
    Some((kind, a.parse().ok()?, b.parse().ok()?))
}

async fn run(
    name: &'static str,
    calls: &[TestCall],
    transcription: &str,
    server_pid: Option<u32>,
) -> Figures {
    let nats = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .expect("topology");
    let dir = tempfile::tempdir().expect("temp dir");
    let service = Service::start(
        "transcriber",
        &format!(
            "nats:\n  urls: [\"{}\"]\nadmin:\n  listen_addr: 127.0.0.1:{}\nlog:\n  filter: warn\n{transcription}",
            nats.url(),
            bcfy_e2e::yaml::free_port()
        ),
        dir.path(),
    );
    let pid = service.pid().expect("running");
    let cpu = || process_cpu_seconds(pid) + server_pid.map_or(0.0, process_cpu_seconds);
    let before = cpu();
    let publisher = Publisher::new(js.clone());
    let mut ids = Vec::new();
    for (n, call) in calls.iter().enumerate() {
        let id = CallId::parse(&format!("1502-{}-2345-b{n:04}", 1_767_225_600 + n)).expect("id");
        let event = AudioPayloadEvent {
            call_id: id.to_string(),
            payload: call.audio.clone().into(),
            content_type: call.content_type.clone(),
            r#final: true,
            total_size: call.audio.len() as u64,
            sha256: Sha256::digest(&call.audio)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            call: Some(call_metadata(call)),
            ..AudioPayloadEvent::default()
        };
        publisher
            .publish(subject::audio(SHARD, &id), id.as_str(), &event)
            .await
            .expect("published");
        ids.push(id);
    }
    // Without gating an empty answer is a dead letter (`stt_empty_text`), not a transcript.
    eventually(
        PATIENCE,
        "every call transcribed or dead-lettered",
        || async {
            let transcripts = stream_messages(&js, STREAM_TRANSCRIPTIONS).await;
            let dead = stream_messages(&js, STREAM_DEAD_LETTERS).await;
            (transcripts + dead >= calls.len() as u64).then_some(())
        },
    )
    .await;
    let stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.expect("stream");
    let stored = stream_messages(&js, STREAM_TRANSCRIPTIONS).await;
    let cpu_seconds = cpu() - before;
    let mut results = Vec::new();
    for sequence in 1..=stored {
        let message = stream.get_raw_message(sequence).await.expect("stored");
        results.push(TranscriptionResult::decode(message.payload).expect("a transcript"));
    }
    let empty = TranscriptionResult::default();
    // A call without a transcript was dead-lettered for an empty answer: no text, no tones.
    let result_of = |id: &CallId| {
        results
            .iter()
            .find(|r| r.call_id == id.as_str())
            .unwrap_or(&empty)
    };
    let (mut wer_sum, mut speech) = (0.0, 0);
    let (mut hallucinated, mut non_speech) = (0, 0);
    let (mut tones_found, mut tones_made) = (0, 0);
    let (mut segments_with_unit, mut segments) = (0, 0);
    for (call, id) in calls.iter().zip(&ids) {
        let result = result_of(id);
        if call.speech {
            speech += 1;
            let wer = word_error_rate(&call.text, &result.text);
            wer_sum += wer;
            if knob("BENCH_STT_SHOW", 0) > 0 {
                println!("  {name} WER {wer:.2}: {} | {}", call.text, result.text);
            }
        } else {
            non_speech += 1;
            hallucinated += usize::from(!result.text.trim().is_empty());
        }
        if let Some((kind, a, b)) = made(&call.tones) {
            tones_made += 1;
            let found = result.tones.iter().any(|tone| {
                tone.kind() == kind
                    && (tone.frequency_hz - a).abs() <= 2.0
                    && (kind != ToneKind::TwoTone || (tone.second_frequency_hz - b).abs() <= 2.0)
            });
            tones_found += usize::from(found);
        }
        segments += result.segments.len();
        segments_with_unit += result.segments.iter().filter(|s| s.unit.is_some()).count();
    }
    drop(service);
    let audio_seconds: f64 = calls.iter().map(|c| c.seconds).sum();
    Figures {
        name,
        wer: wer_sum / f64::from(speech.max(1)),
        hallucinated,
        non_speech,
        tones_found,
        tones_made,
        segments_with_unit,
        segments,
        cpu_per_audio_second: cpu_seconds / audio_seconds,
        cpu_seconds,
    }
}

/// CPU seconds of decoding and gating (voice activity and tones) of the whole set, on this
/// thread.
fn gating_cpu_seconds(calls: &[TestCall]) -> f64 {
    let before = process_cpu_seconds(std::process::id());
    for call in calls {
        let samples = bcfy_whisper::decode_16k(call.audio.clone(), &call.content_type)
            .expect("the set decodes");
        std::hint::black_box(bcfy_signal::listen(
            &samples,
            &bcfy_signal::SpeechSettings::default(),
        ));
    }
    process_cpu_seconds(std::process::id()) - before
}

#[tokio::main]
async fn main() {
    let calls = load_set();
    let audio_seconds: f64 = calls.iter().map(|c| c.seconds).sum();
    println!(
        "{} calls ({} speech), {audio_seconds:.1} s of audio, from {}",
        calls.len(),
        calls.iter().filter(|c| c.speech).count(),
        set_dir().display()
    );
    let builtin = |model: &str, dir: &std::path::Path, weights: Weights, context: AudioContext| {
        format!(
            "transcription:\n  provider: whisper\n  model: {model}\n  language: en\n  max_concurrency: 1\n  whisper:\n    model_path: {}\n    model_cache_dir: {}\n    threads: 2\n    temperature_fallback: {}\n    weights: {}\n    audio_context: {}\n",
            dir.display(),
            model_cache_dir().display(),
            knob("BENCH_STT_FALLBACK", 0) > 0,
            weights.name(),
            match context {
                AudioContext::Full => "full",
                AudioContext::Fit => "fit",
            }
        )
    };
    let tiny = tiny_en_model_dir();
    let mut variants = vec![
        (
            "built-in tiny.en f16, full window",
            Weights::F16,
            AudioContext::Full,
        ),
        (
            "built-in tiny.en f16, fitted window",
            Weights::F16,
            AudioContext::Fit,
        ),
        (
            "built-in tiny.en q8_0, full window",
            Weights::Q8_0,
            AudioContext::Full,
        ),
        (
            "built-in tiny.en q8_0, fitted window",
            Weights::Q8_0,
            AudioContext::Fit,
        ),
        (
            "built-in tiny.en q5_1, fitted window",
            Weights::Q5_1,
            AudioContext::Fit,
        ),
        (
            "built-in tiny.en q5_0, fitted window",
            Weights::Q5_0,
            AudioContext::Fit,
        ),
    ];
    if knob("BENCH_STT_QUICK", 0) > 0 {
        variants.retain(|(_, weights, context)| {
            *weights == Weights::default() && *context == AudioContext::default()
        });
    }
    let mut figures = Vec::new();
    for (name, weights, context) in variants {
        let config = builtin("tiny.en", &tiny, weights, context);
        figures.push(run(name, &calls, &config, None).await);
    }
    if knob("BENCH_STT_QUICK", 0) == 0 {
        for (name, weights) in [
            ("built-in base f16, fitted window", Weights::F16),
            ("built-in base q8_0, fitted window", Weights::Q8_0),
        ] {
            let config = builtin("base", &base_model_dir(), weights, AudioContext::Fit);
            figures.push(run(name, &calls, &config, None).await);
        }
    }
    if knob("BENCH_STT_BUILTIN_ONLY", 0) == 0 {
        let server = FasterWhisperServer::start_with_beam(None).await;
        let server_config = |gated: bool| {
            format!(
                "transcription:\n  provider: openai\n  endpoint_url: {}\n  model: {MODEL}\n  model_field: model_name\n  response_format: verbose_json\n  max_concurrency: 1\n  request_timeout: 300s\n  gating:\n    enabled: {gated}\n  cleanup:\n    enabled: {gated}\n",
                server.url
            )
        };
        for (name, gated) in [
            ("faster-whisper, bare", false),
            ("faster-whisper, gated", true),
        ] {
            figures.push(run(name, &calls, &server_config(gated), server.pid()).await);
        }
    }
    println!(
        "\n| run | WER (speech) | non-speech with text | tones found / made | segments with a unit | CPU s per audio s |"
    );
    println!("|---|---|---|---|---|---|");
    for f in &figures {
        f.print();
    }
    let gating = gating_cpu_seconds(&calls);
    println!(
        "\ndecoding and gating alone: {gating:.2} CPU s for {audio_seconds:.1} s of audio ({:.4} per audio s), {:.1} % of the first run's CPU",
        gating / audio_seconds,
        100.0 * gating / figures[0].cpu_seconds
    );
}
