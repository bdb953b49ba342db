//! The pull loop every consuming service runs: take deliveries from a durable consumer, handle
//! at most `concurrency` at once, hand a delivery back (NAK with a delay) while the service
//! wants to hold back (a lagging downstream, a failing provider), and on shutdown stop pulling
//! and wait for the handlers in flight, so every message taken is settled.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use bcfy_bus::Delivery;
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Pause after a pull error before pulling again.
const PULL_RETRY: Duration = Duration::from_secs(2);

/// A durable consumer's pull loop, ready to run (see [`super::Bus::worker`]).
pub struct Worker {
    messages: pull::Stream,
    concurrency: usize,
}

impl Worker {
    pub(super) fn new(messages: pull::Stream, concurrency: usize) -> Self {
        Self {
            messages,
            concurrency: concurrency.max(1),
        }
    }

    /// Runs `handle` on each delivery until `shutdown` or the end of the stream, at most
    /// `concurrency` at once. Before each delivery is handled, `hold_back` may ask for a pause:
    /// the delivery is NAKed with that delay and the loop waits as long before pulling again.
    /// On shutdown it stops pulling and waits for the handlers in flight.
    pub async fn run<H, F>(
        self,
        shutdown: &CancellationToken,
        hold_back: impl Fn() -> Option<Duration>,
        handle: H,
    ) where
        H: Fn(Delivery) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            mut messages,
            concurrency,
        } = self;
        let limit = Arc::new(Semaphore::new(concurrency));
        let tasks = TaskTracker::new();
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&limit).acquire_owned() => permit.expect("the semaphore is never closed"),
                () = shutdown.cancelled() => break,
            };
            let next = tokio::select! {
                next = messages.next() => next,
                () = shutdown.cancelled() => break,
            };
            let pause = match next {
                Some(Ok(message)) => match hold_back() {
                    Some(pause) => {
                        drop(permit);
                        Delivery::new(message).nak_or_wait(pause).await;
                        pause
                    }
                    None => {
                        let work = handle(Delivery::new(message));
                        tasks.spawn(async move {
                            work.await;
                            drop(permit);
                        });
                        continue;
                    }
                },
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "Pulling failed; retrying.");
                    PULL_RETRY
                }
                None => break,
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.cancelled() => break,
            }
        }
        // Stop pulling; let the handlers in flight finish and settle their messages.
        drop(messages);
        tasks.close();
        tasks.wait().await;
    }
}
