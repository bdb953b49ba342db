//! The web console in a real headless Chromium, against the real pipeline (poller, audio
//! fetcher, transcriber with a fake STT, gateway; `bcfy-sim` as Broadcastify): the page asks
//! for a key, then shows "no calls yet"; a new call appears with its transcript without a
//! reload; play fetches the audio (206) and the audio element plays; a ticked talkgroup hides
//! the others and, with auto-play on, its new call plays by itself; search finds the call's
//! phrase, highlighted; after the gateway is killed and restarted the page says how many calls
//! it caught up on; the call page's URL opens the same call; a phone-wide window does not
//! scroll sideways. A screenshot of the live page is written to the test's temp dir (and to
//! `$CONSOLE_SCREENSHOT_PATH` when set: `docs/console.png` comes from there).

use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_e2e::Service;
use bcfy_e2e::admin::metric;
use bcfy_e2e::pipeline;
use bcfy_e2e::yaml::free_port;
use bcfy_simulator::{CallSpec, LedgerEntry, SimConfig, Simulator};
use bcfy_test_support::browser::Browser;
use bcfy_test_support::nats::stream_messages;
use bcfy_test_support::stt::transcript_for_sha256;
use bcfy_test_support::{NatsServer, eventually};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const PATIENCE: Duration = Duration::from_secs(120);
const KEY: &str = "console-test-key";

/// A call on the simulator's first talkgroup.
fn add(sim: &Simulator, clip: usize) -> LedgerEntry {
    add_on(sim, 0, clip)
}

/// A call on the simulator's talkgroup number `which`.
fn add_on(sim: &Simulator, which: usize, clip: usize) -> LedgerEntry {
    let talkgroup = &sim.world().talkgroups[which];
    sim.add_call(CallSpec {
        talkgroup: Some((talkgroup.sid, talkgroup.tg)),
        clip: Some(clip),
        ..CallSpec::default()
    })
}

fn row(call: &LedgerEntry) -> String {
    format!("#calls li[data-call-id='{}']", call.key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_plays_and_finds_calls_in_a_real_browser() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let stt = pipeline::fake_stt().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let _pipeline = pipeline::start(&nats.url(), &sim, &stt, "", "", "info", dir.path());
    let keys = dir.path().join("keys.yaml");
    let sha: String = Sha256::digest(KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &keys,
        format!("keys:\n  - name: console\n    sha256: {sha}\n"),
    )
    .expect("keys written");
    let (port, admin) = (free_port(), free_port());
    let mut gateway = Service::start(
        "gateway",
        &format!(
            "nats:\n  urls: [\"{}\"]\nadmin:\n  listen_addr: 127.0.0.1:{admin}\nlog:\n  filter: info\nhttp:\n  listen_addr: 127.0.0.1:{port}\n  heartbeat: 1s\nauth:\n  keys_file: {}\nsearch:\n  index_dir: {}\n",
            nats.url(),
            keys.display(),
            dir.path().join("index").display()
        ),
        dir.path(),
    );
    let url = format!("http://127.0.0.1:{port}");
    eventually(PATIENCE, "the gateway to answer", || async {
        reqwest::get(format!("{url}/"))
            .await
            .ok()?
            .status()
            .is_success()
            .then_some(())
    })
    .await;

    let browser = Browser::start(1280, 900).await;
    browser.goto(&format!("{url}/")).await;
    eventually(PATIENCE, "the page to ask for a key", || async {
        let status = browser.text("#status").await?;
        status.contains("API key").then_some(())
    })
    .await;
    browser.type_into("#key", KEY).await;
    browser.click("#key-form button").await;
    eventually(PATIENCE, "the page to go live", || async {
        (browser.text("#status").await? == "Live").then_some(())
    })
    .await;
    assert_eq!(
        browser
            .execute("return !document.getElementById('empty').hidden", json!([]))
            .await,
        Value::Bool(true),
        "no calls yet"
    );

    // A call appears, then its transcript, without a reload.
    let first = add(&sim, 2);
    let spoken = transcript_for_sha256(&first.audio_sha256);
    eventually(PATIENCE, "the call's row with its transcript", || async {
        let text = browser
            .text(&format!("{} .transcript", row(&first)))
            .await?;
        (text == spoken).then_some(())
    })
    .await;

    // Play: the browser asks for a range, the element plays.
    browser
        .execute(
            "window.played = false; document.getElementById('player').addEventListener('playing', () => { window.played = true; }); return true;",
            json!([]),
        )
        .await;
    browser.click(&format!("{} .play", row(&first))).await;
    eventually(PATIENCE, "the audio to play", || async {
        (browser.execute("return window.played", json!([])).await == Value::Bool(true))
            .then_some(())
    })
    .await;
    let partial = metric(
        admin,
        "bcfy_gateway_request_duration_seconds_count{route=\"/v1/calls/{call_id}/audio\",status=\"206\"}",
    )
    .await;
    assert!(
        partial.is_some_and(|n| n >= 1.0),
        "a 206 was served: {partial:?}"
    );

    // The scanner: tick the first talkgroup; a call of another one is hidden, and with
    // auto-play on a new call of the ticked one plays by itself.
    let other = add_on(&sim, 1, 5);
    eventually(PATIENCE, "the other talkgroup's call", || async {
        browser.find(&row(&other)).await.map(|_| ())
    })
    .await;
    let first_talkgroup = &sim.world().talkgroups[0];
    browser
        .click(&format!(
            "#talkgroup-list input[value='{}-{}']",
            first_talkgroup.sid, first_talkgroup.tg
        ))
        .await;
    let hidden = |call: &LedgerEntry| {
        browser.execute(
            "const r = document.querySelector(arguments[0]); return r ? r.hidden : null;",
            json!([row(call)]),
        )
    };
    assert_eq!(hidden(&other).await, Value::Bool(true), "filtered out");
    assert_eq!(hidden(&first).await, Value::Bool(false), "kept");
    browser.click("#autoplay").await;
    let scanned = add(&sim, 6);
    eventually(PATIENCE, "the new call to play by itself", || async {
        let playing = browser
            .execute(
                "const p = document.getElementById('player'); return p.dataset.callId;",
                json!([]),
            )
            .await;
        (playing == Value::String(scanned.key.clone())).then_some(())
    })
    .await;
    browser.click("#autoplay").await;

    // Search finds the call's phrase, highlighted (once the gateway has indexed it).
    let sha_word = first.audio_sha256.clone();
    eventually(PATIENCE, "the transcript to be indexed", || async {
        (metric(admin, "bcfy_gateway_search_indexed_sequence").await? >= 1.0).then_some(())
    })
    .await;
    browser
        .type_into("#search", &format!("\"audio {sha_word}\"\u{E007}"))
        .await;
    eventually(PATIENCE, "the search result", || async {
        let found = browser
            .text(&format!(
                "#results li[data-call-id='{}'] .transcript",
                first.key
            ))
            .await?;
        (found == spoken).then_some(())
    })
    .await;
    let highlighted = browser
        .execute(
            "return [...document.querySelectorAll('#results b')].map(b => b.textContent.toLowerCase())",
            json!([]),
        )
        .await;
    assert_eq!(
        highlighted,
        json!(["audio", sha_word]),
        "the phrase is highlighted"
    );
    browser.click(".brand").await;

    // The gateway goes away; two calls come while it is down; the page catches up on them.
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    // Every call so far (first, other, scanned) is transcribed before the gateway goes.
    let before = 3;
    eventually(PATIENCE, "the calls so far to be transcribed", || async {
        (stream_messages(&js, STREAM_TRANSCRIPTIONS).await >= before).then_some(())
    })
    .await;
    gateway.kill();
    let missed = [add(&sim, 3), add(&sim, 4)];
    eventually(PATIENCE, "the missed calls to be transcribed", || async {
        (stream_messages(&js, STREAM_TRANSCRIPTIONS).await >= before + 2).then_some(())
    })
    .await;
    gateway.restart();
    eventually(PATIENCE, "the page to catch up", || async {
        let status = browser.text("#status").await?;
        (status == "Reconnected, caught up 2 calls").then_some(())
    })
    .await;
    for call in &missed {
        let spoken = transcript_for_sha256(&call.audio_sha256);
        eventually(PATIENCE, "a missed call's row", || async {
            let text = browser.text(&format!("{} .transcript", row(call))).await?;
            (text == spoken).then_some(())
        })
        .await;
    }
    let screenshot = browser.screenshot().await;
    std::fs::write(dir.path().join("console.png"), &screenshot).expect("screenshot written");
    if let Some(path) = std::env::var_os("CONSOLE_SCREENSHOT_PATH") {
        std::fs::write(path, &screenshot).expect("screenshot written");
    }

    // The call page's URL opens the same call in a fresh page.
    browser.goto("about:blank").await;
    browser.goto(&format!("{url}/#/call/{}", first.key)).await;
    eventually(PATIENCE, "the call page", || async {
        let text = browser.text("#call-detail .transcript").await?;
        (text == spoken).then_some(())
    })
    .await;

    // Readable on a phone: nothing wider than the screen.
    browser.resize(390, 844).await;
    browser.goto(&format!("{url}/")).await;
    eventually(PATIENCE, "the live page on a phone", || async {
        browser.find(&row(&first)).await.map(|_| ())
    })
    .await;
    let fits = browser
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            json!([]),
        )
        .await;
    assert_eq!(fits, Value::Bool(true), "no sideways scrolling on a phone");
}
