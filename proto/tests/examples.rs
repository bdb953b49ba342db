//! The reconstructed live-calls and archive answers of `docs/protocol.md` (§3.6, §4) parse
//! into [`Call`] with every documented field typed, and write back to the same JSON value.

use bcfy_proto::Call;
use bcfy_proto::json::{JsonError, equivalent};
use prost::Message as _;
use serde_json::Value;

const LIVE_CALLS: &str = include_str!("fixtures/live-calls.json");
const ARCHIVE: &str = include_str!("fixtures/archivecall.json");

fn calls_of(answer: &str) -> Vec<Value> {
    let answer: Value = serde_json::from_str(answer).unwrap();
    answer["calls"].as_array().unwrap().clone()
}

/// JSON -> Call -> protobuf bytes -> Call -> JSON gives back the input.
fn assert_lossless(raw: &Value) -> Call {
    let call = Call::from_json(raw).unwrap();
    let decoded = Call::decode(call.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, call);
    let written = decoded.to_json().unwrap();
    assert!(
        equivalent(raw, &written),
        "lost something:\n{raw:#}\nvs\n{written:#}"
    );
    call
}

#[test]
fn live_calls_example_round_trips_with_every_field_typed() {
    let calls = calls_of(LIVE_CALLS);
    assert_eq!(calls.len(), 1);
    let call = assert_lossless(&calls[0]);

    assert!(
        call.extra_fields.is_empty(),
        "untyped keys: {:?}",
        call.extra_fields
    );
    assert_eq!(call.id.as_deref(), Some("7001-2345"));
    assert_eq!(call.sid, Some(7001));
    assert_eq!(call.system_id, Some(1502));
    assert_eq!(call.site_id, Some(31234));
    assert_eq!(call.call_type, Some(3));
    assert_eq!(call.call_tg, Some(2345));
    assert_eq!(call.tg_id, Some(412233));
    assert_eq!(call.tg_cid, Some(20111));
    assert_eq!(call.call_src, Some(1204567));
    assert_eq!(call.call_src_key.as_deref(), Some("7001-1204567"));
    assert_eq!(call.call_freq, Some(851.0125));
    assert_eq!(call.call_duration, Some(7));
    assert_eq!(call.call_timediff, Some(5.42));
    assert_eq!(call.meta_starttime, Some(1767225600));
    assert_eq!(call.meta_stoptime, Some(1767225607));
    assert_eq!(call.ts, Some(1767225612));
    assert_eq!(call.call_ttl, Some(1798761612));
    assert_eq!(call.filename.as_deref(), Some("1767225600-2345"));
    assert_eq!(call.hash.as_deref(), Some("k3v9q0ma"));
    assert_eq!(call.enc.as_deref(), Some("m4a"));
    assert_eq!(call.display.as_deref(), Some("FD Disp 1"));
    assert_eq!(call.descr.as_deref(), Some("Fire Dispatch Main"));
    assert_eq!(call.grouping.as_deref(), Some("Example County Fire"));
    assert_eq!(call.tag, Some(3));

    let metadata = call.metadata.expect("metadata is typed");
    assert_eq!(metadata.freq, Some(851012500));
    assert_eq!(metadata.freq_error, Some(-410));
    assert_eq!(metadata.audio_type.as_deref(), Some("digital"));
    assert_eq!(metadata.short_name.as_deref(), Some("examplecty01"));
    assert_eq!(
        metadata.talkgroup_group_tag.as_deref(),
        Some("Fire Dispatch")
    );
    assert_eq!(metadata.call_length, Some(6));
    assert_eq!(metadata.freq_list.len(), 2);
    assert_eq!(metadata.freq_list[1].pos, Some(3.24));
    assert_eq!(metadata.freq_list[0].error_count, Some(14));
    assert_eq!(metadata.src_list.len(), 2);
    assert_eq!(metadata.src_list[1].src, Some(700100));
    // `signal_system` and `tag` are JSON null in the capture: kept verbatim, not typed.
    assert_eq!(metadata.src_list[0].signal_system, None);
    assert_eq!(metadata.src_list[0].extra_fields["signal_system"], "null");
    assert_eq!(metadata.src_list[0].extra_fields["tag"], "null");
    assert!(
        metadata.extra_fields.is_empty(),
        "untyped: {:?}",
        metadata.extra_fields
    );
}

#[test]
fn archive_example_round_trips_including_optional_and_newer_fields() {
    let calls = calls_of(ARCHIVE);
    assert_eq!(calls.len(), 2);

    let m4a = assert_lossless(&calls[0]);
    assert!(
        m4a.extra_fields.is_empty(),
        "untyped keys: {:?}",
        m4a.extra_fields
    );
    assert_eq!(m4a.score, Some(1767225812));
    let metadata = m4a.metadata.unwrap();
    assert_eq!(metadata.start_time_ms, Some(1767225801120));
    assert_eq!(metadata.call_length_ms, Some(5360));
    assert_eq!(metadata.patched_talkgroups, vec![2346, 2350]);
    assert_eq!(metadata.src_list[1].src, Some(-1));
    // Float noise as trunk-recorder writes it survives exactly.
    assert_eq!(metadata.src_list[1].pos, Some(0.1 + 0.2));

    let mp3 = assert_lossless(&calls[1]);
    assert!(
        mp3.extra_fields.is_empty(),
        "untyped keys: {:?}",
        mp3.extra_fields
    );
    assert_eq!(mp3.metadata, None);
    assert_eq!(mp3.enc.as_deref(), Some("mp3"));
    assert_eq!(mp3.call_src_descr.as_deref(), Some("Deputy 14"));
    assert_eq!(mp3.transcribe, Some(1));
    assert_eq!(
        mp3.transcription.as_deref(),
        Some("Unit 14 show me en route")
    );
}

#[test]
fn unknown_keys_at_every_level_are_preserved() {
    let mut raw = calls_of(LIVE_CALLS).remove(0);
    raw["newTopLevel"] = serde_json::json!({"nested": [1, 2.5, "x", null]});
    raw["metadata"]["unit_alias_v2"] = serde_json::json!("E12");
    raw["metadata"]["freqList"][0]["dc_offset"] = serde_json::json!(-0.25);
    raw["metadata"]["srcList"][0]["signal_system"] = serde_json::json!("p25");

    let call = assert_lossless(&raw);
    assert_eq!(
        call.extra_fields["newTopLevel"],
        r#"{"nested":[1,2.5,"x",null]}"#
    );
    let metadata = call.metadata.unwrap();
    assert_eq!(metadata.extra_fields["unit_alias_v2"], r#""E12""#);
    assert_eq!(metadata.freq_list[0].extra_fields["dc_offset"], "-0.25");
    assert_eq!(metadata.src_list[0].signal_system.as_deref(), Some("p25"));
}

#[test]
fn values_of_an_unexpected_type_are_kept_raw_not_coerced() {
    let mut raw = calls_of(LIVE_CALLS).remove(0);
    raw["sid"] = serde_json::json!("7001");
    raw["call_tg"] = serde_json::json!(2345.5);
    raw["hash"] = Value::Null;
    raw["ts"] = serde_json::json!(u64::MAX);
    raw["metadata"]["freqList"] = serde_json::json!([]);
    raw["metadata"]["srcList"] = serde_json::json!([{"src": 1}, "garbage"]);

    let call = assert_lossless(&raw);
    assert_eq!(call.sid, None);
    assert_eq!(call.extra_fields["sid"], r#""7001""#);
    assert_eq!(call.call_tg, None);
    assert_eq!(call.hash, None);
    assert_eq!(call.extra_fields["hash"], "null");
    assert_eq!(call.ts, None);
    let metadata = call.metadata.unwrap();
    assert!(metadata.freq_list.is_empty());
    assert_eq!(metadata.extra_fields["freqList"], "[]");
    assert!(metadata.src_list.is_empty());
    assert_eq!(metadata.extra_fields["srcList"], r#"[{"src":1},"garbage"]"#);
}

#[test]
fn a_non_object_metadata_is_kept_raw() {
    let mut raw = calls_of(LIVE_CALLS).remove(0);
    raw["metadata"] = serde_json::json!("not json metadata");
    let call = assert_lossless(&raw);
    assert_eq!(call.metadata, None);
    assert_eq!(call.extra_fields["metadata"], r#""not json metadata""#);
}

#[test]
fn hostile_input_gives_typed_errors_not_panics() {
    for hostile in ["[]", "null", "42", r#""call""#, "true"] {
        let value: Value = serde_json::from_str(hostile).unwrap();
        let error = Call::from_json(&value).unwrap_err();
        assert!(
            matches!(error, JsonError::NotAnObject { what: "a call", .. }),
            "{error}"
        );
    }

    let mut call = Call::default();
    call.extra_fields
        .insert("broken".into(), "{not json".into());
    assert_eq!(
        call.to_json().unwrap_err(),
        JsonError::InvalidExtraField {
            key: "broken".into()
        }
    );

    let call = Call {
        call_freq: Some(f64::NAN),
        ..Call::default()
    };
    assert_eq!(
        call.to_json().unwrap_err(),
        JsonError::NonFiniteNumber { key: "call_freq" }
    );
}
