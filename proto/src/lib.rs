//! Wire types of the pipeline: the `broadcastify.v1` protobuf events, and the lossless mapping
//! between Broadcastify's call JSON and [`Call`].
//!
//! The `.proto` files under `broadcastify/v1/` are the source of truth. The Rust code in
//! `src/gen/` is generated from them with `protox` (a pure-Rust protobuf compiler, so no
//! `protoc` is needed on any machine) and checked in; `tests/bootstrap.rs` regenerates it and
//! fails when the checked-in copy is stale.
//!
//! # Layout
//!
//! - the generated messages, re-exported at the crate root ([`Call`], [`LiveCallEnvelope`],
//!   [`AudioPayloadEvent`], [`TranscriptionResult`], [`ArchiveResult`], [`DeadLetter`], ...);
//! - the archive cache's gRPC service: [`archive_service_server`] and [`archive_service_client`],
//!   and [`FILE_DESCRIPTOR_SET`] for reflection;
//! - [`json`]: Broadcastify call JSON to and from [`Call`], keeping unknown keys;
//! - [`proto_json`]: the protobuf JSON mapping of any of them, for HTTP and webhooks;
//! - [`content_type`]: the `Content-Type` header value that names a message's type.

pub mod content_type;
pub mod json;
pub mod proto_json;

#[allow(
    missing_docs,
    reason = "generated code; the docs live in the .proto files"
)]
#[allow(unreachable_pub, reason = "generated code")]
#[allow(clippy::all, reason = "generated code")]
mod generated {
    include!("gen/broadcastify.v1.rs");
}

pub use generated::*;

/// The encoded `FileDescriptorSet` of every schema, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/descriptor.bin");
