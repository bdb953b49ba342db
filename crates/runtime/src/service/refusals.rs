//! A provider that refuses *us* (an expired STT key, a CDN that blocks every download) says
//! nothing about the calls, so none of them may be given up for it. Once refusals reach a
//! threshold in a row, the stage pauses: it reports not ready (`/readyz` names the provider),
//! logs one clear line, sets its `…_refused` gauge to 1 (what an operator alerts on) and stops
//! taking work, leaving the calls in the stream. It then lets one call through at a growing
//! interval as a probe; the first answer that is not a refusal resumes the stage on its own.
//!
//! A stage asks [`Refusals::admit`] before it calls the provider and reports each answer with
//! [`Refusals::refused`] or [`Refusals::accepted`]; the worker's hold-back asks
//! [`Refusals::hold_back`] before pulling, so a paused stage pulls one message per interval at
//! most.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bcfy_bus::Backoff;
use prometheus::{IntCounter, IntGauge};
use tokio::time::Instant;

use super::signals::{self, SignalHandle, Signals};
use crate::admin::ReadinessLatch;

/// While a probe is out, the pull loop looks again this often.
const PROBE_CHECK: Duration = Duration::from_secs(1);

/// One provider's refusals, shared by every task of a replica.
#[derive(Debug, Clone)]
pub struct Refusals {
    provider: &'static str,
    in_a_row_to_pause: u32,
    probes: Backoff,
    state: Arc<Mutex<State>>,
    latch: ReadinessLatch,
    refused: IntGauge,
    pauses: IntCounter,
    signal: Option<SignalHandle>,
}

#[derive(Debug, Default)]
struct State {
    in_a_row: u32,
    paused: Option<Pause>,
}

#[derive(Debug)]
struct Pause {
    since: Instant,
    reason: String,
    probes: u64,
    next_probe: Instant,
    probing: bool,
}

/// What a task may do with its call.
#[derive(Debug)]
pub enum Admission {
    /// Call the provider; when paused, this task's call is the probe.
    Go(Option<Probe>),
    /// Hand the call back for this long: the stage is paused and another call is the probe.
    Hold(Duration),
}

/// The probe's turn; dropping it without a verdict (the call never reached the provider, or
/// the answer was inconclusive) lets the next due probe go.
#[derive(Debug)]
pub struct Probe {
    state: Arc<Mutex<State>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(pause) = &mut lock(&self.state).paused {
            pause.probing = false;
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Refusals {
    /// Refusals of `provider` (a name for logs and `/readyz`), pausing after
    /// `in_a_row_to_pause` of them in a row and probing at `probes` delays. `latch` is held not
    /// ready while paused; `refused` is 1 while paused; `pauses` counts pauses.
    pub fn new(
        provider: &'static str,
        in_a_row_to_pause: u32,
        probes: Backoff,
        latch: ReadinessLatch,
        refused: IntGauge,
        pauses: IntCounter,
    ) -> Self {
        latch.set_ready();
        Self {
            provider,
            in_a_row_to_pause: in_a_row_to_pause.max(1),
            probes,
            state: Arc::default(),
            latch,
            refused,
            pauses,
            signal: None,
        }
    }

    /// Also reports the pause as the `credentials_refused` health signal (1 while paused).
    #[must_use]
    pub fn reported_by(mut self, signals: &Signals) -> Self {
        let signal = signals.signal(signals::CREDENTIALS_REFUSED, self.provider);
        signal.set(0.0);
        self.signal = Some(signal);
        self
    }

    fn report(&self, paused: bool) {
        if let Some(signal) = &self.signal {
            signal.set(f64::from(u8::from(paused)));
        }
    }

    /// For the pull loop: `Some(wait)` while paused and no probe is due (or one is out).
    pub fn hold_back(&self) -> Option<Duration> {
        let state = lock(&self.state);
        let pause = state.paused.as_ref()?;
        if pause.probing {
            return Some(PROBE_CHECK);
        }
        let wait = pause.next_probe.saturating_duration_since(Instant::now());
        (!wait.is_zero()).then_some(wait)
    }

    /// Whether a task may call the provider now (see [`Admission`]).
    pub fn admit(&self) -> Admission {
        let mut state = lock(&self.state);
        let Some(pause) = &mut state.paused else {
            return Admission::Go(None);
        };
        let wait = pause.next_probe.saturating_duration_since(Instant::now());
        if pause.probing || !wait.is_zero() {
            return Admission::Hold(wait.max(PROBE_CHECK));
        }
        pause.probing = true;
        Admission::Go(Some(Probe {
            state: Arc::clone(&self.state),
        }))
    }

    /// Records that the provider refused us for `reason`. `Some(delay)` when the stage is
    /// (now) paused: hand the call back after `delay`, it is not the call's fault. `None` while
    /// refusals are still below the threshold: the stage treats it as this call's refusal.
    pub fn refused(&self, reason: &str) -> Option<Duration> {
        let mut state = lock(&self.state);
        state.in_a_row = state.in_a_row.saturating_add(1);
        let now = Instant::now();
        if let Some(pause) = &mut state.paused {
            pause.probes += 1;
            pause.probing = false;
            let wait = self.probes.delay(pause.probes);
            pause.next_probe = now + wait;
            pause.reason = reason.to_owned();
            tracing::warn!(provider = self.provider, reason, next_probe_in = ?wait, "Still refused; probing again later.");
            return Some(wait);
        }
        if state.in_a_row < self.in_a_row_to_pause {
            return None;
        }
        let wait = self.probes.delay(1);
        state.paused = Some(Pause {
            since: now,
            reason: reason.to_owned(),
            probes: 1,
            next_probe: now + wait,
            probing: false,
        });
        self.latch.set_not_ready();
        self.refused.set(1);
        self.report(true);
        self.pauses.inc();
        tracing::error!(
            provider = self.provider,
            reason,
            next_probe_in = ?wait,
            "The provider refuses this service, not the calls: taking no work, keeping every call, probing until it accepts again."
        );
        Some(wait)
    }

    /// Records an answer that was not a refusal of us: resumes the stage if it was paused.
    pub fn accepted(&self) {
        let mut state = lock(&self.state);
        state.in_a_row = 0;
        if let Some(pause) = state.paused.take() {
            self.latch.set_ready();
            self.refused.set(0);
            self.report(false);
            tracing::warn!(
                provider = self.provider,
                paused_for = ?pause.since.elapsed(),
                probes = pause.probes,
                last_reason = %pause.reason,
                "The provider accepts this service again; resuming."
            );
        }
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        lock(&self.state).paused.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::Readiness;

    fn refusals(in_a_row: u32) -> (Refusals, Readiness, IntGauge) {
        let readiness = Readiness::new();
        let gauge = IntGauge::new("refused", "help").unwrap();
        let refusals = Refusals::new(
            "stt",
            in_a_row,
            Backoff::new(Duration::from_secs(1), Duration::from_secs(4)),
            readiness.latch("stt"),
            gauge.clone(),
            IntCounter::new("pauses", "help").unwrap(),
        );
        (refusals, readiness, gauge)
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_pauses_probes_at_a_growing_interval_and_an_answer_resumes() {
        let (refusals, readiness, gauge) = refusals(1);
        assert!(readiness.is_ready() && refusals.hold_back().is_none());
        assert!(matches!(refusals.admit(), Admission::Go(None)));

        assert_eq!(refusals.refused("401"), Some(Duration::from_secs(1)));
        assert!(!readiness.is_ready(), "paused is not ready");
        assert_eq!(gauge.get(), 1);
        assert_eq!(refusals.hold_back(), Some(Duration::from_secs(1)));
        assert!(matches!(refusals.admit(), Admission::Hold(_)));

        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(refusals.hold_back(), None, "a probe is due");
        let Admission::Go(Some(probe)) = refusals.admit() else {
            panic!("the first task is the probe");
        };
        assert!(
            matches!(refusals.admit(), Admission::Hold(_)),
            "one probe at a time"
        );
        assert_eq!(refusals.hold_back(), Some(PROBE_CHECK));
        assert_eq!(
            refusals.refused("401"),
            Some(Duration::from_secs(2)),
            "the interval grows"
        );
        drop(probe);

        tokio::time::advance(Duration::from_secs(2)).await;
        let Admission::Go(Some(_probe)) = refusals.admit() else {
            panic!("the next probe");
        };
        refusals.accepted();
        assert!(readiness.is_ready() && !refusals.is_paused());
        assert_eq!(gauge.get(), 0);
        assert!(matches!(refusals.admit(), Admission::Go(None)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_without_a_verdict_lets_the_next_one_go() {
        let (refusals, ..) = refusals(1);
        refusals.refused("403");
        tokio::time::advance(Duration::from_secs(1)).await;
        let Admission::Go(Some(probe)) = refusals.admit() else {
            panic!("probe");
        };
        drop(probe);
        assert!(matches!(refusals.admit(), Admission::Go(Some(_))));
    }

    #[test]
    fn below_the_threshold_a_refusal_is_the_calls_and_an_answer_resets_the_count() {
        let (refusals, readiness, _) = refusals(3);
        assert_eq!(refusals.refused("403"), None);
        assert_eq!(refusals.refused("403"), None);
        refusals.accepted();
        assert_eq!(refusals.refused("403"), None);
        assert_eq!(refusals.refused("403"), None);
        assert!(refusals.refused("403").is_some(), "three in a row");
        assert!(!readiness.is_ready());
    }
}
