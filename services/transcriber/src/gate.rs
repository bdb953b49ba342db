//! Back-off that protects the provider (spec §3.5): after `after_failures` transient failures in
//! a row, this replica stops taking calls for a while (doubling with each further failure, at
//! least what a `Retry-After` asked), instead of every call retrying on its own schedule while
//! the provider is down. One success opens the gate again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bcfy_bus::Backoff;
use bcfy_runtime::service::SignalHandle;
use tokio::time::Instant;

/// Shared by every task of one replica.
#[derive(Debug, Clone)]
pub(crate) struct ProviderGate {
    state: Arc<Mutex<State>>,
    after_failures: u32,
    backoff: Backoff,
    failures_signal: Option<SignalHandle>,
}

#[derive(Debug, Default)]
struct State {
    failures_in_a_row: u32,
    closed_until: Option<Instant>,
}

impl ProviderGate {
    pub(crate) fn new(after_failures: u32, backoff: Backoff) -> Self {
        Self {
            state: Arc::default(),
            after_failures: after_failures.max(1),
            backoff,
            failures_signal: None,
        }
    }

    /// Also reports the failures in a row as the `stt_failures` health signal.
    pub(crate) fn reported_as(mut self, signal: SignalHandle) -> Self {
        signal.set(0.0);
        self.failures_signal = Some(signal);
        self
    }

    fn report(&self, failures_in_a_row: u32) {
        if let Some(signal) = &self.failures_signal {
            signal.set(f64::from(failures_in_a_row));
        }
    }

    /// How long to wait before taking the next call (zero when open).
    pub(crate) fn wait(&self) -> Duration {
        let state = self.state.lock().expect("the gate lock is never poisoned");
        state.closed_until.map_or(Duration::ZERO, |until| {
            until.saturating_duration_since(Instant::now())
        })
    }

    /// Records a transient failure; returns the pause it starts, if any.
    pub(crate) fn failed(&self, retry_after: Option<Duration>) -> Option<Duration> {
        let mut state = self.state.lock().expect("the gate lock is never poisoned");
        state.failures_in_a_row += 1;
        self.report(state.failures_in_a_row);
        let over = state.failures_in_a_row.checked_sub(self.after_failures)?;
        let pause = self
            .backoff
            .delay(u64::from(over) + 1)
            .max(retry_after.unwrap_or_default());
        state.closed_until = Some(Instant::now() + pause);
        Some(pause)
    }

    /// Records a success: the provider works again.
    pub(crate) fn succeeded(&self) {
        *self.state.lock().expect("the gate lock is never poisoned") = State::default();
        self.report(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_gate_closes_after_repeated_failures_and_opens_on_success() {
        let gate = ProviderGate::new(
            2,
            Backoff::new(Duration::from_secs(1), Duration::from_secs(8)),
        );
        assert_eq!(gate.failed(None), None, "one failure is not a pattern");
        assert_eq!(gate.wait(), Duration::ZERO);
        assert_eq!(gate.failed(None), Some(Duration::from_secs(1)));
        assert_eq!(gate.wait(), Duration::from_secs(1));
        assert_eq!(gate.failed(None), Some(Duration::from_secs(2)), "doubles");
        assert_eq!(
            gate.failed(Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30)),
            "at least what the provider asked"
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(gate.wait(), Duration::ZERO, "the pause ends by itself");
        gate.succeeded();
        assert_eq!(gate.failed(None), None, "a success starts the count again");
    }
}
