//! A faithful Broadcastify Calls simulator: the website's login, live-calls and archive
//! endpoints and the audio CDN on one address, behaving as `docs/protocol.md` documents
//! the real ones (from captures), not as a client would like. It generates calls with real
//! spoken audio, injects faults, and keeps a ledger of every call it made available so tests and
//! benchmarks can check the pipeline lost and doubled nothing.
//!
//! # Layout
//!
//! - [`config`]: every knob (the `bcfy-sim` flags);
//! - [`world`]: systems, talkgroups, nodes, the public playlist;
//! - [`catalog`]: the directory of states, counties and feeds (`/audio/`, the Calls API);
//! - [`calls`]: call objects with the captures' invariants, and the [`LedgerEntry`];
//! - [`clips`] and [`audio`]: the spoken clips and per-call unique audio bytes;
//! - [`faults`]: scripted and random fault injection;
//! - `state` and `server`: memory and the HTTP surface.

pub mod audio;
pub mod calls;
pub mod catalog;
pub mod clips;
pub mod config;
pub mod faults;
mod server;
mod state;
pub mod world;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use calls::{CallSpec, LedgerEntry};
pub use config::{FaultRates, SimConfig};
pub use faults::{Fault, RetryAfter, Route};
pub use state::RecordedRequest;

/// A running simulator. Dropping it stops the server and the generator.
#[derive(Debug)]
pub struct Simulator {
    state: Arc<state::State>,
    addr: SocketAddr,
    stop: CancellationToken,
    /// Stops only the generator (a child of `stop`).
    generating: CancellationToken,
}

impl Simulator {
    /// Binds `config.listen`, starts serving and (when `calls_per_second > 0`) generating, and
    /// backfills `config.backfill` worth of past calls.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(state::State::new(config));
        backfill(&state);
        let stop = CancellationToken::new();
        let app = server::router(Arc::clone(&state));
        let shutdown = stop.clone().cancelled_owned();
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %error, "Simulator server failed.");
            }
        });
        let generating = stop.child_token();
        if state.config.calls_per_second > 0.0 {
            tokio::spawn(generate(Arc::clone(&state), generating.clone()));
        }
        Ok(Self {
            state,
            addr,
            stop,
            generating,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`: the base URL for both the site and the CDN.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The configuration in use.
    pub fn config(&self) -> &SimConfig {
        &self.state.config
    }

    /// The simulated world (talkgroups, nodes, the public playlist).
    pub fn world(&self) -> &world::World {
        &self.state.world
    }

    /// Makes one call available now.
    ///
    /// # Panics
    ///
    /// When `spec` names something not simulated.
    pub fn add_call(&self, spec: CallSpec) -> LedgerEntry {
        self.state.add_call(&spec)
    }

    /// Every call made available so far.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        self.state.ledger()
    }

    /// Queues a fault for the next request to `route`.
    pub fn inject(&self, route: Route, fault: Fault) {
        self.state.faults.script(route, fault);
    }

    /// Queues a fault for each of the next `times` requests to `route`.
    pub fn inject_times(&self, route: Route, fault: Fault, times: usize) {
        self.state.faults.script_times(route, fault, times);
    }

    /// Expires every session, as the site does when cookies lapse.
    pub fn expire_sessions(&self) {
        self.state.end_all_sessions();
    }

    /// Successful logins so far.
    pub fn login_count(&self) -> u64 {
        self.state.login_count()
    }

    /// The requests received (newest last), headers included.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Takes talkgroup `sid`/`tg` out of its county's groups in the Calls API (as when a
    /// talkgroup leaves Broadcastify Calls); its calls go on.
    pub fn retire_from_directory(&self, sid: i64, tg: i64) {
        self.state.retire_from_directory(sid, tg);
    }

    /// Stops making new calls; the site and the CDN keep answering (a load run's drain).
    pub fn stop_generating(&self) {
        self.generating.cancel();
    }

    /// Stops the server and the generator.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Spreads `backfill` worth of calls (at the configured rate, at least one a minute) over the past.
fn backfill(state: &state::State) {
    let window = state.config.backfill.as_secs_f64();
    if window <= 0.0 {
        return;
    }
    let rate = state.config.calls_per_second.max(1.0 / 60.0);
    let count = (window * rate).ceil() as u64;
    let now = state::epoch_now();
    for i in 0..count {
        let ts = (now - window + i as f64 / rate) as i64;
        state.add_call(&CallSpec {
            ts: Some(ts),
            late_by: None,
            ..CallSpec::default()
        });
    }
}

/// Adds calls at `calls_per_second` until stopped.
async fn generate(state: Arc<state::State>, stop: CancellationToken) {
    let period = Duration::from_secs_f64(1.0 / state.config.calls_per_second);
    let mut ticks = tokio::time::interval(period.max(Duration::from_micros(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {
                let entry = state.add_call(&CallSpec::default());
                tracing::debug!(key = %entry.key, sid = entry.sid, tg = entry.tg, late = entry.late, "Call available.");
            }
        }
    }
}
