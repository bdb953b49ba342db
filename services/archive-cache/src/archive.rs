//! `ArchiveClient.fetch` (spec §3.2) behind the cache (spec §7): a fresh entry is served as is;
//! a missing or stale one is fetched once — one request per block in this process (a lock per
//! key) and across replicas (a KV claim; the others wait for the winner's entry) — within the
//! fleet's shared request budget and back-off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bcfy_broadcastify::archive::BLOCK_SECONDS;
use bcfy_broadcastify::error::{AuthenticationError, Endpoint, Error as ClientError, ParseError};
use bcfy_broadcastify::{ArchiveBlock, ArchiveFetch, Client, GroupKey, Validators};
use bcfy_proto::{ArchiveResult, CachedArchiveBlock, TimeWindow};
use bcfy_upstream::{GateError, UpstreamGate};
use tokio::time::Instant;

use crate::cache::{BlockCache, BlockKey, CacheError};
use crate::config::CacheConfig;
use crate::metrics::Metrics;
use crate::request::InvalidRequest;

/// How often a replica waiting for another's fetch looks at the cache again.
const WAIT_STEP: Duration = Duration::from_millis(20);

/// Why a block could not be served; each maps to one gRPC status and one NATS error code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArchiveError {
    /// The request itself is wrong.
    #[error("invalid argument")]
    InvalidArgument(#[from] InvalidRequest),
    /// The upstream refuses this service's account (bad credentials, or no archive access).
    #[error("the upstream refuses the account")]
    PermissionDenied(#[source] Arc<ClientError>),
    /// The upstream answered something that is not an archive block.
    #[error("the upstream answer is unreadable")]
    UpstreamUnreadable(#[source] Arc<ClientError>),
    /// Not now: see [`Unavailable`].
    #[error("unavailable")]
    Unavailable {
        /// What is unavailable.
        #[source]
        reason: Unavailable,
        /// When to try again, if known.
        retry_after: Option<Duration>,
    },
}

/// What keeps a block from being served now (a retry later may succeed).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// The upstream asked every replica to back off.
    #[error("the upstream asked every replica to back off")]
    BackingOff,
    /// The fleet's request budget is spent for longer than a request may wait.
    #[error("the upstream request budget is spent")]
    BudgetSpent,
    /// Another replica claimed the fetch of this block and did not finish it in time.
    #[error("another replica's fetch of this block did not finish")]
    PeerFetchUnfinished,
    /// The upstream failed (transport, status, stall).
    #[error("the upstream failed")]
    Upstream(#[source] Arc<ClientError>),
    /// The fleet's budget and back-off could not be read.
    #[error("the shared request budget is unreachable")]
    Gate(#[source] Arc<GateError>),
    /// The shared cache could not be used.
    #[error("the shared cache is unreachable")]
    Cache(#[source] Arc<CacheError>),
}

impl ArchiveError {
    fn unavailable(reason: Unavailable, retry_after: Option<Duration>) -> Self {
        ArchiveError::Unavailable {
            reason,
            retry_after,
        }
    }
}

impl From<CacheError> for ArchiveError {
    fn from(error: CacheError) -> Self {
        ArchiveError::unavailable(Unavailable::Cache(Arc::new(error)), None)
    }
}

fn from_client(error: ClientError) -> ArchiveError {
    let retry_after = error.retry_hint().retry_after;
    match error {
        // A refused session was already retried once with a fresh one: it is about the account.
        error @ (ClientError::Authentication(
            AuthenticationError::InvalidCredentials | AuthenticationError::NoCredentials,
        )
        | ClientError::SessionRejected { .. }) => ArchiveError::PermissionDenied(Arc::new(error)),
        error @ ClientError::ResponseParsing { .. } => {
            ArchiveError::UpstreamUnreadable(Arc::new(error))
        }
        error => ArchiveError::unavailable(Unavailable::Upstream(Arc::new(error)), retry_after),
    }
}

fn epoch_seconds(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The per-block lock of this process, with the failure of the fetch made under it.
type FetchLock = Arc<tokio::sync::Mutex<Option<(Instant, ArchiveError)>>>;

/// What the cache holds for a block.
enum Lookup {
    Fresh(ArchiveResult),
    /// Expired; kept for its validators (a conditional refresh).
    Stale(CachedArchiveBlock),
    Missing,
}

/// The archive behind its cache.
#[derive(Debug)]
pub struct Archive<C> {
    cache: C,
    client: Client,
    gate: UpstreamGate,
    settings: CacheConfig,
    budget_wait_max: Duration,
    instance: String,
    metrics: Metrics,
    /// One lock per block being fetched by this process, holding the fetch's error for the
    /// askers still waiting (the entry goes when the last of them is done).
    in_flight: Mutex<HashMap<BlockKey, FetchLock>>,
    /// Fresh entries this replica has seen, served without a KV round trip until they expire.
    memory: Mutex<HashMap<BlockKey, (ArchiveResult, SystemTime)>>,
}

impl<C: BlockCache> Archive<C> {
    /// An archive over `cache`, fetching with `client` within `gate`'s budget.
    pub fn new(
        cache: C,
        client: Client,
        gate: UpstreamGate,
        settings: CacheConfig,
        budget_wait_max: Duration,
        instance: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            cache,
            client,
            gate,
            settings,
            budget_wait_max,
            instance,
            metrics,
            in_flight: Mutex::new(HashMap::new()),
            memory: Mutex::new(HashMap::new()),
        }
    }

    /// The block `key`, from the cache when fresh, else from the upstream (once for all
    /// concurrent askers, in every replica).
    ///
    /// # Errors
    ///
    /// [`ArchiveError`] when neither the cache nor the upstream can give it.
    pub async fn get(&self, key: BlockKey) -> Result<ArchiveResult, ArchiveError> {
        if let Lookup::Fresh(result) = self.lookup(key).await? {
            self.metrics.requests.with_label_values(&["hit"]).inc();
            return Ok(result);
        }
        let asked_at = Instant::now();
        let lock = self.lock_for(key);
        let result = {
            let mut failed = lock.lock().await;
            // Whoever held the lock may have filled the cache meanwhile, or failed: askers who
            // waited for that fetch (it failed after they asked) share its error instead of each
            // asking the upstream again.
            match failed.as_ref() {
                Some((at, error)) if *at >= asked_at => Err(error.clone()),
                _ => {
                    let result = match self.lookup(key).await? {
                        Lookup::Fresh(result) => {
                            self.metrics.requests.with_label_values(&["hit"]).inc();
                            Ok(result)
                        }
                        Lookup::Stale(previous) => {
                            self.fetch_once_in_fleet(key, "stale", Some(previous)).await
                        }
                        Lookup::Missing => self.fetch_once_in_fleet(key, "miss", None).await,
                    };
                    if let Err(error) = &result {
                        *failed = Some((Instant::now(), error.clone()));
                    }
                    result
                }
            }
        };
        self.forget_lock(key, &lock);
        result
    }

    fn lock_for(&self, key: BlockKey) -> FetchLock {
        let mut locks = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(key).or_default())
    }

    fn forget_lock(&self, key: BlockKey, lock: &FetchLock) {
        let mut locks = self
            .in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Only the map and this caller hold it: nobody else is waiting.
        if Arc::strong_count(lock) == 2 {
            locks.remove(&key);
        }
    }

    /// What the cache holds for `key`: this replica's memory first, then the shared bucket.
    async fn lookup(&self, key: BlockKey) -> Result<Lookup, ArchiveError> {
        if let Some(result) = self.remembered(key) {
            return Ok(Lookup::Fresh(result));
        }
        let Some(entry) = self.cache.get(key).await? else {
            return Ok(Lookup::Missing);
        };
        let expires = expiry(&entry);
        match &entry.result {
            Some(result) if SystemTime::now() < expires => {
                let result = ArchiveResult {
                    cache_hit: true,
                    ..result.clone()
                };
                self.remember(key, &result, expires);
                Ok(Lookup::Fresh(result))
            }
            _ => Ok(Lookup::Stale(entry)),
        }
    }

    fn remembered(&self, key: BlockKey) -> Option<ArchiveResult> {
        let memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memory
            .get(&key)
            .filter(|(_, expires)| SystemTime::now() < *expires)
            .map(|(result, _)| result.clone())
    }

    /// Keeps a fresh result in memory; when full, drops the entry that expires first.
    fn remember(&self, key: BlockKey, result: &ArchiveResult, expires: SystemTime) {
        let mut memory = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if memory.len() >= self.settings.memory_entries && !memory.contains_key(&key) {
            let first = memory
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(key, _)| *key);
            if let Some(first) = first {
                memory.remove(&first);
            }
        }
        if self.settings.memory_entries > 0 {
            let cached = ArchiveResult {
                cache_hit: true,
                ..result.clone()
            };
            memory.insert(key, (cached, expires));
        }
    }

    /// Claims the block in KV and fetches it, or waits for the replica that claimed it.
    async fn fetch_once_in_fleet(
        &self,
        key: BlockKey,
        outcome: &str,
        previous: Option<CachedArchiveBlock>,
    ) -> Result<ArchiveResult, ArchiveError> {
        let deadline = Instant::now() + self.settings.claim_ttl * 2;
        loop {
            if self
                .cache
                .claim(key, &self.instance, self.settings.claim_ttl)
                .await?
            {
                self.metrics.requests.with_label_values(&[outcome]).inc();
                let fetched = self.fetch_and_store(key, previous.as_ref()).await;
                if let Err(error) = self.cache.release(key).await {
                    tracing::warn!(error = %error, "Cannot release a block claim; it expires.");
                }
                return fetched;
            }
            // Another replica is fetching: wait for its entry, or for its claim to go.
            self.metrics.requests.with_label_values(&["waited"]).inc();
            loop {
                tokio::time::sleep(WAIT_STEP).await;
                if let Lookup::Fresh(result) = self.lookup(key).await? {
                    return Ok(result);
                }
                if !self.cache.claimed(key).await? {
                    // It failed or died: the next claim decides again.
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(ArchiveError::unavailable(
                        Unavailable::PeerFetchUnfinished,
                        None,
                    ));
                }
            }
        }
    }

    /// Fetches the block (conditionally, when a stale copy has validators) and stores it.
    async fn fetch_and_store(
        &self,
        key: BlockKey,
        previous: Option<&CachedArchiveBlock>,
    ) -> Result<ArchiveResult, ArchiveError> {
        self.wait_for_budget().await?;
        let validators = previous.map_or_else(Validators::default, |entry| Validators {
            etag: Some(entry.etag.clone()).filter(|e| !e.is_empty()),
            last_modified: Some(entry.last_modified.clone()).filter(|l| !l.is_empty()),
        });
        let started = Instant::now();
        let group = GroupKey {
            sid: key.sid,
            tg: key.tg,
        };
        let fetched = self
            .client
            .archived_calls_if_changed(group, key.start, &validators)
            .await;
        self.metrics
            .upstream_seconds
            .observe(started.elapsed().as_secs_f64());
        let now = SystemTime::now();
        let expires_at = Some((now + self.ttl(key, now)).into());
        let (entry, revalidated) = match fetched {
            Ok(ArchiveFetch::Modified(block, validators)) => (
                CachedArchiveBlock {
                    result: Some(to_result(key, block, now)),
                    etag: validators.etag.unwrap_or_default(),
                    last_modified: validators.last_modified.unwrap_or_default(),
                    expires_at,
                },
                false,
            ),
            Ok(ArchiveFetch::NotModified) => match previous {
                Some(previous) => {
                    self.metrics
                        .requests
                        .with_label_values(&["revalidated"])
                        .inc();
                    // Still current: the same answer (and its original fetch time), fresh again.
                    let entry = CachedArchiveBlock {
                        expires_at,
                        ..previous.clone()
                    };
                    (entry, true)
                }
                None => {
                    return Err(ArchiveError::UpstreamUnreadable(Arc::new(
                        ClientError::ResponseParsing {
                            endpoint: Endpoint::Archive,
                            reason: ParseError::UnexpectedNotModified,
                            snippet: String::new(),
                        },
                    )));
                }
            },
            Err(error) => {
                let kind = error.kind();
                self.metrics
                    .upstream_errors
                    .with_label_values(&[kind])
                    .inc();
                if let Some(wait) = error.retry_hint().retry_after
                    && let Err(gate_error) = self.gate.back_off(wait).await
                {
                    tracing::warn!(error = %gate_error, "Could not share the back-off.");
                }
                return Err(from_client(error));
            }
        };
        self.cache.put(key, &entry).await?;
        if let Some(result) = &entry.result {
            self.remember(key, result, expiry(&entry));
        }
        Ok(ArchiveResult {
            cache_hit: revalidated,
            ..entry.result.unwrap_or_default()
        })
    }

    /// Long for a closed block, short for the one still filling.
    fn ttl(&self, key: BlockKey, now: SystemTime) -> Duration {
        let closes_at = key.start + BLOCK_SECONDS + self.settings.closed_margin.as_secs() as i64;
        if epoch_seconds(now) >= closes_at {
            self.settings.closed_ttl
        } else {
            self.settings.current_ttl
        }
    }

    /// Waits for the fleet's back-off and request budget, or says how long to wait.
    async fn wait_for_budget(&self) -> Result<(), ArchiveError> {
        let gate_down =
            |error: GateError| ArchiveError::unavailable(Unavailable::Gate(Arc::new(error)), None);
        if let Some(wait) = self.gate.backoff_remaining().await.map_err(gate_down)? {
            self.metrics.budget_waits.inc();
            return Err(ArchiveError::unavailable(
                Unavailable::BackingOff,
                Some(wait),
            ));
        }
        let waited_until = Instant::now() + self.budget_wait_max;
        while let Some(wait) = self.gate.try_take().await.map_err(gate_down)? {
            self.metrics.budget_waits.inc();
            if Instant::now() + wait > waited_until {
                return Err(ArchiveError::unavailable(
                    Unavailable::BudgetSpent,
                    Some(wait),
                ));
            }
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// Until when an entry is fresh (the epoch for an entry without a deadline: stale).
fn expiry(entry: &CachedArchiveBlock) -> SystemTime {
    entry
        .expires_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The answer for one block as the API gives it (`cache_hit` false).
fn to_result(key: BlockKey, block: ArchiveBlock, now: SystemTime) -> ArchiveResult {
    ArchiveResult {
        calls: block.parsed.calls.into_iter().map(|c| c.call).collect(),
        window: Some(TimeWindow {
            start: key.start,
            end: key.start + BLOCK_SECONDS,
        }),
        fetched_at: Some(now.into()),
        cache_hit: false,
        upstream_start: block.start.unwrap_or_default(),
        upstream_end: block.end.unwrap_or_default(),
        server_time: block.server_time.unwrap_or_default(),
        raw: block.raw.to_vec(),
    }
}
