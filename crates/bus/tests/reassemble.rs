//! Rebuilding a call's audio from its chunks in a real JetStream stream.

use async_nats::jetstream;
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::reassemble::{ReassemblyError, reassemble};
use bcfy_bus::topology::{Topology, TopologyConfig};
use bcfy_bus::{CallId, Publisher, Shard, subject};
use bcfy_proto::AudioPayloadEvent;
use bcfy_test_support::NatsServer;
use sha2::{Digest as _, Sha256};

const SHARD: Shard = Shard {
    sid: 7001,
    tg: 2345,
};

struct Bus {
    _server: NatsServer,
    js: jetstream::Context,
    publisher: Publisher,
}

async fn bus() -> Bus {
    let server = NatsServer::start().await;
    let js = jetstream::new(async_nats::connect(server.url()).await.unwrap());
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    let publisher = Publisher::new(js.clone());
    Bus {
        _server: server,
        js,
        publisher,
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The chunks of `file` in pieces of `size`, the last one final.
fn chunks(call_id: &CallId, file: &[u8], size: usize) -> Vec<AudioPayloadEvent> {
    let pieces: Vec<&[u8]> = file.chunks(size).collect();
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let last = i + 1 == pieces.len();
            AudioPayloadEvent {
                call_id: call_id.to_string(),
                sequence: u32::try_from(i).unwrap(),
                byte_offset: (i * size) as u64,
                payload: piece.to_vec().into(),
                r#final: last,
                total_size: if last { file.len() as u64 } else { 0 },
                sha256: if last {
                    hex_sha256(file)
                } else {
                    String::new()
                },
                ..AudioPayloadEvent::default()
            }
        })
        .collect()
}

impl Bus {
    async fn publish(&self, call_id: &CallId, event: &AudioPayloadEvent, msg_id: &str) {
        self.publisher
            .publish(subject::audio(SHARD, call_id), msg_id, event)
            .await
            .unwrap();
    }
}

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[tokio::test]
async fn chunks_come_back_in_order_once_each() {
    let bus = bus().await;
    let call = CallId::parse("1502-1767225600-2345-abc").unwrap();
    let other = CallId::parse("1502-1767225601-2345-abd").unwrap();
    let audio = file(10_000, 1);
    let events = chunks(&call, &audio, 4096);
    // A retry after the dedup window stored chunk 0 twice; another call's chunks sit between.
    bus.publish(&call, &events[0], "a-0").await;
    bus.publish(&other, &chunks(&other, &file(5000, 2), 4096)[0], "b-0")
        .await;
    bus.publish(&call, &events[1], "a-1").await;
    bus.publish(&call, &events[0], "a-0-again").await;
    bus.publish(&call, &events[2], "a-2").await;

    let rebuilt = reassemble(&bus.js, &subject::audio(SHARD, &call), &events[2])
        .await
        .unwrap();
    assert_eq!(rebuilt.as_ref(), audio.as_slice());
}

#[tokio::test]
async fn a_single_chunk_call_needs_no_read() {
    let bus = bus().await;
    let call = CallId::parse("1502-1767225600-2345-abc").unwrap();
    let audio = file(900, 3);
    let only = &chunks(&call, &audio, 4096)[0];
    // Nothing is published: the final chunk alone is the file.
    let rebuilt = reassemble(&bus.js, &subject::audio(SHARD, &call), only)
        .await
        .unwrap();
    assert_eq!(rebuilt.as_ref(), audio.as_slice());
}

#[tokio::test]
async fn a_missing_chunk_or_a_wrong_hash_is_reported() {
    let bus = bus().await;
    let call = CallId::parse("1502-1767225600-2345-abc").unwrap();
    let events = chunks(&call, &file(10_000, 4), 4096);
    bus.publish(&call, &events[0], "a-0").await;
    bus.publish(&call, &events[2], "a-2").await;
    let missing = reassemble(&bus.js, &subject::audio(SHARD, &call), &events[2])
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ReassemblyError::Missing { sequence: 1, .. }),
        "{missing}"
    );
    assert!(!missing.is_transient());

    bus.publish(&call, &events[1], "a-1").await;
    let mut tampered = events[2].clone();
    tampered.sha256 = "00".repeat(32);
    let wrong = reassemble(&bus.js, &subject::audio(SHARD, &call), &tampered)
        .await
        .unwrap_err();
    assert!(
        matches!(&wrong, ReassemblyError::DigestMismatch { .. }),
        "{wrong}"
    );
    tampered = events[2].clone();
    tampered.total_size += 1;
    let short = reassemble(&bus.js, &subject::audio(SHARD, &call), &tampered)
        .await
        .unwrap_err();
    assert!(
        matches!(short, ReassemblyError::SizeMismatch { .. }),
        "{short}"
    );
}
