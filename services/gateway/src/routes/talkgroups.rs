//! `GET /v1/talkgroups`: the talkgroups the live stream holds calls of (within the caller's
//! scope), with the names their latest call gives and how many calls are stored.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use bcfy_bus::subject::{ALL_LIVE, ParsedSubject};
use bcfy_bus::topology::STREAM_CALLS_LIVE;
use bcfy_proto::LiveCallEnvelope;
use prost::Message as _;
use serde::Serialize;

use crate::api::{Api, TalkgroupNames};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::lookup;

/// One talkgroup.
#[derive(Debug, Serialize)]
struct Talkgroup {
    sid: i64,
    tg: i64,
    display: Option<String>,
    description: Option<String>,
    group: Option<String>,
    /// Calls of it in the live stream.
    calls: usize,
}

/// The response.
#[derive(Debug, Serialize)]
struct Talkgroups {
    talkgroups: Vec<Talkgroup>,
}

/// Lists the talkgroups; names are read once per talkgroup and remembered.
pub async fn list(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut talkgroups = Vec::new();
    for (subject, calls) in lookup::subjects(&api.js, STREAM_CALLS_LIVE, ALL_LIVE).await? {
        let Ok(ParsedSubject::Live(shard)) = subject.parse::<ParsedSubject>() else {
            continue;
        };
        if !principal.sees(shard) {
            continue;
        }
        let known = api
            .talkgroup_names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&shard)
            .cloned();
        let names = match known {
            Some(names) => names,
            None => {
                let message = lookup::last_on(&api.js, STREAM_CALLS_LIVE, &subject).await?;
                let call = LiveCallEnvelope::decode(message.payload.as_ref())
                    .ok()
                    .and_then(|e| e.call)
                    .unwrap_or_default();
                let names = TalkgroupNames {
                    display: call.display,
                    description: call.descr,
                    group: call.grouping,
                };
                api.talkgroup_names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(shard, names.clone());
                names
            }
        };
        talkgroups.push(Talkgroup {
            sid: shard.sid,
            tg: shard.tg,
            display: names.display,
            description: names.description,
            group: names.group,
            calls,
        });
    }
    talkgroups.sort_by_key(|t| (t.sid, t.tg));
    let json = serde_json::to_value(Talkgroups { talkgroups })
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json))
}
