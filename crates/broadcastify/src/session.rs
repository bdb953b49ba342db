//! One session per client, refreshed single-flight: however many requests see a 403 at once,
//! only one logs in again; the others wait for it and use the new token.

use std::future::Future;

use tokio::sync::Mutex;

use crate::auth::SessionToken;
use crate::error::Result;

/// The current session, behind a lock that is held while logging in.
#[derive(Debug, Default)]
pub(crate) struct SessionCell {
    current: Mutex<Option<SessionToken>>,
}

impl SessionCell {
    /// The current token, logging in with `login` when there is none.
    pub(crate) async fn get<F, Fut>(&self, login: F) -> Result<SessionToken>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SessionToken>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref() {
            return Ok(token.clone());
        }
        let token = login().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// A replacement for `rejected`: logs in with `login` only if nobody replaced it yet.
    pub(crate) async fn renew<F, Fut>(
        &self,
        rejected: &SessionToken,
        login: F,
    ) -> Result<SessionToken>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SessionToken>>,
    {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|token| *token != rejected) {
            return Ok(token.clone());
        }
        *current = None;
        let token = login().await?;
        *current = Some(token.clone());
        Ok(token)
    }

    /// Replaces the session (e.g. with one shared by another replica).
    pub(crate) async fn set(&self, token: Option<SessionToken>) {
        *self.current.lock().await = token;
    }

    /// The session, if there is one, without logging in.
    pub(crate) async fn peek(&self) -> Option<SessionToken> {
        self.current.lock().await.clone()
    }
}
