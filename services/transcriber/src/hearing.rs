//! Before any engine is asked: the call is decoded once to 16 kHz samples, and
//! [`bcfy_signal`] tells whether it holds speech and which tones. A call without speech is
//! never sent to a provider (it would invent words for a tone-out or a squelch burst); its
//! transcript is published with empty text and the reason. The audio a provider receives stays
//! the call's exact bytes: this only decides whether to send it.

use std::sync::Arc;
use std::time::Duration;

use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate};
use bcfy_signal::{Speech, SpeechSettings, Tone, ToneKind};
use bytes::Bytes;
use serde::Deserialize;

use crate::error::TranscriptionError;

/// `transcription.gating.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct GatingConfig {
    /// Decode each call, detect speech and tones, and send only calls with speech to the
    /// provider. Off: every call goes to the provider as before, no tones are reported, and a
    /// transcript without text is a dead letter.
    pub enabled: bool,
    /// A 16 ms frame is speech at or above this voice-activity score (0–1).
    pub speech_threshold: f32,
    /// A call holds speech when it has at least this much of it.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub min_speech: Duration,
}

impl Default for GatingConfig {
    fn default() -> Self {
        let speech = SpeechSettings::default();
        Self {
            enabled: true,
            speech_threshold: speech.threshold,
            min_speech: speech.min_speech,
        }
    }
}

impl Validate for GatingConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if !(0.0..=1.0).contains(&self.speech_threshold) {
            issues.push(ConfigIssue::new(
                prefix,
                "speech_threshold",
                "must be in [0, 1]",
            ));
        }
    }
}

/// What the call holds.
#[derive(Debug, Clone)]
pub(crate) struct Heard {
    /// The decoded samples, for the built-in engine (decoded once).
    pub(crate) samples: Arc<[f32]>,
    /// How much speech.
    pub(crate) speech: Speech,
    /// The tones, by start.
    pub(crate) tones: Vec<Tone>,
}

impl Heard {
    /// Why there will be no text, when there is no speech.
    pub(crate) fn no_speech_reason(&self) -> Option<&'static str> {
        match (self.speech.has_speech, self.tones.is_empty()) {
            (true, _) => None,
            (false, true) => Some("no_speech"),
            (false, false) => Some("tones_only"),
        }
    }
}

/// Decodes `audio` and listens to it on a blocking thread.
///
/// # Errors
///
/// [`TranscriptionError::Undecodable`] when the audio cannot be decoded (permanent for it).
pub(crate) async fn listen(
    audio: Bytes,
    content_type: &str,
    settings: &GatingConfig,
) -> Result<Heard, TranscriptionError> {
    let content_type = content_type.to_owned();
    let speech_settings = SpeechSettings {
        threshold: settings.speech_threshold,
        min_speech: settings.min_speech,
    };
    tokio::task::spawn_blocking(move || {
        let samples = bcfy_whisper::decode_16k(audio, &content_type)
            .map_err(TranscriptionError::Undecodable)?;
        let (speech, tones) = bcfy_signal::listen(&samples, &speech_settings);
        Ok(Heard {
            samples: samples.into(),
            speech,
            tones,
        })
    })
    .await
    .map_err(TranscriptionError::EngineTask)?
}

/// The tones as the event carries them.
pub(crate) fn tones(tones: &[Tone]) -> Vec<bcfy_proto::Tone> {
    tones
        .iter()
        .map(|tone| bcfy_proto::Tone {
            kind: match tone.kind {
                ToneKind::Single => bcfy_proto::ToneKind::Single,
                ToneKind::TwoTone => bcfy_proto::ToneKind::TwoTone,
                ToneKind::Dtmf => bcfy_proto::ToneKind::Dtmf,
            }
            .into(),
            frequency_hz: tone.frequency_hz,
            second_frequency_hz: tone.second_frequency_hz,
            start: tone.start,
            duration: tone.duration,
            second_duration: tone.second_duration,
            digits: tone.digits.clone(),
        })
        .collect()
}
