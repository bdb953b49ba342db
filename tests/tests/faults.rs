//! The fault run: the four binaries against a simulator that injects its faults at random
//! (session expiry, 429, 503, slow answers, resets, cut JSON, cut and slow audio, CDN lag, late
//! calls) and, before each kill, one of every kind on purpose; an STT endpoint that fails one
//! request in seven; and each service killed with SIGKILL and restarted in turn, then
//! nats-server, on the same store.
//!
//! Pass: every call the simulator listed ends as exactly one live event and exactly one
//! transcript of its own audio, no call is dead-lettered (only the junk records the simulator
//! slips into answers are), all within 60 s of the last recovery, and no service ever logs the
//! Broadcastify password, a session cookie or the STT key.
//!
//! Two simulator faults are left out on purpose: a refused password and a login answered
//! without a cookie are recorded fleet-wide and stop polling until an operator changes the
//! credentials (no login storm against the account); the poller's own tests cover them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::topology::{STREAM_CALLS_LIVE, STREAM_DEAD_LETTERS, STREAM_TRANSCRIPTIONS};
use bcfy_e2e::Service;
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::yaml::{common, free_port, site};
use bcfy_proto::archive_service_client::ArchiveServiceClient;
use bcfy_proto::{DeadLetter, GetArchivedCallsRequest, LiveCallEnvelope, TranscriptionResult};
use bcfy_simulator::{
    CallSpec, Fault, FaultRates, LedgerEntry, RetryAfter, Route, SimConfig, Simulator,
};
use bcfy_test_support::stt::{FakeStt, Options, transcript_for_sha256};
use bcfy_test_support::{NatsServer, eventually};
use tokio::time::Instant;

const STT_KEY: &str = "sk-fault-run-secret-4711";
/// The bound: everything delivered within this long of the last recovery.
const DELIVERY_BOUND: Duration = Duration::from_secs(60);
/// New calls while the faults run, one per tick.
const CALL_EVERY: Duration = Duration::from_millis(300);
/// How long a killed service stays down.
const DOWN_FOR: Duration = Duration::from_secs(2);
/// Time between one kill and the next.
const BETWEEN_FAULTS: Duration = Duration::from_secs(8);

fn simulator_config() -> SimConfig {
    let mut config = SimConfig::for_tests();
    config.systems = 2;
    config.talkgroups_per_system = 3;
    config.faults = FaultRates {
        truncate_audio_rate: 0.05,
        slow_audio_rate: 0.05,
        ..FaultRates::every(0.03)
    };
    config
}

/// Consumer timings short enough that a killed replica's calls come back within seconds, and a
/// block claim that a killed archive cache (or a NATS restart) leaves behind lapses as soon.
fn service_configs(
    nats: &str,
    sim: &Simulator,
    stt: &FakeStt,
    grpc: u16,
) -> [(&'static str, String); 4] {
    let groups = |sid: i64| {
        sim.world()
            .talkgroups
            .iter()
            .filter(|t| t.sid == sid)
            .map(|t| format!("\"{}-{}\"", t.sid, t.tg))
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        (
            "poller",
            format!(
                "{}{}live_producer:\n  poll_interval: 1s\n  max_backoff: 4s\n  look_back_interval: 5s\nshards:\n  - name: a\n    groups: [{}]\n  - name: b\n    groups: [{}]\n",
                common(nats, "info"),
                site(sim, true),
                groups(7001),
                groups(7002)
            ),
        ),
        (
            "audio-fetcher",
            format!(
                "{}{}audio:\n  ack_wait: 5s\n  not_found_initial_delay: 500ms\n  not_found_max_delay: 2s\n  retry_initial_delay: 500ms\n  retry_max_delay: 3s\n",
                common(nats, "info"),
                site(sim, false)
            ),
        ),
        (
            "transcriber",
            format!(
                "{}transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {STT_KEY}\n  max_concurrency: 4\n  request_timeout: 5s\nconsumer:\n  ack_wait: 5s\n  retry_initial_delay: 500ms\n  retry_max_delay: 3s\n  provider_backoff_initial: 1s\n  provider_backoff_max: 3s\n",
                common(nats, "info"),
                stt.url()
            ),
        ),
        (
            "archive-cache",
            format!(
                "{}{}grpc:\n  listen_addr: 127.0.0.1:{grpc}\ncache:\n  claim_ttl: 5s\n",
                common(nats, "info"),
                site(sim, true)
            ),
        ),
    ]
}

/// Queues one of each fault for the next requests to each route.
fn script_every_fault(sim: &Simulator) {
    let second = Duration::from_secs(1);
    let retry_after = || Some(RetryAfter::Seconds(1));
    let faults = [
        (
            Route::LiveCalls,
            Fault::Status {
                status: 429,
                retry_after: retry_after(),
            },
        ),
        (
            Route::LiveCalls,
            Fault::Status {
                status: 502,
                retry_after: None,
            },
        ),
        (
            Route::LiveCalls,
            Fault::SlowStatus {
                status: 504,
                after: second,
            },
        ),
        (Route::LiveCalls, Fault::ExpireSession),
        (Route::LiveCalls, Fault::Slow(second)),
        (Route::LiveCalls, Fault::MalformedJson),
        (Route::LiveCalls, Fault::BadRecords),
        (Route::LiveCalls, Fault::Reset),
        (Route::Audio, Fault::NotFound),
        (
            Route::Audio,
            Fault::Status {
                status: 503,
                retry_after: retry_after(),
            },
        ),
        (
            Route::Audio,
            Fault::Status {
                status: 500,
                retry_after: None,
            },
        ),
        (Route::Audio, Fault::TruncateAudio { after_bytes: 1024 }),
        (
            Route::Audio,
            Fault::SlowBody {
                chunk: 2048,
                pause: Duration::from_millis(50),
            },
        ),
        (Route::Audio, Fault::Slow(second)),
        (Route::Audio, Fault::Reset),
        (
            Route::Archive,
            Fault::Status {
                status: 503,
                retry_after: retry_after(),
            },
        ),
        (Route::Archive, Fault::MalformedJson),
        (Route::Archive, Fault::ExpireSession),
    ];
    for (route, fault) in faults {
        sim.inject(route, fault);
    }
}

/// Adds a call every tick until stopped: random talkgroup and clip, one in ten late by 15 s
/// (behind the poller's cursor), one in ten with audio that 404s for 3 s.
fn feed(sim: &Simulator, n: u64) {
    let talkgroups = &sim.world().talkgroups;
    let talkgroup = &talkgroups[(n as usize * 7) % talkgroups.len()];
    sim.add_call(CallSpec {
        talkgroup: Some((talkgroup.sid, talkgroup.tg)),
        clip: Some((n as usize * 5) % 12),
        late_by: (n % 10 == 3).then_some(Duration::from_secs(15)),
        audio_lag: (n % 10 == 7).then_some(Duration::from_secs(3)),
        ..CallSpec::default()
    });
}

/// Every stored message's payload in `stream`, decoded.
async fn stored<M: prost::Message + Default>(js: &jetstream::Context, stream: &str) -> Vec<M> {
    let mut stream = js.get_stream(stream).await.expect("stream");
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut messages = Vec::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            messages.push(M::decode(message.payload).expect("decodes"));
        }
    }
    messages
}

async fn transcripts_of(js: &jetstream::Context, ledger: &[LedgerEntry]) -> Option<usize> {
    let count = js
        .get_stream(STREAM_TRANSCRIPTIONS)
        .await
        .ok()?
        .info()
        .await
        .ok()?
        .state
        .messages as usize;
    (count >= ledger.len()).then_some(count)
}

/// `Some` once the archive cache answers `call`'s block with the call in it.
async fn archive_answers(grpc: u16, call: &LedgerEntry) -> Option<()> {
    let mut client = ArchiveServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .ok()?;
    let request = GetArchivedCallsRequest {
        sid: call.sid,
        talkgroup: call.tg,
        time: call.start,
    };
    let block = client
        .get_archived_calls(request)
        .await
        .ok()?
        .into_inner()
        .result?;
    block
        .calls
        .iter()
        .any(|c| c.hash.as_deref().is_some_and(|h| call.key.ends_with(h)))
        .then_some(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_and_a_nats_restart_under_upstream_faults_lose_and_double_nothing() {
    let mut nats = NatsServer::start().await;
    let sim = std::sync::Arc::new(
        Simulator::start(simulator_config())
            .await
            .expect("bcfy-sim"),
    );
    let stt = FakeStt::start(Options {
        key: Some(STT_KEY.to_owned()),
        failure_every: 7,
        record: false,
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let grpc = free_port();
    let otel_off = [("OTEL_SDK_DISABLED", "true")];
    let mut services: Vec<Service> = service_configs(&nats.url(), &sim, &stt, grpc)
        .iter()
        .map(|(name, config)| Service::start_with_env(name, config, dir.path(), &otel_off))
        .collect();

    let feeder = {
        let sim = std::sync::Arc::clone(&sim);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CALL_EVERY);
            for n in 0.. {
                tick.tick().await;
                feed(&sim, n);
            }
        })
    };
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    // The pipeline is up once the first transcript exists.
    eventually(Duration::from_secs(120), "the first transcript", || async {
        let stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.ok()?;
        let mut stream = stream;
        (stream.info().await.ok()?.state.messages > 0).then_some(())
    })
    .await;

    let started = Instant::now();
    let mut timeline = Vec::new();
    for service in &mut services {
        script_every_fault(&sim);
        if service.name() == "archive-cache" {
            // Asked before its kill too, through the scripted archive faults.
            let first = sim.ledger().swap_remove(0);
            eventually(Duration::from_secs(30), "an archive answer", || {
                archive_answers(grpc, &first)
            })
            .await;
        }
        tokio::time::sleep(BETWEEN_FAULTS).await;
        service.kill();
        tokio::time::sleep(DOWN_FOR).await;
        service.restart();
        timeline.push(format!(
            "{:>5.1} s kill -9 {}",
            started.elapsed().as_secs_f64(),
            service.name()
        ));
    }
    script_every_fault(&sim);
    tokio::time::sleep(BETWEEN_FAULTS).await;
    nats.kill();
    tokio::time::sleep(DOWN_FOR).await;
    nats.start_again().await;
    timeline.push(format!(
        "{:>5.1} s kill -9 nats-server",
        started.elapsed().as_secs_f64()
    ));
    let last_recovery = Instant::now();
    tokio::time::sleep(BETWEEN_FAULTS).await;
    feeder.abort();
    feeder.await.ok();

    let ledger = sim.ledger();
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    eventually(DELIVERY_BOUND, "a transcript per call", || {
        transcripts_of(&js, &ledger)
    })
    .await;
    let delivered_after = last_recovery.elapsed();
    // Read only once nothing is left in flight, so a late duplicate cannot slip past.
    eventually(DELIVERY_BOUND, "the pipeline to be idle", || async {
        pipeline_idle(&js).await.then_some(())
    })
    .await;

    let live: Vec<LiveCallEnvelope> = stored(&js, STREAM_CALLS_LIVE).await;
    let transcripts: Vec<TranscriptionResult> = stored(&js, STREAM_TRANSCRIPTIONS).await;
    let dead_letters: Vec<DeadLetter> = stored(&js, STREAM_DEAD_LETTERS).await;
    let mut live_per_call: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &live {
        *live_per_call.entry(event.call_id.as_str()).or_default() += 1;
    }
    let mut transcripts_per_call: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for result in &transcripts {
        transcripts_per_call
            .entry(result.call_id.as_str())
            .or_default()
            .push(result.text.as_str());
    }
    let lost: Vec<&str> = ledger
        .iter()
        .filter(|c| !transcripts_per_call.contains_key(c.key.as_str()))
        .map(|c| c.key.as_str())
        .collect();
    let doubled = transcripts_per_call
        .values()
        .filter(|t| t.len() > 1)
        .count()
        + live_per_call.values().filter(|n| **n > 1).count();
    eventually(
        Duration::from_secs(30),
        "an archive answer after the restarts",
        || archive_answers(grpc, &ledger[ledger.len() - 1]),
    )
    .await;

    let faults: BTreeMap<u16, usize> =
        sim.requests()
            .iter()
            .fold(BTreeMap::new(), |mut by_status, request| {
                *by_status.entry(request.status).or_default() += 1;
                by_status
            });
    eprintln!("fault run:");
    for line in &timeline {
        eprintln!("  {line}");
    }
    eprintln!(
        "  calls {} · live events {} · transcripts {} · lost {} · doubled {} · dead letters {}",
        ledger.len(),
        live.len(),
        transcripts.len(),
        lost.len(),
        doubled,
        dead_letters.len()
    );
    eprintln!(
        "  upstream answers by status {faults:?} · STT requests {} ({} failed on purpose)",
        stt.requests(),
        stt.failures()
    );
    eprintln!(
        "  everything delivered {:.1} s after the last recovery",
        delivered_after.as_secs_f64()
    );

    assert!(lost.is_empty(), "lost: {lost:?}");
    assert_eq!(doubled, 0, "a call published or transcribed twice");
    assert_eq!(
        transcripts.len(),
        ledger.len(),
        "only the simulator's calls"
    );
    for call in &ledger {
        assert_eq!(
            transcripts_per_call[call.key.as_str()],
            [transcript_for_sha256(&call.audio_sha256).as_str()],
            "{} was transcribed from other audio",
            call.key
        );
    }
    for letter in &dead_letters {
        assert_eq!(
            (letter.stage.as_str(), letter.error_kind.as_str()),
            ("poller", "bad_upstream_record"),
            "only junk records are dead-lettered, no call: {letter:?}"
        );
    }
    assert!(
        !dead_letters.is_empty(),
        "the junk records were dead-lettered"
    );
    assert!(
        faults.keys().any(|status| *status >= 400),
        "the simulator injected faults: {faults:?}"
    );
    assert!(stt.failures() > 0, "the STT endpoint failed some requests");

    let cookies: Vec<String> = sim
        .requests()
        .iter()
        .filter_map(|r| r.header("cookie"))
        .flat_map(|header| header.split(';').map(|c| c.trim().to_owned()))
        .filter_map(|c| c.split_once('=').map(|(_, value)| value.to_owned()))
        .filter(|value| value.len() >= 8)
        .collect();
    assert!(!cookies.is_empty(), "sessions were used");
    let secrets: Vec<&str> = [sim.config().password.as_str(), STT_KEY]
        .into_iter()
        .chain(cookies.iter().map(String::as_str))
        .collect();
    for service in &services {
        let log = service.log_text();
        assert!(!log.is_empty(), "{} logged", service.name());
        for secret in &secrets {
            assert!(
                !log.contains(secret),
                "{} logged a secret ({}…)",
                service.name(),
                &secret[..4]
            );
        }
    }
}
