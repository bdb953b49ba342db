//! Every stream, durable consumer and KV bucket, declared once with its retention, limits and
//! duplicate window. [`ensure`](crate::ensure) creates them idempotently at startup.
//!
//! Choices that hold for every stream:
//! - **Limits retention**, so any number of independent subscribers can consume the same events
//!   and replay them; the pipeline's own consumers are durable pull consumers.
//! - **Discard new** when a stream is full: a publisher gets an error and backs off (the poller
//!   pauses) instead of the stream silently dropping unconsumed old events.
//! - **A duplicate window longer than any retry path**, so a republish after a crash is dropped
//!   by `Nats-Msg-Id` instead of duplicated.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{kv, stream};
use bcfy_config::units::{self, ByteSize};
use bcfy_config::{ConfigIssue, Validate};
use serde::Deserialize;

use crate::subject;

/// Stream of live calls (`calls.live.>`).
pub const STREAM_CALLS_LIVE: &str = "CALLS_LIVE";
/// Stream of raw audio (`calls.audio.raw.>`).
pub const STREAM_CALLS_AUDIO: &str = "CALLS_AUDIO";
/// Stream of final transcripts (`transcription.complete.>`).
pub const STREAM_TRANSCRIPTIONS: &str = "TRANSCRIPTIONS";
/// Stream of dead letters (`deadletter.>`).
pub const STREAM_DEAD_LETTERS: &str = "DEAD_LETTERS";
/// Stream of alerts (`alerts.>`).
pub const STREAM_ALERTS: &str = "ALERTS";

/// Durable consumer of the audio fetcher on `CALLS_LIVE`.
pub const CONSUMER_AUDIO_FETCHER: &str = "audio-fetcher";
/// Durable consumer of the transcriber on `CALLS_AUDIO`.
pub const CONSUMER_TRANSCRIBER: &str = "transcriber";
/// Durable consumer of the alerter's rules on `TRANSCRIPTIONS`.
pub const CONSUMER_ALERTER: &str = "alerter";
/// Prefix of the alerter's per-destination durable consumers on `ALERTS`
/// (`alert-delivery-{destination}`).
pub const CONSUMER_ALERT_DELIVERY_PREFIX: &str = "alert-delivery-";

/// KV bucket of per-shard poll cursors.
pub const KV_POLLER_CURSORS: &str = "poller-cursors";
/// KV bucket of poller shard leases (hot standby); entries expire with the bucket's max age.
pub const KV_POLLER_LEASES: &str = "poller-leases";
/// KV bucket of the shared Broadcastify session (one per account).
pub const KV_UPSTREAM_SESSION: &str = "upstream-session";
/// KV bucket of the shared upstream request budget and `Retry-After` deadline (entries live
/// an hour).
pub const KV_UPSTREAM_BUDGET: &str = "upstream-budget";
/// KV bucket of cached archive blocks (per-entry TTL).
pub const KV_ARCHIVE_CACHE: &str = "archive-cache";
/// KV bucket of the cached directory (states, counties, feeds; per-entry freshness, entries kept
/// past it so a stale answer can be served while the upstream is down) and its fetch claims.
pub const KV_DIRECTORY: &str = "directory";
/// KV bucket of alert rules set at runtime, one per key (the rule's name), in YAML or JSON.
pub const KV_ALERT_RULES: &str = "alert-rules";
/// KV bucket of the alerter's shared state: each rule's last alert per talkgroup (cooldowns)
/// and each system condition's state, so replicas agree and a restart forgets nothing.
pub const KV_ALERT_STATE: &str = "alert-state";
/// KV bucket of dead letters sent through again, by dead-letter sequence (`bcfy-deadletters`);
/// entries live as long as the dead letters.
pub const KV_DEADLETTER_REDRIVES: &str = "deadletter-redrives";

/// Overrides of one stream's limits (`topology.<stream>.*`); unset ones keep the stream's
/// default (see [`TopologyConfig::limits`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct StreamLimits {
    /// How long events are kept.
    #[serde(with = "units::optional_duration")]
    #[schemars(with = "Option<units::DurationSchema>")]
    pub max_age: Option<Duration>,
    /// Size at which the stream refuses new events (back-pressure, not loss).
    pub max_bytes: Option<ByteSize>,
    /// Window in which a repeated `Nats-Msg-Id` is dropped.
    #[serde(with = "units::optional_duration")]
    #[schemars(with = "Option<units::DurationSchema>")]
    pub duplicate_window: Option<Duration>,
}

/// One stream's effective limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long events are kept.
    pub max_age: Duration,
    /// Size at which the stream refuses new events.
    pub max_bytes: u64,
    /// Window in which a repeated `Nats-Msg-Id` is dropped.
    pub duplicate_window: Duration,
}

/// The topology's tunable settings (`topology.*`).
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct TopologyConfig {
    /// Replicas of every stream and bucket (1, or 3 on a three-node cluster).
    pub replicas: usize,
    /// `CALLS_LIVE` limits (default: 7 days, 1 GiB).
    pub calls_live: StreamLimits,
    /// `CALLS_AUDIO` limits (default: 2 days, 20 GiB).
    pub calls_audio: StreamLimits,
    /// `TRANSCRIPTIONS` limits (default: 30 days, 2 GiB).
    pub transcriptions: StreamLimits,
    /// `DEAD_LETTERS` limits (default: 30 days, 5 GiB).
    pub dead_letters: StreamLimits,
    /// `ALERTS` limits (default: 30 days, 1 GiB).
    pub alerts: StreamLimits,
    /// Largest single message (an audio chunk plus headers) the audio stream accepts.
    pub max_message_bytes: ByteSize,
    /// Size limit of the archive cache bucket; the oldest entries are evicted beyond it.
    pub archive_cache_max_bytes: ByteSize,
    /// How long a poller lease lives without renewal.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub lease_ttl: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const GIB: u64 = 1 << 30;
/// MAGIC NUMBER: a one-hour duplicate window covers the poller's look-back and every
/// redelivery path (ack waits are seconds to minutes) with a wide margin.
const DUPLICATE_WINDOW: Duration = HOUR;

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            replicas: 1,
            calls_live: StreamLimits::default(),
            calls_audio: StreamLimits::default(),
            transcriptions: StreamLimits::default(),
            dead_letters: StreamLimits::default(),
            alerts: StreamLimits::default(),
            max_message_bytes: ByteSize(1 << 20),
            archive_cache_max_bytes: ByteSize(GIB),
            lease_ttl: Duration::from_secs(15),
        }
    }
}

impl TopologyConfig {
    /// Each stream's name, config key and effective limits (defaults with overrides applied).
    pub fn limits(&self) -> [(&'static str, &'static str, Limits); 5] {
        let resolve = |overrides: &StreamLimits, max_age: Duration, max_bytes: u64| Limits {
            max_age: overrides.max_age.unwrap_or(max_age),
            max_bytes: overrides.max_bytes.map_or(max_bytes, ByteSize::bytes),
            duplicate_window: overrides.duplicate_window.unwrap_or(DUPLICATE_WINDOW),
        };
        [
            (
                STREAM_CALLS_LIVE,
                "calls_live",
                resolve(&self.calls_live, 7 * DAY, GIB),
            ),
            (
                STREAM_CALLS_AUDIO,
                "calls_audio",
                resolve(&self.calls_audio, 2 * DAY, 20 * GIB),
            ),
            (
                STREAM_TRANSCRIPTIONS,
                "transcriptions",
                resolve(&self.transcriptions, 30 * DAY, 2 * GIB),
            ),
            (
                STREAM_DEAD_LETTERS,
                "dead_letters",
                resolve(&self.dead_letters, 30 * DAY, 5 * GIB),
            ),
            (
                STREAM_ALERTS,
                "alerts",
                resolve(&self.alerts, 30 * DAY, GIB),
            ),
        ]
    }
}

impl Validate for TopologyConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if !matches!(self.replicas, 1..=5) {
            issues.push(ConfigIssue::new(
                prefix,
                "replicas",
                "must be between 1 and 5",
            ));
        }
        for (_, key, limits) in self.limits() {
            if limits.duplicate_window.is_zero() || limits.duplicate_window > limits.max_age {
                let setting = format!("{key}.duplicate_window");
                issues.push(ConfigIssue::new(
                    prefix,
                    &setting,
                    "must be > 0 and <= max_age",
                ));
            }
            if limits.max_bytes == 0 || i64::try_from(limits.max_bytes).is_err() {
                issues.push(ConfigIssue::new(
                    prefix,
                    &format!("{key}.max_bytes"),
                    "out of range",
                ));
            }
        }
        if i32::try_from(self.max_message_bytes.bytes()).is_err() {
            issues.push(ConfigIssue::new(
                prefix,
                "max_message_bytes",
                "must be below 2GiB",
            ));
        }
        if self.lease_ttl < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(prefix, "lease_ttl", "must be at least 1s"));
        }
    }
}

/// A durable pull consumer's declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerSpec {
    /// The stream it reads.
    pub stream: &'static str,
    /// Its durable name (several replicas share it).
    pub durable_name: String,
    /// Which subjects it takes (a per-shard pool uses a narrower filter and another name).
    pub filter_subject: String,
    /// How long a delivered message may stay unacked before redelivery. Handlers send
    /// in-progress heartbeats when work takes longer.
    pub ack_wait: Duration,
    /// Messages in flight at once across all replicas (the back-pressure bound).
    pub max_ack_pending: i64,
    /// Where a new consumer starts in the stream (an existing one continues where it is).
    pub start: ConsumerStart,
}

/// Where a new consumer starts reading its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStart {
    /// At the first message: nothing stored is missed.
    First,
    /// At the stream's end (a destination added today is not sent a month of old alerts).
    New,
    /// At the first message stored at or after this time (a re-transcription's range).
    At(time::OffsetDateTime),
}

impl ConsumerSpec {
    /// The audio fetcher's consumer of every live call.
    pub fn audio_fetcher(max_ack_pending: i64) -> Self {
        Self {
            stream: STREAM_CALLS_LIVE,
            durable_name: CONSUMER_AUDIO_FETCHER.to_owned(),
            filter_subject: subject::ALL_LIVE.to_owned(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending,
            start: ConsumerStart::First,
        }
    }

    /// The transcriber's consumer of every audio chunk.
    pub fn transcriber(max_ack_pending: i64) -> Self {
        Self {
            stream: STREAM_CALLS_AUDIO,
            durable_name: CONSUMER_TRANSCRIBER.to_owned(),
            filter_subject: subject::ALL_AUDIO.to_owned(),
            ack_wait: Duration::from_secs(60),
            max_ack_pending,
            start: ConsumerStart::First,
        }
    }

    /// The alerter's consumer of every transcript.
    pub fn alerter(max_ack_pending: i64) -> Self {
        Self {
            stream: STREAM_TRANSCRIPTIONS,
            durable_name: CONSUMER_ALERTER.to_owned(),
            filter_subject: subject::ALL_TRANSCRIPTIONS.to_owned(),
            ack_wait: Duration::from_secs(30),
            max_ack_pending,
            start: ConsumerStart::First,
        }
    }

    /// The consumer that delivers the alerts matching `filter` to destination `name`: one
    /// alert in flight at a time, so a destination receives them in order and an alert that
    /// waits for a retry holds back the ones after it.
    pub fn alert_delivery(name: &str, filter: impl Into<String>, ack_wait: Duration) -> Self {
        Self {
            stream: STREAM_ALERTS,
            durable_name: format!("{CONSUMER_ALERT_DELIVERY_PREFIX}{name}"),
            filter_subject: filter.into(),
            ack_wait,
            max_ack_pending: 1,
            start: ConsumerStart::New,
        }
    }

    /// The same consumer restricted to other subjects under another durable name (per-shard
    /// pools, e.g. `transcriber-fire` on `calls.audio.raw.7001.*.*`).
    #[must_use]
    pub fn with_filter(
        mut self,
        durable_name: impl Into<String>,
        filter: impl Into<String>,
    ) -> Self {
        self.durable_name = durable_name.into();
        self.filter_subject = filter.into();
        self
    }

    /// The JetStream configuration. Redelivery is unlimited (`max_deliver` -1): handlers decide
    /// when to give up (from the delivery count) and dead-letter the message themselves, so
    /// nothing is dropped silently by the server. No `backoff` list: it would replace
    /// `ack_wait` (server rule); handlers NAK with their own delays instead.
    pub fn to_config(&self) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable_name.clone()),
            filter_subject: self.filter_subject.clone(),
            deliver_policy: match self.start {
                ConsumerStart::First => DeliverPolicy::All,
                ConsumerStart::New => DeliverPolicy::New,
                ConsumerStart::At(start_time) => DeliverPolicy::ByStartTime { start_time },
            },
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: -1,
            max_ack_pending: self.max_ack_pending,
            ..Default::default()
        }
    }
}

/// The whole topology with its settings applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    config: TopologyConfig,
}

impl Topology {
    /// The topology for these settings.
    pub fn new(config: TopologyConfig) -> Self {
        Self { config }
    }

    /// Every stream's configuration.
    pub fn streams(&self) -> Vec<stream::Config> {
        self.config
            .limits()
            .into_iter()
            .map(|(name, _, limits)| {
                let (subjects, description) = match name {
                    STREAM_CALLS_LIVE => (subject::ALL_LIVE, "Live calls, once each."),
                    STREAM_CALLS_AUDIO => (subject::ALL_AUDIO, "Call audio, whole or in chunks."),
                    STREAM_TRANSCRIPTIONS => {
                        (subject::ALL_TRANSCRIPTIONS, "Final call transcripts.")
                    }
                    STREAM_ALERTS => (
                        subject::ALL_ALERTS,
                        "Alerts: rules that matched calls, and system conditions.",
                    ),
                    _ => (
                        subject::ALL_DEAD_LETTERS,
                        "Messages a stage gave up on, with the reason.",
                    ),
                };
                let max_message_size = if name == STREAM_CALLS_AUDIO {
                    i32::try_from(self.config.max_message_bytes.bytes()).unwrap_or(i32::MAX)
                } else {
                    0
                };
                stream::Config {
                    name: name.to_owned(),
                    description: Some(description.to_owned()),
                    subjects: vec![subjects.to_owned()],
                    retention: stream::RetentionPolicy::Limits,
                    discard: stream::DiscardPolicy::New,
                    storage: stream::StorageType::File,
                    num_replicas: self.config.replicas,
                    max_age: limits.max_age,
                    max_bytes: i64::try_from(limits.max_bytes).unwrap_or(i64::MAX),
                    max_message_size,
                    duplicate_window: limits.duplicate_window,
                    ..Default::default()
                }
            })
            .collect()
    }

    /// Every KV bucket's configuration.
    pub fn buckets(&self) -> Vec<kv::Config> {
        let bucket = |name: &str, history: i64, description: &str| kv::Config {
            bucket: name.to_owned(),
            description: description.to_owned(),
            history,
            storage: stream::StorageType::File,
            num_replicas: self.config.replicas,
            ..Default::default()
        };
        vec![
            bucket(KV_POLLER_CURSORS, 5, "Per-shard live-call poll cursors."),
            kv::Config {
                max_age: self.config.lease_ttl,
                ..bucket(
                    KV_POLLER_LEASES,
                    1,
                    "Poller shard leases; unrenewed ones expire.",
                )
            },
            bucket(
                KV_UPSTREAM_SESSION,
                5,
                "The shared Broadcastify session per account.",
            ),
            kv::Config {
                // Budget windows and back-off deadlines are short-lived: the bucket's max age
                // clears old ones (a per-key TTL would not survive a CAS update).
                max_age: HOUR,
                ..bucket(
                    KV_UPSTREAM_BUDGET,
                    1,
                    "Shared upstream request budget and back-off.",
                )
            },
            kv::Config {
                limit_markers: Some(Duration::from_secs(1)),
                max_bytes: i64::try_from(self.config.archive_cache_max_bytes.bytes())
                    .unwrap_or(i64::MAX),
                ..bucket(
                    KV_ARCHIVE_CACHE,
                    1,
                    "Archived 30-minute blocks, with per-entry TTL.",
                )
            },
            kv::Config {
                // Claims expire with a per-key TTL; levels are small (a county's talkgroups
                // are tens of kB), so 64 MiB holds every county of a large deployment.
                limit_markers: Some(Duration::from_secs(1)),
                max_bytes: 64 << 20,
                ..bucket(
                    KV_DIRECTORY,
                    1,
                    "The cached Broadcastify directory: states, counties, feeds.",
                )
            },
            bucket(
                KV_ALERT_RULES,
                5,
                "Alert rules set at runtime, by name (YAML or JSON).",
            ),
            bucket(
                KV_ALERT_STATE,
                1,
                "The alerter's cooldowns and system conditions.",
            ),
            kv::Config {
                max_age: self
                    .config
                    .limits()
                    .into_iter()
                    .find(|(stream, ..)| *stream == STREAM_DEAD_LETTERS)
                    .map_or(30 * DAY, |(.., limits)| limits.max_age),
                ..bucket(
                    KV_DEADLETTER_REDRIVES,
                    1,
                    "Dead letters sent through again, by dead-letter sequence.",
                )
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_refuses_rather_than_drops_and_dedups() {
        let topology = Topology::new(TopologyConfig::default());
        let streams = topology.streams();
        assert_eq!(streams.len(), 5);
        for stream in &streams {
            assert_eq!(
                stream.discard,
                stream::DiscardPolicy::New,
                "{}",
                stream.name
            );
            assert_eq!(stream.retention, stream::RetentionPolicy::Limits);
            assert!(stream.duplicate_window >= HOUR);
            assert_eq!(stream.subjects.len(), 1);
        }
        let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                STREAM_CALLS_LIVE,
                STREAM_CALLS_AUDIO,
                STREAM_TRANSCRIPTIONS,
                STREAM_DEAD_LETTERS,
                STREAM_ALERTS
            ]
        );
    }

    #[test]
    fn consumers_never_give_up_on_their_own() {
        let config = ConsumerSpec::audio_fetcher(64).to_config();
        assert_eq!(config.max_deliver, -1);
        assert_eq!(config.ack_policy, AckPolicy::Explicit);
        assert!(config.backoff.is_empty());
        let pool = ConsumerSpec::transcriber(8)
            .with_filter("transcriber-fire", "calls.audio.raw.7001.*.*");
        assert_eq!(
            pool.to_config().durable_name.as_deref(),
            Some("transcriber-fire")
        );
    }

    #[test]
    fn an_override_changes_only_its_own_setting() {
        let mut config = TopologyConfig::default();
        config.calls_audio.max_bytes = Some(ByteSize(5 * GIB));
        let [_, (_, _, audio), ..] = config.limits();
        assert_eq!(
            audio,
            Limits {
                max_age: 2 * DAY,
                max_bytes: 5 * GIB,
                duplicate_window: HOUR
            }
        );
    }

    #[test]
    fn validation_reports_each_bad_limit() {
        let mut config = TopologyConfig {
            replicas: 0,
            ..TopologyConfig::default()
        };
        config.calls_live.duplicate_window = Some(Duration::ZERO);
        config.dead_letters.duplicate_window = Some(40 * DAY);
        let mut issues = Vec::new();
        config.validate("topology", &mut issues);
        let settings: Vec<&str> = issues.iter().map(|i| i.setting.as_str()).collect();
        assert_eq!(
            settings,
            [
                "topology.replicas",
                "topology.calls_live.duplicate_window",
                "topology.dead_letters.duplicate_window"
            ]
        );
    }
}
