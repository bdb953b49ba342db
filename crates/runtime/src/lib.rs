//! What every service binary shares, so each `main.rs` stays a few lines long.
//!
//! # Layout
//!
//! - [`cli`]: the command line every binary shares (`--help`, `--version`, `--config`,
//!   `healthcheck`, `check-config`, `print-config`);
//! - [`telemetry`]: JSON or plain logs, OTLP traces from the standard `OTEL_*` variables;
//! - [`admin`]: `/livez`, `/readyz` (readiness latches) and `/metrics` on an admin port;
//! - [`metrics`]: a service's Prometheus metrics, prefixed and registered as they are made;
//! - [`shutdown`]: signal -> cancellation token -> drain under a grace deadline;
//! - [`healthcheck`]: the `healthcheck` command;
//! - [`service`]: the fixed order of every service's `main`, and the [`service::Context`] a
//!   service is handed (NATS with the topology ensured, consumers' workers, readiness, metrics).
//!
//! Config loading and units live in `bcfy-config`, which libraries use without this crate.

pub mod admin;
pub mod cli;
pub mod healthcheck;
pub mod metrics;
pub mod service;
pub mod shutdown;
pub mod telemetry;
