//! The NATS JetStream topology as code, and the only way the services touch NATS.
//!
//! # Layout
//!
//! - [`access`]: each service's NATS user and permissions, from the topology;
//! - [`backlog`]: a downstream consumer's backlog, for back-pressure;
//! - [`backoff`]: the one doubling, capped, optionally jittered retry delay ([`Backoff`]);
//! - [`connect`]: connection options from config (servers, credentials, TLS, reconnect policy);
//! - [`call_id`]: the deterministic, subject-safe [`CallId`];
//! - [`subject`]: subject builders and parsers mirroring the spec's topics;
//! - [`topology`]: every stream, durable consumer and KV bucket, declared once;
//! - [`ensure`]: idempotent creation at startup, with config-drift reports;
//! - [`publish`]: `Nats-Msg-Id`, `Content-Type`, trace context, awaited PubAck;
//! - [`reassemble`]: a call's audio rebuilt from its chunks in the stream;
//! - [`redrive`]: what marks a dead letter sent through again;
//! - [`dead_letter_kinds`]: every kind of dead letter, what it means and what to do;
//! - [`stored`]: what a stream holds on a subject, read back without a durable consumer;
//! - [`consume`]: explicit ack, NAK with delay, TERM, heartbeats, NAK-on-drop, dead letters;
//! - [`trace_context`]: W3C trace context in NATS headers.

pub mod access;
pub mod backlog;
pub mod backoff;
pub mod call_id;
pub mod connect;
pub mod consume;
pub mod dead_letter_kinds;
pub mod ensure;
pub mod publish;
pub mod reassemble;
pub mod redrive;
pub mod stored;
pub mod subject;
pub mod topology;
pub mod trace_context;

pub use backoff::Backoff;
pub use call_id::CallId;
pub use consume::{Delivery, Failure};
pub use publish::{Published, Publisher};
pub use subject::{Shard, Stage};
