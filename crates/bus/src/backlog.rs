//! A downstream consumer's backlog: how many messages a durable consumer has not finished
//! (pending plus unacknowledged). Upstream stages pause while it is over their threshold (the
//! poller for the audio fetcher, the audio fetcher for the transcriber), so JetStream, not
//! memory, absorbs a slow downstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

/// The latest backlog reading, shared by every task of this replica.
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    value: Arc<AtomicU64>,
}

impl Backlog {
    /// The latest reading (0 when the consumer does not exist yet).
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Reads the backlog of `consumer` on `stream` now.
    pub async fn refresh(&self, js: &jetstream::Context, stream: &str, consumer: &str) -> u64 {
        let found = js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(consumer, stream)
            .await;
        let backlog = match found {
            Ok(mut consumer) => match consumer.info().await {
                Ok(info) => info.num_pending + info.num_ack_pending as u64,
                Err(error) => {
                    tracing::debug!(error = %error, "Consumer info unavailable.");
                    self.get()
                }
            },
            Err(_) => 0,
        };
        self.value.store(backlog, Ordering::Relaxed);
        backlog
    }

    /// Refreshes every `every` until cancelled, handing each reading to `report` (a metric).
    pub async fn watch(
        self,
        js: jetstream::Context,
        stream: &'static str,
        consumer: String,
        every: Duration,
        stop: CancellationToken,
        report: impl Fn(u64) + Send,
    ) {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => report(self.refresh(&js, stream, &consumer).await),
            }
        }
    }
}
