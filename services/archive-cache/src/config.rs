//! The archive cache's settings: where it listens (gRPC, optionally with TLS and client
//! certificates; the NATS service), how long blocks stay fresh, and the upstream account, whose
//! session and request budget it shares with the poller through KV.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bcfy_broadcastify::ClientConfig;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::topology::TopologyConfig;
use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate, join_path};
use bcfy_directory::DirectoryConfig;
use bcfy_runtime::admin::AdminConfig;
use bcfy_runtime::telemetry::LogConfig;
use serde::Deserialize;

/// Everything the archive cache reads.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ArchiveCacheConfig {
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream and bucket limits (`topology.archive_cache_max_bytes` bounds the cache).
    pub topology: TopologyConfig,
    /// The Broadcastify account and endpoints.
    pub broadcastify: ClientConfig,
    /// The gRPC server.
    pub grpc: GrpcConfig,
    /// The NATS request/reply service.
    pub nats_service: NatsServiceConfig,
    /// Freshness and single-flight.
    pub cache: CacheConfig,
    /// The fleet's upstream request budget (shared with the poller); unset = no budget.
    pub rate_limit_per_minute: Option<u32>,
    /// How long a request may wait for the budget before it is answered UNAVAILABLE.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub budget_wait_max: Duration,
    /// Most blocks one range request may cover.
    pub max_range_blocks: u32,
    /// The Broadcastify directory (states, counties, talkgroups, feeds), served beside the
    /// archive.
    pub directory: DirectoryConfig,
    /// Admin port.
    pub admin: AdminConfig,
    /// Logs.
    pub log: LogConfig,
    /// This replica's name in KV claims (default: host name and process id).
    pub instance_id: Option<String>,
    /// How long shutdown waits for requests in flight.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub shutdown_grace: Duration,
}

impl Default for ArchiveCacheConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            topology: TopologyConfig::default(),
            broadcastify: ClientConfig::default(),
            grpc: GrpcConfig::default(),
            nats_service: NatsServiceConfig::default(),
            cache: CacheConfig::default(),
            rate_limit_per_minute: None,
            budget_wait_max: Duration::from_secs(2),
            max_range_blocks: 48 * 7,
            directory: DirectoryConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            instance_id: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

bcfy_runtime::service_config!(ArchiveCacheConfig);

/// `grpc.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Listen address.
    pub listen_addr: SocketAddr,
    /// TLS; plain HTTP/2 when unset.
    pub tls: Option<TlsConfig>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 50051)),
            tls: None,
        }
    }
}

/// `grpc.tls.*`: PEM files.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[schemars(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain.
    pub cert_path: PathBuf,
    /// The server's private key.
    pub key_path: PathBuf,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca_path: Option<PathBuf>,
}

/// `nats_service.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct NatsServiceConfig {
    /// Serve the NATS API.
    pub enabled: bool,
    /// The service name (`nats micro list` shows it); endpoints are `{subject_prefix}.get` and
    /// `{subject_prefix}.range`.
    pub name: String,
    /// Subject prefix of the endpoints.
    pub subject_prefix: String,
}

impl Default for NatsServiceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "archive-cache".to_owned(),
            subject_prefix: "archive".to_owned(),
        }
    }
}

/// `cache.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a closed block is served without asking the upstream.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub closed_ttl: Duration,
    /// How long the block still filling is served without asking the upstream.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub current_ttl: Duration,
    /// A block counts as closed this long after its end (late calls still arrive before).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub closed_margin: Duration,
    /// How long a replica's claim to fetch a block lasts if it dies before finishing.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub claim_ttl: Duration,
    /// Fresh blocks each replica also keeps in memory (0: none), so a hit needs no KV read.
    pub memory_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            closed_ttl: Duration::from_secs(24 * 3600),
            current_ttl: Duration::from_secs(60),
            closed_margin: Duration::from_secs(300),
            claim_ttl: Duration::from_secs(30),
            memory_entries: 4096,
        }
    }
}

impl Validate for ArchiveCacheConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        bcfy_runtime::service::validate_shared(self, prefix, issues);
        self.broadcastify
            .validate(&join_path(prefix, "broadcastify"), issues);
        self.directory
            .validate(&join_path(prefix, "directory"), issues);
        let cache = join_path(prefix, "cache");
        if self.cache.current_ttl < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                &cache,
                "current_ttl",
                "must be at least 1s",
            ));
        }
        if self.cache.closed_ttl < self.cache.current_ttl {
            issues.push(ConfigIssue::new(
                &cache,
                "closed_ttl",
                "must be at least current_ttl",
            ));
        }
        if self.cache.claim_ttl < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(&cache, "claim_ttl", "must be at least 1s"));
        }
        if self.max_range_blocks == 0 {
            issues.push(ConfigIssue::new(
                prefix,
                "max_range_blocks",
                "must be at least 1",
            ));
        }
        let service = join_path(prefix, "nats_service");
        if self.nats_service.enabled && self.nats_service.subject_prefix.trim().is_empty() {
            issues.push(ConfigIssue::new(
                &service,
                "subject_prefix",
                "must not be empty",
            ));
        }
    }
}
