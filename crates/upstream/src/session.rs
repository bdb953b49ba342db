//! One Broadcastify session per account for the whole fleet, kept in NATS KV.
//!
//! The entry for an account is a small JSON state: `valid` (the cookie), `renewing` (a replica
//! has claimed the login), or `failed` (the credentials were refused). Claims use
//! compare-and-set on the entry's revision, so when every replica sees a 403 at once exactly one
//! logs in; the others wait for its result. A refused password is recorded with a fingerprint
//! of the credentials, so no replica retries it (no login storm) until the credentials change.
//!
//! NOTE(security): the cookie is stored in the `upstream-session` bucket in clear; restrict that
//! bucket to the poller's NATS account.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;
use bcfy_broadcastify::error::{AuthenticationError, Error as ClientError, Result as ClientResult};
use bcfy_broadcastify::{Client, SessionSource, SessionToken};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A claim older than this is taken over (its replica died mid-login).
const STALE_CLAIM: Duration = Duration::from_secs(30);
/// How often a waiting replica looks at the entry again.
const WAIT_STEP: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Stored {
    Valid {
        token: String,
        issued_at_ms: u64,
    },
    Renewing {
        by: String,
        since_ms: u64,
    },
    Failed {
        kind: String,
        credentials: String,
        at_ms: u64,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The KV-backed session source.
#[derive(Debug)]
pub struct KvSession {
    store: kv::Store,
    key: String,
    instance: String,
    /// Fingerprint of the configured credentials (not the credentials themselves).
    credentials: String,
    /// The last token read, to avoid a KV read per request.
    cached: Mutex<Option<SessionToken>>,
}

/// What one look at the entry decided.
enum Step {
    Use(SessionToken),
    Fail(AuthenticationError),
    Wait,
    /// We hold the claim at this revision: log in.
    LogIn(u64),
}

impl KvSession {
    /// A source for `username`'s session in `store`, claimed under `instance`.
    pub fn new(store: kv::Store, username: &str, password: &str, instance: String) -> Self {
        let digest = |text: &str| -> String {
            Sha256::digest(text.as_bytes())
                .iter()
                .take(12)
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        Self {
            store,
            key: format!("account-{}", digest(username)),
            instance,
            credentials: digest(&format!("{username}\0{password}")),
            cached: Mutex::new(None),
        }
    }

    fn cache(&self, token: Option<SessionToken>) {
        *self.cached.lock().expect("not poisoned") = token;
    }

    /// Reads the entry and decides; `rejected` is a token known to be dead.
    async fn step(&self, rejected: Option<&SessionToken>) -> ClientResult<Step> {
        let entry = self.store.entry(&self.key).await.map_err(store_error)?;
        let claim = serde_json::to_vec(&Stored::Renewing {
            by: self.instance.clone(),
            since_ms: now_ms(),
        })
        .expect("serializable");
        let stored = entry
            .as_ref()
            .filter(|e| e.operation == kv::Operation::Put)
            .and_then(|e| serde_json::from_slice::<Stored>(&e.value).ok());
        let claimable = match (&stored, &entry) {
            (None, None) => None,
            (None, Some(entry)) => Some(entry.revision),
            (
                Some(Stored::Valid {
                    token,
                    issued_at_ms,
                }),
                Some(entry),
            ) => {
                if rejected.is_some_and(|r| r.expose() == token) {
                    Some(entry.revision)
                } else {
                    let issued = UNIX_EPOCH + Duration::from_millis(*issued_at_ms);
                    return Ok(Step::Use(SessionToken::new(token.clone(), issued)));
                }
            }
            (Some(Stored::Renewing { since_ms, .. }), Some(entry)) => {
                if now_ms().saturating_sub(*since_ms) < STALE_CLAIM.as_millis() as u64 {
                    return Ok(Step::Wait);
                }
                Some(entry.revision)
            }
            (
                Some(Stored::Failed {
                    kind, credentials, ..
                }),
                Some(entry),
            ) => {
                if *credentials == self.credentials {
                    return Ok(Step::Fail(match kind.as_str() {
                        "missing_cookie" => AuthenticationError::MissingCookie,
                        _ => AuthenticationError::InvalidCredentials,
                    }));
                }
                Some(entry.revision)
            }
            (Some(_), None) => unreachable!("a stored state comes from an entry"),
        };
        let claimed = match claimable {
            None => self.store.create(&self.key, claim.into()).await.ok(),
            Some(revision) => self
                .store
                .update(&self.key, claim.into(), revision)
                .await
                .ok(),
        };
        Ok(claimed.map_or(Step::Wait, Step::LogIn))
    }

    /// Logs in under our claim and records the outcome for the fleet.
    async fn log_in(&self, client: &Client, claim: u64) -> ClientResult<SessionToken> {
        let outcome = client.authenticate().await;
        let stored = match &outcome {
            Ok(token) => Some(Stored::Valid {
                token: token.expose().to_owned(),
                issued_at_ms: now_ms(),
            }),
            Err(ClientError::Authentication(error)) => Some(Stored::Failed {
                kind: match error {
                    AuthenticationError::MissingCookie => "missing_cookie",
                    _ => "invalid_credentials",
                }
                .to_owned(),
                credentials: self.credentials.clone(),
                at_ms: now_ms(),
            }),
            // Transient: release the claim so the next attempt (ours or another's) can log in.
            Err(_) => None,
        };
        let recorded = match stored {
            Some(stored) => {
                let value = serde_json::to_vec(&stored).expect("serializable");
                self.store
                    .update(&self.key, value.into(), claim)
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
            None => self
                .store
                .delete_expect_revision(&self.key, Some(claim))
                .await
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(error) = recorded {
            tracing::warn!(error = %error, "Could not record the login outcome for the fleet.");
        }
        outcome
    }

    async fn resolve(
        &self,
        client: &Client,
        rejected: Option<&SessionToken>,
    ) -> ClientResult<SessionToken> {
        loop {
            match self.step(rejected).await? {
                Step::Use(token) => {
                    self.cache(Some(token.clone()));
                    return Ok(token);
                }
                Step::Fail(error) => return Err(error.into()),
                Step::Wait => tokio::time::sleep(WAIT_STEP).await,
                Step::LogIn(claim) => {
                    let outcome = self.log_in(client, claim).await;
                    if let Ok(token) = &outcome {
                        self.cache(Some(token.clone()));
                    }
                    return outcome;
                }
            }
        }
    }
}

impl SessionSource for KvSession {
    fn current<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, ClientResult<SessionToken>> {
        Box::pin(async move {
            let cached = self.cached.lock().expect("not poisoned").clone();
            match cached {
                Some(token) => Ok(token),
                None => self.resolve(client, None).await,
            }
        })
    }

    fn renew<'a>(
        &'a self,
        client: &'a Client,
        rejected: &'a SessionToken,
    ) -> BoxFuture<'a, ClientResult<SessionToken>> {
        Box::pin(async move {
            self.cache(None);
            self.resolve(client, Some(rejected)).await
        })
    }
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> ClientError {
    ClientError::SessionStore(Box::new(error))
}
