//! Login, logout and the session token (spec §3.1, protocol §2).
//!
//! Success is a `302` carrying `Set-Cookie: bcfyuser1=…`; bad credentials are also a `302`,
//! back to the login page with `failed=1` and no cookie. Redirects are never followed, so the
//! first answer is the one read. The token's value never prints.

use std::fmt;
use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use secrecy::{ExposeSecret as _, SecretString};

use crate::error::AuthenticationError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "bcfyuser1";

/// A Broadcastify session (`bcfyuser1` cookie value). `Debug` shows only the times.
#[derive(Clone)]
pub struct SessionToken {
    value: SecretString,
    /// When the login happened.
    pub issued_at: SystemTime,
    /// When the site said it expires, if it did (it usually does not; a 403 tells).
    pub expires_at: Option<SystemTime>,
}

impl SessionToken {
    /// A token from a cookie value (e.g. one shared by another replica).
    pub fn new(value: impl Into<String>, issued_at: SystemTime) -> Self {
        Self {
            value: SecretString::from(value.into()),
            issued_at,
            expires_at: None,
        }
    }

    /// The cookie value, for the `Cookie` header and for sharing with other replicas.
    pub fn expose(&self) -> &str {
        self.value.expose_secret()
    }

    /// The `Cookie` header value.
    pub(crate) fn cookie_header(&self) -> String {
        format!("{SESSION_COOKIE}={}", self.expose())
    }
}

impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken")
            .field("value", &"[REDACTED]")
            .field("issued_at", &self.issued_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Reads a login answer: the session on success, or why it failed.
pub(crate) fn read_login_answer(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<SessionToken, AuthenticationError> {
    let cookie = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| {
            let pair = value.split(';').next()?.trim();
            let cookie_value = pair.strip_prefix(SESSION_COOKIE)?.strip_prefix('=')?;
            (!cookie_value.is_empty() && cookie_value != "deleted").then(|| cookie_value.to_owned())
        });
    let failed = headers
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|location| location.contains("failed=1"));
    match cookie {
        Some(value) if status.as_u16() < 400 && !failed => Ok(SessionToken::new(value, now)),
        _ if failed => Err(AuthenticationError::InvalidCredentials),
        _ => Err(AuthenticationError::MissingCookie),
    }
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn answer(
        status: u16,
        cookies: &[&str],
        location: &str,
    ) -> Result<SessionToken, AuthenticationError> {
        let mut headers = HeaderMap::new();
        for cookie in cookies {
            headers.append(SET_COOKIE, HeaderValue::from_str(cookie).unwrap());
        }
        headers.insert(LOCATION, HeaderValue::from_str(location).unwrap());
        read_login_answer(
            StatusCode::from_u16(status).unwrap(),
            &headers,
            SystemTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let token = answer(
            302,
            &[
                "__cfduid=x; path=/",
                "bcfyuser1=ODEyMzQ6YWxpY2U%3D; Domain=.broadcastify.com; Path=/",
            ],
            "/calls/tg/7001/2345",
        )
        .unwrap();
        assert_eq!(token.expose(), "ODEyMzQ6YWxpY2U%3D");
        assert!(!format!("{token:?}").contains("ODEy"));
    }

    #[test]
    fn failed_one_means_bad_credentials_and_no_cookie_means_missing() {
        assert_eq!(
            answer(302, &[], "https://www.broadcastify.com/login/?failed=1"),
            Err(AuthenticationError::InvalidCredentials)
        );
        assert_eq!(
            answer(302, &[], "/"),
            Err(AuthenticationError::MissingCookie)
        );
        assert_eq!(
            answer(302, &["bcfyuser1=deleted"], "/"),
            Err(AuthenticationError::MissingCookie)
        );
        assert_eq!(
            answer(200, &["other=1"], "/"),
            Err(AuthenticationError::MissingCookie)
        );
    }
}
