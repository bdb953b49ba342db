//! The spec's error taxonomy (§6) for the client, each error with a retry hint.
//!
//! Callers decide with [`Error::retry_hint`]: transient errors (timeouts, resets, 429, 5xx, a
//! CDN 404 for audio not written yet) may succeed later, after `retry_after` when the upstream
//! said so; permanent ones (bad credentials, unparseable answers, other 4xx) will not. Bodies
//! quoted in errors are short, sanitized snippets that never carry a cookie or a password.

use std::fmt;
use std::time::Duration;

/// Which upstream endpoint an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /login/`
    Login,
    /// `GET /account/?action=logout`
    Logout,
    /// `POST /calls/apis/live-calls`
    LiveCalls,
    /// `GET /calls/apis/archivecall.php`
    Archive,
    /// The audio CDN.
    Audio,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Endpoint::Login => "login",
            Endpoint::Logout => "logout",
            Endpoint::LiveCalls => "live-calls",
            Endpoint::Archive => "archivecall.php",
            Endpoint::Audio => "audio CDN",
        })
    }
}

/// What a caller may do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryHint {
    /// True when the same request may succeed later.
    pub transient: bool,
    /// How long the upstream asked us to wait (`Retry-After`), if it did.
    pub retry_after: Option<Duration>,
}

/// Login failures (`AuthenticationError` in the spec).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticationError {
    /// The site redirected back to the login page with `failed=1`.
    #[error("Broadcastify rejected the username or password")]
    InvalidCredentials,
    /// The login answered without a `bcfyuser1` cookie (and without `failed=1`).
    #[error("the login answer carried no bcfyuser1 session cookie")]
    MissingCookie,
    /// No credentials are configured, but the request needs a session.
    #[error("no Broadcastify credentials are configured")]
    NoCredentials,
}

/// Audio download failures (`AudioDownloadError` in the spec).
#[derive(Debug, thiserror::Error)]
pub enum AudioDownloadError {
    /// The call has no `systemId` or `filename`, so no URL can be built.
    #[error("the call lacks {missing}, so its audio URL cannot be built")]
    NoUrl {
        /// The missing field.
        missing: &'static str,
    },
    /// The CDN answered 404: usually the file is not written yet (transient for a while).
    #[error("the CDN has no file at {url} (yet)")]
    NotFound {
        /// The URL.
        url: String,
    },
    /// The body ended early and resuming did not complete it.
    #[error("the audio body from {url} ended after {received} of {expected} bytes")]
    Truncated {
        /// The URL.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// The file is larger than the configured limit.
    #[error("the audio at {url} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// A `206` answer whose `Content-Range` does not continue where we stopped.
    #[error("the CDN answered a resume from byte {asked} with Content-Range `{content_range}`")]
    BadRange {
        /// The offset we asked for.
        asked: u64,
        /// What the CDN sent.
        content_range: String,
    },
}

/// Every client error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Login failed.
    #[error(transparent)]
    Authentication(#[from] AuthenticationError),
    /// The request did not complete (connect, TLS, timeout, reset).
    #[error("{endpoint} request failed")]
    Transport {
        /// The endpoint.
        endpoint: Endpoint,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// An answer read as it arrives stopped coming: nothing for `after` (the request timeout).
    #[error("{endpoint} answer stalled: nothing came for {after:?}")]
    Stalled {
        /// The endpoint.
        endpoint: Endpoint,
        /// How long nothing came.
        after: Duration,
    },
    /// The upstream answered with an error status.
    #[error("{endpoint} answered HTTP {status}: {snippet}")]
    Status {
        /// The endpoint.
        endpoint: Endpoint,
        /// The status code.
        status: u16,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// The start of the body, sanitized.
        snippet: String,
    },
    /// The session was refused (HTTP 403): expired or invalid (`LiveSessionError` in the spec).
    #[error("{endpoint} refused the session (HTTP 403)")]
    SessionRejected {
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// The answer could not be parsed (`ResponseParsingError` in the spec).
    #[error("{endpoint} answer could not be parsed: {snippet}")]
    ResponseParsing {
        /// The endpoint.
        endpoint: Endpoint,
        /// What was wrong.
        #[source]
        reason: ParseError,
        /// The start of the body, sanitized.
        snippet: String,
    },
    /// Audio could not be downloaded.
    #[error(transparent)]
    AudioDownload(#[from] AudioDownloadError),
    /// A shared session source (e.g. a KV store) could not be read or written.
    #[error("the shared session store failed")]
    SessionStore(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What was wrong with an answer's body.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not the JSON the endpoint answers with.
    #[error("not the expected JSON")]
    Json(#[source] serde_json::Error),
    /// No `calls` array in the answer.
    #[error("no `calls` array")]
    NoCalls,
    /// A comma before the closing `]` of `calls`.
    #[error("a trailing comma in `calls`")]
    TrailingComma,
    /// Two commas in a row in `calls`.
    #[error("a missing element in `calls`")]
    MissingElement,
    /// Two elements of `calls` without a comma between them.
    #[error("a missing comma in `calls`")]
    MissingComma,
    /// The body ended inside `calls`.
    #[error("the body ends inside `calls`")]
    UnterminatedCalls,
    /// 304 Not Modified to a request that was not conditional.
    #[error("304 Not Modified to an unconditional request")]
    UnexpectedNotModified,
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether and when to retry.
    pub fn retry_hint(&self) -> RetryHint {
        let (transient, retry_after) = match self {
            Error::Authentication(_) => (false, None),
            Error::Transport { .. } | Error::Stalled { .. } => (true, None),
            Error::Status {
                status,
                retry_after,
                ..
            } => (
                *status == 429 || *status == 408 || *status >= 500,
                *retry_after,
            ),
            // A fresh login may fix it; the session manager does that once.
            Error::SessionRejected { .. } => (true, None),
            Error::ResponseParsing { .. } => (false, None),
            Error::SessionStore(_) => (true, None),
            Error::AudioDownload(error) => match error {
                AudioDownloadError::NotFound { .. } | AudioDownloadError::Truncated { .. } => {
                    (true, None)
                }
                AudioDownloadError::NoUrl { .. }
                | AudioDownloadError::TooLarge { .. }
                | AudioDownloadError::BadRange { .. } => (false, None),
            },
        };
        RetryHint {
            transient,
            retry_after,
        }
    }

    /// A short machine-readable class, for metrics and dead letters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Authentication(AuthenticationError::InvalidCredentials) => "invalid_credentials",
            Error::Authentication(AuthenticationError::MissingCookie) => "missing_cookie",
            Error::Authentication(AuthenticationError::NoCredentials) => "no_credentials",
            Error::Transport { .. } => "transport",
            Error::Stalled { .. } => "stalled",
            Error::Status { status: 429, .. } => "rate_limited",
            Error::Status { status, .. } if *status >= 500 => "upstream_unavailable",
            Error::Status { .. } => "http_status",
            Error::SessionRejected { .. } => "session_rejected",
            Error::ResponseParsing { .. } => "response_parsing",
            Error::SessionStore(_) => "session_store",
            Error::AudioDownload(AudioDownloadError::NotFound { .. }) => "cdn_not_found",
            Error::AudioDownload(AudioDownloadError::Truncated { .. }) => "audio_truncated",
            Error::AudioDownload(AudioDownloadError::TooLarge { .. }) => "audio_too_large",
            Error::AudioDownload(AudioDownloadError::NoUrl { .. }) => "audio_no_url",
            Error::AudioDownload(AudioDownloadError::BadRange { .. }) => "audio_bad_range",
        }
    }
}

/// Longest snippet quoted in an error.
const SNIPPET_CHARS: usize = 160;

/// The start of `body` made safe to log: whitespace collapsed, control characters dropped,
/// session cookies and password fields masked, at most 160 characters.
pub fn sanitize_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let collapsed: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let masked = mask_after(&mask_after(&collapsed, "bcfyuser1="), "password=");
    let mut snippet: String = masked.chars().take(SNIPPET_CHARS).collect();
    if masked.chars().count() > SNIPPET_CHARS {
        snippet.push('…');
    }
    snippet
}

/// Replaces the value following each `marker` (up to `;`, `&`, `"`, or a space) with `***`.
fn mask_after(text: &str, marker: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let (before, after) = rest.split_at(at + marker.len());
        out.push_str(before);
        out.push_str("***");
        let end = after.find([';', '&', '"', ' ']).unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_short_and_never_carry_secrets() {
        let body = b"  <html>\n\n error\tSet-Cookie: bcfyuser1=MTIzOmFsaWNlOnNlY3JldA%3D%3D; path=/ username=a&password=hunter2&x=1";
        let snippet = sanitize_snippet(body);
        assert!(!snippet.contains("MTIz"), "{snippet}");
        assert!(!snippet.contains("hunter2"), "{snippet}");
        assert!(
            snippet.starts_with("<html> error Set-Cookie: bcfyuser1=***; path=/"),
            "{snippet}"
        );
        let long = "x".repeat(1000);
        assert_eq!(
            sanitize_snippet(long.as_bytes()).chars().count(),
            SNIPPET_CHARS + 1
        );
        assert_eq!(sanitize_snippet(&[0xff, 0xfe, b'o', b'k']), "��ok");
    }

    #[test]
    fn retry_hints_follow_the_status() {
        let status = |status, retry_after| Error::Status {
            endpoint: Endpoint::LiveCalls,
            status,
            retry_after,
            snippet: String::new(),
        };
        let wait = Some(Duration::from_secs(30));
        assert_eq!(
            status(429, wait).retry_hint(),
            RetryHint {
                transient: true,
                retry_after: wait
            }
        );
        assert!(status(503, None).retry_hint().transient);
        assert!(!status(404, None).retry_hint().transient);
        assert!(
            !Error::from(AuthenticationError::InvalidCredentials)
                .retry_hint()
                .transient
        );
        assert_eq!(status(429, None).kind(), "rate_limited");
    }
}
