//! Speech or not: earshot's voice-activity detector scores each 16 ms frame (256 samples at
//! 16 kHz) from 0 to 1; frames at or above the threshold are speech when they are also voiced
//! (they repeat at a pitch period). On band-limited radio audio the detector takes loud static
//! and squelch bursts for voice; those never repeat at a pitch. A call has
//! speech when it holds at least `min_speech` of it — a single loud frame of static is not a
//! sentence.

use std::time::Duration;

use crate::RATE;

/// Samples per frame the detector takes.
const FRAME: usize = 256;
/// The window read for voicing: the frame and the one before (32 ms, two periods of a low
/// voice).
const VOICING_WINDOW: usize = 2 * FRAME;
/// Pitch periods looked for, in samples at half the rate: 80–400 Hz.
const PITCH_LAGS: std::ops::RangeInclusive<usize> = 20..=100;
/// Normalised autocorrelation at the pitch period from which a window is voiced.
const VOICED: f64 = 0.45;

/// True when the window repeats itself at a pitch period: voiced speech does, static, hiss
/// and squelch noise of any colour do not. Read at 8 kHz (pairs averaged), which is plenty
/// for pitch and a quarter of the work.
fn voiced(window: &[f32]) -> bool {
    let half: Vec<f64> = window
        .chunks_exact(2)
        .map(|pair| f64::from(pair[0] + pair[1]) / 2.0)
        .collect();
    let mean = half.iter().sum::<f64>() / half.len().max(1) as f64;
    let centred: Vec<f64> = half.iter().map(|s| s - mean).collect();
    let energy: f64 = centred.iter().map(|s| s * s).sum();
    if energy <= 1e-9 {
        return false;
    }
    PITCH_LAGS.into_iter().any(|lag| {
        let (head, tail) = (&centred[..centred.len() - lag], &centred[lag..]);
        let cross: f64 = head.iter().zip(tail).map(|(a, b)| a * b).sum();
        let norm = (head.iter().map(|s| s * s).sum::<f64>()
            * tail.iter().map(|s| s * s).sum::<f64>())
        .sqrt();
        norm > 0.0 && cross / norm >= VOICED
    })
}

/// How speech is told from the rest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpeechSettings {
    /// A frame is speech at or above this score (0–1).
    pub threshold: f32,
    /// A call has speech when it holds at least this much.
    pub min_speech: Duration,
}

impl Default for SpeechSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech: Duration::from_millis(300),
        }
    }
}

/// How much of a call is speech.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Speech {
    /// Seconds of frames scored as speech.
    pub speech_seconds: f64,
    /// Seconds of audio scored.
    pub total_seconds: f64,
    /// True when `speech_seconds` reaches the settings' `min_speech`.
    pub has_speech: bool,
}

/// Scores `samples` (16 kHz mono, −1..1) frame by frame.
pub fn detect_speech(samples: &[f32], settings: &SpeechSettings) -> Speech {
    detect_speech_outside(samples, settings, &[])
}

/// As [`detect_speech`], frames within `ignored` spans (seconds, start and end) not counted as
/// speech: the detector scores some tones as voice, so the tones found are left out.
pub fn detect_speech_outside(
    samples: &[f32],
    settings: &SpeechSettings,
    ignored: &[(f64, f64)],
) -> Speech {
    let mut detector = earshot::Detector::default();
    let frame_seconds = FRAME as f64 / f64::from(RATE);
    let mut speech_frames = 0usize;
    let mut frames = 0usize;
    let mut clamped = [0.0f32; FRAME];
    for (i, frame) in samples.chunks_exact(FRAME).enumerate() {
        frames += 1;
        let at = i as f64 * frame_seconds;
        let inside = ignored
            .iter()
            .any(|(start, end)| at + frame_seconds > *start && at < *end);
        // Decoded audio overshoots ±1 a little (AAC, resampling); the detector refuses that.
        for (to, from) in clamped.iter_mut().zip(frame) {
            *to = if from.is_finite() {
                from.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
        // Every frame is scored, so the detector's state follows the audio.
        let score = detector.predict_f32(&clamped);
        let window =
            &samples[(i + 1) * FRAME - VOICING_WINDOW.min((i + 1) * FRAME)..(i + 1) * FRAME];
        if score >= settings.threshold && !inside && voiced(window) {
            speech_frames += 1;
        }
    }
    let speech_seconds = speech_frames as f64 * frame_seconds;
    Speech {
        speech_seconds,
        total_seconds: frames as f64 * frame_seconds,
        has_speech: speech_seconds >= settings.min_speech.as_secs_f64(),
    }
}
