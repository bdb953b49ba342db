//! What a client asks to see of the live events: the query of `/v1/events` and `/v1/ws`, and
//! where to start (a cursor, a time, or now).

use std::collections::HashSet;

use bcfy_bus::subject::Shard;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::auth::{KEY_PARAMETER, Principal};
use crate::error::ApiError;
use crate::event::{Cursor, Event, Kind};

/// Most `sid` × `tg` combinations one filter may name.
const MAX_SHARDS: usize = 64;
/// Longest `q`.
const MAX_QUERY_CHARS: usize = 200;

/// Which events a client sees (besides its key's scope).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Systems; any when empty.
    pub sids: Vec<i64>,
    /// Talkgroups; any when empty.
    pub tgs: Vec<i64>,
    /// Kinds; all when empty.
    pub kinds: HashSet<Kind>,
    /// Lower-case text a transcript must contain; only transcripts match when set.
    pub q: Option<String>,
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// With the next event.
    Now,
    /// After this cursor (an event's id): everything since, then live.
    After(Cursor),
    /// With the events stored at or after this time, then live.
    Since(OffsetDateTime),
}

/// A parsed `/v1/events` or `/v1/ws` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsQuery {
    /// Which events.
    pub filter: Filter,
    /// From where.
    pub start: Start,
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

/// Adds the comma-separated integers of parameter `name` to `into`, once each.
pub(crate) fn integers(name: &str, value: &str, into: &mut Vec<i64>) -> Result<(), ApiError> {
    for part in value.split(',') {
        let n = part
            .trim()
            .parse()
            .map_err(|_| invalid(format!("`{name}` must be integers, got `{part}`")))?;
        if !into.contains(&n) {
            into.push(n);
        }
    }
    Ok(())
}

/// Parameter `name` as a time: RFC 3339 or Unix seconds.
pub(crate) fn parse_time(name: &str, value: &str) -> Result<OffsetDateTime, ApiError> {
    let parsed = match value.parse::<i64>() {
        Ok(seconds) => OffsetDateTime::from_unix_timestamp(seconds).ok(),
        Err(_) => OffsetDateTime::parse(value, &Rfc3339).ok(),
    };
    parsed.ok_or_else(|| {
        invalid(format!(
            "`{name}` must be RFC 3339 or Unix seconds, got `{value}`"
        ))
    })
}

impl EventsQuery {
    /// Parses the query string and `Last-Event-ID` (which wins over `since_seq` and `since`).
    ///
    /// # Errors
    ///
    /// 400 `invalid_query` naming the bad parameter; unknown parameters are refused too, so a
    /// typo does not silently widen the stream.
    pub fn parse(query: Option<&str>, last_event_id: Option<&str>) -> Result<Self, ApiError> {
        let mut filter = Filter::default();
        let mut since_seq = None;
        let mut since = None;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "sid" => integers("sid", &value, &mut filter.sids)?,
                "tg" => integers("tg", &value, &mut filter.tgs)?,
                "kind" => {
                    for kind in value.split(',') {
                        filter.kinds.insert(kind.trim().parse().map_err(invalid)?);
                    }
                }
                "q" => {
                    let q = value.trim().to_lowercase();
                    if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS {
                        return Err(invalid(format!(
                            "`q` must be 1 to {MAX_QUERY_CHARS} characters"
                        )));
                    }
                    filter.q = Some(q);
                }
                "since_seq" => since_seq = Some(value.parse::<Cursor>().map_err(invalid)?),
                "since" => since = Some(parse_time("since", &value)?),
                KEY_PARAMETER => {}
                other => return Err(invalid(format!("unknown parameter `{other}`"))),
            }
        }
        if filter.sids.len().max(1) * filter.tgs.len().max(1) > MAX_SHARDS {
            return Err(invalid(format!(
                "at most {MAX_SHARDS} sid × tg combinations"
            )));
        }
        let last_event_id = last_event_id
            .map(|id| {
                id.parse::<Cursor>()
                    .map_err(|e| invalid(format!("Last-Event-ID: {e}")))
            })
            .transpose()?;
        let start = match (last_event_id.or(since_seq), since) {
            (Some(cursor), _) => Start::After(cursor),
            (None, Some(time)) => Start::Since(time),
            (None, None) => Start::Now,
        };
        Ok(Self { filter, start })
    }
}

impl Filter {
    /// The kinds this filter can match.
    pub fn kinds(&self) -> impl Iterator<Item = Kind> + '_ {
        Kind::ALL.into_iter().filter(|k| {
            (self.kinds.is_empty() || self.kinds.contains(k))
                && (self.q.is_none() || *k == Kind::Transcript)
        })
    }

    /// The subject filters that narrow a stream read of `kind` to this filter's talkgroups.
    pub fn subjects(&self, kind: Kind) -> Vec<String> {
        let sids: Vec<Option<i64>> = if self.sids.is_empty() {
            vec![None]
        } else {
            self.sids.iter().copied().map(Some).collect()
        };
        let tgs: Vec<Option<i64>> = if self.tgs.is_empty() {
            vec![None]
        } else {
            self.tgs.iter().copied().map(Some).collect()
        };
        sids.iter()
            .flat_map(|sid| tgs.iter().map(move |tg| kind.subject_filter(*sid, *tg)))
            .collect()
    }

    fn shard_matches(&self, shard: Shard) -> bool {
        (self.sids.is_empty() || self.sids.contains(&shard.sid))
            && (self.tgs.is_empty() || self.tgs.contains(&shard.tg))
    }

    /// True when `principal` may see `event` and it is one this filter asks for.
    pub fn matches(&self, event: &Event, principal: &Principal) -> bool {
        principal.sees(event.shard)
            && self.shard_matches(event.shard)
            && self.kinds().any(|k| k == event.kind)
            && self.q.as_ref().is_none_or(|q| {
                event
                    .text_lower
                    .as_ref()
                    .is_some_and(|text| text.contains(q.as_str()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_back_with_every_filter() {
        let query = EventsQuery::parse(
            Some("sid=7001&tg=1,2&tg=3&kind=transcript&q=Engine%205&since_seq=4-5-6&api_key=x"),
            None,
        )
        .expect("valid");
        assert_eq!(query.filter.sids, [7001]);
        assert_eq!(query.filter.tgs, [1, 2, 3]);
        assert_eq!(query.filter.q.as_deref(), Some("engine 5"));
        assert_eq!(query.start, Start::After(Cursor([4, 5, 6])));
        assert_eq!(
            query.filter.subjects(Kind::Transcript),
            [
                "transcription.complete.7001.1.*",
                "transcription.complete.7001.2.*",
                "transcription.complete.7001.3.*"
            ]
        );
        let resumed = EventsQuery::parse(Some("since_seq=4-5-6"), Some("7-8-9")).expect("valid");
        assert_eq!(
            resumed.start,
            Start::After(Cursor([7, 8, 9])),
            "Last-Event-ID wins"
        );
        let by_time = EventsQuery::parse(Some("since=2026-01-01T00:00:00Z"), None).expect("valid");
        assert_eq!(
            by_time.start,
            Start::Since(OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("time"))
        );
    }

    fn transcript(tg: i64, text: &str) -> Event {
        use prost::Message as _;
        let payload = bcfy_proto::TranscriptionResult {
            call_id: "1502-1767225600-2345-abc".to_owned(),
            text: text.to_owned(),
            ..Default::default()
        }
        .encode_to_vec();
        let subject = format!("transcription.complete.7001.{tg}.1502-1767225600-2345-abc");
        Event::from_stored(crate::event::Stored {
            subject: &subject,
            seq: 1,
            time: OffsetDateTime::UNIX_EPOCH,
            headers: None,
            payload: &payload,
        })
        .expect("an event")
        .expect("shown")
    }

    #[test]
    fn q_matches_transcript_text_in_any_case_within_the_scope() {
        let keys = crate::auth::KeyStore::new(
            crate::auth::KeysFile::default(),
            Some(crate::auth::Grant {
                scope: vec!["7001-2345".to_owned().try_into().expect("valid")],
                ..Default::default()
            }),
        );
        let principal = keys.admit(None).expect("anonymous");
        let filter = EventsQuery::parse(Some("q=ENGINE%205"), None)
            .expect("valid")
            .filter;
        assert!(filter.matches(&transcript(2345, "Engine 5 respond"), &principal));
        assert!(!filter.matches(&transcript(2345, "Medic 3 respond"), &principal));
        assert!(
            !filter.matches(&transcript(2346, "Engine 5 respond"), &principal),
            "out of scope"
        );
        assert_eq!(filter.kinds().collect::<Vec<_>>(), [Kind::Transcript]);
    }

    #[test]
    fn bad_queries_are_refused_with_the_parameter_named() {
        for (query, names) in [
            ("tg=abc", "tg"),
            ("sid=1.5", "sid"),
            ("kind=alerts", "kind"),
            ("since_seq=5", "cursor"),
            ("since=yesterday", "since"),
            ("q=", "q"),
            ("tgs=1", "tgs"),
        ] {
            let error = EventsQuery::parse(Some(query), None).expect_err(query);
            assert_eq!(error.code, "invalid_query");
            assert!(error.message.contains(names), "{query}: {}", error.message);
        }
        let error = EventsQuery::parse(None, Some("nope")).expect_err("bad Last-Event-ID");
        assert!(error.message.contains("Last-Event-ID"));
    }
}
