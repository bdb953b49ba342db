//! Every event message survives protobuf encoding and decoding with all fields set.

use bcfy_proto::{
    ArchiveResult, AudioPayloadEvent, Call, DeadLetter, LiveCallEnvelope, ShardKey, TimeWindow,
    Tone, ToneKind, TranscriptSegment, TranscriptionResult,
};
use prost::Message;
use prost_types::Timestamp;

fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug>(message: &M) {
    let bytes = message.encode_to_vec();
    assert!(!bytes.is_empty());
    let decoded = M::decode(bytes.as_slice()).unwrap();
    assert_eq!(&decoded, message);
    assert_eq!(decoded.encode_to_vec(), bytes, "encoding is deterministic");
}

fn sample_call() -> Call {
    let raw = include_str!("fixtures/live-calls.json");
    let answer: serde_json::Value = serde_json::from_str(raw).unwrap();
    let mut call = Call::from_json(&answer["calls"][0]).unwrap();
    call.extra_fields.insert("zz_new".into(), "[1,2]".into());
    call.extra_fields.insert("aa_new".into(), "true".into());
    call
}

fn timestamp() -> Option<Timestamp> {
    Some(Timestamp {
        seconds: 1_767_225_619,
        nanos: 125_000_000,
    })
}

#[test]
fn live_call_envelope() {
    round_trip(&LiveCallEnvelope {
        call_id: "1502-1767225600-2345-k3v9q0ma".into(),
        call: Some(sample_call()),
        cursor: Some(1_767_225_300.5),
        received_at: timestamp(),
        shard_key: Some(ShardKey {
            system_id: 7001,
            talkgroup_id: 2345,
        }),
        raw_payload: br#"{"id":"7001-2345"}"#.to_vec(),
        shard_name: "fire-dispatch".into(),
    });
}

#[test]
fn audio_payload_event() {
    round_trip(&AudioPayloadEvent {
        call_id: "1502-1767225600-2345-k3v9q0ma".into(),
        sequence: 3,
        start_offset: 0.0,
        end_offset: 7.0,
        payload: vec![0, 1, 2, 255].into(),
        content_type: "audio/mp4".into(),
        byte_offset: 786_432,
        r#final: true,
        total_size: 786_436,
        sha256: "ab".repeat(32),
        call: Some(sample_call()),
        source_url: "https://calls.broadcastify.com/k3v9q0ma/1502/1767225600-2345.m4a".into(),
    });
}

#[test]
fn transcription_result() {
    round_trip(&TranscriptionResult {
        call_id: "1502-1767225600-2345-k3v9q0ma".into(),
        text: "Engine 12 respond to 400 Main".into(),
        language: "en".into(),
        average_logprob: Some(-0.31),
        segments: vec![TranscriptSegment {
            start: 0.0,
            end: 3.2,
            text: "Engine 12".into(),
            average_logprob: Some(-0.2),
            no_speech_prob: Some(0.01),
            unit: Some(1_001),
            unit_tag: "Dispatch".into(),
        }],
        provider: "openai".into(),
        model: "whisper-1".into(),
        completed_at: timestamp(),
        audio_duration_seconds: 7.0,
        call: Some(sample_call()),
        no_text_reason: String::new(),
        tones: vec![Tone {
            kind: ToneKind::TwoTone.into(),
            frequency_hz: 600.9,
            second_frequency_hz: 1153.4,
            start: 0.4,
            duration: 1.0,
            second_duration: 3.0,
            digits: String::new(),
        }],
        raw_text: "Engine 12 respond to 400 Main. Thank you.".into(),
        revision: 2,
        revision_job: "base-model".to_owned(),
    });
}

#[test]
fn archive_result() {
    round_trip(&ArchiveResult {
        calls: vec![sample_call(), Call::default()],
        window: Some(TimeWindow {
            start: 1_767_225_600,
            end: 1_767_227_400,
        }),
        fetched_at: timestamp(),
        cache_hit: true,
        upstream_start: 1_767_225_599,
        upstream_end: 1_767_227_400,
        server_time: 1_767_312_000,
        raw: br#"{"calls":[]}"#.to_vec(),
    });
}

#[test]
fn dead_letter() {
    round_trip(&DeadLetter {
        stage: "audio-fetcher".into(),
        reason: "CDN answered 404 for 600 s".into(),
        error_kind: "cdn_not_found".into(),
        attempts: 12,
        original_subject: "calls.live.7001.2345".into(),
        original_stream: "CALLS_LIVE".into(),
        original_stream_sequence: 991,
        original_headers: [("Nats-Msg-Id".to_owned(), "x".to_owned())].into(),
        original_payload: vec![9, 9, 9],
        call_id: "1502-1767225600-2345-k3v9q0ma".into(),
        failed_at: timestamp(),
        redrives: 1,
    });
}
