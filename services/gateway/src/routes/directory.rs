//! `GET /v1/directory/…`: the Broadcastify directory, asked of the directory service over NATS
//! (the archive cache hosts it) and answered in protobuf's JSON mapping:
//!
//! - `/v1/directory/states`;
//! - `/v1/directory/states/{state}/counties`, `{state}` an id, a postal code or a name;
//! - `/v1/directory/counties/{ctid}`: systems, talkgroups, feeds;
//! - `/v1/directory/feeds/{id}`.
//!
//! Every answer carries `freshness` (`stale` while the upstream is down).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bcfy_directory::nats_api::ClientError;

use crate::api::Api;
use crate::error::ApiError;
use crate::event::proto_json;

/// The API error for a failed directory request.
fn refused(error: ClientError) -> ApiError {
    let message = bcfy_bus::consume::error_chain(&error);
    match &error {
        ClientError::Refused { code, .. } => match code {
            tonic::Code::NotFound => ApiError::not_found(message),
            tonic::Code::InvalidArgument => ApiError::bad_request("invalid_id", message),
            // The gateway's own upstream credentials: not the caller's fault, not retryable.
            tonic::Code::PermissionDenied | tonic::Code::Internal => {
                ApiError::new(StatusCode::BAD_GATEWAY, "upstream_refused", message)
            }
            _ => ApiError::unavailable(message).retry_after(5),
        },
        ClientError::NoAnswer(_) => ApiError::unavailable(message)
            .with_code("directory_unavailable")
            .retry_after(5),
        ClientError::Unreadable(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "directory_unreadable", message)
        }
    }
}

fn json<M: prost::Name + prost::Message>(answer: &M) -> Result<Json<serde_json::Value>, ApiError> {
    proto_json(answer, &[])
        .map(Json)
        .map_err(|e| ApiError::unavailable(format!("the answer cannot be shown: {e}")))
}

fn id(path: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    path.map(|Path(id)| id)
        .map_err(|rejection| ApiError::bad_request("invalid_id", rejection.body_text()))
}

/// Every state.
pub async fn states(State(api): State<Arc<Api>>) -> Result<Json<serde_json::Value>, ApiError> {
    json(&api.directory.states().await.map_err(refused)?)
}

/// A state's counties.
pub async fn counties(
    State(api): State<Arc<Api>>,
    Path(state): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let stid = match state.parse::<i64>() {
        Ok(id) => id,
        Err(_) => {
            let states = api.directory.states().await.map_err(refused)?;
            bcfy_directory::model::state_named(&states.states, &state).ok_or_else(|| {
                ApiError::not_found(format!("no state is named or coded `{state}`"))
            })?
        }
    };
    json(&api.directory.counties(stid).await.map_err(refused)?)
}

/// A county's systems, talkgroups and feeds.
pub async fn county(
    State(api): State<Arc<Api>>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    json(&api.directory.county(id(path)?).await.map_err(refused)?)
}

/// One feed.
pub async fn feed(
    State(api): State<Arc<Api>>,
    path: Result<Path<i64>, PathRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    json(&api.directory.feed(id(path)?).await.map_err(refused)?)
}
