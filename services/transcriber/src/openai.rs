//! The `openai` provider: one multipart upload of the whole call to an OpenAI-compatible
//! `/v1/audio/transcriptions` endpoint (OpenAI, speaches, LocalAI, whisper.cpp server,
//! faster-whisper-server), with fields `file`, the model (under `model_field`), `language`,
//! `prompt` and `response_format`, and `Authorization: Bearer` when a key is set. The answer's
//! `.text` is the transcript; `verbose_json` adds segments, the language and the duration.

use bcfy_proto::TranscriptSegment;
use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::{ResponseFormat, TranscriptionConfig};
use crate::error::TranscriptionError;
use crate::http;
use crate::provider::Transcript;

/// The answer body; unknown fields are ignored (servers add their own).
#[derive(Debug, Deserialize)]
struct Answer {
    text: Option<String>,
    language: Option<String>,
    duration: Option<f64>,
    #[serde(default)]
    segments: Vec<AnswerSegment>,
}

#[derive(Debug, Deserialize)]
struct AnswerSegment {
    start: f64,
    end: f64,
    text: String,
    avg_logprob: Option<f64>,
    no_speech_prob: Option<f64>,
}

/// A client for one OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    http: reqwest::Client,
    endpoint: Url,
    api_key: Option<SecretString>,
    model: String,
    model_field: String,
    language: Option<String>,
    response_format: ResponseFormat,
}

/// The upload's file name and content type: `.m4a` / `audio/mp4` as the spec says, except MP3
/// audio, which servers must see as MP3 to decode it.
fn upload_name(content_type: &str) -> (&'static str, &'static str) {
    if content_type.eq_ignore_ascii_case("audio/mpeg")
        || content_type.eq_ignore_ascii_case("audio/mp3")
    {
        ("call.mp3", "audio/mpeg")
    } else {
        ("call.m4a", "audio/mp4")
    }
}

impl OpenAiProvider {
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
            model_field: config.model_field.clone(),
            language: config.language.clone(),
            response_format: config.response_format,
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
        prompt: Option<&str>,
    ) -> Result<Transcript, TranscriptionError> {
        let (file_name, mime) = upload_name(content_type);
        let length = audio.len() as u64;
        let file = Part::stream_with_length(reqwest::Body::from(audio), length)
            .file_name(file_name)
            .mime_str(mime)
            .map_err(|e| TranscriptionError::Transport {
                reason: e.to_string(),
            })?;
        let mut form = Form::new()
            .part("file", file)
            .text(self.model_field.clone(), self.model.clone())
            .text("response_format", self.response_format.as_str());
        if let Some(language) = &self.language {
            form = form.text("language", language.clone());
        }
        if let Some(prompt) = prompt {
            form = form.text("prompt", prompt.to_owned());
        }
        let mut request = self.http.post(self.endpoint.clone()).multipart(form);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let body = http::answer(request).await?;
        self.read_answer(&body)
    }

    pub(crate) fn read_answer(&self, body: &[u8]) -> Result<Transcript, TranscriptionError> {
        let answer: Answer = http::json(body)?;
        let text = answer.text.as_deref().map(str::trim).unwrap_or_default();
        if text.is_empty() {
            return Err(TranscriptionError::EmptyText);
        }
        let logprobs: Vec<f64> = answer
            .segments
            .iter()
            .filter_map(|s| s.avg_logprob)
            .collect();
        let average_logprob =
            (!logprobs.is_empty()).then(|| logprobs.iter().sum::<f64>() / logprobs.len() as f64);
        Ok(Transcript {
            text: text.to_owned(),
            language: answer.language.or_else(|| self.language.clone()),
            duration_seconds: answer.duration,
            average_logprob,
            segments: answer
                .segments
                .into_iter()
                .map(|s| TranscriptSegment {
                    start: s.start,
                    end: s.end,
                    text: s.text.trim().to_owned(),
                    average_logprob: s.avg_logprob,
                    no_speech_prob: s.no_speech_prob,
                    unit: None,
                    unit_tag: String::new(),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mp3_is_uploaded_as_mp3_and_everything_else_as_m4a() {
        assert_eq!(upload_name("audio/mpeg"), ("call.mp3", "audio/mpeg"));
        assert_eq!(upload_name("audio/mp4"), ("call.m4a", "audio/mp4"));
        assert_eq!(upload_name("audio/aac"), ("call.m4a", "audio/mp4"));
    }
}
