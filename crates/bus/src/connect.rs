//! Connecting to NATS from config: server list, client name, credentials (creds file, NKey seed,
//! user/password or token), TLS with a CA and a client certificate.
//!
//! NOTE(connect): the client retries the initial connect and reconnects forever with jittered
//! exponential back-off. A service that starts before NATS (common on Kubernetes) waits instead
//! of crash-looping; it only reports ready once the topology is ensured over a live connection.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer};

use crate::backoff::Backoff;

/// Default server for local runs.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// First reconnect delay; doubled per attempt up to `reconnect_max_delay`.
const RECONNECT_BASE_DELAY: Duration = Duration::from_millis(100);

/// NATS connection settings (`nats.*`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct NatsConfig {
    /// Servers to connect to; a list or a comma-separated string
    /// (`BCFY_NATS__URLS=nats://a:4222,nats://b:4222`).
    #[serde(deserialize_with = "url_list")]
    #[schemars(with = "Vec<String>")]
    pub urls: Vec<String>,
    /// Connection name shown by the server (defaults to the service name).
    pub name: Option<String>,
    /// Prefix of the subjects replies come back on (defaults to `_INBOX_{service}`): a user
    /// limited to its own permissions may subscribe to its own inbox only.
    pub inbox_prefix: Option<String>,
    /// A `.creds` file (JWT + NKey seed), as `nsc` writes them.
    pub credentials_file: Option<PathBuf>,
    /// A file holding an NKey seed (`SU...`).
    pub nkey_seed_file: Option<PathBuf>,
    /// User for user/password auth.
    pub user: Option<String>,
    /// Password for user/password auth.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub password: Option<SecretString>,
    /// Token auth.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub token: Option<SecretString>,
    /// TLS settings.
    pub tls: TlsConfig,
    /// Time allowed for one connection attempt.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub connect_timeout: Duration,
    /// Time allowed for a request (including JetStream API calls).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub request_timeout: Duration,
    /// Longest pause between reconnect attempts.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub reconnect_max_delay: Duration,
}

/// TLS settings (`nats.tls.*`).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct TlsConfig {
    /// Refuse to connect without TLS.
    pub required: bool,
    /// CA bundle (PEM) to verify the server with.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM) for mutual TLS.
    pub key_file: Option<PathBuf>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: vec![DEFAULT_NATS_URL.to_owned()],
            name: None,
            inbox_prefix: None,
            credentials_file: None,
            nkey_seed_file: None,
            user: None,
            password: None,
            token: None,
            tls: TlsConfig::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            reconnect_max_delay: Duration::from_secs(8),
        }
    }
}

fn url_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    let urls = match Urls::deserialize(deserializer)? {
        Urls::One(text) => text.split(',').map(|u| u.trim().to_owned()).collect(),
        Urls::Many(urls) => urls,
    };
    Ok(urls.into_iter().filter(|u| !u.is_empty()).collect())
}

impl Validate for NatsConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        let mut issue =
            |name: &str, message: &str| issues.push(ConfigIssue::new(prefix, name, message));
        if self.urls.is_empty() {
            issue("urls", "at least one server is needed");
        }
        for url in &self.urls {
            if url.parse::<async_nats::ServerAddr>().is_err() {
                issue("urls", &format!("`{url}` is not a NATS server address"));
            }
        }
        let methods = [
            self.credentials_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            issue(
                "credentials_file",
                "choose one of credentials_file, nkey_seed_file, user/password, token",
            );
        }
        if let Some(prefix) = &self.inbox_prefix {
            let valid = !prefix.is_empty()
                && prefix
                    .split('.')
                    .all(|token| !token.is_empty() && !matches!(token, "*" | ">"))
                && !prefix.contains(char::is_whitespace);
            if !valid {
                issue("inbox_prefix", "must be a subject without wildcards");
            }
        }
        if self.user.is_some() != self.password.is_some() {
            issue("user", "user and password go together");
        }
        for (name, path) in [
            ("credentials_file", &self.credentials_file),
            ("nkey_seed_file", &self.nkey_seed_file),
            ("tls.ca_file", &self.tls.ca_file),
            ("tls.cert_file", &self.tls.cert_file),
            ("tls.key_file", &self.tls.key_file),
        ] {
            if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                issue(name, &format!("{} is not a readable file", path.display()));
            }
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            issue(
                "tls.cert_file",
                "a client certificate needs its key (tls.key_file), and the reverse",
            );
        }
    }
}

/// Why a connection could not be set up (bad credentials files; network trouble is retried).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A credentials or seed file could not be read.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server, or the TLS handshake with it, refused the client.
    #[error("NATS refused the connection ({0}); check nats.tls and the credentials")]
    Refused(async_nats::ConnectError),
    /// The client refused the options.
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
}

/// The delay before reconnect attempt `attempt` (0 for the first): 100 ms doubling up to
/// `max`, jittered so a fleet does not reconnect in lockstep.
pub fn reconnect_delay(attempt: usize, max: Duration) -> Duration {
    Backoff::new(RECONNECT_BASE_DELAY, max).jittered(u64::try_from(attempt).unwrap_or(u64::MAX) + 1)
}

/// Connects with `config`, naming the connection `service` unless the config names it.
///
/// The first attempt is made at once: a server that refuses the client (a certificate it does
/// not trust or that does not match, credentials it rejects) is a configuration error, reported
/// with the server's or TLS's reason instead of retried forever. A server that cannot be reached
/// yet is waited for in the background.
///
/// # Errors
///
/// When a credentials file cannot be read, or the server refuses the client.
pub async fn connect(
    config: &NatsConfig,
    service: &str,
) -> Result<async_nats::Client, ConnectError> {
    match options(config, service)?.connect(config.urls.clone()).await {
        Ok(client) => Ok(client),
        Err(error) if is_refusal(&error) => Err(ConnectError::Refused(error)),
        Err(error) => {
            tracing::warn!(error = %error, "NATS cannot be reached yet; retrying.");
            options(config, service)?
                .retry_on_initial_connect()
                .connect(config.urls.clone())
                .await
                .map_err(ConnectError::Connect)
        }
    }
}

/// Whether the server turned the client down or the TLS handshake failed (an untrusted or
/// mismatched certificate), as opposed to the server not answering.
fn is_refusal(error: &async_nats::ConnectError) -> bool {
    use async_nats::ConnectErrorKind as Kind;
    // The client reports a failed handshake as an I/O error carrying rustls's reason.
    let handshake_failed = std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| inner.is::<rustls::Error>());
    handshake_failed
        || matches!(
            error.kind(),
            Kind::Tls | Kind::AuthorizationViolation | Kind::Authentication
        )
}

/// The client options `config` asks for.
fn options(config: &NatsConfig, service: &str) -> Result<ConnectOptions, ConnectError> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|source| ConnectError::ReadFile {
            path: path.clone(),
            source,
        })
    };
    let mut options = ConnectOptions::new();
    if let Some(path) = &config.credentials_file {
        options = options
            .credentials(&read(path)?)
            .map_err(|source| ConnectError::ReadFile {
                path: path.clone(),
                source,
            })?;
    }
    if let Some(path) = &config.nkey_seed_file {
        options = options.nkey(read(path)?.trim().to_owned());
    }
    if let (Some(user), Some(password)) = (&config.user, &config.password) {
        options = options.user_and_password(user.clone(), password.expose_secret().to_owned());
    }
    if let Some(token) = &config.token {
        options = options.token(token.expose_secret().to_owned());
    }
    if let Some(ca) = &config.tls.ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    let max_delay = config.reconnect_max_delay;
    let name = config.name.clone().unwrap_or_else(|| service.to_owned());
    let inbox_prefix = config
        .inbox_prefix
        .clone()
        .unwrap_or_else(|| crate::access::inbox_prefix(service));
    Ok(options
        .name(name)
        .custom_inbox_prefix(inbox_prefix)
        .require_tls(config.tls.required)
        .connection_timeout(config.connect_timeout)
        .request_timeout(Some(config.request_timeout))
        .max_reconnects(None)
        .reconnect_delay_callback(move |attempt| reconnect_delay(attempt, max_delay))
        .event_callback(|event| async move { log_event(&event) }))
}

fn log_event(event: &Event) {
    match event {
        Event::Connected => tracing::info!("Connected to NATS."),
        Event::Closed => tracing::info!("NATS connection closed."),
        Event::Disconnected => tracing::warn!("Disconnected from NATS; reconnecting."),
        Event::LameDuckMode => tracing::warn!("NATS server entered lame duck mode."),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "Slow NATS consumer."),
        other => tracing::warn!(event = %other, "NATS client event."),
    }
}

#[cfg(test)]
mod tests {
    use bcfy_config::ConfigSource;

    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Holder {
        nats: NatsConfig,
    }

    impl Validate for Holder {
        fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
            self.nats
                .validate(&bcfy_config::join_path(prefix, "nats"), issues);
        }
    }

    #[test]
    fn urls_come_as_a_comma_separated_env_value() {
        let holder: Holder = ConfigSource::default()
            .with_env([("BCFY_NATS__URLS", "nats://a:4222, nats://b:4222")])
            .load()
            .unwrap();
        assert_eq!(holder.nats.urls, ["nats://a:4222", "nats://b:4222"]);
    }

    #[test]
    fn conflicting_and_missing_settings_are_all_reported() {
        let error = ConfigSource::default()
            .with_env([
                ("BCFY_NATS__URLS", "not a url at all"),
                ("BCFY_NATS__USER", "bcfy"),
                ("BCFY_NATS__TOKEN", "t"),
                ("BCFY_NATS__TLS__CERT_FILE", "/nonexistent/cert.pem"),
                ("BCFY_NATS__INBOX_PREFIX", "_INBOX.>"),
            ])
            .load::<Holder>()
            .unwrap_err();
        let settings: Vec<&str> = error.issues().iter().map(|i| i.setting.as_str()).collect();
        assert_eq!(
            settings,
            [
                "nats.urls",
                "nats.credentials_file",
                "nats.inbox_prefix",
                "nats.user",
                "nats.tls.cert_file",
                "nats.tls.cert_file"
            ],
            "{error}"
        );
    }

    #[test]
    fn passwords_and_tokens_never_print() {
        let holder: Holder = ConfigSource::default()
            .with_env([
                ("BCFY_NATS__USER", "u"),
                ("BCFY_NATS__PASSWORD", "hunter2-secret"),
            ])
            .load()
            .unwrap();
        assert!(!format!("{holder:?}").contains("hunter2-secret"));
    }

    #[test]
    fn reconnect_delays_grow_with_jitter_and_stay_capped() {
        let max = Duration::from_secs(8);
        for attempt in 0..40 {
            let delay = reconnect_delay(attempt, max);
            let ceiling = RECONNECT_BASE_DELAY
                .saturating_mul(1 << attempt.min(16))
                .min(max);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "attempt {attempt}: {delay:?}"
            );
        }
    }
}
