//! `POST /calls/apis/live-calls`: the selectors, the session check, `doInit` and `pos`.

use axum::body::Body;
use axum::extract::{Form, State as Shared};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::shaping::{apply, slow_body};
use super::{AppState, authorized, forbidden, parse_group};
use crate::calls::SimCall;
use crate::faults::{Fault, Route};
use crate::state::epoch_now;

/// Newest calls returned for `doInit=1` (protocol §3.2).
const INIT_CALLS: usize = 25;

/// What a live-calls request selects.
enum Selection {
    Groups(Vec<(i64, i64)>),
    System(i64),
    Node(i64),
    Playlist,
    Nothing,
}

pub(super) async fn live_calls(
    Shared(state): Shared<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fault = state.faults.next(Route::LiveCalls);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim());
    let number = |name: &str| {
        field(name)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut groups: Vec<(i64, i64)> = form
        .iter()
        .filter(|(k, _)| k == "groups[]")
        .filter_map(|(_, v)| parse_group(v))
        .collect();
    // Browser playlist captures send `groups` as a comma list.
    groups.extend(
        field("groups")
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(parse_group),
    );
    // NOTE: the site ignores `systemId` when groups are given (some clients send the sid there).
    let selection = if field("playlist_uuid") == Some(state.world.playlist_uuid.as_str()) {
        Selection::Playlist
    } else if !groups.is_empty() {
        Selection::Groups(groups)
    } else if number("sid") > 0.0 {
        Selection::System(number("sid") as i64)
    } else if number("systemId") > 0.0 {
        Selection::Node(number("systemId") as i64)
    } else {
        Selection::Nothing
    };
    let public = matches!(selection, Selection::Playlist | Selection::Nothing);
    if !public && !authorized(&state, &headers, fault.as_ref()) {
        return forbidden();
    }
    let playlist: Vec<(i64, i64)> = state.world.playlist().map(|t| (t.sid, t.tg)).collect();
    let selected = |call: &SimCall| {
        let e = &call.entry;
        match &selection {
            Selection::Groups(groups) => groups.contains(&(e.sid, e.tg)),
            Selection::System(sid) => e.sid == *sid,
            Selection::Node(node) => e.system_id == *node,
            Selection::Playlist => playlist.contains(&(e.sid, e.tg)),
            Selection::Nothing => false,
        }
    };
    let init = field("doInit") == Some("1");
    let position = number("pos");
    let mut calls = state.select(|c| selected(c) && (init || c.entry.ts as f64 >= position));
    if init {
        let skip = calls.len().saturating_sub(INIT_CALLS);
        calls.drain(..skip);
    }
    let last_pos = calls.last().map_or(0, |c| c.entry.ts);
    let mut objects: Vec<&str> = calls.iter().map(|c| c.json_text.as_str()).collect();
    if fault == Some(Fault::BadRecords) {
        objects.push("7");
        objects.push(r#"{"id":"?","systemId":1502,"filename":"1-2","hash":"badrec01"}"#);
    }
    let mut body = format!(
        r#"{{"calls":[{}],"serverTime":{},"lastPos":{last_pos}}}"#,
        objects.join(","),
        epoch_now() as i64
    );
    if fault == Some(Fault::MalformedJson) {
        body.truncate(body.len() / 2);
    }
    let body = match fault {
        Some(Fault::SlowBody { chunk, pause }) => slow_body(Bytes::from(body), chunk, pause),
        _ => Body::from(body),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
