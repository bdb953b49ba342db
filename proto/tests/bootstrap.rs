//! Regenerates the checked-in Rust code from `broadcastify/v1/*.proto` with `protox` (no `protoc`
//! anywhere) and fails when the checked-in copy was stale. On failure it has already written the
//! fresh code, so the fix is to review and commit `proto/src/gen/`.

use std::path::{Path, PathBuf};

/// The schema files, relative to the crate root (which is also the include root).
const PROTO_FILES: &[&str] = &[
    "broadcastify/v1/call.proto",
    "broadcastify/v1/events.proto",
    "broadcastify/v1/archive.proto",
    "broadcastify/v1/directory.proto",
    "broadcastify/v1/alerts.proto",
];

/// The generated file for package `broadcastify.v1`.
const GENERATED: &str = "broadcastify.v1.rs";

/// The encoded `FileDescriptorSet`, for gRPC reflection.
const DESCRIPTOR: &str = "descriptor.bin";

#[test]
fn generated_code_is_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked_in_dir = root.join("src/gen");
    let fresh_dir = tempfile::tempdir().unwrap();

    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| root.join(f)).collect();
    let descriptors = protox::compile(&files, [root]).expect("the schemas compile");
    let encoded = prost::Message::encode_to_vec(&descriptors);
    let mut prost_config = tonic_prost_build::Config::new();
    prost_config.enable_type_names();
    // Deterministic encoding: the same message always gives the same bytes.
    prost_config.btree_map(["."]);
    // Audio stays in shared buffers: chunks are slices of the downloaded file, not copies.
    prost_config.bytes([".broadcastify.v1.AudioPayloadEvent.payload"]);
    // The archive cache's gRPC service: server and client (clients and tests use the latter).
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(fresh_dir.path())
        .compile_fds_with_config(descriptors, prost_config)
        .expect("code generation succeeds");

    let fresh = std::fs::read_to_string(fresh_dir.path().join(GENERATED)).unwrap();
    let checked_in_path = checked_in_dir.join(GENERATED);
    let checked_in = std::fs::read_to_string(&checked_in_path).unwrap_or_default();
    let descriptor_path = checked_in_dir.join(DESCRIPTOR);
    let descriptor_stale = std::fs::read(&descriptor_path).unwrap_or_default() != encoded;
    if descriptor_stale {
        std::fs::write(&descriptor_path, &encoded).unwrap();
    }
    if fresh != checked_in || descriptor_stale {
        std::fs::write(&checked_in_path, &fresh).unwrap();
        panic!(
            "{} was stale and has been regenerated; review and commit it",
            checked_in_path.display()
        );
    }
}
