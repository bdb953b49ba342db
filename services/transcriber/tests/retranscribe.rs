//! Re-transcription jobs against a real nats-server and the fake OpenAI-compatible server: the
//! stored audio of a time range transcribed again as revision 2 on the same subject (the first
//! transcript kept), a job killed midway continuing where it was, a finished job run again
//! adding nothing, and two jobs at once never publishing the same revision twice.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bcfy_bus::CallId;
use bcfy_bus::topology::STREAM_CALLS_AUDIO;
use bcfy_proto::{Call, TranscriptionResult};
use bcfy_test_support::eventually;
use bcfy_test_support::stt::transcript_of;
use bcfy_transcriber::TranscriberConfig;
use bcfy_transcriber::revise::RetranscribeConfig;
use support::harness::{Harness, PATIENCE, harness};
use time::OffsetDateTime;

/// Calls start 10 s apart from here; the jobs take the first four.
const FIRST_CALL: i64 = 1_767_220_000;
const IN_RANGE: usize = 4;
const CALLS: usize = 6;
/// Calls a job transcribes at once.
const JOB_CONCURRENCY: usize = 2;

fn job_config(h: &Harness, job: &str) -> TranscriberConfig {
    let mut config = h.config();
    config.transcription.model = "whisper-large".to_owned();
    config.transcription.max_concurrency = JOB_CONCURRENCY;
    config.retranscribe = RetranscribeConfig {
        job: Some(job.to_owned()),
        from: OffsetDateTime::from_unix_timestamp(FIRST_CALL).ok(),
        to: OffsetDateTime::from_unix_timestamp(FIRST_CALL + 10 * IN_RANGE as i64).ok(),
        talkgroup: Some("7001:2345".to_owned()),
    };
    config
}

/// Each call's transcripts, by call id, oldest first.
async fn revisions(h: &Harness) -> BTreeMap<String, Vec<TranscriptionResult>> {
    let mut by_call: BTreeMap<String, Vec<TranscriptionResult>> = BTreeMap::new();
    for (_, result) in h.transcripts().await {
        by_call
            .entry(result.call_id.clone())
            .or_default()
            .push(result);
    }
    by_call
}

/// How many times the fake server was sent each call's audio.
fn uploads_of(h: &Harness, audio: &[u8]) -> usize {
    h.stt
        .seen()
        .iter()
        .filter(|s| s.fields["file"].bytes == audio)
        .count()
}

async fn job_consumer_exists(h: &Harness, name: &str) -> bool {
    h.js.get_stream(STREAM_CALLS_AUDIO)
        .await
        .unwrap()
        .consumer_info(name)
        .await
        .is_ok()
}

/// Six calls transcribed by the live service (revision 1).
async fn transcribed_calls(h: &Harness) -> Vec<(CallId, Vec<u8>)> {
    let mut calls = Vec::new();
    for n in 0..CALLS {
        let audio: Vec<u8> = (0..9_000).map(|i| (i * 13 + n * 7) as u8).collect();
        let call = Call {
            call_duration: Some(4),
            ts: Some(FIRST_CALL + 10 * n as i64),
            ..Call::default()
        };
        let id = h
            .publish_call_audio(n as u32, &audio, "audio/mp4", 4096, call)
            .await;
        calls.push((id, audio));
    }
    let live = h.start(h.config());
    let first = h.expect_transcripts(CALLS).await;
    assert!(
        first
            .iter()
            .all(|(_, t)| t.revision == 1 && t.revision_job.is_empty())
    );
    live.stop().await.unwrap();
    calls
}

#[tokio::test]
async fn a_job_adds_revision_two_resumes_after_a_kill_and_never_doubles() {
    let h = harness().await;
    let calls = transcribed_calls(&h).await;

    // The job, slowed down and killed after its second revision.
    h.stt.set_delay(Duration::from_millis(700));
    let job = h.start(job_config(&h, "larger"));
    eventually(PATIENCE, "two revisions", || async {
        (h.transcripts().await.len() >= CALLS + 2).then_some(())
    })
    .await;
    job.kill();
    assert!(
        job_consumer_exists(&h, "retranscribe-larger").await,
        "progress kept"
    );
    h.stt.set_delay(Duration::ZERO);

    // Started again, it finishes by itself and removes its consumer.
    let job = h.start(job_config(&h, "larger"));
    tokio::time::timeout(PATIENCE, job.join())
        .await
        .expect("the job finishes")
        .unwrap();
    assert!(!job_consumer_exists(&h, "retranscribe-larger").await);
    let by_call = revisions(&h).await;
    for (n, (id, audio)) in calls.iter().enumerate() {
        let versions = &by_call[id.as_str()];
        let numbers: Vec<u32> = versions.iter().map(|t| t.revision).collect();
        if n < IN_RANGE {
            assert_eq!(
                numbers,
                [1, 2],
                "call {n}: the first kept, one new revision"
            );
            let new = &versions[1];
            assert_eq!(
                (new.model.as_str(), new.revision_job.as_str()),
                ("whisper-large", "larger")
            );
            assert_eq!(new.text, transcript_of(audio));
        } else {
            assert_eq!(numbers, [1], "call {n} is outside the range");
        }
    }
    // The two revised before the kill were not sent again: the job continued, it did not
    // start over (live + job = 2); those in flight at the kill may have been sent twice.
    for (id, audio) in &calls[..2] {
        assert_eq!(uploads_of(&h, audio), 2, "{id}");
    }
    let sent: usize = calls.iter().map(|(_, audio)| uploads_of(&h, audio)).sum();
    assert!(
        (CALLS + IN_RANGE..=CALLS + IN_RANGE + JOB_CONCURRENCY).contains(&sent),
        "{sent} uploads"
    );

    // The finished job run again finds its revisions and adds nothing.
    let again = h.start(job_config(&h, "larger"));
    tokio::time::timeout(PATIENCE, again.join())
        .await
        .expect("the job finishes")
        .unwrap();
    assert_eq!(h.transcripts().await.len(), CALLS + IN_RANGE);
    let resent: usize = calls.iter().map(|(_, audio)| uploads_of(&h, audio)).sum();
    assert_eq!(resent, sent, "nothing transcribed again");
}

#[tokio::test]
async fn two_jobs_at_once_take_the_next_revisions_in_turn() {
    let h = harness().await;
    let calls = transcribed_calls(&h).await;
    let jobs = [
        h.start(job_config(&h, "first")),
        h.start(job_config(&h, "second")),
    ];
    for job in jobs {
        tokio::time::timeout(PATIENCE, job.join())
            .await
            .expect("the job finishes")
            .unwrap();
    }
    let by_call = revisions(&h).await;
    for (id, _) in &calls[..IN_RANGE] {
        let versions = &by_call[id.as_str()];
        let numbers: Vec<u32> = versions.iter().map(|t| t.revision).collect();
        assert_eq!(numbers, [1, 2, 3], "{id}: each revision once, in order");
        let mut jobs: Vec<&str> = versions[1..]
            .iter()
            .map(|t| t.revision_job.as_str())
            .collect();
        jobs.sort_unstable();
        assert_eq!(jobs, ["first", "second"], "{id}");
    }
}
