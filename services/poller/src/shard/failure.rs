//! What a failed poll means: the shard stops (refused credentials, retry budget spent), the
//! whole fleet backs off (the upstream sent `Retry-After`), or this shard retries after its own
//! jittered back-off.

use std::time::Duration;

use bcfy_broadcastify::error::{AuthenticationError, Error as ClientError};
use bcfy_bus::Backoff;
use bcfy_bus::publish::PublishError;
use bcfy_runtime::service::signals;

use super::{Progress, ShardPoller, Stop};
use crate::cursor::CursorError;

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum PollError {
    #[error(transparent)]
    Upstream(#[from] ClientError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Cursor(#[from] CursorError),
}

impl PollError {
    /// The metrics' class.
    fn kind(&self) -> &'static str {
        match self {
            PollError::Upstream(error) => error.kind(),
            PollError::Publish(_) => "publish",
            PollError::Cursor(_) => "cursor_store",
        }
    }
}

/// What to do after a failed poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Broadcastify refused the credentials: no retry can help until they are fixed.
    StopRefused,
    /// The upstream asked everyone to wait this long.
    BackOffFleet(Duration),
    /// Failure number `failures` in a row is over `max_retry_attempts`.
    StopExhausted { failures: u32 },
    /// Failure number `failures` in a row: retry after the back-off.
    Retry { failures: u32 },
}

/// The verdict on `error` after `failures` failures in a row.
fn verdict(error: &PollError, failures: u32, max_retry_attempts: Option<u32>) -> Verdict {
    if let PollError::Upstream(upstream) = error {
        if matches!(
            upstream,
            ClientError::Authentication(
                AuthenticationError::InvalidCredentials | AuthenticationError::NoCredentials
            )
        ) {
            return Verdict::StopRefused;
        }
        if let Some(wait) = upstream.retry_hint().retry_after {
            return Verdict::BackOffFleet(wait);
        }
    }
    let failures = failures + 1;
    if max_retry_attempts.is_some_and(|max| failures > max) {
        Verdict::StopExhausted { failures }
    } else {
        Verdict::Retry { failures }
    }
}

impl ShardPoller {
    /// Decides what a failed poll means: stop, back off fleet-wide, or retry later.
    pub(super) async fn failed(
        &mut self,
        progress: &mut Progress,
        error: &PollError,
    ) -> Result<Duration, Stop> {
        let shard = self.name.clone();
        self.metrics
            .poll_errors
            .with_label_values(&[&shard, error.kind()])
            .inc();
        if let PollError::Upstream(ClientError::Authentication(_)) = error {
            self.metrics
                .auth_failures
                .with_label_values(&[&shard])
                .inc();
            self.latches.authenticated.set_not_ready();
        }
        match verdict(error, progress.failures, self.producer.max_retry_attempts) {
            Verdict::StopRefused => {
                self.signals
                    .set(signals::CREDENTIALS_REFUSED, super::UPSTREAM, 1.0);
                tracing::error!(error = %error, shard = %shard, "Broadcastify refused the credentials; this shard stops polling. Fix the credentials and restart.");
                Err(Stop)
            }
            Verdict::BackOffFleet(wait) => {
                tracing::warn!(error = %error, shard = %shard, wait = ?wait, "Upstream asked to back off; pausing every replica.");
                if let Err(gate_error) = self.gate.back_off(wait).await {
                    tracing::warn!(error = %gate_error, "Could not share the back-off.");
                }
                Ok(wait)
            }
            Verdict::StopExhausted { failures } => {
                progress.failures = failures;
                self.signals
                    .set(signals::POLL_FAILURES, &shard, f64::from(failures));
                tracing::error!(error = %error, shard = %shard, failures, "Retry budget spent; this shard stops polling.");
                Err(Stop)
            }
            Verdict::Retry { failures } => {
                progress.failures = failures;
                self.signals
                    .set(signals::POLL_FAILURES, &shard, f64::from(failures));
                self.metrics.retries.with_label_values(&[&shard]).inc();
                // Jittered, so the shards of one account do not retry in lockstep.
                let delay = Backoff::new(self.producer.initial_backoff, self.producer.max_backoff)
                    .jittered(u64::from(failures));
                tracing::warn!(error = %error, shard = %shard, failures, retry_in = ?delay, "Poll failed; retrying.");
                Ok(delay)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bcfy_broadcastify::Endpoint;

    use super::*;

    fn status(status: u16, retry_after: Option<Duration>) -> PollError {
        PollError::Upstream(ClientError::Status {
            endpoint: Endpoint::LiveCalls,
            status,
            retry_after,
            snippet: String::new(),
        })
    }

    #[test]
    fn refused_credentials_stop_the_shard_at_once() {
        for refusal in [
            AuthenticationError::InvalidCredentials,
            AuthenticationError::NoCredentials,
        ] {
            let error = PollError::Upstream(ClientError::Authentication(refusal));
            assert_eq!(verdict(&error, 0, None), Verdict::StopRefused);
        }
        let cookie = PollError::Upstream(ClientError::Authentication(
            AuthenticationError::MissingCookie,
        ));
        assert_eq!(verdict(&cookie, 0, None), Verdict::Retry { failures: 1 });
    }

    #[test]
    fn retry_after_backs_the_fleet_off_without_counting_a_failure() {
        let wait = Duration::from_secs(90);
        assert_eq!(
            verdict(&status(429, Some(wait)), 3, Some(3)),
            Verdict::BackOffFleet(wait)
        );
    }

    #[test]
    fn failures_count_up_and_stop_past_the_retry_budget() {
        let error = status(503, None);
        assert_eq!(verdict(&error, 0, Some(2)), Verdict::Retry { failures: 1 });
        assert_eq!(verdict(&error, 1, Some(2)), Verdict::Retry { failures: 2 });
        assert_eq!(
            verdict(&error, 2, Some(2)),
            Verdict::StopExhausted { failures: 3 }
        );
        assert_eq!(verdict(&error, 100, None), Verdict::Retry { failures: 101 });
    }
}
