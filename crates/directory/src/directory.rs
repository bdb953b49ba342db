//! The directory behind its cache: each level (the states, a state's counties, a county, a
//! feed) is one entry of the KV bucket `directory`, fresh for `ttl` (24 h by default). A missing
//! or expired level is fetched once across every replica — a KV claim, created only if absent;
//! the others wait for the winner's entry — within the fleet's shared request budget. When the
//! upstream is down, busy or unreadable, an expired entry is served instead, marked stale with
//! the reason; a refused key or an unknown id is said as such, never hidden behind old data.

use std::future::Future;
use std::time::{Duration, SystemTime};

use async_nats::jetstream::kv;
use bcfy_proto::{
    CachedDirectoryEntry, Freshness, GetCountyResponse, GetFeedResponse, ListCountiesResponse,
    ListStatesResponse,
};
use bcfy_upstream::UpstreamGate;
use bytes::Bytes;
use prost::Message as _;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::upstream::{Api, Upstream, UpstreamError};

/// How often a replica waiting for another's fetch looks at the cache again.
const WAIT_STEP: Duration = Duration::from_millis(25);

/// One cached level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Every state.
    States,
    /// A state's counties.
    Counties(i64),
    /// One county.
    County(i64),
    /// One feed.
    Feed(i64),
}

impl Level {
    fn key(self) -> String {
        match self {
            Level::States => "states".to_owned(),
            Level::Counties(stid) => format!("counties.{stid}"),
            Level::County(ctid) => format!("county.{ctid}"),
            Level::Feed(id) => format!("feed.{id}"),
        }
    }

    fn claim_key(self) -> String {
        format!("claim.{}", self.key())
    }

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Level::States => "states",
            Level::Counties(_) => "counties",
            Level::County(_) => "county",
            Level::Feed(_) => "feed",
        }
    }

    fn id(self) -> Option<i64> {
        match self {
            Level::States => None,
            Level::Counties(id) | Level::County(id) | Level::Feed(id) => Some(id),
        }
    }
}

/// Why a lookup could not be answered; each maps to one gRPC status and NATS error code.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The id asked for is not positive.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The upstream has no such state, county or feed.
    #[error("not found")]
    NotFound(#[source] UpstreamError),
    /// The upstream refuses the configured credentials, or some are missing.
    #[error("the upstream refuses the directory's credentials")]
    PermissionDenied(#[source] UpstreamError),
    /// Not now, and nothing cached to serve instead.
    #[error("unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
        /// When to try again, if known.
        retry_after: Option<Duration>,
    },
}

impl DirectoryError {
    fn unavailable(reason: impl std::fmt::Display, retry_after: Option<Duration>) -> Self {
        DirectoryError::Unavailable {
            reason: reason.to_string(),
            retry_after,
        }
    }
}

impl From<UpstreamError> for DirectoryError {
    fn from(error: UpstreamError) -> Self {
        match error {
            UpstreamError::NotFound { .. } => DirectoryError::NotFound(error),
            UpstreamError::PermissionDenied { .. } | UpstreamError::NotConfigured { .. } => {
                DirectoryError::PermissionDenied(error)
            }
            error => {
                let retry_after = error.retry_after();
                DirectoryError::unavailable(bcfy_bus::consume::error_chain(&error), retry_after)
            }
        }
    }
}

/// Settings of the cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    /// How long a level is served without asking the upstream.
    pub ttl: Duration,
    /// How long a replica's claim to fetch a level lasts if it dies before finishing.
    pub claim_ttl: Duration,
    /// How long a lookup may wait for the request budget.
    pub budget_wait_max: Duration,
}

/// The directory: upstream lookups behind the shared cache.
#[derive(Debug)]
pub struct Directory {
    store: kv::Store,
    upstream: Upstream,
    gate: UpstreamGate,
    settings: CacheSettings,
    instance: String,
    metrics: Metrics,
}

/// A level's answer and how old it is.
type Answer<M> = (M, Freshness);

/// An answer message that carries its [`Freshness`].
trait LevelAnswer: prost::Message + Default {
    fn set_freshness(&mut self, freshness: Freshness);
}

macro_rules! level_answers {
    ($($message:ty),*) => {$(
        impl LevelAnswer for $message {
            fn set_freshness(&mut self, freshness: Freshness) {
                self.freshness = Some(freshness);
            }
        }
    )*};
}

level_answers!(
    ListStatesResponse,
    ListCountiesResponse,
    GetCountyResponse,
    GetFeedResponse
);

fn timestamp(at: SystemTime) -> Option<prost_types::Timestamp> {
    Some(at.into())
}

fn expiry(entry: &CachedDirectoryEntry) -> SystemTime {
    entry
        .expires_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn store_error(error: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::unavailable(format!("the directory cache is unreachable: {error}"), None)
}

impl Directory {
    /// A directory over the bucket `store`, asking `upstream` within `gate`'s budget.
    pub fn new(
        store: kv::Store,
        upstream: Upstream,
        gate: UpstreamGate,
        settings: CacheSettings,
        instance: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            upstream,
            gate,
            settings,
            instance,
            metrics,
        }
    }

    /// Every state, by name.
    ///
    /// # Errors
    ///
    /// [`DirectoryError`].
    pub async fn states(&self) -> Result<ListStatesResponse, DirectoryError> {
        self.lookup(Level::States, 1, || async {
            Ok(ListStatesResponse {
                states: self.upstream.states().await?,
                freshness: None,
            })
        })
        .await
    }

    /// State `stid`'s counties, by name.
    ///
    /// # Errors
    ///
    /// [`DirectoryError`].
    pub async fn counties(&self, stid: i64) -> Result<ListCountiesResponse, DirectoryError> {
        self.lookup(Level::Counties(stid), 1, || async {
            Ok(ListCountiesResponse {
                counties: self.upstream.counties(stid).await?,
                freshness: None,
            })
        })
        .await
    }

    /// County `ctid`: its systems and talkgroups (Calls API) and feeds (catalog).
    ///
    /// # Errors
    ///
    /// [`DirectoryError`].
    pub async fn county(&self, ctid: i64) -> Result<GetCountyResponse, DirectoryError> {
        self.lookup(Level::County(ctid), 2, || async {
            let (catalog, groups) = tokio::join!(
                self.upstream.catalog_county(ctid),
                self.upstream.county_groups(ctid)
            );
            let (catalog, groups) = (self.counted(catalog)?, self.counted(groups)?);
            Ok(crate::upstream::county_answer(catalog, groups))
        })
        .await
    }

    /// Feed `id`.
    ///
    /// # Errors
    ///
    /// [`DirectoryError`].
    pub async fn feed(&self, id: i64) -> Result<GetFeedResponse, DirectoryError> {
        self.lookup(Level::Feed(id), 1, || async {
            Ok(GetFeedResponse {
                feed: Some(self.upstream.feed(id).await?),
                freshness: None,
            })
        })
        .await
    }

    /// Counts a failed upstream request towards its API's failures in a row.
    fn failed(&self, error: &UpstreamError) {
        let api = error.api().label();
        self.metrics
            .upstream_errors
            .with_label_values(&[api, error.kind()])
            .inc();
        self.metrics
            .consecutive_failures
            .with_label_values(&[api])
            .inc();
    }

    /// [`Self::failed`] for one of a county's two requests.
    fn counted<T>(&self, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        if let Err(error) = &result {
            self.failed(error);
        }
        result
    }

    fn succeeded(&self, api: Api) {
        self.metrics
            .consecutive_failures
            .with_label_values(&[api.label()])
            .set(0);
    }

    /// [`Self::answer`] with its freshness in it.
    async fn lookup<M, F, Fut>(
        &self,
        level: Level,
        requests: u32,
        fetch: F,
    ) -> Result<M, DirectoryError>
    where
        M: LevelAnswer,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<M, UpstreamError>>,
    {
        let (mut answer, freshness) = self.answer(level, requests, fetch).await?;
        answer.set_freshness(freshness);
        Ok(answer)
    }

    /// The level from the cache when fresh, else fetched once in the fleet; an expired entry
    /// when the upstream is out. `requests` is what one fetch costs the shared budget.
    async fn answer<M, F, Fut>(
        &self,
        level: Level,
        requests: u32,
        fetch: F,
    ) -> Result<Answer<M>, DirectoryError>
    where
        M: prost::Message + Default,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<M, UpstreamError>>,
    {
        if level.id().is_some_and(|id| id <= 0) {
            return Err(DirectoryError::InvalidArgument(format!(
                "{} id {} must be positive",
                level.label(),
                level.id().unwrap_or_default()
            )));
        }
        let outcome = |name: &str| {
            self.metrics
                .lookups
                .with_label_values(&[level.label(), name])
                .inc();
        };
        let cached = self.entry(level).await?;
        if let Some(answer) = cached.as_ref().and_then(fresh::<M>) {
            outcome("hit");
            return Ok(answer);
        }
        let deadline = Instant::now() + self.settings.claim_ttl * 2;
        loop {
            if self.claim(level).await? {
                let result = self.fetch_and_store(level, requests, &fetch).await;
                if let Err(error) = self.store.purge(level.claim_key()).await {
                    tracing::warn!(error = %error, "Cannot release a directory claim; it expires.");
                }
                return match result {
                    Ok(answer) => {
                        outcome("fetched");
                        Ok(answer)
                    }
                    Err(error) => self.stale_or(level, cached.as_ref(), error, &outcome),
                };
            }
            // Another replica is fetching: wait for its entry, or for its claim to go.
            outcome("waited");
            loop {
                tokio::time::sleep(WAIT_STEP).await;
                if let Some(answer) = self.entry(level).await?.as_ref().and_then(fresh::<M>) {
                    return Ok(answer);
                }
                if !self.claimed(level).await? {
                    break;
                }
                if Instant::now() >= deadline {
                    let error = DirectoryError::unavailable(
                        "another replica's fetch of this level did not finish",
                        None,
                    );
                    return self.stale_or(level, cached.as_ref(), error, &outcome);
                }
            }
        }
    }

    /// The expired entry, marked stale, when the failure is an outage; else the failure.
    fn stale_or<M: prost::Message + Default>(
        &self,
        level: Level,
        cached: Option<&CachedDirectoryEntry>,
        error: DirectoryError,
        outcome: &dyn Fn(&str),
    ) -> Result<Answer<M>, DirectoryError> {
        let servable = matches!(error, DirectoryError::Unavailable { .. });
        match cached.and_then(|entry| decode::<M>(entry).map(|answer| (answer, entry))) {
            Some((answer, entry)) if servable => {
                outcome("stale");
                tracing::warn!(level = level.key(), error = %error, "Serving a stale directory level: the upstream is out.");
                Ok((
                    answer,
                    Freshness {
                        fetched_at: entry.fetched_at,
                        expires_at: entry.expires_at,
                        stale: true,
                        cache_hit: true,
                        stale_reason: error.to_string(),
                    },
                ))
            }
            _ => {
                outcome("failed");
                Err(error)
            }
        }
    }

    /// Waits for the budget, asks the upstream and stores the answer.
    async fn fetch_and_store<M, F, Fut>(
        &self,
        level: Level,
        requests: u32,
        fetch: &F,
    ) -> Result<Answer<M>, DirectoryError>
    where
        M: prost::Message + Default,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<M, UpstreamError>>,
    {
        for _ in 0..requests {
            self.wait_for_budget().await?;
        }
        let answer = fetch().await;
        // The county's two requests were counted one by one.
        if let (Err(error), false) = (&answer, matches!(level, Level::County(_))) {
            self.failed(error);
        }
        let answer = answer?;
        match level {
            Level::County(_) => {
                self.succeeded(Api::Catalog);
                self.succeeded(Api::Calls);
            }
            _ => self.succeeded(Api::Catalog),
        }
        let now = SystemTime::now();
        let entry = CachedDirectoryEntry {
            answer: answer.encode_to_vec(),
            fetched_at: timestamp(now),
            expires_at: timestamp(now + self.settings.ttl),
        };
        self.store
            .put(level.key(), Bytes::from(entry.encode_to_vec()))
            .await
            .map_err(store_error)?;
        Ok((
            answer,
            Freshness {
                fetched_at: entry.fetched_at,
                expires_at: entry.expires_at,
                stale: false,
                cache_hit: false,
                stale_reason: String::new(),
            },
        ))
    }

    async fn wait_for_budget(&self) -> Result<(), DirectoryError> {
        let waited_until = Instant::now() + self.settings.budget_wait_max;
        loop {
            let wait = self.gate.try_take().await.map_err(|error| {
                DirectoryError::unavailable(
                    format!("the shared request budget is unreachable: {error}"),
                    None,
                )
            })?;
            let Some(wait) = wait else { return Ok(()) };
            if Instant::now() + wait > waited_until {
                return Err(DirectoryError::unavailable(
                    "the upstream request budget is spent",
                    Some(wait),
                ));
            }
            tokio::time::sleep(wait).await;
        }
    }

    async fn entry(&self, level: Level) -> Result<Option<CachedDirectoryEntry>, DirectoryError> {
        let Some(bytes) = self.store.get(level.key()).await.map_err(store_error)? else {
            return Ok(None);
        };
        // An unreadable entry is as good as none: it is fetched again and overwritten.
        Ok(CachedDirectoryEntry::decode(bytes).ok())
    }

    async fn claim(&self, level: Level) -> Result<bool, DirectoryError> {
        let owner = Bytes::copy_from_slice(self.instance.as_bytes());
        match self
            .store
            .create_with_ttl(level.claim_key(), owner, self.settings.claim_ttl)
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(error) => Err(store_error(error)),
        }
    }

    async fn claimed(&self, level: Level) -> Result<bool, DirectoryError> {
        Ok(self
            .store
            .get(level.claim_key())
            .await
            .map_err(store_error)?
            .is_some())
    }
}

fn decode<M: prost::Message + Default>(entry: &CachedDirectoryEntry) -> Option<M> {
    M::decode(entry.answer.as_slice()).ok()
}

/// The entry's answer when it has not expired.
fn fresh<M: prost::Message + Default>(entry: &CachedDirectoryEntry) -> Option<Answer<M>> {
    if SystemTime::now() >= expiry(entry) {
        return None;
    }
    Some((
        decode(entry)?,
        Freshness {
            fetched_at: entry.fetched_at,
            expires_at: entry.expires_at,
            stale: false,
            cache_hit: true,
            stale_reason: String::new(),
        },
    ))
}
