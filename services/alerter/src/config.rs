//! Everything the alerter reads: its consumer of transcripts, the rules written in the config
//! file (more come from the `alert-rules` bucket at runtime), the destinations alerts are
//! delivered to, and the integration monitor's thresholds.

use std::path::PathBuf;
use std::time::Duration;

use bcfy_bus::Backoff;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::subject::{ALL_ALERTS, ALL_TRANSCRIPTIONS};
use bcfy_bus::topology::{CONSUMER_ALERTER, TopologyConfig};
use bcfy_config::units;
use bcfy_config::{ConfigError, ConfigIssue, ConfigSource, Validate, checks, join_path};
use bcfy_runtime::admin::AdminConfig;
use bcfy_runtime::telemetry::LogConfig;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use url::Url;

use crate::rule::RuleSpec;

/// The alerter's settings.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AlerterConfig {
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream and bucket limits.
    pub topology: TopologyConfig,
    /// Which transcripts this replica evaluates.
    pub consumer: ConsumerConfig,
    /// Rules from the config file; rules in the `alert-rules` bucket come on top (one of the
    /// same name replaces the file's). An invalid rule does not stop the service: it is
    /// reported (log, `bcfy_alerter_rule_invalid`) and the others work.
    pub rules: Vec<RuleSpec>,
    /// Where alerts go.
    pub destinations: Vec<DestinationConfig>,
    /// A YAML file of more destinations (`destinations: [...]`), e.g. mounted from a Secret,
    /// so chat URLs and signing keys stay out of the config file.
    pub destinations_file: Option<PathBuf>,
    /// The gateway's public address; chat messages then link to the call in its console.
    pub console_url: Option<Url>,
    /// The integration monitor.
    pub monitor: MonitorConfig,
    /// Admin port.
    pub admin: AdminConfig,
    /// Logs.
    pub log: LogConfig,
    /// How long shutdown waits for evaluations and deliveries in flight.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub shutdown_grace: Duration,
}

impl Default for AlerterConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            topology: TopologyConfig::default(),
            consumer: ConsumerConfig::default(),
            rules: Vec::new(),
            destinations: Vec::new(),
            destinations_file: None,
            console_url: None,
            monitor: MonitorConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

bcfy_runtime::service_config!(AlerterConfig);

impl Validate for AlerterConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        bcfy_runtime::service::validate_shared(self, prefix, issues);
        let consumer = join_path(prefix, "consumer");
        if !bcfy_bus::call_id::is_token_safe(&self.consumer.durable_name) {
            issues.push(ConfigIssue::new(
                &consumer,
                "durable_name",
                "must be [A-Za-z0-9_-]",
            ));
        }
        if self.consumer.concurrency == 0 {
            issues.push(ConfigIssue::new(
                &consumer,
                "concurrency",
                "must be at least 1",
            ));
        }
        checks::above_zero(&consumer, "ack_wait", self.consumer.ack_wait, issues);
        DestinationsFile {
            destinations: self.destinations.clone(),
        }
        .validate(prefix, issues);
        if let Some(path) = &self.destinations_file {
            let at = join_path(prefix, "destinations_file");
            match self.all_destinations().map_err(|error| *error) {
                Ok(all) => {
                    let mut names = std::collections::BTreeSet::new();
                    for destination in &all {
                        if !names.insert(destination.name.as_str()) {
                            issues.push(ConfigIssue::new(
                                &at,
                                &destination.name,
                                format!(
                                    "destination `{}` is also in the config file",
                                    destination.name
                                ),
                            ));
                        }
                    }
                }
                Err(ConfigError::Invalid(problems)) => issues.extend(
                    problems
                        .into_iter()
                        .map(|p| ConfigIssue::new(&at, &p.setting, p.message)),
                ),
                Err(error) => issues.push(ConfigIssue::new(
                    prefix,
                    "destinations_file",
                    format!("{}: {error}", path.display()),
                )),
            }
        }
        if let Some(url) = &self.console_url {
            checks::http_urls(prefix, &[("console_url", url.scheme())], issues);
        }
        self.monitor.validate(&join_path(prefix, "monitor"), issues);
    }
}

impl AlerterConfig {
    /// The config file's destinations, then the destinations file's.
    ///
    /// # Errors
    ///
    /// When the destinations file cannot be read or holds invalid destinations.
    pub fn all_destinations(&self) -> Result<Vec<DestinationConfig>, Box<ConfigError>> {
        let mut all = self.destinations.clone();
        if let Some(path) = &self.destinations_file {
            let file: DestinationsFile = ConfigSource::default().with_file(path).load()?;
            all.extend(file.destinations);
        }
        Ok(all)
    }
}

/// The destinations file.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DestinationsFile {
    /// Where alerts go.
    pub destinations: Vec<DestinationConfig>,
}

impl Validate for DestinationsFile {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        let mut names = std::collections::BTreeSet::new();
        for (i, destination) in self.destinations.iter().enumerate() {
            let at = join_path(prefix, &format!("destinations[{i}]"));
            destination.validate(&at, issues);
            if !names.insert(destination.name.as_str()) {
                issues.push(ConfigIssue::new(
                    &at,
                    "name",
                    "is used by another destination",
                ));
            }
        }
    }
}

/// `consumer.*`: the durable consumer of transcripts.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Durable consumer name (replicas with the same name share the work).
    pub durable_name: String,
    /// Transcripts taken.
    pub filter_subject: String,
    /// Transcripts evaluated at once by one replica.
    pub concurrency: usize,
    /// How long a transcript may stay unacknowledged before it is redelivered.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub ack_wait: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            durable_name: CONSUMER_ALERTER.to_owned(),
            filter_subject: ALL_TRANSCRIPTIONS.to_owned(),
            concurrency: 8,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// The message format a destination takes.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// The alert as JSON, signed (HMAC-SHA256) when a secret is set.
    #[default]
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord webhook.
    Discord,
    /// A Microsoft Teams incoming webhook (Workflows), as an Adaptive Card.
    Teams,
}

/// `destinations[]`: one receiver of alerts.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Its name (letters, digits, `-`, `_`); its consumer is `alert-delivery-{name}`.
    pub name: String,
    /// The format.
    pub kind: DestinationKind,
    /// Where to POST (required). Chat webhook URLs carry their token, so this is kept secret.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub url: Option<SecretString>,
    /// For `webhook`: the key of the `X-Bcfy-Signature-256` header (`sha256=` and the
    /// hex HMAC-SHA256 of the body).
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub secret: Option<SecretString>,
    /// Which alerts: a subject filter, e.g. `alerts.structure-fire.>` or
    /// `alerts.system.>`.
    pub filter: String,
    /// How long one delivery may take.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub timeout: Duration,
    /// First wait after a failed delivery; it doubles per attempt.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub retry_initial_delay: Duration,
    /// Longest wait between attempts.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub retry_max_delay: Duration,
}

impl Default for DestinationConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: DestinationKind::Webhook,
            url: None,
            secret: None,
            filter: ALL_ALERTS.to_owned(),
            timeout: Duration::from_secs(10),
            retry_initial_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(60),
        }
    }
}

impl DestinationConfig {
    /// The delivery retry delays.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.retry_initial_delay, self.retry_max_delay)
    }

    /// The URL, parsed.
    ///
    /// # Errors
    ///
    /// When it is not a URL (validation reports it first).
    pub fn parsed_url(&self) -> Result<Url, url::ParseError> {
        Url::parse(self.url.as_ref().map_or("", |url| url.expose_secret()))
    }
}

impl Validate for DestinationConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if !bcfy_bus::call_id::is_token_safe(&self.name) {
            issues.push(ConfigIssue::new(prefix, "name", "must be [A-Za-z0-9_-]"));
        }
        match self.parsed_url() {
            Ok(url) => checks::http_urls(prefix, &[("url", url.scheme())], issues),
            Err(_) => issues.push(ConfigIssue::new(prefix, "url", "must be an http(s) URL")),
        }
        if self.filter != ALL_ALERTS && !self.filter.starts_with("alerts.") {
            issues.push(ConfigIssue::new(
                prefix,
                "filter",
                "must be under `alerts.`",
            ));
        }
        checks::above_zero(prefix, "timeout", self.timeout, issues);
        if self.retry_initial_delay.is_zero() || self.retry_initial_delay > self.retry_max_delay {
            issues.push(ConfigIssue::new(
                prefix,
                "retry_initial_delay",
                "must be > 0 and <= retry_max_delay",
            ));
        }
    }
}

/// `monitor.*`: the integration monitor, which raises `alerts.system.{kind}` from the services'
/// own reports and the streams' state, and resolves them when they clear.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Whether this replica watches (every replica may; they agree through the `alert-state`
    /// bucket, so each condition is raised once).
    pub enabled: bool,
    /// How often conditions are evaluated.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub interval: Duration,
    /// A replica's report older than this no longer counts (the replica is gone).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub stale_after: Duration,
    /// A shard's failed polls in a row that raise `poll_failures`.
    pub poll_failures: u32,
    /// Failed transcriptions in a row that raise `stt_failures`.
    pub stt_failures: u32,
    /// An upstream back-off at least this long raises `upstream_backoff`.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub upstream_backoff: Duration,
    /// Dead letters per minute that raise `dead_letters` (0: off).
    pub dead_letters_per_minute: u32,
    /// A consumer whose backlog only grew for this long raises `backlog_growing`.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub backlog_growing_for: Duration,
    /// …when it is at least this many messages.
    pub backlog_min: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(10),
            stale_after: Duration::from_secs(30),
            poll_failures: 5,
            stt_failures: 5,
            upstream_backoff: Duration::from_secs(60),
            dead_letters_per_minute: 10,
            backlog_growing_for: Duration::from_secs(600),
            backlog_min: 100,
        }
    }
}

impl Validate for MonitorConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        checks::above_zero(prefix, "interval", self.interval, issues);
        if self.stale_after < self.interval {
            issues.push(ConfigIssue::new(
                prefix,
                "stale_after",
                "must be >= interval",
            ));
        }
        for (name, value) in [
            ("poll_failures", self.poll_failures),
            ("stt_failures", self.stt_failures),
        ] {
            if value == 0 {
                issues.push(ConfigIssue::new(prefix, name, "must be at least 1"));
            }
        }
        if self.backlog_growing_for < self.interval {
            issues.push(ConfigIssue::new(
                prefix,
                "backlog_growing_for",
                "must be >= interval",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issues(config: &AlerterConfig) -> Vec<String> {
        let mut issues = Vec::new();
        config.validate("", &mut issues);
        issues.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_demo_config_loads_and_every_rule_compiles() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/demo/alerter.yaml"
        );
        let config: AlerterConfig = ConfigSource::default().with_file(path).load().unwrap();
        assert_eq!(config.rules.len(), 4);
        for spec in config.rules {
            crate::rule::Rule::compile(spec).unwrap();
        }
    }

    #[test]
    fn destinations_come_from_the_config_and_the_destinations_file() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "destinations:\n  - name: slack\n    kind: slack\n    url: https://hooks.slack.com/services/T/B/x\n",
        )
        .unwrap();
        let config = AlerterConfig {
            destinations: vec![DestinationConfig {
                name: "ops".into(),
                url: Some("http://ops.example/hook".to_owned().into()),
                ..DestinationConfig::default()
            }],
            destinations_file: Some(file.path().to_owned()),
            ..AlerterConfig::default()
        };
        assert!(issues(&config).is_empty(), "{:?}", issues(&config));
        let names: Vec<String> = config
            .all_destinations()
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["ops", "slack"]);
    }

    #[test]
    fn bad_destinations_are_named() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "destinations:\n  - name: ops\n    url: ftp://x\n",
        )
        .unwrap();
        let config = AlerterConfig {
            destinations: vec![
                DestinationConfig {
                    name: "no url".into(),
                    ..DestinationConfig::default()
                },
                DestinationConfig {
                    name: "ops".into(),
                    url: Some("http://ops.example/hook".to_owned().into()),
                    filter: "calls.>".into(),
                    ..DestinationConfig::default()
                },
            ],
            destinations_file: Some(file.path().to_owned()),
            ..AlerterConfig::default()
        };
        assert_eq!(
            issues(&config),
            [
                "destinations[0].name: must be [A-Za-z0-9_-]",
                "destinations[0].url: must be an http(s) URL",
                "destinations[1].filter: must be under `alerts.`",
                "destinations_file.destinations[0].url: must be an http(s) URL",
            ]
        );
    }
}
