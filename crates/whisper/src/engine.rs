//! whisper.cpp as a blocking engine: one loaded model ([`WhisperContext`], read-only, shared) and
//! a pool of decoding states (each holds its own buffers, ~tens of MB for tiny), one per call in
//! flight. Timestamps stay on, so whisper.cpp seeks through calls longer than its 30 s window
//! instead of stopping after the first one.

use std::path::PathBuf;
use std::sync::Mutex;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// How the engine decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// A whisper.cpp ggml model file (see [`crate::resolve_model`] for CTranslate2 directories).
    pub model: PathBuf,
    /// CPU threads per call.
    pub threads: usize,
    /// 1 for greedy decoding, more for beam search with that many beams.
    pub beam_size: usize,
    /// Re-decode at higher temperatures when a window looks unreliable (whisper.cpp's default);
    /// costs time on noisy audio, measured to gain nothing on radio calls.
    pub temperature_fallback: bool,
    /// Language code such as `en`; `None` lets the model detect it (multilingual models).
    pub language: Option<String>,
    /// Decoding states created at load: the number of calls transcribed at once.
    pub states: usize,
    /// Segments end at a word boundary once they reach this many characters (0: whisper.cpp's
    /// own segments, often one per 30 s window). Shorter segments let each carry the unit that
    /// was talking when it starts.
    pub max_segment_chars: usize,
    /// How much audio the encoder looks at per window.
    pub audio_context: AudioContext,
}

/// How much audio Whisper's encoder processes per window. Whisper is trained on 30 s windows
/// (1,500 encoder positions of 20 ms), padding shorter audio with silence; most radio calls last
/// 2–10 s, so most of that work is spent on padding. whisper.cpp can run the encoder over fewer
/// positions (`audio_ctx`), which costs proportionally less.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AudioContext {
    /// The model's whole 30 s window, whatever the call's length.
    Full,
    /// The call's length plus a second of margin, rounded up to 1.28 s steps (64 positions);
    /// calls near or over 30 s use the whole window.
    #[default]
    Fit,
}

/// Audio samples per encoder position: 16,000 Hz × 20 ms.
const SAMPLES_PER_POSITION: usize = 320;
/// Positions added after the call's end, so its last word is not at the window's edge.
const MARGIN_POSITIONS: usize = 50;
/// Fitted contexts are multiples of this many positions.
const POSITION_STEP: usize = 64;

impl AudioContext {
    /// whisper.cpp's `audio_ctx` for `samples` 16 kHz samples in a model of `model_positions`
    /// positions: 0 for the model's own.
    fn positions(self, samples: usize, model_positions: usize) -> usize {
        match self {
            AudioContext::Full => 0,
            AudioContext::Fit => {
                let needed = samples.div_ceil(SAMPLES_PER_POSITION) + MARGIN_POSITIONS;
                let fitted = needed.div_ceil(POSITION_STEP) * POSITION_STEP;
                if fitted >= model_positions { 0 } else { fitted }
            }
        }
    }
}

/// Why the engine could not load or transcribe.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model file does not exist.
    #[error("no Whisper model at {0}")]
    NoModel(PathBuf),
    /// whisper.cpp could not load the model file.
    #[error("cannot load the Whisper model {path}")]
    Load {
        /// The model file.
        path: PathBuf,
        /// whisper.cpp's error.
        #[source]
        source: whisper_rs::WhisperError,
    },
    /// whisper.cpp failed on this audio.
    #[error("whisper.cpp failed")]
    Whisper(#[source] whisper_rs::WhisperError),
}

/// One timed piece of a transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Seconds from the start of the call.
    pub start: f64,
    /// Seconds from the start of the call.
    pub end: f64,
    /// The text, trimmed.
    pub text: String,
    /// Mean log-probability of the segment's text tokens.
    pub average_logprob: Option<f64>,
    /// The model's probability that the window holds no speech.
    pub no_speech_prob: f64,
}

/// What the engine heard in one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognition {
    /// The segments' texts joined by spaces, trimmed; empty when nothing was said (silence and
    /// annotations such as `[BLANK_AUDIO]` are left out).
    pub text: String,
    /// The timed segments.
    pub segments: Vec<Segment>,
    /// Mean log-probability over every text token of the call.
    pub average_logprob: Option<f64>,
}

/// A loaded model and its pool of decoding states.
pub struct Engine {
    context: WhisperContext,
    pool: Mutex<Vec<WhisperState>>,
    settings: EngineSettings,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn whisper_error(error: whisper_rs::WhisperError) -> EngineError {
    EngineError::Whisper(error)
}

/// True for a segment that only describes the audio, such as whisper.cpp's `[BLANK_AUDIO]` on
/// silence or Whisper's `(static)`, `[MUSIC]`: not words anyone said, so not a transcript.
fn is_annotation(text: &str) -> bool {
    let enclosed = |open: char, close: char| {
        text.starts_with(open) && text.ends_with(close) && text.matches(open).count() == 1
    };
    enclosed('[', ']') || enclosed('(', ')')
}

/// Whisper's own rule for a window with no speech in it: the model says so (`no_speech_prob`
/// above 0.6) and doubts what it wrote (mean log-probability below −1). A short window of
/// silence otherwise comes out as a stock phrase such as "you".
fn is_silence(no_speech_prob: f64, average_logprob: Option<f64>) -> bool {
    no_speech_prob > 0.6 && average_logprob.is_some_and(|p| p < -1.0)
}

/// Centiseconds (whisper.cpp's timestamps) to seconds.
fn seconds(centiseconds: i64) -> f64 {
    centiseconds as f64 / 100.0
}

impl Engine {
    /// Loads the model and creates `settings.states` decoding states. whisper.cpp's own log
    /// lines go to `tracing`.
    ///
    /// # Errors
    ///
    /// [`EngineError::Load`] when the file is missing or not a whisper.cpp model.
    pub fn load(settings: EngineSettings) -> Result<Engine, EngineError> {
        whisper_rs::install_logging_hooks();
        let failed = |source| EngineError::Load {
            path: settings.model.clone(),
            source,
        };
        if !settings.model.is_file() {
            return Err(EngineError::NoModel(settings.model.clone()));
        }
        let context =
            WhisperContext::new_with_params(&settings.model, WhisperContextParameters::default())
                .map_err(failed)?;
        let pool = (0..settings.states.max(1))
            .map(|_| context.create_state())
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        Ok(Engine {
            context,
            pool: Mutex::new(pool),
            settings,
        })
    }

    /// The settings the engine was loaded with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Transcribes 16 kHz mono samples, biased by `prompt` (vocabulary, unit names). Blocks
    /// for the whole computation: call it from a blocking thread.
    ///
    /// # Errors
    ///
    /// [`EngineError::Whisper`] when whisper.cpp fails (no samples, out of memory).
    pub fn transcribe(
        &self,
        samples: &[f32],
        prompt: Option<&str>,
    ) -> Result<Recognition, EngineError> {
        let mut state = self.checkout()?;
        let result = self.run(&mut state, samples, prompt);
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(state);
        result
    }

    /// A free state; a new one when more calls run at once than the pool was sized for.
    fn checkout(&self) -> Result<WhisperState, EngineError> {
        let free = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        match free {
            Some(state) => Ok(state),
            None => self.context.create_state().map_err(whisper_error),
        }
    }

    fn params<'a>(&'a self, prompt: Option<&str>, samples: usize) -> FullParams<'a, 'a> {
        let strategy = if self.settings.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: i32::try_from(self.settings.beam_size).unwrap_or(5),
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut params = FullParams::new(strategy);
        params.set_n_threads(i32::try_from(self.settings.threads.max(1)).unwrap_or(1));
        let model_positions = usize::try_from(self.context.n_audio_ctx()).unwrap_or(0);
        let positions = self
            .settings
            .audio_context
            .positions(samples, model_positions);
        params.set_audio_ctx(i32::try_from(positions).unwrap_or(0));
        params.set_language(self.settings.language.as_deref());
        params.set_detect_language(self.settings.language.is_none());
        // Each call stands alone: no text carried over from a previous call.
        params.set_no_context(true);
        params.set_no_timestamps(false);
        if self.settings.max_segment_chars > 0 {
            params.set_token_timestamps(true);
            params.set_split_on_word(true);
            params.set_max_len(i32::try_from(self.settings.max_segment_chars).unwrap_or(i32::MAX));
        }
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        if !self.settings.temperature_fallback {
            params.set_temperature_inc(0.0);
        }
        if let Some(prompt) = prompt.filter(|p| !p.trim().is_empty()) {
            params.set_initial_prompt(prompt);
        }
        params
    }

    fn run(
        &self,
        state: &mut WhisperState,
        samples: &[f32],
        prompt: Option<&str>,
    ) -> Result<Recognition, EngineError> {
        state
            .full(self.params(prompt, samples.len()), samples)
            .map_err(whisper_error)?;
        let end_of_text = self.context.token_eot();
        let (mut all_logprob, mut all_tokens) = (0.0f64, 0usize);
        let mut segments = Vec::new();
        for segment in state.as_iter() {
            let text = segment
                .to_str_lossy()
                .map_err(whisper_error)?
                .trim()
                .to_owned();
            let (mut logprob, mut tokens) = (0.0f64, 0usize);
            for i in 0..segment.n_tokens() {
                if let Some(token) = segment.get_token(i) {
                    let data = token.token_data();
                    // Special and timestamp tokens come after end-of-text in the vocabulary.
                    if data.id < end_of_text {
                        logprob += f64::from(data.plog);
                        tokens += 1;
                    }
                }
            }
            let no_speech_prob = f64::from(segment.no_speech_probability());
            let average_logprob = (tokens > 0).then(|| logprob / tokens as f64);
            if text.is_empty()
                || is_annotation(&text)
                || is_silence(no_speech_prob, average_logprob)
            {
                continue;
            }
            all_logprob += logprob;
            all_tokens += tokens;
            segments.push(Segment {
                start: seconds(segment.start_timestamp()),
                end: seconds(segment.end_timestamp()),
                text,
                average_logprob,
                no_speech_prob,
            });
        }
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Recognition {
            text,
            segments,
            average_logprob: (all_tokens > 0).then(|| all_logprob / all_tokens as f64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{AudioContext, is_annotation, is_silence};

    #[test]
    fn a_window_is_silence_only_when_the_model_says_so_and_doubts_its_words() {
        assert!(is_silence(0.98, Some(-1.7)));
        assert!(!is_silence(0.98, Some(-0.4)), "confident words stay");
        assert!(!is_silence(0.2, Some(-1.7)), "doubtful speech stays");
        assert!(!is_silence(0.98, None));
    }

    #[test]
    fn a_fitted_context_covers_the_call_and_a_margin_in_whole_steps() {
        let positions =
            |seconds: f64| AudioContext::Fit.positions((seconds * 16_000.0) as usize, 1500);
        // 5 s = 250 positions + 50 margin → 320 (five steps of 64).
        assert_eq!(positions(5.0), 320);
        assert_eq!(positions(0.1), 64);
        // 26.5 s needs 1,375 → 1,408, still under the model's 1,500.
        assert_eq!(positions(26.5), 1408);
        // Past what a step below the model's window holds: the whole window.
        assert_eq!(positions(29.0), 0);
        assert_eq!(positions(45.0), 0);
        assert_eq!(AudioContext::Full.positions(80_000, 1500), 0);
    }

    #[test]
    fn annotations_are_not_speech() {
        assert!(is_annotation("[BLANK_AUDIO]"));
        assert!(is_annotation("(static)"));
        assert!(!is_annotation("Engine 12 (in quarters)"));
        assert!(!is_annotation("[inaudible] Engine 12 [inaudible]"));
        assert!(!is_annotation("Engine 12"));
    }
}
