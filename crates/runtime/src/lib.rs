//! What every service binary shares, so each `main.rs` stays a few lines long.
//!
//! # Layout
//!
//! - [`config`]: layered config (defaults < YAML < `BCFY_*` env), every error at once, exit 64;
//! - [`units`]: durations (`30s`) and sizes (`512KiB`) in config;
//! - [`telemetry`]: JSON or plain logs, OTLP traces from the standard `OTEL_*` variables;
//! - [`admin`]: `/livez`, `/readyz` (readiness latches) and `/metrics` on an admin port;
//! - [`shutdown`]: signal -> cancellation token -> drain under a grace deadline;
//! - [`service`]: the fixed order of every service's `main`.

pub mod admin;
pub mod config;
pub mod healthcheck;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod units;
