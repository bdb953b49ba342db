//! Client settings (`broadcastify.*` in a service config).

use std::time::Duration;

use bcfy_config::units::{self, ByteSize};
use bcfy_config::{ConfigIssue, Validate};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// The site's own origin.
pub const DEFAULT_BASE_URL: &str = "https://www.broadcastify.com";
/// The calls audio CDN.
pub const DEFAULT_CDN_URL: &str = "https://calls.broadcastify.com";
/// The CDN host used for calls flagged `transcribe: 1` (protocol §5.1).
pub const DEFAULT_ALTERNATE_CDN_URL: &str = "https://calls-ai-1.broadcastify.com";
/// The browser `User-Agent` of spec §3.1.
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";
/// The browser `Accept` of spec §3.1.
pub const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

/// Settings of [`Client`](crate::Client).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ClientConfig {
    /// The website origin (login, live calls, archive). Point it at `bcfy-sim` for local runs.
    pub base_url: Url,
    /// The audio CDN origin.
    pub cdn_url: Url,
    /// The CDN origin for calls flagged `transcribe: 1`.
    pub alternate_cdn_url: Url,
    /// Account name (or e-mail); needed for talkgroup, system, node and archive requests.
    pub username: Option<String>,
    /// Account password.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub password: Option<SecretString>,
    /// `User-Agent` sent on every request.
    pub user_agent: String,
    /// `Accept-Language` sent on every request.
    pub accept_language: String,
    /// Time allowed for one request, body included; for a live-calls answer, which grows with
    /// the shard's traffic (a sweep of a busy shard is hundreds of MB), the longest wait for its
    /// headers or its next bytes instead.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub request_timeout: Duration,
    /// Time allowed to connect.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub connect_timeout: Duration,
    /// Requests in flight at once from this process (a courtesy to the site).
    pub max_concurrency: usize,
    /// Largest audio file accepted.
    pub max_audio_bytes: ByteSize,
    /// How many times a cut audio body is resumed with `Range` before giving up.
    pub audio_resume_attempts: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let url = |u: &str| Url::parse(u).expect("valid constant URL");
        Self {
            base_url: url(DEFAULT_BASE_URL),
            cdn_url: url(DEFAULT_CDN_URL),
            alternate_cdn_url: url(DEFAULT_ALTERNATE_CDN_URL),
            username: None,
            password: None,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            accept_language: "en-US,en;q=0.9".to_owned(),
            request_timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(5),
            max_concurrency: 4,
            max_audio_bytes: ByteSize(16 << 20),
            audio_resume_attempts: 3,
        }
    }
}

impl ClientConfig {
    /// The same settings with the site and both CDN hosts at one origin (how `bcfy-sim` serves
    /// them).
    #[must_use]
    pub fn with_origin(self, origin: Url) -> Self {
        Self {
            base_url: origin.clone(),
            cdn_url: origin.clone(),
            alternate_cdn_url: origin,
            ..self
        }
    }
}

impl Validate for ClientConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if self.username.is_some() != self.password.is_some() {
            issues.push(ConfigIssue::new(
                prefix,
                "username",
                "username and password go together",
            ));
        }
        if self.max_concurrency == 0 {
            issues.push(ConfigIssue::new(
                prefix,
                "max_concurrency",
                "must be at least 1",
            ));
        }
        bcfy_config::checks::http_urls(
            prefix,
            &[
                ("base_url", self.base_url.scheme()),
                ("cdn_url", self.cdn_url.scheme()),
                ("alternate_cdn_url", self.alternate_cdn_url.scheme()),
            ],
            issues,
        );
        bcfy_config::checks::above_zero(prefix, "request_timeout", self.request_timeout, issues);
    }
}
