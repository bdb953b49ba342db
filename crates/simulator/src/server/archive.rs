//! `GET /calls/apis/archivecall.php`: 30-minute blocks of a talkgroup's calls.

use axum::extract::{Query, State as Shared};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::shaping::apply;
use super::{AppState, authorized, forbidden, parse_group};
use crate::faults::{Fault, Route};
use crate::state::epoch_now;

/// Archive block length.
const BLOCK_SECONDS: i64 = 1800;

pub(super) async fn archive(
    Shared(state): Shared<AppState>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let fault = state.faults.next(Route::Archive);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    if !authorized(&state, &headers, fault.as_ref()) {
        return forbidden();
    }
    let field = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(group), Some(block)) = (
        field("group").and_then(parse_group),
        field("s").and_then(|s| s.parse::<i64>().ok()),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"bad group or s"}"#,
        )
            .into_response();
    };
    // Selected by start time; a call's ts may spill past the block's end (protocol §4).
    let calls = state.select(|c| {
        (c.entry.sid, c.entry.tg) == group
            && (block..block + BLOCK_SECONDS).contains(&c.entry.start)
    });
    let objects: Vec<String> = calls
        .iter()
        .map(|c| {
            let mut object = c.json.clone();
            object.insert("score".into(), Value::from(c.entry.ts));
            Value::Object(object).to_string()
        })
        .collect();
    let calls = objects.join(",");
    let etag = state.config.archive_etag.then(|| {
        let digest = Sha256::digest(format!("{block}/{calls}").as_bytes());
        format!(
            "\"{}\"",
            digest[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    });
    if let Some(etag) = &etag
        && headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = format!(
        r#"{{"calls":[{}],"serverTime":{},"start":{},"end":{}}}"#,
        calls,
        epoch_now() as i64,
        block - 1,
        block + BLOCK_SECONDS
    );
    if fault == Some(Fault::MalformedJson) {
        return (
            [(header::CONTENT_TYPE, "application/json")],
            body[..body.len() / 2].to_owned(),
        )
            .into_response();
    }
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(value) = etag.and_then(|e| e.parse().ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
