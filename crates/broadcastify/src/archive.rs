//! Archived calls: `GET /calls/apis/archivecall.php?group={sid}-{tg}&s={block}` (spec §3.2,
//! protocol §4). A block is 30 minutes; `s` is floored to its start. The answer holds the calls
//! that *started* in the block (their `ts` may spill past its end), with `start = s - 1` and
//! `end = s + 1800`. A missing `calls` array is a parsing error.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::calls::{ParsedCalls, epoch_field, parse_calls, parsing_error};
use crate::client::Client;
use crate::error::{Endpoint, ParseError, Result};
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
    let envelope: Envelope<'_> = serde_json::from_slice(&body)
        .map_err(|e| parsing_error(Endpoint::Archive, ParseError::Json(e), &body))?;
    let calls = envelope
        .calls
        .ok_or_else(|| parsing_error(Endpoint::Archive, ParseError::NoCalls, &body))?;
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

/// The upstream's cache validators for an answer (`ETag`, `Last-Modified`), when it sends them.
/// The captures show none on `archivecall.php`; they are honoured if they ever appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag`, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified`, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
}

impl Validators {
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Validators {
            etag: text(reqwest::header::ETAG),
            last_modified: text(reqwest::header::LAST_MODIFIED),
        }
    }

    /// True when there is nothing to make a request conditional on.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The answer to a conditional archive request.
#[derive(Debug, Clone, PartialEq)]
pub enum ArchiveFetch {
    /// A (new) answer, with its validators.
    Modified(ArchiveBlock, Validators),
    /// HTTP 304: the copy the validators came from is still current.
    NotModified,
}

impl Client {
    /// The calls archived in the 30-minute block containing `time` (epoch seconds) for one
    /// talkgroup. Needs a session; a 403 triggers one re-login and retry.
    ///
    /// # Errors
    ///
    /// [`crate::Error::ResponseParsing`] for an answer without a `calls` array; status, session
    /// and transport errors as for live calls.
    pub async fn archived_calls(&self, group: GroupKey, time: i64) -> Result<ArchiveBlock> {
        match self
            .archived_calls_if_changed(group, time, &Validators::default())
            .await?
        {
            ArchiveFetch::Modified(block, _) => Ok(block),
            // Nothing was made conditional, so a 304 is the upstream's mistake.
            ArchiveFetch::NotModified => Err(parsing_error(
                Endpoint::Archive,
                ParseError::UnexpectedNotModified,
                b"",
            )),
        }
    }

    /// As [`Client::archived_calls`], conditional on `validators` from an earlier answer
    /// (`If-None-Match`, `If-Modified-Since`): a 304 is [`ArchiveFetch::NotModified`].
    ///
    /// # Errors
    ///
    /// As [`Client::archived_calls`].
    pub async fn archived_calls_if_changed(
        &self,
        group: GroupKey,
        time: i64,
        validators: &Validators,
    ) -> Result<ArchiveFetch> {
        let block = block_start(time);
        self.with_session(|token| async move {
            let mut request = self
                .http()
                .get(self.site_url("/calls/apis/archivecall.php"))
                .query(&[("group", group.to_string()), ("s", block.to_string())])
                .header(reqwest::header::COOKIE, token.cookie_header());
            if let Some(etag) = &validators.etag {
                request = request.header(reqwest::header::IF_NONE_MATCH, etag);
            }
            if let Some(since) = &validators.last_modified {
                request = request.header(reqwest::header::IF_MODIFIED_SINCE, since);
            }
            let request = self.xhr(request, &format!("/calls/tg/{}/{}", group.sid, group.tg));
            let answer = self.send(Endpoint::Archive, request).await?;
            let status = answer.response.status();
            if status == reqwest::StatusCode::NOT_MODIFIED {
                return Ok(ArchiveFetch::NotModified);
            }
            if !status.is_success() {
                return Err(answer.into_status_error(Endpoint::Archive).await);
            }
            let validators = Validators::from_headers(answer.response.headers());
            let block = parse_archive(block, answer.bytes(Endpoint::Archive).await?)?;
            Ok(ArchiveFetch::Modified(block, validators))
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
