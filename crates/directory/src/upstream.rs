//! The two upstream sources of the directory, each a typed client:
//!
//! - the **catalog API** (`api.broadcastify.com/audio/?a=…&type=json&key=…`): states, a state's
//!   counties, a county's live-audio feeds, one feed. A key in the query string.
//! - the **Calls API** (`api.bcfy.io`): a county's groups — the trunked systems and talkgroups it
//!   has on Broadcastify Calls. Every request carries a JWT signed with the API key
//!   ([`crate::jwt`]); a user token from `common/v1/auth` is added, as the Calls API wants one for
//!   everything but public playlists.
//!
//! Errors are typed the way the Broadcastify client types its own: a refused key or account is
//! [`UpstreamError::PermissionDenied`] (retrying does not help), a 429 or 5xx carries its
//! `Retry-After`, an unreadable body names what was missing.

use std::time::{Duration, SystemTime};

use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate};
use bcfy_proto::{County, DirectoryTalkgroup, Feed, GetCountyResponse, RadioSystem, State};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::jwt::{self, Claims};
use crate::model::{self, ShapeError};

/// The catalog API's origin and path.
pub const DEFAULT_CATALOG_URL: &str = "https://api.broadcastify.com/audio/";
/// The Calls API's origin.
pub const DEFAULT_CALLS_API_URL: &str = "https://api.bcfy.io/";
/// Where a county's groups are, relative to the Calls API's origin. The developer pages name
/// the method ("County Groups", by `ctid`) but no public client shows its path: a guess, which
/// a deployment can correct in config without a release.
pub const DEFAULT_COUNTY_GROUPS_PATH: &str = "calls/v1/groups/county/{ctid}";
/// The Calls API's user login.
const AUTH_PATH: &str = "common/v1/auth";
/// How long a minted JWT is valid (the developer pages recommend an hour).
const JWT_TTL: Duration = Duration::from_secs(3600);

/// `directory.upstream.*`: where the directory asks and with which credentials.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The catalog API endpoint.
    pub catalog_url: Url,
    /// The catalog API key.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub catalog_key: Option<SecretString>,
    /// The Calls API origin.
    pub calls_api_url: Url,
    /// Path of the county groups method; `{ctid}` is replaced by the county id.
    pub county_groups_path: String,
    /// The Calls API application id (the JWT's `iss`).
    pub app_id: Option<String>,
    /// The Calls API key's id (the JWT's `kid`).
    pub api_key_id: Option<String>,
    /// The Calls API key (signs the JWTs).
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub api_key: Option<SecretString>,
    /// The Broadcastify account whose user token the Calls API wants.
    pub username: Option<String>,
    /// Its password.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub password: Option<SecretString>,
    /// Time allowed for one request.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub request_timeout: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            catalog_url: Url::parse(DEFAULT_CATALOG_URL).expect("a valid URL"),
            catalog_key: None,
            calls_api_url: Url::parse(DEFAULT_CALLS_API_URL).expect("a valid URL"),
            county_groups_path: DEFAULT_COUNTY_GROUPS_PATH.to_owned(),
            app_id: None,
            api_key_id: None,
            api_key: None,
            username: None,
            password: None,
            request_timeout: Duration::from_secs(20),
        }
    }
}

impl UpstreamConfig {
    /// The credentials that are not set (each lookup needing one is refused until it is).
    pub fn missing_secrets(&self) -> Vec<&'static str> {
        [
            ("catalog_key", self.catalog_key.is_some()),
            ("api_key", self.api_key.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
        ]
        .into_iter()
        .filter(|(_, set)| !set)
        .map(|(name, _)| name)
        .collect()
    }
}

impl Validate for UpstreamConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        // The secrets (the keys, the account) usually arrive as env vars, after the file is
        // checked; a lookup without one is refused with `NotConfigured`, naming it.
        for (name, set) in [
            ("app_id", self.app_id.is_some()),
            ("api_key_id", self.api_key_id.is_some()),
        ] {
            if !set {
                issues.push(ConfigIssue::new(
                    prefix,
                    name,
                    "is required by the directory",
                ));
            }
        }
        if !self.county_groups_path.contains("{ctid}") {
            issues.push(ConfigIssue::new(
                prefix,
                "county_groups_path",
                "must contain {ctid}",
            ));
        }
        bcfy_config::checks::http_urls(
            prefix,
            &[
                ("catalog_url", self.catalog_url.scheme()),
                ("calls_api_url", self.calls_api_url.scheme()),
            ],
            issues,
        );
        bcfy_config::checks::above_zero(prefix, "request_timeout", self.request_timeout, issues);
    }
}

/// Which upstream answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `api.broadcastify.com/audio/`.
    Catalog,
    /// `api.bcfy.io`.
    Calls,
}

impl Api {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Api::Catalog => "catalog",
            Api::Calls => "calls_api",
        }
    }
}

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::Catalog => "the catalog API",
            Api::Calls => "the Calls API",
        })
    }
}

/// Why an upstream lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The key or the account is refused: asking again will not help.
    #[error("{api} refuses the credentials: {message}")]
    PermissionDenied {
        /// Which API.
        api: Api,
        /// What it said.
        message: String,
    },
    /// A credential this lookup needs is not configured.
    #[error("{api} needs `{setting}`, which is not set")]
    NotConfigured {
        /// Which API.
        api: Api,
        /// The missing setting.
        setting: &'static str,
    },
    /// No such state, county or feed.
    #[error("{api} has no such {what}: {message}")]
    NotFound {
        /// Which API.
        api: Api,
        /// What was asked.
        what: &'static str,
        /// What it said.
        message: String,
    },
    /// 429: asked to slow down.
    #[error("{api} asks to slow down (429)")]
    RateLimited {
        /// Which API.
        api: Api,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// Another failing status (5xx and the 4xx not named above).
    #[error("{api} answered HTTP {status}")]
    Status {
        /// Which API.
        api: Api,
        /// The status.
        status: u16,
        /// Its `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// No answer (connect, timeout, reset).
    #[error("{api} could not be reached")]
    Transport {
        /// Which API.
        api: Api,
        /// Why.
        #[source]
        error: reqwest::Error,
    },
    /// An answer that is not the expected JSON.
    #[error("{api} answered something unreadable")]
    Unreadable {
        /// Which API.
        api: Api,
        /// What was wrong.
        #[source]
        error: ShapeError,
    },
}

impl UpstreamError {
    /// The API that failed.
    pub fn api(&self) -> Api {
        match self {
            UpstreamError::PermissionDenied { api, .. }
            | UpstreamError::NotConfigured { api, .. }
            | UpstreamError::NotFound { api, .. }
            | UpstreamError::RateLimited { api, .. }
            | UpstreamError::Status { api, .. }
            | UpstreamError::Transport { api, .. }
            | UpstreamError::Unreadable { api, .. } => *api,
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::PermissionDenied { .. } => "permission_denied",
            UpstreamError::NotConfigured { .. } => "not_configured",
            UpstreamError::NotFound { .. } => "not_found",
            UpstreamError::RateLimited { .. } => "rate_limited",
            UpstreamError::Status { .. } => "status",
            UpstreamError::Transport { .. } => "transport",
            UpstreamError::Unreadable { .. } => "unreadable",
        }
    }

    /// The upstream's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            UpstreamError::RateLimited { retry_after, .. }
            | UpstreamError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the upstream is down or busy (the cache may serve a stale answer instead);
    /// false when the request or the credentials are wrong.
    pub fn is_outage(&self) -> bool {
        matches!(
            self,
            UpstreamError::RateLimited { .. }
                | UpstreamError::Status { .. }
                | UpstreamError::Transport { .. }
                | UpstreamError::Unreadable { .. }
        )
    }
}

/// A county's two halves: what the catalog says, and what Calls has.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogCounty {
    /// The county.
    pub county: County,
    /// Its feeds.
    pub feeds: Vec<Feed>,
}

/// A county's trunked systems and talkgroups on Broadcastify Calls.
#[derive(Debug, Clone, PartialEq)]
pub struct CallsGroups {
    /// The systems.
    pub systems: Vec<RadioSystem>,
    /// The talkgroups, by system and number.
    pub talkgroups: Vec<DirectoryTalkgroup>,
}

/// The county answer made of its two halves.
pub fn county_answer(catalog: CatalogCounty, groups: CallsGroups) -> GetCountyResponse {
    GetCountyResponse {
        county: Some(catalog.county),
        systems: groups.systems,
        talkgroups: groups.talkgroups,
        feeds: catalog.feeds,
        freshness: None,
    }
}

/// The user token of the Calls API, with its expiry.
#[derive(Debug, Clone)]
struct UserToken {
    uid: i64,
    token: SecretString,
    expires: SystemTime,
}

/// Both upstream clients.
#[derive(Debug)]
pub struct Upstream {
    http: reqwest::Client,
    config: UpstreamConfig,
    user: tokio::sync::Mutex<Option<UserToken>>,
}

fn epoch(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The first text under `error`, `message` or `errors[0].title`, if any: how both APIs say no
/// inside a 200 as well as in a 4xx.
fn refusal_text(body: &Map<String, Value>) -> Option<String> {
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    if let Some(error) = body.get("error").and_then(text) {
        return Some(error);
    }
    let first = body.get("errors")?.as_array()?.first()?;
    let code = first.get("code").and_then(text).unwrap_or_default();
    let title = first.get("title").and_then(text).unwrap_or_default();
    Some(format!("{code} {title}").trim().to_owned())
}

impl Upstream {
    /// Clients for `config`.
    ///
    /// # Errors
    ///
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(config: UpstreamConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("bcfy-directory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            config,
            user: tokio::sync::Mutex::new(None),
        })
    }

    /// Every state.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`].
    pub async fn states(&self) -> Result<Vec<State>, UpstreamError> {
        let body = self.catalog(&[("a", "states")], "state").await?;
        let mut states = model::records(&body, "states")
            .and_then(|records| {
                records
                    .into_iter()
                    .map(model::state)
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|error| UpstreamError::Unreadable {
                api: Api::Catalog,
                error,
            })?;
        states.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(states)
    }

    /// The counties of state `stid`.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`].
    pub async fn counties(&self, stid: i64) -> Result<Vec<County>, UpstreamError> {
        let stid = stid.to_string();
        let body = self
            .catalog(&[("a", "counties"), ("stid", &stid)], "state")
            .await?;
        let mut counties = model::records(&body, "counties")
            .and_then(|records| {
                records
                    .into_iter()
                    .map(model::county)
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|error| UpstreamError::Unreadable {
                api: Api::Catalog,
                error,
            })?;
        counties.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(counties)
    }

    /// County `ctid` and its feeds, from the catalog.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`].
    pub async fn catalog_county(&self, ctid: i64) -> Result<CatalogCounty, UpstreamError> {
        let id = ctid.to_string();
        let body = self
            .catalog(&[("a", "county"), ("ctid", &id)], "county")
            .await?;
        let unreadable = |error| UpstreamError::Unreadable {
            api: Api::Catalog,
            error,
        };
        let county = body
            .get("county")
            .and_then(Value::as_object)
            .ok_or(ShapeError::Missing("county"))
            .and_then(model::county)
            .map_err(unreadable)?;
        // A county without feeds may send no list at all.
        let feeds = match model::records(&body, "feeds") {
            Ok(records) => records
                .into_iter()
                .map(model::feed)
                .collect::<Result<Vec<_>, _>>(),
            Err(ShapeError::Missing(_)) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
        .map_err(unreadable)?;
        Ok(CatalogCounty { county, feeds })
    }

    /// Feed `id`.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`].
    pub async fn feed(&self, id: i64) -> Result<Feed, UpstreamError> {
        let feed_id = id.to_string();
        let body = self
            .catalog(&[("a", "feed"), ("feedId", &feed_id)], "feed")
            .await?;
        body.get("feed")
            .and_then(Value::as_object)
            .ok_or(ShapeError::Missing("feed"))
            .and_then(model::feed)
            .map_err(|error| UpstreamError::Unreadable {
                api: Api::Catalog,
                error,
            })
    }

    /// County `ctid`'s systems and talkgroups on Broadcastify Calls.
    ///
    /// # Errors
    ///
    /// [`UpstreamError`].
    pub async fn county_groups(&self, ctid: i64) -> Result<CallsGroups, UpstreamError> {
        let path = self
            .config
            .county_groups_path
            .replace("{ctid}", &ctid.to_string());
        let url = self.calls_url(&path)?;
        // A user token refused as expired is renewed once.
        let mut renewed = false;
        let body = loop {
            let token = self.jwt(true).await?;
            let response = self.http.get(url.clone()).bearer_auth(token).send().await;
            match self.read(Api::Calls, response, "county").await {
                Err(UpstreamError::PermissionDenied { .. }) if !renewed => {
                    *self.user.lock().await = None;
                    renewed = true;
                }
                other => break other?,
            }
        };
        let mut groups = model::records(&body, "groups")
            .and_then(|records| {
                records
                    .into_iter()
                    .map(model::talkgroup)
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|error| UpstreamError::Unreadable {
                api: Api::Calls,
                error,
            })?;
        groups
            .sort_by(|(a, _), (b, _)| (a.sid, a.tg, &a.group_id).cmp(&(b.sid, b.tg, &b.group_id)));
        let systems = model::systems(&groups);
        Ok(CallsGroups {
            systems,
            talkgroups: groups.into_iter().map(|(talkgroup, _)| talkgroup).collect(),
        })
    }

    async fn catalog(
        &self,
        params: &[(&str, &str)],
        what: &'static str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let key = self
            .config
            .catalog_key
            .as_ref()
            .ok_or(UpstreamError::NotConfigured {
                api: Api::Catalog,
                setting: "catalog_key",
            })?;
        let response = self
            .http
            .get(self.config.catalog_url.clone())
            .query(params)
            .query(&[("type", "json"), ("key", key.expose_secret())])
            .send()
            .await;
        self.read(Api::Catalog, response, what).await
    }

    fn calls_url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.config
            .calls_api_url
            .join(path)
            .map_err(|error| UpstreamError::Unreadable {
                api: Api::Calls,
                error: ShapeError::NotJson(format!("bad URL path `{path}`: {error}")),
            })
    }

    /// A JWT for the Calls API; with the user's token when `as_user`.
    async fn jwt(&self, as_user: bool) -> Result<String, UpstreamError> {
        let missing = |setting| UpstreamError::NotConfigured {
            api: Api::Calls,
            setting,
        };
        let app_id = self.config.app_id.as_deref().ok_or(missing("app_id"))?;
        let key_id = self
            .config
            .api_key_id
            .as_deref()
            .ok_or(missing("api_key_id"))?;
        let key = self.config.api_key.as_ref().ok_or(missing("api_key"))?;
        let now = SystemTime::now();
        let mut claims = Claims {
            iss: app_id.to_owned(),
            iat: epoch(now),
            exp: epoch(now + JWT_TTL),
            sub: None,
            utk: None,
        };
        if as_user {
            let user = self.user_token().await?;
            claims.sub = Some(user.uid);
            claims.utk = Some(user.token.expose_secret().to_owned());
        }
        Ok(jwt::sign(key_id, key.expose_secret().as_bytes(), &claims))
    }

    /// The user token, logging in when there is none or it expired.
    async fn user_token(&self) -> Result<UserToken, UpstreamError> {
        let mut user = self.user.lock().await;
        if let Some(token) = user.as_ref().filter(|t| t.expires > SystemTime::now()) {
            return Ok(token.clone());
        }
        let missing = |setting| UpstreamError::NotConfigured {
            api: Api::Calls,
            setting,
        };
        let username = self.config.username.as_deref().ok_or(missing("username"))?;
        let password = self.config.password.as_ref().ok_or(missing("password"))?;
        let url = self.calls_url(AUTH_PATH)?;
        let response = self
            .http
            .post(url)
            .bearer_auth(Box::pin(self.jwt(false)).await?)
            .form(&[
                ("username", username),
                ("password", password.expose_secret()),
            ])
            .send()
            .await;
        let body = self.read(Api::Calls, response, "account").await?;
        let unreadable = |field| UpstreamError::Unreadable {
            api: Api::Calls,
            error: ShapeError::Missing(field),
        };
        let uid = match body.get("uid") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or(unreadable("uid"))?;
        let token = body
            .get("token")
            .and_then(Value::as_str)
            .ok_or(unreadable("token"))?;
        // Renewed a minute early; a token without `exp` is kept for the JWT's lifetime.
        let expires = body
            .get("exp")
            .and_then(Value::as_i64)
            .map_or(SystemTime::now() + JWT_TTL, |exp| {
                SystemTime::UNIX_EPOCH + Duration::from_secs(exp.max(0) as u64)
            })
            - Duration::from_secs(60);
        let token = UserToken {
            uid,
            token: SecretString::from(token.to_owned()),
            expires,
        };
        *user = Some(token.clone());
        Ok(token)
    }

    /// The JSON object of an answer, or the typed failure.
    async fn read(
        &self,
        api: Api,
        response: Result<reqwest::Response, reqwest::Error>,
        what: &'static str,
    ) -> Result<Map<String, Value>, UpstreamError> {
        let transport = |error| UpstreamError::Transport { api, error };
        let response = response.map_err(transport)?;
        let status = response.status().as_u16();
        let retry_after = bcfy_broadcastify::retry_after::from_headers(response.headers());
        let body = response.bytes().await.map_err(transport)?;
        let parsed = model::object(&body);
        let refusal = parsed.as_ref().ok().and_then(refusal_text);
        let message = || refusal.clone().unwrap_or_else(|| format!("HTTP {status}"));
        match status {
            401 | 403 => Err(UpstreamError::PermissionDenied {
                api,
                message: message(),
            }),
            404 => Err(UpstreamError::NotFound {
                api,
                what,
                message: message(),
            }),
            429 => Err(UpstreamError::RateLimited { api, retry_after }),
            200..=299 => {
                let body = parsed.map_err(|error| UpstreamError::Unreadable { api, error })?;
                match refusal {
                    // A refusal inside a 200: about the key when it says so, else about the id.
                    Some(text) if mentions_credentials(&text) => {
                        Err(UpstreamError::PermissionDenied { api, message: text })
                    }
                    Some(text) => Err(UpstreamError::NotFound {
                        api,
                        what,
                        message: text,
                    }),
                    None => Ok(body),
                }
            }
            status => Err(UpstreamError::Status {
                api,
                status,
                retry_after,
            }),
        }
    }
}

/// True for a refusal about the key, the signature or the account (the Calls API's codes 103 and
/// 108 are a bad signature and an unknown key).
fn mentions_credentials(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    [
        "key",
        "auth",
        "token",
        "signature",
        "permission",
        "103",
        "108",
    ]
    .iter()
    .any(|word| text.contains(word))
}
