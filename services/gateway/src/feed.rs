//! One client's event stream: what it missed, read back from the streams, then the hub's live
//! events, each exactly once. The client's cursor (the `id` of every event) is the last
//! sequence it has been through in each stream, so resuming after it, on any replica, skips
//! nothing and repeats nothing.
//!
//! The feed runs as its own task and hands frames to the connection through a small bounded
//! channel: a client that stops reading stops the task, the hub's buffer overtakes it, and it
//! is told so and disconnected.

use std::sync::Arc;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures::StreamExt as _;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::event::{Cursor, Event, Kind, Rendered, Stored};
use crate::filter::{Filter, Start};
use crate::hub::Hub;
use crate::metrics::Metrics;

/// Frames waiting for one client's connection.
pub const FRAMES_BUFFERED: usize = 32;
/// How many times a client may fall behind the hub while it is being replayed to, before it
/// counts as too slow.
const MAX_REPLAYS: usize = 3;

/// What a connection sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An event, with the client's cursor after it as its id.
    Event(Rendered),
    /// The last frame: why the stream ends.
    Closing(Closing),
}

/// Why the gateway ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// The client fell further behind than the buffer holds.
    Lagged,
    /// The gateway is shutting down; reconnect (to another replica) with the last id.
    ShuttingDown,
    /// The streams could not be read back; reconnect with the last id.
    Unavailable,
}

impl Closing {
    /// The reason's code.
    pub fn code(self) -> &'static str {
        match self {
            Closing::Lagged => "lagged",
            Closing::ShuttingDown => "shutting_down",
            Closing::Unavailable => "unavailable",
        }
    }

    /// The reason, for a person.
    pub fn message(self) -> &'static str {
        match self {
            Closing::Lagged => {
                "this client read too slowly and fell behind; reconnect with the last event id"
            }
            Closing::ShuttingDown => "the gateway is restarting; reconnect with the last event id",
            Closing::Unavailable => {
                "the event streams cannot be read now; reconnect with the last event id"
            }
        }
    }

    /// The frame's JSON: `{"error": code, "message": text}`.
    pub fn json(self) -> String {
        serde_json::json!({"error": self.code(), "message": self.message()}).to_string()
    }
}

/// One client's request.
#[derive(Debug, Clone)]
pub struct Feed {
    /// The hub.
    pub hub: Hub,
    /// JetStream, for replay.
    pub js: jetstream::Context,
    /// What the client asked for.
    pub filter: Filter,
    /// Where it starts.
    pub start: Start,
    /// Who it is.
    pub principal: Arc<Principal>,
    /// The gateway's metrics.
    pub metrics: Metrics,
}

/// Whether the connection is still there.
struct Gone;

impl Feed {
    /// Starts the feed; its frames arrive on the returned channel until it closes (after a
    /// [`Frame::Closing`] or when the client goes away).
    pub fn spawn(self, shutdown: CancellationToken) -> mpsc::Receiver<Frame> {
        let (frames, receiver) = mpsc::channel(FRAMES_BUFFERED);
        tokio::spawn(async move {
            let closing = tokio::select! {
                () = shutdown.cancelled() => Some(Closing::ShuttingDown),
                () = frames.closed() => None,
                closing = self.run(&frames) => closing,
            };
            if let Some(closing) = closing {
                if closing == Closing::Lagged {
                    self.metrics
                        .clients_dropped
                        .with_label_values(&["lagged"])
                        .inc();
                }
                // The client may be gone already.
                frames.send(Frame::Closing(closing)).await.ok();
            }
        });
        receiver
    }

    /// Replays, then forwards live events; returns why it stopped (`None`: the client left).
    async fn run(&self, frames: &mpsc::Sender<Frame>) -> Option<Closing> {
        let (mut live, hub_position) = self.hub.subscribe();
        let mut seen = match self.start {
            Start::Now => hub_position,
            Start::After(cursor) => cursor,
            Start::Since(_) => Cursor::default(),
        };
        let since = match self.start {
            Start::Since(time) => Some(time),
            Start::Now | Start::After(_) => None,
        };
        let mut replays = 0;
        if self.start != Start::Now {
            replays += 1;
            if let Err(stopped) = self.replay(since, &mut seen, hub_position, frames).await {
                return stopped.closing();
            }
        }
        let mut live_since_replay = false;
        loop {
            match live.recv().await {
                Ok(live_event) => {
                    live_since_replay = true;
                    let event = &live_event.event;
                    if seen.covers(event.kind, event.seq) {
                        continue;
                    }
                    // Following the hub, the client has been through everything up to the hub's
                    // position, so the hub's rendering fits; a cursor from a replica further
                    // ahead than this one keeps its own.
                    let shared = seen.within(live_event.rendered.id);
                    seen.advance_to(live_event.rendered.id);
                    if !self.filter.matches(event, &self.principal) {
                        continue;
                    }
                    let rendered = if shared {
                        live_event.rendered.clone()
                    } else {
                        event.render(seen)
                    };
                    if self.send(event.kind, rendered, frames).await.is_err() {
                        return None;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Behind during a replay (the streams were slow), not the client: catch up
                    // from the streams again; behind while live: the client is too slow.
                    if live_since_replay || replays >= MAX_REPLAYS {
                        return Some(Closing::Lagged);
                    }
                    replays += 1;
                    let (resubscribed, position) = self.hub.subscribe();
                    live = resubscribed;
                    if let Err(stopped) = self.replay(None, &mut seen, position, frames).await {
                        return stopped.closing();
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Some(Closing::ShuttingDown),
            }
        }
    }

    /// Sends an event of `kind` (the client may see it and asked for it).
    async fn send(
        &self,
        kind: Kind,
        rendered: Rendered,
        frames: &mpsc::Sender<Frame>,
    ) -> Result<(), Gone> {
        frames
            .send(Frame::Event(rendered))
            .await
            .map_err(|_| Gone)?;
        self.metrics
            .events_sent
            .with_label_values(&[kind.as_str()])
            .inc();
        Ok(())
    }

    /// Sends every event after `seen` (or stored since `since`) up to `until`, in the order
    /// they were stored across the streams.
    async fn replay(
        &self,
        since: Option<time::OffsetDateTime>,
        seen: &mut Cursor,
        until: Cursor,
        frames: &mpsc::Sender<Frame>,
    ) -> Result<(), Replay> {
        let mut readers = Vec::new();
        for kind in self.filter.kinds() {
            if until.get(kind) <= seen.get(kind) && since.is_none() {
                continue;
            }
            let reader = Reader::open(&self.js, kind, &self.filter, *seen, since, until).await?;
            readers.push(reader);
        }
        // From a time, each stream starts just before its first event since then.
        if since.is_some() {
            for reader in &mut readers {
                let floor = match reader.peek().await? {
                    Some((seq, _)) => seq - 1,
                    None => reader.until,
                };
                seen.advance(reader.kind, floor);
            }
        }
        // Whatever the filter leaves out is passed over too.
        for kind in Kind::ALL {
            if !self.filter.kinds().any(|k| k == kind) {
                seen.advance(kind, until.get(kind));
            }
        }
        loop {
            let mut next: Option<(usize, i64)> = None;
            for (i, reader) in readers.iter_mut().enumerate() {
                if let Some((_, stored_at)) = reader.peek().await?
                    && next.is_none_or(|(_, t)| stored_at < t)
                {
                    next = Some((i, stored_at));
                }
            }
            let Some((i, _)) = next else {
                break;
            };
            let (kind, seq, event) = readers[i].take().ok_or(Replay::Unavailable)?;
            seen.advance(kind, seq);
            if let Some(event) = event
                && self.filter.matches(&event, &self.principal)
            {
                let rendered = event.render(*seen);
                self.send(event.kind, rendered, frames)
                    .await
                    .map_err(|_| Replay::Gone)?;
            }
        }
        for kind in self.filter.kinds() {
            seen.advance(kind, until.get(kind));
        }
        Ok(())
    }
}

/// Why a replay stopped early.
#[derive(Debug)]
enum Replay {
    /// The client left.
    Gone,
    /// The streams could not be read.
    Unavailable,
}

impl Replay {
    /// What the client is told (nothing when it left).
    fn closing(self) -> Option<Closing> {
        match self {
            Replay::Gone => None,
            Replay::Unavailable => Some(Closing::Unavailable),
        }
    }
}

/// One stream read back, from a cursor or time up to the hub's position.
struct Reader {
    kind: Kind,
    until: u64,
    messages: Option<jetstream::consumer::pull::Ordered>,
    /// The next stored message: sequence, stored time (ms) and the event it is (if any).
    head: Option<(u64, i64, Option<Event>)>,
    done: bool,
}

impl Reader {
    async fn open(
        js: &jetstream::Context,
        kind: Kind,
        filter: &Filter,
        seen: Cursor,
        since: Option<time::OffsetDateTime>,
        until: Cursor,
    ) -> Result<Self, Replay> {
        let deliver_policy = match since {
            Some(start_time) => DeliverPolicy::ByStartTime { start_time },
            None => DeliverPolicy::ByStartSequence {
                start_sequence: seen.get(kind) + 1,
            },
        };
        let subjects = filter.subjects(kind);
        let consumer = js
            .get_stream(kind.stream())
            .await
            .map_err(|_| Replay::Unavailable)?
            .create_consumer(OrderedConfig {
                deliver_policy,
                filter_subjects: subjects,
                ..OrderedConfig::default()
            })
            .await
            .map_err(|_| Replay::Unavailable)?;
        let empty = consumer.cached_info().num_pending == 0;
        let messages = if empty {
            None
        } else {
            Some(consumer.messages().await.map_err(|_| Replay::Unavailable)?)
        };
        Ok(Self {
            kind,
            until: until.get(kind),
            messages,
            head: None,
            done: empty,
        })
    }

    /// The sequence and stored time of the next message up to the limit; `None` when there is
    /// none.
    async fn peek(&mut self) -> Result<Option<(u64, i64)>, Replay> {
        if self.head.is_none() && !self.done {
            self.fetch().await?;
        }
        Ok(self.head.as_ref().map(|(seq, time, _)| (*seq, *time)))
    }

    fn take(&mut self) -> Option<(Kind, u64, Option<Event>)> {
        let (seq, _, event) = self.head.take()?;
        Some((self.kind, seq, event))
    }

    async fn fetch(&mut self) -> Result<(), Replay> {
        let Some(messages) = self.messages.as_mut() else {
            self.done = true;
            return Ok(());
        };
        let message = messages
            .next()
            .await
            .ok_or(Replay::Unavailable)?
            .map_err(|_| Replay::Unavailable)?;
        let info = message.info().map_err(|_| Replay::Unavailable)?;
        let seq = info.stream_sequence;
        if seq > self.until {
            // Newer than the hub's position: the live side delivers it.
            self.done = true;
            self.messages = None;
            return Ok(());
        }
        if seq == self.until || info.pending == 0 {
            self.done = true;
        }
        let stored_at = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
        let event = Event::from_stored(Stored {
            subject: message.subject.as_str(),
            seq,
            time: info.published,
            headers: message.headers.as_ref(),
            payload: &message.payload,
        })
        .ok()
        .flatten();
        self.head = Some((seq, stored_at, event));
        if self.done {
            self.messages = None;
        }
        Ok(())
    }
}
