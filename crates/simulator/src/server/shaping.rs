//! Fault shaping: what an injected fault does to an answer (a delay, an error status with
//! `Retry-After`, a reset, a body cut short or trickled).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::faults::{Fault, RetryAfter};

/// What a fault does before the handler runs: an answer in its place, or nothing.
pub(super) async fn apply(fault: Option<&Fault>) -> Option<Response> {
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
pub(super) fn status_response(status: u16, retry_after: Option<RetryAfter>) -> Response {
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
pub(super) fn reset() -> Response {
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

/// Sends `after_bytes` of `body`, then drops the connection (the announced length is never
/// reached). The pause lets the head and the first bytes reach the client first, as on a real
/// connection that dies mid-body.
pub(super) fn cut_body(body: Bytes, after_bytes: usize) -> Body {
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
pub(super) fn slow_body(body: Bytes, chunk: usize, pause: Duration) -> Body {
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
