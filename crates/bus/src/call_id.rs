//! The call id: deterministic, unique per call, and safe in a subject token, a `Nats-Msg-Id`
//! and a KV key.
//!
//! Broadcastify's `id` is only the group key (`"{sid}-{tg}"`, shared by every call of a
//! talkgroup), so the id is built from the call's own identity: the ingest node `systemId`, the
//! `filename` (`"{start}-{tg}"`) and the CDN `hash`. Normal calls get a readable id,
//! `{systemId}-{filename}-{hash}` (e.g. `1502-1767225600-2345-k3v9q0ma`). It is injective: the
//! node id has no `-`, the hash has no `-`, so the first and last `-` split it unambiguously.
//! Anything else (a negative node, a filename with dots, spaces, `*`, `>` or unicode, a very long
//! value) gets `x` + 32 hex digits of a SHA-256 over a length-prefixed encoding of the parts,
//! which can never clash with a readable id (those start with a digit).

use std::fmt;

use bcfy_proto::Call;
use sha2::{Digest as _, Sha256};

/// Longest readable id; longer ones are hashed so subjects stay short.
const MAX_READABLE_LEN: usize = 128;
/// Hex digits of the hashed form (128 bits).
const HASHED_HEX_DIGITS: usize = 32;

/// A call id. Always non-empty and made of `[A-Za-z0-9_-]` only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(String);

/// A string that is not a valid call id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a call id (non-empty, [A-Za-z0-9_-] only)")]
pub struct InvalidCallId(pub String);

impl CallId {
    /// The id of the call with this node id, filename and hash. An empty hash counts as none.
    pub fn new(system_id: Option<i64>, filename: Option<&str>, hash: Option<&str>) -> Self {
        let hash = hash.filter(|h| !h.is_empty());
        let filename = filename.filter(|f| !f.is_empty());
        if let (Some(node), Some(file)) = (system_id, filename) {
            let hash_part = hash.unwrap_or("");
            let readable = node >= 0
                && file.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && hash_part.bytes().all(|b| b.is_ascii_alphanumeric());
            let id = format!("{node}-{file}-{hash_part}");
            if readable && id.len() <= MAX_READABLE_LEN {
                return Self(id);
            }
        }
        Self::hashed(system_id, filename, hash)
    }

    /// The id of a call, from its `systemId`, `filename` and `hash`.
    pub fn for_call(call: &Call) -> Self {
        Self::new(
            call.system_id,
            call.filename.as_deref(),
            call.hash.as_deref(),
        )
    }

    /// Parses an id received from elsewhere (a subject token, an event field).
    ///
    /// # Errors
    ///
    /// When the string is empty or has a character outside `[A-Za-z0-9_-]`.
    pub fn parse(id: &str) -> Result<Self, InvalidCallId> {
        if is_token_safe(id) {
            Ok(Self(id.to_owned()))
        } else {
            Err(InvalidCallId(id.to_owned()))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn hashed(system_id: Option<i64>, filename: Option<&str>, hash: Option<&str>) -> Self {
        let mut digest = Sha256::new();
        for part in [
            system_id.map(|n| n.to_string()),
            filename.map(str::to_owned),
            hash.map(str::to_owned),
        ] {
            match part {
                // Length-prefixed, with a presence byte, so part boundaries cannot shift.
                Some(text) => {
                    digest.update([1]);
                    digest.update((text.len() as u64).to_be_bytes());
                    digest.update(text.as_bytes());
                }
                None => digest.update([0]),
            }
        }
        let hex: String = digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self(format!("x{}", &hex[..HASHED_HEX_DIGITS]))
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True when `token` is non-empty and only `[A-Za-z0-9_-]`: safe as a subject token (no `.`,
/// `*`, `>`, whitespace), as a `Nats-Msg-Id`, and as a KV key.
pub fn is_token_safe(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_normal_call_gets_a_readable_id() {
        let id = CallId::new(Some(1502), Some("1767225600-2345"), Some("k3v9q0ma"));
        assert_eq!(id.as_str(), "1502-1767225600-2345-k3v9q0ma");
        let no_hash = CallId::new(Some(192), Some("1652153436-251"), None);
        assert_eq!(no_hash.as_str(), "192-1652153436-251-");
        assert_eq!(
            CallId::new(Some(192), Some("1652153436-251"), Some("")),
            no_hash
        );
    }

    #[test]
    fn parts_that_could_shift_boundaries_do_not_collide() {
        // Same characters, different split between filename and hash.
        let a = CallId::new(Some(1502), Some("1767225600-2345"), None);
        let b = CallId::new(Some(1502), Some("1767225600"), Some("2345"));
        assert_ne!(a, b);
        // Dots would be unsafe, and replacing them would collide with the dashed form.
        let dotted = CallId::new(Some(1502), Some("1767225600.2345"), Some("h"));
        let dashed = CallId::new(Some(1502), Some("1767225600-2345"), Some("h"));
        assert_ne!(dotted, dashed);
        assert!(dotted.as_str().starts_with('x'));
        // A negative node id would add a dash to the first part.
        assert_ne!(
            CallId::new(Some(-1), Some("5-6"), None),
            CallId::new(Some(1), Some("-5-6"), None)
        );
    }

    #[test]
    fn hostile_values_give_safe_ids() {
        for hostile in [
            "a.b",
            "a b",
            "*",
            ">",
            "calls.live.>",
            "ünï",
            "\n",
            "a\u{0}b",
            "",
        ] {
            let id = CallId::new(Some(1), Some(hostile), Some(hostile));
            assert!(is_token_safe(id.as_str()), "{hostile:?} gave {id}");
        }
        let long = "9".repeat(500);
        assert!(CallId::new(Some(1), Some(&long), None).as_str().len() <= MAX_READABLE_LEN);
    }

    #[test]
    fn parse_accepts_only_safe_tokens() {
        assert!(CallId::parse("1502-1767225600-2345-k3v9q0ma").is_ok());
        for bad in ["", "a.b", "a*", ">", "a b", "é"] {
            assert_eq!(CallId::parse(bad), Err(InvalidCallId(bad.to_owned())));
        }
    }

    fn parts() -> impl Strategy<Value = (Option<i64>, Option<String>, Option<String>)> {
        let text = prop_oneof![
            "[0-9]{1,10}-[0-9]{1,5}",
            "[a-z0-9]{0,8}",
            any::<String>(),
            "[-.*> a-z0-9]{0,12}",
        ];
        (
            any::<Option<i64>>(),
            proptest::option::of(text.clone()),
            proptest::option::of(text),
        )
    }

    /// Treats an empty filename or hash as absent, as `CallId::new` does.
    fn normalized(
        p: &(Option<i64>, Option<String>, Option<String>),
    ) -> (Option<i64>, Option<String>, Option<String>) {
        let keep = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        (p.0, keep(&p.1), keep(&p.2))
    }

    proptest! {
        #[test]
        fn every_id_is_subject_safe_and_deterministic(p in parts()) {
            let id = CallId::new(p.0, p.1.as_deref(), p.2.as_deref());
            prop_assert!(is_token_safe(id.as_str()), "unsafe id {}", id);
            prop_assert!(id.as_str().len() <= MAX_READABLE_LEN);
            prop_assert_eq!(&id, &CallId::new(p.0, p.1.as_deref(), p.2.as_deref()));
            prop_assert_eq!(CallId::parse(id.as_str()).unwrap(), id);
        }

        #[test]
        fn different_calls_get_different_ids(a in parts(), b in parts()) {
            prop_assume!(normalized(&a) != normalized(&b));
            let id_a = CallId::new(a.0, a.1.as_deref(), a.2.as_deref());
            let id_b = CallId::new(b.0, b.1.as_deref(), b.2.as_deref());
            prop_assert_ne!(id_a, id_b);
        }
    }
}
