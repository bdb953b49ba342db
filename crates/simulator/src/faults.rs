//! Fault injection: scripted faults (a test queues exactly what the next requests should hit)
//! and random ones drawn with the configured rates (for demos and the fault run).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rand::Rng as _;
use rand::rngs::StdRng;

use crate::config::FaultRates;

/// The simulated endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `POST /login/`
    Login,
    /// `GET /account/?action=logout`
    Logout,
    /// `POST /calls/apis/live-calls`
    LiveCalls,
    /// `GET /calls/apis/archivecall.php`
    Archive,
    /// CDN audio.
    Audio,
    /// `GET /audio/?a=…`: the catalog API (states, counties, feeds).
    Catalog,
    /// The Calls API: `POST /common/v1/auth` and `GET /calls/v1/groups/county/{ctid}`.
    CallsApi,
}

/// How a `Retry-After` header is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// Delay-seconds.
    Seconds(u64),
    /// An HTTP-date this far in the future.
    DateIn(Duration),
}

impl RetryAfter {
    /// The header value.
    pub fn header_value(self) -> String {
        match self {
            RetryAfter::Seconds(seconds) => seconds.to_string(),
            // Rounded up, so the date is never earlier than the delay asks.
            RetryAfter::DateIn(delay) => {
                httpdate::fmt_http_date(SystemTime::now() + delay + Duration::from_secs(1))
            }
        }
    }
}

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (and `Retry-After`, if given) and a small JSON error body.
    Status {
        /// The status code.
        status: u16,
        /// The `Retry-After` header, if any.
        retry_after: Option<RetryAfter>,
    },
    /// Wait `after`, then answer with this status (a slow failing upstream).
    SlowStatus {
        /// The status code.
        status: u16,
        /// The wait before answering.
        after: Duration,
    },
    /// Expire the caller's session first, so the request gets a 403.
    ExpireSession,
    /// Refuse a login as a bad password (302 to `/login/?failed=1`).
    BadPassword,
    /// Answer a login with a 302 but no cookie and no `failed=1`.
    NoCookie,
    /// Wait this long before answering.
    Slow(Duration),
    /// Answer live calls or an archive block with JSON cut off mid-way.
    MalformedJson,
    /// Add two unusable records to a live-calls answer: a number, and a call without `sid`
    /// and `call_tg`.
    BadRecords,
    /// Drop the connection without an answer.
    Reset,
    /// Send this many audio bytes, then drop the connection (announcing the full length).
    TruncateAudio {
        /// Bytes sent before the cut.
        after_bytes: usize,
    },
    /// Send the body (audio, or a live-calls answer) in pieces of `chunk` bytes, `pause` apart.
    SlowBody {
        /// Piece size.
        chunk: usize,
        /// Pause between pieces.
        pause: Duration,
    },
    /// Answer a CDN request with 404.
    NotFound,
}

/// Scripted faults per route, plus random ones.
#[derive(Debug)]
pub struct FaultPlan {
    scripted: Mutex<Vec<(Route, Fault)>>,
    rates: FaultRates,
    dice: Mutex<StdRng>,
}

impl FaultPlan {
    /// A plan drawing random faults with `rates` from `dice`.
    pub fn new(rates: FaultRates, dice: StdRng) -> Self {
        Self {
            scripted: Mutex::new(Vec::new()),
            rates,
            dice: Mutex::new(dice),
        }
    }

    /// Queues `fault` for the next request to `route`.
    pub fn script(&self, route: Route, fault: Fault) {
        self.scripted
            .lock()
            .expect("not poisoned")
            .push((route, fault));
    }

    /// Queues `fault` for each of the next `times` requests to `route`.
    pub fn script_times(&self, route: Route, fault: Fault, times: usize) {
        for _ in 0..times {
            self.script(route, fault.clone());
        }
    }

    /// The fault for this request to `route`, if any: a scripted one first, else a random one.
    pub fn next(&self, route: Route) -> Option<Fault> {
        {
            let mut scripted = self.scripted.lock().expect("not poisoned");
            if let Some(at) = scripted.iter().position(|(r, _)| *r == route) {
                return Some(scripted.remove(at).1);
            }
        }
        self.random(route)
    }

    fn random(&self, route: Route) -> Option<Fault> {
        let r = &self.rates;
        let mut dice = self.dice.lock().expect("not poisoned");
        let mut roll = |rate: f64| rate > 0.0 && dice.random_bool(rate);
        let retry_after = RetryAfter::Seconds(r.retry_after_seconds);
        let mut candidates: VecDeque<Fault> = VecDeque::new();
        if roll(r.reset_rate) {
            candidates.push_back(Fault::Reset);
        }
        if roll(r.unavailable_rate) {
            candidates.push_back(Fault::Status {
                status: 503,
                retry_after: Some(retry_after),
            });
        }
        if route != Route::Audio && roll(r.rate_limit_rate) {
            let with_header = roll(0.5);
            candidates.push_back(Fault::Status {
                status: 429,
                retry_after: with_header.then_some(retry_after),
            });
        }
        if roll(r.slow_rate) {
            candidates.push_back(Fault::Slow(r.slow_delay));
        }
        match route {
            Route::Login if roll(r.bad_password_rate) => candidates.push_back(Fault::BadPassword),
            Route::LiveCalls | Route::Archive if roll(r.session_expiry_rate) => {
                candidates.push_back(Fault::ExpireSession);
            }
            Route::LiveCalls if roll(r.malformed_json_rate) => {
                candidates.push_back(Fault::MalformedJson)
            }
            Route::Audio if roll(r.truncate_audio_rate) => {
                candidates.push_back(Fault::TruncateAudio { after_bytes: 2048 });
            }
            Route::Audio if roll(r.slow_audio_rate) => {
                candidates.push_back(Fault::SlowBody {
                    chunk: 1024,
                    pause: Duration::from_millis(100),
                });
            }
            _ => {}
        }
        candidates.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn scripted_faults_come_first_and_once_per_route() {
        let plan = FaultPlan::new(FaultRates::default(), StdRng::seed_from_u64(1));
        plan.script(Route::Audio, Fault::NotFound);
        plan.script(Route::LiveCalls, Fault::MalformedJson);
        assert_eq!(plan.next(Route::LiveCalls), Some(Fault::MalformedJson));
        assert_eq!(plan.next(Route::LiveCalls), None);
        assert_eq!(plan.next(Route::Audio), Some(Fault::NotFound));
    }

    #[test]
    fn random_faults_follow_their_rates() {
        let rates = FaultRates {
            reset_rate: 0.2,
            ..FaultRates::default()
        };
        let plan = FaultPlan::new(rates, StdRng::seed_from_u64(7));
        let resets = (0..10_000)
            .filter(|_| plan.next(Route::LiveCalls) == Some(Fault::Reset))
            .count();
        assert!(
            (1_700..2_300).contains(&resets),
            "{resets} resets in 10000 at rate 0.2"
        );
    }
}
