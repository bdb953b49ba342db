//! Where a client's session comes from. The default, [`LocalSession`], keeps one session per
//! client and refreshes it single-flight: however many requests see a 403 at once, only one
//! logs in again and the others use its token. A deployment with several replicas plugs in a
//! shared source (the poller keeps the session in NATS KV) so the whole fleet logs in once.

use std::fmt::Debug;

use futures::future::BoxFuture;
use tokio::sync::Mutex;

use crate::auth::SessionToken;
use crate::client::Client;
use crate::error::Result;

/// A source of sessions for a [`Client`].
pub trait SessionSource: Send + Sync + Debug {
    /// The session to use now, logging in (with [`Client::authenticate`]) when there is none.
    fn current<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<SessionToken>>;

    /// A replacement for `rejected` (which got a 403): logs in again only if nobody has
    /// replaced it yet.
    fn renew<'a>(
        &'a self,
        client: &'a Client,
        rejected: &'a SessionToken,
    ) -> BoxFuture<'a, Result<SessionToken>>;
}

/// One session per client, behind a lock held while logging in (single-flight).
#[derive(Debug, Default)]
pub struct LocalSession {
    current: Mutex<Option<SessionToken>>,
}

impl SessionSource for LocalSession {
    fn current<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<SessionToken>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if let Some(token) = current.as_ref() {
                return Ok(token.clone());
            }
            let token = client.authenticate().await?;
            *current = Some(token.clone());
            Ok(token)
        })
    }

    fn renew<'a>(
        &'a self,
        client: &'a Client,
        rejected: &'a SessionToken,
    ) -> BoxFuture<'a, Result<SessionToken>> {
        Box::pin(async move {
            let mut current = self.current.lock().await;
            if let Some(token) = current.as_ref().filter(|token| *token != rejected) {
                return Ok(token.clone());
            }
            *current = None;
            let token = client.authenticate().await?;
            *current = Some(token.clone());
            Ok(token)
        })
    }
}
