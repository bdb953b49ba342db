//! The Broadcastify directory, so a user can find what to follow: states, a state's counties, a
//! county's trunked systems and talkgroups on Broadcastify Calls and its live-audio feeds, one
//! feed. Each level is cached in NATS KV for a day and fetched once across replicas; the archive
//! cache hosts it (the same fleet budget, gRPC server and NATS connection), and
//! `bcfy-directory` asks it, or the upstream directly.
//!
//! # Layout
//!
//! - [`config`]: `directory.*` of the hosting service;
//! - [`model`]: the upstream JSON mapped onto the `broadcastify.v1` messages, unknown keys kept;
//! - [`upstream`]: the catalog API and Calls API clients and their typed errors;
//! - [`jwt`]: the Calls API's self-minted request token;
//! - [`directory`]: the cached lookups ([`Directory`]);
//! - [`grpc`] and [`nats_api`]: `broadcastify.v1.DirectoryService`, over gRPC and as a NATS
//!   service;
//! - [`shards`]: a county's talkgroups as the poller's `groups`, and the `shards:` YAML block;
//! - [`metrics`]: Prometheus metrics.

pub mod config;
pub mod directory;
pub mod grpc;
pub mod jwt;
pub mod metrics;
pub mod model;
pub mod nats_api;
pub mod shards;
pub mod upstream;

pub use config::DirectoryConfig;
pub use directory::{CacheSettings, Directory, DirectoryError, Level};
pub use upstream::{Upstream, UpstreamConfig, UpstreamError};
