//! Per-shard poll cursors in NATS KV, written only after every call of a poll is stored.

use async_nats::jetstream::kv;

/// Why a cursor could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the cursor store failed for shard {shard}")]
pub struct CursorError {
    shard: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

/// The cursor bucket.
#[derive(Debug, Clone)]
pub struct Cursors {
    store: kv::Store,
}

impl Cursors {
    /// Cursors in `store`.
    pub fn new(store: kv::Store) -> Self {
        Self { store }
    }

    fn key(shard: &str) -> String {
        format!("shard-{shard}")
    }

    /// The saved cursor of `shard` (epoch seconds), if any.
    ///
    /// # Errors
    ///
    /// When the store cannot be read.
    pub async fn load(&self, shard: &str) -> Result<Option<f64>, CursorError> {
        let value = self
            .store
            .get(Self::key(shard))
            .await
            .map_err(|e| CursorError {
                shard: shard.to_owned(),
                source: Box::new(e),
            })?;
        Ok(value.and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok()))
    }

    /// Saves the cursor of `shard`.
    ///
    /// # Errors
    ///
    /// When the store cannot be written.
    pub async fn save(&self, shard: &str, position: f64) -> Result<(), CursorError> {
        self.store
            .put(Self::key(shard), position.to_string().into_bytes().into())
            .await
            .map(|_| ())
            .map_err(|e| CursorError {
                shard: shard.to_owned(),
                source: Box::new(e),
            })
    }
}
