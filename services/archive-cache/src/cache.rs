//! Where blocks are kept: a small trait ([`BlockCache`]) and its NATS KV implementation.
//!
//! Entries are `CachedArchiveBlock` protobufs keyed `block.{sid}.{tg}.{start}`; each carries
//! its own freshness deadline, and stale entries stay (their validators make the refresh a
//! conditional request) until the bucket's size limit evicts the oldest. A claim
//! (`claim.{sid}.{tg}.{start}`, created only if absent, with a per-key TTL) lets exactly one
//! replica fetch a missing block while the others wait for its entry.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bcfy_proto::CachedArchiveBlock;
use bytes::Bytes;
use prost::Message as _;

/// One talkgroup's 30-minute block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey {
    /// System id.
    pub sid: i64,
    /// Talkgroup id.
    pub tg: i64,
    /// The block's first epoch second (a multiple of 1800).
    pub start: i64,
}

impl BlockKey {
    fn entry_key(&self) -> String {
        format!("block.{}.{}.{}", self.sid, self.tg, self.start)
    }

    fn claim_key(&self) -> String {
        format!("claim.{}.{}.{}", self.sid, self.tg, self.start)
    }
}

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// NATS refused or could not be reached.
    #[error("the archive cache store failed")]
    Store(#[source] async_nats::Error),
    /// An entry in the bucket is not a `CachedArchiveBlock`.
    #[error("an archive cache entry is unreadable")]
    Unreadable(#[source] prost::DecodeError),
}

fn cache_error(error: impl Into<async_nats::Error>) -> CacheError {
    CacheError::Store(error.into())
}

/// A store of blocks shared by every replica.
pub trait BlockCache: Send + Sync + 'static {
    /// The entry for `key`, fresh or stale.
    fn get(
        &self,
        key: BlockKey,
    ) -> impl Future<Output = Result<Option<CachedArchiveBlock>, CacheError>> + Send;

    /// Stores the entry for `key`.
    fn put(
        &self,
        key: BlockKey,
        entry: &CachedArchiveBlock,
    ) -> impl Future<Output = Result<(), CacheError>> + Send;

    /// Claims the right to fetch `key` for `ttl`; false when another replica holds the claim.
    fn claim(
        &self,
        key: BlockKey,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// True while some replica holds the claim for `key`.
    fn claimed(&self, key: BlockKey) -> impl Future<Output = Result<bool, CacheError>> + Send;

    /// Gives the claim back.
    fn release(&self, key: BlockKey) -> impl Future<Output = Result<(), CacheError>> + Send;
}

/// The NATS KV bucket `archive-cache`.
#[derive(Debug, Clone)]
pub struct KvBlockCache {
    store: kv::Store,
}

impl KvBlockCache {
    /// A cache over `store`.
    pub fn new(store: kv::Store) -> Self {
        Self { store }
    }
}

/// Makes the bucket evict its oldest entries when it reaches its size limit, instead of
/// refusing new ones (KV buckets refuse by default).
///
/// # Errors
///
/// When the bucket's stream cannot be read or updated.
pub async fn evict_oldest_when_full(
    js: &jetstream::Context,
    bucket: &str,
) -> Result<(), CacheError> {
    let name = format!("KV_{bucket}");
    let mut stream = js.get_stream(&name).await.map_err(cache_error)?;
    let mut config = stream.info().await.map_err(cache_error)?.config.clone();
    if config.discard != jetstream::stream::DiscardPolicy::Old {
        config.discard = jetstream::stream::DiscardPolicy::Old;
        js.update_stream(config).await.map_err(cache_error)?;
    }
    Ok(())
}

impl BlockCache for KvBlockCache {
    async fn get(&self, key: BlockKey) -> Result<Option<CachedArchiveBlock>, CacheError> {
        let Some(bytes) = self.store.get(key.entry_key()).await.map_err(cache_error)? else {
            return Ok(None);
        };
        CachedArchiveBlock::decode(bytes)
            .map(Some)
            .map_err(CacheError::Unreadable)
    }

    async fn put(&self, key: BlockKey, entry: &CachedArchiveBlock) -> Result<(), CacheError> {
        self.store
            .put(key.entry_key(), Bytes::from(entry.encode_to_vec()))
            .await
            .map(drop)
            .map_err(cache_error)
    }

    async fn claim(&self, key: BlockKey, owner: &str, ttl: Duration) -> Result<bool, CacheError> {
        let value = Bytes::copy_from_slice(owner.as_bytes());
        match self
            .store
            .create_with_ttl(key.claim_key(), value, ttl)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(cache_error(error)),
        }
    }

    async fn claimed(&self, key: BlockKey) -> Result<bool, CacheError> {
        Ok(self
            .store
            .get(key.claim_key())
            .await
            .map_err(cache_error)?
            .is_some())
    }

    async fn release(&self, key: BlockKey) -> Result<(), CacheError> {
        self.store.purge(key.claim_key()).await.map_err(cache_error)
    }
}
