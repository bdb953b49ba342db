//! What the providers that are servers share: one HTTP client per provider with the request
//! timeout, and an answer's status and body mapped into [`TranscriptionError`] the same way for
//! each (transport failures and 408/429/5xx transient, with `Retry-After`; other statuses and
//! unreadable bodies permanent for the call).

use bcfy_broadcastify::error::sanitize_snippet;
use bytes::Bytes;

use crate::config::TranscriptionConfig;
use crate::error::TranscriptionError;

/// The HTTP client of a provider as configured.
///
/// # Errors
///
/// When it cannot be built (TLS setup).
pub(crate) fn client(config: &TranscriptionConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .user_agent(concat!("bcfy-transcriber/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `request` and returns the body of a 2xx answer.
///
/// # Errors
///
/// [`TranscriptionError::Transport`] when no answer came, [`TranscriptionError::Status`] for
/// any other status (with its `Retry-After` and the start of the body).
pub(crate) async fn answer(request: reqwest::RequestBuilder) -> Result<Bytes, TranscriptionError> {
    let transport = |e: reqwest::Error| TranscriptionError::Transport {
        reason: e.without_url().to_string(),
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let retry_after = bcfy_broadcastify::retry_after::from_headers(response.headers());
    let body = response.bytes().await.map_err(transport)?;
    if !status.is_success() {
        return Err(TranscriptionError::Status {
            status: status.as_u16(),
            retry_after,
            snippet: sanitize_snippet(&body),
        });
    }
    Ok(body)
}

/// `body` as the answer type `T`.
///
/// # Errors
///
/// [`TranscriptionError::BadResponse`] with the start of the body.
pub(crate) fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, TranscriptionError> {
    serde_json::from_slice(body).map_err(|e| TranscriptionError::BadResponse {
        reason: format!("{e}: {}", sanitize_snippet(body)),
    })
}
