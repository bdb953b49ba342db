//! `GET /v1/events` (Server-Sent Events) and `GET /v1/ws` (WebSocket): one [`Feed`] per
//! client, framed for its transport.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use prometheus::IntGauge;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

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
/// stream ends with a `reconnect` event (shutdown) or a `dropped` one (too slow).
pub async fn sse(
    State(api): State<Arc<Api>>,
    Extension(principal): Extension<Arc<Principal>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let frames = open(&api, principal, parse(&headers, query.as_deref())?);
    let connected = Connected::new(api.metrics.connections.with_label_values(&["sse"]));
    let events = ReceiverStream::new(frames).map(move |frame| {
        // The stream owns the gauge's guard: the count drops when the client goes.
        let _connected = &connected;
        Ok::<_, Infallible>(match frame {
            Frame::Event { id, kind, json } => SseEvent::default()
                .id(id.to_string())
                .event(kind.as_str())
                .data(json),
            Frame::Closing(closing) => SseEvent::default()
                .event(match closing {
                    Closing::Lagged => "dropped",
                    Closing::ShuttingDown | Closing::Unavailable => "reconnect",
                })
                .retry(RECONNECT_AFTER)
                .data(closing.json()),
        })
    });
    let keep_alive = KeepAlive::new().interval(api.heartbeat).text("heartbeat");
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
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
                Some(Frame::Event { json, .. }) => {
                    if socket.send(Message::Text(json.into())).await.is_err() {
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
