//! The transcriber service with a real nats-server and the in-process OpenAI-compatible server:
//! chunked calls rebuilt by whichever replica gets the final chunk, exactly one transcript per
//! call, retries on transient failures, dead letters on permanent ones, and `enabled: false`.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use bcfy_bus::subject;
use bcfy_bus::topology::STREAM_DEAD_LETTERS;
use bcfy_proto::DeadLetter;
use bcfy_test_support::eventually;
use bcfy_test_support::stt::transcript_of;
use support::harness::{PATIENCE, SHARD, harness};

#[tokio::test]
async fn chunked_calls_across_two_replicas_give_one_transcript_each() {
    let h = harness().await;
    let replicas = [h.start(h.config()), h.start(h.config())];
    let mut calls = Vec::new();
    for n in 0..6 {
        calls.push(h.publish_call(n, 10_000 + 1000 * n as usize, 4096).await);
    }
    let transcripts = h.expect_transcripts(calls.len()).await;
    for (call_id, audio) in &calls {
        let (subject, result) = transcripts
            .iter()
            .find(|(_, t)| t.call_id == call_id.as_str())
            .expect("a transcript for every call");
        assert_eq!(subject, &subject::transcription(SHARD, call_id));
        assert_eq!(result.text, transcript_of(audio), "the whole call, rebuilt");
        assert_eq!(
            (result.provider.as_str(), result.model.as_str()),
            ("openai", "whisper-1")
        );
        assert_eq!(result.audio_duration_seconds, 4.0);
    }
    let uploads: Vec<Vec<u8>> = h
        .stt
        .seen()
        .into_iter()
        .map(|s| s.fields["file"].bytes.clone())
        .collect();
    assert_eq!(uploads.len(), calls.len(), "each call uploaded once");
    for (_, audio) in &calls {
        assert!(uploads.contains(audio), "byte-identical upload");
    }
    let done: f64 = replicas
        .iter()
        .map(|r| r.metric("bcfy_transcriber_transcriptions_total", None))
        .sum();
    assert_eq!(done, calls.len() as f64);
    for replica in replicas {
        replica.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_a_permanent_one_dead_lettered() {
    let h = harness().await;
    h.stt.answer((
        StatusCode::SERVICE_UNAVAILABLE,
        vec![("retry-after", "1")],
        "busy",
    ));
    let transcriber = h.start(h.config());
    let (retried, audio) = h.publish_call(1, 3000, 4096).await;
    let transcripts = h.expect_transcripts(1).await;
    assert_eq!(transcripts[0].1.call_id, retried.as_str());
    assert_eq!(transcripts[0].1.text, transcript_of(&audio));
    assert_eq!(h.stt.seen().len(), 2, "one failure, one retry");

    h.stt.answer((StatusCode::OK, vec![], r#"{"text":""}"#));
    let (empty, _) = h.publish_call(2, 3000, 4096).await;
    let letter = eventually(PATIENCE, "the dead letter", || async {
        h.stored::<DeadLetter>(STREAM_DEAD_LETTERS).await.pop()
    })
    .await
    .1;
    assert_eq!(letter.call_id, empty.as_str());
    assert_eq!(letter.stage, "transcriber");
    assert!(letter.reason.contains("no text"), "{}", letter.reason);
    h.expect_transcripts(1).await;
    assert_eq!(
        transcriber.metric(
            "bcfy_transcriber_failures_total",
            Some(("kind", "stt_server_error"))
        ),
        1.0
    );
    transcriber.stop().await.unwrap();
}

#[tokio::test]
async fn repeated_provider_failures_pause_the_replica() {
    let h = harness().await;
    for _ in 0..3 {
        h.stt
            .answer((StatusCode::SERVICE_UNAVAILABLE, vec![], "down"));
    }
    let mut config = h.config();
    config.consumer.provider_backoff_after = 2;
    config.consumer.provider_backoff_initial = Duration::from_secs(1);
    config.consumer.provider_backoff_max = Duration::from_secs(2);
    let transcriber = h.start(config);
    h.publish_call(1, 3000, 4096).await;
    h.expect_transcripts(1).await;
    let at: Vec<_> = h.stt.seen().iter().map(|s| s.at).collect();
    assert_eq!(at.len(), 4, "three failures, then the answer");
    // The per-call NAK delays are 0.2 s, 0.4 s and 0.8 s; the pauses are longer.
    assert!(
        at[2] - at[1] >= Duration::from_secs(1),
        "paused 1 s after 2 failures"
    );
    assert!(at[3] - at[2] >= Duration::from_secs(2), "then 2 s");
    assert_eq!(
        transcriber.metric("bcfy_transcriber_provider_pauses_total", None),
        2.0
    );
    transcriber.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_longer_than_the_ack_wait_is_kept_alive_and_transcribed_once() {
    let h = harness().await;
    // 4 s per answer against a 3 s ack wait: only the in-progress heartbeats prevent a
    // redelivery.
    h.stt.set_delay(Duration::from_secs(4));
    let transcriber = h.start(h.config());
    h.publish_call(1, 3000, 4096).await;
    h.expect_transcripts(1).await;
    assert_eq!(
        h.stt.seen().len(),
        1,
        "not redelivered while being transcribed"
    );
    transcriber.stop().await.unwrap();
}

#[tokio::test]
async fn a_kill_mid_transcription_is_redelivered_with_exactly_one_transcript() {
    let h = harness().await;
    h.stt.set_delay(Duration::from_secs(30));
    let first = h.start(h.config());
    let (call_id, audio) = h.publish_call(1, 10_000, 4096).await;
    eventually(PATIENCE, "the upload to arrive", || async {
        (!h.stt.seen().is_empty()).then_some(())
    })
    .await;
    first.kill();
    h.stt.set_delay(Duration::ZERO);
    let second = h.start(h.config());
    let transcripts = h.expect_transcripts(1).await;
    assert_eq!(transcripts[0].1.call_id, call_id.as_str());
    assert_eq!(transcripts[0].1.text, transcript_of(&audio));
    second.stop().await.unwrap();
}

#[tokio::test]
async fn disabled_transcription_consumes_nothing() {
    let h = harness().await;
    let mut config = h.config();
    config.transcription.enabled = false;
    let transcriber = h.start(config);
    // Ready means set up: an enabled transcriber has its consumer by then.
    eventually(PATIENCE, "readiness", || async {
        transcriber.readiness().is_ready().then_some(())
    })
    .await;
    h.publish_call(1, 3000, 4096).await;
    transcriber.stop().await.unwrap();
    assert!(!h.settled().await, "no transcriber consumer was created");
    assert!(h.transcripts().await.is_empty() && h.stt.seen().is_empty());
}
