//! The built-in engine on the simulator's real spoken clips (flite voices, radio band-limited,
//! 8 kHz AAC and MP3), with the tiny.en model converted from the PyPI CTranslate2 wheel.

use std::sync::OnceLock;

use bcfy_simulator::clips::{self, Clip};
use bcfy_test_support::speech::{model_cache_dir, tiny_en_model_dir, word_error_rate};
use bcfy_whisper::{
    ConvertError, DecodeError, Engine, EngineError, EngineSettings, decode_16k, resolve_model,
};

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let model = resolve_model(&tiny_en_model_dir(), &model_cache_dir()).expect("converted");
        Engine::load(EngineSettings {
            model,
            threads: 2,
            beam_size: 1,
            temperature_fallback: false,
            language: Some("en".to_owned()),
            states: 2,
            max_segment_chars: 0,
        })
        .expect("loads")
    })
}

fn clip(name: &str) -> Clip {
    clips::all()
        .into_iter()
        .find(|c| c.name == name)
        .expect("a known clip")
}

#[test]
fn short_calls_are_transcribed_within_the_error_bound() {
    let mut total = 0.0;
    let names = ["clip01", "clip02", "clip03", "clip04", "clip05", "clip06"];
    for name in names {
        let clip = clip(name);
        let samples = decode_16k(clip.m4a, "audio/mp4").expect("decodes");
        let heard = engine().transcribe(&samples, None).expect("transcribes");
        let wer = word_error_rate(clip.text, &heard.text);
        eprintln!("{name}: WER {wer:.2} {:?}", heard.text);
        assert!(!heard.segments.is_empty());
        assert!(heard.average_logprob.is_some_and(|p| p < 0.0));
        total += wer;
    }
    let mean = total / names.len() as f64;
    eprintln!("mean WER {mean:.3}");
    assert!(mean <= 0.45, "mean WER {mean:.3}");
}

#[test]
fn mp3_calls_are_decoded_and_transcribed() {
    let clip = clip("clip01");
    let samples = decode_16k(clip.mp3, "audio/mpeg").expect("decodes");
    let seconds = samples.len() as f64 / 16_000.0;
    assert!((seconds - clip.duration_seconds).abs() < 0.5, "{seconds}");
    let heard = engine().transcribe(&samples, None).expect("transcribes");
    let wer = word_error_rate(clip.text, &heard.text);
    assert!(wer <= 0.4, "WER {wer:.2}: {:?}", heard.text);
}

#[test]
fn a_call_longer_than_30_seconds_is_transcribed_whole() {
    let clip = clip("clip09");
    assert!(clip.duration_seconds > 30.0);
    let samples = decode_16k(clip.m4a, "audio/mp4").expect("decodes");
    let heard = engine().transcribe(&samples, None).expect("transcribes");
    let wer = word_error_rate(clip.text, &heard.text);
    eprintln!("WER {wer:.2} {:?}", heard.text);
    assert!(wer <= 0.35, "WER {wer:.2}: {:?}", heard.text);
    // The last sentence is past the first 30 s window.
    let last = heard.segments.last().expect("segments");
    assert!(last.end > 30.0, "last segment ends at {}", last.end);
    assert!(
        heard.text.to_lowercase().contains("gas meter"),
        "{:?}",
        heard.text
    );
}

#[test]
fn a_converted_model_is_cached_and_a_ggml_file_used_as_is() {
    let cache = model_cache_dir();
    let first = resolve_model(&tiny_en_model_dir(), &cache).expect("converted");
    let written = std::fs::metadata(&first)
        .and_then(|m| m.modified())
        .expect("mtime");
    let again = resolve_model(&tiny_en_model_dir(), &cache).expect("cached");
    assert_eq!(first, again);
    let unchanged = std::fs::metadata(&again)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(written, unchanged, "not converted twice");
    assert_eq!(resolve_model(&first, &cache).expect("a file"), first);
}

#[test]
fn a_directory_without_a_model_and_a_file_that_is_not_one_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = resolve_model(dir.path(), dir.path()).expect_err("no model");
    assert!(matches!(error, ConvertError::Format(_)), "{error}");
    let not_a_model = dir.path().join("model.bin");
    std::fs::write(&not_a_model, b"not ggml").expect("written");
    let error = Engine::load(EngineSettings {
        model: not_a_model,
        threads: 1,
        beam_size: 1,
        temperature_fallback: false,
        language: None,
        states: 1,
        max_segment_chars: 0,
    })
    .expect_err("not a model");
    assert!(matches!(error, EngineError::Load { .. }), "{error}");
}

#[test]
fn silence_gives_no_text_and_garbage_is_undecodable() {
    let silence = vec![0.0f32; 16_000 * 3];
    let heard = engine().transcribe(&silence, None).expect("runs");
    // whisper.cpp says `[BLANK_AUDIO]`; that is not a transcript.
    assert_eq!(heard.text, "", "{heard:?}");
    assert!(heard.segments.is_empty() && heard.average_logprob.is_none());
    assert!(matches!(
        decode_16k(b"<html>404</html>".to_vec(), "audio/mp4"),
        Err(DecodeError::Undecodable(_))
    ));
}

#[test]
fn a_prompt_with_the_talkgroup_vocabulary_steers_the_transcript() {
    let clip = clip("clip01");
    let samples = decode_16k(clip.m4a, "audio/mp4").expect("decodes");
    let plain = engine().transcribe(&samples, None).expect("transcribes");
    let prompted = engine()
        .transcribe(
            &samples,
            Some("Engine 12, Ladder 4, Medic 7, structure fire, Main Street."),
        )
        .expect("transcribes");
    let (before, after) = (
        word_error_rate(clip.text, &plain.text),
        word_error_rate(clip.text, &prompted.text),
    );
    eprintln!(
        "{before:.2} {:?} → {after:.2} {:?}",
        plain.text, prompted.text
    );
    assert!(
        after < before,
        "{before:.2} → {after:.2}: {:?}",
        prompted.text
    );
}
