//! `GET /v1/events` (Server-Sent Events) and `GET /v1/ws` (WebSocket): one [`Feed`] per
//! client, framed for its transport.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use prometheus::IntGauge;
use tokio::sync::mpsc;

use crate::api::Api;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::feed::{Closing, Feed, Frame};
use crate::filter::EventsQuery;

/// How long a client is told to wait before reconnecting after the gateway ended its stream.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Counts one open connection while it lives.
struct Connected(IntGauge);

impl Connected {
    fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The request's filter and start (`Last-Event-ID` included).
fn parse(headers: &HeaderMap, query: Option<&str>) -> Result<EventsQuery, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("invalid"));
    EventsQuery::parse(query, last_event_id)
}

fn open(api: &Arc<Api>, principal: Arc<Principal>, query: EventsQuery) -> mpsc::Receiver<Frame> {
    let feed = Feed {
        hub: api.hub.clone(),
        js: api.js.clone(),
        filter: query.filter,
        start: query.start,
        principal,
        metrics: api.metrics.clone(),
    };
    feed.spawn(api.streams_end.clone())
}

/// `GET /v1/events`: `id` is the client's cursor, `event` the kind, `data` the JSON. The
/// stream ends with a `reconnect` event (shutdown) or a `dropped` one (too slow). Each event's
/// frame is made once and written as it is to every client following live.
pub async fn sse(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let frames = open(&api, principal, parse(&headers, query.as_deref())?);
    let connected = Connected::new(api.metrics.connections.with_label_values(&["sse"]));
    let mut heartbeat = tokio::time::interval(api.heartbeat);
    heartbeat.reset();
    let state = Some((frames, heartbeat, connected));
    // The state (and with it the connection count) goes when the client does.
    let body = futures::stream::unfold(state, |state| async move {
        let (mut frames, mut heartbeat, connected) = state?;
        let chunk = tokio::select! {
            frame = frames.recv() => match frame? {
                Frame::Event(rendered) => {
                    heartbeat.reset();
                    rendered.sse
                }
                Frame::Closing(closing) => {
                    let sse = closing_frame(closing);
                    return Some((Ok::<_, Infallible>(sse), None));
                }
            },
            _ = heartbeat.tick() => Bytes::from_static(HEARTBEAT),
        };
        Some((Ok(chunk), Some((frames, heartbeat, connected))))
    });
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        // Proxies that buffer responses (nginx) pass this one through as it comes.
        (HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, Body::from_stream(body)).into_response())
}

/// The SSE comment that keeps an idle stream open.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// The last SSE frame: `dropped` (too slow) or `reconnect`, with the reason as JSON.
fn closing_frame(closing: Closing) -> Bytes {
    let event = match closing {
        Closing::Lagged => "dropped",
        Closing::ShuttingDown | Closing::Unavailable => "reconnect",
    };
    let retry = RECONNECT_AFTER.as_millis();
    Bytes::from(format!(
        "event: {event}\nretry: {retry}\ndata: {}\n\n",
        closing.json()
    ))
}

/// `GET /v1/ws`: each event a text frame of its JSON (with `id` and `kind`); pings keep the
/// connection open; the gateway ends it with a last text frame `{"error": ...}` and a close
/// frame (1012 on shutdown, 1008 when the client was too slow, 1013 when the streams cannot be
/// read).
pub async fn websocket(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let query = parse(&headers, query.as_deref())?;
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            format!("{rejection} (use a WebSocket client, or /v1/events for Server-Sent Events)"),
        )
    })?;
    let frames = open(&api, principal, query);
    let connected = Connected::new(api.metrics.connections.with_label_values(&["ws"]));
    let heartbeat = api.heartbeat;
    Ok(upgrade.on_upgrade(move |socket| async move {
        let _connected = connected;
        forward(socket, frames, heartbeat).await;
    }))
}

async fn forward(mut socket: WebSocket, mut frames: mpsc::Receiver<Frame>, heartbeat: Duration) {
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(Frame::Event(rendered)) => {
                    // Compact JSON made from valid strings is valid UTF-8.
                    let Ok(text) = Utf8Bytes::try_from(rendered.json) else {
                        continue;
                    };
                    if socket.send(Message::Text(text)).await.is_err() {
                        return;
                    }
                }
                Some(Frame::Closing(closing)) => {
                    let code = match closing {
                        Closing::Lagged => 1008,
                        Closing::ShuttingDown => 1012,
                        Closing::Unavailable => 1013,
                    };
                    // The client may be gone already; either way the connection ends.
                    socket.send(Message::Text(closing.json().into())).await.ok();
                    let close = CloseFrame { code, reason: closing.code().into() };
                    socket.send(Message::Close(Some(close))).await.ok();
                    return;
                }
                None => return,
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            received = socket.recv() => match received {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
