//! The pull loop every consuming service runs: take deliveries from a durable consumer, handle
//! at most `concurrency` at once, hand a delivery back (NAK with a delay) while the service
//! wants to hold back (a lagging downstream, a failing provider), and on shutdown stop pulling
//! and wait for the handlers in flight, so every message taken is settled.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Delivery;

/// Pause after a pull error before pulling again.
const PULL_RETRY: Duration = Duration::from_secs(2);

/// Runs `handle` on each delivery from `messages` until `shutdown` or the end of the stream.
/// Before each delivery is handled, `hold_back` may ask for a pause: the delivery is NAKed
/// with that delay and the loop waits as long before pulling again.
pub async fn work<H, F>(
    mut messages: pull::Stream,
    concurrency: usize,
    shutdown: &CancellationToken,
    hold_back: impl Fn() -> Option<Duration>,
    handle: H,
) where
    H: Fn(Delivery) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
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
