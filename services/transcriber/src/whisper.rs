//! The `whisper` provider: the built-in whisper.cpp engine ([`bcfy_whisper`]) with a pool of
//! `max_concurrency` decoding states. Decoding and transcription are CPU-bound, so each call runs
//! on a blocking thread; the worker already bounds how many run at once.

use std::sync::Arc;

use bcfy_proto::TranscriptSegment;
use bcfy_whisper::decode::WHISPER_RATE;
use bcfy_whisper::{Engine, EngineSettings, decode_16k, resolve_model};
use bytes::Bytes;

use crate::config::TranscriptionConfig;
use crate::error::TranscriptionError;
use crate::provider::{ProviderError, Transcript};

/// The loaded engine and what each transcript records.
#[derive(Debug)]
pub struct WhisperProvider {
    engine: Engine,
    model: String,
    language: Option<String>,
}

impl WhisperProvider {
    /// Resolves the model (converting a CTranslate2 directory once) and loads it. Blocks.
    ///
    /// # Errors
    ///
    /// [`ProviderError`] when the model is missing, cannot be converted or loaded.
    pub fn load(config: &TranscriptionConfig) -> Result<WhisperProvider, ProviderError> {
        let settings = &config.whisper;
        let path = settings.model_path.as_ref().ok_or(ProviderError::NoModel)?;
        let model = resolve_model(path, &settings.model_cache_dir, settings.weights)
            .map_err(ProviderError::Model)?;
        let engine = Engine::load(EngineSettings {
            model,
            threads: settings.threads_per_call(config.max_concurrency),
            beam_size: settings.beam_size,
            temperature_fallback: settings.temperature_fallback,
            language: config.language.clone(),
            states: config.max_concurrency,
            max_segment_chars: settings.max_segment_chars,
            audio_context: settings.audio_context,
        })?;
        tracing::info!(settings = ?engine.settings(), "Whisper engine loaded.");
        Ok(WhisperProvider {
            engine,
            model: config.model.clone(),
            language: config.language.clone(),
        })
    }

    /// The model name recorded with each transcript (`transcription.model`).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Decodes and transcribes one call on a blocking thread.
    ///
    /// # Errors
    ///
    /// [`TranscriptionError::Undecodable`] for audio that cannot be decoded (permanent),
    /// [`TranscriptionError::Engine`] when whisper.cpp fails, and
    /// [`TranscriptionError::EmptyText`] when nothing was heard.
    pub async fn transcribe(
        self: Arc<Self>,
        audio: Bytes,
        content_type: &str,
        prompt: Option<&str>,
        samples: Option<Arc<[f32]>>,
    ) -> Result<Transcript, TranscriptionError> {
        let content_type = content_type.to_owned();
        let prompt = prompt.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let samples = match samples {
                Some(samples) => samples,
                None => decode_16k(audio, &content_type)
                    .map_err(TranscriptionError::Undecodable)?
                    .into(),
            };
            self.transcribe_blocking(&samples, prompt)
        })
        .await
        .map_err(TranscriptionError::EngineTask)?
    }

    fn transcribe_blocking(
        &self,
        samples: &[f32],
        prompt: Option<String>,
    ) -> Result<Transcript, TranscriptionError> {
        let heard = self
            .engine
            .transcribe(samples, prompt.as_deref())
            .map_err(TranscriptionError::Engine)?;
        if heard.text.trim().is_empty() {
            return Err(TranscriptionError::EmptyText);
        }
        Ok(Transcript {
            text: heard.text,
            language: self.language.clone(),
            duration_seconds: Some(samples.len() as f64 / f64::from(WHISPER_RATE)),
            average_logprob: heard.average_logprob,
            segments: heard
                .segments
                .into_iter()
                .map(|s| TranscriptSegment {
                    start: s.start,
                    end: s.end,
                    text: s.text,
                    average_logprob: s.average_logprob,
                    no_speech_prob: Some(s.no_speech_prob),
                    unit: None,
                    unit_tag: String::new(),
                })
                .collect(),
        })
    }
}
