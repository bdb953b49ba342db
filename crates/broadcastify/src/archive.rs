//! Archived calls: `GET /calls/apis/archivecall.php?group={sid}-{tg}&s={block}` (spec §3.2,
//! protocol §4). A block is 30 minutes; `s` is floored to its start. The answer holds the calls
//! that *started* in the block (their `ts` may spill past its end), with `start = s - 1` and
//! `end = s + 1800`. A missing `calls` array is a parsing error.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::calls::{ParsedCalls, epoch_field, parse_calls, parsing_error};
use crate::client::Client;
use crate::error::{Endpoint, Result};
use crate::live::GroupKey;

/// Length of an archive block in seconds.
pub const BLOCK_SECONDS: i64 = 1800;

/// The start of the 30-minute block holding `epoch_seconds` ("13:27 is in the 13:00 block").
pub fn block_start(epoch_seconds: i64) -> i64 {
    epoch_seconds - epoch_seconds.rem_euclid(BLOCK_SECONDS)
}

/// One archived block.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveBlock {
    /// The block asked for (floored), the start of `[block, block + 1800)`.
    pub block: i64,
    /// The calls, ascending by `ts`, and any elements that were not call objects.
    pub parsed: ParsedCalls,
    /// The upstream's `start` (block - 1 in captures).
    pub start: Option<i64>,
    /// The upstream's `end` (block + 1800 in captures).
    pub end: Option<i64>,
    /// The upstream's `serverTime`.
    pub server_time: Option<i64>,
    /// The whole answer as received.
    pub raw: Bytes,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    calls: Option<Vec<&'a RawValue>>,
    start: Option<serde_json::Value>,
    end: Option<serde_json::Value>,
    #[serde(rename = "serverTime")]
    server_time: Option<serde_json::Value>,
}

/// Parses an archive body for `block`.
pub(crate) fn parse_archive(block: i64, body: Bytes) -> Result<ArchiveBlock> {
    let envelope: Envelope<'_> = serde_json::from_slice(&body).map_err(|e| {
        parsing_error(
            Endpoint::Archive,
            format!("not the expected JSON: {e}"),
            &body,
        )
    })?;
    let calls = envelope
        .calls
        .ok_or_else(|| parsing_error(Endpoint::Archive, "no `calls` array", &body))?;
    let whole = |value: Option<&serde_json::Value>| epoch_field(value).map(|v| v as i64);
    let parsed = parse_calls(calls);
    let (start, end, server_time) = (
        whole(envelope.start.as_ref()),
        whole(envelope.end.as_ref()),
        whole(envelope.server_time.as_ref()),
    );
    Ok(ArchiveBlock {
        block,
        parsed,
        start,
        end,
        server_time,
        raw: body,
    })
}

impl Client {
    /// Fetches the archive block holding `time` for one talkgroup (with the session).
    ///
    /// # Errors
    ///
    /// Transport, status, session and parsing errors.
    pub async fn archived_calls(&self, group: GroupKey, time: i64) -> Result<ArchiveBlock> {
        let block = block_start(time);
        self.with_session(|token| async move {
            let request = self
                .http()
                .get(self.site_url("/calls/apis/archivecall.php"))
                .query(&[("group", group.to_string()), ("s", block.to_string())])
                .header(reqwest::header::COOKIE, token.cookie_header());
            let request = self.xhr(request, &format!("/calls/tg/{}/{}", group.sid, group.tg));
            let answer = self.send(Endpoint::Archive, request).await?;
            if !answer.response.status().is_success() {
                return Err(answer.into_status_error(Endpoint::Archive).await);
            }
            parse_archive(block, answer.bytes(Endpoint::Archive).await?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn blocks_floor_to_half_hours() {
        assert_eq!(block_start(1_767_225_600), 1_767_225_600);
        assert_eq!(block_start(1_767_225_600 + 1_799), 1_767_225_600);
        assert_eq!(block_start(1_767_225_600 + 1_800), 1_767_227_400);
        assert_eq!(block_start(1_767_225_600 - 1), 1_767_223_800);
        assert_eq!(block_start(-1), -1_800);
    }

    #[test]
    fn a_missing_calls_array_is_a_parsing_error() {
        let error = parse_archive(0, Bytes::from_static(br#"{"start":1,"end":2}"#)).unwrap_err();
        assert!(matches!(
            error,
            Error::ResponseParsing {
                endpoint: Endpoint::Archive,
                ..
            }
        ));
    }
}
