//! The directory's two upstreams, as the directory client models them (no capture exists;
//! `docs/directory.md` says which fields are sourced and which guessed):
//!
//! - `GET /audio/?a=states|counties|county|feed&type=json&key=…`: the catalog API. A wrong key
//!   is refused inside a 200 (`{"error": …}`), as PHP APIs of its age do;
//! - `POST /common/v1/auth` and `GET /calls/v1/groups/county/{ctid}`: the Calls API, with the
//!   HS256 JWT checked (key id, issuer, signature, expiry, and for groups the user token).
//!   Refusals are 401 with `{"errors": [{code, title}]}`.
//!
//! Ids come as numeric strings and each record carries a key the client does not map, so the
//! lenient reading and the keeping of unknown keys are exercised.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State as Shared};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use super::AppState;
use super::shaping::apply;
use crate::catalog::{COUNTIES, FEEDS, STATES, system_name};
use crate::faults::Route;
use crate::state::{State, epoch_now};

fn json_answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn catalog_error(message: &str) -> Response {
    json_answer(StatusCode::OK, &json!({ "error": message }))
}

fn feed_json(feed: &(i64, i64, &str, &str, bool, i64)) -> Value {
    let (id, ctid, name, genre, online, listeners) = *feed;
    json!({
        "id": id.to_string(),
        "ctid": ctid.to_string(),
        "descr": name,
        "genre": genre,
        "status": if online { "1" } else { "0" },
        "listeners": listeners.to_string(),
        "mount": format!("{id}"),
    })
}

fn county_json(county: &(i64, i64, &str)) -> Value {
    let (ctid, stid, name) = *county;
    json!({
        "ctid": ctid.to_string(),
        "stid": stid.to_string(),
        "name": name,
        "fips": format!("{stid:02}{:03}", ctid % 1000),
    })
}

/// `GET /audio/`.
pub(super) async fn catalog(
    Shared(state): Shared<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fault = state.faults.next(Route::Catalog);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    if query.get("key") != Some(&state.config.catalog_key) {
        return catalog_error("Invalid or missing API key");
    }
    let id = |name: &str| query.get(name).and_then(|v| v.parse::<i64>().ok());
    match query.get("a").map(String::as_str) {
        Some("states") => {
            let states: Vec<Value> = STATES
                .iter()
                .map(|(stid, name, code)| {
                    json!({"stid": stid.to_string(), "name": name, "code": code, "country": "US"})
                })
                .collect();
            json_answer(StatusCode::OK, &json!({ "states": states }))
        }
        Some("counties") => {
            let Some(stid) = id("stid").filter(|s| STATES.iter().any(|(id, ..)| id == s)) else {
                return catalog_error("Unknown state");
            };
            let counties: Vec<Value> = COUNTIES
                .iter()
                .filter(|(_, state, _)| *state == stid)
                .map(county_json)
                .collect();
            json_answer(StatusCode::OK, &json!({ "counties": counties }))
        }
        Some("county") => {
            let Some(county) = id("ctid").and_then(|c| COUNTIES.iter().find(|(id, ..)| *id == c))
            else {
                return catalog_error("Unknown county");
            };
            let feeds: Vec<Value> = FEEDS
                .iter()
                .filter(|f| f.1 == county.0)
                .map(feed_json)
                .collect();
            json_answer(
                StatusCode::OK,
                &json!({ "county": county_json(county), "feeds": feeds }),
            )
        }
        Some("feed") => match id("feedId").and_then(|f| FEEDS.iter().find(|feed| feed.0 == f)) {
            Some(feed) => json_answer(StatusCode::OK, &json!({ "feed": feed_json(feed) })),
            None => catalog_error("Unknown feed"),
        },
        _ => catalog_error("Unknown action"),
    }
}

fn calls_refusal(status: StatusCode, code: &str, title: &str) -> Response {
    json_answer(
        status,
        &json!({ "errors": [{ "code": code, "title": title }] }),
    )
}

/// Why a JWT is refused: the Calls API's error code and title.
type Refusal = (&'static str, &'static str);

/// The claims of a valid JWT, or why it is refused.
fn verify(state: &State, headers: &HeaderMap) -> Result<Value, Refusal> {
    let refused = |code, title| Err((code, title));
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return refused("101", "Missing authorization");
    };
    let parts: Vec<&str> = token.split('.').collect();
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(header), Some(claims), Some(signature)) = (
        parts.first().and_then(|p| decode(p)),
        parts.get(1).and_then(|p| decode(p)),
        parts.get(2).and_then(|p| URL_SAFE_NO_PAD.decode(p).ok()),
    ) else {
        return refused("102", "Malformed token");
    };
    if header["kid"] != state.config.api_key_id.as_str() {
        return refused("108", "Unknown key id");
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(state.config.api_key.as_bytes())
        .expect("HMAC takes any key length");
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    if mac.verify_slice(&signature).is_err() || claims["iss"] != state.config.app_id.as_str() {
        return refused("103", "Invalid signature");
    }
    if claims["exp"].as_f64().is_none_or(|exp| exp < epoch_now()) {
        return refused("103", "Token expired");
    }
    Ok(claims)
}

/// `POST /common/v1/auth`: a user token for the account.
pub(super) async fn auth(
    Shared(state): Shared<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let fault = state.faults.next(Route::CallsApi);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    if let Err((code, title)) = verify(&state, &headers) {
        return calls_refusal(StatusCode::UNAUTHORIZED, code, title);
    }
    if form.get("username") != Some(&state.config.username)
        || form.get("password") != Some(&state.config.password)
    {
        return calls_refusal(
            StatusCode::UNAUTHORIZED,
            "201",
            "Invalid username or password",
        );
    }
    let token = state.issue_user_token();
    json_answer(
        StatusCode::OK,
        &json!({ "uid": crate::state::USER_ID, "token": token, "exp": epoch_now() as i64 + 3600 }),
    )
}

/// `GET /calls/v1/groups/county/{ctid}`: the county's groups.
pub(super) async fn county_groups(
    Shared(state): Shared<AppState>,
    headers: HeaderMap,
    Path(ctid): Path<String>,
) -> Response {
    let fault = state.faults.next(Route::CallsApi);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    let claims = match verify(&state, &headers) {
        Ok(claims) => claims,
        Err((code, title)) => return calls_refusal(StatusCode::UNAUTHORIZED, code, title),
    };
    let user_ok = claims["sub"].as_i64() == Some(crate::state::USER_ID)
        && claims["utk"]
            .as_str()
            .is_some_and(|t| state.user_token_valid(t));
    if !user_ok {
        return calls_refusal(StatusCode::UNAUTHORIZED, "104", "User token required");
    }
    let Some(&(ctid, ..)) = ctid
        .parse::<i64>()
        .ok()
        .and_then(|c| COUNTIES.iter().find(|(id, ..)| *id == c))
    else {
        return calls_refusal(StatusCode::NOT_FOUND, "404", "County not found");
    };
    let groups: Vec<Value> = if ctid == crate::catalog::EXAMPLE_COUNTY {
        state
            .world
            .talkgroups
            .iter()
            .filter(|t| state.listed_in_directory(t.sid, t.tg))
            .map(|t| {
                json!({
                    "groupId": format!("{}-{}", t.sid, t.tg),
                    "sid": t.sid.to_string(),
                    "display": t.display,
                    "descr": t.descr,
                    "grouping": t.grouping,
                    "tag": t.tag_label,
                    "tagId": t.tag,
                    "systemName": system_name(t.sid),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    json_answer(StatusCode::OK, &json!({ "groups": groups }))
}
