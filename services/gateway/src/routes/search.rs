//! `GET /v1/calls`: transcribed calls found by their words, newest first without `q`, with the
//! matching words highlighted and the number of matches per talkgroup (see
//! [`crate::search::query`] for the parameters). Only the caller's scope is searched.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use time::OffsetDateTime;

use crate::api::Api;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::event::rfc3339;
use crate::search::query::{self, PageCursor, SearchRequest};
use crate::search::{Hit, Sort};

/// One call found.
#[derive(Debug, Serialize)]
struct FoundCall {
    call_id: String,
    sid: i64,
    tg: i64,
    talkgroup: Option<String>,
    time: String,
    units: Vec<String>,
    transcript: String,
    /// The transcript, HTML-escaped, with the matching words in `<b>…</b>`.
    highlight: String,
    url: String,
    audio_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    score: Option<f32>,
}

/// Matches in one talkgroup.
#[derive(Debug, Serialize)]
struct TalkgroupCount {
    sid: i64,
    tg: i64,
    name: Option<String>,
    count: u64,
}

#[derive(Debug, Serialize)]
struct Facets {
    talkgroups: Vec<TalkgroupCount>,
}

/// The answer.
#[derive(Debug, Serialize)]
struct Found {
    calls: Vec<FoundCall>,
    total: usize,
    facets: Facets,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

fn talkgroup_name(api: &Api, shard: bcfy_bus::Shard) -> Option<String> {
    let names = api
        .talkgroup_names
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    names
        .get(&shard)
        .and_then(|n| n.display.clone().or_else(|| n.description.clone()))
}

fn found_call(api: &Api, hit: Hit, q: Option<&str>) -> FoundCall {
    let time = OffsetDateTime::from_unix_timestamp(hit.time).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    FoundCall {
        url: format!("/v1/calls/{}", hit.call_id),
        audio_url: format!("/v1/calls/{}/audio", hit.call_id),
        talkgroup: hit.talkgroup.or_else(|| talkgroup_name(api, hit.shard)),
        call_id: hit.call_id,
        sid: hit.shard.sid,
        tg: hit.shard.tg,
        time: rfc3339(time),
        units: hit.units,
        highlight: query::highlight(&hit.text, q),
        transcript: hit.text,
        score: hit.score,
    }
}

/// `GET /v1/calls`.
pub async fn search(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let request = SearchRequest::parse(raw.as_deref())?;
    let index = api.search.clone();
    let sort = request.effective_sort();
    let offset = match request.cursor {
        Some(PageCursor::Offset(offset)) => offset,
        _ => 0,
    };
    let limit = request.limit;
    let q = request.q.clone();
    let page = tokio::task::spawn_blocking(move || {
        let full = query::build(&index, &request, &principal);
        let page = query::older_than(index.fields(), full.as_ref(), request.cursor);
        index.search(full.as_ref(), page.as_deref(), sort, limit, offset)
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("the search failed: {e}")))?
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let next_cursor = (page.hits.len() == limit).then(|| match sort {
        Sort::Time => PageCursor::Before(page.hits.last().map_or(0, |h| h.order)),
        Sort::Relevance => PageCursor::Offset(offset + limit),
    });
    // Names the page's calls give, for the talkgroups the live stream has not named yet.
    let named: std::collections::HashMap<_, _> = page
        .hits
        .iter()
        .filter_map(|hit| Some((hit.shard, hit.talkgroup.clone()?)))
        .collect();
    let talkgroups = page
        .talkgroups
        .iter()
        .map(|(shard, count)| TalkgroupCount {
            sid: shard.sid,
            tg: shard.tg,
            name: talkgroup_name(&api, *shard).or_else(|| named.get(shard).cloned()),
            count: *count,
        })
        .collect();
    let found = Found {
        calls: page
            .hits
            .into_iter()
            .map(|hit| found_call(&api, hit, q.as_deref()))
            .collect(),
        total: page.total,
        facets: Facets { talkgroups },
        next_cursor: next_cursor.map(PageCursor::encode),
    };
    Ok(Json(serde_json::to_value(found).unwrap_or_default()))
}
