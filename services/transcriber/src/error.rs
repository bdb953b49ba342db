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
    /// The provider finished the call with an error of its own (audio it cannot read).
    #[error("the STT provider rejected the call: {reason}")]
    Rejected {
        /// The provider's reason.
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
    /// 5xx. Other 4xx (bad audio, bad model; a refused key is [`Self::is_refusal_of_us`]), unreadable or empty answers, undecodable
    /// audio and engine failures (whisper.cpp fails the same way on the same audio) are
    /// permanent for this call.
    pub fn is_transient(&self) -> bool {
        match self {
            TranscriptionError::Transport { .. } => true,
            TranscriptionError::Status { status, .. } => {
                *status == 408 || *status == 429 || *status >= 500
            }
            TranscriptionError::BadResponse { .. }
            | TranscriptionError::Rejected { .. }
            | TranscriptionError::EmptyText
            | TranscriptionError::Undecodable(_)
            | TranscriptionError::Engine(_)
            | TranscriptionError::EngineTask(_) => false,
        }
    }

    /// True when the provider refuses *us*, not this call: 401 (a bad or expired key), 402
    /// (billing) and 403 (no access). The transcriber then pauses instead of failing calls.
    pub fn is_refusal_of_us(&self) -> bool {
        matches!(
            self,
            TranscriptionError::Status {
                status: 401..=403,
                ..
            }
        )
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
            TranscriptionError::Status {
                status: 401..=403, ..
            } => "stt_refused",
            TranscriptionError::Status { status, .. } if *status >= 500 => "stt_server_error",
            TranscriptionError::Status { .. } | TranscriptionError::Rejected { .. } => {
                "stt_rejected"
            }
            TranscriptionError::BadResponse { .. } => "stt_bad_response",
            TranscriptionError::EmptyText => "stt_empty_text",
            TranscriptionError::Undecodable(_) => "stt_undecodable",
            TranscriptionError::Engine(_) | TranscriptionError::EngineTask(_) => "stt_engine",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> TranscriptionError {
        TranscriptionError::Status {
            status,
            retry_after: None,
            snippet: String::new(),
        }
    }

    #[test]
    fn a_refused_key_is_about_us_and_other_4xx_are_about_the_call() {
        for refused in [401, 402, 403] {
            assert!(status(refused).is_refusal_of_us(), "{refused}");
            assert!(!status(refused).is_transient(), "{refused}");
        }
        for other in [400, 404, 413, 415, 422, 429, 500] {
            assert!(!status(other).is_refusal_of_us(), "{other}");
        }
    }

    #[test]
    fn every_kind_a_call_is_given_up_for_is_a_known_dead_letter_kind() {
        let given_up = [
            status(400),
            TranscriptionError::Rejected {
                reason: String::new(),
            },
            TranscriptionError::BadResponse {
                reason: String::new(),
            },
            TranscriptionError::EmptyText,
            TranscriptionError::Undecodable(bcfy_whisper::DecodeError::Empty),
            TranscriptionError::Engine(bcfy_whisper::EngineError::NoModel("m".into())),
        ];
        let missing_chunk = bcfy_bus::reassemble::ReassemblyError::Missing {
            call_id: String::new(),
            sequence: 0,
        };
        let kinds = given_up
            .iter()
            .inspect(|error| assert!(!error.is_transient() && !error.is_refusal_of_us()))
            .map(TranscriptionError::kind)
            .chain([missing_chunk.kind(), bcfy_bus::consume::POISON]);
        for kind in kinds {
            assert!(
                bcfy_bus::dead_letter_kinds::find(kind)
                    .is_some_and(|known| known.stages.contains(&bcfy_bus::Stage::Transcriber)),
                "{kind}"
            );
        }
    }
}
