//! Courtesy to Broadcastify, shared by every replica of the poller and the archive cache through
//! NATS KV, so archive traffic and live polling count against one account's session and budget:
//!
//! - [`fleet`]: the client on the shared session plus the budget, built one way for both
//!   services ([`Fleet`]);
//! - [`session`]: one login per account for the fleet ([`KvSession`], compare-and-set claims);
//! - [`gate`]: the per-minute request budget and the fleet-wide `Retry-After` back-off
//!   ([`UpstreamGate`]).

pub mod fleet;
pub mod gate;
pub mod session;

pub use fleet::{Fleet, FleetError, instance_id};
pub use gate::{GateError, UpstreamGate};
pub use session::KvSession;
