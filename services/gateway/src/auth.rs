//! Who may read what. API keys live in a YAML file (a mounted Kubernetes Secret in the chart)
//! as SHA-256 digests, never in clear; a presented key is hashed and compared with every
//! digest in constant time. Each key (and anonymous access, when enabled) has a [`Grant`]: the
//! systems and talkgroups it may see, and a request rate. Anything outside a key's scope is
//! answered as if it did not exist.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bcfy_bus::subject::Shard;
use bcfy_config::{ConfigError, ConfigIssue, ConfigSource, Validate, join_path};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::time::Instant;

use crate::error::ApiError;

/// Query parameter that carries a key where headers cannot be set (a browser's
/// `EventSource` or `WebSocket`).
pub const KEY_PARAMETER: &str = "api_key";
/// Header that carries a key (besides `Authorization: Bearer`).
pub const KEY_HEADER: &str = "x-api-key";

/// One entry of a scope: a whole system (`"7001"`) or one of its talkgroups (`"7001-2345"`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct ScopeEntry {
    /// The system.
    pub sid: i64,
    /// The talkgroup; every talkgroup of the system when unset.
    pub tg: Option<i64>,
}

impl TryFrom<String> for ScopeEntry {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let invalid = || format!("`{value}` is not `SID` or `SID-TG`");
        let (sid, tg) = match value.split_once('-') {
            Some((sid, tg)) => (sid, Some(tg.parse().map_err(|_| invalid())?)),
            None => (value.as_str(), None),
        };
        Ok(Self {
            sid: sid.parse().map_err(|_| invalid())?,
            tg,
        })
    }
}

impl From<ScopeEntry> for String {
    fn from(entry: ScopeEntry) -> Self {
        match entry.tg {
            Some(tg) => format!("{}-{tg}", entry.sid),
            None => entry.sid.to_string(),
        }
    }
}

/// What a key (or anonymous access) may do.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct Grant {
    /// Systems and talkgroups visible (`"7001"`, `"7001-2345"`); everything when empty.
    pub scope: Vec<ScopeEntry>,
    /// Requests per second (an event stream counts once, when opened); unlimited when unset.
    pub rate_per_second: Option<f64>,
    /// Requests allowed at once above the rate (default: one second's worth, at least 1).
    pub burst: Option<u32>,
}

impl Grant {
    /// True when `shard` is in scope.
    pub fn allows(&self, shard: Shard) -> bool {
        self.scope.is_empty()
            || self
                .scope
                .iter()
                .any(|e| e.sid == shard.sid && e.tg.is_none_or(|tg| tg == shard.tg))
    }
}

impl Validate for Grant {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if let Some(rate) = self.rate_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            issues.push(ConfigIssue::new(prefix, "rate_per_second", "must be > 0"));
        }
        if self.burst == Some(0) {
            issues.push(ConfigIssue::new(prefix, "burst", "must be at least 1"));
        }
    }
}

/// One key in the keys file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct KeyEntry {
    /// A name for logs and metrics (never the key).
    pub name: String,
    /// The key's SHA-256, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// What the key may see and how fast it may ask.
    #[serde(default)]
    pub grant: Grant,
}

/// The keys file.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct KeysFile {
    /// Every key.
    pub keys: Vec<KeyEntry>,
}

impl Validate for KeysFile {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        for (i, key) in self.keys.iter().enumerate() {
            let at = join_path(prefix, &format!("keys.{i}"));
            if digest_from_hex(&key.sha256).is_none() {
                issues.push(ConfigIssue::new(&at, "sha256", "must be 64 hex digits"));
            }
            if key.name.is_empty() {
                issues.push(ConfigIssue::new(&at, "name", "must not be empty"));
            }
            if self.keys[..i].iter().any(|k| k.name == key.name) {
                issues.push(ConfigIssue::new(&at, "name", "is used twice"));
            }
            key.grant.validate(&join_path(&at, "grant"), issues);
        }
    }
}

fn digest_from_hex(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(digest)
}

/// A token bucket: `rate` requests per second, `burst` at once.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: f64, burst: Option<u32>) -> Self {
        let burst = burst.map_or(rate.ceil().max(1.0), f64::from);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token, or says how long until one is there.
    fn take(&self) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, last) = *state;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            Ok(())
        } else {
            *state = (tokens, now);
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

/// Who is asking: a key's name and grant, or anonymous access.
#[derive(Debug)]
pub struct Principal {
    /// The key's name, `anonymous` without one.
    pub name: String,
    /// What it may see.
    pub grant: Grant,
    bucket: Option<Bucket>,
}

impl Principal {
    fn new(name: String, grant: Grant) -> Self {
        let bucket = grant
            .rate_per_second
            .map(|rate| Bucket::new(rate, grant.burst));
        Self {
            name,
            grant,
            bucket,
        }
    }

    /// True when `shard` is visible to this caller.
    pub fn sees(&self, shard: Shard) -> bool {
        self.grant.allows(shard)
    }
}

/// Why a request was refused before it reached a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key, and anonymous access is off.
    Missing,
    /// A key that matches none.
    Invalid,
    /// Over the key's rate; try again after this long.
    Limited(Duration),
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Missing => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an API key is required (Authorization: Bearer KEY, X-API-Key, or ?api_key=)",
            ),
            Refusal::Invalid => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "unknown API key")
            }
            Refusal::Limited(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "over this key's request rate",
            )
            .retry_after(wait.as_secs_f64().ceil().max(1.0) as u64),
        }
    }
}

/// The keys and anonymous access the gateway accepts.
pub struct KeyStore {
    keys: Vec<([u8; 32], Arc<Principal>)>,
    anonymous: Option<Arc<Principal>>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys.len())
            .field("anonymous", &self.anonymous.is_some())
            .finish()
    }
}

impl KeyStore {
    /// The keys of `file` (none when unset) and `anonymous` access.
    ///
    /// # Errors
    ///
    /// When the keys file cannot be read or holds a bad entry (every problem listed).
    pub fn load(file: Option<&Path>, anonymous: Option<Grant>) -> Result<Self, Box<ConfigError>> {
        let entries = match file {
            Some(path) => ConfigSource::default()
                .with_file(path)
                .load::<KeysFile>()
                .map_err(Box::new)?,
            None => KeysFile::default(),
        };
        Ok(Self::new(entries, anonymous))
    }

    /// A store of `file`'s keys and `anonymous` access.
    pub fn new(file: KeysFile, anonymous: Option<Grant>) -> Self {
        let keys = file
            .keys
            .into_iter()
            .filter_map(|k| {
                let digest = digest_from_hex(&k.sha256)?;
                Some((digest, Arc::new(Principal::new(k.name, k.grant))))
            })
            .collect();
        Self {
            keys,
            anonymous: anonymous.map(|g| Arc::new(Principal::new("anonymous".to_owned(), g))),
        }
    }

    /// How many keys are loaded.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key is loaded.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal of `key` (anonymous access without one), rate-limited.
    ///
    /// # Errors
    ///
    /// [`Refusal`] when the key is missing or unknown, or over its rate.
    pub fn admit(&self, key: Option<&str>) -> Result<Arc<Principal>, Refusal> {
        let principal = match key {
            Some(key) => self.find(key).ok_or(Refusal::Invalid)?,
            None => self.anonymous.clone().ok_or(Refusal::Missing)?,
        };
        if let Some(bucket) = &principal.bucket {
            bucket.take().map_err(Refusal::Limited)?;
        }
        Ok(principal)
    }

    /// Compares the key's digest with every stored one, without stopping at a match, so the
    /// time taken says nothing about which digest (or how much of one) matched.
    fn find(&self, key: &str) -> Option<Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for (stored, principal) in &self.keys {
            if bool::from(stored.ct_eq(&digest)) {
                found = Some(Arc::clone(principal));
            }
        }
        found
    }
}

/// The key a request presents: `Authorization: Bearer`, `X-API-Key`, or `?api_key=`.
fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let header = headers.get(KEY_HEADER).and_then(|v| v.to_str().ok());
    if let Some(key) = bearer.or(header) {
        return Some(key.trim().to_owned());
    }
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == KEY_PARAMETER)
        .map(|(_, value)| value.into_owned())
}

/// Middleware: admits the request's principal (into the request's extensions) or refuses it.
pub async fn admit(
    State(keys): State<Arc<KeyStore>>,
    mut request: Request,
    next: Next,
) -> Response {
    let key = presented_key(request.headers(), request.uri().query());
    match keys.admit(key.as_deref()) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => ApiError::from(refusal).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn store(rate: Option<f64>) -> KeyStore {
        KeyStore::new(
            KeysFile {
                keys: vec![KeyEntry {
                    name: "newsroom".to_owned(),
                    sha256: hex("s3cret"),
                    grant: Grant {
                        scope: vec!["7001-2345".to_owned().try_into().expect("valid")],
                        rate_per_second: rate,
                        burst: Some(2),
                    },
                }],
            },
            None,
        )
    }

    #[test]
    fn only_the_right_key_is_admitted() {
        let keys = store(None);
        assert_eq!(
            keys.admit(Some("s3cret")).expect("admitted").name,
            "newsroom"
        );
        assert_eq!(keys.admit(Some("s3cret ")).err(), Some(Refusal::Invalid));
        assert_eq!(keys.admit(Some("")).err(), Some(Refusal::Invalid));
        assert_eq!(keys.admit(None).err(), Some(Refusal::Missing));
    }

    #[test]
    fn scope_hides_other_talkgroups_and_systems() {
        let keys = store(None);
        let principal = keys.admit(Some("s3cret")).expect("admitted");
        assert!(principal.sees(Shard {
            sid: 7001,
            tg: 2345
        }));
        assert!(!principal.sees(Shard {
            sid: 7001,
            tg: 2346
        }));
        assert!(!principal.sees(Shard {
            sid: 7002,
            tg: 2345
        }));
        let whole: ScopeEntry = "7001".to_owned().try_into().expect("valid");
        let grant = Grant {
            scope: vec![whole],
            ..Grant::default()
        };
        assert!(grant.allows(Shard { sid: 7001, tg: 9 }));
        assert!(ScopeEntry::try_from("7001-x".to_owned()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_over_its_rate_is_told_when_to_come_back() {
        let keys = store(Some(1.0));
        assert!(keys.admit(Some("s3cret")).is_ok());
        assert!(keys.admit(Some("s3cret")).is_ok());
        let Err(Refusal::Limited(wait)) = keys.admit(Some("s3cret")) else {
            panic!("the third request in a burst of 2 is limited");
        };
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        tokio::time::advance(wait).await;
        assert!(keys.admit(Some("s3cret")).is_ok());
    }

    #[test]
    fn a_bad_keys_file_lists_every_problem() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys.yaml");
        std::fs::write(
            &path,
            "keys:\n  - name: a\n    sha256: nothex\n  - name: a\n    sha256: \"00\"\n    grant:\n      rate_per_second: 0\n      colour: red\n",
        )
        .expect("written");
        let error = KeyStore::load(Some(&path), None).expect_err("refused");
        let settings: Vec<_> = error.issues().iter().map(|i| i.setting.clone()).collect();
        for expected in [
            "keys.0.sha256",
            "keys.1.name",
            "keys.1.sha256",
            "keys.1.grant.rate_per_second",
            "keys.1.grant.colour",
        ] {
            assert!(
                settings.iter().any(|s| s == expected),
                "{expected} in {settings:?}"
            );
        }
    }
}
