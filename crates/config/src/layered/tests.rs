use std::io::Write as _;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use super::*;
use crate::units::{self, ByteSize};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Sample {
    #[serde(with = "units::duration")]
    poll_interval: Duration,
    chunk_bytes: ByteSize,
    max_concurrency: u32,
    label: String,
    api_key: Option<SecretString>,
    upstream: Upstream,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct Upstream {
    #[serde(with = "units::duration")]
    timeout: Duration,
    retries: u32,
}

impl Default for Sample {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            chunk_bytes: ByteSize(8192),
            max_concurrency: 2,
            label: "default".into(),
            api_key: None,
            upstream: Upstream::default(),
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retries: 3,
        }
    }
}

impl Validate for Sample {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if self.max_concurrency == 0 {
            issues.push(ConfigIssue::new(
                prefix,
                "max_concurrency",
                "must be at least 1",
            ));
        }
        if self.upstream.retries > 10 {
            issues.push(ConfigIssue::new(prefix, "upstream.retries", "at most 10"));
        }
    }
}

fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let config: Sample = ConfigSource::default().load().unwrap();
    assert_eq!(config.poll_interval, Duration::from_secs(2));
    assert_eq!(config.upstream.retries, 3);
    assert_eq!(config.label, "default");
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    let file = yaml_file(
        "poll_interval: 5s\nlabel: from-file\nchunk_bytes: 64KiB\nupstream:\n  retries: 5\n  timeout: 1m\n",
    );
    let config: Sample = ConfigSource::default()
        .with_file(file.path())
        .with_env([
            ("BCFY_POLL_INTERVAL", "750ms"),
            ("BCFY_UPSTREAM__RETRIES", "7"),
            ("BCFY_LABEL", "12345"),
            ("UNRELATED_LABEL", "ignored"),
        ])
        .load()
        .unwrap();
    assert_eq!(
        config.poll_interval,
        Duration::from_millis(750),
        "env beats file"
    );
    assert_eq!(config.upstream.retries, 7, "env beats file, nested");
    assert_eq!(
        config.upstream.timeout,
        Duration::from_secs(60),
        "file beats default"
    );
    assert_eq!(config.chunk_bytes, ByteSize(64 * 1024));
    assert_eq!(
        config.label, "12345",
        "a numeric-looking env value still fills a string"
    );
    assert_eq!(config.max_concurrency, 2, "default kept");
}

#[test]
fn every_bad_setting_is_reported_at_once() {
    let file = yaml_file("poll_interval: soon\nmax_concurrency: 0\nupstrem:\n  retries: 1\n");
    let error = ConfigSource::default()
        .with_file(file.path())
        .with_env([
            ("BCFY_CHUNK_BYTES", "huge"),
            ("BCFY_UPSTREAM__RETRIES", "11"),
        ])
        .load::<Sample>()
        .unwrap_err();
    let settings: Vec<&str> = error.issues().iter().map(|i| i.setting.as_str()).collect();
    for expected in [
        "poll_interval",
        "chunk_bytes",
        "upstrem",
        "max_concurrency",
        "upstream.retries",
    ] {
        assert!(
            settings.contains(&expected),
            "{expected} not reported in {settings:?}"
        );
    }
    assert_eq!(settings.len(), 5, "{error}");
    let text = error.to_string();
    assert!(text.starts_with("5 invalid setting(s):"), "{text}");
    assert!(text.contains("`soon`"), "the bad value is quoted: {text}");
    assert!(text.contains("unknown setting"), "{text}");
}

#[test]
fn a_missing_file_is_a_file_error() {
    let error = ConfigSource::default()
        .with_file("/nonexistent/bcfy.yaml")
        .load::<Sample>()
        .unwrap_err();
    assert!(matches!(error, ConfigError::File { .. }), "{error}");
}

#[test]
fn secrets_load_but_never_print() {
    let config: Sample = ConfigSource::default()
        .with_env([("BCFY_API_KEY", "sk-very-secret-value")])
        .load()
        .unwrap();
    assert_eq!(
        config.api_key.as_ref().unwrap().expose_secret(),
        "sk-very-secret-value"
    );
    let printed = format!("{config:?}");
    assert!(!printed.contains("sk-very-secret-value"), "{printed}");
}
