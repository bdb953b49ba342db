//! The `openai` provider against the fake OpenAI-compatible server over real HTTP: the
//! multipart fields, file name and type, auth header, both answer formats and every error path.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use bcfy_test_support::FakeStt;
use bcfy_test_support::stt::{Field, Scripted};
use bcfy_transcriber::config::ResponseFormat;
use bcfy_transcriber::{OpenAiProvider, TranscriptionConfig, TranscriptionError};
use bytes::Bytes;
use support::{assert_unreachable, provider};

fn text(field: &Field) -> &str {
    std::str::from_utf8(&field.bytes).unwrap()
}

const AUDIO: &[u8] = b"\x00\x00\x00\x18ftypM4A not really aac";

#[tokio::test]
async fn the_whole_call_is_uploaded_once_with_every_field() {
    let server = FakeStt::recording().await;
    server.answer((
        StatusCode::OK,
        vec![],
        r#"{"text":" Engine 5 responding. "}"#,
    ));
    let provider = provider(&server, |c| {
        c.api_key = Some("sk-test-key".to_owned().into());
        c.response_format = ResponseFormat::Json;
    });
    let transcript = provider
        .transcribe(
            Bytes::from_static(AUDIO),
            "audio/mp4",
            Some("Engine 5, Medic 12"),
        )
        .await
        .unwrap();
    assert_eq!(transcript.text, "Engine 5 responding.");
    assert_eq!(
        transcript.language.as_deref(),
        Some("en"),
        "the one asked for"
    );
    assert!(transcript.segments.is_empty() && transcript.average_logprob.is_none());

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test-key"));
    let file = &request.fields["file"];
    assert_eq!(file.file_name.as_deref(), Some("call.m4a"));
    assert_eq!(file.content_type.as_deref(), Some("audio/mp4"));
    assert_eq!(file.bytes, AUDIO);
    assert_eq!(text(&request.fields["model"]), "whisper-1");
    assert_eq!(text(&request.fields["language"]), "en");
    assert_eq!(text(&request.fields["prompt"]), "Engine 5, Medic 12");
    assert_eq!(text(&request.fields["response_format"]), "json");
}

#[tokio::test]
async fn verbose_json_gives_segments_and_a_server_specific_model_field() {
    let server = FakeStt::recording().await;
    server.answer((
        StatusCode::OK,
        vec![],
        r#"{"task":"transcribe","language":"english","duration":6.5,"text":"Medic 12. Copy.",
            "segments":[{"id":0,"start":0.0,"end":3.2,"text":" Medic 12.","avg_logprob":-0.2,"no_speech_prob":0.01},
                        {"id":1,"start":3.2,"end":6.5,"text":" Copy.","avg_logprob":-0.4,"no_speech_prob":0.02}]}"#,
    ));
    let provider = provider(&server, |c| {
        c.model_field = "model_name".into();
        c.language = None;
    });
    let transcript = provider
        .transcribe(Bytes::from_static(AUDIO), "audio/mpeg", None)
        .await
        .unwrap();
    assert_eq!(transcript.text, "Medic 12. Copy.");
    assert_eq!(transcript.language.as_deref(), Some("english"));
    assert_eq!(transcript.duration_seconds, Some(6.5));
    assert_eq!(transcript.segments.len(), 2);
    assert_eq!(transcript.segments[1].text, "Copy.");
    assert_eq!(transcript.segments[1].no_speech_prob, Some(0.02));
    assert!((transcript.average_logprob.unwrap() + 0.3).abs() < 1e-9);

    let request = &server.seen()[0];
    assert!(request.authorization.is_none(), "no key, no header");
    assert_eq!(text(&request.fields["model_name"]), "whisper-1");
    assert!(!request.fields.contains_key("model"));
    assert!(!request.fields.contains_key("language") && !request.fields.contains_key("prompt"));
    assert_eq!(text(&request.fields["response_format"]), "verbose_json");
    assert_eq!(
        request.fields["file"].file_name.as_deref(),
        Some("call.mp3"),
        "MP3 audio is named as such"
    );
}

#[tokio::test]
async fn each_failure_is_typed_transient_or_permanent() {
    let server = FakeStt::recording().await;
    let provider = provider(&server, |_| {});
    let cases: [(Scripted, &str, bool); 6] = [
        (
            (
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", "7")],
                r#"{"error":{"message":"slow down"}}"#,
            ),
            "stt_rate_limited",
            true,
        ),
        (
            (StatusCode::BAD_GATEWAY, vec![], "upstream down"),
            "stt_server_error",
            true,
        ),
        (
            (
                StatusCode::BAD_REQUEST,
                vec![],
                r#"{"detail":"Unsupported audio"}"#,
            ),
            "stt_rejected",
            false,
        ),
        (
            (StatusCode::OK, vec![], r#"{"text":"   "}"#),
            "stt_empty_text",
            false,
        ),
        (
            (StatusCode::OK, vec![], r#"{"language":"en"}"#),
            "stt_empty_text",
            false,
        ),
        (
            (StatusCode::OK, vec![], "<html>not json</html>"),
            "stt_bad_response",
            false,
        ),
    ];
    for (answer, kind, transient) in cases {
        server.answer(answer);
        let error = provider
            .transcribe(Bytes::from_static(AUDIO), "audio/mp4", None)
            .await
            .unwrap_err();
        assert_eq!(
            (error.kind(), error.is_transient()),
            (kind, transient),
            "{error}"
        );
        if kind == "stt_rate_limited" {
            assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        }
    }
    assert_eq!(
        server.seen().len(),
        6,
        "one request per call, no hidden retries"
    );
}

#[tokio::test]
async fn an_unreachable_or_slow_server_is_a_transient_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let refused = OpenAiProvider::new(&TranscriptionConfig {
        endpoint_url: Some(
            format!("http://{address}/v1/audio/transcriptions")
                .parse()
                .unwrap(),
        ),
        ..TranscriptionConfig::default()
    })
    .unwrap();
    let error = refused
        .transcribe(Bytes::from_static(AUDIO), "audio/mp4", None)
        .await
        .unwrap_err();
    assert_unreachable(&error);

    // A server that accepts and never answers: the request timeout ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let slow = OpenAiProvider::new(&TranscriptionConfig {
        endpoint_url: Some(
            format!(
                "http://{}/v1/audio/transcriptions",
                silent.local_addr().unwrap()
            )
            .parse()
            .unwrap(),
        ),
        request_timeout: Duration::from_secs(1),
        ..TranscriptionConfig::default()
    })
    .unwrap();
    let error = slow
        .transcribe(Bytes::from_static(AUDIO), "audio/mp4", None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, TranscriptionError::Transport { .. }),
        "{error}"
    );
    drop(silent);
}
