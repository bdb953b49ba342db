//! Delivery of alerts to one destination: a durable consumer on `ALERTS` with the
//! destination's filter and one alert in flight, so alerts arrive in order and one waiting for
//! a retry holds back those after it (a destination down for an hour gets them all, in order,
//! once it answers again). Each POST carries `Idempotency-Key` (the alert's id), and for a
//! webhook with a secret `X-Bcfy-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
//!
//! A 2xx is delivered. A 5xx, 408, 429 (its `Retry-After` honoured) or no answer is retried
//! with doubling delays, without limit: the alert stays in the stream. Any other 4xx is the
//! receiver refusing this alert for good: it is dead-lettered with the answer, marked with the
//! destination, so a redrive goes to this destination only.

use std::time::Duration;

use bcfy_bus::consume::error_chain;
use bcfy_bus::{Delivery, Failure};
use bcfy_proto::Alert;
use bcfy_runtime::service::DeadLetters;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use tokio::time::Instant;
use tracing::Instrument as _;
use url::Url;

use crate::config::{DestinationConfig, DestinationKind};
use crate::format;
use crate::metrics::Metrics;

/// The signature header of a webhook with a secret.
pub const SIGNATURE_HEADER: &str = "X-Bcfy-Signature-256";
/// The header of the key a receiver deduplicates on.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// On a redriven alert: the only destination it is for.
pub const DESTINATION_HEADER: &str = "Bcfy-Alert-Destination";
/// The dead-letter kind of an alert a destination refused.
pub const REJECTED: &str = "destination_rejected";
/// At most this much of a refusing answer is kept in the dead letter.
const ANSWER_KEPT: usize = 500;

/// One destination's deliveries.
#[derive(Debug)]
pub(crate) struct Destination {
    pub(crate) config: DestinationConfig,
    pub(crate) url: Url,
    pub(crate) client: reqwest::Client,
    pub(crate) console: Option<Url>,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) metrics: Metrics,
}

/// How one attempt went.
#[derive(Debug, PartialEq)]
enum Outcome {
    Delivered,
    /// Try again, not before this (a `Retry-After`).
    Retry(Option<Duration>, String),
    /// Refused for good: status and the start of the answer.
    Rejected(u16, String),
}

impl Destination {
    /// Handles one delivery to the end: acked, NAKed or dead-lettered before this returns.
    pub(crate) async fn handle(&self, delivery: Delivery) {
        let Some((delivery, alert)) = self.dead_letters.decode::<Alert>(delivery).await else {
            return;
        };
        let span =
            tracing::info_span!("deliver", destination = %self.config.name, alert = %alert.id);
        delivery.follow_trace(&span);
        self.deliver(delivery, alert).instrument(span).await;
    }

    /// Sends `alert` and settles its delivery.
    async fn deliver(&self, delivery: Delivery, alert: Alert) {
        let name = self.config.name.as_str();
        let addressed = delivery
            .headers()
            .and_then(|headers| headers.get(DESTINATION_HEADER))
            .map(|value| value.as_str().to_owned());
        if addressed.is_some_and(|to| to != name) {
            // A redrive of what another destination refused; this one had it already.
            return ack(delivery).await;
        }
        let body = match format::body(self.config.kind, &alert, self.console.as_ref())
            .map(|json| json.to_string())
        {
            Ok(body) => body,
            Err(error) => return self.dead_letters.poison(delivery, &error).await,
        };
        let began = Instant::now();
        let outcome = self.send(&alert.id, body).await;
        self.metrics
            .delivery_seconds
            .with_label_values(&[name])
            .observe(began.elapsed().as_secs_f64());
        match outcome {
            Outcome::Delivered => {
                self.count("delivered");
                tracing::info!(destination = name, alert = %alert.id, "Alert delivered.");
                ack(delivery).await;
            }
            Outcome::Retry(asked, why) => {
                self.count("retry");
                let delay = self
                    .config
                    .retry_backoff()
                    .delay(delivery.attempt())
                    .max(asked.unwrap_or_default());
                tracing::warn!(destination = name, alert = %alert.id, attempt = delivery.attempt(), retry_in = ?delay, why, "Delivery failed; retrying.");
                delivery.nak_or_wait(delay).await;
            }
            Outcome::Rejected(status, answer) => {
                self.count("rejected");
                let reason = format!("{name} answered {status}: {answer}");
                tracing::error!(destination = name, alert = %alert.id, status, answer, "The destination refused the alert; dead-lettered.");
                let call_id = bcfy_bus::CallId::parse(&alert.call_id).ok();
                let failure = Failure::new(REJECTED, reason, call_id.as_ref())
                    .with_redrive_header(DESTINATION_HEADER, name);
                self.dead_letters.give_up(delivery, failure).await;
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .deliveries
            .with_label_values(&[&self.config.name, outcome])
            .inc();
    }

    /// One POST of `body`.
    async fn send(&self, alert_id: &str, body: String) -> Outcome {
        let mut request = self
            .client
            .post(self.url.clone())
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, alert_id);
        if self.config.kind == DestinationKind::Webhook
            && let Some(secret) = &self.config.secret
        {
            request = request.header(SIGNATURE_HEADER, signature(secret, body.as_bytes()));
        }
        let response = match request.body(body).send().await {
            Ok(response) => response,
            Err(error) => return Outcome::Retry(None, error_chain(&error)),
        };
        let status = response.status();
        if status.is_success() {
            return Outcome::Delivered;
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(retry_after);
        let answer: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(ANSWER_KEPT)
            .collect();
        classify(status.as_u16(), retry_after, answer)
    }
}

/// What an answer that is not a 2xx means.
fn classify(status: u16, retry_after: Option<Duration>, answer: String) -> Outcome {
    match status {
        408 | 429 | 500..=599 => Outcome::Retry(retry_after, format!("HTTP {status}")),
        400..=499 => Outcome::Rejected(status, answer),
        // A redirect or an informational answer: the receiver did not take it.
        _ => Outcome::Retry(None, format!("HTTP {status}")),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &SecretString, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={:x}", mac.finalize().into_bytes())
}

async fn ack(delivery: Delivery) {
    if let Err(error) = delivery.ack().await {
        tracing::warn!(error = %error, "Ack failed; the alert returns and its receiver deduplicates it.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_module_says() {
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            classify(429, wait, String::new()),
            Outcome::Retry(wait, "HTTP 429".into())
        );
        assert!(matches!(
            classify(503, None, String::new()),
            Outcome::Retry(None, _)
        ));
        assert!(matches!(
            classify(408, None, String::new()),
            Outcome::Retry(None, _)
        ));
        assert_eq!(
            classify(400, None, "bad".into()),
            Outcome::Rejected(400, "bad".into())
        );
        assert!(matches!(
            classify(404, None, String::new()),
            Outcome::Rejected(404, _)
        ));
        assert!(matches!(
            classify(302, None, String::new()),
            Outcome::Retry(None, _)
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("12"), Some(Duration::from_secs(12)));
        let later = std::time::SystemTime::now() + Duration::from_secs(90);
        let waited = retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(waited > Duration::from_secs(80) && waited <= Duration::from_secs(90));
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        let secret = SecretString::from("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
