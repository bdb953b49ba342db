//! Courtesy to the upstream, shared by every shard of every replica through NATS KV:
//!
//! - a request budget (`rate_limit_per_minute`): a counter per calendar minute, incremented with
//!   compare-and-set; when a minute's budget is spent, everyone waits for the next minute
//!   (a fixed window: bursts at a boundary stay under twice the limit);
//! - a back-off deadline: a 429 or 503 with `Retry-After` pauses every replica until then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv;

/// KV key of the back-off deadline (epoch milliseconds).
const BACKOFF_KEY: &str = "backoff-until";

/// Why the shared state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the upstream budget store failed")]
pub struct GateError(#[source] Box<dyn std::error::Error + Send + Sync>);

fn gate_error(error: impl std::error::Error + Send + Sync + 'static) -> GateError {
    GateError(Box::new(error))
}

/// The shared budget and back-off.
#[derive(Debug, Clone)]
pub struct UpstreamGate {
    store: kv::Store,
    per_minute: Option<u32>,
}

fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl UpstreamGate {
    /// A gate over `store` with an optional per-minute budget.
    pub fn new(store: kv::Store, per_minute: Option<u32>) -> Self {
        Self { store, per_minute }
    }

    /// How long the fleet must still wait because of a `Retry-After`, if at all.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub async fn backoff_remaining(&self) -> Result<Option<Duration>, GateError> {
        let Some(value) = self.store.get(BACKOFF_KEY).await.map_err(gate_error)? else {
            return Ok(None);
        };
        let until: u64 = std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let now = epoch_ms(SystemTime::now());
        Ok((until > now).then(|| Duration::from_millis(until - now)))
    }

    /// Pauses the fleet until `now + delay` (unless a later deadline is already set).
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub async fn back_off(&self, delay: Duration) -> Result<(), GateError> {
        let until = epoch_ms(SystemTime::now() + delay);
        loop {
            let entry = self.store.entry(BACKOFF_KEY).await.map_err(gate_error)?;
            let current: u64 = entry
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .and_then(|e| std::str::from_utf8(&e.value).ok()?.parse().ok())
                .unwrap_or(0);
            if current >= until {
                return Ok(());
            }
            let value = until.to_string().into_bytes().into();
            let written = match &entry {
                Some(entry) => self
                    .store
                    .update(BACKOFF_KEY, value, entry.revision)
                    .await
                    .is_ok(),
                None => self.store.create(BACKOFF_KEY, value).await.is_ok(),
            };
            if written {
                return Ok(());
            }
        }
    }

    /// Takes one request from the shared budget. When this minute's budget is spent, takes
    /// nothing and returns how long until the next minute.
    ///
    /// # Errors
    ///
    /// When the store cannot be read or written.
    pub async fn try_take(&self) -> Result<Option<Duration>, GateError> {
        let Some(limit) = self.per_minute else {
            return Ok(None);
        };
        loop {
            let now = epoch_ms(SystemTime::now());
            let minute = now / 60_000;
            let key = format!("minute-{minute}");
            let entry = self.store.entry(&key).await.map_err(gate_error)?;
            let used: u32 = entry
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .and_then(|e| std::str::from_utf8(&e.value).ok()?.parse().ok())
                .unwrap_or(0);
            if used >= limit {
                return Ok(Some(Duration::from_millis((minute + 1) * 60_000 - now)));
            }
            let value = (used + 1).to_string().into_bytes().into();
            let taken = match &entry {
                Some(entry) => self.store.update(&key, value, entry.revision).await.is_ok(),
                None => self.store.create(&key, value).await.is_ok(),
            };
            if taken {
                return Ok(None);
            }
        }
    }
}
