//! `TranscriptionError` (spec §3.5): every way a provider can fail to give a transcript. No
//! fallback text is ever made up: an error is retried (transient) or dead-lettered (permanent).

use std::time::Duration;

/// Why a call has no transcript.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptionError {
    /// The request did not complete (connection refused or reset, timeout).
    #[error("the STT request failed: {reason}")]
    Transport {
        /// What failed (no credentials in it).
        reason: String,
    },
    /// The provider answered with an error status.
    #[error("the STT provider answered {status}: {snippet}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Its `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// The start of the body, sanitized.
        snippet: String,
    },
    /// The answer could not be read as a transcription.
    #[error("the STT answer is unreadable: {reason}")]
    BadResponse {
        /// What was wrong.
        reason: String,
    },
    /// The answer had no text, or only whitespace.
    #[error("the STT answer has no text")]
    EmptyText,
    /// The built-in engine could not decode the audio.
    #[error("the audio cannot be decoded")]
    Undecodable(#[source] bcfy_whisper::DecodeError),
    /// The built-in engine failed on this call.
    #[error("the Whisper engine failed")]
    Engine(#[source] bcfy_whisper::EngineError),
    /// The engine's task ended without an answer (it panicked or was cancelled).
    #[error("the Whisper engine's task ended without an answer")]
    EngineTask(#[source] tokio::task::JoinError),
}

impl TranscriptionError {
    /// True when trying the same call again later may succeed: transport failures, 408, 429 and
    /// 5xx. Other 4xx (bad audio, bad model, bad key), unreadable or empty answers, undecodable
    /// audio and engine failures (whisper.cpp fails the same way on the same audio) are
    /// permanent for this call.
    pub fn is_transient(&self) -> bool {
        match self {
            TranscriptionError::Transport { .. } => true,
            TranscriptionError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            TranscriptionError::BadResponse { .. }
            | TranscriptionError::EmptyText
            | TranscriptionError::Undecodable(_)
            | TranscriptionError::Engine(_)
            | TranscriptionError::EngineTask(_) => false,
        }
    }

    /// The delay the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TranscriptionError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short label for metrics and dead letters.
    pub fn kind(&self) -> &'static str {
        match self {
            TranscriptionError::Transport { .. } => "stt_transport",
            TranscriptionError::Status { status: 429, .. } => "stt_rate_limited",
            TranscriptionError::Status { status, .. } if *status >= 500 => "stt_server_error",
            TranscriptionError::Status { .. } => "stt_rejected",
            TranscriptionError::BadResponse { .. } => "stt_bad_response",
            TranscriptionError::EmptyText => "stt_empty_text",
            TranscriptionError::Undecodable(_) => "stt_undecodable",
            TranscriptionError::Engine(_) | TranscriptionError::EngineTask(_) => "stt_engine",
        }
    }
}
