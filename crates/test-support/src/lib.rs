//! Test harness shared by every crate's tests: real servers, not mocks.
//!
//! # Layout
//!
//! - [`nats`]: [`NatsServer`] runs a real `nats-server` with JetStream on random loopback ports
//!   and a temporary store, restarts it on the same store, forms a three-node [`NatsCluster`],
//!   and kills and cleans up on drop. The binary comes from `NATS_SERVER_BIN`, else `PATH`, else
//!   the pinned version is provisioned under `target/` (see [`nats::binary`]).
//! - [`eventually`]: wait for a condition with patience instead of sleeping.
//! - [`trace_init`]: scoped, test-friendly logs (`RUST_LOG` to change the level).

pub mod eventually;
pub mod nats;

pub use eventually::eventually;
pub use nats::{NatsCluster, NatsServer};

/// Turns on logs captured by the test harness, once per test binary. The filter comes from
/// `RUST_LOG` (default `info` for the workspace crates, `warn` for the rest).
pub fn trace_init() {
    use tracing_subscriber::EnvFilter;
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("warn,bcfy=info,bcfy_bus=info,bcfy_runtime=info"));
        // NOTE: `try_init` fails only when another test already installed a subscriber, which
        // is fine: logs then go there.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init()
            .ok();
    });
}
