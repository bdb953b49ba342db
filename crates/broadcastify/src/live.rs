//! Live calls: `POST /calls/apis/live-calls` (spec §3.3, protocol §3).
//!
//! Selectors: one or more talkgroup groups (`groups[]`), a whole trunked system (`sid`), a whole
//! ingest node (`systemId`), or a public playlist (`playlist_uuid`, which needs no login). The
//! first poll sends `doInit=1` and gets up to the 25 newest calls; later polls send `pos` and get
//! calls with `ts >= pos`, ascending. An empty answer has `lastPos: 0`.
//!
//! - `selector`: what a poll selects ([`Selector`], [`GroupKey`]);
//! - `reader`: the answer read as it arrives ([`LiveAnswer`], [`CallIdentity`]).

pub(crate) mod reader;
mod selector;

use std::time::Duration;

pub use reader::{CallIdentity, LiveAnswer};
pub use selector::{GroupKey, Selector};

use crate::calls::ParsedCalls;
use crate::client::Client;
use crate::error::{Endpoint, Result};

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
    /// Calls left out because the caller already had them.
    pub known: usize,
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

/// The longest a live-calls answer may take in all while its bytes keep coming (a stall fails
/// it after `request_timeout`): a two-minute sweep of a shard at 1,000 calls/s is 260 MB.
const LIVE_ANSWER_LIMIT: Duration = Duration::from_secs(600);

impl Client {
    /// Polls live calls once. Protected selectors use the session (logging in when needed, and
    /// once more after a 403); playlists go without a cookie.
    ///
    /// # Errors
    ///
    /// Transport, status (with `Retry-After`), session and parsing errors.
    pub async fn live_calls(&self, query: &LiveQuery) -> Result<LiveCalls> {
        self.live_calls_except(query, |_| false).await
    }

    /// Polls live calls once, leaving out the calls `is_known` recognises by their identity
    /// (counted in [`LiveCalls::known`]). The answer is read as it arrives and a known call is
    /// dropped before it is parsed, so a poll that reaches far back costs memory for the new
    /// calls only.
    ///
    /// # Errors
    ///
    /// As [`live_calls`](Self::live_calls).
    pub async fn live_calls_except(
        &self,
        query: &LiveQuery,
        is_known: impl Fn(&CallIdentity<'_>) -> bool,
    ) -> Result<LiveCalls> {
        self.live_answer(query).await?.finish(is_known).await
    }

    /// Polls live calls once and hands back the answer to read as it arrives (see
    /// [`LiveAnswer`]); the status, session and `Retry-After` are handled here.
    ///
    /// # Errors
    ///
    /// Transport, status (with `Retry-After`) and session errors.
    pub async fn live_answer(&self, query: &LiveQuery) -> Result<LiveAnswer> {
        if query.selector.needs_session() {
            self.with_session(|token| self.live_answer_once(query, Some(token.cookie_header())))
                .await
        } else {
            self.live_answer_once(query, None).await
        }
    }

    async fn live_answer_once(
        &self,
        query: &LiveQuery,
        cookie: Option<String>,
    ) -> Result<LiveAnswer> {
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
        // Only a stall fails a live answer, not its length.
        let answer = self
            .send_streamed(Endpoint::LiveCalls, request, LIVE_ANSWER_LIMIT)
            .await?;
        if !answer.response.status().is_success() {
            return Err(answer.into_status_error(Endpoint::LiveCalls).await);
        }
        Ok(LiveAnswer::new(answer))
    }
}
