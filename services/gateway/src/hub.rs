//! The fan-out: one ordered consumer per stream reads every event once per gateway replica and
//! hands it to every connected client through one bounded broadcast buffer. Clients share the
//! buffer (an event is formatted once, whatever the number of clients), and one that falls
//! further behind than the buffer holds learns so on its next read, so a slow client costs no
//! memory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::Backoff;
use futures::StreamExt as _;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::event::{Cursor, Event, Kind, Rendered, Stored};
use crate::metrics::Metrics;

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the state of stream {stream}")]
pub struct HubError {
    /// The stream.
    pub stream: &'static str,
    /// Why.
    #[source]
    pub source: async_nats::Error,
}

/// An event as the hub sends it: the event, and its rendering with the hub's position after
/// it as the cursor (right for every client that has followed the hub up to it).
#[derive(Debug)]
pub struct LiveEvent {
    /// The event.
    pub event: Event,
    /// Its JSON and SSE frame.
    pub rendered: Rendered,
}

#[derive(Debug)]
struct Shared {
    position: Cursor,
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

/// The live side of every client's stream.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<Mutex<Shared>>,
}

impl Hub {
    /// Starts reading each stream after its last stored event; clients get events from then
    /// on live, and anything older by replay. `buffer` events are kept for slow clients.
    ///
    /// # Errors
    ///
    /// [`HubError`] when a stream's state cannot be read.
    pub async fn start(
        js: &jetstream::Context,
        buffer: usize,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<Self, HubError> {
        let mut position = Cursor::default();
        for kind in Kind::ALL {
            let failed = |source: async_nats::Error| HubError {
                stream: kind.stream(),
                source,
            };
            let mut stream = js
                .get_stream(kind.stream())
                .await
                .map_err(|e| failed(e.into()))?;
            let info = stream.info().await.map_err(|e| failed(e.into()))?;
            position.advance(kind, info.state.last_sequence);
        }
        let (sender, _) = broadcast::channel(buffer);
        let hub = Self {
            shared: Arc::new(Mutex::new(Shared { position, sender })),
        };
        for kind in Kind::ALL {
            tokio::spawn(
                hub.clone()
                    .follow(js.clone(), kind, metrics.clone(), shutdown.clone()),
            );
        }
        Ok(hub)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver of every event from now on, and the position it starts after: every event at
    /// or before it was sent earlier, every later one comes through the receiver.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<LiveEvent>>, Cursor) {
        let shared = self.lock();
        (shared.sender.subscribe(), shared.position)
    }

    /// The position of the newest event read.
    pub fn position(&self) -> Cursor {
        self.lock().position
    }

    /// Records that `seq` of `kind` was read, and sends `event` (if it is one) to every client.
    fn record(&self, kind: Kind, seq: u64, event: Option<Event>) {
        let mut shared = self.lock();
        shared.position.advance(kind, seq);
        if let Some(event) = event {
            let rendered = event.render(shared.position);
            // No receiver is not an error: nobody is connected.
            shared
                .sender
                .send(Arc::new(LiveEvent { event, rendered }))
                .ok();
        }
    }

    /// Reads `kind`'s stream in order from after the hub's position until shutdown,
    /// re-creating the ordered consumer (from where it stopped) whenever it fails.
    async fn follow(
        self,
        js: jetstream::Context,
        kind: Kind,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut attempt = 0;
        while !shutdown.is_cancelled() {
            let from = self.position().get(kind) + 1;
            match self.read(&js, kind, from, &metrics, &shutdown).await {
                Ok(()) => attempt = 0,
                Err(error) => {
                    tracing::warn!(stream = kind.stream(), error = %error, "Reading the stream failed; resuming.");
                    attempt += 1;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(backoff.delay(attempt)) => {}
            }
        }
    }

    async fn read(
        &self,
        js: &jetstream::Context,
        kind: Kind,
        from: u64,
        metrics: &Metrics,
        shutdown: &CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let messages = bcfy_bus::stored::from_sequence(js, kind.stream(), from).await?;
        let mut messages = std::pin::pin!(messages.take_until(shutdown.cancelled()));
        while let Some(message) = messages.next().await {
            let message = message?;
            let info = message.info()?;
            let seq = info.stream_sequence;
            let stored = Stored {
                subject: message.subject.as_str(),
                seq,
                time: info.published,
                headers: message.headers.as_ref(),
                payload: &message.payload,
            };
            let event = match Event::from_stored(stored) {
                Ok(event) => event,
                Err(error) => {
                    metrics
                        .undecodable
                        .with_label_values(&[kind.as_str()])
                        .inc();
                    tracing::warn!(stream = kind.stream(), seq, error = %error, "Skipped a message that is not an event.");
                    None
                }
            };
            match &event {
                Some(shown) => {
                    // The fan-out joins the call's trace, continued from the stored message.
                    let span = tracing::info_span!("gateway.fan_out", call_id = %shown.call_id, kind = kind.as_str());
                    bcfy_bus::trace_context::follow(&span, message.headers.as_ref());
                    let _entered = span.enter();
                    self.record(kind, seq, event);
                }
                None => self.record(kind, seq, None),
            }
        }
        Ok(())
    }
}
