//! The gateway's settings: where it listens, how long it keeps idle streams open, how far a
//! client may fall behind, and who may read (API keys, anonymous access, CORS).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bcfy_bus::connect::NatsConfig;
use bcfy_bus::topology::TopologyConfig;
use bcfy_config::units;
use bcfy_config::{ConfigError, ConfigIssue, ConfigSource, Validate, join_path};
use bcfy_runtime::admin::AdminConfig;
use bcfy_runtime::telemetry::LogConfig;
use serde::Deserialize;

use crate::auth::{Grant, KeysFile};

/// Everything the gateway reads.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct GatewayConfig {
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream and bucket limits.
    pub topology: TopologyConfig,
    /// The public HTTP listener.
    pub http: HttpConfig,
    /// Who may read.
    pub auth: AuthConfig,
    /// Transcript search.
    pub search: SearchConfig,
    /// Admin port.
    pub admin: AdminConfig,
    /// Logs.
    pub log: LogConfig,
    /// How long shutdown waits for open requests after telling streaming clients to reconnect.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub shutdown_grace: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            topology: TopologyConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            search: SearchConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

bcfy_runtime::service_config!(GatewayConfig);

/// `search.*`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct SearchConfig {
    /// Where the transcript index lives; a restarted gateway goes on from where it stopped.
    /// Unset: in memory, built from the `TRANSCRIPTIONS` stream at every start.
    pub index_dir: Option<PathBuf>,
}

/// `http.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct HttpConfig {
    /// Listen address of the API.
    pub listen_addr: SocketAddr,
    /// TLS (rustls); plain HTTP when unset, e.g. behind an ingress that terminates TLS.
    pub tls: Option<TlsConfig>,
    /// Origins a browser page may call the API from (`*` for any); none when empty.
    pub cors_origins: Vec<String>,
    /// How often an idle event stream gets a heartbeat (keeps proxies from closing it).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub heartbeat: Duration,
    /// Events a streaming client may fall behind the newest before it is disconnected. One
    /// buffer of this many events is shared by every client, so memory does not grow with
    /// slow clients.
    pub client_buffer: usize,
    /// Longest a write to a client may wait; a connection whose client stopped reading is
    /// closed after it.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub write_timeout: Duration,
    /// Audio files kept in memory for repeated downloads (they never change).
    pub audio_cache_bytes: bcfy_config::units::ByteSize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls: None,
            cors_origins: Vec::new(),
            heartbeat: Duration::from_secs(15),
            client_buffer: 4096,
            write_timeout: Duration::from_secs(30),
            audio_cache_bytes: bcfy_config::units::ByteSize(64 << 20),
        }
    }
}

/// `http.tls.*`: PEM files.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[schemars(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain.
    pub cert_path: PathBuf,
    /// The server's private key.
    pub key_path: PathBuf,
}

/// `auth.*`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AuthConfig {
    /// The API keys file (YAML, `keys:` with each key's SHA-256, scope and rate; a mounted
    /// Kubernetes Secret in the chart). No key is accepted when unset.
    pub keys_file: Option<PathBuf>,
    /// Whether a request without a key is served (with the `anonymous` grant); refused (401)
    /// otherwise.
    pub allow_anonymous: bool,
    /// What a request without a key may see, when `allow_anonymous` (default: everything, at
    /// any rate).
    pub anonymous: Grant,
}

impl AuthConfig {
    /// The grant of requests without a key, if they are served.
    pub fn anonymous_grant(&self) -> Option<Grant> {
        self.allow_anonymous.then(|| self.anonymous.clone())
    }
}

impl Validate for GatewayConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        bcfy_runtime::service::validate_shared(self, prefix, issues);
        let http = join_path(prefix, "http");
        if self.http.heartbeat < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(&http, "heartbeat", "must be at least 1s"));
        }
        if self.http.write_timeout < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                &http,
                "write_timeout",
                "must be at least 1s",
            ));
        }
        if !(16..=1 << 20).contains(&self.http.client_buffer) {
            issues.push(ConfigIssue::new(
                &http,
                "client_buffer",
                "must be between 16 and 1048576 events",
            ));
        }
        for (i, origin) in self.http.cors_origins.iter().enumerate() {
            if origin != "*" && axum::http::HeaderValue::from_str(origin).is_err() {
                issues.push(ConfigIssue::new(
                    &http,
                    &format!("cors_origins.{i}"),
                    "not a valid origin",
                ));
            }
        }
        let auth = join_path(prefix, "auth");
        if let Some(path) = &self.auth.keys_file {
            let at = join_path(&auth, "keys_file");
            match ConfigSource::default().with_file(path).load::<KeysFile>() {
                Ok(_) => {}
                Err(ConfigError::Invalid(problems)) => issues.extend(
                    problems
                        .into_iter()
                        .map(|p| ConfigIssue::new(&at, &p.setting, p.message)),
                ),
                Err(error) => issues.push(ConfigIssue::new(&auth, "keys_file", error.to_string())),
            }
        }
        self.auth
            .anonymous
            .validate(&join_path(&auth, "anonymous"), issues);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_lets_anonymous_readers_in() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/demo/gateway.yaml"
        );
        let config: GatewayConfig = ConfigSource::default()
            .with_file(path)
            .load()
            .expect("the demo config is valid");
        assert_eq!(config.auth.anonymous_grant(), Some(Grant::default()));
        assert_eq!(config.http.listen_addr.port(), 8080);
    }

    #[test]
    fn without_a_setting_nobody_gets_in_anonymously() {
        assert_eq!(GatewayConfig::default().auth.anonymous_grant(), None);
    }
}
