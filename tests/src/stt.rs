//! A fast, fake OpenAI-compatible transcription endpoint for whole-system runs where the STT
//! engine is not what is measured: it checks the bearer key, fails a configurable share of
//! requests the way real providers do (503 with `Retry-After`, 500), and otherwise answers at
//! once with a transcript that names the SHA-256 of the audio it got, so a test can tell which
//! call each transcript came from.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

/// The transcript the fake gives for `audio`.
pub fn transcript_of(audio: &[u8]) -> String {
    transcript_for_sha256(&hex(&Sha256::digest(audio)))
}

/// The transcript the fake gives for audio whose SHA-256 (hex) is `sha256`.
pub fn transcript_for_sha256(sha256: &str) -> String {
    format!("Audio {sha256}.")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The running fake; it serves until the runtime that started it ends.
#[derive(Debug, Clone)]
pub struct FakeStt {
    url: String,
    state: Arc<Fake>,
}

#[derive(Debug)]
struct Fake {
    key: String,
    /// One request in `failure_every` fails (0: none).
    failure_every: u64,
    requests: AtomicU64,
    failures: AtomicU64,
}

async fn transcribe(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let authorised = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.strip_prefix("Bearer ") == Some(fake.key.as_str()));
    if !authorised {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"bad key\"}").into_response();
    }
    let mut audio = None;
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) if field.name() == Some("file") => match field.bytes().await {
                Ok(bytes) => audio = Some(bytes),
                Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
            },
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
        }
    }
    let Some(audio) = audio else {
        return (StatusCode::BAD_REQUEST, "no file").into_response();
    };
    let n = fake.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if fake.failure_every > 0 && n.is_multiple_of(fake.failure_every) {
        fake.failures.fetch_add(1, Ordering::Relaxed);
        // Alternate the two transient answers real providers give.
        return if (n / fake.failure_every).is_multiple_of(2) {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "busy",
            )
                .into_response()
        } else {
            (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response()
        };
    }
    axum::Json(serde_json::json!({ "text": transcript_of(&audio) })).into_response()
}

impl FakeStt {
    /// Starts on a loopback port, accepting `key`; one request in `failure_every` fails
    /// (0: never).
    ///
    /// # Panics
    ///
    /// When no port can be bound.
    pub async fn start(key: &str, failure_every: u64) -> Self {
        let state = Arc::new(Fake {
            key: key.to_owned(),
            failure_every,
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        let app = axum::Router::new()
            .route("/v1/audio/transcriptions", axum::routing::post(transcribe))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!(
            "http://{}/v1/audio/transcriptions",
            listener.local_addr().expect("bound")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// The endpoint URL for `transcription.endpoint_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Authorised requests with a file so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Of those, how many were failed on purpose.
    pub fn failures(&self) -> u64 {
        self.state.failures.load(Ordering::Relaxed)
    }
}
