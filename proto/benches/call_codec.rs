//! The per-call codec work on the hot path: the poller parses each call's JSON into `Call` and
//! encodes an envelope; every stage decodes it again. Prints criterion medians per call.

use std::hint::black_box;

use bcfy_proto::{Call, LiveCallEnvelope};
use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message as _;

const LIVE_CALLS: &str = include_str!("../tests/fixtures/live-calls.json");

fn codec(c: &mut Criterion) {
    let answer: serde_json::Value = serde_json::from_str(LIVE_CALLS).unwrap();
    let raw_call = answer["calls"][0].clone();
    let call_text = raw_call.to_string();
    let call = Call::from_json(&raw_call).unwrap();
    let envelope = LiveCallEnvelope {
        call_id: "1502-1767225600-2345-k3v9q0ma".into(),
        call: Some(call.clone()),
        raw_payload: call_text.clone().into_bytes(),
        ..Default::default()
    };
    let encoded = envelope.encode_to_vec();

    c.bench_function("call: JSON text -> Call", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_str(black_box(&call_text)).unwrap();
            Call::from_json(&value).unwrap()
        });
    });
    c.bench_function("call: Call -> JSON value", |b| {
        b.iter(|| black_box(&call).to_json().unwrap())
    });
    c.bench_function("envelope: encode", |b| {
        b.iter(|| black_box(&envelope).encode_to_vec())
    });
    c.bench_function("envelope: decode", |b| {
        b.iter(|| LiveCallEnvelope::decode(black_box(encoded.as_slice())).unwrap());
    });
}

criterion_group!(benches, codec);
criterion_main!(benches);
