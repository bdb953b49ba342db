//! The alerter on the real pipeline (poller, audio fetcher, the built-in engine, two alerter
//! replicas, bcfy-sim): a keyword spoken in a call fires its rule once (a number spelled out in
//! the rule matching the digits the engine writes), a tone-out rule fires
//! on its own two-tone page only (not on another page, a long tone or speech); and a poller
//! whose upstream goes dead raises the integration monitor's system alert, then resolves it
//! once the upstream answers again.

use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_ALERTS;
use bcfy_e2e::Service;
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::yaml::{common, poller, site, whisper_transcriber};
use bcfy_proto::Alert;
use bcfy_simulator::faults::{Fault, Route};
use bcfy_simulator::{CallSpec, SimConfig, Simulator, clips};
use bcfy_test_support::{NatsServer, eventually};
use prost::Message as _;

const SID: i64 = 7001;
const TG: i64 = 2345;
/// Building the binaries (if needed), loading the model, and ~1–4 s per call on 2 cores.
const PATIENCE: Duration = Duration::from_secs(300);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

async fn alerts(js: &jetstream::Context) -> Vec<(String, Alert)> {
    let Ok(mut stream) = js.get_stream(STREAM_ALERTS).await else {
        return Vec::new();
    };
    let last = stream.info().await.expect("info").state.last_sequence;
    let mut alerts = Vec::new();
    for sequence in 1..=last {
        let message = stream.get_raw_message(sequence).await.expect("stored");
        alerts.push((
            message.subject.to_string(),
            Alert::decode(message.payload).expect("an Alert"),
        ));
    }
    alerts
}

/// Two-tone `holds` (`two_tone {A} {B}`) as `(A, B)`.
fn pair(holds: &str) -> (f64, f64) {
    let f: Vec<f64> = holds
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().expect("a frequency"))
        .collect();
    (f[0], f[1])
}

#[tokio::test]
async fn spoken_keywords_and_tone_outs_fire_their_rules_once() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let now = now();
    let call = |clip: Option<usize>, non_speech: Option<usize>, ts: i64| {
        sim.add_call(CallSpec {
            talkgroup: Some((SID, TG)),
            clip,
            non_speech,
            ts: Some(ts),
            ..CallSpec::default()
        })
    };
    // "Engine twelve, respond to four hundred Main Street for a structure fire."
    let fire = call(Some(0), None, now - 60);
    // "Unit fourteen, traffic stop on Highway nine near mile marker twenty two."
    let traffic = call(Some(3), None, now - 58);
    let non_speech = clips::non_speech();
    let page = call(None, Some(0), now - 56);
    let _other_page = call(None, Some(1), now - 54);
    let _long_tone = call(None, Some(3), now - 52);
    let (a, b) = pair(non_speech[0].holds);
    assert_ne!(pair(non_speech[1].holds), (a, b));

    let dir = tempfile::tempdir().expect("temp dir");
    let alerter = format!(
        "{}rules:\n  - name: structure-fire\n    keywords: [\"structure fire\", \"working fire\"]\n    ignore: [drill]\n  - name: unit-14\n    keywords: [\"unit fourteen\"]\n  - name: station-1\n    tones:\n      - {{a_hz: {a}, b_hz: {b}}}\nmonitor:\n  enabled: false\n",
        common(&nats.url(), "info")
    );
    let _services = [
        Service::start("poller", &poller(&nats.url(), &sim, SID, TG), dir.path()),
        Service::start(
            "audio-fetcher",
            &format!("{}{}", common(&nats.url(), "info"), site(&sim, false)),
            dir.path(),
        ),
        Service::start("transcriber", &whisper_transcriber(&nats.url()), dir.path()),
        Service::start("alerter", &alerter, dir.path()),
        Service::start("alerter", &alerter, dir.path()),
    ];
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    eventually(PATIENCE, "every call transcribed and evaluated", || async {
        let mut transcripts = js
            .get_stream(bcfy_bus::topology::STREAM_TRANSCRIPTIONS)
            .await
            .ok()?;
        let stored = transcripts.info().await.ok()?.state.messages;
        let idle = pipeline_idle(&js).await;
        let mut alerter = js
            .get_consumer_from_stream::<jetstream::consumer::pull::Config, _, _>(
                bcfy_bus::topology::CONSUMER_ALERTER,
                bcfy_bus::topology::STREAM_TRANSCRIPTIONS,
            )
            .await
            .ok()?;
        let info = alerter.info().await.ok()?;
        let evaluated = info.num_pending == 0 && info.num_ack_pending == 0;
        (stored == 5 && idle && evaluated).then_some(())
    })
    .await;
    let found = alerts(&js).await;
    for (subject, alert) in &found {
        eprintln!("{subject}: {}", alert.summary);
    }

    let mut fired: Vec<(String, String)> = found
        .iter()
        .map(|(_, a)| (a.rule.clone(), a.call_id.clone()))
        .collect();
    fired.sort();
    let mut expected = vec![
        ("unit-14".to_owned(), traffic.key.clone()),
        ("station-1".to_owned(), page.key.clone()),
        ("structure-fire".to_owned(), fire.key.clone()),
    ];
    expected.sort();
    assert_eq!(fired, expected, "each rule once, on its call only");
    let (_, tone_out) = found
        .iter()
        .find(|(_, a)| a.rule == "station-1")
        .expect("the tone-out");
    let tone = tone_out.matches[0].tone.as_ref().expect("the page's tone");
    assert!((tone.frequency_hz - a).abs() <= 5.0 && (tone.second_frequency_hz - b).abs() <= 5.0);
}

#[tokio::test]
async fn a_dead_upstream_raises_the_system_alert_then_resolves_it() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    // Dead: every live poll for a while has its connection dropped; then it answers again.
    sim.inject_times(Route::LiveCalls, Fault::Reset, 12);
    let dir = tempfile::tempdir().expect("temp dir");
    let _poller = Service::start(
        "poller",
        &format!(
            "{}{}live_producer:\n  poll_interval: 500ms\n  initial_backoff: 500ms\n  max_backoff: 1s\nshards:\n  - name: fire\n    groups: [\"{SID}-{TG}\"]\n",
            common(&nats.url(), "info"),
            site(&sim, true)
        ),
        dir.path(),
    );
    let _alerter = Service::start(
        "alerter",
        &format!(
            "{}monitor:\n  interval: 500ms\n  stale_after: 10s\n  poll_failures: 3\n",
            common(&nats.url(), "info")
        ),
        dir.path(),
    );
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    let system = || async {
        alerts(&js)
            .await
            .into_iter()
            .filter(|(subject, _)| subject == "alerts.system.poll_failures")
            .filter_map(|(_, alert)| alert.system)
            .collect::<Vec<_>>()
    };
    let raised = eventually(PATIENCE, "the system alert", || async {
        let found = system().await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(raised[0].subject, "fire");
    assert!(!raised[0].resolved);
    assert!(raised[0].value >= 3.0, "{:?}", raised[0]);
    assert_eq!(raised[0].service, "poller");
    let both = eventually(PATIENCE, "the resolved alert", || async {
        let found = system().await;
        (found.len() >= 2).then_some(found)
    })
    .await;
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both[1].resolved);
    assert_eq!(both[1].subject, "fire");
}
