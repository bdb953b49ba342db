//! One alert rule: what it is written as ([`RuleSpec`], in the config file or the `alert-rules`
//! bucket) and what it is compiled into ([`Rule`]), or why it cannot be ([`RuleError`]).
//!
//! A rule fires on a call when the call is in its scope (systems, talkgroups, units; empty
//! means any) and every kind of condition it sets holds: one of its keywords, its regular
//! expression, the emergency flag, one of its tone pairs. At least one condition is required,
//! and a phrase of its ignore list anywhere in the transcript stops it.

use std::time::Duration;

use bcfy_config::units;
use bcfy_proto::{AlertMatch, AlertMatchKind, Tone, ToneKind};
use bcfy_words::{Word, normalise};
use regex::Regex;
use serde::Deserialize;

/// The longest regular expression a rule may compile to (bytes of the compiled program); a
/// pathological expression is refused instead of slowing every transcript down.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// At most this many matches of one expression are reported.
const REGEX_MATCHES_REPORTED: usize = 10;

/// A rule as written.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSpec {
    /// Its name: letters, digits, `-` and `_`; the `{rule}` of `alerts.{rule}.…` (not
    /// "system").
    pub name: String,
    /// A disabled rule is kept but never fires.
    pub enabled: bool,
    /// RadioReference system ids (`sid`) it watches; empty: every system.
    pub systems: Vec<i64>,
    /// Talkgroups it watches; empty: every talkgroup.
    pub talkgroups: Vec<i64>,
    /// Units (radio ids) it watches, any of them transmitting in the call; empty: any unit.
    pub units: Vec<i64>,
    /// Words or phrases, one of which must be in the transcript as whole words, in any case,
    /// with spelled-out numbers read as digits ("engine 12" matches "Engine twelve").
    pub keywords: Vec<String>,
    /// Words or phrases that stop the rule wherever they appear ("test", "drill").
    pub ignore: Vec<String>,
    /// A regular expression (Rust `regex` syntax, case-insensitive) that must match the
    /// transcript.
    pub regex: Option<String>,
    /// Only calls with the emergency flag.
    pub emergency: bool,
    /// Two-tone pages, one of which must be in the call.
    pub tones: Vec<TonePair>,
    /// Calls older than this when their transcript arrives (replays after an outage) page no
    /// one.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub max_call_age: Duration,
    /// After an alert, the same rule stays quiet on the same talkgroup this long (0: never).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub cooldown: Duration,
}

impl Default for RuleSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            enabled: true,
            systems: Vec::new(),
            talkgroups: Vec::new(),
            units: Vec::new(),
            keywords: Vec::new(),
            ignore: Vec::new(),
            regex: None,
            emergency: false,
            tones: Vec::new(),
            // MAGIC NUMBER: 20 minutes, as trunk-transcribe pages: a call older than that is
            // history, not an incident to roll on.
            max_call_age: Duration::from_secs(20 * 60),
            cooldown: Duration::ZERO,
        }
    }
}

/// A two-tone page: the A tone then the B tone, each within the tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TonePair {
    /// The A tone, in hertz.
    pub a_hz: f64,
    /// The B tone, in hertz.
    pub b_hz: f64,
    /// How far each detected tone may be from the rule's, in hertz (default 5).
    #[serde(default = "default_tolerance")]
    pub tolerance_hz: f64,
}

fn default_tolerance() -> f64 {
    // MAGIC NUMBER: the tone detector is accurate to about ±2 Hz; paging encoders hold
    // ±0.5 %, a few hertz at the usual 300–1500 Hz.
    5.0
}

impl TonePair {
    fn matches(&self, tone: &Tone) -> bool {
        tone.kind == ToneKind::TwoTone as i32
            && (tone.frequency_hz - self.a_hz).abs() <= self.tolerance_hz
            && (tone.second_frequency_hz - self.b_hz).abs() <= self.tolerance_hz
    }

    fn term(&self) -> String {
        format!("{} Hz / {} Hz", self.a_hz, self.b_hz)
    }
}

/// Why a rule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule `{rule}`: {reason}")]
pub struct RuleError {
    /// The rule's name as written.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// A rule ready to match.
#[derive(Debug)]
pub struct Rule {
    /// As written.
    pub spec: RuleSpec,
    /// Each keyword's normal form.
    pub(crate) keywords: Vec<Vec<String>>,
    ignore: Vec<Vec<String>>,
    regex: Option<Regex>,
}

/// What a rule is checked against: one call's transcript and facts.
#[derive(Debug)]
pub struct Subject<'a> {
    /// The transcript's text.
    pub text: &'a str,
    /// Its words.
    pub words: &'a [Word],
    /// The call's system.
    pub sid: i64,
    /// The call's talkgroup.
    pub tg: i64,
    /// Units heard in the call.
    pub units: &'a [i64],
    /// The call's emergency flag.
    pub emergency: bool,
    /// Tones in the call.
    pub tones: &'a [Tone],
}

impl Rule {
    /// Compiles `spec`.
    ///
    /// # Errors
    ///
    /// [`RuleError`] naming the rule and the reason.
    pub fn compile(spec: RuleSpec) -> Result<Self, RuleError> {
        let fail = |reason: String| RuleError {
            rule: spec.name.clone(),
            reason,
        };
        if !bcfy_bus::call_id::is_token_safe(&spec.name) {
            return Err(fail("the name must be letters, digits, `-` or `_`".into()));
        }
        if spec.name == bcfy_bus::subject::SYSTEM_RULE {
            return Err(fail("`system` is the integration monitor's name".into()));
        }
        let phrases = |list: &[String], what: &str| {
            list.iter()
                .map(|phrase| {
                    let words = normalise(phrase);
                    if words.is_empty() {
                        Err(fail(format!("{what} `{phrase}` has no words")))
                    } else {
                        Ok(words)
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let keywords = phrases(&spec.keywords, "keyword")?;
        let ignore = phrases(&spec.ignore, "ignored phrase")?;
        let regex = spec
            .regex
            .as_deref()
            .map(|pattern| {
                regex::RegexBuilder::new(pattern)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|error| fail(format!("regex: {error}")))
            })
            .transpose()?;
        for pair in &spec.tones {
            let valid = |hz: f64| hz.is_finite() && hz > 0.0;
            if !valid(pair.a_hz)
                || !valid(pair.b_hz)
                || pair.tolerance_hz.is_nan()
                || pair.tolerance_hz < 0.0
            {
                return Err(fail(format!(
                    "tone pair {}: frequencies must be > 0 and the tolerance >= 0",
                    pair.term()
                )));
            }
        }
        if keywords.is_empty() && regex.is_none() && !spec.emergency && spec.tones.is_empty() {
            return Err(fail(
                "nothing to match: set keywords, regex, emergency or tones".into(),
            ));
        }
        Ok(Self {
            spec,
            keywords,
            ignore,
            regex,
        })
    }

    /// Its regular expression as compiled, if it has one.
    pub(crate) fn pattern(&self) -> Option<&str> {
        self.regex.as_ref().map(Regex::as_str)
    }

    /// What matched when the rule fires on `subject`, given the keyword matches already found
    /// (by the rule set's index); `None` when it does not fire.
    pub(crate) fn check(
        &self,
        subject: &Subject<'_>,
        keyword_matches: Vec<AlertMatch>,
    ) -> Option<Vec<AlertMatch>> {
        let spec = &self.spec;
        let in_scope = spec.enabled
            && (spec.systems.is_empty() || spec.systems.contains(&subject.sid))
            && (spec.talkgroups.is_empty() || spec.talkgroups.contains(&subject.tg))
            && (spec.units.is_empty() || spec.units.iter().any(|u| subject.units.contains(u)));
        if !in_scope
            || (!self.keywords.is_empty() && keyword_matches.is_empty())
            || (spec.emergency && !subject.emergency)
        {
            return None;
        }
        let mut matches = keyword_matches;
        if let Some(regex) = &self.regex {
            let before = matches.len();
            matches.extend(
                regex
                    .find_iter(subject.text)
                    .take(REGEX_MATCHES_REPORTED)
                    .map(|found| AlertMatch {
                        kind: AlertMatchKind::Regex.into(),
                        term: regex.as_str().to_owned(),
                        text: found.as_str().to_owned(),
                        start: offset(found.start()),
                        end: offset(found.end()),
                        tone: None,
                    }),
            );
            if matches.len() == before {
                return None;
            }
        }
        matches.sort_by_key(|m| (m.start, m.end));
        if spec.emergency {
            matches.push(AlertMatch {
                kind: AlertMatchKind::Emergency.into(),
                term: "emergency".into(),
                ..AlertMatch::default()
            });
        }
        if !spec.tones.is_empty() {
            let (pair, tone) = spec.tones.iter().find_map(|pair| {
                subject
                    .tones
                    .iter()
                    .find(|tone| pair.matches(tone))
                    .map(|tone| (pair, tone))
            })?;
            matches.push(AlertMatch {
                kind: AlertMatchKind::Tone.into(),
                term: pair.term(),
                text: format!(
                    "{:.1} Hz / {:.1} Hz",
                    tone.frequency_hz, tone.second_frequency_hz
                ),
                tone: Some(tone.clone()),
                ..AlertMatch::default()
            });
        }
        let ignored = self
            .ignore
            .iter()
            .any(|phrase| (0..subject.words.len()).any(|at| phrase_at(subject.words, at, phrase)));
        (!ignored).then_some(matches)
    }
}

/// Whether `phrase` starts at word `at`.
pub(crate) fn phrase_at(words: &[Word], at: usize, phrase: &[String]) -> bool {
    words
        .get(at..at + phrase.len())
        .is_some_and(|window| window.iter().zip(phrase).all(|(w, p)| w.norm == *p))
}

/// A byte offset as the proto's `uint32` (transcripts are far below 4 GiB).
pub(crate) fn offset(at: usize) -> u32 {
    u32::try_from(at).unwrap_or(u32::MAX)
}
