//! Whole-system harness: the four service binaries as processes and their configs, for runs that
//! measure or break everything (the fake STT endpoint is `bcfy_test_support::stt`).
//!
//! - [`admin`]: a service's metrics read from its admin port.
//! - [`bench`](mod@bench): the benchmarks' knobs and percentiles.
//! - [`faults`]: the fault runs' simulator, service configs, scripted faults and call feed.
//! - [`backlog`]: whether the fetcher and transcriber consumers still hold work.
//! - [`pipeline`]: poller, audio fetcher and transcriber with a fake STT, for load runs.
//! - [`service`]: start, `kill -9` and restart a service binary with a YAML config.
//! - [`yaml`]: the config snippets every service shares (NATS, admin port, Broadcastify site).
//! - [`raw_jetstream`]: what JetStream alone costs here, for the load report to compare with.

pub mod admin;
pub mod backlog;
pub mod bench;
pub mod faults;
pub mod pipeline;
pub mod raw_jetstream;
pub mod service;
pub mod yaml;

pub use service::Service;
