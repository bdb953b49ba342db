//! The calls a shard published that a poll can still return, so repeats are left out of an
//! answer before they are parsed and never re-sent (the stream's dedup would drop them anyway;
//! after a restart it does).

use std::collections::{HashSet, VecDeque};

use bcfy_bus::CallId;
use sha2::{Digest as _, Sha256};

/// 128 bits of a call id's SHA-256: a sixth of the memory of the id itself (a sweep at 1,000
/// calls/s remembers 120,000 of them). Two of 10⁶ ids share one with odds below 10⁻²⁶.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Fingerprint(u128);

impl Fingerprint {
    pub(crate) fn of(id: &CallId) -> Self {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let mut first = [0_u8; 16];
        first.copy_from_slice(&digest[..16]);
        Self(u128::from_le_bytes(first))
    }
}

/// Published calls, forgotten once their `ts` is behind where any poll reaches, which bounds
/// the set by rate × look-back.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    /// In publish order, with the call's `ts`.
    order: VecDeque<(f64, Fingerprint)>,
    set: HashSet<Fingerprint>,
}

impl Recent {
    pub(crate) fn contains(&self, id: &CallId) -> bool {
        self.set.contains(&Fingerprint::of(id))
    }

    pub(crate) fn insert(&mut self, id: &CallId, ts: f64) {
        let fingerprint = Fingerprint::of(id);
        if self.set.insert(fingerprint) {
            self.order.push_back((ts, fingerprint));
        }
    }

    /// What is known now, for a request that runs beside the loop.
    pub(crate) fn snapshot(&self) -> HashSet<Fingerprint> {
        self.set.clone()
    }

    /// Forgets calls older than `floor`, in publish order (a late call published after newer
    /// ones waits for them; the set only stays a little larger).
    pub(crate) fn forget_before(&mut self, floor: f64) {
        while let Some((ts, _)) = self.order.front()
            && *ts < floor
            && let Some((_, fingerprint)) = self.order.pop_front()
        {
            self.set.remove(&fingerprint);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.order.is_empty() && self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> CallId {
        CallId::parse(&format!("1502-{n}-2345-abc")).unwrap()
    }

    #[test]
    fn calls_are_forgotten_once_no_poll_can_return_them() {
        let mut recent = Recent::default();
        recent.insert(&id(1), 100.0);
        recent.insert(&id(2), 105.0);
        // A late call published after a newer one.
        recent.insert(&id(3), 90.0);
        recent.insert(&id(2), 105.0);
        assert_eq!(recent.order.len(), 3, "a repeat is remembered once");
        assert!(recent.snapshot().contains(&Fingerprint::of(&id(3))));

        recent.forget_before(101.0);
        assert!(!recent.contains(&id(1)));
        assert!(recent.contains(&id(2)), "newer than the floor");
        assert!(
            recent.contains(&id(3)),
            "waits behind the newer call published before it"
        );

        recent.forget_before(106.0);
        assert!(recent.is_empty());
    }
}
