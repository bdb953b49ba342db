//! Hallucination cleanup. Whisper, fed radio audio, invents a few things again and again:
//! "Thank you.", "Thanks for watching!", a lone "you", subtitle credits, one phrase repeated
//! over and over, or one word or number looping ("6, 6, 6, 6, …") until the window ends. A
//! segment is dropped when it is one of those — a known phrase (the built-in
//! list plus `phrases` from config), or a text that stands `repeats` times or more in the call —
//! **and** the engine itself marks it unlikely (its no-speech probability at or above
//! `no_speech_prob`, or its mean log-probability at or below `logprob`). A real "thank you"
//! the engine is sure of stays. A loop — a run of one to four words repeated `loop_repeats`
//! times or more in a row — is cut to its first occurrence whatever the engine thinks of it:
//! radio speech does not say the same thing ten times without a breath. `text` is rebuilt from
//! what is kept; the engine's own text stays on the event as `raw_text`. A transcript without
//! segments (a `json` provider) has only its loops cut.

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
    /// One to four words repeated this many times in a row are a loop, cut to one.
    pub loop_repeats: usize,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            phrases: Vec::new(),
            no_speech_prob: 0.6,
            logprob: -1.0,
            repeats: 3,
            loop_repeats: 4,
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
        if self.loop_repeats < 2 {
            issues.push(ConfigIssue::new(
                prefix,
                "loop_repeats",
                "must be at least 2",
            ));
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

/// `text` with every loop cut to its first occurrence; `None` when it has none.
fn without_loops(text: &str, repeats: usize) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let same =
        |a: &[&str], b: &[&str]| a.iter().zip(b).all(|(x, y)| normalised(x) == normalised(y));
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    let mut cut = false;
    let mut i = 0;
    'words: while i < words.len() {
        for n in 1..=4 {
            let mut times = 1;
            while i + (times + 1) * n <= words.len()
                && same(&words[i..i + n], &words[i + times * n..i + (times + 1) * n])
            {
                times += 1;
            }
            if times >= repeats {
                kept.extend_from_slice(&words[i..i + n]);
                i += times * n;
                cut = true;
                continue 'words;
            }
        }
        kept.push(words[i]);
        i += 1;
    }
    cut.then(|| kept.join(" "))
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

    /// `text` without loops, for a transcript without segments; `None` when it has none.
    pub(crate) fn clean_text(&self, text: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        without_loops(text, self.loop_repeats)
    }

    /// The segments without the hallucinations and loops; `None` when nothing changed.
    pub(crate) fn clean(&self, segments: &[TranscriptSegment]) -> Option<Cleaned> {
        if !self.enabled || segments.is_empty() {
            return None;
        }
        let mut looped = false;
        let segments: Vec<TranscriptSegment> = segments
            .iter()
            .map(
                |segment| match without_loops(&segment.text, self.loop_repeats) {
                    Some(text) => {
                        looped = true;
                        TranscriptSegment {
                            text,
                            ..segment.clone()
                        }
                    }
                    None => segment.clone(),
                },
            )
            .collect();
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
        (dropped > 0 || looped).then(|| Cleaned {
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
    fn a_loop_is_cut_to_its_first_occurrence_and_a_short_repeat_stays() {
        let cleanup = CleanupConfig::default();
        let looped = [segment(
            "Car 4, 2, 12, 3, 6, 6, 6, 6, 6, 6, 6, 6,",
            0.1,
            -0.4,
        )];
        let cleaned = cleanup.clean(&looped).expect("cut");
        assert_eq!(cleaned.text, "Car 4, 2, 12, 3, 6,");
        assert_eq!(cleaned.dropped, 0);
        assert_eq!(
            cleanup.clean_text("respond now respond now respond now respond now to Main"),
            Some("respond now to Main".to_owned())
        );
        assert_eq!(
            cleanup.clean_text("10-4, 10-4, copy"),
            None,
            "twice is speech"
        );
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
