//! The poller's settings. The spec's `LiveProducerConfig` keys keep their names and defaults
//! under `live_producer`; `queue_maxsize` is the downstream-backlog threshold (messages the
//! audio fetcher has not finished) above which polling pauses.

use std::time::Duration;

use bcfy_broadcastify::{ClientConfig, GroupKey, Selector};
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::topology::{CONSUMER_AUDIO_FETCHER, TopologyConfig};
use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate, join_path};
use bcfy_runtime::admin::AdminConfig;
use bcfy_runtime::telemetry::LogConfig;
use serde::Deserialize;

/// Everything the poller reads (YAML file and `BCFY_*` env).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct PollerConfig {
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream and bucket limits.
    pub topology: TopologyConfig,
    /// The Broadcastify client (site URLs, credentials, timeouts).
    pub broadcastify: ClientConfig,
    /// The spec's producer settings, shared by every shard unless a shard overrides them.
    pub live_producer: LiveProducerConfig,
    /// What to poll: one entry per shard.
    pub shards: Vec<ShardConfig>,
    /// Admin port (`/livez`, `/readyz`, `/metrics`).
    pub admin: AdminConfig,
    /// Logs.
    pub log: LogConfig,
    /// This replica's name in leases and session claims (default: host name and process id).
    pub instance_id: Option<String>,
    /// The durable consumer whose backlog pauses polling.
    pub downstream_consumer: String,
    /// How often `county` shards look their talkgroups up again in the directory service.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub directory_refresh: Duration,
    /// How long shutdown waits for in-flight polls to publish and save their cursor.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub shutdown_grace: Duration,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            topology: TopologyConfig::default(),
            broadcastify: ClientConfig::default(),
            live_producer: LiveProducerConfig::default(),
            shards: Vec::new(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            instance_id: None,
            downstream_consumer: CONSUMER_AUDIO_FETCHER.to_owned(),
            directory_refresh: Duration::from_secs(24 * 3600),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The spec's `LiveProducerConfig` (§3.3), names and defaults kept.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct LiveProducerConfig {
    /// Seconds between polls when healthy.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub poll_interval: Duration,
    /// Fraction of `poll_interval` applied as +/- jitter.
    pub jitter_ratio: f64,
    /// Downstream backlog (unfinished `calls.live` messages) above which polling pauses.
    pub queue_maxsize: u64,
    /// First retry delay after a failure.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub initial_backoff: Duration,
    /// Ceiling of the exponential back-off.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub max_backoff: Duration,
    /// Consecutive failures after which a shard stops; unset retries forever.
    pub max_retry_attempts: Option<u32>,
    /// Upstream requests per minute for the whole fleet (every shard and replica); unset: no cap.
    pub rate_limit_per_minute: Option<u32>,
    /// How often each shard logs its health summary.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub metrics_interval: Duration,
    /// Where a shard with no saved cursor starts (epoch seconds); unset: the newest calls.
    pub initial_position: Option<f64>,
    /// How far behind the cursor a sweep reaches, to catch calls published late (their `ts`
    /// already behind the cursor): the longest lateness expected.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub look_back: Duration,
    /// How often a poll is a sweep. An answer holds every call from where the poll reaches, so a
    /// sweep at every poll re-reads `look_back` seconds of calls each time; late calls wait at
    /// most this long instead.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub look_back_interval: Duration,
    /// How far behind the cursor the polls between sweeps reach: calls that share the newest
    /// call's second (`ts` is whole seconds) or turn up a moment late are found at the next poll.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub overlap: Duration,
}

impl Default for LiveProducerConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            jitter_ratio: 0.1,
            queue_maxsize: 256,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            max_retry_attempts: None,
            rate_limit_per_minute: None,
            metrics_interval: Duration::from_secs(60),
            initial_position: None,
            look_back: Duration::from_secs(120),
            look_back_interval: Duration::from_secs(30),
            overlap: Duration::from_secs(2),
        }
    }
}

/// One shard: a selector with optional per-shard timing.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ShardConfig {
    /// Unique name (the key of its cursor and lease), `[A-Za-z0-9_-]`.
    pub name: String,
    /// Talkgroups as `"{sid}-{tg}"`.
    pub groups: Vec<String>,
    /// A whole trunked system.
    pub sid: Option<i64>,
    /// A whole ingest node.
    pub node: Option<i64>,
    /// A public playlist UUID (no login needed).
    pub playlist: Option<String>,
    /// A county's trunked talkgroups (its `ctid`), resolved through the directory service at
    /// start and again every `directory_refresh`.
    pub county: Option<i64>,
    /// With `county`: only talkgroups whose service tag contains one of these
    /// (case-insensitive; `fire` takes "Fire Dispatch" and "Fire-Tac").
    pub county_tags: Vec<String>,
    /// Overrides `live_producer.poll_interval`.
    #[serde(with = "units::optional_duration")]
    #[schemars(with = "Option<units::DurationSchema>")]
    pub poll_interval: Option<Duration>,
    /// Overrides `live_producer.jitter_ratio`.
    pub jitter_ratio: Option<f64>,
    /// Overrides `live_producer.initial_position`.
    pub initial_position: Option<f64>,
}

impl ShardConfig {
    /// The selector, when exactly one kind is configured and the groups parse.
    pub fn selector(&self) -> Result<ShardSelector, String> {
        let kinds = [
            !self.groups.is_empty(),
            self.sid.is_some(),
            self.node.is_some(),
            self.playlist.is_some(),
            self.county.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err("set exactly one of groups, sid, node, playlist, county".to_owned());
        }
        if !self.county_tags.is_empty() && self.county.is_none() {
            return Err("county_tags goes with county".to_owned());
        }
        if let Some(ctid) = self.county {
            return if ctid > 0 {
                Ok(ShardSelector::County {
                    ctid,
                    tags: self.county_tags.clone(),
                })
            } else {
                Err(format!("county {ctid} must be positive"))
            };
        }
        if let Some(sid) = self.sid {
            return Ok(ShardSelector::Fixed(Selector::System { sid }));
        }
        if let Some(system_id) = self.node {
            return Ok(ShardSelector::Fixed(Selector::Node { system_id }));
        }
        if let Some(uuid) = &self.playlist {
            return Ok(ShardSelector::Fixed(Selector::Playlist {
                uuid: uuid.clone(),
            }));
        }
        self.groups
            .iter()
            .map(|group| {
                let (sid, tg) = group
                    .split_once('-')
                    .ok_or_else(|| format!("`{group}` is not sid-tg"))?;
                let parse = |n: &str| {
                    n.trim()
                        .parse::<i64>()
                        .map_err(|_| format!("`{group}` is not sid-tg"))
                };
                Ok(GroupKey {
                    sid: parse(sid)?,
                    tg: parse(tg)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()
            .map(|groups| ShardSelector::Fixed(Selector::Groups(groups)))
    }
}

/// What a shard polls: a selector fixed in config, or a county's talkgroups looked up in the
/// directory.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardSelector {
    /// Groups, a system, a node or a playlist.
    Fixed(Selector),
    /// County `ctid`'s trunked talkgroups, narrowed to `tags` when given.
    County {
        /// The county id.
        ctid: i64,
        /// Service tag fragments.
        tags: Vec<String>,
    },
}

bcfy_runtime::service_config!(PollerConfig);

impl Validate for PollerConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        bcfy_runtime::service::validate_shared(self, prefix, issues);
        self.broadcastify
            .validate(&join_path(prefix, "broadcastify"), issues);
        self.live_producer
            .validate(&join_path(prefix, "live_producer"), issues);
        if self.directory_refresh < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                prefix,
                "directory_refresh",
                "must be at least 1s",
            ));
        }
        if self.shards.is_empty() {
            issues.push(ConfigIssue::new(
                prefix,
                "shards",
                "list at least one shard",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, shard) in self.shards.iter().enumerate() {
            let at = join_path(prefix, &format!("shards[{i}]"));
            if !bcfy_bus::call_id::is_token_safe(&shard.name) {
                issues.push(ConfigIssue::new(
                    &at,
                    "name",
                    "needs a name of [A-Za-z0-9_-]",
                ));
            } else if !names.insert(&shard.name) {
                issues.push(ConfigIssue::new(&at, "name", "names must be unique"));
            }
            if let Err(message) = shard.selector() {
                issues.push(ConfigIssue::new(&at, "groups", message));
            }
            if shard.jitter_ratio.is_some_and(|j| !(0.0..1.0).contains(&j)) {
                issues.push(ConfigIssue::new(&at, "jitter_ratio", "must be in [0, 1)"));
            }
        }
    }
}

impl Validate for LiveProducerConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if self.poll_interval < Duration::from_millis(100) {
            issues.push(ConfigIssue::new(
                prefix,
                "poll_interval",
                "must be at least 100ms",
            ));
        }
        if !(0.0..1.0).contains(&self.jitter_ratio) {
            issues.push(ConfigIssue::new(
                prefix,
                "jitter_ratio",
                "must be in [0, 1)",
            ));
        }
        if self.initial_backoff.is_zero() || self.initial_backoff > self.max_backoff {
            issues.push(ConfigIssue::new(
                prefix,
                "initial_backoff",
                "must be > 0 and <= max_backoff",
            ));
        }
        if self.rate_limit_per_minute == Some(0) {
            issues.push(ConfigIssue::new(
                prefix,
                "rate_limit_per_minute",
                "must be at least 1 (or unset)",
            ));
        }
        if self.overlap > self.look_back {
            issues.push(ConfigIssue::new(prefix, "overlap", "must be <= look_back"));
        }
        if self.queue_maxsize == 0 {
            issues.push(ConfigIssue::new(
                prefix,
                "queue_maxsize",
                "must be at least 1",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use bcfy_config::ConfigSource;
    use std::io::Write as _;

    use super::*;

    #[test]
    fn spec_defaults_are_kept() {
        let producer = LiveProducerConfig::default();
        assert_eq!(producer.poll_interval, Duration::from_secs(2));
        assert_eq!(producer.jitter_ratio, 0.1);
        assert_eq!(producer.queue_maxsize, 256);
        assert_eq!(producer.initial_backoff, Duration::from_secs(1));
        assert_eq!(producer.max_backoff, Duration::from_secs(30));
        assert_eq!(producer.max_retry_attempts, None);
        assert_eq!(producer.rate_limit_per_minute, None);
        assert_eq!(producer.metrics_interval, Duration::from_secs(60));
        assert_eq!(producer.initial_position, None);
    }

    #[test]
    fn shards_load_from_yaml_and_bad_ones_are_all_reported() {
        let (error, settings) = refused(
            "shards:\n  - name: fire\n    groups: [\"7001-2345\", \"7001-2346\"]\n    poll_interval: 5s\n  - name: county\n    sid: 7001\n  - name: fire\n    groups: [\"x\"]\n    sid: 1\n",
        );
        assert_eq!(settings, ["shards[2].name", "shards[2].groups"], "{error}");
        let config = load("shards:\n  - name: fire\n    groups: [\"7001-2345\"]\n").unwrap();
        assert_eq!(
            config.shards[0].selector(),
            Ok(ShardSelector::Fixed(Selector::Groups(vec![GroupKey {
                sid: 7001,
                tg: 2345
            }])))
        );
    }

    #[test]
    fn a_county_shard_names_its_county_and_tags_need_a_county() {
        let config =
            load("shards:\n  - name: example\n    county: 207\n    county_tags: [fire]\n").unwrap();
        assert_eq!(
            config.shards[0].selector(),
            Ok(ShardSelector::County {
                ctid: 207,
                tags: vec!["fire".to_owned()]
            })
        );
        let (error, settings) = refused(
            "shards:\n  - name: a\n    county: 207\n    sid: 7001\n  - name: b\n    sid: 7001\n    county_tags: [fire]\n  - name: c\n    county: 0\n",
        );
        assert_eq!(
            settings,
            ["shards[0].groups", "shards[1].groups", "shards[2].groups"],
            "{error}"
        );
    }

    #[test]
    fn an_overlap_longer_than_the_look_back_is_refused() {
        let (error, settings) = refused(
            "live_producer:\n  look_back: 10s\n  overlap: 30s\nshards:\n  - name: fire\n    sid: 7001\n",
        );
        assert_eq!(settings, ["live_producer.overlap"], "{error}");
    }

    /// `yaml` loaded as a poller config file.
    fn load(yaml: &str) -> Result<PollerConfig, Box<bcfy_config::ConfigError>> {
        let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        file.write_all(yaml.as_bytes()).unwrap();
        ConfigSource::default()
            .with_file(file.path())
            .load()
            .map_err(Box::new)
    }

    /// The error for `yaml`, and the settings it names.
    fn refused(yaml: &str) -> (Box<bcfy_config::ConfigError>, Vec<String>) {
        let error = load(yaml).unwrap_err();
        let settings = error.issues().iter().map(|i| i.setting.clone()).collect();
        (error, settings)
    }
}
