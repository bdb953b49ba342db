//! One builder for what the poller and the archive cache both need to speak to Broadcastify as
//! one fleet: the client on the account's shared session, and the shared request budget.

use std::sync::Arc;

use async_nats::jetstream::{self, kv};
use bcfy_broadcastify::{Client, ClientConfig, LocalSession, SessionSource};
use bcfy_bus::topology::{KV_UPSTREAM_BUDGET, KV_UPSTREAM_SESSION};
use secrecy::ExposeSecret as _;

use crate::{KvSession, UpstreamGate};

/// Why the fleet's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A shared bucket could not be opened.
    #[error("cannot open KV bucket `{bucket}`")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// Why.
        #[source]
        source: jetstream::context::KeyValueError,
    },
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] bcfy_broadcastify::client::BuildError),
}

/// A Broadcastify client on the fleet's session, and the fleet's request budget.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// The client; with credentials configured it logs in once for every replica.
    pub client: Client,
    /// The request budget and `Retry-After` back-off every replica honours.
    pub gate: UpstreamGate,
    /// This replica's name in session claims.
    pub instance: String,
}

impl Fleet {
    /// Builds the client and the gate for replica `instance` (see [`instance_id`]), spending
    /// at most `rate_limit_per_minute` requests a minute across the fleet (`None`: no budget).
    ///
    /// # Errors
    ///
    /// When a bucket cannot be opened or the client cannot be built.
    pub async fn join(
        js: &jetstream::Context,
        config: &ClientConfig,
        instance: String,
        rate_limit_per_minute: Option<u32>,
    ) -> Result<Self, FleetError> {
        let session: Arc<dyn SessionSource> = match (&config.username, &config.password) {
            (Some(username), Some(password)) => Arc::new(KvSession::new(
                bucket(js, KV_UPSTREAM_SESSION).await?,
                username,
                password.expose_secret(),
                instance.clone(),
            )),
            _ => Arc::new(LocalSession::default()),
        };
        let client = Client::with_session_source(config.clone(), session)?;
        let gate = UpstreamGate::new(bucket(js, KV_UPSTREAM_BUDGET).await?, rate_limit_per_minute);
        Ok(Self {
            client,
            gate,
            instance,
        })
    }
}

async fn bucket(js: &jetstream::Context, bucket: &'static str) -> Result<kv::Store, FleetError> {
    js.get_key_value(bucket)
        .await
        .map_err(|source| FleetError::Bucket { bucket, source })
}

/// `configured`, or this replica's default name: `HOSTNAME` (the pod's name on Kubernetes, else
/// `service`) and the process id.
pub fn instance_id(configured: Option<&str>, service: &str) -> String {
    configured.map_or_else(
        || {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| service.to_owned());
            format!("{host}-{}", std::process::id())
        },
        str::to_owned,
    )
}
