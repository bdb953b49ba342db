//! Speech gating, tones, units and hallucination cleanup in the service, on real call audio
//! (the simulator's clips: spoken ones, and pages, a long tone, DTMF, hiss, static and a
//! key-up), against a real nats-server and the in-process OpenAI-compatible server.

mod support;

use bcfy_bus::topology::STREAM_DEAD_LETTERS;
use bcfy_proto::{Call, DeadLetter, SourceEntry, ToneKind, TrunkRecorderMetadata};
use bcfy_simulator::clips;
use bcfy_test_support::stt::transcript_of;
use bcfy_transcriber::config::TranscriberConfig;
use reqwest::StatusCode;
use support::harness::harness;

/// Parses a non-speech clip's `holds` (`two_tone 600.9 1153.4`, `single 1000.0`, `dtmf 159#`,
/// `hiss` …) into the tone expected, if any.
fn expected_tone(holds: &str) -> Option<(ToneKind, f64, f64, String)> {
    let fields: Vec<&str> = holds.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0.0);
    match fields.first().copied() {
        Some("two_tone") => Some((ToneKind::TwoTone, number(1), number(2), String::new())),
        Some("single") => Some((ToneKind::Single, number(1), 0.0, String::new())),
        Some("dtmf") => Some((ToneKind::Dtmf, 0.0, 0.0, fields[1].to_owned())),
        _ => None,
    }
}

#[tokio::test]
async fn calls_without_speech_are_published_without_text_or_provider_and_with_their_tones() {
    let h = harness().await;
    let mut config: TranscriberConfig = h.config();
    config.transcription.gating.enabled = true;
    let service = h.start(config);
    let non_speech = clips::non_speech();
    let mut calls = Vec::new();
    for (n, clip) in non_speech.iter().enumerate() {
        // m4a and mp3 in turn, as the two kinds of node upload them.
        let (audio, content_type) = if n % 2 == 0 {
            (clip.m4a, "audio/mp4")
        } else {
            (clip.mp3, "audio/mpeg")
        };
        let id = h.publish_audio(n as u32, audio, content_type, 4096).await;
        calls.push((id, clip));
    }
    let transcripts = h.expect_transcripts(non_speech.len()).await;
    assert!(h.stt.seen().is_empty(), "no provider was asked");
    for (id, clip) in &calls {
        let (_, result) = transcripts
            .iter()
            .find(|(_, r)| r.call_id == id.as_str())
            .unwrap_or_else(|| panic!("no transcript for {}", clip.name));
        assert_eq!(result.text, "", "{}", clip.name);
        assert_eq!(result.provider, "vad", "{}", clip.name);
        match expected_tone(clip.holds) {
            Some((kind, a, b, digits)) => {
                assert_eq!(result.no_text_reason, "tones_only", "{}", clip.name);
                assert_eq!(result.tones.len(), 1, "{}: {:?}", clip.name, result.tones);
                let tone = &result.tones[0];
                assert_eq!(tone.kind(), kind, "{}", clip.name);
                assert!(
                    (tone.frequency_hz - a).abs() <= 2.0,
                    "{}: {tone:?}",
                    clip.name
                );
                assert!(
                    (tone.second_frequency_hz - b).abs() <= 2.0,
                    "{}: {tone:?}",
                    clip.name
                );
                assert_eq!(tone.digits, digits, "{}", clip.name);
            }
            None => {
                assert_eq!(result.no_text_reason, "no_speech", "{}", clip.name);
                assert!(result.tones.is_empty(), "{}: {:?}", clip.name, result.tones);
            }
        }
    }
    let gated = service.metric(
        "bcfy_transcriber_gated_total",
        Some(("reason", "tones_only")),
    ) + service.metric(
        "bcfy_transcriber_gated_total",
        Some(("reason", "no_speech")),
    );
    assert_eq!(gated, non_speech.len() as f64);
    assert!(service.metric("bcfy_transcriber_gated_audio_seconds_total", None) > 25.0);
}

#[tokio::test]
async fn speech_is_sent_as_its_exact_bytes_and_gets_units_and_loses_its_hallucinations() {
    let h = harness().await;
    let mut config = h.config();
    config.transcription.gating.enabled = true;
    let _service = h.start(config);
    h.stt.answer((
        StatusCode::OK,
        vec![("content-type", "application/json")],
        r#"{"text": "Engine twelve, respond. Copy, en route. Thank you.", "duration": 5.2,
            "segments": [
              {"start": 0.0, "end": 1.6, "text": " Engine twelve, respond.", "avg_logprob": -0.2, "no_speech_prob": 0.01},
              {"start": 1.9, "end": 3.5, "text": " Copy, en route.", "avg_logprob": -0.3, "no_speech_prob": 0.02},
              {"start": 3.6, "end": 5.2, "text": " Thank you.", "avg_logprob": -1.3, "no_speech_prob": 0.7}
            ]}"#,
    ));
    let clip = clips::all()[0];
    let source = |src: i64, pos: f64, tag: Option<&str>| SourceEntry {
        src: Some(src),
        pos: Some(pos),
        tag: tag.map(str::to_owned),
        ..SourceEntry::default()
    };
    let call = Call {
        call_duration: Some(5),
        metadata: Some(TrunkRecorderMetadata {
            src_list: vec![source(1001, 0.0, Some("Dispatch")), source(2043, 1.8, None)],
            ..TrunkRecorderMetadata::default()
        }),
        ..Call::default()
    };
    h.publish_call_audio(1, clip.m4a, "audio/mp4", 4096, call)
        .await;
    let transcripts = h.expect_transcripts(1).await;
    let result = &transcripts[0].1;
    let upload = &h.stt.seen()[0].fields["file"].bytes;
    assert_eq!(
        upload.as_slice(),
        clip.m4a,
        "the provider gets the call's exact bytes"
    );
    assert_eq!(result.text, "Engine twelve, respond. Copy, en route.");
    assert_eq!(
        result.raw_text,
        "Engine twelve, respond. Copy, en route. Thank you."
    );
    assert_eq!(result.no_text_reason, "");
    let units: Vec<(Option<i64>, &str)> = result
        .segments
        .iter()
        .map(|s| (s.unit, s.unit_tag.as_str()))
        .collect();
    assert_eq!(units, [(Some(1001), "Dispatch"), (Some(2043), "")]);
    assert!(result.tones.is_empty());
}

#[tokio::test]
async fn undecodable_audio_is_a_typed_dead_letter_and_empty_text_is_no_speech() {
    let h = harness().await;
    let mut config = h.config();
    config.transcription.gating.enabled = true;
    let _service = h.start(config);
    h.publish_audio(1, b"definitely not audio", "audio/mp4", 4096)
        .await;
    h.stt.answer((
        StatusCode::OK,
        vec![("content-type", "application/json")],
        r#"{"text": "  "}"#,
    ));
    let clip = clips::all()[1];
    h.publish_audio(2, clip.mp3, "audio/mpeg", 4096).await;
    let transcripts = h.expect_transcripts(1).await;
    assert_eq!(transcripts[0].1.no_text_reason, "no_speech");
    assert_eq!(
        transcripts[0].1.provider, "openai",
        "the provider was asked and heard nothing"
    );
    let letters = h.stored::<DeadLetter>(STREAM_DEAD_LETTERS).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].1.error_kind, "stt_undecodable");
    assert_eq!(
        h.stt.seen().len(),
        1,
        "the undecodable call never reached the provider"
    );
    assert_ne!(transcript_of(clip.mp3), "", "the fake would have answered");
}
