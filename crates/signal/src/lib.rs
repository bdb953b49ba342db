//! What a call's audio holds besides words, read from its 16 kHz mono samples (the ones the
//! built-in engine transcribes, from `bcfy-whisper`'s decoder):
//!
//! - [`speech`]: how much of it is speech, by earshot's small neural voice-activity detector
//!   (its weights ship in the crate) — so a call that is only a tone-out, a key-up or a squelch
//!   burst is never sent to a speech-to-text engine, which would invent words for it;
//! - [`tones`]: sustained single tones, two-tone sequential pages (the fire-paging A then B
//!   tone) and DTMF digits, with frequency, start and duration;
//! - [`listen`]: both, the tones left out of the speech (the detector takes some tones for
//!   voice).

pub mod speech;
pub mod tones;

/// The sample rate everything here reads.
pub const RATE: u32 = 16_000;

pub use speech::{Speech, SpeechSettings, detect_speech, detect_speech_outside};
pub use tones::{Tone, ToneKind, detect_tones};

/// How far before a tone, and after it, the speech detector's verdict is not trusted: its
/// scores follow the audio with some memory, so they stay high for a while after a tone ends.
const BEFORE_TONE_SECONDS: f64 = 0.15;
const AFTER_TONE_SECONDS: f64 = 0.6;

/// The tones in `samples`, and how much speech there is outside them.
pub fn listen(samples: &[f32], settings: &SpeechSettings) -> (Speech, Vec<Tone>) {
    let tones = detect_tones(samples);
    let spans: Vec<(f64, f64)> = tones
        .iter()
        .map(|tone| {
            let end = tone.start + tone.duration + tone.second_duration;
            (tone.start - BEFORE_TONE_SECONDS, end + AFTER_TONE_SECONDS)
        })
        .collect();
    (detect_speech_outside(samples, settings, &spans), tones)
}
