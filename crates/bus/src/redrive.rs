//! What a dead letter sent through again carries, so every stage can tell it from a first
//! delivery. `bcfy-deadletters redrive` publishes the original message to its original subject
//! with its original headers, a [`HEADER`] counting the redrives and a `Nats-Msg-Id` of its own
//! ([`msg_id`]): the original id would be dropped as a duplicate, and one fixed id per dead
//! letter makes a redrive that is run again (after a kill) store nothing twice.
//!
//! A stage that sees a redriven message checks first whether its result is already stored (the
//! call was processed meanwhile) and then acks without doing the work again; readers of the
//! live streams (the gateway) skip redriven copies of events they have already shown.

use async_nats::HeaderMap;

/// Header on a redriven message: how many times it has been sent through again (1, 2, …).
pub const HEADER: &str = "Bcfy-Redrive";

/// How many times the message with `headers` has been redriven (0 for a first delivery; an
/// unreadable value counts as one).
pub fn count(headers: Option<&HeaderMap>) -> u32 {
    headers
        .and_then(|h| h.get(HEADER))
        .map_or(0, |value| value.as_str().trim().parse().unwrap_or(1))
}

/// The `Nats-Msg-Id` of the redrive of the dead letter at `dead_letter_sequence`.
pub fn msg_id(dead_letter_sequence: u64) -> String {
    format!("redrive-{dead_letter_sequence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_comes_from_the_header() {
        assert_eq!(count(None), 0);
        let mut headers = HeaderMap::new();
        assert_eq!(count(Some(&headers)), 0);
        headers.insert(HEADER, "2");
        assert_eq!(count(Some(&headers)), 2);
        headers.insert(HEADER, "junk");
        assert_eq!(count(Some(&headers)), 1, "marked, however badly");
    }
}
