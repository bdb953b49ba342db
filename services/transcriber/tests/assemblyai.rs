//! The `assemblyai` provider against a fake of AssemblyAI's asynchronous API over real HTTP,
//! built from its public API reference (`POST /v2/upload` → `upload_url`; `POST /v2/transcript`
//! with `audio_url`, `speech_model`, `language_code` → `id`, `status`; `GET /v2/transcript/{id}`
//! until `completed` or `error`; `Authorization: <key>` on each; `words` in milliseconds;
//! errors as `{"error": …}`): the three steps, polling, a transcript that ends in error, a
//! bounded wait, 429 with `Retry-After`, 5xx, a refused key and a malformed answer.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bcfy_transcriber::config::Provider;
use bcfy_transcriber::{AssemblyAiProvider, TranscriptionConfig, TranscriptionError};
use bytes::Bytes;
use serde_json::{Value, json};
use support::timed;

const AUDIO: &[u8] = b"\x00\x00\x00\x18ftypM4A not really aac";
const KEY: &str = "aai-test-key";

/// How the fake behaves.
#[derive(Clone)]
enum Script {
    /// Processing for this many polls, then completed.
    CompletesAfter(usize),
    /// Processing for this many polls, then an error.
    FailsAfter(usize),
    /// Processing forever.
    Never,
    /// The upload answers this.
    UploadAnswers(StatusCode, &'static str, &'static str),
}

/// One request the fake got: method, path, `Authorization`, body.
type Request = (String, String, Option<String>, Bytes);

struct Fake {
    script: Script,
    requests: Mutex<Vec<Request>>,
    polls: Mutex<usize>,
}

fn record(fake: &Fake, method: &str, path: &str, headers: &HeaderMap, body: Bytes) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.requests
        .lock()
        .unwrap()
        .push((method.to_owned(), path.to_owned(), auth, body));
}

async fn upload(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&fake, "POST", "/v2/upload", &headers, body);
    if let Script::UploadAnswers(status, retry_after, text) = fake.script {
        let mut response = (status, text).into_response();
        if !retry_after.is_empty() {
            response
                .headers_mut()
                .insert("retry-after", retry_after.parse().unwrap());
        }
        return response;
    }
    axum::Json(json!({"upload_url": "https://cdn.assemblyai.com/upload/abc123"})).into_response()
}

async fn create(State(fake): State<Arc<Fake>>, headers: HeaderMap, body: Bytes) -> Response {
    record(&fake, "POST", "/v2/transcript", &headers, body);
    axum::Json(json!({"id": "t-1", "status": "queued", "text": null})).into_response()
}

async fn get(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    record(
        &fake,
        "GET",
        &format!("/v2/transcript/{id}"),
        &headers,
        Bytes::new(),
    );
    let polls = {
        let mut polls = fake.polls.lock().unwrap();
        *polls += 1;
        *polls
    };
    let processing = json!({"id": id, "status": "processing", "text": null});
    let answer = match fake.script {
        Script::CompletesAfter(n) if polls > n => json!({
            "id": id, "status": "completed", "language_code": "en", "audio_duration": 4.2,
            "text": "Engine 5. Respond to Main and Third.",
            "words": [
                {"text": "Engine", "start": 80, "end": 400, "confidence": 0.98},
                {"text": "5.", "start": 420, "end": 700, "confidence": 0.97},
                {"text": "Respond", "start": 900, "end": 1300, "confidence": 0.99},
                {"text": "to", "start": 1310, "end": 1400, "confidence": 0.99},
                {"text": "Main", "start": 1410, "end": 1700, "confidence": 0.99},
                {"text": "and", "start": 1710, "end": 1800, "confidence": 0.99},
                {"text": "Third.", "start": 1810, "end": 2300, "confidence": 0.99}
            ]
        }),
        Script::FailsAfter(n) if polls > n => json!({
            "id": id, "status": "error", "text": null,
            "error": "Transcoding failed. File does not appear to contain audio."
        }),
        _ => processing,
    };
    axum::Json(answer).into_response()
}

async fn fake(script: Script) -> (String, Arc<Fake>) {
    let fake = Arc::new(Fake {
        script,
        requests: Mutex::default(),
        polls: Mutex::new(0),
    });
    let app = axum::Router::new()
        .route("/v2/upload", axum::routing::post(upload))
        .route("/v2/transcript", axum::routing::post(create))
        .route("/v2/transcript/{id}", axum::routing::get(get))
        .with_state(Arc::clone(&fake));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

fn provider(url: &str, poll_timeout: Duration) -> AssemblyAiProvider {
    AssemblyAiProvider::new(&TranscriptionConfig {
        provider: Provider::Assemblyai,
        endpoint_url: Some(url.parse().unwrap()),
        api_key: Some(KEY.to_owned().into()),
        model: "universal".into(),
        request_timeout: Duration::from_secs(5),
        poll_timeout,
        ..TranscriptionConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn upload_create_and_poll_until_completed() {
    let (url, fake) = fake(Script::CompletesAfter(2)).await;
    let transcript = provider(&url, Duration::from_secs(10))
        .transcribe(Bytes::from_static(AUDIO))
        .await
        .unwrap();
    assert_eq!(transcript.text, "Engine 5. Respond to Main and Third.");
    assert_eq!(transcript.language.as_deref(), Some("en"));
    assert_eq!(transcript.duration_seconds, Some(4.2));
    assert_eq!(
        timed(&transcript),
        [
            (0.08, 0.7, "Engine 5."),
            (0.9, 2.3, "Respond to Main and Third.")
        ]
    );

    let requests = fake.requests.lock().unwrap().clone();
    let steps: Vec<(&str, &str)> = requests
        .iter()
        .map(|(method, path, _, _)| (method.as_str(), path.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("POST", "/v2/upload"),
            ("POST", "/v2/transcript"),
            ("GET", "/v2/transcript/t-1"),
            ("GET", "/v2/transcript/t-1"),
            ("GET", "/v2/transcript/t-1")
        ]
    );
    assert!(
        requests
            .iter()
            .all(|(_, _, auth, _)| auth.as_deref() == Some(KEY))
    );
    assert_eq!(requests[0].3.as_ref(), AUDIO, "the call's exact bytes");
    let created: Value = serde_json::from_slice(&requests[1].3).unwrap();
    assert_eq!(
        created,
        json!({
            "audio_url": "https://cdn.assemblyai.com/upload/abc123",
            "speech_model": "universal",
            "language_code": "en"
        })
    );
}

#[tokio::test]
async fn a_transcript_that_ends_in_error_is_rejected_for_the_call() {
    let (url, _fake) = fake(Script::FailsAfter(1)).await;
    let error = provider(&url, Duration::from_secs(10))
        .transcribe(Bytes::from_static(AUDIO))
        .await
        .unwrap_err();
    assert!(
        matches!(error, TranscriptionError::Rejected { .. }),
        "{error}"
    );
    assert!(!error.is_transient() && !error.is_refusal_of_us());
    assert_eq!(error.kind(), "stt_rejected");
    assert!(
        error
            .to_string()
            .contains("does not appear to contain audio")
    );
}

#[tokio::test]
async fn the_wait_is_bounded_and_retried_later() {
    let (url, fake) = fake(Script::Never).await;
    let error = provider(&url, Duration::from_secs(1))
        .transcribe(Bytes::from_static(AUDIO))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("still processing"), "{error}");
    assert!(
        *fake.polls.lock().unwrap() >= 2,
        "it polled before giving up"
    );
}

#[tokio::test]
async fn errors_map_into_the_same_typed_errors_as_the_other_providers() {
    let cases = [
        (
            Script::UploadAnswers(
                StatusCode::TOO_MANY_REQUESTS,
                "9",
                r#"{"error":"Too many requests"}"#,
            ),
            "rate limited",
        ),
        (
            Script::UploadAnswers(StatusCode::SERVICE_UNAVAILABLE, "", "unavailable"),
            "unavailable",
        ),
        (
            Script::UploadAnswers(
                StatusCode::UNAUTHORIZED,
                "",
                r#"{"error":"Authentication error, API token missing/invalid"}"#,
            ),
            "refused",
        ),
        (
            Script::UploadAnswers(StatusCode::OK, "", r#"{"upload": "#),
            "malformed",
        ),
    ];
    for (script, case) in cases {
        let (url, _fake) = fake(script).await;
        let error = provider(&url, Duration::from_secs(5))
            .transcribe(Bytes::from_static(AUDIO))
            .await
            .unwrap_err();
        match case {
            "rate limited" => {
                assert!(error.is_transient());
                assert_eq!(error.retry_after(), Some(Duration::from_secs(9)));
            }
            "unavailable" => assert!(error.is_transient() && !error.is_refusal_of_us()),
            "refused" => assert!(error.is_refusal_of_us(), "{error}"),
            _ => {
                assert!(
                    matches!(error, TranscriptionError::BadResponse { .. }),
                    "{error}"
                );
                assert!(!error.is_transient());
            }
        }
    }
}
