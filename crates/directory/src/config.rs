//! `directory.*` of the service hosting the directory (the archive cache).

use std::time::Duration;

use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate, join_path};
use serde::Deserialize;

use crate::directory::CacheSettings;
use crate::upstream::UpstreamConfig;

/// The directory's settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Serve the directory (gRPC `DirectoryService` and the NATS service `directory`).
    pub enabled: bool,
    /// The upstream APIs and their credentials.
    pub upstream: UpstreamConfig,
    /// How long a level is served without asking the upstream; after that it is fetched again,
    /// and served stale only while the upstream fails.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub ttl: Duration,
    /// How long a replica's claim to fetch a level lasts if it dies before finishing.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub claim_ttl: Duration,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            upstream: UpstreamConfig::default(),
            ttl: Duration::from_secs(24 * 3600),
            claim_ttl: Duration::from_secs(30),
        }
    }
}

impl DirectoryConfig {
    /// The cache settings, with how long a lookup may wait for the shared budget.
    pub fn cache(&self, budget_wait_max: Duration) -> CacheSettings {
        CacheSettings {
            ttl: self.ttl,
            claim_ttl: self.claim_ttl,
            budget_wait_max,
        }
    }
}

impl Validate for DirectoryConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if !self.enabled {
            return;
        }
        self.upstream
            .validate(&join_path(prefix, "upstream"), issues);
        if self.ttl < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(prefix, "ttl", "must be at least 1s"));
        }
        if self.claim_ttl < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(prefix, "claim_ttl", "must be at least 1s"));
        }
    }
}
