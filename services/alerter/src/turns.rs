//! Alerts of one talkgroup are raised in the order its transcripts arrive, although transcripts
//! are evaluated concurrently: each delivery takes a turn per talkgroup, synchronously, in
//! arrival order, and raises its alerts only after the turn before it on that talkgroup has
//! ended. Destinations then receive a talkgroup's alerts in the order of its transcripts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bcfy_bus::Shard;
use futures::FutureExt as _;
use futures::future::Shared;
use tokio::sync::oneshot;

type Done = Shared<oneshot::Receiver<()>>;

/// The last turn taken on each talkgroup.
#[derive(Debug, Default)]
pub(crate) struct Turns {
    last: Mutex<HashMap<Shard, Done>>,
}

/// One delivery's turn on its talkgroup; ends when dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    before: Option<Done>,
    _end: oneshot::Sender<()>,
}

impl Turns {
    /// Takes the next turn on `shard` (`None` for a subject that names none: no order to keep).
    pub(crate) fn take(&self, shard: Option<Shard>) -> Option<Turn> {
        let shard = shard?;
        let (end, done) = oneshot::channel();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // Turns that have ended need no waiting; forget them so the map stays small.
        last.retain(|_, done| done.peek().is_none());
        let before = last.insert(shard, done.shared());
        Some(Turn { before, _end: end })
    }
}

impl Turn {
    /// Waits until the turn before this one on the talkgroup has ended.
    pub(crate) async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            // Ended or dropped, either way it is over.
            before.await.unwrap_or_default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_turn_waits_for_the_one_before_it_on_the_same_talkgroup_only() {
        let turns = Turns::default();
        let a = Shard { sid: 1, tg: 1 };
        let b = Shard { sid: 1, tg: 2 };
        let first = turns.take(Some(a)).unwrap();
        let mut second = turns.take(Some(a)).unwrap();
        let mut other = turns.take(Some(b)).unwrap();
        other.wait().await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), second.wait())
                .await
                .is_err(),
            "still the first one's turn"
        );
        drop(first);
        second.wait().await;
        assert!(turns.take(None).is_none());
    }
}
