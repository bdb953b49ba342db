//! Subject builders and parsers. The subjects mirror the spec's topics, one level more specific
//! at each stage so consumers can be scaled per shard with a subject filter:
//!
//! | spec topic | we publish on | subscribe to get the spec's topic |
//! |---|---|---|
//! | `calls.live.{systemId}.{talkgroupId}` | `calls.live.{sid}.{tg}` | `calls.live.>` |
//! | `calls.audio.raw.{callId}` | `calls.audio.raw.{sid}.{tg}.{call_id}` | `calls.audio.raw.*.*.{call_id}` |
//! | `transcription.complete` | `transcription.complete.{sid}.{tg}.{call_id}` | `transcription.complete.>` |
//! | (dead letters) | `deadletter.{stage}.{sid}.{tg}.{call_id}` | `deadletter.>` |
//! | (alerts) | `alerts.{rule}.{sid}.{tg}.{call_id}`, `alerts.system.{kind}` | `alerts.>` |
//! | (health, not stored) | `status.{service}` | `status.>` |
//!
//! `{sid}` is Broadcastify's RadioReference system id, not the call's ingest node `systemId`.
//! Every token is an integer or a [`CallId`], so no input can produce a bad subject.

use std::fmt;
use std::str::FromStr;

use crate::call_id::{CallId, InvalidCallId};

/// Prefix of live-call subjects.
pub const LIVE_PREFIX: &str = "calls.live";
/// Prefix of raw-audio subjects.
pub const AUDIO_PREFIX: &str = "calls.audio.raw";
/// Prefix of transcript subjects.
pub const TRANSCRIPTION_PREFIX: &str = "transcription.complete";
/// Prefix of dead-letter subjects.
pub const DEAD_LETTER_PREFIX: &str = "deadletter";

/// Prefix of alert subjects.
pub const ALERT_PREFIX: &str = "alerts";
/// The `{rule}` token of the integration monitor's alerts (no rule may take this name).
pub const SYSTEM_RULE: &str = "system";
/// Prefix of the services' health reports (core NATS, not stored).
pub const STATUS_PREFIX: &str = "status";

/// Every live call (the spec's `calls.live`).
pub const ALL_LIVE: &str = "calls.live.>";
/// Every audio chunk (the spec's `calls.audio.raw`).
pub const ALL_AUDIO: &str = "calls.audio.raw.>";
/// Every transcript (the spec's `transcription.complete`).
pub const ALL_TRANSCRIPTIONS: &str = "transcription.complete.>";
/// Every dead letter.
pub const ALL_DEAD_LETTERS: &str = "deadletter.>";
/// Every alert.
pub const ALL_ALERTS: &str = "alerts.>";
/// Every service's health reports.
pub const ALL_STATUS: &str = "status.>";

/// A (system, talkgroup) shard: the `{sid}.{tg}` of every subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shard {
    /// RadioReference trunked-system id (`sid`).
    pub sid: i64,
    /// Talkgroup (`call_tg`).
    pub tg: i64,
}

/// The pipeline stage that gave up on a message (the `{stage}` of dead-letter subjects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The live-call poller.
    Poller,
    /// The audio fetcher.
    AudioFetcher,
    /// The transcriber.
    Transcriber,
    /// The archive cache.
    ArchiveCache,
    /// The alerter.
    Alerter,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 5] = [
        Stage::Poller,
        Stage::AudioFetcher,
        Stage::Transcriber,
        Stage::ArchiveCache,
        Stage::Alerter,
    ];

    /// The stage's subject token and service name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Poller => "poller",
            Stage::AudioFetcher => "audio-fetcher",
            Stage::Transcriber => "transcriber",
            Stage::ArchiveCache => "archive-cache",
            Stage::Alerter => "alerter",
        }
    }
}

impl std::str::FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == text)
            .ok_or_else(|| UnknownStage(text.to_owned()))
    }
}

/// A stage name that is not one of [`Stage::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage `{0}` (stages: poller, audio-fetcher, transcriber, archive-cache, alerter)")]
pub struct UnknownStage(pub String);

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `calls.live.{sid}.{tg}`
pub fn live(shard: Shard) -> String {
    format!("{LIVE_PREFIX}.{}.{}", shard.sid, shard.tg)
}

/// `calls.audio.raw.{sid}.{tg}.{call_id}`
pub fn audio(shard: Shard, call_id: &CallId) -> String {
    format!("{AUDIO_PREFIX}.{}.{}.{call_id}", shard.sid, shard.tg)
}

/// `transcription.complete.{sid}.{tg}.{call_id}`
pub fn transcription(shard: Shard, call_id: &CallId) -> String {
    format!(
        "{TRANSCRIPTION_PREFIX}.{}.{}.{call_id}",
        shard.sid, shard.tg
    )
}

/// `alerts.{rule}.{sid}.{tg}.{call_id}`; `rule` must be a subject-safe token other than
/// [`SYSTEM_RULE`] (the alerter's rule names are checked for both).
pub fn alert(rule: &str, shard: Shard, call_id: &CallId) -> String {
    format!("{ALERT_PREFIX}.{rule}.{}.{}.{call_id}", shard.sid, shard.tg)
}

/// `alerts.system.{kind}`
pub fn system_alert(kind: &str) -> String {
    format!("{ALERT_PREFIX}.{SYSTEM_RULE}.{kind}")
}

/// `status.{service}`
pub fn status(service: &str) -> String {
    format!("{STATUS_PREFIX}.{service}")
}

/// `deadletter.{stage}.{sid}.{tg}.{call_id}`, with `_` for whatever is unknown (a message too
/// broken to name its shard or call).
pub fn dead_letter(stage: Stage, shard: Option<Shard>, call_id: Option<&CallId>) -> String {
    let (sid, tg) = shard.map_or(("_".to_owned(), "_".to_owned()), |s| {
        (s.sid.to_string(), s.tg.to_string())
    });
    let call = call_id.map_or("_", CallId::as_str);
    format!("{DEAD_LETTER_PREFIX}.{stage}.{sid}.{tg}.{call}")
}

/// A parsed pipeline subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedSubject {
    /// `calls.live.{sid}.{tg}`
    Live(Shard),
    /// `calls.audio.raw.{sid}.{tg}.{call_id}`
    Audio(Shard, CallId),
    /// `transcription.complete.{sid}.{tg}.{call_id}`
    Transcription(Shard, CallId),
    /// `alerts.{rule}.{sid}.{tg}.{call_id}` (the rule's name is the first field)
    Alert(String, Shard, CallId),
}

impl ParsedSubject {
    /// The shard the subject names.
    pub fn shard(&self) -> Shard {
        match self {
            Self::Live(shard)
            | Self::Audio(shard, _)
            | Self::Transcription(shard, _)
            | Self::Alert(_, shard, _) => *shard,
        }
    }

    /// The call the subject names, if it names one.
    pub fn call_id(&self) -> Option<&CallId> {
        match self {
            Self::Live(_) => None,
            Self::Audio(_, id) | Self::Transcription(_, id) | Self::Alert(_, _, id) => Some(id),
        }
    }
}

/// A subject that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Unknown prefix or wrong number of tokens.
    #[error("`{0}` is not a pipeline subject")]
    Unknown(String),
    /// A `{sid}` or `{tg}` token that is not an integer.
    #[error("`{token}` in `{subject}` is not an integer")]
    NotAnInteger {
        /// The whole subject.
        subject: String,
        /// The bad token.
        token: String,
    },
    /// A `{call_id}` token that is not a call id.
    #[error(transparent)]
    CallId(#[from] InvalidCallId),
}

impl FromStr for ParsedSubject {
    type Err = SubjectError;

    fn from_str(subject: &str) -> Result<Self, Self::Err> {
        let unknown = || SubjectError::Unknown(subject.to_owned());
        let integer = |token: &str| {
            token
                .parse::<i64>()
                .map_err(|_| SubjectError::NotAnInteger {
                    subject: subject.to_owned(),
                    token: token.to_owned(),
                })
        };
        let shard_of = |sid: &str, tg: &str| {
            Ok::<_, SubjectError>(Shard {
                sid: integer(sid)?,
                tg: integer(tg)?,
            })
        };
        let tail = |prefix: &str| subject.strip_prefix(prefix)?.strip_prefix('.');
        if let Some(rest) = tail(LIVE_PREFIX) {
            let tokens: Vec<&str> = rest.split('.').collect();
            return match tokens[..] {
                [sid, tg] => Ok(Self::Live(shard_of(sid, tg)?)),
                _ => Err(unknown()),
            };
        }
        let with_call = |rest: &str| -> Result<(Shard, CallId), SubjectError> {
            let tokens: Vec<&str> = rest.split('.').collect();
            match tokens[..] {
                [sid, tg, call] => Ok((shard_of(sid, tg)?, CallId::parse(call)?)),
                _ => Err(unknown()),
            }
        };
        if let Some(rest) = tail(AUDIO_PREFIX) {
            let (shard, call) = with_call(rest)?;
            return Ok(Self::Audio(shard, call));
        }
        if let Some(rest) = tail(TRANSCRIPTION_PREFIX) {
            let (shard, call) = with_call(rest)?;
            return Ok(Self::Transcription(shard, call));
        }
        if let Some(rest) = tail(ALERT_PREFIX)
            && let Some((rule, rest)) = rest.split_once('.')
            && rule != SYSTEM_RULE
        {
            let (shard, call) = with_call(rest)?;
            return Ok(Self::Alert(rule.to_owned(), shard, call));
        }
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARD: Shard = Shard {
        sid: 7001,
        tg: 2345,
    };

    fn call() -> CallId {
        CallId::new(Some(1502), Some("1767225600-2345"), Some("k3v9q0ma"))
    }

    #[test]
    fn builders_follow_the_design_table() {
        assert_eq!(live(SHARD), "calls.live.7001.2345");
        assert_eq!(
            audio(SHARD, &call()),
            "calls.audio.raw.7001.2345.1502-1767225600-2345-k3v9q0ma"
        );
        assert_eq!(
            transcription(SHARD, &call()),
            "transcription.complete.7001.2345.1502-1767225600-2345-k3v9q0ma"
        );
        assert_eq!(
            dead_letter(Stage::AudioFetcher, Some(SHARD), Some(&call())),
            "deadletter.audio-fetcher.7001.2345.1502-1767225600-2345-k3v9q0ma"
        );
        assert_eq!(
            dead_letter(Stage::Transcriber, None, None),
            "deadletter.transcriber._._._"
        );
    }

    #[test]
    fn parsers_invert_the_builders() {
        assert_eq!(live(SHARD).parse(), Ok(ParsedSubject::Live(SHARD)));
        assert_eq!(
            audio(SHARD, &call()).parse(),
            Ok(ParsedSubject::Audio(SHARD, call()))
        );
        let parsed: ParsedSubject = transcription(SHARD, &call()).parse().unwrap();
        assert_eq!(parsed.shard(), SHARD);
        assert_eq!(parsed.call_id(), Some(&call()));
        let negative = Shard { sid: -1, tg: 0 };
        assert_eq!(live(negative).parse(), Ok(ParsedSubject::Live(negative)));
        assert_eq!(
            alert("structure-fire", SHARD, &call()).parse(),
            Ok(ParsedSubject::Alert("structure-fire".into(), SHARD, call()))
        );
        assert_eq!(system_alert("poll_failures"), "alerts.system.poll_failures");
        assert!(
            system_alert("poll_failures")
                .parse::<ParsedSubject>()
                .is_err(),
            "a system alert names no call"
        );
    }

    #[test]
    fn foreign_subjects_are_rejected() {
        for bad in [
            "calls.live",
            "calls.live.1",
            "calls.live.1.2.3",
            "calls.liveX.1.2",
            "other.1.2",
        ] {
            assert_eq!(
                bad.parse::<ParsedSubject>(),
                Err(SubjectError::Unknown(bad.into())),
                "{bad}"
            );
        }
        assert!(matches!(
            "calls.live.x.2".parse::<ParsedSubject>(),
            Err(SubjectError::NotAnInteger { .. })
        ));
        assert!(matches!(
            "calls.audio.raw.1.2.*".parse::<ParsedSubject>(),
            Err(SubjectError::CallId(_))
        ));
    }

    #[test]
    fn every_built_subject_has_only_safe_tokens() {
        let hostile = CallId::new(Some(1), Some("a.b *>"), Some("\u{1F4FB}"));
        for subject in [
            live(SHARD),
            audio(SHARD, &hostile),
            transcription(SHARD, &hostile),
            dead_letter(Stage::Poller, Some(SHARD), Some(&hostile)),
        ] {
            for token in subject.split('.') {
                assert!(
                    token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{subject}"
                );
                assert!(!token.is_empty(), "{subject}");
            }
        }
    }
}
