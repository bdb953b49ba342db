//! Shutdown goes one way: signal, token, drain, deadline.
//!
//! `main` cancels one [`CancellationToken`] on SIGTERM or SIGINT. Components take the token
//! and stop taking new work when it fires; every spawned task goes through the
//! [`TaskTracker`], and [`Shutdown::drain`] waits for them under a grace deadline, so in-flight
//! calls finish (and are acked) before the process exits.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown token and the set of tasks to drain.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

/// How draining ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every task finished within the grace period.
    Drained,
    /// The grace period ran out with this many tasks still running.
    TimedOut {
        /// Tasks still running.
        remaining: usize,
    },
}

impl Shutdown {
    /// A fresh token and an empty task set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token components watch.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Spawns a tracked task (drained on shutdown).
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Cancels the token when SIGTERM or SIGINT arrives.
    pub fn cancel_on_signal(&self) {
        let token = self.token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = signal() => token.cancel(),
                () = token.cancelled() => {}
            }
        });
    }

    /// Cancels the token (as a signal would).
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Waits for every tracked task, at most `grace`. Logs a warning when time runs out.
    pub async fn drain(&self, grace: Duration) -> DrainOutcome {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return DrainOutcome::Drained;
        }
        let remaining = self.tracker.len();
        tracing::warn!(remaining, grace = ?grace, "Shutdown grace period ran out.");
        DrainOutcome::TimedOut { remaining }
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C).
///
/// # Panics
///
/// When the signal handlers cannot be installed (no Tokio signal driver), which is a bug.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("installing a SIGINT handler");
    tokio::select! {
        _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "Shutting down."),
        _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "Shutting down."),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tasks_finish_their_work_after_cancel_and_drain_completes() {
        let shutdown = Shutdown::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let token = shutdown.token();
            let finished = Arc::clone(&finished);
            shutdown.spawn(async move {
                token.cancelled().await;
                // In-flight work completing after the signal.
                tokio::time::sleep(Duration::from_secs(1)).await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        shutdown.cancel();
        assert_eq!(
            shutdown.drain(Duration::from_secs(10)).await,
            DrainOutcome::Drained
        );
        assert_eq!(finished.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stuck_task_makes_drain_time_out_with_a_count() {
        let shutdown = Shutdown::new();
        shutdown.spawn(std::future::pending::<()>());
        shutdown.spawn(async {});
        shutdown.cancel();
        let outcome = shutdown.drain(Duration::from_secs(3)).await;
        assert_eq!(outcome, DrainOutcome::TimedOut { remaining: 1 });
    }
}
