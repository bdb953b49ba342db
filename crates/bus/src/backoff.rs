//! The one back-off every retry in the workspace uses: a delay that doubles per attempt from
//! `initial` up to `max`, so a failing call, poll or connection is tried ever less often, and a
//! jittered form for anything a whole fleet retries at once (reconnects, polls of one account),
//! so replicas do not retry in lockstep.

use std::time::Duration;

use rand::Rng as _;

/// Doubling delays from `initial`, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

/// Doubling stops here (2^16 times `initial` is past any `max` in use).
const MAX_DOUBLINGS: u64 = 16;

impl Backoff {
    /// Delays from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay before attempt `attempt` (1 for the first retry): `initial * 2^(attempt - 1)`,
    /// at most `max`.
    pub fn delay(&self, attempt: u64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(MAX_DOUBLINGS);
        let factor = 1u32 << u32::try_from(exponent).unwrap_or(16);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// [`delay`](Self::delay) at a random point between half and all of it.
    pub fn jittered(&self, attempt: u64) -> Duration {
        self.delay(attempt)
            .mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_the_first_attempt_and_stop_at_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        let delays: Vec<u64> = (0..=6).map(|a| backoff.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.delay(u64::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(8));
        for attempt in 1..40 {
            let ceiling = backoff.delay(attempt);
            let delay = backoff.jittered(attempt);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "attempt {attempt}: {delay:?} of {ceiling:?}"
            );
        }
    }
}
