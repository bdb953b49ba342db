//! The shared HTTP client: one connection pool, browser headers on every request, a global
//! concurrency limit, per-request timeouts, and the session handling every protected request
//! goes through.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};
use secrecy::ExposeSecret as _;
use tokio::sync::Semaphore;

use crate::auth::{self, SessionToken};
use crate::config::{BROWSER_ACCEPT, ClientConfig};
use crate::error::{AuthenticationError, Endpoint, Error, Result, sanitize_snippet};
use crate::retry_after;
use crate::session::{LocalSession, SessionSource};

/// The Broadcastify client. Cheap to clone; clones share the pool, the limit and the session.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    limit: Arc<Semaphore>,
    session: Arc<dyn SessionSource>,
    /// The page's per-tab key (`sessionKey`): 8 hex digits, `-`, 4 hex digits starting 8-b.
    session_key: String,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct BuildError(#[source] reqwest::Error);

impl Client {
    /// A client for `config` with its own session ([`LocalSession`]).
    ///
    /// # Errors
    ///
    /// When TLS cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Self, BuildError> {
        Self::with_session_source(config, Arc::new(LocalSession::default()))
    }

    /// A client whose session comes from `session` (e.g. one shared by a fleet of replicas).
    ///
    /// # Errors
    ///
    /// When TLS cannot be set up.
    pub fn with_session_source(
        config: ClientConfig,
        session: Arc<dyn SessionSource>,
    ) -> Result<Self, BuildError> {
        let mut headers = HeaderMap::new();
        let value = |v: &str| HeaderValue::from_str(v);
        headers.insert(header::ACCEPT, HeaderValue::from_static(BROWSER_ACCEPT));
        if let Ok(language) = value(&config.accept_language) {
            headers.insert(header::ACCEPT_LANGUAGE, language);
        }
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        let http = reqwest::Client::builder()
            .user_agent(&config.user_agent)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_keepalive(Duration::from_secs(30))
            .gzip(true)
            .brotli(true)
            .deflate(true)
            .build()
            .map_err(BuildError)?;
        let mut rng = rand::rng();
        let session_key = format!(
            "{:08x}-{:x}{:03x}",
            rng.random::<u32>(),
            rng.random_range(8..12u8),
            rng.random_range(0..0x1000u16)
        );
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                limit: Arc::new(Semaphore::new(config.max_concurrency.max(1))),
                config,
                session,
                session_key,
            }),
        })
    }

    /// The settings in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The `sessionKey` this client sends with live-call polls.
    pub fn session_key(&self) -> &str {
        &self.inner.session_key
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// `base_url` joined with `path`.
    pub(crate) fn site_url(&self, path: &str) -> String {
        format!(
            "{}{}",
            self.inner.config.base_url.as_str().trim_end_matches('/'),
            path
        )
    }

    /// The XHR headers the site's own page sends (protocol §2.6), with `Referer` set to `page`.
    pub(crate) fn xhr(&self, request: RequestBuilder, page: &str) -> RequestBuilder {
        let origin = self.inner.config.base_url.origin().ascii_serialization();
        request
            .header("X-Requested-With", "XMLHttpRequest")
            .header(header::ORIGIN, origin)
            .header(header::REFERER, self.site_url(page))
            .header(
                header::ACCEPT,
                "application/json, text/javascript, */*; q=0.01",
            )
    }

    /// Sends under the concurrency limit; the permit is held until the body is read.
    pub(crate) async fn send(&self, endpoint: Endpoint, request: RequestBuilder) -> Result<Answer> {
        let permit = self.permit().await;
        let response = request
            .send()
            .await
            .map_err(|source| Error::Transport { endpoint, source })?;
        Ok(Answer {
            response,
            stall_limit: None,
            _permit: permit,
        })
    }

    /// As [`send`](Self::send), for an answer read as it arrives whose length follows the
    /// upstream's traffic: it may take up to `limit` in all, and fails with [`Error::Stalled`]
    /// only when its headers, or its next bytes, take `request_timeout`. (Timed here, not with
    /// reqwest's `read_timeout`: that one, client-wide, raised the poller's p99 to `calls.live`
    /// from 1.1 s to 2.1–2.8 s in the 1,000 calls/s load run.)
    pub(crate) async fn send_streamed(
        &self,
        endpoint: Endpoint,
        request: RequestBuilder,
        limit: Duration,
    ) -> Result<Answer> {
        let stall_limit = self.inner.config.request_timeout;
        let permit = self.permit().await;
        let response = tokio::time::timeout(stall_limit, request.timeout(limit).send())
            .await
            .map_err(|_| Error::Stalled {
                endpoint,
                after: stall_limit,
            })?
            .map_err(|source| Error::Transport { endpoint, source })?;
        Ok(Answer {
            response,
            stall_limit: Some(stall_limit),
            _permit: permit,
        })
    }

    async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.inner.limit)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Logs in with the configured credentials (`POST /login/`) and returns the new session.
    /// Requests use the session from the client's [`SessionSource`], which calls this when it
    /// needs a session; call it directly only to check credentials.
    ///
    /// # Errors
    ///
    /// [`AuthenticationError`] for bad or missing credentials or no cookie, or a transport or
    /// status error.
    pub async fn authenticate(&self) -> Result<SessionToken> {
        let config = &self.inner.config;
        let (Some(username), Some(password)) = (&config.username, &config.password) else {
            return Err(AuthenticationError::NoCredentials.into());
        };
        let redirect = config.base_url.as_str().trim_end_matches('/').to_owned();
        let form = [
            ("username", username.as_str()),
            ("password", password.expose_secret()),
            ("action", "auth"),
            ("redirect", redirect.as_str()),
        ];
        let request = self.http().post(self.site_url("/login/")).form(&form);
        let answer = self.send(Endpoint::Login, request).await?;
        let status = answer.response.status();
        if status.as_u16() >= 400 {
            return Err(answer.into_status_error(Endpoint::Login).await);
        }
        let token = auth::read_login_answer(status, answer.response.headers(), SystemTime::now())?;
        tracing::info!("Logged in to Broadcastify.");
        Ok(token)
    }

    /// Ends `session` on the site (`GET /account/?action=logout`).
    ///
    /// # Errors
    ///
    /// A transport error, or a status of 400 or more.
    pub async fn logout(&self, session: &SessionToken) -> Result<()> {
        let request = self
            .http()
            .get(self.site_url("/account/"))
            .query(&[("action", "logout")])
            .header(header::COOKIE, session.cookie_header());
        let answer = self.send(Endpoint::Logout, request).await?;
        if answer.response.status().as_u16() >= 400 {
            return Err(answer.into_status_error(Endpoint::Logout).await);
        }
        Ok(())
    }

    /// The current session from the client's [`SessionSource`], logging in when there is none.
    ///
    /// # Errors
    ///
    /// As [`authenticate`](Self::authenticate).
    pub async fn ensure_session(&self) -> Result<SessionToken> {
        self.inner.session.current(self).await
    }

    /// Runs a protected request with the session; on a 403 logs in again once (single-flight
    /// across concurrent callers) and retries once.
    pub(crate) async fn with_session<T, F, Fut>(&self, mut request: F) -> Result<T>
    where
        F: FnMut(SessionToken) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let token = self.ensure_session().await?;
        match request(token.clone()).await {
            Err(Error::SessionRejected { endpoint }) => {
                tracing::info!(endpoint = %endpoint, "Session rejected; logging in again.");
                let renewed = self.inner.session.renew(self, &token).await?;
                request(renewed).await
            }
            other => other,
        }
    }
}

/// A response with its concurrency permit.
pub(crate) struct Answer {
    pub(crate) response: Response,
    /// For a streamed answer, the longest wait for its next bytes.
    stall_limit: Option<Duration>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Answer {
    /// The body (under the permit).
    pub(crate) async fn bytes(self, endpoint: Endpoint) -> Result<bytes::Bytes> {
        self.response
            .bytes()
            .await
            .map_err(|source| Error::Transport { endpoint, source })
    }

    /// The next piece of the body as it arrives; `None` at its end (under the permit).
    pub(crate) async fn chunk(&mut self, endpoint: Endpoint) -> Result<Option<bytes::Bytes>> {
        let next = self.response.chunk();
        let piece = match self.stall_limit {
            Some(limit) => tokio::time::timeout(limit, next)
                .await
                .map_err(|_| Error::Stalled {
                    endpoint,
                    after: limit,
                })?,
            None => next.await,
        };
        piece.map_err(|source| Error::Transport { endpoint, source })
    }

    /// The error for a non-success answer: 403 is a rejected session, others a status error
    /// with `Retry-After` and a sanitized snippet.
    pub(crate) async fn into_status_error(self, endpoint: Endpoint) -> Error {
        let status = self.response.status();
        if status == StatusCode::FORBIDDEN
            && matches!(endpoint, Endpoint::LiveCalls | Endpoint::Archive)
        {
            return Error::SessionRejected { endpoint };
        }
        let retry_after = retry_after::from_headers(self.response.headers());
        let body = self.response.bytes().await.unwrap_or_default();
        Error::Status {
            endpoint,
            status: status.as_u16(),
            retry_after,
            snippet: sanitize_snippet(&body),
        }
    }
}
