//! The providers behind one interface: the whole call's audio in, a [`Transcript`] or a
//! [`TranscriptionError`] out. `openai`, `deepgram` and `assemblyai` talk to a server;
//! `whisper` runs the built-in engine.

use std::sync::Arc;

use bcfy_proto::TranscriptSegment;
use bytes::Bytes;

use crate::assemblyai::AssemblyAiProvider;
use crate::config::{Provider as ProviderName, TranscriptionConfig};
use crate::deepgram::DeepgramProvider;
use crate::error::TranscriptionError;
use crate::openai::OpenAiProvider;
use crate::whisper::WhisperProvider;

/// A transcript as the provider gave it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// The whole text, trimmed; a provider never returns it empty
    /// ([`TranscriptionError::EmptyText`] instead).
    pub text: String,
    /// The language the provider reports, else the one asked for.
    pub language: Option<String>,
    /// Seconds of audio, when known.
    pub duration_seconds: Option<f64>,
    /// Mean token log-probability, when reported.
    pub average_logprob: Option<f64>,
    /// Timed segments (`verbose_json` or the built-in engine).
    pub segments: Vec<TranscriptSegment>,
}

/// Why a provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The HTTP client could not be built.
    #[error("cannot build the STT client")]
    Http(#[source] reqwest::Error),
    /// The model could not be found or converted.
    #[error("cannot prepare the Whisper model")]
    Model(#[source] bcfy_whisper::ConvertError),
    /// The engine could not load the model.
    #[error(transparent)]
    Engine(#[from] bcfy_whisper::EngineError),
    /// Loading the engine ended without an answer (it panicked or was cancelled).
    #[error("loading the Whisper engine ended without an answer")]
    EngineTask(#[source] tokio::task::JoinError),
    /// `transcription.whisper.model_path` is not set.
    #[error("transcription.whisper.model_path is required with provider `whisper`")]
    NoModel,
}

/// The configured provider.
#[derive(Debug, Clone)]
pub enum Provider {
    /// An OpenAI-compatible server.
    OpenAi(OpenAiProvider),
    /// Deepgram's pre-recorded API.
    Deepgram(DeepgramProvider),
    /// AssemblyAI's asynchronous API.
    AssemblyAi(AssemblyAiProvider),
    /// The built-in engine (shared by every task of this replica).
    Whisper(Arc<WhisperProvider>),
}

impl Provider {
    /// Sets up the configured provider; loading the built-in engine (and converting its model
    /// the first time) blocks, so it runs on a blocking thread.
    ///
    /// # Errors
    ///
    /// [`ProviderError`] when the client, the model or the engine cannot be set up.
    pub async fn from_config(config: &TranscriptionConfig) -> Result<Provider, ProviderError> {
        match config.provider {
            ProviderName::Openai => OpenAiProvider::new(config)
                .map(Provider::OpenAi)
                .map_err(ProviderError::Http),
            ProviderName::Deepgram => DeepgramProvider::new(config)
                .map(Provider::Deepgram)
                .map_err(ProviderError::Http),
            ProviderName::Assemblyai => AssemblyAiProvider::new(config)
                .map(Provider::AssemblyAi)
                .map_err(ProviderError::Http),
            ProviderName::Whisper => {
                let config = config.clone();
                tokio::task::spawn_blocking(move || WhisperProvider::load(&config))
                    .await
                    .map_err(ProviderError::EngineTask)?
                    .map(|engine| Provider::Whisper(Arc::new(engine)))
            }
        }
    }

    /// The model name recorded with each transcript.
    pub fn model(&self) -> &str {
        match self {
            Provider::OpenAi(provider) => provider.model(),
            Provider::Deepgram(provider) => provider.model(),
            Provider::AssemblyAi(provider) => provider.model(),
            Provider::Whisper(provider) => provider.model(),
        }
    }

    /// Transcribes one whole call (`content_type` as the CDN served it); `samples` are its
    /// 16 kHz samples when already decoded (the built-in engine then does not decode again; a
    /// server always gets the call's exact bytes).
    ///
    /// # Errors
    ///
    /// Any [`TranscriptionError`]; no text is [`TranscriptionError::EmptyText`].
    pub async fn transcribe(
        &self,
        audio: Bytes,
        content_type: &str,
        prompt: Option<&str>,
        samples: Option<Arc<[f32]>>,
    ) -> Result<Transcript, TranscriptionError> {
        match self {
            Provider::OpenAi(provider) => provider.transcribe(audio, content_type, prompt).await,
            Provider::Deepgram(provider) => provider.transcribe(audio, content_type).await,
            Provider::AssemblyAi(provider) => provider.transcribe(audio).await,
            Provider::Whisper(provider) => {
                Arc::clone(provider)
                    .transcribe(audio, content_type, prompt, samples)
                    .await
            }
        }
    }
}
