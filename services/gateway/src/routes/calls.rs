//! `GET /v1/calls/{call_id}` and `GET /v1/calls/{call_id}/audio`. A call outside the caller's
//! scope is answered exactly like one that does not exist.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bcfy_bus::CallId;
use bcfy_bus::reassemble::{ReassemblyError, reassemble};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::api::Api;
use crate::audio::{AudioFile, respond};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::event::{proto_json, rfc3339};
use crate::lookup::{self, CallRecord};

/// The audio of a call, as `GET /v1/calls/{call_id}` describes it.
#[derive(Debug, Serialize)]
struct AudioLink {
    url: String,
    content_type: String,
    size: u64,
    sha256: String,
    source_url: String,
}

/// `GET /v1/calls/{call_id}`.
#[derive(Debug, Serialize)]
struct CallView {
    call_id: String,
    sid: i64,
    tg: i64,
    /// The Broadcastify call (protobuf JSON mapping of `Call`).
    call: Option<serde_json::Value>,
    /// When the poller published it (`CALLS_LIVE`), when found.
    received_at: Option<String>,
    /// Its sequence in `CALLS_LIVE`, when found.
    live_seq: Option<u64>,
    audio: Option<AudioLink>,
    /// Its transcripts, oldest first (protobuf JSON mapping of `TranscriptionResult`, without
    /// the repeated `call`).
    transcripts: Vec<serde_json::Value>,
}

/// The call id of the path, or 400 when it cannot be read (not UTF-8).
fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|rejection| ApiError::bad_request("invalid_call_id", rejection.body_text()))
}

fn not_found(call_id: &str) -> ApiError {
    ApiError::not_found(format!("no call `{call_id}`"))
}

fn json_error(error: crate::event::EventError) -> ApiError {
    ApiError::unavailable(format!("a stored message cannot be shown: {error}"))
}

/// The call `found`, if the caller may see it.
fn visible(
    found: Option<CallRecord>,
    principal: &Principal,
    call_id: &str,
) -> Result<CallRecord, ApiError> {
    match found {
        Some(record) if principal.sees(record.shard) => Ok(record),
        _ => Err(not_found(call_id)),
    }
}

/// A call's metadata, transcripts and audio link.
pub async fn call(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
    call_id: Result<Path<String>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let call_id = path_id(call_id)?;
    let id = lookup::parse_call_id(&call_id)?;
    let record = visible(lookup::find_call(&api.js, &id).await?, &principal, &call_id)?;
    let call = record
        .live
        .as_ref()
        .and_then(|l| l.envelope.call.as_ref())
        .or_else(|| record.audio.as_ref().and_then(|a| a.last.call.as_ref()))
        .or_else(|| record.transcripts.iter().find_map(|(t, _)| t.call.as_ref()));
    let transcripts = record
        .transcripts
        .iter()
        .map(|(t, _)| proto_json(t, &["call"]))
        .collect::<Result<_, _>>()
        .map_err(json_error)?;
    let view = CallView {
        call_id: record.call_id.to_string(),
        sid: record.shard.sid,
        tg: record.shard.tg,
        call: call
            .map(|c| proto_json(c, &[]))
            .transpose()
            .map_err(json_error)?,
        received_at: record.live.as_ref().map(|l| rfc3339(l.stored_at)),
        live_seq: record.live.as_ref().map(|l| l.seq),
        audio: record.audio.as_ref().map(|a| AudioLink {
            url: format!("/v1/calls/{}/audio", record.call_id),
            content_type: a.last.content_type.clone(),
            size: a.last.total_size,
            sha256: a.last.sha256.clone(),
            source_url: a.last.source_url.clone(),
        }),
        transcripts,
    };
    let json = serde_json::to_value(view).map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json))
}

/// The call's audio: 200/206 with the file, 404 when it is not (yet) stored, 410 when it aged
/// out of the stream.
pub async fn audio(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
    call_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let call_id = path_id(call_id)?;
    let id = lookup::parse_call_id(&call_id)?;
    if let Some(file) = api.audio_cache.get(id.as_str(), OffsetDateTime::now_utc()) {
        if !principal.sees(file.shard) {
            return Err(not_found(&call_id));
        }
        api.metrics.audio_served.with_label_values(&["cache"]).inc();
        return Ok(respond(&file, &headers));
    }
    let Some((shard, record)) = lookup::find_audio(&api.js, &id).await? else {
        return Err(missing_audio(&api, &principal, &id).await);
    };
    if !principal.sees(shard) {
        return Err(not_found(&call_id));
    }
    // Reading the file back joins the call's trace.
    let span = tracing::info_span!("gateway.audio", call_id = %id);
    bcfy_bus::trace_context::follow(&span, Some(&record.headers));
    let bytes = reassemble(&api.js, &record.subject, &record.last)
        .instrument(span.clone())
        .await
        .map_err(|e| match e {
            ReassemblyError::Missing { .. } => gone(&call_id),
            ReassemblyError::Nats { .. } => ApiError::unavailable(e.to_string()),
            ReassemblyError::SizeMismatch { .. } | ReassemblyError::DigestMismatch { .. } => {
                tracing::error!(parent: &span, error = %e, "Stored audio does not match its digest.");
                ApiError::new(StatusCode::BAD_GATEWAY, "corrupt_audio", e.to_string())
            }
        })?;
    let file = Arc::new(AudioFile {
        shard,
        bytes,
        content_type: record.last.content_type.clone(),
        sha256: record.last.sha256.clone(),
        expires_at: record.stored_at + api.audio_max_age,
    });
    api.audio_cache.insert(id.as_str(), Arc::clone(&file));
    api.metrics
        .audio_served
        .with_label_values(&["stream"])
        .inc();
    Ok(respond(&file, &headers))
}

fn gone(call_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "audio_expired",
        format!("the audio of `{call_id}` aged out of the stream"),
    )
}

/// Why a call has no audio: unknown (404), not stored yet (404 `audio_not_ready`), or no longer
/// (410).
async fn missing_audio(api: &Api, principal: &Principal, id: &CallId) -> ApiError {
    let call_id = id.as_str();
    let found = match lookup::find_call_with(&api.js, id, None).await {
        Ok(found) => found,
        Err(error) => return error,
    };
    let record = match visible(found, principal, call_id) {
        Ok(record) => record,
        Err(error) => return error,
    };
    // Audio is only ever removed by age (the stream refuses new audio when full) and is stored
    // after its live event; a transcript means it was stored once.
    let now = OffsetDateTime::now_utc();
    let aged_out = record
        .live
        .as_ref()
        .is_none_or(|live| live.stored_at + api.audio_max_age < now);
    if aged_out || !record.transcripts.is_empty() {
        gone(call_id)
    } else {
        ApiError::not_found(format!("the audio of `{call_id}` is not stored yet"))
            .with_code("audio_not_ready")
    }
}
