//! An in-process OpenAI-compatible transcription server: records each request's multipart
//! fields and auth header, and answers from a script (or, when the script is empty, with a
//! transcript naming the size of the audio it got).

#![allow(dead_code, reason = "each test file uses part of it")]

pub(crate) mod faster_whisper;
pub(crate) mod harness;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bcfy_transcriber::{OpenAiProvider, TranscriptionConfig};

/// One multipart field as the server saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) file_name: Option<String>,
    pub(crate) content_type: Option<String>,
    pub(crate) bytes: Vec<u8>,
}

/// What one request carried.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: tokio::time::Instant,
    pub(crate) authorization: Option<String>,
    pub(crate) fields: BTreeMap<String, Field>,
}

/// The answer the server gives next: status, extra headers, body.
pub(crate) type Scripted = (StatusCode, Vec<(&'static str, &'static str)>, &'static str);

#[derive(Clone, Default)]
pub(crate) struct Fake {
    /// How long each answer takes (a slow provider).
    pub(crate) delay: Arc<Mutex<std::time::Duration>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    answers: Arc<Mutex<Vec<Scripted>>>,
}

async fn transcriptions(
    State(fake): State<Fake>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let mut fields = BTreeMap::new();
    while let Some(field) = multipart.next_field().await.unwrap() {
        let name = field.name().unwrap().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field.bytes().await.unwrap().to_vec();
        fields.insert(
            name,
            Field {
                file_name,
                content_type,
                bytes,
            },
        );
    }
    let size = fields.get("file").map_or(0, |file| file.bytes.len());
    fake.seen.lock().unwrap().push(Seen {
        at: tokio::time::Instant::now(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
        fields,
    });
    let delay = *fake.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let scripted = {
        let mut answers = fake.answers.lock().unwrap();
        (!answers.is_empty()).then(|| answers.remove(0))
    };
    let Some((status, extra, body)) = scripted else {
        return axum::Json(serde_json::json!({ "text": heard(size) })).into_response();
    };
    let mut response = (status, body).into_response();
    for (name, value) in extra {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

pub(crate) struct Server {
    pub(crate) fake: Fake,
    pub(crate) url: String,
}

pub(crate) async fn server() -> Server {
    let fake = Fake::default();
    let app = axum::Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/v1/audio/transcriptions",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server { fake, url }
}

impl Server {
    pub(crate) fn answer(&self, answer: Scripted) {
        self.fake.answers.lock().unwrap().push(answer);
    }

    pub(crate) fn set_delay(&self, delay: std::time::Duration) {
        *self.fake.delay.lock().unwrap() = delay;
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.fake.seen.lock().unwrap().clone()
    }

    pub(crate) fn provider(
        &self,
        configure: impl FnOnce(&mut TranscriptionConfig),
    ) -> OpenAiProvider {
        let mut config = TranscriptionConfig {
            endpoint_url: Some(self.url.parse().unwrap()),
            ..TranscriptionConfig::default()
        };
        configure(&mut config);
        OpenAiProvider::new(&config).unwrap()
    }
}

/// The default answer for a file of `size` bytes.
pub(crate) fn heard(size: usize) -> String {
    format!("Heard {size} bytes.")
}
