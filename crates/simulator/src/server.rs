//! The HTTP surface: the website paths, the directory's APIs and the CDN on one address (protocol §9), one file per
//! route, with fault shaping apart.

mod archive;
mod cdn;
mod directory;
mod live;
mod login;
mod shaping;

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as Shared};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::faults::Fault;
use crate::state::{RecordedRequest, State};

/// Largest form body accepted (a login or a poll with many `groups[]` is far smaller).
const MAX_RECORDED_FORM: usize = 1 << 20;

type AppState = Arc<State>;

/// The router of the whole simulated site.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/login/", get(login::login_page).post(login::login))
        .route("/account/", get(login::account))
        .route("/calls/apis/live-calls", post(live::live_calls))
        .route("/calls/apis/archivecall.php", get(archive::archive))
        .route("/audio/", get(directory::catalog))
        .route("/common/v1/auth", post(directory::auth))
        .route(
            "/calls/v1/groups/county/{ctid}",
            get(directory::county_groups),
        )
        .fallback(get(cdn::cdn))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .with_state(state)
}

async fn record(Shared(state): Shared<AppState>, request: Request, next: Next) -> Response {
    let headers = request
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| {
            value
                .as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    let (parts, body) = request.into_parts();
    let (body, form) = if is_form {
        match axum::body::to_bytes(body, MAX_RECORDED_FORM).await {
            Ok(bytes) => {
                let form = url::form_urlencoded::parse(&bytes).into_owned().collect();
                (Body::from(bytes), form)
            }
            Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
        }
    } else {
        (body, Vec::new())
    };
    let request = Request::from_parts(parts, body);
    let mut recorded = RecordedRequest {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers,
        at: SystemTime::now(),
        status: 0,
        form,
    };
    let response = next.run(request).await;
    recorded.status = response.status().as_u16();
    state.record(recorded);
    response
}

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("bcfyuser1=").map(str::to_owned))
}

fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_owned())]).into_response()
}

/// A group key `"{sid}-{tg}"`.
fn parse_group(key: &str) -> Option<(i64, i64)> {
    let (sid, tg) = key.trim().split_once('-')?;
    Some((sid.parse().ok()?, tg.parse().ok()?))
}

/// Whether a session may watch `selection`, after an injected expiry.
fn authorized(state: &State, headers: &HeaderMap, fault: Option<&Fault>) -> bool {
    let Some(cookie) = cookie_of(headers) else {
        return false;
    };
    if fault == Some(&Fault::ExpireSession) {
        state.end_session(&cookie);
    }
    state.session_valid(&cookie)
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"login required"}"#,
    )
        .into_response()
}
