//! The `assemblyai` provider: AssemblyAI's asynchronous API in three steps. The call's exact
//! bytes are uploaded (`POST {base}/v2/upload`, answer `upload_url`), a transcript is created
//! for them (`POST {base}/v2/transcript` with `audio_url`, `speech_model` = the configured
//! model, `language_code`), and the transcript is polled (`GET {base}/v2/transcript/{id}`)
//! until its `status` is `completed` or `error`, at most `transcription.poll_timeout`. Every
//! request carries `Authorization: <key>`. The answer's `text` is the transcript, its `words`
//! (milliseconds) are cut into segments at sentence ends, `audio_duration` is the length.
//!
//! A transcript that ends in `error` (audio AssemblyAI cannot read) is rejected for the call;
//! one still processing at the deadline is a transient failure, so the call is retried later
//! (a new upload: AssemblyAI does not charge for the unfinished one).

use std::time::Duration;

use bcfy_proto::TranscriptSegment;
use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use crate::config::TranscriptionConfig;
use crate::error::TranscriptionError;
use crate::http;
use crate::provider::Transcript;

/// AssemblyAI's API, used when `endpoint_url` is not set.
pub const ASSEMBLYAI_ENDPOINT: &str = "https://api.assemblyai.com/";

/// The first wait between polls; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(250);
/// The longest wait between polls.
const POLL_MAX: Duration = Duration::from_secs(3);

#[derive(Debug, Deserialize)]
struct Uploaded {
    upload_url: String,
}

/// A transcript as `POST /v2/transcript` and `GET /v2/transcript/{id}` answer it.
#[derive(Debug, Deserialize)]
struct Job {
    id: String,
    status: String,
    text: Option<String>,
    #[serde(default)]
    words: Vec<Word>,
    audio_duration: Option<f64>,
    language_code: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Word {
    text: String,
    /// Milliseconds.
    start: u64,
    /// Milliseconds.
    end: u64,
}

/// A client for AssemblyAI's API.
#[derive(Debug, Clone)]
pub struct AssemblyAiProvider {
    http: reqwest::Client,
    base: Url,
    api_key: Option<SecretString>,
    model: String,
    language: Option<String>,
    poll_timeout: Duration,
}

impl AssemblyAiProvider {
    /// A provider as configured.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built (TLS setup).
    pub fn new(config: &TranscriptionConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: http::client(config)?,
            base: config.endpoint(),
            api_key: config.api_key.clone(),
            model: config.model.clone(),
            language: config.language.clone(),
            poll_timeout: config.poll_timeout,
        })
    }

    /// The model name sent with each request.
    pub fn model(&self) -> &str {
        &self.model
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.header(reqwest::header::AUTHORIZATION, key.expose_secret()),
            None => request,
        }
    }

    /// Transcribes one whole call.
    ///
    /// # Errors
    ///
    /// Any [`TranscriptionError`]; an answer without text is [`TranscriptionError::EmptyText`].
    pub async fn transcribe(&self, audio: Bytes) -> Result<Transcript, TranscriptionError> {
        let upload = self.authorized(
            self.http
                .post(self.url("v2/upload"))
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(audio),
        );
        let uploaded: Uploaded = http::json(&http::answer(upload).await?)?;
        let mut body = json!({ "audio_url": uploaded.upload_url, "speech_model": self.model });
        if let Some(language) = &self.language {
            body["language_code"] = json!(language);
        }
        let create = self.authorized(self.http.post(self.url("v2/transcript")).json(&body));
        let mut job: Job = http::json(&http::answer(create).await?)?;
        let deadline = Instant::now() + self.poll_timeout;
        let mut pause = POLL_FIRST;
        while job.status != "completed" && job.status != "error" {
            if Instant::now() + pause > deadline {
                return Err(TranscriptionError::Transport {
                    reason: format!(
                        "transcript {} still {} after {:?}",
                        job.id, job.status, self.poll_timeout
                    ),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX);
            let poll = self.authorized(
                self.http
                    .get(self.url(&format!("v2/transcript/{}", job.id))),
            );
            job = http::json(&http::answer(poll).await?)?;
        }
        self.read(job)
    }

    /// A transcript's body as polled, read.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn read_answer(&self, body: &[u8]) -> Result<Transcript, TranscriptionError> {
        self.read(http::json(body)?)
    }

    fn read(&self, job: Job) -> Result<Transcript, TranscriptionError> {
        if job.status == "error" {
            return Err(TranscriptionError::Rejected {
                reason: job.error.unwrap_or_else(|| "no reason given".to_owned()),
            });
        }
        let text = job.text.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(TranscriptionError::EmptyText);
        }
        Ok(Transcript {
            text: text.to_owned(),
            language: job.language_code.or_else(|| self.language.clone()),
            duration_seconds: job.audio_duration,
            average_logprob: None,
            segments: sentences(&job.words),
        })
    }
}

/// `words` as segments, one per sentence (cut after a word ending in `.`, `?` or `!`).
fn sentences(words: &[Word]) -> Vec<TranscriptSegment> {
    let mut segments = Vec::new();
    let mut current: Vec<&Word> = Vec::new();
    for (i, word) in words.iter().enumerate() {
        current.push(word);
        let ends = word.text.ends_with(['.', '?', '!']) || i + 1 == words.len();
        if ends && let (Some(first), Some(last)) = (current.first(), current.last()) {
            segments.push(TranscriptSegment {
                start: first.start as f64 / 1000.0,
                end: last.end as f64 / 1000.0,
                text: current
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                ..TranscriptSegment::default()
            });
            current.clear();
        }
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, start: u64, end: u64) -> Word {
        Word {
            text: text.into(),
            start,
            end,
        }
    }

    #[test]
    fn words_are_cut_into_sentences() {
        let words = [
            word("Engine", 80, 400),
            word("5.", 420, 700),
            word("Respond", 900, 1300),
            word("now", 1320, 1600),
        ];
        let segments: Vec<(f64, f64, String)> = sentences(&words)
            .into_iter()
            .map(|s| (s.start, s.end, s.text))
            .collect();
        assert_eq!(
            segments,
            [
                (0.08, 0.7, "Engine 5.".to_owned()),
                (0.9, 1.6, "Respond now".to_owned())
            ]
        );
        assert!(sentences(&[]).is_empty());
    }
}
