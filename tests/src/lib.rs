//! Whole-system harness: the four service binaries as processes, their configs, and a fake STT
//! endpoint for runs that measure or break everything but the speech engine.
//!
//! - [`backlog`]: whether the fetcher and transcriber consumers still hold work.
//! - [`service`]: start, `kill -9` and restart a service binary with a YAML config.
//! - [`yaml`]: the config snippets every service shares (NATS, admin port, Broadcastify site).
//! - [`stt`]: a fast OpenAI-compatible fake that names the audio it heard.
//! - [`raw_jetstream`]: what JetStream alone costs here, for the load report to compare with.

pub mod backlog;
pub mod raw_jetstream;
pub mod service;
pub mod stt;
pub mod yaml;

pub use service::Service;
