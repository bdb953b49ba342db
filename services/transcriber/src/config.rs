//! `transcription.*`: the spec's `TranscriptionConfig` (§3.5) keys with their names and
//! defaults (`enabled`, `provider`, `model` "whisper-1", `endpoint_url`, `api_key`, `language`
//! "en", `max_concurrency` 2), plus what a real deployment needs: a request timeout, a prompt per
//! talkgroup (radio vocabulary, unit names), and the two settings in which OpenAI-compatible
//! servers differ (`model_field`, `response_format`; see `docs/stt-providers.md`), and
//! the built-in engine's `whisper.*` (model file or CTranslate2 directory, threads, decoding).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bcfy_bus::Backoff;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::subject::ALL_AUDIO;
use bcfy_bus::topology::{CONSUMER_TRANSCRIBER, TopologyConfig};
use bcfy_config::units;
use bcfy_config::{ConfigIssue, Validate, join_path};
use bcfy_runtime::admin::AdminConfig;
use bcfy_runtime::telemetry::LogConfig;
use bcfy_whisper::{AudioContext, Weights};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::cleanup::CleanupConfig;
use crate::hearing::GatingConfig;
use crate::revise::RetranscribeConfig;

/// OpenAI's own endpoint, used when `endpoint_url` is not set.
pub const OPENAI_ENDPOINT: &str = "https://api.openai.com/v1/audio/transcriptions";

/// Everything the transcriber reads.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct TranscriberConfig {
    /// NATS connection.
    pub nats: NatsConfig,
    /// Stream and bucket limits.
    pub topology: TopologyConfig,
    /// The provider and its settings (the spec's `TranscriptionConfig`).
    pub transcription: TranscriptionConfig,
    /// The consumer and retry settings.
    pub consumer: ConsumerConfig,
    /// Run as a re-transcription job instead of the live service (see [`crate::revise`]).
    pub retranscribe: RetranscribeConfig,
    /// Admin port.
    pub admin: AdminConfig,
    /// Logs.
    pub log: LogConfig,
    /// How long shutdown waits for transcriptions in flight.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub shutdown_grace: Duration,
}

impl Default for TranscriberConfig {
    fn default() -> Self {
        Self {
            nats: NatsConfig::default(),
            topology: TopologyConfig::default(),
            transcription: TranscriptionConfig::default(),
            consumer: ConsumerConfig::default(),
            retranscribe: RetranscribeConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            shutdown_grace: Duration::from_secs(60),
        }
    }
}

bcfy_runtime::service_config!(TranscriberConfig);

impl Validate for TranscriberConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        bcfy_runtime::service::validate_shared(self, prefix, issues);
        self.transcription
            .validate(&join_path(prefix, "transcription"), issues);
        self.retranscribe
            .validate(&join_path(prefix, "retranscribe"), issues);
        let consumer = join_path(prefix, "consumer");
        let c = &self.consumer;
        if c.ack_wait < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                &consumer,
                "ack_wait",
                "must be at least 1s",
            ));
        }
        if c.retry_initial_delay.is_zero() || c.retry_initial_delay > c.retry_max_delay {
            issues.push(ConfigIssue::new(
                &consumer,
                "retry_initial_delay",
                "must be > 0 and <= retry_max_delay",
            ));
        }
        if c.provider_backoff_after == 0 {
            issues.push(ConfigIssue::new(
                &consumer,
                "provider_backoff_after",
                "must be at least 1",
            ));
        }
        if c.provider_backoff_initial.is_zero()
            || c.provider_backoff_initial > c.provider_backoff_max
        {
            issues.push(ConfigIssue::new(
                &consumer,
                "provider_backoff_initial",
                "must be > 0 and <= provider_backoff_max",
            ));
        }
        if !bcfy_bus::call_id::is_token_safe(&c.durable_name) {
            issues.push(ConfigIssue::new(
                &consumer,
                "durable_name",
                "must be [A-Za-z0-9_-]",
            ));
        }
    }
}

/// `consumer.*`: which audio this replica takes and how it retries.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Durable consumer name (replicas with the same name share the work).
    pub durable_name: String,
    /// Subjects taken, e.g. `calls.audio.raw.7001.>` for a per-system pool.
    pub filter_subject: String,
    /// How long a call may go without a heartbeat before it is redelivered (heartbeats go out
    /// every third of it while a call is transcribed).
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub ack_wait: Duration,
    /// First NAK delay after a transient failure; it doubles per attempt.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub retry_initial_delay: Duration,
    /// Longest NAK delay.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub retry_max_delay: Duration,
    /// Transient provider failures in a row after which this replica stops taking calls.
    pub provider_backoff_after: u32,
    /// The first such pause; it doubles with each further failure. The same delays space the
    /// probes while the provider refuses our key (401, 402, 403), which pauses at once.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub provider_backoff_initial: Duration,
    /// The longest such pause.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub provider_backoff_max: Duration,
}

impl ConsumerConfig {
    /// NAK delays after a transient failure of one call.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(self.retry_initial_delay, self.retry_max_delay)
    }

    /// Pauses of the whole replica while the provider keeps failing.
    pub fn provider_backoff(&self) -> Backoff {
        Backoff::new(self.provider_backoff_initial, self.provider_backoff_max)
    }
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            durable_name: CONSUMER_TRANSCRIBER.to_owned(),
            filter_subject: ALL_AUDIO.to_owned(),
            ack_wait: Duration::from_secs(60),
            retry_initial_delay: Duration::from_secs(2),
            retry_max_delay: Duration::from_secs(120),
            provider_backoff_after: 3,
            provider_backoff_initial: Duration::from_secs(5),
            provider_backoff_max: Duration::from_secs(300),
        }
    }
}

/// Where transcripts come from.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Any OpenAI-compatible `/v1/audio/transcriptions` endpoint.
    #[default]
    Openai,
    /// The built-in whisper.cpp engine (`transcription.whisper.*`); no server.
    Whisper,
    /// Deepgram's pre-recorded API (`model` e.g. `nova-3`; `api_key` sent as `Token`).
    Deepgram,
    /// AssemblyAI's asynchronous API (`model` is the `speech_model`, e.g. `universal`).
    Assemblyai,
}

impl Provider {
    /// The name recorded in each `TranscriptionResult`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Whisper => "whisper",
            Provider::Deepgram => "deepgram",
            Provider::Assemblyai => "assemblyai",
        }
    }
}

/// The answer format asked of an OpenAI-compatible server.
#[derive(
    Debug, Clone, Copy, Default, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq, Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum ResponseFormat {
    /// `{"text": …}` only.
    Json,
    /// The text plus segments with timings and log-probabilities.
    #[default]
    VerboseJson,
}

impl ResponseFormat {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseFormat::Json => "json",
            ResponseFormat::VerboseJson => "verbose_json",
        }
    }
}

/// `transcription.*`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct TranscriptionConfig {
    /// `false` runs the pipeline without transcripts.
    pub enabled: bool,
    /// Where transcripts come from.
    pub provider: Provider,
    /// The model name sent to the provider.
    pub model: String,
    /// The transcription endpoint; OpenAI's (Deepgram's for `deepgram`, AssemblyAI's base
    /// URL for `assemblyai`) when unset.
    pub endpoint_url: Option<Url>,
    /// Sent as `Authorization: Bearer …` (`Token …` to Deepgram, the bare key to AssemblyAI)
    /// when set.
    #[schemars(with = "Option<String>")]
    #[serde(serialize_with = "bcfy_config::print::masked")]
    pub api_key: Option<SecretString>,
    /// The spoken language (ISO 639-1); unset lets the provider detect it.
    pub language: Option<String>,
    /// Calls transcribed at once by one replica.
    pub max_concurrency: usize,
    /// How long one transcription request may take.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub request_timeout: Duration,
    /// How long `assemblyai` polls a transcript before the call is retried later.
    #[serde(with = "units::duration")]
    #[schemars(with = "units::DurationSchema")]
    pub poll_timeout: Duration,
    /// The form field that carries the model: `model` for OpenAI, `model_name` for
    /// faster-whisper-server 0.0.3.
    pub model_field: String,
    /// `json` or `verbose_json` (segments and log-probabilities).
    pub response_format: ResponseFormat,
    /// A prompt per talkgroup, keyed `"{sid}-{tg}"` like the poller's groups (unit names, street
    /// names, ten-codes). Not `sid.tg`: layered config reads a dot in a key as nesting.
    pub prompts: BTreeMap<String, String>,
    /// The built-in engine (provider `whisper`).
    pub whisper: WhisperConfig,
    /// Speech gating and tone detection before the provider.
    pub gating: GatingConfig,
    /// Dropping known hallucinations.
    pub cleanup: CleanupConfig,
}

/// `transcription.whisper.*`: the built-in whisper.cpp engine. `model` names the transcripts'
/// model; the weights come from `model_path`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema, PartialEq)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct WhisperConfig {
    /// A whisper.cpp ggml file, or a CTranslate2 (faster-whisper) model directory, converted
    /// once into `model_cache_dir` (`transcriber convert-model` does it ahead of time).
    pub model_path: Option<PathBuf>,
    /// Where converted models are kept.
    pub model_cache_dir: PathBuf,
    /// CPU threads per call; unset divides the machine's cores among `max_concurrency` calls.
    pub threads: Option<usize>,
    /// 1 decodes greedily; more uses beam search with that many beams (slower).
    pub beam_size: usize,
    /// Re-decode unreliable windows at higher temperatures (whisper.cpp's default; slower on
    /// noisy audio).
    pub temperature_fallback: bool,
    /// Segments end at a word boundary once they reach this many characters, so each carries
    /// the unit talking when it starts; 0 keeps whisper.cpp's own (often one per 30 s window).
    pub max_segment_chars: usize,
    /// How a CTranslate2 model's weight matrices are stored when converted: `f16`, or the
    /// smaller and faster `q8_0`, `q5_0`, `q5_1` (a ggml `model_path` is used as it is).
    pub weights: Weights,
    /// `fit`: the encoder looks at the call plus a second, not a whole 30 s window; `full`:
    /// always the whole window.
    pub audio_context: AudioContext,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        Self {
            model_path: None,
            model_cache_dir: std::env::temp_dir().join("bcfy-whisper-models"),
            threads: None,
            beam_size: 1,
            temperature_fallback: false,
            max_segment_chars: 60,
            weights: Weights::default(),
            audio_context: AudioContext::default(),
        }
    }
}

impl WhisperConfig {
    /// Threads per call: as set, else the cores shared by `calls` calls at once.
    pub fn threads_per_call(&self, calls: usize) -> usize {
        self.threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            (cores / calls.max(1)).max(1)
        })
    }
}

impl Default for TranscriptionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            provider: Provider::Openai,
            model: "whisper-1".to_owned(),
            endpoint_url: None,
            api_key: None,
            language: Some("en".to_owned()),
            max_concurrency: 2,
            request_timeout: Duration::from_secs(120),
            poll_timeout: Duration::from_secs(300),
            model_field: "model".to_owned(),
            response_format: ResponseFormat::VerboseJson,
            prompts: BTreeMap::new(),
            whisper: WhisperConfig::default(),
            gating: GatingConfig::default(),
            cleanup: CleanupConfig::default(),
        }
    }
}

impl TranscriptionConfig {
    /// The prompt for a talkgroup, if one is configured.
    pub fn prompt_for(&self, sid: i64, tg: i64) -> Option<&str> {
        self.prompts.get(&format!("{sid}-{tg}")).map(String::as_str)
    }

    /// The endpoint requests go to.
    pub fn endpoint(&self) -> Url {
        let default = match self.provider {
            Provider::Deepgram => crate::deepgram::DEEPGRAM_ENDPOINT,
            Provider::Assemblyai => crate::assemblyai::ASSEMBLYAI_ENDPOINT,
            Provider::Openai | Provider::Whisper => OPENAI_ENDPOINT,
        };
        self.endpoint_url
            .clone()
            .unwrap_or_else(|| Url::parse(default).expect("a valid constant URL"))
    }
}

impl Validate for TranscriptionConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        self.gating.validate(&join_path(prefix, "gating"), issues);
        self.cleanup.validate(&join_path(prefix, "cleanup"), issues);
        if self.max_concurrency == 0 {
            issues.push(ConfigIssue::new(
                prefix,
                "max_concurrency",
                "must be at least 1",
            ));
        }
        if self.model.trim().is_empty() {
            issues.push(ConfigIssue::new(prefix, "model", "must not be empty"));
        }
        if self.model_field.trim().is_empty() {
            issues.push(ConfigIssue::new(prefix, "model_field", "must not be empty"));
        }
        if self.request_timeout < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                prefix,
                "request_timeout",
                "must be at least 1s",
            ));
        }
        if matches!(self.provider, Provider::Deepgram | Provider::Assemblyai)
            && self.api_key.is_none()
        {
            issues.push(ConfigIssue::new(
                prefix,
                "api_key",
                format!(
                    "is required with provider `{}` (or BCFY_TRANSCRIPTION__API_KEY)",
                    self.provider.as_str()
                ),
            ));
        }
        if self.poll_timeout < Duration::from_secs(1) {
            issues.push(ConfigIssue::new(
                prefix,
                "poll_timeout",
                "must be at least 1s",
            ));
        }
        if self.provider == Provider::Whisper {
            let whisper = join_path(prefix, "whisper");
            if self.whisper.model_path.is_none() {
                issues.push(ConfigIssue::new(
                    &whisper,
                    "model_path",
                    "is required with provider `whisper`",
                ));
            }
            if self.whisper.beam_size == 0 {
                issues.push(ConfigIssue::new(
                    &whisper,
                    "beam_size",
                    "must be at least 1",
                ));
            }
            if self.whisper.threads == Some(0) {
                issues.push(ConfigIssue::new(&whisper, "threads", "must be at least 1"));
            }
        }
        for key in self.prompts.keys() {
            let valid = key
                .split_once('-')
                .is_some_and(|(sid, tg)| sid.parse::<u32>().is_ok() && tg.parse::<u32>().is_ok());
            if !valid {
                let message = format!("key `{key}` must be \"{{sid}}-{{tg}}\"");
                issues.push(ConfigIssue::new(prefix, "prompts", message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_loads_with_its_prompts() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../deploy/demo/transcriber.yaml"
        );
        let config: TranscriberConfig = bcfy_config::ConfigSource::default()
            .with_file(file)
            .load()
            .expect("the demo config is valid");
        assert_eq!(config.transcription.provider, Provider::Whisper);
        assert!(config.transcription.prompt_for(7001, 2345).is_some());
        assert!(config.transcription.whisper.model_path.is_some());
    }

    #[test]
    fn spec_defaults_are_kept() {
        let c = TranscriptionConfig::default();
        assert!(c.enabled);
        assert_eq!(c.provider, Provider::Openai);
        assert_eq!(c.model, "whisper-1");
        assert_eq!(c.language.as_deref(), Some("en"));
        assert_eq!(c.max_concurrency, 2);
        assert!(c.endpoint_url.is_none() && c.api_key.is_none());
        assert_eq!(c.endpoint().as_str(), OPENAI_ENDPOINT);
    }

    #[test]
    fn hosted_providers_need_a_key_and_have_their_own_default_endpoint() {
        for (provider, endpoint) in [
            (Provider::Deepgram, crate::deepgram::DEEPGRAM_ENDPOINT),
            (Provider::Assemblyai, crate::assemblyai::ASSEMBLYAI_ENDPOINT),
        ] {
            let c = TranscriptionConfig {
                provider,
                ..TranscriptionConfig::default()
            };
            assert_eq!(c.endpoint().as_str(), endpoint);
            let mut issues = Vec::new();
            c.validate("transcription", &mut issues);
            let settings: Vec<&str> = issues.iter().map(|i| i.setting.as_str()).collect();
            assert_eq!(settings, ["transcription.api_key"]);
        }
    }

    #[test]
    fn bad_settings_are_all_reported() {
        let c = TranscriptionConfig {
            max_concurrency: 0,
            model: " ".into(),
            request_timeout: Duration::ZERO,
            prompts: BTreeMap::from([
                ("7001-2345".into(), "Engine 5".into()),
                ("fire".into(), "x".into()),
            ]),
            ..TranscriptionConfig::default()
        };
        let mut issues = Vec::new();
        c.validate("transcription", &mut issues);
        let settings: Vec<&str> = issues.iter().map(|i| i.setting.as_str()).collect();
        assert_eq!(
            settings,
            [
                "transcription.max_concurrency",
                "transcription.model",
                "transcription.request_timeout",
                "transcription.prompts"
            ]
        );
        assert_eq!(c.prompt_for(7001, 2345), Some("Engine 5"));
        let whisper = TranscriptionConfig {
            provider: Provider::Whisper,
            whisper: WhisperConfig {
                beam_size: 0,
                threads: Some(0),
                ..WhisperConfig::default()
            },
            ..TranscriptionConfig::default()
        };
        let mut issues = Vec::new();
        whisper.validate("transcription", &mut issues);
        let settings: Vec<&str> = issues.iter().map(|i| i.setting.as_str()).collect();
        assert_eq!(
            settings,
            [
                "transcription.whisper.model_path",
                "transcription.whisper.beam_size",
                "transcription.whisper.threads"
            ]
        );
        assert_eq!(c.prompt_for(7001, 1), None);
    }
}
