//! Which request a poll or a sweep sends, when a sweep is due, and how long a shard waits
//! between polls: decisions on plain values, so they are tested without a server.

use std::time::Duration;

use bcfy_broadcastify::{LiveQuery, Selector};
use rand::Rng as _;
use tokio::time::Instant;

/// The poll's query: from the cursor less `overlap` (calls stamped just before the cursor may
/// still arrive), else from the configured initial position, else the site's initial page.
pub(super) fn poll_query(
    selector: &Selector,
    cursor: Option<f64>,
    initial_position: Option<f64>,
    overlap: Duration,
) -> LiveQuery {
    let (position, init) = match (cursor, initial_position) {
        (Some(cursor), _) => (Some(cursor - overlap.as_secs_f64()), false),
        (None, Some(initial)) => (Some(initial), false),
        (None, None) => (None, true),
    };
    LiveQuery {
        selector: selector.clone(),
        position,
        init,
    }
}

/// The sweep's query: `look_back` behind the cursor, for calls that turned up late.
pub(super) fn sweep_query(selector: &Selector, cursor: f64, look_back: Duration) -> LiveQuery {
    LiveQuery {
        selector: selector.clone(),
        position: Some(cursor - look_back.as_secs_f64()),
        init: false,
    }
}

/// Whether a sweep is due: none in flight, and none started within `every` (or none yet).
pub(super) fn sweep_due(last_sweep: Option<Instant>, every: Duration, in_flight: bool) -> bool {
    !in_flight && last_sweep.is_none_or(|at| at.elapsed() >= every)
}

/// `interval` give or take `jitter_ratio` of it, so shards polled together drift apart.
pub(super) fn jittered(interval: Duration, jitter_ratio: f64) -> Duration {
    if jitter_ratio <= 0.0 {
        return interval;
    }
    interval.mul_f64(rand::rng().random_range(1.0 - jitter_ratio..=1.0 + jitter_ratio))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playlist() -> Selector {
        Selector::Playlist {
            uuid: "p".to_owned(),
        }
    }

    #[test]
    fn a_poll_starts_from_the_cursor_less_the_overlap_else_the_initial_position_else_init() {
        let overlap = Duration::from_secs(2);
        let query = poll_query(&playlist(), Some(1000.0), Some(5.0), overlap);
        assert_eq!((query.position, query.init), (Some(998.0), false));
        let query = poll_query(&playlist(), None, Some(500.0), overlap);
        assert_eq!(
            (query.position, query.init),
            (Some(500.0), false),
            "no overlap"
        );
        let query = poll_query(&playlist(), None, None, overlap);
        assert_eq!((query.position, query.init), (None, true));
    }

    #[test]
    fn a_sweep_reaches_look_back_behind_the_cursor() {
        let query = sweep_query(&playlist(), 1000.0, Duration::from_secs(120));
        assert_eq!((query.position, query.init), (Some(880.0), false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_is_due_first_then_every_interval_and_never_twice_at_once() {
        let every = Duration::from_secs(30);
        assert!(sweep_due(None, every, false));
        assert!(!sweep_due(None, every, true));
        let started = Instant::now();
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(!sweep_due(Some(started), every, false));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(sweep_due(Some(started), every, false));
    }

    #[test]
    fn intervals_are_jittered_within_the_ratio() {
        let interval = Duration::from_secs(1);
        assert_eq!(jittered(interval, 0.0), interval);
        for _ in 0..200 {
            let wait = jittered(interval, 0.1);
            assert!(
                (Duration::from_millis(900)..=Duration::from_millis(1100)).contains(&wait),
                "{wait:?}"
            );
        }
    }
}
