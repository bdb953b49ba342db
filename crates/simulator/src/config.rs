//! The simulator's knobs; every one is a `bcfy-sim` flag (and env var) with its help text.

use std::net::SocketAddr;
use std::time::Duration;

/// Parses `30s`, `500ms` or bare seconds.
fn duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string());
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let number: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("`{text}`: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

/// Fraction in [0, 1].
fn rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not in [0, 1]"))
    }
}

/// How the simulated site behaves.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "bcfy-sim",
    version,
    about = "A faithful Broadcastify Calls simulator: login, live calls, archive and CDN audio on one address, with a call generator, real spoken audio and fault injection."
)]
pub struct SimConfig {
    /// Address to serve on (website paths and CDN paths alike).
    #[arg(long, env = "BCFY_SIM_LISTEN", default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// The one account that can log in.
    #[arg(long, env = "BCFY_SIM_USERNAME", default_value = "demo")]
    pub username: String,
    /// Its password.
    #[arg(
        long,
        env = "BCFY_SIM_PASSWORD",
        default_value = "demo-password",
        hide_env_values = true
    )]
    pub password: String,
    /// How long a session cookie stays valid.
    #[arg(long, value_parser = duration, default_value = "1h")]
    pub session_ttl: Duration,
    /// Trunked systems simulated (RadioReference sids 7001, 7002, ...).
    #[arg(long, default_value_t = 2)]
    pub systems: u32,
    /// Talkgroups per system (2345, 2346, ...).
    #[arg(long, default_value_t = 3)]
    pub talkgroups_per_system: u32,
    /// Ingest nodes per system (node ids 1502, 1503, ...; never equal to a sid).
    #[arg(long, default_value_t = 2)]
    pub nodes_per_system: u32,
    /// Fraction of nodes that upload mp3 (SDRTrunk style) instead of m4a.
    #[arg(long, value_parser = rate, default_value_t = 0.25)]
    pub mp3_node_ratio: f64,
    /// Fraction of mp3 calls that carry no trunk-recorder `metadata`.
    #[arg(long, value_parser = rate, default_value_t = 0.5)]
    pub mp3_without_metadata_ratio: f64,
    /// New calls per second across all talkgroups (0: only injected calls).
    #[arg(long, default_value_t = 0.5)]
    pub calls_per_second: f64,
    /// Calls generated in the past at start, spread over this window (for archive and doInit).
    #[arg(long, value_parser = duration, default_value = "0s")]
    pub backfill: Duration,
    /// Fraction of generated calls that hold no speech (pages, tones, DTMF, hiss, static).
    #[arg(long, value_parser = rate, default_value_t = 0.1)]
    pub non_speech_ratio: f64,
    /// Fraction of calls published late: visible now with a `ts` already behind the cursor.
    #[arg(long, value_parser = rate, default_value_t = 0.05)]
    pub late_call_ratio: f64,
    /// How far behind a late call's `ts` is.
    #[arg(long, value_parser = duration, default_value = "20s")]
    pub late_by: Duration,
    /// Fraction of calls whose audio 404s on the CDN for a while after they are listed.
    #[arg(long, value_parser = rate, default_value_t = 0.1)]
    pub cdn_lag_ratio: f64,
    /// How long such audio 404s.
    #[arg(long, value_parser = duration, default_value = "3s")]
    pub cdn_lag: Duration,
    /// `Content-Type` served for `.m4a` audio (audio/mp4, audio/aac or audio/x-m4a).
    #[arg(long, default_value = "audio/mp4")]
    pub m4a_content_type: String,
    /// Calls kept in memory (older ones leave the archive and the CDN).
    #[arg(long, value_parser = duration, default_value = "6h")]
    pub retain: Duration,
    /// Seed of the call generator and the fault dice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests whose headers are kept for contract tests (oldest dropped first).
    #[arg(long, default_value_t = 10_000)]
    pub request_log_size: usize,
    /// Send an `ETag` with archive blocks and answer `If-None-Match` with 304. The real site
    /// was never seen doing so (protocol §4); this exercises clients that honour it.
    #[arg(long)]
    pub archive_etag: bool,
    /// The catalog API key accepted (`/audio/?key=`).
    #[arg(
        long,
        env = "BCFY_SIM_CATALOG_KEY",
        default_value = "demo-catalog-key",
        hide_env_values = true
    )]
    pub catalog_key: String,
    /// The Calls API application id accepted (the JWT's `iss`).
    #[arg(long, default_value = "demo-app")]
    pub app_id: String,
    /// The Calls API key id accepted (the JWT's `kid`).
    #[arg(long, default_value = "demo-key-id")]
    pub api_key_id: String,
    /// The Calls API key JWTs must be signed with.
    #[arg(
        long,
        env = "BCFY_SIM_API_KEY",
        default_value = "demo-api-key",
        hide_env_values = true
    )]
    pub api_key: String,
    /// Fault rates.
    #[command(flatten)]
    pub faults: FaultRates,
}

/// Probability of each fault per eligible request.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultRates {
    /// Live-calls and archive requests whose session is expired first (403).
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub session_expiry_rate: f64,
    /// Logins refused as a bad password even when it is right.
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub bad_password_rate: f64,
    /// Site requests answered 429 (half with `Retry-After`).
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub rate_limit_rate: f64,
    /// Site and CDN requests answered 503 with `Retry-After`.
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub unavailable_rate: f64,
    /// `Retry-After` seconds sent with 429 and 503.
    #[arg(long, default_value_t = 2)]
    pub retry_after_seconds: u64,
    /// Requests answered only after `slow_delay`.
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub slow_rate: f64,
    /// Delay of slow answers.
    #[arg(long, value_parser = duration, default_value = "2s")]
    pub slow_delay: Duration,
    /// Audio bodies cut off halfway (the connection drops).
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub truncate_audio_rate: f64,
    /// Audio bodies sent in small, slow pieces.
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub slow_audio_rate: f64,
    /// Live-calls answers whose JSON is cut off.
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub malformed_json_rate: f64,
    /// Requests whose connection is reset with no answer.
    #[arg(long, value_parser = rate, default_value_t = 0.0)]
    pub reset_rate: f64,
}

impl FaultRates {
    /// Every fault at `rate`, `Retry-After: 1`, slow answers 1 s late: the mix a fault run or a
    /// soak starts from.
    pub fn every(rate: f64) -> Self {
        Self {
            session_expiry_rate: rate,
            bad_password_rate: 0.0,
            rate_limit_rate: rate,
            unavailable_rate: rate,
            retry_after_seconds: 1,
            slow_rate: rate,
            slow_delay: Duration::from_secs(1),
            truncate_audio_rate: rate,
            slow_audio_rate: rate,
            malformed_json_rate: rate,
            reset_rate: rate,
        }
    }
}

impl SimConfig {
    /// Defaults for tests: a loopback port chosen by the OS, no generator, no random faults.
    pub fn for_tests() -> Self {
        let mut config = <Self as clap::Parser>::parse_from(["bcfy-sim"]);
        config.listen = "127.0.0.1:0".parse().expect("valid address");
        config.calls_per_second = 0.0;
        config.late_call_ratio = 0.0;
        config.non_speech_ratio = 0.0;
        config.cdn_lag_ratio = 0.0;
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_parse() {
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("2.5").unwrap(), Duration::from_millis(2500));
        assert!(duration("soon").is_err());
        assert!(rate("1.5").is_err());
        assert_eq!(rate("0.25").unwrap(), 0.25);
    }

    #[test]
    fn test_defaults_are_quiet() {
        let config = SimConfig::for_tests();
        assert_eq!(config.listen.port(), 0);
        assert_eq!(config.calls_per_second, 0.0);
        assert_eq!(config.faults.reset_rate, 0.0);
    }
}
