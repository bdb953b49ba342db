//! The `deepgram` provider: Deepgram's pre-recorded audio API. The call's exact bytes go in one
//! `POST {endpoint}?model=…&smart_format=true&utterances=true[&language=…]` with
//! `Authorization: Token <key>` and the audio's `Content-Type`; the answer's first channel's
//! first alternative is the transcript, its `utterances` the segments (start, end, text;
//! Deepgram's confidence is not a log-probability, so none is reported), `metadata.duration`
//! the audio's length. The prompt is not sent: Deepgram takes key terms, not a prompt.

use bcfy_proto::TranscriptSegment;
use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::TranscriptionConfig;
use crate::error::TranscriptionError;
use crate::http;
use crate::provider::Transcript;

/// Deepgram's pre-recorded endpoint, used when `endpoint_url` is not set.
pub const DEEPGRAM_ENDPOINT: &str = "https://api.deepgram.com/v1/listen";

/// The answer body; unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Answer {
    metadata: Option<Metadata>,
    results: Results,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    duration: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Results {
    channels: Vec<Channel>,
    #[serde(default)]
    utterances: Vec<Utterance>,
}

#[derive(Debug, Deserialize)]
struct Channel {
    alternatives: Vec<Alternative>,
    detected_language: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Alternative {
    transcript: String,
}

#[derive(Debug, Deserialize)]
struct Utterance {
    start: f64,
    end: f64,
    transcript: String,
}

/// A client for Deepgram's pre-recorded API.
#[derive(Debug, Clone)]
pub struct DeepgramProvider {
    http: reqwest::Client,
    endpoint: Url,
    api_key: Option<SecretString>,
    model: String,
    language: Option<String>,
}

impl DeepgramProvider {
    /// A provider as configured.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(config: &TranscriptionConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http::client(config)?,
            endpoint: config.endpoint(),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            language: config.language.clone(),
        })
    }

    /// The model name sent with each request.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Transcribes one whole call (`content_type` as the CDN served it).
    ///
    /// # Errors
    ///
    /// Any [`TranscriptionError`]; an answer without text is [`TranscriptionError::EmptyText`].
    pub async fn transcribe(
        &self,
        audio: Bytes,
        content_type: &str,
    ) -> Result<Transcript, TranscriptionError> {
        let mut url = self.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("model", &self.model)
                .append_pair("smart_format", "true")
                .append_pair("utterances", "true");
            if let Some(language) = &self.language {
                query.append_pair("language", language);
            }
        }
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(audio);
        if let Some(key) = &self.api_key {
            request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("Token {}", key.expose_secret()),
            );
        }
        let body = http::answer(request).await?;
        self.read_answer(&body)
    }

    pub(crate) fn read_answer(&self, body: &[u8]) -> Result<Transcript, TranscriptionError> {
        let answer: Answer = http::json(body)?;
        let channel = answer.results.channels.into_iter().next();
        let language = channel
            .as_ref()
            .and_then(|c| c.detected_language.clone())
            .or_else(|| self.language.clone());
        let text = channel
            .and_then(|c| c.alternatives.into_iter().next())
            .map(|a| a.transcript.trim().to_owned())
            .unwrap_or_default();
        if text.is_empty() {
            return Err(TranscriptionError::EmptyText);
        }
        Ok(Transcript {
            text,
            language,
            duration_seconds: answer.metadata.and_then(|m| m.duration),
            average_logprob: None,
            segments: answer
                .results
                .utterances
                .into_iter()
                .map(|u| TranscriptSegment {
                    start: u.start,
                    end: u.end,
                    text: u.transcript.trim().to_owned(),
                    ..TranscriptSegment::default()
                })
                .collect(),
        })
    }
}
