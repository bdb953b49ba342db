//! Hallucination cleanup. Whisper, fed radio audio, invents a few things again and again:
//! "Thank you.", "Thanks for watching!", a lone "you", subtitle credits, one phrase repeated
//! over and over. A segment is dropped when it is one of those — a known phrase (the built-in
//! list plus `phrases` from config), or a text that stands `repeats` times or more in the call —
//! **and** the engine itself marks it unlikely (its no-speech probability at or above
//! `no_speech_prob`, or its mean log-probability at or below `logprob`). A real "thank you"
//! the engine is sure of stays. `text` is rebuilt from the segments kept; the engine's own text
//! stays on the event as `raw_text`. A transcript without segments (a `json` provider) has
//! nothing to judge by and is left as it is.

use bcfy_config::{ConfigIssue, Validate};
use bcfy_proto::TranscriptSegment;
use serde::Deserialize;

/// Texts Whisper is known to invent on non-speech audio, normalised (lower case, letters,
/// digits and single spaces).
const KNOWN: &[&str] = &[
    "you",
    "thank you",
    "thank you very much",
    "thanks",
    "thanks for watching",
    "thank you for watching",
    "thank you so much for watching",
    "please subscribe",
    "subscribe to my channel",
    "bye",
    "bye bye",
    "subtitles by the amara org community",
    "transcribed by https otter ai",
    "transcription by castingwords",
];

/// `transcription.cleanup.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct CleanupConfig {
    /// Drop known hallucinations.
    pub enabled: bool,
    /// More phrases to treat as known (matched whole, ignoring case and punctuation).
    pub phrases: Vec<String>,
    /// A segment is unlikely at or above this no-speech probability.
    pub no_speech_prob: f64,
    /// A segment is unlikely at or below this mean log-probability.
    pub logprob: f64,
    /// A text standing this many times or more in one call is a candidate.
    pub repeats: usize,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            phrases: Vec::new(),
            no_speech_prob: 0.6,
            logprob: -1.0,
            repeats: 3,
        }
    }
}

impl Validate for CleanupConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if !(0.0..=1.0).contains(&self.no_speech_prob) {
            issues.push(ConfigIssue::new(
                prefix,
                "no_speech_prob",
                "must be in [0, 1]",
            ));
        }
        if self.repeats < 2 {
            issues.push(ConfigIssue::new(prefix, "repeats", "must be at least 2"));
        }
    }
}

/// Lower case, letters and digits only, single spaces.
fn normalised(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the cleanup kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cleaned {
    /// The text of the segments kept.
    pub(crate) text: String,
    /// The segments kept.
    pub(crate) segments: Vec<TranscriptSegment>,
    /// How many were dropped.
    pub(crate) dropped: usize,
}

impl CleanupConfig {
    fn unlikely(&self, segment: &TranscriptSegment) -> bool {
        segment
            .no_speech_prob
            .is_some_and(|p| p >= self.no_speech_prob)
            || segment.average_logprob.is_some_and(|l| l <= self.logprob)
    }

    /// The segments without the hallucinations; `None` when nothing is dropped.
    pub(crate) fn clean(&self, segments: &[TranscriptSegment]) -> Option<Cleaned> {
        if !self.enabled || segments.is_empty() {
            return None;
        }
        let texts: Vec<String> = segments.iter().map(|s| normalised(&s.text)).collect();
        let extra: Vec<String> = self.phrases.iter().map(|p| normalised(p)).collect();
        let candidate = |text: &String| {
            text.is_empty()
                || KNOWN.contains(&text.as_str())
                || extra.contains(text)
                || texts.iter().filter(|other| *other == text).count() >= self.repeats
        };
        let kept: Vec<TranscriptSegment> = segments
            .iter()
            .zip(&texts)
            .filter(|(segment, text)| !(candidate(text) && self.unlikely(segment)))
            .map(|(segment, _)| segment.clone())
            .collect();
        let dropped = segments.len() - kept.len();
        (dropped > 0).then(|| Cleaned {
            text: kept
                .iter()
                .map(|s| s.text.trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            segments: kept,
            dropped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(text: &str, no_speech_prob: f64, logprob: f64) -> TranscriptSegment {
        TranscriptSegment {
            text: text.to_owned(),
            no_speech_prob: Some(no_speech_prob),
            average_logprob: Some(logprob),
            ..TranscriptSegment::default()
        }
    }

    #[test]
    fn a_known_phrase_goes_only_when_the_engine_doubts_it() {
        let cleanup = CleanupConfig::default();
        let segments = [
            segment(" Engine 12, respond to Main and 5th.", 0.05, -0.3),
            segment(" Thank you.", 0.8, -0.4),
            segment(" Thanks for watching!", 0.1, -1.4),
        ];
        let cleaned = cleanup.clean(&segments).expect("something dropped");
        assert_eq!(cleaned.text, "Engine 12, respond to Main and 5th.");
        assert_eq!(cleaned.dropped, 2);
        let sure = [segment(" Thank you.", 0.05, -0.2)];
        assert_eq!(
            cleanup.clean(&sure),
            None,
            "a thank-you the engine is sure of stays"
        );
    }

    #[test]
    fn a_text_repeated_three_times_goes_when_doubted_and_configured_phrases_count() {
        let cleanup = CleanupConfig {
            phrases: vec!["Copy that, over".to_owned()],
            ..CleanupConfig::default()
        };
        let segments = [
            segment("Medic 4 en route.", 0.1, -0.3),
            segment("I'm going to go.", 0.7, -0.9),
            segment("I'm going to go.", 0.7, -0.9),
            segment("I'm going to go.", 0.7, -0.9),
            segment("copy that over", 0.2, -1.2),
        ];
        let cleaned = cleanup.clean(&segments).expect("dropped");
        assert_eq!(cleaned.text, "Medic 4 en route.");
        assert_eq!(cleaned.segments.len(), 1);
        let twice = &segments[..3];
        assert_eq!(cleanup.clean(twice), None, "two repeats are not a pattern");
    }

    #[test]
    fn without_probabilities_or_when_disabled_nothing_is_dropped() {
        let unscored = [TranscriptSegment {
            text: "Thank you.".to_owned(),
            ..TranscriptSegment::default()
        }];
        assert_eq!(CleanupConfig::default().clean(&unscored), None);
        let off = CleanupConfig {
            enabled: false,
            ..CleanupConfig::default()
        };
        assert_eq!(off.clean(&[segment("Thank you.", 0.9, -2.0)]), None);
    }
}
