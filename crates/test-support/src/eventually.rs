//! Waiting with patience: poll a condition until it holds or the patience runs out.
//!
//! Tests never sleep for a fixed time and hope; they state what they wait for and how long
//! they are willing to wait, and fail with that description when it does not happen.

use std::future::Future;
use std::time::Duration;

/// First pause between two checks.
const FIRST_PAUSE: Duration = Duration::from_millis(5);
/// Longest pause between two checks.
const MAX_PAUSE: Duration = Duration::from_millis(200);

/// Calls `check` until it returns `Some`, and returns that value.
///
/// Pauses between checks grow from 5 ms to 200 ms. Uses `tokio::time`, so it also works (and
/// costs no wall time) under `tokio::time::pause()`.
///
/// # Panics
///
/// When `patience` runs out, naming `what` was awaited.
pub async fn eventually<T, F, Fut>(patience: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = FIRST_PAUSE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up after {patience:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let value = eventually(Duration::from_secs(1), "the third call", || async {
            (calls.fetch_add(1, Ordering::SeqCst) == 2).then_some("done")
        })
        .await;
        assert_eq!(value, "done");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "gave up after 1s waiting for something that never happens")]
    async fn panics_with_the_description_when_patience_runs_out() {
        eventually(
            Duration::from_secs(1),
            "something that never happens",
            || async { None::<()> },
        )
        .await;
    }
}
