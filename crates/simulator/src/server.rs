//! The HTTP surface: the website paths and the CDN on one address (protocol §9).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Query, Request, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::calls::SimCall;
use crate::faults::{Fault, RetryAfter, Route};
use crate::state::{RecordedRequest, State, epoch_now};

/// Newest calls returned for `doInit=1` (protocol §3.2).
const INIT_CALLS: usize = 25;
/// Archive block length.
const BLOCK_SECONDS: i64 = 1800;
/// Largest form body accepted (a login or a poll with many `groups[]` is far smaller).
const MAX_RECORDED_FORM: usize = 1 << 20;

type AppState = Arc<State>;

/// The router of the whole simulated site.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/login/", get(login_page).post(login))
        .route("/account/", get(account))
        .route("/calls/apis/live-calls", post(live_calls))
        .route("/calls/apis/archivecall.php", get(archive))
        .fallback(get(cdn))
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

/// What a fault does before the handler runs: an answer in its place, or nothing.
async fn apply(fault: Option<&Fault>) -> Option<Response> {
    match fault? {
        Fault::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            None
        }
        Fault::Status {
            status,
            retry_after,
        } => Some(status_response(*status, *retry_after)),
        Fault::SlowStatus { status, after } => {
            tokio::time::sleep(*after).await;
            Some(status_response(*status, None))
        }
        Fault::Reset => Some(reset()),
        _ => None,
    }
}

/// A simulated error answer with a small JSON body and, if given, `Retry-After`.
fn status_response(status: u16, retry_after: Option<RetryAfter>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":"simulated fault"}"#,
    )
        .into_response();
    if let Some(value) = retry_after.and_then(|r| HeaderValue::from_str(&r.header_value()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// An answer whose body fails at once: the client sees the connection drop.
fn reset() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "simulated reset",
        ))
    });
    let mut response = Response::new(Body::from_stream(failing));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("64"));
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

async fn login_page() -> impl IntoResponse {
    axum::response::Html(
        r#"<html><body><form method="post" action="/login/">
<input type="text" name="username"><input type="password" name="password">
<input type="hidden" name="action" value="auth"><input type="hidden" name="redirect" value="/">
</form><p>Invalid Login or Password</p></body></html>"#,
    )
}

async fn login(
    Shared(state): Shared<AppState>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let fault = state.faults.next(Route::Login);
    if let Some(response) = apply(fault.as_ref()).await {
        return response;
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let correct = field("username") == Some(state.config.username.as_str())
        && field("password") == Some(state.config.password.as_str())
        && field("action") == Some("auth");
    match fault {
        Some(Fault::NoCookie) if correct => return redirect(field("redirect").unwrap_or("/")),
        Some(Fault::BadPassword) => return redirect("/login/?failed=1"),
        _ if !correct => return redirect("/login/?failed=1"),
        _ => {}
    }
    let cookie = state.open_session();
    let mut response = redirect(field("redirect").unwrap_or("/"));
    let set_cookie = format!("bcfyuser1={cookie}; Path=/; HttpOnly");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&set_cookie).expect("ASCII"),
    );
    response
}

async fn account(
    Shared(state): Shared<AppState>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = apply(state.faults.next(Route::Logout).as_ref()).await {
        return response;
    }
    if query.iter().any(|(k, v)| k == "action" && v == "logout") {
        if let Some(cookie) = cookie_of(&headers) {
            state.end_session(&cookie);
        }
        let mut response = redirect("/");
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_static("bcfyuser1=deleted; Path=/; Max-Age=0"),
        );
        return response;
    }
    (StatusCode::OK, "account").into_response()
}

/// What a live-calls request selects.
enum Selection {
    Groups(Vec<(i64, i64)>),
    System(i64),
    Node(i64),
    Playlist,
    Nothing,
}

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

async fn live_calls(
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

async fn archive(
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

async fn cdn(Shared(state): Shared<AppState>, request: Request) -> Response {
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

/// Sends `after_bytes` of `body`, then drops the connection (the announced length is never
/// reached). The pause lets the head and the first bytes reach the client first, as on a real
/// connection that dies mid-body.
fn cut_body(body: Bytes, after_bytes: usize) -> Body {
    let sent = body.slice(..after_bytes.min(body.len().saturating_sub(1)));
    let stream = futures::stream::unfold(Some(sent), |sent| async move {
        match sent {
            Some(sent) => Some((Ok(sent), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated cut");
                Some((Err(cut), None))
            }
        }
    });
    Body::from_stream(stream)
}

/// Sends `body` in pieces of `chunk` bytes, `pause` apart.
fn slow_body(body: Bytes, chunk: usize, pause: Duration) -> Body {
    let chunk = chunk.max(1);
    let pieces: Vec<Bytes> = (0..body.len())
        .step_by(chunk)
        .map(|at| body.slice(at..(at + chunk).min(body.len())))
        .collect();
    let stream = futures::stream::unfold(
        (pieces.into_iter(), true),
        move |(mut pieces, first)| async move {
            let piece = pieces.next()?;
            if !first {
                tokio::time::sleep(pause).await;
            }
            Some((Ok::<_, std::io::Error>(piece), (pieces, false)))
        },
    );
    Body::from_stream(stream)
}
