//! The transcriber with the built-in whisper.cpp engine (provider `whisper`) on the simulator's
//! real spoken clips, through a real nats-server: the tiny.en model comes from the PyPI
//! CTranslate2 wheel and is converted on first use; chunked AAC, MP3 and a call over 30 s each
//! give one transcript within a word-error bound; bytes that are not audio are dead-lettered.

mod support;

use std::time::Duration;

use bcfy_bus::topology::STREAM_DEAD_LETTERS;
use bcfy_proto::DeadLetter;
use bcfy_simulator::clips;
use bcfy_test_support::eventually;
use bcfy_test_support::speech::{model_cache_dir, tiny_en_model_dir, word_error_rate};
use bcfy_transcriber::config::{Provider, TranscriberConfig, WhisperConfig};
use support::harness::{Harness, harness};

/// Loading, then three calls at about 1–4 s each on 2 cores, with room for a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(180);

fn whisper_config(h: &Harness) -> TranscriberConfig {
    let mut config = h.config();
    config.transcription.provider = Provider::Whisper;
    config.transcription.model = "tiny.en".to_owned();
    config.transcription.max_concurrency = 1;
    config.transcription.whisper = WhisperConfig {
        model_path: Some(tiny_en_model_dir()),
        model_cache_dir: model_cache_dir(),
        threads: Some(2),
        ..WhisperConfig::default()
    };
    config
}

#[tokio::test]
async fn real_calls_are_transcribed_by_the_built_in_engine() {
    let h = harness().await;
    let transcriber = h.start(whisper_config(&h));
    let all = clips::all();
    let clip = |name: &str| *all.iter().find(|c| c.name == name).expect("a known clip");
    let (short, long, mp3) = (clip("clip04"), clip("clip10"), clip("clip07"));
    assert!(long.duration_seconds > 30.0);
    let calls = [
        (
            h.publish_audio(1, short.m4a, "audio/mp4", 4096).await,
            short,
        ),
        (
            h.publish_audio(2, long.m4a, "audio/mp4", 32 * 1024).await,
            long,
        ),
        (
            h.publish_audio(3, mp3.mp3, "audio/mpeg", 64 * 1024).await,
            mp3,
        ),
    ];
    let not_audio = h
        .publish_audio(4, b"<html>404 Not Found</html>", "audio/mp4", 4096)
        .await;

    let transcripts = h.expect_transcripts_within(3, PATIENCE).await;
    let mut total_wer = 0.0;
    for (call_id, clip) in &calls {
        let (_, result) = transcripts
            .iter()
            .find(|(_, t)| t.call_id == call_id.as_str())
            .unwrap_or_else(|| panic!("no transcript for {}", clip.name));
        let wer = word_error_rate(clip.text, &result.text);
        eprintln!("{}: WER {wer:.2} {:?}", clip.name, result.text);
        assert!(wer <= 0.6, "{}: WER {wer:.2} {:?}", clip.name, result.text);
        total_wer += wer;
        assert_eq!(
            (result.provider.as_str(), result.model.as_str()),
            ("whisper", "tiny.en")
        );
        assert!(
            (result.audio_duration_seconds - clip.duration_seconds).abs() < 1.0,
            "{}: {} s",
            clip.name,
            result.audio_duration_seconds
        );
        assert!(!result.segments.is_empty() && result.average_logprob.is_some());
    }
    let mean = total_wer / calls.len() as f64;
    assert!(mean <= 0.4, "mean WER {mean:.2}");
    // The long call is transcribed past Whisper's first 30 s window.
    let (_, long_result) = transcripts
        .iter()
        .find(|(_, t)| t.call_id == calls[1].0.as_str())
        .expect("the long call");
    assert!(long_result.segments.last().is_some_and(|s| s.end > 30.0));

    let letter = eventually(PATIENCE, "the dead letter", || async {
        h.stored::<DeadLetter>(STREAM_DEAD_LETTERS).await.pop()
    })
    .await
    .1;
    assert_eq!(letter.call_id, not_audio.as_str());
    assert_eq!(letter.error_kind, "stt_undecodable", "{}", letter.reason);
    assert_eq!(
        transcriber.metric(
            "bcfy_transcriber_failures_total",
            Some(("kind", "stt_undecodable"))
        ),
        1.0
    );
    assert_eq!(
        transcriber.metric("bcfy_transcriber_transcriptions_total", None),
        3.0
    );
    transcriber.stop().await.unwrap();
}
