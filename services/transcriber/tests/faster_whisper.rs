//! The `openai` provider against a real OpenAI-compatible server, faster-whisper-server 0.0.3,
//! on a real spoken clip: the multipart upload is decoded and transcribed by the server, with
//! `model_field: model_name` (this server ignores OpenAI's `model` field, see
//! `docs/stt-providers.md`). Left at the default `model`, the server falls back to its
//! default name, refuses with a 400, and the error is permanent.

mod support;

use bcfy_simulator::clips;
use bcfy_test_support::faster_whisper::{FasterWhisperServer, MODEL};
use bcfy_test_support::speech::word_error_rate;
use bcfy_transcriber::config::ResponseFormat;
use bcfy_transcriber::{OpenAiProvider, TranscriptionConfig, TranscriptionError};
use bytes::Bytes;

fn config(server: &FasterWhisperServer, model_field: &str) -> TranscriptionConfig {
    TranscriptionConfig {
        endpoint_url: Some(server.url.parse().expect("a URL")),
        model: MODEL.to_owned(),
        model_field: model_field.to_owned(),
        response_format: ResponseFormat::VerboseJson,
        ..TranscriptionConfig::default()
    }
}

#[tokio::test]
async fn a_real_server_transcribes_the_upload_when_told_its_model_field() {
    let server = FasterWhisperServer::start().await;
    let clip = *clips::all()
        .iter()
        .find(|c| c.name == "clip05")
        .expect("a known clip");

    let provider = OpenAiProvider::new(&config(&server, "model_name")).expect("a client");
    let transcript = provider
        .transcribe(
            Bytes::from_static(clip.m4a),
            "audio/mp4",
            Some("Engine, Medic, Ladder"),
        )
        .await
        .expect("transcribed");
    let wer = word_error_rate(clip.text, &transcript.text);
    assert!(wer <= 0.4, "WER {wer:.2}: {:?}", transcript.text);
    assert_eq!(transcript.language.as_deref(), Some("en"));
    let duration = transcript
        .duration_seconds
        .expect("verbose_json has the duration");
    assert!((duration - clip.duration_seconds).abs() < 1.0, "{duration}");
    assert!(!transcript.segments.is_empty() && transcript.average_logprob.is_some());

    let mp3 = provider
        .transcribe(Bytes::from_static(clip.mp3), "audio/mpeg", None)
        .await
        .expect("MP3 transcribed");
    let wer = word_error_rate(clip.text, &mp3.text);
    assert!(wer <= 0.4, "WER {wer:.2}: {:?}", mp3.text);

    let openai_field = OpenAiProvider::new(&config(&server, "model")).expect("a client");
    let error = openai_field
        .transcribe(Bytes::from_static(clip.m4a), "audio/mp4", None)
        .await
        .expect_err("the server does not read `model`");
    assert!(
        matches!(&error, TranscriptionError::Status { status: 400, snippet, .. } if snippet.contains("unknown model")),
        "{error}"
    );
    assert!(!error.is_transient());
}
