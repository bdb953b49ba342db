//! The simulator's memory: calls, sessions, the ledger and the request log.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

use crate::calls::{CallSpec, Ingredients, LedgerEntry, SimCall, make_call};
use crate::clips::{self, Clip};
use crate::config::SimConfig;
use crate::faults::FaultPlan;
use crate::world::World;

/// One request as received, for contract tests.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST` ...
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Every header as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// When it arrived.
    pub at: SystemTime,
    /// The status answered.
    pub status: u16,
    /// The fields of a form body (`application/x-www-form-urlencoded`), in order.
    pub form: Vec<(String, String)>,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of form field `name`.
    pub fn form_field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The shared state behind every handler.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: SimConfig,
    pub(crate) world: World,
    pub(crate) clips: Vec<Clip>,
    pub(crate) non_speech: Vec<Clip>,
    pub(crate) faults: FaultPlan,
    calls: RwLock<Vec<Arc<SimCall>>>,
    cdn: RwLock<HashMap<String, Arc<SimCall>>>,
    sessions: Mutex<HashMap<String, SystemTime>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    rng: Mutex<StdRng>,
    logins: AtomicU64,
    /// Calls API user tokens issued, with their expiry.
    user_tokens: Mutex<HashMap<String, SystemTime>>,
    /// Talkgroups the Calls API no longer lists in their county.
    retired: Mutex<Vec<(i64, i64)>>,
}

/// The simulated account's Calls API user id.
pub(crate) const USER_ID: i64 = 1001;

/// Seconds since the epoch, now.
pub(crate) fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

impl State {
    pub(crate) fn new(config: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let world = World::new(&config, &mut rng);
        let faults = FaultPlan::new(
            config.faults.clone(),
            StdRng::seed_from_u64(config.seed ^ 0xfa17),
        );
        Self {
            world,
            clips: clips::all(),
            non_speech: clips::non_speech(),
            faults,
            calls: RwLock::default(),
            cdn: RwLock::default(),
            sessions: Mutex::default(),
            requests: Mutex::default(),
            rng: Mutex::new(rng),
            logins: AtomicU64::new(0),
            user_tokens: Mutex::default(),
            retired: Mutex::default(),
            config,
        }
    }

    /// Makes a call available now, following `spec`; returns its ledger entry.
    ///
    /// # Panics
    ///
    /// When `spec` names a talkgroup, node or clip that is not simulated.
    pub(crate) fn add_call(&self, spec: &CallSpec) -> LedgerEntry {
        let now = SystemTime::now();
        let mut rng = self.rng.lock().expect("not poisoned");
        let talkgroup = match spec.talkgroup {
            Some((sid, tg)) => self
                .world
                .talkgroup(sid, tg)
                .expect("a simulated talkgroup"),
            None => &self.world.talkgroups[rng.random_range(0..self.world.talkgroups.len())],
        };
        let nodes: Vec<_> = self.world.nodes_of(talkgroup.sid).collect();
        let node = match spec.node {
            Some(id) => nodes
                .iter()
                .find(|n| n.system_id == id)
                .expect("a node of that system"),
            None => nodes[rng.random_range(0..nodes.len())],
        };
        let clip = match (spec.non_speech, spec.clip) {
            (Some(n), _) => &self.non_speech[n],
            (None, Some(n)) => &self.clips[n],
            (None, None) if rng.random_bool(self.config.non_speech_ratio) => {
                &self.non_speech[rng.random_range(0..self.non_speech.len())]
            }
            (None, None) => &self.clips[rng.random_range(0..self.clips.len())],
        };
        let late = spec.late_by.is_some() || rng.random_bool(self.config.late_call_ratio);
        let late_by = spec.late_by.unwrap_or(if late {
            self.config.late_by
        } else {
            Duration::ZERO
        });
        let ts = spec
            .ts
            .unwrap_or_else(|| (epoch_now() - late_by.as_secs_f64()).floor() as i64);
        let audio_lag = spec.audio_lag.unwrap_or_else(|| {
            if rng.random_bool(self.config.cdn_lag_ratio) {
                self.config.cdn_lag
            } else {
                Duration::ZERO
            }
        });
        let with_metadata = spec.with_metadata.unwrap_or_else(|| {
            node.enc == "m4a" || !rng.random_bool(self.config.mp3_without_metadata_ratio)
        });
        let call = Arc::new(make_call(
            &mut rng,
            Ingredients {
                talkgroup,
                node,
                clip,
                ts,
                late,
                with_metadata,
                now,
                audio_lag,
                audio_bytes_at_least: spec.audio_bytes_at_least.unwrap_or(0),
            },
        ));
        drop(rng);
        self.store(call)
    }

    fn store(&self, call: Arc<SimCall>) -> LedgerEntry {
        let entry = call.entry.clone();
        let horizon = epoch_now() - self.config.retain.as_secs_f64();
        {
            let mut calls = self.calls.write().expect("not poisoned");
            let mut cdn = self.cdn.write().expect("not poisoned");
            cdn.insert(call.cdn_path.clone(), Arc::clone(&call));
            calls.push(call);
            if calls.first().is_some_and(|c| (c.entry.ts as f64) < horizon) {
                calls.retain(|c| {
                    (c.entry.ts as f64) >= horizon || {
                        cdn.remove(&c.cdn_path);
                        false
                    }
                });
            }
        }
        entry
    }

    /// The calls matching `keep`, ascending by `ts`.
    pub(crate) fn select(&self, keep: impl Fn(&SimCall) -> bool) -> Vec<Arc<SimCall>> {
        let calls = self.calls.read().expect("not poisoned");
        let mut selected: Vec<_> = calls.iter().filter(|c| keep(c)).cloned().collect();
        selected.sort_by_key(|c| (c.entry.ts, c.entry.start));
        selected
    }

    /// The call served at a CDN path.
    pub(crate) fn by_cdn_path(&self, path: &str) -> Option<Arc<SimCall>> {
        self.cdn.read().expect("not poisoned").get(path).cloned()
    }

    /// Every call made available so far, in order.
    pub(crate) fn ledger(&self) -> Vec<LedgerEntry> {
        self.calls
            .read()
            .expect("not poisoned")
            .iter()
            .map(|c| c.entry.clone())
            .collect()
    }

    /// Starts a session; returns the cookie value.
    pub(crate) fn open_session(&self) -> String {
        self.logins.fetch_add(1, Ordering::SeqCst);
        let secret: u64 = self.rng.lock().expect("not poisoned").random();
        // Shaped like the real value: URL-encoded base64 of "id:user:bcrypt-ish".
        let raw = format!("81234:{}:$2y$10${secret:016x}", self.config.username);
        let value = base64_url_encoded(raw.as_bytes());
        let expires = SystemTime::now() + self.config.session_ttl;
        self.sessions
            .lock()
            .expect("not poisoned")
            .insert(value.clone(), expires);
        value
    }

    /// True when `cookie` is a live session.
    pub(crate) fn session_valid(&self, cookie: &str) -> bool {
        let sessions = self.sessions.lock().expect("not poisoned");
        sessions
            .get(cookie)
            .is_some_and(|expires| *expires > SystemTime::now())
    }

    /// A new Calls API user token, valid for an hour.
    pub(crate) fn issue_user_token(&self) -> String {
        let token: String = {
            let mut rng = self.rng.lock().expect("not poisoned");
            (0..24)
                .map(|_| char::from_digit(rng.random_range(0..36), 36).unwrap_or('0'))
                .collect()
        };
        self.user_tokens.lock().expect("not poisoned").insert(
            token.clone(),
            SystemTime::now() + std::time::Duration::from_secs(3600),
        );
        token
    }

    /// True when `token` is a live Calls API user token.
    pub(crate) fn user_token_valid(&self, token: &str) -> bool {
        self.user_tokens
            .lock()
            .expect("not poisoned")
            .get(token)
            .is_some_and(|expires| *expires > SystemTime::now())
    }

    /// Leaves `sid`/`tg` out of its county's groups from now on.
    pub(crate) fn retire_from_directory(&self, sid: i64, tg: i64) {
        self.retired.lock().expect("not poisoned").push((sid, tg));
    }

    /// True when the Calls API still lists `sid`/`tg` in its county.
    pub(crate) fn listed_in_directory(&self, sid: i64, tg: i64) -> bool {
        !self
            .retired
            .lock()
            .expect("not poisoned")
            .contains(&(sid, tg))
    }

    /// Ends one session.
    pub(crate) fn end_session(&self, cookie: &str) {
        self.sessions.lock().expect("not poisoned").remove(cookie);
    }

    /// Ends every session (as a site-wide expiry would).
    pub(crate) fn end_all_sessions(&self) {
        self.sessions.lock().expect("not poisoned").clear();
    }

    /// Logins that succeeded so far.
    pub(crate) fn login_count(&self) -> u64 {
        self.logins.load(Ordering::SeqCst)
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut requests = self.requests.lock().expect("not poisoned");
        if requests.len() >= self.config.request_log_size.max(1) {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .expect("not poisoned")
            .iter()
            .cloned()
            .collect()
    }
}

/// Standard base64 with `+`, `/` and `=` percent-encoded, as the site's cookie looks.
fn base64_url_encoded(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let c = TABLE[((n >> (18 - 6 * i)) & 63) as usize];
                match c {
                    b'+' => out.push_str("%2B"),
                    b'/' => out.push_str("%2F"),
                    _ => out.push(char::from(c)),
                }
            } else {
                out.push_str("%3D");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_values_look_like_the_real_ones() {
        assert_eq!(base64_url_encoded(b"ab"), "YWI%3D");
        assert_eq!(base64_url_encoded(b"abc"), "YWJj");
        assert_eq!(base64_url_encoded(&[0xfb, 0xff]), "%2B%2F8%3D");
    }
}
