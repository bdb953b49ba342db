//! The audio CDN: every call's file by its hashed path (and the old path without a hash),
//! with `Range` requests.

use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::AppState;
use super::shaping::{apply, cut_body, slow_body};
use crate::calls::SimCall;
use crate::faults::{Fault, Route};
use crate::state::State;

/// `bytes=N-` or `bytes=N-M` (one range).
fn requested_range(headers: &HeaderMap, len: usize) -> Option<(usize, usize)> {
    let value = headers
        .get(header::RANGE)?
        .to_str()
        .ok()?
        .trim()
        .strip_prefix("bytes=")?;
    let (start, end) = value.split_once('-')?;
    let start: usize = start.parse().ok()?;
    let end = if end.is_empty() {
        len.checked_sub(1)?
    } else {
        end.parse::<usize>().ok()?.min(len - 1)
    };
    (start <= end && end < len).then_some((start, end))
}

pub(super) async fn cdn(Shared(state): Shared<AppState>, request: Request) -> Response {
    let fault = state.faults.next(Route::Audio);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    let path = request.uri().path().to_owned();
    let Some(call) = state
        .by_cdn_path(&path)
        .or_else(|| no_hash_lookup(&state, &path))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if fault == Some(Fault::NotFound) || SystemTime::now() < call.entry.audio_available_at {
        return StatusCode::NOT_FOUND.into_response();
    }
    let content_type = match call.entry.enc {
        "mp3" => "audio/mpeg",
        _ => state.config.m4a_content_type.as_str(),
    };
    let audio = call.audio.clone();
    let total = audio.len();
    let (status, body, range) = match requested_range(request.headers(), total) {
        Some((start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            audio.slice(start..=end),
            Some((start, end)),
        ),
        None => (StatusCode::OK, audio, None),
    };
    let length = body.len();
    let body = match fault {
        Some(Fault::TruncateAudio { after_bytes }) => cut_body(body, after_bytes),
        Some(Fault::SlowBody { chunk, pause }) => slow_body(body, chunk, pause),
        _ => Body::from(body),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("audio/mp4")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((start, end)) = range {
        let value = format!("bytes {start}-{end}/{total}");
        headers.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).expect("ASCII"),
        );
    }
    response
}

/// The old CDN form without a hash: `/{systemId}/{filename}.{enc}`.
fn no_hash_lookup(state: &State, path: &str) -> Option<Arc<SimCall>> {
    let mut parts = path.trim_start_matches('/').split('/');
    let (node, file, rest) = (parts.next()?, parts.next()?, parts.next());
    if rest.is_some() {
        return None;
    }
    let (filename, enc) = file.rsplit_once('.')?;
    let node: i64 = node.parse().ok()?;
    state
        .select(|c| {
            c.entry.system_id == node
                && c.entry.enc == enc
                && c.json.get("filename").and_then(Value::as_str) == Some(filename)
        })
        .pop()
}
