//! Answering a NATS micro-service request the way every service API here does (the archive and
//! the directory): the answer's bytes, or the error's gRPC code number and message in the
//! service error headers — so a NATS client reads the same codes a gRPC client gets — and the
//! answer counted by API (`nats`) and status.

use async_nats::service::{self, Request};
use bytes::Bytes;
use prometheus::IntCounterVec;

/// Answers `request` with `reply`, counting it in `answers` (labels: API, status).
pub async fn respond(
    request: Request,
    reply: Result<Bytes, tonic::Status>,
    answers: &IntCounterVec,
) {
    let code = reply
        .as_ref()
        .map_or_else(tonic::Status::code, |_| tonic::Code::Ok);
    answers
        .with_label_values(&["nats", &format!("{code:?}")])
        .inc();
    let reply = reply.map_err(|status| service::error::Error {
        status: status.message().to_owned(),
        code: code as usize,
    });
    if let Err(error) = request.respond(reply).await {
        tracing::warn!(error = %error, subject = %request.message.subject, "Cannot answer a NATS request.");
    }
}
