//! Live calls: `POST /calls/apis/live-calls` (spec §3.3, protocol §3).
//!
//! Selectors: one or more talkgroup groups (`groups[]`), a whole trunked system (`sid`), a whole
//! ingest node (`systemId`), or a public playlist (`playlist_uuid`, which needs no login). The
//! first poll sends `doInit=1` and gets up to the 25 newest calls; later polls send `pos` and get
//! calls with `ts >= pos`, ascending. An empty answer has `lastPos: 0`.

use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::calls::{ParsedCalls, epoch_field, parse_calls, parsing_error};
use crate::client::Client;
use crate::error::{Endpoint, Result};

/// A talkgroup group key, `"{sid}-{tg}"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// RadioReference system id.
    pub sid: i64,
    /// Talkgroup.
    pub tg: i64,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.sid, self.tg)
    }
}

/// What to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One or more talkgroups (`groups[]`, repeated).
    Groups(Vec<GroupKey>),
    /// Every talkgroup of a trunked system (`sid`).
    System {
        /// RadioReference system id.
        sid: i64,
    },
    /// Every call of one ingest node (`systemId`).
    Node {
        /// Broadcastify node id.
        system_id: i64,
    },
    /// A public playlist (`playlist_uuid`); no login needed.
    Playlist {
        /// The playlist's UUID.
        uuid: String,
    },
}

// NOTE(protocol): the spec (§3.3) lists only `groups[]` and calls the key
// `{systemId}-{talkgroupId}`; the captures show the key's number is the RadioReference `sid`
// and that `sid`, node `systemId` and `playlist_uuid` are selectors of their own.
impl Selector {
    /// Whether the site requires a session for this selector.
    pub fn needs_session(&self) -> bool {
        !matches!(self, Selector::Playlist { .. })
    }

    /// The page a browser would be on, for `Referer`.
    fn page(&self) -> String {
        match self {
            Selector::Groups(groups) => groups.first().map_or_else(
                || "/calls/".to_owned(),
                |g| format!("/calls/tg/{}/{}", g.sid, g.tg),
            ),
            Selector::System { sid } => format!("/calls/trs/{sid}"),
            Selector::Node { system_id } => format!("/calls/node/{system_id}"),
            Selector::Playlist { uuid } => format!("/calls/playlists/?uuid={uuid}"),
        }
    }
}

/// One poll.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveQuery {
    /// What to poll.
    pub selector: Selector,
    /// The cursor (epoch seconds); `None` sends `pos=0`.
    pub position: Option<f64>,
    /// `doInit=1`: the first poll, answered with the newest calls.
    pub init: bool,
}

/// A live-calls answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCalls {
    /// The calls (ascending by `ts`) and any elements that were not call objects.
    pub parsed: ParsedCalls,
    /// `lastPos`: the newest call's `ts`; `None` when the answer was empty (`0`).
    pub last_pos: Option<f64>,
    /// `serverTime`, when present.
    pub server_time: Option<f64>,
}

impl LiveCalls {
    /// The site's own cursor rule (its `live.js`): after an answer with a truthy `lastPos`,
    /// poll from `lastPos + 1`; after an empty one, keep the cursor. Never moves backwards.
    ///
    /// NOTE(protocol): the spec (§3.3) advances to `max(last_call.start_time + 1, lastPos)`,
    /// but `pos` is compared with `ts` (ingest time), which is 5-6 s after a call's stop, so a
    /// start-time cursor would re-fetch every call; we follow the site's captured behaviour.
    ///
    /// NOTE: this rule skips calls published late with a `ts` below the cursor (protocol §3.2,
    /// §6); the poller polls with a look-back and relies on dedup for exactly that reason.
    pub fn next_position(&self, current: Option<f64>) -> Option<f64> {
        match (self.last_pos, current) {
            (Some(last), Some(current)) => Some((last + 1.0).max(current)),
            (Some(last), None) => Some(last + 1.0),
            (None, current) => current,
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    calls: Option<Vec<&'a RawValue>>,
    #[serde(rename = "lastPos")]
    last_pos: Option<serde_json::Value>,
    #[serde(rename = "serverTime")]
    server_time: Option<serde_json::Value>,
}

/// Parses a live-calls body.
pub(crate) fn parse_live(body: &[u8]) -> Result<LiveCalls> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(|e| {
        parsing_error(
            Endpoint::LiveCalls,
            format!("not the expected JSON: {e}"),
            body,
        )
    })?;
    let calls = envelope
        .calls
        .ok_or_else(|| parsing_error(Endpoint::LiveCalls, "no `calls` array", body))?;
    Ok(LiveCalls {
        parsed: parse_calls(calls),
        last_pos: epoch_field(envelope.last_pos.as_ref()).filter(|pos| *pos != 0.0),
        server_time: epoch_field(envelope.server_time.as_ref()),
    })
}

impl Client {
    /// Polls live calls once. Protected selectors use the session (logging in when needed, and
    /// once more after a 403); playlists go without a cookie.
    ///
    /// # Errors
    ///
    /// Transport, status (with `Retry-After`), session and parsing errors.
    pub async fn live_calls(&self, query: &LiveQuery) -> Result<LiveCalls> {
        if query.selector.needs_session() {
            self.with_session(|token| self.live_calls_once(query, Some(token.cookie_header())))
                .await
        } else {
            self.live_calls_once(query, None).await
        }
    }

    async fn live_calls_once(
        &self,
        query: &LiveQuery,
        cookie: Option<String>,
    ) -> Result<LiveCalls> {
        let mut form: Vec<(&str, String)> = Vec::new();
        let (mut system_id, mut sid) = (0, 0);
        match &query.selector {
            Selector::Groups(groups) => {
                form.extend(groups.iter().map(|group| ("groups[]", group.to_string())));
            }
            Selector::System { sid: s } => sid = *s,
            Selector::Node { system_id: node } => system_id = *node,
            Selector::Playlist { uuid } => form.push(("playlist_uuid", uuid.clone())),
        }
        let position = query
            .position
            .map_or_else(|| "0".to_owned(), |pos| format!("{pos:.3}"));
        form.push(("pos", position));
        form.push(("doInit", if query.init { "1" } else { "0" }.to_owned()));
        form.push(("systemId", system_id.to_string()));
        form.push(("sid", sid.to_string()));
        form.push(("sessionKey", self.session_key().to_owned()));

        let mut request = self
            .http()
            .post(self.site_url("/calls/apis/live-calls"))
            .form(&form);
        request = self.xhr(request, &query.selector.page());
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let answer = self.send(Endpoint::LiveCalls, request).await?;
        if !answer.response.status().is_success() {
            return Err(answer.into_status_error(Endpoint::LiveCalls).await);
        }
        parse_live(&answer.bytes(Endpoint::LiveCalls).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn an_empty_answer_keeps_the_cursor() {
        let empty = parse_live(br#"{"calls":[],"serverTime":1767225619,"lastPos":0}"#).unwrap();
        assert_eq!(empty.last_pos, None);
        assert_eq!(empty.next_position(Some(100.0)), Some(100.0));
        assert_eq!(empty.next_position(None), None);
    }

    #[test]
    fn the_cursor_moves_past_last_pos_and_never_back() {
        let answer = parse_live(br#"{"calls":[{"ts":50}],"lastPos":"50"}"#).unwrap();
        assert_eq!(answer.next_position(None), Some(51.0));
        assert_eq!(answer.next_position(Some(80.0)), Some(80.0));
    }

    #[test]
    fn non_object_calls_are_reported_not_dropped() {
        let answer = parse_live(br#"{"calls":[{"id":"1-2"}, 7, "x"],"lastPos":1}"#).unwrap();
        assert_eq!(answer.parsed.calls.len(), 1);
        assert_eq!(answer.parsed.calls[0].raw, r#"{"id":"1-2"}"#);
        assert_eq!(answer.parsed.rejected, ["7", "\"x\""]);
    }

    #[test]
    fn malformed_answers_are_parsing_errors() {
        for body in [
            &b"{\"calls\": [ {\"id\": "[..],
            b"<html>oops</html>",
            b"{\"lastPos\":0}",
            b"{\"calls\":{}}",
            b"[]",
        ] {
            let error = parse_live(body).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::ResponseParsing {
                        endpoint: Endpoint::LiveCalls,
                        ..
                    }
                ),
                "{error}"
            );
        }
    }

    mod never_panics {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::*;
        use crate::error::Error;

        /// Any JSON value, biased towards the keys and shapes of real calls.
        fn json_value() -> impl Strategy<Value = Value> {
            let key = prop_oneof![
                Just("sid".to_owned()),
                Just("ts".to_owned()),
                Just("metadata".to_owned()),
                Just("freqList".to_owned()),
                Just("srcList".to_owned()),
                Just("call-ttl".to_owned()),
                Just("hash".to_owned()),
                ".{0,8}",
            ];
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                ".{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 64, 8, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(key.clone(), inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn hostile_calls_never_panic_and_keep_their_json(calls in prop::collection::vec(json_value(), 0..6), last_pos in json_value()) {
                let body = json!({"calls": calls, "lastPos": last_pos}).to_string();
                let parsed = parse_live(body.as_bytes()).unwrap();
                prop_assert_eq!(parsed.parsed.calls.len() + parsed.parsed.rejected.len(), calls.len());
                for upstream in &parsed.parsed.calls {
                    let original: Value = serde_json::from_str(&upstream.raw).unwrap();
                    let written = upstream.call.to_json().unwrap();
                    prop_assert!(bcfy_proto::json::equivalent(&original, &written), "{} vs {}", original, written);
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
                if let Err(error) = parse_live(&body) {
                    prop_assert!(matches!(error, Error::ResponseParsing { .. }), "{}", error);
                }
            }
        }
    }
}
