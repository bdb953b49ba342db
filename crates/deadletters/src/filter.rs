//! Which dead letters a command applies to. Stage and talkgroup narrow the subject the server
//! reads (`deadletter.{stage}.{sid}.{tg}.{call_id}`), the start time where reading starts; the
//! kind and the end time are checked on each letter. Every value is checked before anything is
//! read: an unknown stage or kind is refused with the list of known ones, so a typo cannot turn
//! a redrive of one kind into a redrive of nothing (or of everything).

use std::time::{Duration, SystemTime};

use bcfy_bus::Stage;
use bcfy_bus::dead_letter_kinds;
use bcfy_bus::subject::DEAD_LETTER_PREFIX;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::CliError;
use crate::letters::Letter;

/// The filters every command takes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this stage's dead letters.
    pub stage: Option<Stage>,
    /// Only these kinds (any of them); empty for every kind.
    pub kinds: Vec<String>,
    /// Only this system, and talkgroup when given.
    pub talkgroup: Option<(i64, Option<i64>)>,
    /// Only dead letters stored at or after this time.
    pub since: Option<SystemTime>,
    /// Only dead letters stored before this time.
    pub until: Option<SystemTime>,
}

/// The filters as typed on the command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this stage's dead letters (audio-fetcher, transcriber, poller, alerter).
    #[arg(long)]
    pub stage: Option<String>,
    /// Only this error kind (repeat for several; see `deploy/README.md` for each).
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only this system (`SID`) or talkgroup (`SID-TG`).
    #[arg(long, value_name = "SID[-TG]")]
    pub tg: Option<String>,
    /// Only dead letters from this time on: RFC 3339 (`2026-12-05T10:00:00Z`) or an age (`2h`).
    #[arg(long)]
    pub since: Option<String>,
    /// Only dead letters before this time: RFC 3339 or an age.
    #[arg(long)]
    pub until: Option<String>,
}

impl FilterArgs {
    /// The checked filter.
    ///
    /// # Errors
    ///
    /// [`CliError::Usage`] for an unknown stage or kind, a malformed talkgroup or time, or a
    /// time range that ends before it starts.
    pub fn parse(&self, now: SystemTime) -> Result<Filter, CliError> {
        let stage = self
            .stage
            .as_deref()
            .map(|name| {
                let stage: Stage = name
                    .parse()
                    .map_err(|error: bcfy_bus::subject::UnknownStage| usage(error.to_string()))?;
                if dead_letter_kinds::stages().contains(&stage) {
                    Ok(stage)
                } else {
                    Err(usage(format!("the {stage} writes no dead letters")))
                }
            })
            .transpose()?;
        for kind in &self.kinds {
            let Some(known) = dead_letter_kinds::find(kind) else {
                let names: Vec<&str> = dead_letter_kinds::KINDS.iter().map(|k| k.name).collect();
                return Err(usage(format!(
                    "unknown kind `{kind}` (kinds: {})",
                    names.join(", ")
                )));
            };
            if let Some(stage) = stage
                && !known.stages.contains(&stage)
            {
                return Err(usage(format!(
                    "the {stage} writes no `{kind}` dead letters"
                )));
            }
        }
        let talkgroup = self.tg.as_deref().map(parse_talkgroup).transpose()?;
        let since = self
            .since
            .as_deref()
            .map(|t| parse_time("--since", t, now))
            .transpose()?;
        let until = self
            .until
            .as_deref()
            .map(|t| parse_time("--until", t, now))
            .transpose()?;
        if let (Some(since), Some(until)) = (since, until)
            && until <= since
        {
            return Err(usage("--until must be later than --since".to_owned()));
        }
        Ok(Filter {
            stage,
            kinds: self.kinds.clone(),
            talkgroup,
            since,
            until,
        })
    }
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

fn parse_talkgroup(text: &str) -> Result<(i64, Option<i64>), CliError> {
    let bad = || usage(format!("--tg `{text}` is not SID or SID-TG"));
    let number = |part: &str| {
        part.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0 && part.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)
    };
    match text.split_once('-') {
        Some((sid, tg)) => Ok((number(sid)?, Some(number(tg)?))),
        None => Ok((number(text)?, None)),
    }
}

fn parse_time(flag: &str, text: &str, now: SystemTime) -> Result<SystemTime, CliError> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at.into());
    }
    let age: Duration = humantime::parse_duration(text).map_err(|_| {
        usage(format!(
            "{flag} `{text}` is neither an RFC 3339 time nor an age like 2h"
        ))
    })?;
    now.checked_sub(age)
        .ok_or_else(|| usage(format!("{flag} `{text}` reaches before 1970")))
}

impl Filter {
    /// The narrowest subject the server can filter on.
    pub fn subject(&self) -> String {
        let stage = self.stage.map_or("*", Stage::as_str);
        let (sid, tg) = match self.talkgroup {
            Some((sid, Some(tg))) => (sid.to_string(), tg.to_string()),
            Some((sid, None)) => (sid.to_string(), "*".to_owned()),
            None => ("*".to_owned(), "*".to_owned()),
        };
        format!("{DEAD_LETTER_PREFIX}.{stage}.{sid}.{tg}.*")
    }

    /// Whether `letter` passes the checks the subject does not make.
    pub fn matches(&self, letter: &Letter) -> bool {
        let kind_ok = self.kinds.is_empty()
            || letter
                .record
                .as_ref()
                .is_some_and(|record| self.kinds.contains(&record.error_kind));
        // The server starts at the first letter from `since` on (when there is one).
        let since_ok = self.since.is_none_or(|since| letter.stored_at >= since);
        let until_ok = self.until.is_none_or(|until| letter.stored_at < until);
        kind_ok && since_ok && until_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: FilterArgs) -> Result<Filter, CliError> {
        args.parse(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
    }

    #[test]
    fn stage_and_talkgroup_narrow_the_subject() {
        let filter = parse(FilterArgs {
            stage: Some("transcriber".into()),
            tg: Some("7001-2345".into()),
            ..FilterArgs::default()
        })
        .unwrap();
        assert_eq!(filter.subject(), "deadletter.transcriber.7001.2345.*");
        let filter = parse(FilterArgs {
            tg: Some("7001".into()),
            ..FilterArgs::default()
        })
        .unwrap();
        assert_eq!(filter.subject(), "deadletter.*.7001.*.*");
        assert_eq!(
            parse(FilterArgs::default()).unwrap().subject(),
            "deadletter.*.*.*.*"
        );
    }

    #[test]
    fn times_are_rfc3339_or_an_age() {
        let filter = parse(FilterArgs {
            since: Some("2h".into()),
            until: Some("2027-01-15T08:00:00Z".into()),
            ..FilterArgs::default()
        })
        .unwrap();
        assert_eq!(
            filter.since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 - 7200))
        );
        assert_eq!(
            filter.until,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
    }

    #[test]
    fn unknown_or_malformed_values_are_usage_errors() {
        let refused = |args: FilterArgs| match parse(args) {
            Err(CliError::Usage(message)) => message,
            other => panic!("expected a usage error, got {other:?}"),
        };
        let message = refused(FilterArgs {
            stage: Some("transcribr".into()),
            ..FilterArgs::default()
        });
        assert!(message.contains("unknown stage `transcribr`"), "{message}");
        let message = refused(FilterArgs {
            kinds: vec!["stt_rejectd".into()],
            ..FilterArgs::default()
        });
        assert!(
            message.contains("stt_rejected"),
            "lists the kinds: {message}"
        );
        refused(FilterArgs {
            stage: Some("archive-cache".into()),
            ..FilterArgs::default()
        });
        refused(FilterArgs {
            stage: Some("audio-fetcher".into()),
            kinds: vec!["stt_rejected".into()],
            ..FilterArgs::default()
        });
        for tg in ["x", "7001-", "-1", "7001-2345-1", "+7"] {
            refused(FilterArgs {
                tg: Some(tg.into()),
                ..FilterArgs::default()
            });
        }
        refused(FilterArgs {
            since: Some("yesterday-ish".into()),
            ..FilterArgs::default()
        });
        refused(FilterArgs {
            since: Some("1h".into()),
            until: Some("2h".into()),
            ..FilterArgs::default()
        });
    }
}
