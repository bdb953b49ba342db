//! The simulator over real HTTP, checked against the protocol document's checklist (§9).

use std::time::Duration;

use bcfy_simulator::{CallSpec, FaultRates, SimConfig, Simulator};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn start(config: SimConfig) -> Simulator {
    bcfy_test_support::trace_init();
    Simulator::start(config).await.unwrap()
}

/// Posts the login form with `password`.
async fn login(sim: &Simulator, password: &str) -> reqwest::Response {
    let form = [
        ("username", "demo"),
        ("password", password),
        ("action", "auth"),
        ("redirect", "/calls/"),
    ];
    http()
        .post(format!("{}/login/", sim.url()))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn cookie(sim: &Simulator) -> String {
    let response = login(sim, "demo-password").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "/calls/");
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn live(
    sim: &Simulator,
    cookie: Option<&str>,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = http()
        .post(format!("{}/calls/apis/live-calls", sim.url()))
        .form(form);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn int(call: &Value, key: &str) -> i64 {
    call[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} in {call}"))
}

#[tokio::test]
async fn generated_calls_keep_the_capture_invariants() {
    let sim = start(SimConfig {
        mp3_node_ratio: 0.5,
        ..SimConfig::for_tests()
    })
    .await;
    for _ in 0..40 {
        sim.add_call(CallSpec::default());
    }
    let cookie = cookie(&sim).await;
    let (_, body) = live(
        &sim,
        Some(&cookie),
        &[("sid", "7001"), ("doInit", "1"), ("pos", "0")],
    )
    .await;
    let (_, other) = live(
        &sim,
        Some(&cookie),
        &[("sid", "7002"), ("doInit", "1"), ("pos", "0")],
    )
    .await;
    let mut calls = json(&body)["calls"].as_array().unwrap().clone();
    calls.extend(json(&other)["calls"].as_array().unwrap().iter().cloned());
    assert!(calls.len() >= 30);
    let mut encodings = std::collections::BTreeSet::new();
    for call in &calls {
        let (sid, tg, start, stop, ts) = (
            int(call, "sid"),
            int(call, "call_tg"),
            int(call, "meta_starttime"),
            int(call, "meta_stoptime"),
            int(call, "ts"),
        );
        assert_eq!(call["filename"], format!("{start}-{tg}"));
        assert_eq!(int(call, "call_duration"), stop - start);
        assert!((4..=7).contains(&(ts - stop)), "ts - stop = {}", ts - stop);
        assert_eq!(int(call, "call-ttl"), ts + 31_536_000);
        assert_eq!(call["id"], format!("{sid}-{tg}"));
        assert_eq!(
            call["call_src_key"],
            format!("{sid}-{}", int(call, "call_src"))
        );
        let hash = call["hash"].as_str().unwrap();
        assert!(
            hash.len() == 8
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert_ne!(int(call, "systemId"), sid);
        let enc = call["enc"].as_str().unwrap();
        encodings.insert(enc.to_owned());
        if enc == "m4a" {
            assert!(call["metadata"].is_object(), "m4a nodes send metadata");
            assert_eq!(int(&call["metadata"], "start_time"), start);
        }
    }
    assert_eq!(encodings.into_iter().collect::<Vec<_>>(), ["m4a", "mp3"]);
}

#[tokio::test]
async fn live_calls_follow_the_selection_and_cursor_rules() {
    let sim = start(SimConfig::for_tests()).await;
    let cookie = cookie(&sim).await;
    let group = [
        ("groups[]", "7001-2345"),
        ("doInit", "1"),
        ("pos", "0"),
        ("systemId", "0"),
        ("sid", "0"),
    ];
    let (status, body) = live(&sim, Some(&cookie), &group).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["lastPos"], 0, "empty answer: {body}");
    assert!(json(&body)["serverTime"].as_i64().unwrap() > 1_700_000_000);

    let base = 1_800_000_000;
    for i in 0..30 {
        sim.add_call(CallSpec {
            talkgroup: Some((7001, 2345)),
            ts: Some(base + i),
            ..CallSpec::default()
        });
    }
    sim.add_call(CallSpec {
        talkgroup: Some((7001, 2346)),
        ts: Some(base + 100),
        ..CallSpec::default()
    });

    let answer = json(&live(&sim, Some(&cookie), &group).await.1);
    let ts: Vec<i64> = answer["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| int(c, "ts"))
        .collect();
    assert_eq!(
        ts,
        (base + 5..base + 30).collect::<Vec<_>>(),
        "doInit: the 25 newest, ascending"
    );
    assert_eq!(answer["lastPos"], base + 29);

    let position = (base + 27).to_string();
    let after = [
        ("groups[]", "7001-2345"),
        ("doInit", "0"),
        ("pos", position.as_str()),
    ];
    let answer = json(&live(&sim, Some(&cookie), &after).await.1);
    let ts: Vec<i64> = answer["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| int(c, "ts"))
        .collect();
    assert_eq!(ts, [base + 27, base + 28, base + 29], "ts >= pos");

    // The float form and the comma list of browser playlist captures are accepted too.
    let float = format!("{}.000", base + 29);
    let comma = [("groups", "7001-2345,7001-2346"), ("pos", float.as_str())];
    let answer = json(&live(&sim, Some(&cookie), &comma).await.1);
    assert_eq!(answer["calls"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn protected_selectors_need_a_session_and_playlists_do_not() {
    let sim = start(SimConfig::for_tests()).await;
    sim.add_call(CallSpec {
        talkgroup: Some((7001, 2345)),
        ..CallSpec::default()
    });
    for form in [
        [("groups[]", "7001-2345")],
        [("sid", "7001")],
        [("systemId", "1502")],
    ] {
        let (status, _) = live(&sim, None, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form:?}");
        let (status, _) = live(&sim, Some("bcfyuser1=forged"), &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form:?}");
    }
    let uuid = sim.world().playlist_uuid.clone();
    let (status, body) = live(
        &sim,
        None,
        &[("playlist_uuid", uuid.as_str()), ("doInit", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&body)["calls"].as_array().unwrap().len(), 1);

    // Logging out ends the session.
    let cookie = cookie(&sim).await;
    assert_eq!(
        live(&sim, Some(&cookie), &[("sid", "7001")]).await.0,
        StatusCode::OK
    );
    let logout = http()
        .get(format!("{}/account/?action=logout", sim.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::FOUND);
    assert_eq!(
        live(&sim, Some(&cookie), &[("sid", "7001")]).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_bad_password_redirects_to_failed_without_a_cookie() {
    let sim = start(SimConfig::for_tests()).await;
    let response = login(&sim, "wrong").await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(response.headers()["location"], "/login/?failed=1");
    assert!(response.headers().get("set-cookie").is_none());
    let page = http()
        .get(format!("{}/login/", sim.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"name="username""#) && page.contains(r#"value="auth""#));
}

#[tokio::test]
async fn archive_selects_by_start_time_and_ts_may_spill() {
    let sim = start(SimConfig::for_tests()).await;
    let block = 1_800_001_800;
    let spilling = sim.add_call(CallSpec {
        talkgroup: Some((7001, 2345)),
        ts: Some(block + 1_800 + 3),
        clip: Some(11),
        ..CallSpec::default()
    });
    assert!(spilling.start < block + 1_800 && spilling.ts > block + 1_800);
    let next = sim.add_call(CallSpec {
        talkgroup: Some((7001, 2345)),
        ts: Some(block + 1_900),
        ..CallSpec::default()
    });
    let cookie = cookie(&sim).await;
    let url = format!(
        "{}/calls/apis/archivecall.php?group=7001-2345&s={block}",
        sim.url()
    );
    let answer = json(
        &http()
            .get(url)
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(answer["start"], block - 1);
    assert_eq!(answer["end"], block + 1_800);
    let calls = answer["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(int(&calls[0], "ts"), spilling.ts);
    assert_eq!(calls[0]["score"], calls[0]["ts"]);
    assert!(next.start >= block + 1_800);

    let forbidden = http()
        .get(format!(
            "{}/calls/apis/archivecall.php?group=7001-2345&s={block}",
            sim.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cdn_serves_unique_files_with_ranges_and_both_url_forms() {
    let sim = start(SimConfig {
        m4a_content_type: "audio/aac".into(),
        ..SimConfig::for_tests()
    })
    .await;
    let first = sim.add_call(CallSpec {
        clip: Some(0),
        node: Some(1502),
        talkgroup: Some((7001, 2345)),
        ..CallSpec::default()
    });
    let second = sim.add_call(CallSpec {
        clip: Some(0),
        node: Some(1502),
        talkgroup: Some((7001, 2345)),
        ..CallSpec::default()
    });
    assert_ne!(
        first.audio_sha256, second.audio_sha256,
        "same clip, different bytes"
    );

    let cookie = cookie(&sim).await;
    let calls = json(
        &live(
            &sim,
            Some(&cookie),
            &[("systemId", "1502"), ("doInit", "1")],
        )
        .await
        .1,
    )["calls"]
        .clone();
    let call = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["hash"].as_str().is_some_and(|h| first.key.ends_with(h)))
        .unwrap()
        .clone();
    let (hash, node, file, enc) = (
        call["hash"].as_str().unwrap(),
        call["systemId"].as_i64().unwrap(),
        call["filename"].as_str().unwrap(),
        call["enc"].as_str().unwrap(),
    );
    let url = format!("{}/{hash}/{node}/{file}.{enc}", sim.url());
    let whole = http().get(&url).send().await.unwrap();
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(
        whole.headers()["content-type"],
        if enc == "mp3" {
            "audio/mpeg"
        } else {
            "audio/aac"
        }
    );
    let bytes = whole.bytes().await.unwrap();
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sha, first.audio_sha256);
    assert_eq!(bytes.len(), first.audio_bytes);

    let partial = http()
        .get(&url)
        .header("range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        partial.headers()["content-range"],
        format!("bytes 100-{}/{}", bytes.len() - 1, bytes.len())
    );
    assert_eq!(partial.bytes().await.unwrap(), bytes.slice(100..));

    let no_hash = http()
        .get(format!("{}/{node}/{file}.{enc}", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_hash.status(), StatusCode::OK);
    assert_eq!(
        http()
            .get(format!("{}/nothing/1502/1-2.m4a", sim.url()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_generator_fills_the_ledger_with_late_and_lagging_calls() {
    let sim = start(SimConfig {
        calls_per_second: 50.0,
        late_call_ratio: 1.0,
        late_by: Duration::from_secs(20),
        cdn_lag_ratio: 1.0,
        cdn_lag: Duration::from_secs(60),
        ..SimConfig::for_tests()
    })
    .await;
    let ledger =
        bcfy_test_support::eventually(Duration::from_secs(10), "ten generated calls", || async {
            let ledger = sim.ledger();
            (ledger.len() >= 10).then_some(ledger)
        })
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for entry in &ledger {
        assert!(
            entry.late && entry.ts <= now - 19,
            "late by 20 s: {entry:?}"
        );
        assert!(entry.audio_available_at > entry.available_at);
        assert!(!entry.reference_text.is_empty());
    }
}

/// Each random fault, at rate 1, does what it says.
#[tokio::test]
async fn every_fault_rate_is_wired() {
    async fn with(rates: FaultRates) -> Simulator {
        start(SimConfig {
            faults: rates,
            ..SimConfig::for_tests()
        })
        .await
    }
    let site = |sim: &Simulator| format!("{}/calls/apis/live-calls", sim.url());

    let sim = with(FaultRates {
        unavailable_rate: 1.0,
        retry_after_seconds: 9,
        ..FaultRates::default()
    })
    .await;
    let response = http()
        .post(site(&sim))
        .form(&[("pos", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "9");

    let sim = with(FaultRates {
        rate_limit_rate: 1.0,
        ..FaultRates::default()
    })
    .await;
    let statuses: Vec<StatusCode> = futures_statuses(&sim, 8).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    let sim = with(FaultRates {
        bad_password_rate: 1.0,
        ..FaultRates::default()
    })
    .await;
    let response = login(&sim, "demo-password").await;
    assert_eq!(response.headers()["location"], "/login/?failed=1");

    let sim = with(FaultRates {
        session_expiry_rate: 1.0,
        ..FaultRates::default()
    })
    .await;
    let cookie = cookie(&sim).await;
    assert_eq!(
        live(&sim, Some(&cookie), &[("sid", "7001")]).await.0,
        StatusCode::FORBIDDEN
    );

    let sim = with(FaultRates {
        malformed_json_rate: 1.0,
        ..FaultRates::default()
    })
    .await;
    let (_, body) = live(&sim, None, &[("pos", "0")]).await;
    assert!(serde_json::from_str::<Value>(&body).is_err(), "{body}");

    let sim = with(FaultRates {
        slow_rate: 1.0,
        slow_delay: Duration::from_millis(300),
        ..FaultRates::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    live(&sim, None, &[("pos", "0")]).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    let sim = with(FaultRates {
        reset_rate: 1.0,
        ..FaultRates::default()
    })
    .await;
    let reset = async {
        http()
            .post(site(&sim))
            .form(&[("pos", "0")])
            .send()
            .await?
            .bytes()
            .await
    };
    assert!(reset.await.is_err());

    for (rates, complete) in [
        (
            FaultRates {
                truncate_audio_rate: 1.0,
                ..FaultRates::default()
            },
            false,
        ),
        (
            FaultRates {
                slow_audio_rate: 1.0,
                ..FaultRates::default()
            },
            true,
        ),
    ] {
        let sim = with(rates).await;
        let entry = sim.add_call(CallSpec {
            clip: Some(11),
            ..CallSpec::default()
        });
        let hash = entry.key.rsplit('-').next().unwrap();
        let filename = &entry.key[entry.key.find('-').unwrap() + 1..entry.key.rfind('-').unwrap()];
        let url = format!(
            "{}/{hash}/{}/{filename}.{}",
            sim.url(),
            entry.system_id,
            entry.enc
        );
        let body = async { http().get(&url).send().await?.bytes().await };
        assert_eq!(
            body.await.is_ok_and(|b| b.len() == entry.audio_bytes),
            complete
        );
    }
}

async fn futures_statuses(sim: &Simulator, n: usize) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(live(sim, None, &[("pos", "0")]).await.0);
    }
    statuses
}
