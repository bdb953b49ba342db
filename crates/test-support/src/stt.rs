//! An in-process OpenAI-compatible transcription endpoint (`POST /v1/audio/transcriptions`),
//! for every test that needs a speech-to-text provider without one.
//!
//! It answers from a script of answers when one is queued (any status, headers and body),
//! otherwise fails one request in `failure_every` the way real providers do (503 with
//! `Retry-After`, 500), and otherwise answers at once with a transcript naming the SHA-256 of the
//! audio it got ([`transcript_of`]), so a test can tell which call each transcript came from.
//! With a key set, a request without that bearer key gets 401. A recording fake keeps every
//! request's fields for the test to read; a counting one (for load runs) only counts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// How the fake behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The bearer key it accepts; `None` accepts any request.
    pub key: Option<String>,
    /// One request in this many fails (0: none).
    pub failure_every: u64,
    /// Keep every request's fields (see [`FakeStt::seen`]).
    pub record: bool,
}

/// One multipart field as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The file name, for file fields.
    pub file_name: Option<String>,
    /// The part's content type.
    pub content_type: Option<String>,
    /// The part's bytes.
    pub bytes: Vec<u8>,
}

/// What one request carried.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: tokio::time::Instant,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its multipart fields by name.
    pub fields: BTreeMap<String, Field>,
}

/// An answer to give next: status, extra headers, body.
pub type Scripted = (StatusCode, Vec<(&'static str, &'static str)>, &'static str);

/// The running fake; it serves until the runtime that started it ends.
#[derive(Debug, Clone)]
pub struct FakeStt {
    url: String,
    state: Arc<Fake>,
}

#[derive(Debug, Default)]
struct Fake {
    options: Options,
    delay: Mutex<Duration>,
    refusing: Mutex<Option<StatusCode>>,
    refused: AtomicU64,
    answers: Mutex<VecDeque<Scripted>>,
    seen: Mutex<Vec<Seen>>,
    requests: AtomicU64,
    failures: AtomicU64,
}

impl Fake {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn transcribe(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &fake.options.key
        && authorization
            .as_deref()
            .and_then(|v| v.strip_prefix("Bearer "))
            != Some(key)
    {
        return (StatusCode::UNAUTHORIZED, "{\"error\":\"bad key\"}").into_response();
    }
    let mut fields = BTreeMap::new();
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(str::to_owned);
                match field.bytes().await {
                    Ok(bytes) => {
                        let bytes = bytes.to_vec();
                        fields.insert(
                            name,
                            Field {
                                file_name,
                                content_type,
                                bytes,
                            },
                        );
                    }
                    Err(error) => {
                        return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
                    }
                }
            }
            Ok(None) => break,
            Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
        }
    }
    let Some(audio) = fields.get("file").map(|file| file.bytes.clone()) else {
        return (StatusCode::BAD_REQUEST, "no file").into_response();
    };
    let refusing = *Fake::lock(&fake.refusing);
    if let Some(status) = refusing {
        fake.refused.fetch_add(1, Ordering::Relaxed);
        return (status, "{\"error\":{\"message\":\"refused\"}}").into_response();
    }
    let n = fake.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if fake.options.record {
        Fake::lock(&fake.seen).push(Seen {
            at: tokio::time::Instant::now(),
            authorization,
            fields,
        });
    }
    let delay = *Fake::lock(&fake.delay);
    tokio::time::sleep(delay).await;
    let scripted = Fake::lock(&fake.answers).pop_front();
    if let Some((status, extra, body)) = scripted {
        let mut response = (status, body).into_response();
        for (name, value) in extra {
            if let (Ok(name), Ok(value)) = (
                header::HeaderName::try_from(name),
                header::HeaderValue::try_from(value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        return response;
    }
    let every = fake.options.failure_every;
    if every > 0 && n.is_multiple_of(every) {
        fake.failures.fetch_add(1, Ordering::Relaxed);
        // Alternate the two transient answers real providers give.
        return if (n / every).is_multiple_of(2) {
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
    /// Starts on a loopback port.
    ///
    /// # Panics
    ///
    /// When no port can be bound.
    pub async fn start(options: Options) -> Self {
        let state = Arc::new(Fake {
            options,
            ..Fake::default()
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

    /// A fake that accepts any request and records each.
    pub async fn recording() -> Self {
        Self::start(Options {
            record: true,
            ..Options::default()
        })
        .await
    }

    /// The endpoint URL for `transcription.endpoint_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queues `answer` for the next request.
    pub fn answer(&self, answer: Scripted) {
        Fake::lock(&self.state.answers).push_back(answer);
    }

    /// Makes every answer take `delay` (a slow provider).
    pub fn set_delay(&self, delay: Duration) {
        *Fake::lock(&self.state.delay) = delay;
    }

    /// Answers every request with `status` until called with `None` (an expired key: 401; a
    /// rejected file: 400), counting them apart from [`Self::requests`].
    pub fn set_refusing(&self, status: Option<StatusCode>) {
        *Fake::lock(&self.state.refusing) = status;
    }

    /// Requests answered by [`Self::set_refusing`] so far.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// The requests recorded so far (none unless [`Options::record`]).
    pub fn seen(&self) -> Vec<Seen> {
        Fake::lock(&self.state.seen).clone()
    }

    /// Authorised requests with a file so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Of those, how many were failed on purpose by `failure_every`.
    pub fn failures(&self) -> u64 {
        self.state.failures.load(Ordering::Relaxed)
    }
}
