//! The audio fetcher's settings. The spec's `AudioConsumer` (§3.4) as a JetStream consumer:
//! `max_concurrency` bounds downloads in flight (and the consumer's ack-pending), `chunk_bytes`
//! the size of one published message, so memory stays within their product.

use std::time::Duration;

use bcfy_broadcastify::ClientConfig;
use bcfy_bus::Backoff;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::subject::ALL_LIVE;
use bcfy_bus::topology::{CONSUMER_AUDIO_FETCHER, CONSUMER_TRANSCRIBER, TopologyConfig};
use bcfy_config::units::{self, ByteSize};
use bcfy_config::{ConfigIssue, Validate, join_path};
use bcfy_runtime::admin::AdminConfig;
use bcfy_runtime::telemetry::LogConfig;
use serde::Deserialize;

/// Everything the audio fetcher reads.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct FetcherConfig {
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream and bucket limits.
    pub topology: TopologyConfig,
    /// The Broadcastify client (CDN hosts, timeouts; no credentials needed for audio).
    pub broadcastify: ClientConfig,
    /// The consumer and download settings.
    pub audio: AudioConfig,
    /// Admin port.
    pub admin: AdminConfig,
    /// Logs.
    pub log: LogConfig,
    /// How long shutdown waits for downloads in flight.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub shutdown_grace: Duration,
}

impl Default for FetcherConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            topology: TopologyConfig::default(),
            broadcastify: ClientConfig {
                max_concurrency: 64,
                ..ClientConfig::default()
            },
            audio: AudioConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `audio.*`: the consumer, chunking, retries and back-pressure.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AudioConfig {
    /// Durable consumer name (replicas with the same name share the work).
    pub durable_name: String,
    /// Which live calls to fetch (a per-shard pool narrows it, e.g. `calls.live.7001.*`).
    pub filter_subject: String,
    /// Downloads in flight at once (also the consumer's `max_ack_pending`).
    pub max_concurrency: usize,
    /// Largest audio payload in one message; bigger files go out as ordered chunks.
    pub chunk_bytes: ByteSize,
    /// How long a delivered call may go unacknowledged before redelivery (heartbeats extend it
    /// while a download runs).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub ack_wait: Duration,
    /// First retry delay after a CDN 404 (audio not written yet); doubles per attempt.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub not_found_initial_delay: Duration,
    /// Longest retry delay after a CDN 404.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub not_found_max_delay: Duration,
    /// Age of a call (since the poller received it) after which a 404 is final: dead letter.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub not_found_max_age: Duration,
    /// First retry delay after a transient failure (5xx, reset, timeout, cut body).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub retry_initial_delay: Duration,
    /// Longest retry delay after a transient failure.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub retry_max_delay: Duration,
    /// Whether a transcriber consumes the audio (then its backlog pauses downloads).
    pub transcription_enabled: bool,
    /// The transcriber's durable consumer.
    pub transcriber_consumer: String,
    /// Transcriber backlog above which downloads pause.
    pub transcriber_backlog_threshold: u64,
    /// CDN refusals (401, 403) in a row, across calls, after which this replica stops
    /// downloading and probes at the retry delays until the CDN serves it again. A call refused
    /// this many times while other calls download is dead-lettered as `cdn_refused`.
    pub refusals_to_pause: u32,
}

impl AudioConfig {
    /// NAK delays while the CDN answers 404 (the audio is not written yet).
    pub fn not_found_backoff(&self) -> Backoff {
        Backoff::new(self.not_found_initial_delay, self.not_found_max_delay)
    }

    /// NAK delays after a transient failure.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.retry_initial_delay, self.retry_max_delay)
    }
}

impl Default for AudioConfig {
    fn default() -> Self {
        Self {
            durable_name: CONSUMER_AUDIO_FETCHER.to_owned(),
            filter_subject: ALL_LIVE.to_owned(),
            max_concurrency: 16,
            chunk_bytes: ByteSize(256 * 1024),
            ack_wait: Duration::from_secs(30),
            not_found_initial_delay: Duration::from_secs(2),
            not_found_max_delay: Duration::from_secs(30),
            not_found_max_age: Duration::from_secs(600),
            retry_initial_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(60),
            transcription_enabled: true,
            transcriber_consumer: CONSUMER_TRANSCRIBER.to_owned(),
            transcriber_backlog_threshold: 256,
            refusals_to_pause: 3,
        }
    }
}

bcfy_runtime::service_config!(FetcherConfig);

impl Validate for FetcherConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        bcfy_runtime::service::validate_shared(self, prefix, issues);
        self.broadcastify
            .validate(&join_path(prefix, "broadcastify"), issues);
        let audio = join_path(prefix, "audio");
        let a = &self.audio;
        if a.max_concurrency == 0 {
            issues.push(ConfigIssue::new(
                &audio,
                "max_concurrency",
                "must be at least 1",
            ));
        }
        if a.refusals_to_pause == 0 {
            issues.push(ConfigIssue::new(
                &audio,
                "refusals_to_pause",
                "must be at least 1",
            ));
        }
        // Leave room for headers and the call metadata in each message.
        let limit = self
            .topology
            .max_message_bytes
            .bytes()
            .saturating_sub(64 * 1024);
        if a.chunk_bytes.bytes() == 0 || a.chunk_bytes.bytes() > limit {
            let message =
                format!("must be between 1 byte and {limit} bytes (max_message_bytes - 64KiB)");
            issues.push(ConfigIssue::new(&audio, "chunk_bytes", message));
        }
        if a.ack_wait < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(&audio, "ack_wait", "must be at least 1s"));
        }
        if a.not_found_initial_delay.is_zero() || a.not_found_initial_delay > a.not_found_max_delay
        {
            issues.push(ConfigIssue::new(
                &audio,
                "not_found_initial_delay",
                "must be > 0 and <= not_found_max_delay",
            ));
        }
        if a.retry_initial_delay.is_zero() || a.retry_initial_delay > a.retry_max_delay {
            issues.push(ConfigIssue::new(
                &audio,
                "retry_initial_delay",
                "must be > 0 and <= retry_max_delay",
            ));
        }
        if !bcfy_bus::call_id::is_token_safe(&a.durable_name) {
            issues.push(ConfigIssue::new(
                &audio,
                "durable_name",
                "must be [A-Za-z0-9_-]",
            ));
        }
    }
}
