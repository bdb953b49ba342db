//! The `deepgram` provider against a fake of Deepgram's pre-recorded API over real HTTP, built
//! from its public API reference (`POST /v1/listen` with the model and options in the query,
//! `Authorization: Token <key>`, the audio as the body; the answer's
//! `results.channels[0].alternatives[0].transcript`, `results.utterances`,
//! `metadata.duration`; errors as `{"err_code", "err_msg"}`): the request, the answer, and 429
//! with `Retry-After`, 5xx, a refused key, a refused call and a malformed answer mapped into
//! the same typed errors as the `openai` provider.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use bcfy_transcriber::config::Provider;
use bcfy_transcriber::{DeepgramProvider, TranscriptionConfig, TranscriptionError};
use bytes::Bytes;
use support::{assert_unreachable, timed};

/// One request the fake got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

type Answer = (StatusCode, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Default)]
struct Fake {
    seen: Mutex<Vec<Seen>>,
    answers: Mutex<Vec<Answer>>,
}

const OK: &str = r#"{
  "metadata": {"request_id": "5b1f", "duration": 4.25, "channels": 1, "models": ["30089e05"]},
  "results": {
    "channels": [{"alternatives": [{"transcript": "Engine 5, respond to Main and Third.",
      "confidence": 0.98, "words": [{"word": "engine", "start": 0.08, "end": 0.4, "confidence": 0.99}]}],
      "detected_language": "en"}],
    "utterances": [
      {"start": 0.08, "end": 1.9, "confidence": 0.97, "channel": 0, "transcript": "Engine 5,", "speaker": 0, "id": "a"},
      {"start": 2.0, "end": 4.1, "confidence": 0.95, "channel": 0, "transcript": " respond to Main and Third. ", "speaker": 0, "id": "b"}
    ]
  }
}"#;

const AUDIO: &[u8] = b"\x00\x00\x00\x18ftypM4A not really aac";

/// The fake, answering the scripted answers in turn.
async fn fake(answers: Vec<Answer>) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        answers: Mutex::new(answers.into_iter().rev().collect()),
        ..Fake::default()
    });
    let app = axum::Router::new()
        .route(
            "/v1/listen",
            axum::routing::post(
                |State(fake): State<Arc<Fake>>,
                 uri: axum::http::Uri,
                 RawQuery(query): RawQuery,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    fake.seen.lock().unwrap().push(Seen {
                        path: uri.path().to_owned(),
                        query: query.unwrap_or_default(),
                        headers,
                        body,
                    });
                    let (status, headers, body) =
                        fake.answers.lock().unwrap().pop().expect("an answer");
                    let mut response = axum::response::Response::new(axum::body::Body::from(body));
                    *response.status_mut() = status;
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                },
            ),
        )
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/listen", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

fn provider(url: &str) -> DeepgramProvider {
    DeepgramProvider::new(&TranscriptionConfig {
        provider: Provider::Deepgram,
        endpoint_url: Some(url.parse().unwrap()),
        api_key: Some("dg-test-key".to_owned().into()),
        model: "nova-3".into(),
        request_timeout: Duration::from_secs(5),
        ..TranscriptionConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_call_goes_in_one_request_and_the_answer_becomes_a_transcript() {
    let (url, fake) = fake(vec![(StatusCode::OK, vec![], OK)]).await;
    let transcript = provider(&url)
        .transcribe(Bytes::from_static(AUDIO), "audio/mp4")
        .await
        .unwrap();
    assert_eq!(transcript.text, "Engine 5, respond to Main and Third.");
    assert_eq!(transcript.language.as_deref(), Some("en"));
    assert_eq!(transcript.duration_seconds, Some(4.25));
    assert_eq!(
        timed(&transcript),
        [
            (0.08, 1.9, "Engine 5,"),
            (2.0, 4.1, "respond to Main and Third.")
        ]
    );
    assert!(transcript.average_logprob.is_none());

    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/v1/listen");
    assert_eq!(
        request.query,
        "model=nova-3&smart_format=true&utterances=true&language=en"
    );
    assert_eq!(request.headers["authorization"], "Token dg-test-key");
    assert_eq!(request.headers["content-type"], "audio/mp4");
    assert_eq!(request.body.as_ref(), AUDIO);
}

#[tokio::test]
async fn errors_map_into_the_same_typed_errors_as_the_other_providers() {
    let (url, _fake) = fake(vec![
        (
            StatusCode::TOO_MANY_REQUESTS,
            vec![("retry-after", "7")],
            r#"{"err_code":"TOO_MANY_REQUESTS","err_msg":"Too many requests."}"#,
        ),
        (StatusCode::BAD_GATEWAY, vec![], "upstream"),
        (
            StatusCode::UNAUTHORIZED,
            vec![],
            r#"{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials."}"#,
        ),
        (
            StatusCode::BAD_REQUEST,
            vec![],
            r#"{"err_code":"Bad Request","err_msg":"Bad Request: failed to process audio: corrupt or unsupported data"}"#,
        ),
        (StatusCode::OK, vec![], r#"{"results": "#),
        (
            StatusCode::OK,
            vec![],
            r#"{"results":{"channels":[{"alternatives":[{"transcript":"  "}]}]}}"#,
        ),
    ])
    .await;
    let provider = provider(&url);
    let next = || provider.transcribe(Bytes::from_static(AUDIO), "audio/mpeg");

    let limited = next().await.unwrap_err();
    assert!(limited.is_transient());
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
    let unavailable = next().await.unwrap_err();
    assert!(unavailable.is_transient() && !unavailable.is_refusal_of_us());
    let refused = next().await.unwrap_err();
    assert!(refused.is_refusal_of_us(), "{refused}");
    let rejected = next().await.unwrap_err();
    assert!(!rejected.is_transient() && !rejected.is_refusal_of_us());
    assert!(
        rejected.to_string().contains("corrupt or unsupported data"),
        "{rejected}"
    );
    let malformed = next().await.unwrap_err();
    assert!(
        matches!(malformed, TranscriptionError::BadResponse { .. }),
        "{malformed}"
    );
    assert!(!malformed.is_transient());
    let empty = next().await.unwrap_err();
    assert!(matches!(empty, TranscriptionError::EmptyText));
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/listen", listener.local_addr().unwrap());
    drop(listener);
    let error = provider(&url)
        .transcribe(Bytes::from_static(AUDIO), "audio/mp4")
        .await
        .unwrap_err();
    assert_unreachable(&error);
}
