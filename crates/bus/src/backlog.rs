//! A downstream consumer's backlog: how many messages a durable consumer has not finished
//! (pending plus unacknowledged). Upstream stages pause while it is over their threshold (the
//! poller for the audio fetcher, the audio fetcher for the transcriber), so JetStream, not
//! memory, absorbs a slow downstream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

/// The backlog of one durable consumer: its latest reading, shared by every task of this
/// replica, and where to read it again.
#[derive(Debug, Clone)]
pub struct Backlog {
    value: Arc<AtomicU64>,
    js: jetstream::Context,
    stream: &'static str,
    consumer: Arc<str>,
}

impl Backlog {
    /// The backlog of `consumer` on `stream`; 0 until first read.
    pub fn new(js: jetstream::Context, stream: &'static str, consumer: &str) -> Self {
        Self {
            value: Arc::default(),
            js,
            stream,
            consumer: consumer.into(),
        }
    }

    /// The latest reading (0 when the consumer does not exist yet).
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// Reads the backlog now (and keeps it as the latest reading).
    pub async fn refresh(&self) -> u64 {
        let found = self
            .js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                &*self.consumer,
                self.stream,
            )
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
        every: Duration,
        stop: CancellationToken,
        report: impl Fn(u64) + Send,
    ) {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => report(self.refresh().await),
            }
        }
    }
}
