//! `retranscribe.*`: a re-transcription job's name, time range and talkgroup filter.

use bcfy_bus::subject::ALL_AUDIO;
use bcfy_config::{ConfigIssue, Validate};
use serde::Deserialize;
use time::OffsetDateTime;

/// The longest job name: it becomes part of a consumer name (`retranscribe-{job}`).
const MAX_JOB_CHARS: usize = 64;

/// A re-transcription job. Unset `job` means the transcriber runs as the live service.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct RetranscribeConfig {
    /// Names the job: its progress is kept in the consumer `retranscribe-{job}` (so a killed
    /// job continues where it was) and each revision it publishes records it. Letters, digits,
    /// `-` and `_`.
    pub job: Option<String>,
    /// Calls that started at or after this time (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub from: Option<OffsetDateTime>,
    /// Calls that started before this time (RFC 3339).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pub to: Option<OffsetDateTime>,
    /// `sid` (a whole system) or `sid:tg` (one talkgroup); unset takes every talkgroup.
    pub talkgroup: Option<String>,
}

/// A validated job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its name.
    pub name: String,
    /// Calls from (inclusive).
    pub from: OffsetDateTime,
    /// Calls to (exclusive).
    pub to: OffsetDateTime,
    /// The audio subjects it reads.
    pub filter_subject: String,
}

impl Job {
    /// The durable consumer holding the job's progress.
    pub fn consumer_name(&self) -> String {
        format!("retranscribe-{}", self.name)
    }

    /// True when a call that started at `epoch_seconds` is in the job's range.
    pub fn covers(&self, epoch_seconds: i64) -> bool {
        (self.from.unix_timestamp()..self.to.unix_timestamp()).contains(&epoch_seconds)
    }
}

/// The audio subjects of `talkgroup` (`sid` or `sid:tg`), or `None` when it is not one.
fn filter_for(talkgroup: Option<&str>) -> Option<String> {
    let Some(talkgroup) = talkgroup else {
        return Some(ALL_AUDIO.to_owned());
    };
    let number = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
    match talkgroup.split_once(':') {
        None => number(talkgroup).map(|sid| format!("calls.audio.raw.{sid}.>")),
        Some((sid, tg)) => Some(format!(
            "calls.audio.raw.{}.{}.>",
            number(sid)?,
            number(tg)?
        )),
    }
}

impl RetranscribeConfig {
    /// The job, when one is configured and valid (see [`Validate`]).
    pub fn job(&self) -> Option<Job> {
        Some(Job {
            name: self.job.clone()?,
            from: self.from?,
            to: self.to?,
            filter_subject: filter_for(self.talkgroup.as_deref())?,
        })
    }
}

impl Validate for RetranscribeConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        let Some(job) = &self.job else {
            if self.from.is_some() || self.to.is_some() || self.talkgroup.is_some() {
                issues.push(ConfigIssue::new(
                    prefix,
                    "job",
                    "is required with a time range or talkgroup",
                ));
            }
            return;
        };
        let valid_name = !job.is_empty()
            && job.len() <= MAX_JOB_CHARS
            && job
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            issues.push(ConfigIssue::new(
                prefix,
                "job",
                format!("must be 1–{MAX_JOB_CHARS} letters, digits, `-` or `_`"),
            ));
        }
        match (self.from, self.to) {
            (Some(from), Some(to)) if from >= to => {
                issues.push(ConfigIssue::new(prefix, "to", "must be after `from`"));
            }
            (Some(_), Some(_)) => {}
            (from, _) => {
                let missing = if from.is_none() { "from" } else { "to" };
                issues.push(ConfigIssue::new(prefix, missing, "is required for a job"));
            }
        }
        if filter_for(self.talkgroup.as_deref()).is_none() {
            issues.push(ConfigIssue::new(
                prefix,
                "talkgroup",
                "must be `sid` or `sid:tg` (positive numbers)",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).ok()
    }

    fn issues(config: &RetranscribeConfig) -> Vec<String> {
        let mut issues = Vec::new();
        config.validate("retranscribe", &mut issues);
        issues.into_iter().map(|i| i.setting).collect()
    }

    #[test]
    fn a_job_needs_a_name_a_range_in_order_and_a_readable_talkgroup() {
        let good = RetranscribeConfig {
            job: Some("base-model_2".to_owned()),
            from: at("2026-12-01T00:00:00Z"),
            to: at("2026-12-02T00:00:00Z"),
            talkgroup: Some("7001:2345".to_owned()),
        };
        assert!(issues(&good).is_empty());
        let job = good.job().expect("a job");
        assert_eq!(job.filter_subject, "calls.audio.raw.7001.2345.>");
        assert_eq!(job.consumer_name(), "retranscribe-base-model_2");
        assert!(job.covers(1_796_083_200) && !job.covers(1_796_169_600));
        let system = RetranscribeConfig {
            talkgroup: Some("7001".to_owned()),
            ..good.clone()
        };
        assert_eq!(
            system.job().expect("a job").filter_subject,
            "calls.audio.raw.7001.>"
        );
        let bad = RetranscribeConfig {
            job: Some("no spaces".to_owned()),
            from: at("2026-12-02T00:00:00Z"),
            to: at("2026-12-01T00:00:00Z"),
            talkgroup: Some("7001:x".to_owned()),
        };
        assert_eq!(
            issues(&bad),
            [
                "retranscribe.job",
                "retranscribe.to",
                "retranscribe.talkgroup"
            ]
        );
        let half = RetranscribeConfig {
            job: Some("j".to_owned()),
            from: at("2026-12-02T00:00:00Z"),
            ..RetranscribeConfig::default()
        };
        assert_eq!(issues(&half), ["retranscribe.to"]);
        let orphan = RetranscribeConfig {
            talkgroup: Some("7001".to_owned()),
            ..RetranscribeConfig::default()
        };
        assert_eq!(issues(&orphan), ["retranscribe.job"]);
        assert!(issues(&RetranscribeConfig::default()).is_empty());
    }
}
