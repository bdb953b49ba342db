//! Shard leases for hot standby: the replica holding a shard's lease polls it; the others wait.
//!
//! The lease is a KV entry in a bucket whose max age is the lease TTL: the holder renews it
//! (compare-and-set on its revision) every third of the TTL; if the holder dies, the entry ages
//! out and a standby's `create` succeeds within one TTL. A failover re-polls from the saved
//! cursor, and `Nats-Msg-Id` dedup drops anything the old holder had already published.

use std::time::Duration;

use async_nats::jetstream::kv;

/// One shard's lease, as seen by this replica.
#[derive(Debug)]
pub struct Lease {
    store: kv::Store,
    key: String,
    instance: String,
    revision: Option<u64>,
}

impl Lease {
    /// The lease of shard `name` for replica `instance`.
    pub fn new(store: kv::Store, name: &str, instance: String) -> Self {
        Self {
            store,
            key: format!("shard-{name}"),
            instance,
            revision: None,
        }
    }

    /// Renews the lease, or tries to acquire it; true while this replica holds it.
    pub async fn hold(&mut self) -> bool {
        let value = || self.instance.clone().into_bytes().into();
        if let Some(revision) = self.revision {
            match self.store.update(&self.key, value(), revision).await {
                Ok(next) => {
                    self.revision = Some(next);
                    return true;
                }
                Err(error) => {
                    tracing::warn!(error = %error, lease = %self.key, "Lost the shard lease.");
                    self.revision = None;
                }
            }
        }
        match self.store.create(&self.key, value()).await {
            Ok(revision) => {
                tracing::info!(lease = %self.key, instance = %self.instance, "Acquired the shard lease.");
                self.revision = Some(revision);
                true
            }
            Err(_) => false,
        }
    }

    /// True when this replica believes it holds the lease.
    pub fn held(&self) -> bool {
        self.revision.is_some()
    }

    /// Gives the lease up (on shutdown), so a standby takes over at once.
    pub async fn release(&mut self) {
        if let Some(revision) = self.revision.take()
            && let Err(error) = self
                .store
                .delete_expect_revision(&self.key, Some(revision))
                .await
        {
            tracing::warn!(error = %error, lease = %self.key, "Could not release the shard lease.");
        }
    }

    /// How often to renew for a lease TTL of `ttl`.
    pub fn renew_every(ttl: Duration) -> Duration {
        (ttl / 3).max(Duration::from_millis(100))
    }
}
