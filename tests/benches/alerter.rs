//! `just bench-alerter`: one alerter replica (release build) with 10,000 rules, fed transcripts
//! at a steady rate on a real nats-server, as the transcriber publishes them.
//!
//! The rules are what a large deployment writes: keywords naming units ("engine 212", "medic
//! 7") and incident phrases, some scoped to a talkgroup, some with ignore lists and cooldowns;
//! expressions and emergency rules (checked on every transcript); tone-out pairs. The
//! transcripts are the simulator's dispatch texts, a tenth of them naming a unit some rule
//! watches, some with two-tone pages.
//!
//! It prints: transcripts evaluated against those published (every one must be), the rule
//! evaluation time per transcript (p50/p99, from the alerter's own histogram), the time from a
//! transcript published to its alert raised (p50/p99), alerts raised, and the alerter's CPU per
//! 1,000 transcripts and peak RSS.
//!
//! Knobs: `BENCH_RULES` (default 10000), `BENCH_RATE` (transcripts/s, 500), `BENCH_SECONDS` (30).

#![expect(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::topology::{CONSUMER_ALERTER, STREAM_ALERTS, STREAM_TRANSCRIPTIONS};
use bcfy_bus::{CallId, Publisher, Shard, subject};
use bcfy_e2e::Service;
use bcfy_e2e::bench::{knob, percentile};
use bcfy_e2e::yaml::{common_on, free_port};
use bcfy_proto::{Alert, Call, Tone, ToneKind, TranscriptionResult};
use bcfy_simulator::clips;
use bcfy_test_support::proc_stat::{peak_rss_bytes, process_cpu_seconds};
use bcfy_test_support::{NatsServer, eventually};
use prost::Message as _;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

const UNITS: [&str; 6] = ["engine", "medic", "ladder", "unit", "battalion", "rescue"];
const PHRASES: [&str; 12] = [
    "structure fire",
    "working fire",
    "smoke showing",
    "second alarm",
    "chest pain",
    "difficulty breathing",
    "traffic stop",
    "disabled vehicle",
    "shots fired",
    "water rescue",
    "gas leak",
    "mutual aid",
];
const TALKGROUPS: i64 = 50;
const MIB: f64 = 1024.0 * 1024.0;

/// The alerter's config with `count` rules.
fn rules(count: usize, rng: &mut StdRng) -> String {
    let mut yaml = String::from("rules:\n");
    for n in 0..count {
        yaml.push_str(&format!("  - name: r{n}\n"));
        match n % 50 {
            // Expressions and emergency rules: every transcript pays for them.
            0 => {
                yaml.push_str(&format!(
                    "    regex: '\\bbox alarm {}\\b'\n",
                    rng.random_range(1..999)
                ));
            }
            1 => yaml.push_str("    emergency: true\n    keywords: [mayday]\n"),
            // Tone-outs.
            2 | 3 => {
                let a: f64 = rng.random_range(300.0..1500.0);
                let b: f64 = rng.random_range(300.0..1500.0);
                yaml.push_str(&format!("    tones: [{{a_hz: {a:.1}, b_hz: {b:.1}}}]\n"));
            }
            // Incident phrases, often scoped to a talkgroup, with an ignore list and a cooldown.
            4..=9 => {
                let phrase = PHRASES[rng.random_range(0..PHRASES.len())];
                yaml.push_str(&format!("    keywords: [\"{phrase}\"]\n    talkgroups: [{}]\n    ignore: [drill, test]\n    cooldown: 2m\n",
                    rng.random_range(0..TALKGROUPS)
                ));
            }
            // Units, spelled out as a rule writer would, or in digits.
            _ => {
                let unit = UNITS[rng.random_range(0..UNITS.len())];
                let number = rng.random_range(1..1000);
                yaml.push_str(&format!("    keywords: [\"{unit} {number}\"]\n"));
            }
        }
    }
    yaml
}

/// Transcript `n`: a dispatch text, a tenth of them naming a unit, some with a page.
fn transcript(n: u64, texts: &[&str], rng: &mut StdRng) -> (Shard, CallId, TranscriptionResult) {
    let tg = rng.random_range(0..TALKGROUPS);
    let shard = Shard { sid: 7001, tg };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let call_id = CallId::parse(&format!("1502-{now}-{tg}-b{n}")).expect("a call id");
    let base = texts[rng.random_range(0..texts.len())];
    let text = if n.is_multiple_of(10) {
        let unit = UNITS[rng.random_range(0..UNITS.len())];
        format!("{unit} {}, {base}", rng.random_range(1..1000))
    } else {
        base.to_owned()
    };
    let tones = if n.is_multiple_of(50) {
        vec![Tone {
            kind: ToneKind::TwoTone.into(),
            frequency_hz: rng.random_range(300.0..1500.0),
            second_frequency_hz: rng.random_range(300.0..1500.0),
            ..Tone::default()
        }]
    } else {
        Vec::new()
    };
    let result = TranscriptionResult {
        call_id: call_id.to_string(),
        text,
        tones,
        completed_at: Some(SystemTime::now().into()),
        call: Some(Call {
            sid: Some(7001),
            call_tg: Some(tg),
            meta_starttime: Some(now - 5),
            ..Call::default()
        }),
        ..TranscriptionResult::default()
    };
    (shard, call_id, result)
}

/// The `q` quantile of histogram `name` on the admin port's `/metrics`, interpolated within
/// its bucket as Prometheus' `histogram_quantile` does.
async fn histogram_quantile(admin: u16, name: &str, q: f64) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let prefix = format!("{name}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |(_, c)| *c);
    let rank = q * total;
    let mut previous = (0.0, 0.0);
    for (le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return previous.0;
            }
            let within = (rank - previous.1) / (count - previous.1).max(1.0);
            return previous.0 + (le - previous.0) * within;
        }
        previous = (le, count);
    }
    f64::NAN
}

#[tokio::main]
async fn main() {
    let rule_count = knob("BENCH_RULES", 10_000) as usize;
    let rate = knob("BENCH_RATE", 500);
    let seconds = knob("BENCH_SECONDS", 30);
    let mut rng = StdRng::seed_from_u64(7);
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let admin = free_port();
    let config = format!(
        "{}consumer:\n  concurrency: 8\nmonitor:\n  enabled: false\n{}",
        common_on(&nats.url(), "warn", admin),
        rules(rule_count, &mut rng)
    );
    let alerter = Service::start("alerter", &config, dir.path());
    let pid = alerter.pid().expect("running");
    let ready = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match reqwest::get(format!("http://127.0.0.1:{admin}/readyz")).await {
                Ok(answer) if answer.status().is_success() => return,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    assert!(
        ready.is_ok(),
        "the alerter is not ready:\n{}",
        alerter.log_text()
    );
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let publisher = Publisher::new(js.clone());
    let texts: Vec<&str> = clips::all().iter().map(|c| c.text).collect();

    let total = rate * seconds;
    let cpu_before = process_cpu_seconds(pid);
    let started = tokio::time::Instant::now();
    // Every 10 ms, the transcripts due by then, their PubAcks awaited together.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        let mut acks = Vec::new();
        while sent < due {
            let (shard, call_id, result) = transcript(sent, &texts, &mut rng);
            acks.push(
                publisher
                    .start(
                        subject::transcription(shard, &call_id),
                        call_id.as_str(),
                        &result,
                    )
                    .await
                    .expect("sent"),
            );
            sent += 1;
        }
        for ack in futures::future::join_all(acks).await {
            ack.expect("stored");
        }
    }
    let sending = started.elapsed();
    let drained = eventually(
        Duration::from_secs(300),
        "every transcript evaluated",
        || async {
            let mut consumer = js
                .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                    CONSUMER_ALERTER,
                    STREAM_TRANSCRIPTIONS,
                )
                .await
                .ok()?;
            let info = consumer.info().await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(started.elapsed())
        },
    )
    .await;
    let cpu = process_cpu_seconds(pid) - cpu_before;
    let rss = peak_rss_bytes(pid) as f64 / MIB;
    let evaluated = bcfy_e2e::admin::metric(
        admin,
        "bcfy_alerter_transcripts_total{outcome=\"evaluated\"}",
    )
    .await
    .unwrap_or(0.0);
    let p50 = histogram_quantile(admin, "bcfy_alerter_evaluation_seconds", 0.5).await;
    let p99 = histogram_quantile(admin, "bcfy_alerter_evaluation_seconds", 0.99).await;

    let mut alerts_stream = js.get_stream(STREAM_ALERTS).await.expect("ALERTS");
    let last = alerts_stream
        .info()
        .await
        .expect("info")
        .state
        .last_sequence;
    let mut delays = Vec::new();
    for sequence in 1..=last {
        let stored = alerts_stream
            .get_raw_message(sequence)
            .await
            .expect("stored");
        let alert = Alert::decode(stored.payload).expect("an Alert");
        let published = alert
            .transcript
            .and_then(|t| t.completed_at)
            .and_then(|t| SystemTime::try_from(t).ok());
        let raised = alert.raised_at.and_then(|t| SystemTime::try_from(t).ok());
        if let (Some(published), Some(raised)) = (published, raised)
            && let Ok(delay) = raised.duration_since(published)
        {
            delays.push(delay.as_secs_f64() * 1000.0);
        }
    }
    delays.sort_by(f64::total_cmp);

    println!(
        "alerter: {rule_count} rules, {rate} transcripts/s for {seconds} s, one replica (release)"
    );
    println!(
        "published {total} transcripts in {:.1} s ({:.0}/s); evaluated {evaluated} (all evaluated {:.1} s after the start)",
        sending.as_secs_f64(),
        total as f64 / sending.as_secs_f64(),
        drained.as_secs_f64()
    );
    println!(
        "rule evaluation per transcript: p50 {:.3} ms, p99 {:.3} ms (target p99 <= 5 ms)",
        p50 * 1000.0,
        p99 * 1000.0
    );
    println!(
        "alerts: {last}; transcript published -> alert raised: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99)
    );
    println!(
        "alerter CPU: {:.3} s per 1,000 transcripts ({:.2} cores at {rate}/s); peak RSS {rss:.1} MiB",
        cpu / (total as f64 / 1000.0),
        cpu / drained.as_secs_f64()
    );
    assert_eq!(evaluated as u64, total, "every transcript evaluated once");
}
